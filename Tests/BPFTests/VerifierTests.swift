// The verifier: at least one rejecting program per rule, each named for the attack, with
// the instruction and the rule checked; and the accepting side of the rules that depend on
// paths (branches that narrow, checks the verifier inserts).

import BPF
import Testing

struct RejectionCase: CustomTestStringConvertible, Sendable {
    var name: String
    var kind: ProgramKind
    var text: String
    var rule: VerificationRule
    var instruction: Int
    var testDescription: String { name }
}

/// A chain of `depth` functions, each calling the next.
func callChain(depth: Int) -> String {
    var text = "mov %r0, 0\n"
    for i in 0..<depth { text += "call local f\(i)\nexit\nf\(i):\n" }
    return text + "mov %r0, 0\nexit\n"
}

@Suite struct VerifierRejects {
    static let cases: [RejectionCase] = [
        .init(name: "jump past the end", kind: .udfSize, text: "mov %r0, 0\nja +5\nexit", rule: .jumpOutOfProgram, instruction: 1),
        .init(name: "jump before the start", kind: .udfSize, text: "mov %r0, 0\nja -3\nexit", rule: .jumpOutOfProgram, instruction: 1),
        .init(name: "jump into the middle of lddw", kind: .udfSize, text: "ja +1\nlddw %r0, 1\nexit", rule: .jumpIntoWideInstruction, instruction: 0),
        .init(name: "call into the middle of lddw", kind: .udfSize, text: "call local +1\nlddw %r0, 1\nexit", rule: .jumpIntoWideInstruction, instruction: 0),
        .init(name: "jump from a function into its caller", kind: .udfSize,
              text: "mov %r0, 0\ncall local f\nexit\nf:\nja -2", rule: .jumpOutOfFunction, instruction: 3),
        .init(name: "program without exit", kind: .udfSize, text: "mov %r0, 0", rule: .fallsOffEnd, instruction: 0),
        .init(name: "branch whose fall-through runs off the end", kind: .packetFilter,
              text: "mov %r0, 0\njeq %r2, 5, +1\nexit\nmov %r0, 1", rule: .fallsOffEnd, instruction: 3),
        .init(name: "function that runs into the next", kind: .udfSize,
              text: "call local f\ncall local g\nexit\nf:\nmov %r0, 1\ng:\nmov %r0, 2\nexit", rule: .fallsOffEnd, instruction: 3),
        .init(name: "read of a register never written", kind: .udfSize, text: "mov %r0, %r5\nexit", rule: .uninitializedRegister, instruction: 0),
        .init(name: "exit without a result", kind: .udfSize, text: "exit", rule: .uninitializedRegister, instruction: 0),
        .init(name: "register written on one path only", kind: .packetFilter,
              text: "jeq %r2, 0, +1\nmov %r0, 1\nexit", rule: .uninitializedRegister, instruction: 2),
        .init(name: "argument registers read after a call", kind: .udfSize,
              text: "mov %r1, 1\ncall local f\nmov %r0, %r1\nexit\nf:\nmov %r0, 0\nexit", rule: .uninitializedRegister, instruction: 2),
        .init(name: "callee reads the caller's r6", kind: .udfSize,
              text: "mov %r6, 1\ncall local f\nexit\nf:\nmov %r0, %r6\nexit", rule: .uninitializedRegister, instruction: 3),
        .init(name: "stack read before any write", kind: .udfSize, text: "ldxdw %r0, [%r10-8]\nexit", rule: .uninitializedStack, instruction: 0),
        .init(name: "stack read wider than the write", kind: .udfSize,
              text: "stw [%r10-8], 1\nldxdw %r0, [%r10-8]\nexit", rule: .uninitializedStack, instruction: 1),
        .init(name: "stack written on one path only", kind: .packetFilter,
              text: "jeq %r2, 0, +1\nstdw [%r10-8], 1\nldxdw %r0, [%r10-8]\nexit", rule: .uninitializedStack, instruction: 2),
        .init(name: "callee reads its fresh stack", kind: .udfSize,
              text: "stdw [%r10-8], 1\ncall local f\nexit\nf:\nldxdw %r0, [%r10-8]\nexit", rule: .uninitializedStack, instruction: 3),
        .init(name: "r10 overwritten", kind: .udfSize, text: "mov %r10, 0\nmov %r0, 0\nexit", rule: .frameRegisterWritten, instruction: 0),
        .init(name: "r10 moved", kind: .udfSize, text: "add %r10, -8\nmov %r0, 0\nexit", rule: .frameRegisterWritten, instruction: 0),
        .init(name: "r10 loaded into", kind: .udfSize, text: "ldxdw %r10, [%r1]\nmov %r0, 0\nexit", rule: .frameRegisterWritten, instruction: 0),
        .init(name: "read past the end of the block", kind: .udfSize, text: "ldxw %r0, [%r1+4093]\nexit", rule: .outOfBounds, instruction: 0),
        .init(name: "read before the block", kind: .udfSize, text: "ldxb %r0, [%r1-1]\nexit", rule: .outOfBounds, instruction: 0),
        .init(name: "write below the stack", kind: .udfSize, text: "stdw [%r10-520], 1\nmov %r0, 0\nexit", rule: .outOfBounds, instruction: 0),
        .init(name: "write above the stack", kind: .udfSize, text: "stw [%r10-2], 1\nmov %r0, 0\nexit", rule: .outOfBounds, instruction: 0),
        .init(name: "write past the output area", kind: .udfOwns, text: "stdw [%r3+8192], 1\nmov %r0, 0\nexit", rule: .outOfBounds, instruction: 0),
        .init(name: "packet read without a length check", kind: .packetFilter, text: "ldxh %r0, [%r1+12]\nexit", rule: .outOfBounds, instruction: 0),
        .init(name: "packet read beyond the checked length", kind: .packetFilter,
              text: "mov %r0, 0\njlt %r2, 14, +2\nldxh %r0, [%r1+13]\nexit\nexit", rule: .outOfBounds, instruction: 2),
        .init(name: "data-dependent offset that can never be in bounds", kind: .udfSize,
              text: "ldxb %r6, [%r1]\nadd %r6, 5000\nmov %r4, %r1\nadd %r4, %r6\nldxb %r0, [%r4]\nexit", rule: .outOfBounds, instruction: 4),
        .init(name: "a number used as an address", kind: .udfSize, text: "mov %r3, 4096\nldxb %r0, [%r3]\nexit", rule: .notAnAddress, instruction: 1),
        .init(name: "loaded data used as an address", kind: .udfSize, text: "ldxdw %r3, [%r1]\nldxb %r0, [%r3]\nexit", rule: .notAnAddress, instruction: 1),
        .init(name: "address of different regions on two paths", kind: .packetFilter,
              text: "mov %r4, %r10\nadd %r4, -8\nstdw [%r10-8], 0\njeq %r2, 0, +1\nmov %r4, %r1\nldxb %r0, [%r4]\nexit",
              rule: .notAnAddress, instruction: 5),
        .init(name: "UDF writes its metadata block", kind: .udfOwns, text: "stb [%r1], 1\nmov %r0, 0\nexit", rule: .readOnlyContext, instruction: 0),
        .init(name: "packet filter rewrites the frame", kind: .packetFilter,
              text: "mov %r0, 0\njlt %r2, 1, +1\nstxb [%r1], %r0\nexit", rule: .readOnlyContext, instruction: 2),
        .init(name: "UDF calls the conformance helper", kind: .udfSize, text: "mov %r1, 1\ncall 5\nexit", rule: .helperNotAllowed, instruction: 1),
        .init(name: "call of a helper that does not exist", kind: .conformance(memoryBytes: 0), text: "call 99\nexit", rule: .helperNotAllowed, instruction: 0),
        .init(name: "UDF reads the clock", kind: .udfAcl, text: "call 16\nexit", rule: .nondeterministic, instruction: 0),
        .init(name: "callx through loaded data", kind: .conformance(memoryBytes: 8),
              text: "ldxdw %r2, [%r1]\ncall %r2\nexit", rule: .unknownCallTarget, instruction: 1),
        .init(name: "callx to a helper id that does not exist", kind: .conformance(memoryBytes: 0),
              text: "mov %r2, 77\ncall %r2\nexit", rule: .unknownCallTarget, instruction: 1),
        .init(name: "loop in a wakeup predicate", kind: .wakeupPredicate, text: "mov %r0, 1\nja -2\nexit", rule: .loopWithoutBudget, instruction: 1),
        .init(name: "function that calls itself", kind: .udfSize,
              text: "call local f\nexit\nf:\ncall local f\nmov %r0, 0\nexit", rule: .recursion, instruction: 2),
        .init(name: "two functions calling each other", kind: .udfSize,
              text: "call local f\nexit\nf:\ncall local g\nexit\ng:\ncall local f\nexit", rule: .recursion, instruction: 4),
        .init(name: "calls nested one level too deep", kind: .udfSize, text: callChain(depth: 8), rule: .callDepth, instruction: 15),
        .init(name: "stack address passed to a function", kind: .udfSize,
              text: "mov %r1, %r10\ncall local f\nexit\nf:\nmov %r0, 0\nexit", rule: .stackAddressPassed, instruction: 1),
        .init(name: "address returned", kind: .udfSize, text: "mov %r0, %r1\nexit", rule: .addressLeak, instruction: 1),
        .init(name: "address stored to half a stack slot", kind: .udfSize, text: "stxw [%r10-8], %r1\nmov %r0, 0\nexit", rule: .addressLeak, instruction: 0),
        .init(name: "address stored across two stack slots", kind: .udfSize, text: "stxdw [%r10-12], %r1\nmov %r0, 0\nexit", rule: .addressLeak, instruction: 0),
        .init(name: "spilled address read in part", kind: .udfSize,
              text: "stxdw [%r10-8], %r1\nldxw %r0, [%r10-4]\nexit", rule: .addressLeak, instruction: 1),
        .init(name: "spilled address partly overwritten, then reloaded whole", kind: .udfSize,
              text: "stxdw [%r10-8], %r1\nstw [%r10-8], 0\nldxdw %r0, [%r10-8]\nexit", rule: .addressLeak, instruction: 2),
        .init(name: "address spilled on one path, a number on the other, reloaded", kind: .packetFilter,
              text: "stdw [%r10-8], 0\njeq %r2, 0, +1\nstxdw [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit", rule: .addressLeak, instruction: 3),
        .init(name: "spilled address changed by an atomic add", kind: .udfSize,
              text: "stxdw [%r10-8], %r1\nmov %r2, 1\nlock add [%r10-8], %r2\nmov %r0, 0\nexit", rule: .addressLeak, instruction: 2),
        .init(name: "spilled address reloaded and returned", kind: .udfSize,
              text: "stxdw [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit", rule: .addressLeak, instruction: 2),
        .init(name: "dead code that falls off the end", kind: .udfSize,
              text: "mov %r0, 0\njeq %r2, 5, +1\nexit\nmov %r0, 1", rule: .fallsOffEnd, instruction: 3),
        .init(name: "call as the last instruction", kind: .udfSize,
              text: "mov %r0, 0\ncall local f\nexit\nf:\nmov %r0, 1\nexit\ncall local f", rule: .fallsOffEnd, instruction: 5),
        .init(name: "call that returns into the next function", kind: .udfSize,
              text: "mov %r0, 0\ncall local f\nexit\nf:\nmov %r0, 1\ncall local g\ng:\nexit", rule: .fallsOffEnd, instruction: 4),
        .init(name: "lddw as the last instruction", kind: .udfSize, text: "lddw %r0, 1", rule: .fallsOffEnd, instruction: 0),
        .init(name: "predicate that calls one function from many places", kind: .wakeupPredicate,
              text: "mov %r0, 0\n" + String(repeating: "call local f\n", count: 300) + "exit\nf:\n" + String(repeating: "mov %r1, 1\n", count: 20) + "exit",
              rule: .pathTooLong, instruction: 0),
        .init(name: "address stored to the output area", kind: .udfOwns, text: "stxdw [%r3], %r10\nmov %r0, 0\nexit", rule: .addressLeak, instruction: 0),
        .init(name: "address compared with a number", kind: .udfSize, text: "mov %r0, 0\njgt %r1, 0x10000, +0\nexit", rule: .addressLeak, instruction: 1),
        .init(name: "low half of an address kept", kind: .udfSize, text: "mov32 %r0, %r1\nexit", rule: .addressLeak, instruction: 0),
        .init(name: "address passed to a helper", kind: .conformance(memoryBytes: 8), text: "call 5\nexit", rule: .addressLeak, instruction: 0),
        .init(name: "address exchanged into memory", kind: .udfOwns, text: "lock xchg [%r3], %r1\nmov %r0, 0\nexit", rule: .addressLeak, instruction: 0),
        .init(name: "address multiplied", kind: .udfSize, text: "mul %r1, 2\nmov %r0, 0\nexit", rule: .addressArithmetic, instruction: 0),
        .init(name: "two addresses added", kind: .udfSize, text: "add %r1, %r10\nmov %r0, 0\nexit", rule: .addressArithmetic, instruction: 0),
        .init(name: "addresses of two regions subtracted", kind: .udfSize, text: "sub %r1, %r10\nmov %r0, 0\nexit", rule: .addressArithmetic, instruction: 0),
        .init(name: "32-bit add to an address", kind: .udfSize, text: "add32 %r1, 8\nmov %r0, 0\nexit", rule: .addressArithmetic, instruction: 0),
        .init(name: "address negated", kind: .udfSize, text: "neg %r1\nmov %r0, 0\nexit", rule: .addressLeak, instruction: 0),
    ]

