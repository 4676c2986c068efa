// The `xok` executable end to end: the plugin protocol exactly as the public runner uses
// it, and the verify command's verdicts and exit codes.

import Foundation
import Testing

/// The `xok` built beside the tests.
func xokExecutable() throws -> URL {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let candidates = [Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("xok"),
                      Bundle.main.bundleURL.appendingPathComponent("xok"),
                      root.appendingPathComponent(".build/debug/xok")]
    return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) },
                        "xok is not built next to the tests (looked in \(candidates.map(\.path)))")
}

/// Runs xok with `arguments` and `input`; returns exit status, standard output and error.
func xok(_ arguments: [String], input: String = "") throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = try xokExecutable()
    process.arguments = arguments
    let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try stdin.fileHandleForWriting.close()
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    let error = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
}

@Suite struct XokExecutable {
    @Test func pluginSpeaksTheConformanceProtocol() throws {
        // ldxw %r0, [%r1+4]; exit — on memory 00 00 00 00 2a 00 00 00.
        let program = "61 10 04 00 00 00 00 00 95 00 00 00 00 00 00 00"
        let run = try xok(["bpf", "plugin", "00 00 00 00 2a 00 00 00"], input: program + "\n")
        #expect(run.status == 0)
        #expect(run.output == "2a\n")
        let bad = try xok(["bpf", "plugin"], input: "61 10 04\n")
        #expect(bad.status != 0)
        #expect(bad.output.isEmpty)
        #expect(bad.error.contains("not a whole number of 8-byte instructions"))
    }

    @Test func verifyPrintsTheVerdict() throws {
        let accepted = try xok(["bpf", "verify", "--kind", "udfSize"], input: "ldxdw %r0, [%r1+4088]\nexit\n")
        #expect(accepted.status == 0)
        #expect(accepted.output == "accepted\n")
        let rejected = try xok(["bpf", "verify", "--kind", "udfSize"], input: "ldxdw %r0, [%r1+4089]\nexit\n")
        #expect(rejected.status == 1)
        #expect(rejected.output.hasPrefix("rejected at instruction 0: memory access out of bounds"))
        let hex = try xok(["bpf", "verify", "--kind", "packetFilter"], input: "79 10 00 00 00 00 00 00 95 00 00 00 00 00 00 00")
        #expect(hex.status == 1)
        #expect(hex.output.hasPrefix("rejected at instruction 0:"))
    }

    @Test func asmDisasmAndRunAgree() throws {
        let bytes = try xok(["bpf", "asm"], input: "mov %r0, 6\nmul %r0, 7\nexit\n")
        #expect(bytes.status == 0)
        let text = try xok(["bpf", "disasm"], input: bytes.output)
        #expect(text.output == "mov %r0, 6\nmul %r0, 7\nexit\n")
        let run = try xok(["bpf", "run", "--kind", "udfSize"], input: bytes.output)
        #expect(run.output == "0x2a\n")
        let unknown = try xok(["bpf", "run", "--kind", "nonsense"], input: bytes.output)
        #expect(unknown.status != 0 && unknown.error.contains("unknown kind"))
    }
}
