// The verifier's central promise, tested on random programs: a program it accepts never
// reads or writes outside its context, its stack frame or its output area. Every accepted
// program runs audited (the interpreter checks even the accesses the verifier proved) on
// random input; a breach fails the test with the seed and the program.

import BPF
import Testing
import XokSimulation

@Suite struct VerifierSoundness {
    /// Builds random programs for one kind from pieces that mostly keep the rules and
    /// often sit at the edges of each region, with some that break them.
    struct Generator {
        var rng: SeededRandom

        mutating func pick<T>(_ choices: [T]) -> T { choices[Int(rng.next() % UInt64(choices.count))] }
        mutating func chance(_ percent: UInt64) -> Bool { rng.next() % 100 < percent }
        mutating func below(_ n: Int) -> Int { Int(rng.next() % UInt64(max(n, 1))) }

        mutating func scratch() -> String { "%r\(pick([0, 4, 5, 6, 7, 8, 9]))" }
        mutating func small() -> Int64 {
            pick([0, 1, 2, 3, 4, 7, 8, 12, 14, 16, 64, 255, 511, 512, 4088, 4095, 4096, -1, -8, -512, Int64(below(9000)) - 600])
        }
        /// A 64-bit constant at the edges of what the verifier follows: ±2^40 and beside it,
        /// the sign bit, numbers whose difference is small though each is huge.
        mutating func large() -> String {
            let m: UInt64 = 1 << 40
            let v: UInt64 = pick([m, m - 1, m + 1, 0 &- m, 0 &- m &- 1, 0 &- m &+ 1, 1 << 63, (1 << 63) - 1, 0x1f << 40,
                                  0xffff_ff00_0000_0000, 0xffff_ffff_ffff_fff8, 1 << 32, 0xffff_ffff, rng.next()])
            return "0x" + String(v, radix: 16)
        }

        mutating func size() -> (String, Int) { pick([("b", 1), ("h", 2), ("w", 4), ("dw", 8)]) }
        func text(_ v: Int) -> String { v < 0 ? "\(v)" : "+\(v)" }

        /// A region the kind can address: base register, valid offsets, writable.
        struct Area { var base: String; var lo: Int; var hi: Int; var writable: Bool }

        mutating func areas(_ kind: ProgramKind, proven length: Int) -> [Area] {
            var areas = [Area(base: "%r10", lo: -512, hi: 0, writable: true),
                         Area(base: "%r1", lo: 0, hi: length, writable: kind.contextWritable)]
            if kind.outputBytes > 0 { areas.append(Area(base: "%r3", lo: 0, hi: kind.outputBytes, writable: true)) }
            return areas
        }

        /// An offset for `bytes` in `area`: inside it mostly, at or past an edge sometimes.
        mutating func offset(in area: Area, _ bytes: Int) -> Int {
            if chance(85) { return area.lo + below(area.hi - area.lo - bytes + 1) }
            return pick([area.lo - 1, area.hi - bytes + 1, area.hi, area.lo - bytes, area.hi - bytes])
        }

