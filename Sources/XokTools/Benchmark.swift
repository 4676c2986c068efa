// `xok bench bpf`: the interpreter's speed in nanoseconds per executed instruction on three
// programs, beside a floor measured in the same run: a bare switch loop over pre-decoded
// instructions with no checks at all (no verifier, no budget, no bounds), which is what
// an interpreter without any safety would cost on this machine.

import BPF

/// The benchmark programs and their measurement.
public enum BPFBenchmark {
    /// One measured program.
    public struct Result: Sendable {
        public var name: String
        public var summary: String
        public var instructions: Int
        public var nsPerInstruction: Double
        /// The unchecked floor on the same program, when it has one.
        public var floorNsPerInstruction: Double?
        /// The target for this program, when it has one.
        public var targetNs: Double?
    }

    /// Loop iterations of programs (a) and (b).
    public static let loopIterations: Int32 = 10_000_000

    /// (a) A counted loop of four ALU instructions per iteration.
    public static func aluLoop(iterations: Int32 = loopIterations) -> Program { countedLoop(iterations, stackRoundTrip: false) }

    /// (b) The loop of (a) with a stack store and load added.
    public static func stackLoop(iterations: Int32 = loopIterations) -> Program { countedLoop(iterations, stackRoundTrip: true) }

    private static func countedLoop(_ iterations: Int32, stackRoundTrip: Bool) -> Program {
        var b = ProgramBuilder()
        let loop = b.makeLabel()
        b.mov(.r0, 0)
        b.mov(.r1, 0)
        b.mov(.r6, .immediate(iterations))
        b.bind(loop)
        b.add(.r0, .r6)
        b.alu(.xor, .r0, 0x5a5a)
        if stackRoundTrip { b.store(.double, to: .r10, offset: -8, .r0) }
        b.add(.r1, 3)
        if stackRoundTrip { b.load(.double, .r0, from: .r10, offset: -8) }
        b.alu(.sub, .r6, 1)
        b.branch(.ne, .r6, 0, to: loop)
        b.exit()
        return try! b.build()
    }

    /// (c) An `owns`-style UDF: scan a 4 KiB block for nonzero 8-byte pointers and report
    /// each as a (block, type 1) entry in the output area.
    public static func pointerScan() -> Program {
        var b = ProgramBuilder()
        let loop = b.makeLabel(), next = b.makeLabel()
        b.mov(.r0, 0)                                // entries written
        b.mov(.r6, 0)                                // byte offset in the block
        b.bind(loop)
        b.mov(.r4, .r1)
        b.add(.r4, .r6)
        b.load(.double, .r5, from: .r4)
        b.branch(.eq, .r5, 0, to: next)
        b.mov(.r7, .r0)
        b.alu(.lsh, .r7, 4)
        b.mov(.r8, .r3)
        b.add(.r8, .r7)
        b.store(.double, to: .r8, offset: 0, .r5)
        b.store(.double, to: .r8, offset: 8, 1)
        b.add(.r0, 1)
        b.bind(next)
        b.add(.r6, 8)
        b.branch(.lt, .r6, .immediate(Int32(Limits.metadataBlockBytes)), to: loop)
        b.exit()
        return try! b.build()
    }

    /// A kind like the conformance kind with a budget large enough for the loops; every
    /// check still runs.
    static let loopKind = ProgramKind(name: "bench", context: .fixed(0), termination: .budget(1 << 40), deterministic: true)

    /// Runs all three, `repeats` times each, and keeps each one's best.
    public static func run(repeats: Int = 5) throws -> [Result] {
        var results: [Result] = []
        for (name, summary, program, target) in [("a", "counted loop, 4 ALU ops per iteration", aluLoop(), 2.0),
                                                 ("b", "loop (a) plus a stack store and load", stackLoop(), 2.4)] {
            let verified = try Verifier.verify(program, kind: loopKind)
            let interpreter = Interpreter(verified)
            var best = Double.infinity, count = 0
            for _ in 0..<repeats {
                let elapsed = try measure { _ = try interpreter.run(context: []) }
                count = interpreter.instructionsExecuted
                best = min(best, elapsed / Double(count))
            }
            let floor = try FloorInterpreter(program)
            var floorBest = Double.infinity
            for _ in 0..<repeats {
                var executed = 0
                let elapsed = try measure { executed = floor.run() }
                precondition(executed == count, "the floor runs the same instructions")
                floorBest = min(floorBest, elapsed / Double(executed))
            }
            results.append(Result(name: name, summary: summary, instructions: count, nsPerInstruction: best,
                                  floorNsPerInstruction: floorBest, targetNs: target))
        }

        // (c): many runs over one block in which every fourth word is a pointer.
        let verified = try Verifier.verify(pointerScan(), kind: .udfOwns)
        let interpreter = Interpreter(verified)
        var block = [UInt8](repeating: 0, count: Limits.metadataBlockBytes)
        for word in stride(from: 0, to: block.count / 8, by: 4) { block[word * 8] = UInt8(truncatingIfNeeded: word | 1) }
        var output = [UInt8](repeating: 0, count: ProgramKind.udfOwns.outputBytes)
        let runs = 2_000
        var best = Double.infinity, perRun = 0
        for _ in 0..<repeats {
            var total = 0
            let elapsed = try measure {
                try block.withUnsafeMutableBytes { c in
                    try output.withUnsafeMutableBytes { o in
                        for _ in 0..<runs {
                            _ = try interpreter.run(context: c, output: o)
                            total += interpreter.instructionsExecuted
                        }
                    }
                }
            }
            perRun = total / runs
            best = min(best, elapsed / Double(total))
        }
        results.append(Result(name: "c", summary: "owns UDF: scan a 4 KiB block for pointers (\(runs) runs)",
                              instructions: perRun, nsPerInstruction: best, floorNsPerInstruction: nil, targetNs: nil))
        return results
    }

