// The outside review's five findings against the verifier, each as the program that showed
// it: every one of these was accepted, trapped, or ran unchecked before the fix.

import BPF
import Testing

@Suite struct ReviewFindings {
    /// Finding 1: two addresses in one region, one moved by a number too large to follow.
    /// The difference used to get a false bound ([0, 2] after `rsh 40`), the final load was
    /// "proved" in bounds and read the heap 32 × 2^40 bytes from the stack.
    static let clampedDifference = """
        lddw %r3, 0xffffff0000000000
        mov %r4, %r10
        add %r4, %r3
        lddw %r5, 0x00001f0000000000
        mov %r6, %r10
        add %r6, %r5
        sub %r6, %r4
        rsh %r6, 40
        stdw [%r10-16], 0
        stdw [%r10-8], 0
        mov %r7, %r10
        add %r7, -16
        add %r7, %r6
        ldxdw %r0, [%r7]
        exit
        """

    @Test func differenceOfAnUnboundedAddressHasNoFalseBound() throws {
        let verified = try Verifier.verify(try assemble(Self.clampedDifference), kind: .udfSize)
        #expect(verified.guardedAccessCount == 1, "the final load cannot be proved and must be checked")
        let interpreter = Interpreter(verified)
        let context = [UInt8](repeating: 0, count: Limits.metadataBlockBytes)
        #expect(throws: ExecutionError.outOfBounds(instruction: 15)) { try interpreter.run(context: context) }
        #expect(throws: ExecutionError.outOfBounds(instruction: 15)) { try interpreter.run(context: context, mode: AuditedExecution.self) }
    }

    @Test func branchOnSuchADifferenceIsNotTreatedAsDead() throws {
        // The difference is really 32; the old bound [0, 2] made the taken edge dead and
        // compiled it to a trap.
        let text = Self.clampedDifference.split(separator: "\n").prefix(8).joined(separator: "\n")
            + "\nmov %r0, 0\njgt %r6, 2, +1\nexit\nmov %r0, %r6\nexit"
        let result = try Interpreter(try Verifier.verify(try assemble(text), kind: .udfSize))
            .run(context: [UInt8](repeating: 0, count: Limits.metadataBlockBytes), mode: AuditedExecution.self)
        #expect(result.result == 32)
    }

    /// Finding 2: a conditional branch as the program's last instruction crashed the
    /// verifier (index out of range) instead of being refused.
    @Test func branchAsTheLastInstructionIsRefused() throws {
        let error = try #require(try rejection("mov %r0, 0\njne %r0, 0, -2", .udfSize))
        #expect(error.rule == .fallsOffEnd && error.instruction == 1, "\(error)")
    }

    /// Finding 3, first form: a branch at the end of one function fell into the next, and
    /// the program was accepted. `g` is a function through a call on a path no value takes,
    /// so its `exit` is reached only by falling out of `f`.
    @Test func branchFallingIntoTheNextFunctionIsRefused() throws {
        let text = "mov %r0, 0\njne %r0, 0, +2\ncall local f\nexit\ncall local g\nexit\nf:\nmov %r0, 1\njne %r0, 1, -2\ng:\nexit"
        let error = try #require(try rejection(text, .udfSize))
        #expect(error.rule == .fallsOffEnd && error.instruction == 7, "\(error)")
    }

    /// Finding 3, second form: functions A1…A9 each fall through into B_i, which calls
    /// A_(i+1). The call graph saw no chain at all, the analysis nested nine deep and hit a
    /// precondition. The B_i are made functions by calls on a path no value takes.
    @Test func fallThroughChainOfCallsIsRefusedNotTrapped() throws {
        var text = "mov %r0, 0\njne %r0, 0, +2\ncall local a1\nexit\n"
        for i in 1...9 { text += "call local b\(i)\n" }
        text += "exit\n"
        for i in 1...9 {
            text += "a\(i):\nmov %r0, 0\njne %r0, 0, -2\nb\(i):\n"
            text += i < 9 ? "call local a\(i + 1)\nexit\n" : "exit\n"
        }
        let error = try #require(try rejection(text, .udfSize))
        #expect(error.rule == .fallsOffEnd, "\(error)")
    }

    /// Finding 4: the audited mode accepted a proved access anywhere in any region. The
    /// breach it now catches needs a wrong proof, planted in `AuditedRuns` (which reaches
    /// the verifier's facts); here, the other side: on a sound program with a data-dependent
    /// proved access, the stricter audit stays silent.
    @Test func auditIsSilentOnASoundProgramWithADataDependentAccess() throws {
        let sound = "ldxb %r6, [%r1]\nand %r6, 7\nmov %r4, %r1\nadd %r4, %r6\nldxb %r0, [%r4+100]\nexit"
        let verified = try Verifier.verify(try assemble(sound), kind: .udfSize)
        #expect(verified.guardedAccessCount == 0)
        var context = [UInt8](repeating: 0, count: Limits.metadataBlockBytes)
        context[0] = 0xff
        context[107] = 9
        #expect(try Interpreter(verified).run(context: context, mode: AuditedExecution.self).result == 9)
    }

    /// Finding 5: a loop-free predicate calling one function from 900 places passed and ran
    /// about 900,000 instructions on every evaluation.
    @Test func predicateWithoutABoundOnItsWorkIsRefused() throws {
        let text = "mov %r0, 0\n" + String(repeating: "call local f\n", count: 900) + "exit\nf:\n"
            + String(repeating: "mov %r1, 1\n", count: 999) + "exit"
        let error = try #require(try rejection(text, .wakeupPredicate))
        #expect(error.rule == .pathTooLong, "\(error)")
        // Every kind now states a bound on what one run executes.
        for kind in ProgramKind.all { #expect(kind.termination.instructionsMax <= Limits.conformanceBudget) }
    }
}