    @Test(arguments: cases)
    func rejects(_ c: RejectionCase) throws {
        let error = try #require(try rejection(c.text, c.kind), "accepted: \(c.name)")
        #expect(error.rule == c.rule, "\(error)")
        #expect(error.instruction == c.instruction, "\(error)")
        #expect(error.description.hasPrefix("rejected at instruction \(c.instruction): \(c.rule.summary)"))
    }

    @Test func everyRuleHasARejectingCase() {
        let covered = Set(Self.cases.map(\.rule)).union([.format, .malformed, .tooComplex])
        #expect(covered == Set(VerificationRule.allCases))
    }

    @Test func rejectionShowsTheRegistersOnTheFailingPath() throws {
        let error = try #require(try rejection("mov %r6, 7\nldxb %r7, [%r1]\nldxw %r0, [%r1+4093]\nexit", .udfSize))
        #expect(error.registers == "r1=context+0 r2=4096 r6=7 r7=[0, 255] r10=stack+0")
        #expect(error.description == "rejected at instruction 2: memory access out of bounds: 4 bytes at context+4093 is outside its 4096 bytes [r1=context+0 r2=4096 r6=7 r7=[0, 255] r10=stack+0]")
    }

    @Test func programTooComplexToAnalyseIsRefused() {
        // Seven levels of functions, each calling the next from 40 places: analysing every
        // call site in context would take 40^7 steps.
        var text = "mov %r0, 0\n"
        for level in 0..<7 {
            text += String(repeating: "call local f\(level)\n", count: 40) + "exit\nf\(level):\nmov %r0, 0\n"
        }
        text += "exit\n"
        #expect(rejection(try! assemble(text), .udfSize)?.rule == .tooComplex)
    }
}

