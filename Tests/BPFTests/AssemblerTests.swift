// The assembler, disassembler and builder: text round trips, labels, and errors that name
// the line.

import BPF
import Testing
import XokTools

@Suite struct AssemblerText {
    @Test func disassemblyOfEveryConformanceProgramReassemblesToTheSameBytes() throws {
        for c in try conformanceCases() {
            let text = try Disassembler.disassemble(c.program)
            #expect(try Assembler.assemble(text) == c.program, "\(c.name)")
        }
    }

    @Test func canonicalTextRoundTrips() throws {
        let text = """
            mov32 %r0, 0
            ldxw %r0, [%r1+4]
            ldxsh %r2, [%r10-2]
            stdw [%r10-8], -1
            stxb [%r1], %r2
            lock fetch add32 [%r10-8], %r1
            lock cmpxchg [%r10-16], %r3
            lddw %r5, 0x1122334455667788
            movsx1664 %r3, %r4
            be32 %r3
            bswap64 %r3
            jsgt32 %r1, -5, +1
            ja32 +0
            call 5
            call local +1
            call %r2
            exit

            """
        #expect(try Disassembler.disassemble(try Assembler.assemble(text)) == text)
    }

    @Test func labelsResolveForwardAndBackward() throws {
        let program = try Assembler.assemble("""
            mov %r0, 0  # comment
            top: add %r0, 1
            jlt %r0, 3, top
            ja done
            mov %r0, 99
            done:
            exit
            """)
        #expect(try Disassembler.disassemble(program) == "mov %r0, 0\nadd %r0, 1\njlt %r0, 3, -2\nja +1\nmov %r0, 99\nexit\n")
    }

    @Test func exitAsATargetMeansTheFirstExitUnlessALabelSaysOtherwise() throws {
        #expect(try Disassembler.disassemble(try Assembler.assemble("jeq %r1, 0, exit\nmov %r0, 1\nexit\nexit"))
                    == "jeq %r1, 0, +1\nmov %r0, 1\nexit\nexit\n")
        #expect(try Disassembler.disassemble(try Assembler.assemble("jeq %r1, 0, exit\nexit\nexit:\nexit"))
                    == "jeq %r1, 0, +1\nexit\nexit\n")
    }

    @Test func numbersInEveryWrittenForm() throws {
        let program = try Assembler.assemble("mov %r0, 0xFF\nmov %r1, -0x10\nmov %r2, 4294967295\nlddw %r3, -1\nexit")
        #expect(try Disassembler.disassemble(program) == "mov %r0, 255\nmov %r1, -16\nmov %r2, -1\nlddw %r3, 0xffffffffffffffff\nexit\n")
    }

    static let errors: [(String, Int, String)] = [
        ("mov %r0, 0\nfrob %r1", 2, "unknown mnemonic 'frob'"),
        ("mov %r11, 0", 1, "'%r11' is not a register"),
        ("mov %r0", 1, "mov takes 2 operands, not 1"),
        ("mov %r0, 0x100000000", 1, "too large"),
        ("mov %r0, -2147483649", 1, "too small"),
        ("mov %r0, 12abc", 1, "not a number"),
        ("ldxw %r0, [%r1+40000]", 1, "too large"),
        ("ldxw %r0, %r1", 1, "not a memory operand"),
        ("jeq %r0, 0, nowhere\nexit", 1, "label 'nowhere' is never defined"),
        ("a:\na:\nexit", 2, "label 'a' is defined twice"),
        ("lock nand [%r10-8], %r1", 1, "unknown atomic operation"),
        ("ja exit", 0, "no exit"),
        ("# only a comment", 0, "no instructions"),
    ]

    @Test(arguments: errors.indices)
    func errorsNameTheLine(_ i: Int) {
        let (text, line, message) = Self.errors[i]
        do {
            _ = try Assembler.assemble(text)
            Issue.record("assembled: \(text)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(message), "\(error)")
        }
    }

    @Test func tooManyLinesAreAnErrorNotACrash() {
        let text = String(repeating: "mov %r0, 0\n", count: Limits.programSlotsMax + 1)
        #expect(throws: AssemblyError.self) { try Assembler.assemble(text) }
    }
}

@Suite struct Builder {
    @Test func buildsWithLabelsAndFunctions() throws {
        var b = ProgramBuilder()
        let square = b.makeLabel(), done = b.makeLabel()
        b.mov(.r1, 7)
        b.call(square)
        b.branch(.eq, .r0, 49, to: done)
        b.mov(.r0, 0)
        b.bind(done)
        b.exit()
        b.bind(square)
        b.mov(.r0, .r1)
        b.alu(.mul, .r0, .r1)
        b.exit()
        let program = try b.build()
        #expect(try run(Disassembler.disassemble(program), .udfSize) == 49)
    }

    @Test func unboundLabelIsAnError() {
        var b = ProgramBuilder()
        let nowhere = b.makeLabel()
        b.jump(to: nowhere)
        #expect(throws: AssemblyError.self) { try b.build() }
    }
}
