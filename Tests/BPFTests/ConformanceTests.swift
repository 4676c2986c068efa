// The public conformance suite, every file, through the same code path `xok bpf plugin`
// uses: program bytes and memory as hex text in, r0 out.

import BPF
import Foundation
import Testing
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