@Suite struct VerifierAccepts {
    @Test func branchThatCannotBeTakenNeedNotLeadAnywhereUseful() throws {
        // r2 is the block size, 4096, so the jump is never taken: its target may exit at once.
        #expect(try rejection("mov %r0, 0\njeq %r2, 5, +1\nexit\nexit", .udfSize) == nil)
    }

    @Test func predicateAtItsBoundIsAccepted() throws {
        // 15 + 204 calls × (call + 18 + exit) + exit = 4096 instructions on the one path.
        func predicate(prefix: Int) -> String {
            String(repeating: "mov %r0, 0\n", count: prefix) + String(repeating: "call local f\n", count: 204)
                + "exit\nf:\n" + String(repeating: "mov %r0, 1\n", count: 18) + "exit"
        }
        #expect(try rejection(predicate(prefix: 15), .wakeupPredicate) == nil)
        let oneMore = predicate(prefix: 16)
        #expect(try rejection(oneMore, .wakeupPredicate)?.rule == .pathTooLong)
    }

    @Test func spilledValuesComeBackIntact() throws {
        // An address, a constant and a checked length survive a trip through the stack:
        // the reload of r1 is still the context, and the length check still proves r1+12.
        let text = """
            stxdw [%r10-8], %r1
            stdw [%r10-16], 12
            stxdw [%r10-24], %r2
            mov %r1, 0
            mov %r2, 0
            ldxdw %r3, [%r10-24]
            mov %r0, 0
            jlt %r3, 14, +5
            ldxdw %r1, [%r10-8]
            ldxdw %r4, [%r10-16]
            add %r1, %r4
            ldxh %r0, [%r1]
            exit
            exit
            """
        let verified = try Verifier.verify(try assemble(text), kind: .packetFilter)
        #expect(verified.guardedAccessCount == 0)
        #expect(try Interpreter(verified).run(context: [UInt8](repeating: 0, count: 12) + [0x08, 0x00]).result == 8)
    }

