// `xok bpf …`: assemble, disassemble, verify and run downloaded code, and the
// bpf_conformance plugin.

import ArgumentParser
import BPF
import Foundation
import XokTools

struct BPFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bpf",
        abstract: "Downloaded code: the eBPF (RFC 9669) verifier and interpreter.",
        subcommands: [Conformance.self, Verify.self, Run.self, Asm.self, Disasm.self, Plugin.self])
}

extension BPFCommand {
    struct Plugin: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The bpf_conformance plugin: program hex on standard input, r0 in hex on standard output.")

        @Argument(help: "The input memory as hex bytes.")
        var memory: String?

        func run() throws {
            let program = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            switch ConformancePlugin.execute(programHex: program, memoryHex: memory) {
            case .success(let r0): print(ConformancePlugin.output(r0))
            case .failure(let error): fail(error.message)
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify a program (an ELF object from clang -target bpf, hex bytes or assembly) for a kind: prints 'accepted' or why it is rejected.")

        @Option(help: "The program kind: udfOwns, udfAcl, udfSize, wakeupPredicate, packetFilter, conformance.")
        var kind: String

        @Option(help: "For the conformance kind: the size of its input memory in bytes.")
        var memoryBytes = 0

        @Option(help: "For an ELF object: the section holding the program (default: its only program).")
        var section: String?

        @Argument(help: "The program file (standard input when absent).")
        var file: String?

        func run() throws {
            do {
                let program = try loadProgram(file, section: section)
                let verified = try Verifier.verify(program, kind: try programKind(named: kind, memoryBytes: memoryBytes))
                let guarded = verified.guardedAccessCount
                print("accepted" + (guarded > 0 ? " (\(guarded) memory access\(guarded == 1 ? "" : "es") checked at run time)" : ""))
            } catch let rejection as VerificationError {
                // The verdict is the command's answer: standard output, and exit status 1.
                print(rejection)
                throw ExitCode(1)
            } catch {
                fail("\(error)")
            }
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify and run a program; prints r0.",
            discussion: "The context is --mem (hex bytes); a fixed-size context is padded with zeros to its size.")

        @Option(help: "The program kind.")
        var kind: String

        @Option(help: "The context as hex bytes.")
        var mem: String?

        @Flag(help: "Check every memory access against the region and range the verifier proved for it; a mismatch is reported as a verifier breach.")
        var audit = false

        @Option(help: "For an ELF object: the section holding the program (default: its only program).")
        var section: String?

        @Argument(help: "The program file (standard input when absent).")
        var file: String?

        func run() throws {
            do {
                var memory = try Hex.bytes(mem ?? "")
                let kind = try programKind(named: kind, memoryBytes: memory.count)
                if case .fixed(let n) = kind.context {
                    guard memory.count <= n else { throw Failure(message: "--mem has \(memory.count) bytes; \(kind.name) takes \(n)") }
                    memory += [UInt8](repeating: 0, count: n - memory.count)
                }
                let verified = try Verifier.verify(try loadProgram(file, section: section), kind: kind)
                let interpreter = Interpreter(verified)
                let outcome = audit ? try interpreter.run(context: memory, mode: AuditedExecution.self) : try interpreter.run(context: memory)
                print("0x" + String(outcome.result, radix: 16))
            } catch {
                fail("\(error)")
            }
        }
    }

    struct Asm: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Assemble a program, or take one out of an ELF object; prints its bytes as hex.")

        @Argument(help: "The assembly file or ELF object (standard input when absent).")
        var file: String?

        @Option(help: "For an ELF object: the section holding the program (default: its only program).")
        var section: String?

        func run() throws {
            do { print(Hex.text(try loadProgram(file, section: section).bytes)) } catch { fail("\(error)") }
        }
    }

    struct Disasm: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disassemble a program given as hex bytes or an ELF object.")

        @Argument(help: "The file of hex bytes or ELF object (standard input when absent).")
        var file: String?

        @Option(help: "For an ELF object: the section holding the program (default: its only program).")
        var section: String?

        func run() throws {
            do {
                let bytes = try readBytes(file)
                let program = ELFObject.isELF(bytes) ? try loadProgram(file, section: section)
                    : try Program(bytes: try Hex.bytes(String(decoding: bytes, as: UTF8.self)))
                print(try Disassembler.disassemble(program), terminator: "")
            } catch let error as Failure {
                fail(error.message)
            } catch {
                fail("error: \(error)")
            }
        }
    }

    struct Conformance: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the eBPF conformance suite through the plugin path; prints each failure and a summary.")

        @Argument(help: "The folder of .data files.")
        var folder = "../shared/conformance/bpf"

        @Flag(help: "Print every test, not only failures.")
        var verbose = false

        func run() throws {
            let files: [String]
            do {
                files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".data") }.sorted()
            } catch {
                fail("cannot read \(folder): \(error.localizedDescription)")
            }
            guard !files.isEmpty else { fail("no .data files in \(folder)") }
            var passed = 0, failed = 0
            for file in files {
                let text = (try? String(contentsOfFile: folder + "/" + file, encoding: .utf8)) ?? ""
                let line: String
                do {
                    let c = try ConformanceCase(name: file, text: text)
                    switch ConformancePlugin.execute(programHex: Hex.text(c.program.bytes), memoryHex: Hex.text(c.memory)) {
                    case .success(let r0) where r0 == c.expected: line = "pass \(file)"; passed += 1
                    case .success(let r0): line = "FAIL \(file): r0 = 0x\(String(r0, radix: 16)), expected 0x\(String(c.expected, radix: 16))"; failed += 1
                    case .failure(let e): line = "FAIL \(file): \(e)"; failed += 1
                    }
                } catch {
                    line = "FAIL \(file): \(error)"; failed += 1
                }
                if verbose || line.hasPrefix("FAIL") { print(line) }
            }
            print("conformance: \(passed) passed, \(failed) failed")
            if failed > 0 { throw ExitCode(1) }
        }
    }
}
