// The verifier's abstract domain, checked value by value: for every operation, any
// concrete operands drawn from the abstract ones give a result the abstract result
// contains. Operands come from the edges an attacker would pick: 0, 1, the ends of the
// 32- and 64-bit ranges, the sign bits, and offsets at and just past the ±2^40 the
// analysis follows.

@testable import BPF
import Testing
import XokSimulation

@Suite struct DomainSoundness {
    static let edges: [UInt64] = {
        let m = UInt64(Offsets.magnitudeMax)
        var values: [UInt64] = [0, 1, 2, 7, 8, 14, 63, 64, 511, 512, 4095, 4096, 4097, 9216,
                                0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1_0000_0000,
                                m - 1, m, m + 1, 2 * m, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000]
        values += values.map { 0 &- $0 }
        return values
    }()

    struct Draw {
        var rng: SeededRandom
        mutating func value() -> UInt64 {
            switch rng.next() % 3 {
            case 0: DomainSoundness.edges[Int(rng.next() % UInt64(DomainSoundness.edges.count))]
            case 1: rng.next() >> (rng.next() % 64)
            default: DomainSoundness.edges[Int(rng.next() % UInt64(DomainSoundness.edges.count))] &+ (rng.next() % 9) &- 4
            }
        }
        /// An interval with ends from the edges, sometimes a constant, sometimes strided.
        mutating func interval() -> Interval {
            let a = value(), b = rng.next() % 4 == 0 ? a : value()
            let (lo, hi) = (min(a, b), max(a, b))
            if rng.next() % 4 == 0, let strided = Interval(lo: lo, hi: hi, stride: [2, 8, 64, 80][Int(rng.next() % 4)], residue: rng.next()) {
                return strided
            }
            return Interval(lo: lo, hi: hi)
        }
        /// A member of `i`: an end, or a value inside that keeps its congruence.
        mutating func member(of i: Interval) -> UInt64 {
            switch rng.next() % 3 {
            case 0: return i.lo
            case 1: return i.hi
            default:
                let (stride, residue) = i.congruence
                guard stride > 0 else { return i.lo }
                let steps = (i.hi - i.lo) / stride
                let pick = steps == .max ? rng.next() : rng.next() % (steps + 1)
                let v = i.lo &+ stride &* pick
                return v % stride == residue % stride ? v : i.lo
            }
        }
    }

    static func contains(_ i: Interval, _ v: UInt64) -> Bool {
        guard v >= i.lo && v <= i.hi else { return false }
        let (stride, residue) = i.congruence
        return stride == 0 ? v == residue : v % stride == residue % stride
    }

    @Test func everyAluResultLiesInTheComputedInterval() {
        var draw = Draw(rng: SeededRandom(seed: 0xa1))
        for _ in 0..<60_000 {
            let operation = AluOperation.allCases[Int(draw.rng.next() % UInt64(AluOperation.allCases.count))]
            let width: Width = draw.rng.next() % 2 == 0 ? .bits64 : .bits32
            let a = draw.interval(), b = draw.interval()
            let result = IntervalArithmetic.alu(operation, width, a, b)
            for _ in 0..<4 {
                let x = draw.member(of: a), y = draw.member(of: b)
                let concrete = width == .bits64 ? Semantics.alu64(operation, x, y) : Semantics.alu32(operation, x, y)
                if !Self.contains(result, concrete) {
                    Issue.record("\(operation) \(width): \(x) op \(y) = \(concrete) outside \(result) (from \(a), \(b))")
                    return
                }
            }
        }
    }

    @Test func everyBranchEdgeKeepsTheValuesThatTakeIt() {
        var draw = Draw(rng: SeededRandom(seed: 0xb2))
        for _ in 0..<60_000 {
            let condition = JumpCondition.allCases[Int(draw.rng.next() % UInt64(JumpCondition.allCases.count))]
            let width: Width = draw.rng.next() % 2 == 0 ? .bits64 : .bits32
            let a = draw.interval(), b = draw.interval()
            let (taken, notTaken) = IntervalArithmetic.refine(condition, width, a, b)
            for _ in 0..<4 {
                let x = draw.member(of: a), y = draw.member(of: b)
                let edge = Semantics.condition(condition, width, x, y) ? taken : notTaken
                guard let (ea, eb) = edge, Self.contains(ea, x), Self.contains(eb, y) else {
                    Issue.record("\(condition) \(width): (\(x), \(y)) lost from \(a), \(b) → taken \(String(describing: taken)), not \(String(describing: notTaken))")
                    return
                }
            }
        }
    }