    @Test func thirtyTwoBitCopyOfTheLengthStillBoundsThePacket() throws {
        // What clang emits for `u32 len; if (len < 14) return 0;`: w3 = w2; if w3 < 14.
        let text = "mov %r0, 0\nmov32 %r3, %r2\njlt32 %r3, 14, +1\nldxh %r0, [%r1+12]\nexit"
        #expect(try Verifier.verify(try assemble(text), kind: .packetFilter).guardedAccessCount == 0)
    }

    @Test func lengthCheckProvesPacketReads() throws {
        let filter = "mov %r0, 0\njlt %r2, 14, +3\nldxh %r0, [%r1+12]\nbe16 %r0\nexit\nexit"
        let verified = try Verifier.verify(try assemble(filter), kind: .packetFilter)
        #expect(verified.guardedAccessCount == 0)
        let interpreter = Interpreter(verified)
        #expect(try interpreter.run(context: [UInt8](repeating: 0, count: 12) + [0x08, 0x00]).result == 0x0800)
        #expect(try interpreter.run(context: [UInt8](repeating: 0xff, count: 13)).result == 0)
    }

    @Test func dataDependentOffsetGetsARunTimeCheck() throws {
        // r6 is a byte of the block, so [r1 + r6 + 4090] may or may not be inside it.
        let text = "ldxb %r6, [%r1]\nmov %r4, %r1\nadd %r4, %r6\nldxb %r0, [%r4+4090]\nexit"
        let verified = try Verifier.verify(try assemble(text), kind: .udfSize)
        #expect(verified.guardedAccessCount == 1)
        let interpreter = Interpreter(verified)
        var block = [UInt8](repeating: 0, count: 4096)
        block[0] = 5
        block[4095] = 0x77
        #expect(try interpreter.run(context: block).result == 0x77)
        block[0] = 6
        #expect(throws: ExecutionError.outOfBounds(instruction: 3)) { try interpreter.run(context: block) }
    }

