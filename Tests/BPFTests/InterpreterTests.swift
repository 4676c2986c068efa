// The interpreter: RFC 9669 arithmetic at its edges (the conformance suite covers the
// rest), the budget, helpers, program-local calls and their frames, and the memory a run
// is given.

import BPF
import Testing

@Suite struct InterpreterSemantics {
    static let arithmetic: [(String, UInt64)] = [
        ("mov %r0, 7\ndiv %r0, 0", 0),
        ("mov %r0, 7\nmov %r1, 0\ndiv32 %r0, %r1", 0),
        ("mov %r0, 7\nmod %r0, 0", 7),
        ("lddw %r0, 0x100000007\nmod32 %r0, 0", 7),
        ("lddw %r0, 0x100000007\nmod %r0, 0", 0x1_0000_0007),
        ("lddw %r0, 0x8000000000000000\nsdiv %r0, -1", 0x8000_0000_0000_0000),
        ("lddw %r0, 0x8000000000000000\nsmod %r0, -1", 0),
        ("mov32 %r0, 0x80000000\nsdiv32 %r0, -1", 0x8000_0000),
        ("mov %r0, -7\nsdiv %r0, 2", UInt64(bitPattern: -3)),
        ("mov %r0, -7\nsmod %r0, 2", UInt64(bitPattern: -1)),
        ("mov %r0, 7\nsmod %r0, -2", 1),
        ("mov %r0, -7\nsdiv %r0, 0", 0),
        ("mov %r0, -7\nsmod32 %r0, 0", 0xffff_fff9),
        ("mov %r0, 1\nlsh %r0, 65", 2),
        ("mov %r0, 1\nlsh32 %r0, 33", 2),
        ("mov %r0, -16\narsh %r0, 2", UInt64(bitPattern: -4)),
        ("mov %r0, -16\narsh32 %r0, 2", 0xffff_fffc),
        ("mov %r0, -1\nadd32 %r0, 1", 0),
        ("mov32 %r0, -1", 0xffff_ffff),
        ("mov %r0, -1", .max),
        ("lddw %r0, 0x1122334455667788\nle16 %r0", 0x7788),
        ("lddw %r0, 0x1122334455667788\nbe16 %r0", 0x8877),
        ("lddw %r0, 0x1122334455667788\nbswap32 %r0", 0x8877_6655),
        ("mov %r1, 0x80\nmovsx864 %r0, %r1", 0xffff_ffff_ffff_ff80),
        ("mov %r1, 0x80\nmovsx832 %r0, %r1", 0xffff_ff80),
        ("mov %r0, 5\nneg32 %r0", 0xffff_fffb),
    ]

    @Test(arguments: arithmetic.indices)
    func arithmeticAtTheEdges(_ i: Int) throws {
        let (text, expected) = Self.arithmetic[i]
        #expect(try run(text + "\nexit", .udfSize) == expected, "\(text)")
    }

    @Test func runningOutOfBudgetStopsAtTheSamePointEveryTime() throws {
        var kind = ProgramKind.udfSize
        kind.termination = .budget(1_000)
        let forever = try Interpreter(Verifier.verify(assemble("mov %r0, 0\nloop:\nadd %r0, 1\nja loop\nexit"), kind: kind))
        var counts: [Int] = []
        for _ in 0..<3 {
            #expect(throws: ExecutionError.budgetExhausted(budget: 1_000)) { try forever.run(context: [UInt8](repeating: 0, count: 4096)) }
            counts.append(forever.instructionsExecuted)
        }
        // The entry run (mov, add, ja) costs 3, each loop (add, ja) 2: 3 + 2 × 498 = 999.
        #expect(counts == [999, 999, 999])
    }

    @Test func instructionsExecutedCountsEveryInstructionOnce() throws {
        // 2 before the loop, 3 per iteration × 10, and exit.
        let loop = try Interpreter(Verifier.verify(assemble("mov %r0, 0\nlddw %r6, 10\nloop:\nadd %r0, 2\nsub %r6, 1\njne %r6, 0, loop\nexit"), kind: .udfSize))
        #expect(try loop.run(context: [UInt8](repeating: 0, count: 4096)).result == 20)
        #expect(loop.instructionsExecuted == 2 + 3 * 10 + 1)
    }

    @Test func unwindWithZeroEndsTheProgramAtOnce() throws {
        let kind = ProgramKind.conformance(memoryBytes: 0)
        #expect(try run("mov %r1, 0\ncall 5\nmov %r0, 2\nexit", kind) == 0)
        #expect(try run("mov %r1, 9\ncall 5\nexit", kind) == 9)
        // Also from inside a function: the whole program ends.
        #expect(try run("call local f\nmov %r0, 2\nexit\nf:\nmov %r1, 0\ncall 5\nmov %r0, 3\nexit", kind) == 0)
    }

    @Test func callsPreserveR6ToR9AndGiveEachFrameItsOwnStack() throws {
        let text = """
            mov %r6, 6
            mov %r9, 9
            stdw [%r10-8], 100
            mov %r1, 5
            call local f
            ldxdw %r2, [%r10-8]
            add %r0, %r2
            add %r0, %r6
            add %r0, %r9
            exit
            f:
            stdw [%r10-8], 1000
            ldxdw %r0, [%r10-8]
            add %r0, %r1
            mov %r6, 0
            mov %r9, 0
            exit
            """
        #expect(try run(text, .udfSize) == 1005 + 100 + 6 + 9)
    }

    @Test func callsNestToTheLimit() throws {
        #expect(try run(callChain(depth: Limits.callDepthMax), .udfSize) == 0)
    }

    @Test func outputAreaIsZeroedBeforeEveryRun() throws {
        let interpreter = Interpreter(try Verifier.verify(assemble("ldxdw %r4, [%r3+8]\nstdw [%r3+8], 7\nmov %r0, %r4\nexit"), kind: .udfOwns))
        var block = [UInt8](repeating: 0, count: 4096)
        var output = [UInt8](repeating: 0xee, count: ProgramKind.udfOwns.outputBytes)
        for _ in 0..<2 {
            let r0 = try block.withUnsafeMutableBytes { c in try output.withUnsafeMutableBytes { o in try interpreter.run(context: c, output: o) } }
            #expect(r0 == 0)
            #expect(output[8] == 7 && output[0] == 0 && output[16] == 0)
        }
    }

    @Test func memoryOfTheWrongSizeIsRefused() throws {
        let interpreter = Interpreter(try Verifier.verify(assemble("mov %r0, 0\nexit"), kind: .udfOwns))
        #expect(throws: ExecutionError.self) { try interpreter.run(context: [1, 2, 3]) }
        let filter = Interpreter(try Verifier.verify(assemble("mov %r0, 0\nexit"), kind: .packetFilter))
        #expect(throws: ExecutionError.self) { try filter.run(context: [UInt8](repeating: 0, count: Limits.frameBytesMax + 1)) }
        #expect(try filter.run(context: []).result == 0)
    }

    @Test func conformanceKindStartsWithRegistersAndStackZeroed() throws {
        #expect(try run("mov %r0, %r7\nldxdw %r1, [%r10-512]\nadd %r0, %r1\nexit", .conformance(memoryBytes: 0)) == 0)
    }

    @Test func clockHelperReturnsTheTicksTheKernelPassed() throws {
        let predicate = Interpreter(try Verifier.verify(assemble("call 16\nexit"), kind: .wakeupPredicate))
        var window = [UInt8](repeating: 0, count: 4096)
        let r0 = try window.withUnsafeMutableBytes { try predicate.run(context: $0, clockTicks: 1234) }
        #expect(r0 == 1234)
    }
}