        mutating func statement(_ areas: [Area], _ index: Int, _ count: Int) -> String {
            let area = pick(areas)
            let (suffix, bytes) = size()
            switch rng.next() % 21 {
            case 16:
                // An address moved by a huge number and back: the offset is lost, not clamped.
                let k = large()
                return "lddw %r7, \(k)\nmov %r5, \(area.base)\nadd %r5, %r7\nsub %r5, %r7\nldx\(suffix) %r0, [%r5]"
            case 17:
                // The difference of two addresses of one region, one moved by a huge number,
                // then shifted and used as an offset into another region.
                let other = pick(areas)
                return "lddw %r7, \(large())\nmov %r5, \(area.base)\nadd %r5, %r7\nmov %r8, \(area.base)\nlddw %r9, \(large())\nadd %r8, %r9\n"
                    + "sub %r8, %r5\n\(pick(["rsh", "arsh", "and"])) %r8, \(pick([40, 41, 32, 3, 0xff]))\nmov %r5, \(other.base)\nadd %r5, %r8\n"
                    + "ldx\(suffix) %r0, [%r5\(text(pick([0, -8, 8])))]\njgt %r8, \(pick([2, 31, 32, 33])), +0"
            case 18:
                // An address spilled to the stack and reloaded, then used.
                let slot = -8 * (1 + below(4))
                return "mov %r5, \(area.base)\nadd %r5, \(offset(in: area, bytes))\nstxdw [%r10\(text(slot))], %r5\n"
                    + "ldxdw %r7, [%r10\(text(slot))]\nldx\(suffix) %r0, [%r7]"
            case 19:
                // A large constant spilled, reloaded and added to an address.
                return "lddw %r7, \(large())\nstxdw [%r10-8], %r7\nldxdw %r8, [%r10-8]\nmov %r5, \(area.base)\nadd %r5, %r8\nldx\(suffix) %r0, [%r5]"
            case 20:
                // Addresses of two regions subtracted (refused) or compared after a spill.
                return "mov %r5, \(area.base)\nsub %r5, \(pick(areas).base)\nmov %r0, %r5"
            case 0: return "mov \(scratch()), \(small())"
            case 1: return "mov \(scratch()), \(scratch())"
            case 2: return "\(pick(["add", "sub", "and", "or", "lsh", "rsh", "mul", "div", "mod", "xor", "arsh"]))\(pick(["", "32"])) \(scratch()), \(pick(["\(small())", scratch()]))"
            case 3, 4, 5:
                // Stack reads mostly come from the slots the prologue wrote.
                let at = area.base == "%r10" && chance(80) ? -8 * (1 + below(4)) : offset(in: area, bytes)
                return "ldx\(suffix) \(scratch()), [\(area.base)\(text(at))]"
            case 6, 7:
                let target = chance(90) ? (areas.first { $0.writable && $0.base == area.base } ?? areas[0]) : area
                return "st\(suffix) [\(target.base)\(text(offset(in: target, bytes)))], \(small())"
            case 8:
                let target = areas.first { $0.writable && $0.base == area.base } ?? areas[0]
                return "stx\(suffix) [\(target.base)\(text(offset(in: target, bytes)))], \(scratch())"
            case 9:
                let target = areas.first { $0.writable && $0.base == area.base } ?? areas[0]
                let at = target.base == "%r10" ? -8 * (1 + below(4)) : offset(in: target, 8)
                return "lock \(pick(["add", "fetch add", "xchg", "cmpxchg", "fetch or"]))\(pick(["", "32"])) [\(target.base)\(text(at))], \(scratch())"
            case 10, 11:
                // A data-dependent address: base plus a byte (or a masked word) of input.
                let mask = pick(["", "and %r6, 0xf\n", "and %r6, 0x1ff\n", "lsh %r6, 3\n", "and %r6, 0xff8\n"])
                let op = chance(70) ? "ldx\(suffix) %r0, [%r4\(text(pick([0, 8, area.hi - 300, area.hi - 256, area.lo])))]"
                    : "st\(suffix) [%r4\(text(pick([0, area.hi - 256, area.lo])))], 1"
                let writable = op.hasPrefix("st") && !area.writable ? "" : op
                return "ldxb %r6, [%r1+\(below(16))]\n\(mask)mov %r4, \(area.base)\nadd %r4, %r6\n\(writable)"
            case 12, 13:
                let skip = below(min(4, count - index - 1)) + 1
                return "j\(pick(["eq", "ne", "gt", "ge", "lt", "le", "sgt", "slt", "set"]))\(pick(["", "32"])) \(scratch()), \(pick(["\(small())", scratch()])), +\(skip - 1)"
            case 14:
                return index > 2 && chance(40) ? "jlt \(scratch()), \(small()), -\(1 + below(3))" : "neg \(scratch())"
            default:
                return "mov %r5, \(area.base)\nadd %r5, \(pick([8, -8, 16, 4000, -520]))\nldx\(suffix) %r0, [%r5]"
            }
        }

