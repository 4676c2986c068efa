// The `xok` command: by default an ExOS shell on a C-FFS disk image (`xok shell`), and
// the project's tools — the downloaded-code engine (`xok bpf …`), XN disks (`xok mkfs`,
// `xok fsck`), seeded simulations (`xok sim`) and benchmarks (`xok bench`).

import ArgumentParser
import BPF
import Foundation
import XokTools

@main
struct Xok: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xok",
        abstract: "The Xok/ExOS exokernel: an ExOS shell on a C-FFS disk image, and the project's tools.",
        subcommands: [ShellCommand.self, DaemonCommand.self, RunCommand.self, ProbeCommand.self, TopCommand.self, BPFCommand.self, Mkfs.self, Fsck.self, Sim.self, Bench.self],
        defaultSubcommand: ShellCommand.self)
}

/// Exits with `code` after printing `message` on standard error.
struct Failure: Error, CustomStringConvertible {
    var message: String
    var code: Int32 = 1
    var description: String { message }
}

extension ParsableCommand {
    /// Prints `message` on standard error and exits with `code`.
    func fail(_ message: String, code: Int32 = 1) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        Foundation.exit(code)
    }
}

/// The bytes of FILE, or standard input when there is no FILE or it is `-`.
func readBytes(_ file: String?) throws -> [UInt8] {
    if let file, file != "-" {
        guard let data = FileManager.default.contents(atPath: file) else { throw Failure(message: "cannot read \(file)") }
        return [UInt8](data)
    }
    return [UInt8](FileHandle.standardInput.readDataToEndOfFile())
}

/// The text of FILE, or standard input when there is no FILE or it is `-`.
func readInput(_ file: String?) throws -> String {
    String(decoding: try readBytes(file), as: UTF8.self)
}

/// A program from text that is either hex bytes or assembly.
func parseProgram(_ text: String) throws -> Program {
    if Hex.isHex(text) {
        do { return try Program(bytes: try Hex.bytes(text)) } catch {
            throw VerificationError(instruction: 0, rule: .format, detail: error.description)
        }
    }
    do { return try Assembler.assemble(text) } catch { throw Failure(message: "error: \(error)") }
}

/// The program in FILE: an ELF object from `clang -target bpf` (its `section`, or its only
/// program), hex bytes, or assembly.
func loadProgram(_ file: String?, section: String?) throws -> Program {
    let bytes = try readBytes(file)
    if ELFObject.isELF(bytes) {
        do { return try ELFObject(bytes: bytes).program(section: section) } catch {
            throw Failure(message: "error: \(file ?? "standard input"): \(error)")
        }
    }
    guard section == nil else { throw Failure(message: "error: --section applies only to ELF objects") }
    return try parseProgram(String(decoding: bytes, as: UTF8.self))
}

func programKind(named name: String, memoryBytes: Int) throws -> ProgramKind {
    guard let kind = ProgramKind.named(name, memoryBytes: memoryBytes) else {
        throw Failure(message: "unknown kind '\(name)'; kinds: " + ProgramKind.all.map(\.name).joined(separator: ", "))
    }
    return kind
}