    @Test func boundedLoopOverTheBlockIsAcceptedUnderTheBudget() throws {
        let sum = """
            mov %r0, 0
            mov %r6, 0
            loop:
            mov %r4, %r1
            add %r4, %r6
            ldxdw %r5, [%r4]
            add %r0, %r5
            add %r6, 8
            jlt %r6, 4096, loop
            exit
            """
        var block = [UInt8](repeating: 0, count: 4096)
        for i in stride(from: 0, to: 4096, by: 8) { block[i] = 1 }
        #expect(try run(sum, .udfSize, context: block) == 512)
    }

    @Test func stackWrittenOnEveryPathMayBeRead() throws {
        let text = "jeq %r2, 0, +2\nstdw [%r10-8], 1\nja +1\nstdw [%r10-8], 2\nldxdw %r0, [%r10-8]\nexit"
        #expect(try run(text, .packetFilter, context: [1]) == 1)
        #expect(try run(text, .packetFilter, context: []) == 2)
    }

    @Test func lengthOnOnePathAndANumberOnTheOtherIsANumber() throws {
        let text = "mov %r6, %r2\njgt %r2, 100, +1\nmov %r6, 7\nmov %r0, %r6\nexit"
        #expect(try run(text, .packetFilter, context: [UInt8](repeating: 0, count: 50)) == 7)
        #expect(try run(text, .packetFilter, context: [UInt8](repeating: 0, count: 150)) == 150)
    }

    @Test func differenceOfTwoAddressesInOneRegionIsANumber() throws {
        #expect(try run("mov %r4, %r1\nadd %r4, 40\nsub %r4, %r1\nmov %r0, %r4\nexit", .udfSize) == 40)
    }
}

@Suite struct VerifierCongruence {
    @Test func loopSteppingByAFixedAmountIsProvedInBounds() throws {
        // r6 = 16, 96, …, 4016: the last 8-byte read at r6 + 72 ends exactly at 4096.
        let text = "mov %r0, 0\nmov %r6, 16\nloop:\nmov %r4, %r1\nadd %r4, %r6\nldxdw %r5, [%r4+72]\nadd %r0, %r5\nadd %r6, 80\njlt %r6, 4096, loop\nexit"
        let verified = try Verifier.verify(try assemble(text), kind: .udfSize)
        #expect(verified.guardedAccessCount == 0)
        // One byte further and it needs a check (the last turn would read past the end).
        let further = text.replacingOccurrences(of: "[%r4+72]", with: "[%r4+73]")
        #expect(try Verifier.verify(try assemble(further), kind: .udfSize).guardedAccessCount == 1)
    }
}
