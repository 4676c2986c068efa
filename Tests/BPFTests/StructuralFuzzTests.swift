// The structural fuzzer: programs built slot by slot so that control flow sits where
// verifiers break — branches, calls, jumps and wide instructions at the ends of functions
// and of the program, call targets at every boundary, chains of local calls that fall
// through into one another, offsets one past every edge. Every program must be accepted
// or refused with a message; none may trap the verifier, and none it accepts may breach
// its proofs when run audited.

import BPF
import Testing
import XokSimulation

@Suite struct StructuralFuzz {
    struct Generator {
        var rng: SeededRandom
        /// Whether this program's jumps may land outside it (else only on its slots).
        var wild = true

        mutating func below(_ n: Int) -> Int { Int(rng.next() % UInt64(max(n, 1))) }
        mutating func chance(_ percent: UInt64) -> Bool { rng.next() % 100 < percent }
        mutating func pick<T>(_ choices: [T]) -> T { choices[below(choices.count)] }

        /// An immediate from the edges: small numbers, the ends of 32 bits, the sign bit.
        mutating func immediate() -> Int32 {
            pick([0, 1, -1, 2, 7, 8, 14, 512, -512, 4095, 4096, Int32.max, Int32.min, Int32(truncatingIfNeeded: rng.next())])
        }

        /// A jump offset from `slot` that lands at an interesting place among `boundaries`
        /// (function starts, the program's end) or just beside it.
        mutating func offset(from slot: Int, count: Int, boundaries: [Int]) -> Int16 {
            let target: Int = switch rng.next() % 6 {
            case 0: pick(boundaries)
            case 1: pick(boundaries) - 1
            case 2: pick(boundaries) + 1
            case 3: slot + 1 + below(4)
            case 4: pick([-1, 0, count - 1, count, count + 1, slot, slot + 1])
            default: below(count + 2) - 1
            }
            return Int16(clamping: (wild ? target : min(max(target, 0), count - 1)) - slot - 1)
        }

        /// One statement's slots. `last` says it ends a function, where the generator most
        /// likely puts something that may fall through.
        mutating func statement(at slot: Int, count: Int, boundaries: [Int], last: Bool) -> [Instruction] {
            let r = UInt8(below(10)), s = UInt8(below(11))
            let jump = offset(from: slot, count: count, boundaries: boundaries)
            let choice = last && chance(60) ? pick([0, 1, 2, 3, 4, 5]) : below(16)
            switch choice {
            case 0: return [Instruction(opcode: 0x15, dst: r, offset: jump, imm: immediate())]                // jeq imm
            case 1: return [Instruction(opcode: 0x85, src: 1, imm: Int32(jump))]                             // call local
            case 2: return [Instruction(opcode: 0x18, dst: r, imm: immediate()), Instruction(opcode: 0, imm: immediate())] // lddw
            case 3: return [Instruction(opcode: 0x05, offset: jump)]                                         // ja
            case 4: return [Instruction(opcode: 0x95)]                                                       // exit
            case 5: return [Instruction(opcode: pick([0x5d, 0xad, 0xcd, 0x4e, 0x6e]), dst: r, src: s, offset: jump)] // jne/jlt/jslt/jset32/jsgt32 reg
            case 6: return [Instruction(opcode: 0xb7, dst: r, imm: immediate())]                             // mov imm
            case 7: return [Instruction(opcode: 0xbf, dst: r, src: s)]                                       // mov reg
            case 8: return chance(50) ? [Instruction(opcode: pick([0x07, 0x04, 0x67, 0x77, 0x57]), dst: r, imm: immediate())]
                                      : [Instruction(opcode: pick([0x0f, 0x1f, 0x5f, 0xaf]), dst: r, src: s)]
            case 9: return [Instruction(opcode: 0x79, dst: r, src: pick([1, 10, 3, s]), offset: pick([0, -8, 8, 4088, -512, Int16.max, Int16.min]))]
            case 10: return [Instruction(opcode: 0x7b, dst: pick([10, 3, r]), src: s, offset: pick([-8, -16, 0, -512, 8]))]
            case 11: return [Instruction(opcode: 0x7a, dst: pick([10, 3]), offset: pick([-8, -16, -504]), imm: immediate())]
            case 12: return [Instruction(opcode: 0x85, imm: pick([5, 16, 0, -1, 99, Int32.max]))]            // helper
            case 13: return [Instruction(opcode: 0x8d, dst: r)]                                              // callx
            case 14 where chance(5): return [Instruction(opcode: 0x18, dst: r, imm: immediate())]            // lddw missing its half
            case 14: return [Instruction(opcode: 0xbf, dst: 0, src: r)]
            default: return [Instruction(opcode: 0xdb, dst: pick([10, 3]), src: s, offset: -8, imm: pick([0x00, 0xe1, 0xf1, 0x01]))]
            }
        }

