// The public eBPF conformance suite (bpf_conformance, ../shared/conformance/bpf): its test
// file format, and the plugin protocol its runner drives runtimes through. `xok bpf
// plugin` and the tests share `ConformancePlugin.execute`, so the tests check the very
// path the public runner uses.

import BPF

/// One conformance test file.
public struct ConformanceCase: Sendable {
    public var name: String
    /// The program: from `-- raw` when present, else assembled from `-- asm`.
    public var program: Program
    /// Input memory (`-- mem`), empty when there is none.
    public var memory: [UInt8]
    /// The expected r0 (`-- result`).
    public var expected: UInt64

    public enum ParseError: Error, CustomStringConvertible {
        case missingSection(String)
        case bad(section: String, reason: String)

        public var description: String {
            switch self {
            case .missingSection(let s): "no '-- \(s)' section"
            case .bad(let s, let why): "bad '-- \(s)' section: \(why)"
            }
        }
    }

    /// Parses the text of a `.data` file.
    public init(name: String, text: String) throws(ParseError) {
        self.name = name
        var sections: [String: [Substring]] = [:]
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("-- ") {
                current = String(line.dropFirst(3)).trimmingSpaces
                sections[current!] = []
            } else if let c = current {
                sections[c]!.append(line)
            }
        }
        if let raw = sections["raw"] {
            var instructions: [Instruction] = []
            for line in raw {
                let word = line.trimmingSpaces
                guard !word.isEmpty, !word.hasPrefix("#") else { continue }
                guard let value = UInt64(word.hasPrefix("0x") ? String(word.dropFirst(2)) : word, radix: 16) else {
                    throw .bad(section: "raw", reason: "'\(word)' is not a 64-bit hex word")
                }
                instructions.append(Instruction(word: value))
            }
            program = Program(instructions)
        } else if let asm = sections["asm"] {
            do { program = try Assembler.assemble(asm.joined(separator: "\n")) } catch {
                throw .bad(section: "asm", reason: error.description)
            }
        } else {
            throw .missingSection("asm")
        }
        do { memory = try Hex.bytes((sections["mem"] ?? []).joined(separator: " ")) } catch {
            throw .bad(section: "mem", reason: error.description)
        }
        guard let result = sections["result"]?.map({ $0.trimmingSpaces }).first(where: { !$0.isEmpty }) else {
            throw .missingSection("result")
        }
        guard let value = UInt64(result.hasPrefix("0x") ? String(result.dropFirst(2)) : result, radix: 16) else {
            throw .bad(section: "result", reason: "'\(result)' is not hex")
        }
        expected = value
    }
}

/// The bpf_conformance plugin protocol: program bytes as hex on standard input, input
/// memory as hex in the first argument, r0 in hex on standard output.
public enum ConformancePlugin {
    /// Verifies and runs a program for the conformance kind.
    /// - Returns: r0, or the message the plugin prints on standard error.
    public static func execute(programHex: String, memoryHex: String?) -> Result<UInt64, PluginError> {
        let programBytes: [UInt8], memory: [UInt8]
        do {
            programBytes = try Hex.bytes(programHex)
            memory = try Hex.bytes(memoryHex ?? "")
        } catch {
            return .failure(PluginError(message: "bad input: \(error)"))
        }
        guard memory.count <= Limits.conformanceMemoryBytesMax else {
            return .failure(PluginError(message: "input memory of \(memory.count) bytes is over \(Limits.conformanceMemoryBytesMax)"))
        }
        return execute(bytes: programBytes, memory: memory)
    }

    /// Verifies and runs program bytes on `memory`.
    public static func execute(bytes: [UInt8], memory: [UInt8]) -> Result<UInt64, PluginError> {
        let verified: VerifiedProgram
        do { verified = try Verifier.verify(bytes: bytes, kind: .conformance(memoryBytes: memory.count)) } catch {
            return .failure(PluginError(message: error.description))
        }
        do { return .success(try Interpreter(verified).run(context: memory).result) } catch {
            return .failure(PluginError(message: error.description))
        }
    }

    /// What the plugin prints on success: r0 in lowercase hex without a prefix.
    public static func output(_ r0: UInt64) -> String { String(r0, radix: 16) }
}

public struct PluginError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension StringProtocol {
    var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
