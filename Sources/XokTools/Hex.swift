// Hex text, as the conformance plugin protocol and the CLI exchange programs and memory:
// two hex digits a byte, separated by white space or not ("b4 00 00 00" or "b4000000").

import BPF

public enum Hex {
    /// The bytes `text` spells.
    /// - Throws: `ProgramFormatError.badHex` at the first character that is not a hex digit
    ///   or white space, or when a byte has only one digit.
    public static func bytes(_ text: String) throws(ProgramFormatError) -> [UInt8] {
        var bytes: [UInt8] = []
        var high: UInt8?
        var position = 0
        for c in text.utf8 {
            defer { position += 1 }
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                guard high == nil else { throw .badHex(position: position) }
                continue
            default: throw .badHex(position: position)
            }
            if let h = high {
                bytes.append(h << 4 | digit)
                high = nil
            } else {
                high = digit
            }
        }
        guard high == nil else { throw .badHex(position: position) }
        return bytes
    }

    /// Whether `text` is hex bytes (and not, say, assembly).
    public static func isHex(_ text: String) -> Bool {
        (try? bytes(text)) != nil && text.utf8.contains { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") }
    }

    /// `bytes` as the plugin protocol writes them: two digits and a space each.
    public static func text(_ bytes: [UInt8]) -> String {
        var out = ""
        out.reserveCapacity(bytes.count * 3)
        for b in bytes {
            let s = String(b, radix: 16)
            out += (s.count == 1 ? "0" + s : s) + " "
        }
        return String(out.dropLast())
    }
}
