// The ELF loader on what a compiler writes and on what an attacker writes: calls into
// .text resolved as libbpf does, everything unsupported refused with its reason, and no
// byte string — truncated, mutated or forged — able to trap it.

import BPF
import Foundation
import Testing
import XokSimulation

@Suite struct ELFObjects {
    /// A C file compiled at -O2 into an object's bytes.
    static func object(_ source: String) throws -> [UInt8] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("xok-elf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("p.c")
        try source.write(to: file, atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(at: Corpus.folder.appendingPathComponent("xok_bpf.h"), to: folder.appendingPathComponent("xok_bpf.h"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [ProcessInfo.processInfo.environment["XOK_CLANG"] ?? "clang", "-O2", "-target", "bpf", "-c", file.path,
                             "-o", folder.appendingPathComponent("p.o").path]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0)
        return [UInt8](try Data(contentsOf: folder.appendingPathComponent("p.o")))
    }

    static let withCalls = """
        #include "xok_bpf.h"
        static __attribute__((noinline)) u64 sum4(const u8 *p) { return p[0] + p[1] + p[2] + p[3]; }
        PROGRAM("udf/sizes") u64 sizes(const u8 *b, u64 n) { return sum4(b) + sum4(b + 8) * 2; }
        PROGRAM("udf/other") u64 other(const u8 *b, u64 n) { return sum4(b + 100); }
        static const u8 table[4] = {9, 8, 7, 6};
        PROGRAM("udf/table") u64 lookup(const u8 *b, u64 n) { return table[b[0] & 3]; }
        """

    @Test func callsIntoTextAreResolvedAndRunLikeTheSource() throws {
        let object = try ELFObject(bytes: try Self.object(Self.withCalls))
        #expect(Set(object.programSections) == [".text", "udf/sizes", "udf/other", "udf/table"])
        var block = [UInt8](repeating: 0, count: Limits.metadataBlockBytes)
        block.replaceSubrange(0..<4, with: [1, 2, 3, 4])
        block.replaceSubrange(8..<12, with: [10, 20, 30, 40])
        block.replaceSubrange(100..<104, with: [5, 5, 5, 5])
        let sizes = try Verifier.verify(try object.program(section: "udf/sizes"), kind: .udfSize)
        #expect(try Interpreter(sizes).run(context: block).result == 10 + 2 * 100)
        let other = try Verifier.verify(try object.program(section: "udf/other"), kind: .udfSize)
        #expect(try Interpreter(other).run(context: block).result == 20)
    }

    @Test func unsupportedThingsAreRefusedWithTheReason() throws {
        let object = try ELFObject(bytes: try Self.object(Self.withCalls))
        #expect(throws: ELFError.self) { try object.program() }
        do {
            _ = try object.program(section: "udf/table")
            Issue.record("a load of global data was accepted")
        } catch {
            #expect(error.message.contains("global data and maps are not supported"), "\(error)")
        }
        do {
            _ = try object.program(section: "udf/none")
            Issue.record("a missing section was accepted")
        } catch {
            #expect(error.message.contains("no code section 'udf/none'") && error.message.contains("udf/sizes"), "\(error)")
        }
        #expect(throws: ELFError("not an ELF file")) { try ELFObject(bytes: Array("mov %r0, 0".utf8)) }
        #expect(throws: ELFError("the ELF header is cut short")) { try ELFObject(bytes: [0x7f, 0x45, 0x4c, 0x46, 2, 1]) }
        var otherMachine = try Self.object(Self.withCalls)
        otherMachine[18] = 62
        #expect(throws: ELFError.self) { try ELFObject(bytes: otherMachine) }
    }

    /// A section-name table forged as NOBITS whose extent runs past the end of the file:
    /// its names must be refused, not read out of bounds.
    @Test func stringTableOutsideTheFileIsRefused() throws {
        var bytes = try Self.object(Self.withCalls)
        func field(_ at: Int, _ width: Int) -> Int { (0..<width).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }
        func put(_ value: Int, _ at: Int, _ width: Int) { for i in 0..<width { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) } }
        let header = field(0x28, 8) + 64 * field(0x3e, 2)
        put(8, header + 4, 4)                  // sh_type: NOBITS
        put(bytes.count - 4, header + 24, 8)   // sh_offset: 4 bytes before the end
        put(200, header + 32, 8)               // sh_size: inside the file's size, not from there
        #expect(throws: ELFError("a header points outside the file")) { try ELFObject(bytes: bytes) }
    }

    /// Real objects, cut short at every length and mutated at random (with a bias to the
    /// header fields a forger would aim at): each parses into a program or is refused.
    @Test func mutatedAndTruncatedObjectsAreRefusedNeverTrapped() throws {
        let original = try Self.object(Self.withCalls)
        for length in 0..<original.count { _ = try? ELFObject(bytes: Array(original.prefix(length))).program(section: "udf/sizes") }
        var rng = SeededRandom(seed: 0xe1f)
        let edges: [UInt8] = [0, 1, 0x7f, 0x80, 0xfe, 0xff]
        var parsed = 0
        for _ in 0..<20_000 {
            var bytes = original
            for _ in 0..<(1 + rng.next() % 4) {
                let at = rng.next() % 3 == 0 ? Int(rng.next() % 64) : Int(rng.next() % UInt64(bytes.count))
                bytes[at] = rng.next() % 2 == 0 ? edges[Int(rng.next() % 6)] : UInt8(truncatingIfNeeded: rng.next())
            }
            guard let object = try? ELFObject(bytes: bytes) else { continue }
            parsed += 1
            for section in object.programSections {
                if let program = try? object.program(section: section) { _ = try? Verifier.verify(program, kind: .udfSize) }
            }
        }
        #expect(parsed > 1_000)
    }
}

@Suite struct XokCompiledPrograms {
    @Test func commandsTakeAnELFObjectAndASection() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("xok-cli-\(UUID().uuidString).o")
        try Data(try ELFObjects.object(ELFObjects.withCalls)).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let verify = try xok(["bpf", "verify", "--kind", "udfSize", "--section", "udf/sizes", file.path])
        #expect(verify.status == 0 && verify.output == "accepted\n", "\(verify)")
        let run = try xok(["bpf", "run", "--kind", "udfSize", "--audit", "--section", "udf/sizes", "--mem", "01 02 03 04 00 00 00 00 0a", file.path])
        #expect(run.status == 0 && run.output == "0x1e\n", "\(run)")
        let several = try xok(["bpf", "verify", "--kind", "udfSize", file.path])
        #expect(several.status == 1 && several.error.contains("name one with --section"), "\(several)")
        let disasm = try xok(["bpf", "disasm", "--section", "udf/sizes", file.path])
        #expect(disasm.status == 0 && disasm.output.contains("call local"), "\(disasm)")
    }

    @Test func auditReportsNoBreachOnASoundProgram() throws {
        let run = try xok(["bpf", "run", "--audit", "--kind", "udfSize", "--mem", "05"],
                          input: "ldxb %r6, [%r1]\nmov %r4, %r1\nadd %r4, %r6\nldxb %r0, [%r4]\nexit")
        #expect(run.status == 0 && run.output == "0x0\n", "\(run)")
    }
}