    /// Nanoseconds `body` takes.
    static func measure(_ body: () throws -> Void) throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        try body()
        let d = clock.now - start
        return Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9
    }
}

/// The floor: a switch loop over pre-decoded instructions with no checks of any kind.
/// It handles just the operations of benchmark programs (a) and (b).
final class FloorInterpreter {
    private enum Code { case movImm, add, addImm, xorImm, subImm, jneImm, storeStack, loadStack, exit }
    private struct Op { var code: Code; var dst: Int; var src: Int; var imm: UInt64; var target: Int }
    private var ops: [Op] = []

    struct Unsupported: Error {}

    init(_ program: Program) throws {
        var slotToOp: [Int: Int] = [:]
        let statements = try program.statements()
        for (i, entry) in statements.enumerated() { slotToOp[entry.slot] = i }
        for (slot, statement) in statements {
            func target(_ offset: Int16) -> Int { slotToOp[slot + 1 + Int(offset)]! }
            switch statement {
            case .alu(.mov, .bits64, let d, .immediate(let v)): ops.append(Op(code: .movImm, dst: Int(d.rawValue), src: 0, imm: UInt64(bitPattern: Int64(v)), target: 0))
            case .alu(.add, .bits64, let d, .register(let s)): ops.append(Op(code: .add, dst: Int(d.rawValue), src: Int(s.rawValue), imm: 0, target: 0))
            case .alu(.add, .bits64, let d, .immediate(let v)): ops.append(Op(code: .addImm, dst: Int(d.rawValue), src: 0, imm: UInt64(bitPattern: Int64(v)), target: 0))
            case .alu(.xor, .bits64, let d, .immediate(let v)): ops.append(Op(code: .xorImm, dst: Int(d.rawValue), src: 0, imm: UInt64(bitPattern: Int64(v)), target: 0))
            case .alu(.sub, .bits64, let d, .immediate(let v)): ops.append(Op(code: .subImm, dst: Int(d.rawValue), src: 0, imm: UInt64(bitPattern: Int64(v)), target: 0))
            case .branch(.ne, .bits64, let d, .immediate(let v), let offset): ops.append(Op(code: .jneImm, dst: Int(d.rawValue), src: 0, imm: UInt64(bitPattern: Int64(v)), target: target(offset)))
            case .store(.double, .r10, let offset, .register(let s)): ops.append(Op(code: .storeStack, dst: 0, src: Int(s.rawValue), imm: UInt64(Int(offset) + 512), target: 0))
            case .load(.double, let d, .r10, let offset, false): ops.append(Op(code: .loadStack, dst: Int(d.rawValue), src: 0, imm: UInt64(Int(offset) + 512), target: 0))
            case .exit: ops.append(Op(code: .exit, dst: 0, src: 0, imm: 0, target: 0))
            default: throw Unsupported()
            }
        }
    }

    /// Runs to `exit`; returns the number of instructions executed.
    func run() -> Int {
        var r = [UInt64](repeating: 0, count: 11)
        var stack = [UInt8](repeating: 0, count: 512)
        var executed = 0
        return ops.withUnsafeBufferPointer { ops in
            r.withUnsafeMutableBufferPointer { r in
                stack.withUnsafeMutableBytes { stack in
                    var pc = 0
                    while true {
                        let op = ops[pc]
                        executed &+= 1
                        pc &+= 1
                        switch op.code {
                        case .movImm: r[op.dst] = op.imm
                        case .add: r[op.dst] &+= r[op.src]
                        case .addImm: r[op.dst] &+= op.imm
                        case .xorImm: r[op.dst] ^= op.imm
                        case .subImm: r[op.dst] &-= op.imm
                        case .jneImm: if r[op.dst] != op.imm { pc = op.target }
                        case .storeStack: stack.storeBytes(of: r[op.src], toByteOffset: Int(op.imm), as: UInt64.self)
                        case .loadStack: r[op.dst] = stack.load(fromByteOffset: Int(op.imm), as: UInt64.self)
                        case .exit: return executed
                        }
                    }
                }
            }
        }
    }
}
