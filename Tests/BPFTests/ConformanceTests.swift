// The public conformance suite, every file, through the same code path `xok bpf plugin`
// uses: program bytes and memory as hex text in, r0 out.

import BPF
import Foundation
import Testing
import XokSimulation
import XokTools

/// ../shared/conformance/bpf beside the package root (where CI puts it).
let conformanceFolder = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("shared/conformance/bpf")

func conformanceCases() throws -> [ConformanceCase] {
    let files = try FileManager.default.contentsOfDirectory(atPath: conformanceFolder.path)
        .filter { $0.hasSuffix(".data") }.sorted()
    return try files.map { file in
        let text = try String(contentsOf: conformanceFolder.appendingPathComponent(file), encoding: .utf8)
        return try ConformanceCase(name: file, text: text)
    }
}

@Suite struct ConformanceSuite {
    @Test func everyConformanceTestPassesThroughThePlugin() throws {
        let cases = try conformanceCases()
        #expect(cases.count >= 313, "expected the whole suite at \(conformanceFolder.path)")
        var failures: [String] = []
        for c in cases {
            let outcome = ConformancePlugin.execute(programHex: Hex.text(c.program.bytes),
                                                    memoryHex: c.memory.isEmpty ? nil : Hex.text(c.memory))
            switch outcome {
            case .success(let r0) where r0 == c.expected: continue
            case .success(let r0): failures.append("\(c.name): got 0x\(String(r0, radix: 16)), expected 0x\(String(c.expected, radix: 16))")
            case .failure(let e): failures.append("\(c.name): \(e)")
            }
        }
        #expect(failures.isEmpty, Comment(rawValue: "\(failures.count) of \(cases.count) failed:\n" + failures.joined(separator: "\n")))
    }
}

@Suite struct PluginInput {
    static let malformed: [(String, String?, String)] = [
        ("zz 00", nil, "not hex bytes at character 0"),
        ("b4 0", nil, "not hex bytes"),
        ("b4 00 00 00 00 00 00", nil, "not a whole number of 8-byte instructions"),
        ("", nil, "no instructions"),
        ("b4 00 00 00 00 00 00 00 95 00 00 00 00 00 00 00", "0g", "not hex bytes at character 1"),
    ]

    @Test(arguments: malformed.indices)
    func malformedInputGetsAClearError(_ i: Int) {
        let (program, memory, message) = Self.malformed[i]
        guard case .failure(let error) = ConformancePlugin.execute(programHex: program, memoryHex: memory) else {
            Issue.record("accepted \(program)")
            return
        }
        #expect(error.message.contains(message), "\(error)")
    }

    @Test func randomBytesAreVerifiedOrRefusedNeverCrash() {
        // Whatever arrives, the verifier answers; accepted programs run to an outcome.
        var rng = SeededRandom(seed: 0xf022)
        var accepted = 0
        for _ in 0..<30_000 {
            let slots = 1 + Int(rng.next() % 12)
            var bytes = (0..<(slots * 8)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            // Real opcodes and small register numbers more often than chance gives them.
            for s in 0..<slots where rng.next() % 2 == 0 {
                bytes[s * 8] = [0x07, 0xb7, 0xbf, 0x61, 0x79, 0x7b, 0x15, 0x55, 0x85, 0x95, 0x18, 0xc3, 0xdb, 0x05][Int(rng.next() % 14)]
                bytes[s * 8 + 1] &= 0x13
                if rng.next() % 2 == 0 { bytes[s * 8 + 2] &= 0x07; bytes[s * 8 + 3] = 0 }
                if rng.next() % 2 == 0 { bytes.replaceSubrange((s * 8 + 5)..<(s * 8 + 8), with: [0, 0, 0]) }
            }
            // Usually a result, then an exit.
            if rng.next() % 4 != 0 { bytes.replaceSubrange(0..<8, with: [0xb7, 0, 0, 0, bytes[4], 0, 0, 0]) }
            if rng.next() % 4 != 0 { bytes += [0x95, 0, 0, 0, 0, 0, 0, 0] }
            if rng.next() % 4 == 0 { bytes.removeLast(Int(rng.next() % 8)) }
            if case .success = ConformancePlugin.execute(bytes: bytes, memory: [UInt8](repeating: 7, count: 16)) { accepted += 1 }
        }
        #expect(accepted > 0)
    }
}