        /// A program of several functions: each begins where some call may land, and most
        /// end on a statement that may fall through.
        mutating func program() -> [Instruction] {
            wild = chance(50)
            // Some chain their functions: each begins by calling the next, and nests deep.
            let chained = chance(25)
            let functionCount = 1 + below(chained ? 12 : 9)
            var lengths = (0..<functionCount).map { _ in 1 + below(chance(10) ? 40 : 8) }
            if chance(5) { lengths[0] = 0 }
            var starts: [Int] = []
            var total = 0
            for length in lengths { starts.append(total); total += length }
            let boundaries = starts + [total]
            var slots: [Instruction] = []
            // Half the programs write every register first, so they get past the dataflow
            // rules to the ones about control.
            let prologue = chance(50)
            for (f, length) in lengths.enumerated() {
                let end = starts[f] + length
                if f == 0 && prologue {
                    for r in 0..<10 where slots.count < end - 1 { slots.append(Instruction(opcode: 0xb7, dst: UInt8(r), imm: immediate())) }
                }
                if chained && f + 1 < lengths.count && slots.count < end - 1 {
                    slots.append(Instruction(opcode: 0x85, src: 1, imm: Int32(starts[f + 1] - slots.count - 1)))
                    // Mostly a clean return after it, so the chain reaches the depth check.
                    if chance(85) {
                        while slots.count < end - 1 { slots.append(Instruction(opcode: 0xb7, imm: immediate())) }
                        slots.append(Instruction(opcode: 0x95))
                    }
                }
                while slots.count < end {
                    let last = slots.count == end - 1
                    let next = statement(at: slots.count, count: total, boundaries: boundaries, last: last)
                    slots += next
                }
            }
            // Sometimes a call to every function from the entry, so they really are functions.
            if chance(40) {
                var calls: [Instruction] = []
                for start in starts.dropFirst() {
                    calls.append(Instruction(opcode: 0x85, src: 1, imm: Int32(start + functionCount - calls.count - 1)))
                }
                slots = calls + slots
            }
            return slots
        }
    }

    static let kinds: [ProgramKind] = [ProgramKind.udfOwns, .udfAcl, .udfSize, .wakeupPredicate, .packetFilter, .conformance(memoryBytes: 64)]
        .map { kind in
            var k = kind
            if k.termination.allowsLoops { k.termination = .budget(500) }
            return k
        }

    @Test func everyProgramIsAcceptedOrRefusedNeverTrapped() {
        let seed: UInt64 = 0x5eed_f022
        var generator = Generator(rng: SeededRandom(seed: seed))
        var accepted = 0, rules: [VerificationRule: Int] = [:]
        for i in 0..<100_000 {
            let kind = Self.kinds[i % Self.kinds.count]
            let program = Program(generator.program())
            let verified: VerifiedProgram
            do {
                verified = try Verifier.verify(program, kind: kind)
            } catch {
                rules[error.rule, default: 0] += 1
                if error.detail.isEmpty || error.instruction < 0 || error.instruction > program.instructions.count {
                    Issue.record("seed \(seed), program \(i): rejection without a place or a reason: \(error)")
                    return
                }
                continue
            }
            accepted += 1
            // A fixed context at its size; a variable one at its edges (empty, one byte) or
            // its largest size up to a jumbo frame (a predicate's window may be 1 GiB).
            let (low, high) = kind.context.bounds
            let length = low == high ? high : [0, 1, 64, min(high, Limits.frameBytesMax)][Int(generator.rng.next() % 4)]
            let context = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.rng.next() % 3 == 0 ? generator.rng.next() : 0) }
            do {
                _ = try Interpreter(verified).run(context: context, mode: AuditedExecution.self)
            } catch ExecutionError.verifierBreach(let at) {
                Issue.record("seed \(seed), program \(i) (\(kind.name)): breach at \(at):\n\((try? Disassembler.disassemble(program)) ?? "")")
                return
            } catch {}
        }
        // The generator must reach both sides and the structural rules in number.
        #expect(accepted >= 1_000, "accepted \(accepted); \(rules)")
        for rule in [VerificationRule.fallsOffEnd, .jumpOutOfProgram, .jumpOutOfFunction, .jumpIntoWideInstruction,
                     .recursion, .callDepth, .malformed, .loopWithoutBudget] {
            #expect(rules[rule, default: 0] >= 20, "\(rule) reached \(rules[rule, default: 0]) times; \(rules)")
        }
    }

    /// Programs at the length limit and one past it, ending each way a function can end.
    @Test func programsAtTheLengthLimitEndingEachWay() throws {
        let fill = Instruction(opcode: 0xb7, imm: 0)
        let endings: [[Instruction]] = [
            [Instruction(opcode: 0x95)],
            [Instruction(opcode: 0x15, offset: -2, imm: 1)],
            [Instruction(opcode: 0x85, src: 1, imm: -2)],
            [Instruction(opcode: 0x18), Instruction(opcode: 0)],
            [Instruction(opcode: 0x05, offset: -1)],
        ]
        for ending in endings {
            for total in [Limits.programSlotsMax, Limits.programSlotsMax + 1] {
                let program = Program(Array(repeating: fill, count: total - ending.count) + ending)
                for kind in [ProgramKind.udfSize, .wakeupPredicate] {
                    // Only exit, or a loop where the kind has a budget, ends a program; and only
                    // at the limit, not past it.
                    let mayEnd = ending[0].opcode == 0x95 || (ending[0].opcode == 0x05 && kind.termination.allowsLoops)
                    do {
                        _ = try Verifier.verify(program, kind: kind)
                        #expect(mayEnd && total == Limits.programSlotsMax, "\(kind.name), \(total) slots ending \(ending)")
                    } catch {
                        #expect(!error.detail.isEmpty)
                        #expect(!mayEnd || total > Limits.programSlotsMax, "\(error)")
                    }
                }
            }
        }
    }
}