        /// A program: registers and some stack slots written, a length check for packet
        /// filters, a random body, exit.
        mutating func program(for kind: ProgramKind) -> String {
            var lines = ["mov %r0, 0"]
            var proven = kind.context.bounds.min
            if case .variable = kind.context, chance(80) {
                proven = pick([14, 34, 64, 200])
                lines.append("jlt %r2, \(proven), end")
            }
            for r in [4, 5, 6, 7, 8, 9] {
                lines.append(chance(50) || proven == 0 ? "mov %r\(r), \(small())" : "ldx\(pick(["b", "h"])) %r\(r), [%r1+\(below(min(proven, 16) - 1))]")
            }
            for slot in 1...4 where chance(80) { lines.append("stdw [%r10-\(8 * slot)], \(small())") }
            let areas = areas(kind, proven: proven)
            let count = 3 + below(14)
            for i in 0..<count { lines.append(statement(areas, i, count)) }
            lines += ["mov %r0, \(scratch())", "end:", "exit"]
            return lines.joined(separator: "\n")
        }
    }

    /// The system's kinds, with budgets cut so that runaway loops end quickly.
    static let kinds: [ProgramKind] = [ProgramKind.udfOwns, .udfSize, .packetFilter, .conformance(memoryBytes: 96), .conformance(memoryBytes: 4096)]
        .map { kind in
            var k = kind
            k.termination = .budget(2_000)
            return k
        }

    @Test func acceptedRandomProgramsNeverTouchMemoryOutsideTheirBounds() throws {
        let seed: UInt64 = 0x0b5e_55ed
        var generator = Generator(rng: SeededRandom(seed: seed))
        var accepted = 0, guarded = 0, outcomes: [String: Int] = [:], rejections: [String: Int] = [:]
        for i in 0..<20_000 {
            let kind = Self.kinds[i % Self.kinds.count]
            let text = generator.program(for: kind)
            guard let program = try? Assembler.assemble(text) else { continue }
            let verified: VerifiedProgram
            do { verified = try Verifier.verify(program, kind: kind) } catch {
                rejections[error.rule.rawValue, default: 0] += 1
                continue
            }
            accepted += 1
            guarded += verified.guardedAccessCount
            let interpreter = Interpreter(verified)
            for _ in 0..<3 {
                let length: Int
                switch kind.context {
                case .fixed(let n): length = n
                case .variable(let max): length = Int(generator.rng.next() % UInt64(min(max, 200) + 1))
                }
                // Bytes at the edges of their range, so data-dependent addresses reach the
                // edges of their regions.
                var context = (0..<length).map { _ in generator.pick([0, 0, 1, 0x10, 0x80, 0xf8, 0xfe, 0xff, UInt8(truncatingIfNeeded: generator.rng.next())]) }
                let before = context
                var output = [UInt8](repeating: 0xcc, count: kind.outputBytes)
                var outcome = "returned"
                do {
                    try context.withUnsafeMutableBytes { c in
                        try output.withUnsafeMutableBytes { o in
                            _ = try interpreter.run(context: c, output: o, mode: AuditedExecution.self)
                        }
                    }
                } catch let error as ExecutionError {
                    if case .verifierBreach = error {
                        Issue.record("seed \(seed), program \(i) (\(kind.name)), \(error):\n\(text)")
                        return
                    }
                    outcome = "\(error)".hasPrefix("memory access out of bounds") ? "stopped by a run-time check" : "ran out of budget"
                }
                outcomes[outcome, default: 0] += 1
                if !kind.contextWritable {
                    #expect(context == before, "seed \(seed), program \(i) wrote its read-only context:\n\(text)")
                }
            }
        }
        // Enough accepted programs, and enough of them exercising run-time checks, that the
        // test means something.
        #expect(accepted >= 2_000, "accepted \(accepted); rejected \(rejections)")
        #expect(guarded >= 200, "guarded accesses \(guarded)")
        #expect(outcomes["stopped by a run-time check", default: 0] > 0, "\(outcomes)")
    }
}