    /// Addresses moved by numbers at and past the magnitude the analysis follows: every
    /// bounded result holds the true offset; nothing past the magnitude stays bounded.
    @Test func movedOffsetsHoldTheTrueOffsetOrAreUnbounded() {
        var draw = Draw(rng: SeededRandom(seed: 0xc3))
        let m = Offsets.magnitudeMax
        let starts: [Offsets] = [.exactly(0), .exactly(-512), .exactly(m), .exactly(-m), Offsets(lo: -m, hi: m), Offsets(lo: 0, hi: 4096), .unbounded]
        for _ in 0..<60_000 {
            let start = starts[Int(draw.rng.next() % UInt64(starts.count))]
            let delta = draw.interval()
            let negated = draw.rng.next() % 2 == 0
            let moved = start.moved(by: delta, negated: negated)
            guard moved.isBounded else { continue }
            #expect(moved.lo >= -m && moved.hi <= m)
            for _ in 0..<4 {
                let o = draw.rng.next() % 2 == 0 ? start.lo : start.hi
                let d = Int64(bitPattern: draw.member(of: delta))
                let (truth, overflow) = negated ? o.subtractingReportingOverflow(d) : o.addingReportingOverflow(d)
                if overflow || truth < moved.lo || truth > moved.hi {
                    Issue.record("\(start.rendered) moved by \(negated ? "-" : "+")\(d) is \(truth), outside \(moved.rendered)")
                    return
                }
            }
        }
    }

    @Test func joinsAndWideningKeepUnboundedUnbounded() {
        let bounded = Value.pointer(.stack, Offsets(lo: -Offsets.magnitudeMax, hi: Offsets.magnitudeMax))
        let unbounded = Value.pointer(.stack, .unbounded)
        #expect(bounded.joined(with: unbounded) == unbounded)
        #expect(unbounded.joined(with: bounded) == unbounded)
        let thresholds = Thresholds(constants: [16, 4096])
        #expect(thresholds.widen(bounded, unbounded) == unbounded)
        // Past the magnitude, a range becomes unbounded rather than clamped.
        #expect(!Offsets(lo: 0, hi: Offsets.magnitudeMax + 1).isBounded)
        #expect(Offsets(lo: -Offsets.magnitudeMax, hi: Offsets.magnitudeMax).isBounded)
    }
}

@Suite struct AuditedRuns {
    /// A wrong proof, planted: the verifier's range for the load is narrowed so it no longer
    /// holds the real address, though the address is still inside the context. The old
    /// audit ("inside any region") let this pass; the audit must call it a breach.
    @Test func accessOutsideItsProvedRangeIsABreachEvenInsideItsRegion() throws {
        let text = "ldxb %r6, [%r1]\nmov %r4, %r1\nadd %r4, %r6\nldxb %r0, [%r4]\nexit"
        let honest = try Verifier.verify(try assemble(text), kind: .udfSize)
        var facts = honest.facts
        #expect(facts[3].access == .direct(.context) && facts[3].offsets == Offsets(lo: 0, hi: 255))
        facts[3].offsets = Offsets(lo: 0, hi: 7)
        let planted = VerifiedProgram(kind: honest.kind, program: honest.program, statements: honest.statements, facts: facts)
        var context = [UInt8](repeating: 0, count: Limits.metadataBlockBytes)
        context[0] = 40
        context[40] = 5
        #expect(try Interpreter(planted).run(context: context).result == 5)
        #expect(throws: ExecutionError.verifierBreach(instruction: 3)) {
            try Interpreter(planted).run(context: context, mode: AuditedExecution.self)
        }
        #expect(try Interpreter(honest).run(context: context, mode: AuditedExecution.self).result == 5)
    }
}
