// Programs back to text, in the syntax the assembler reads (Assembler.swift), one
// statement per line. Jump targets are printed as relative offsets (`+3`), so the text
// reassembles to the same bytes.

/// Turns programs into text.
public enum Disassembler {
    /// The program as text, one statement per line.
    /// - Throws: `DecodeError` for the first slot that is not a well-formed instruction.
    public static func disassemble(_ program: Program) throws(DecodeError) -> String {
        var lines: [String] = []
        for (_, statement) in try program.statements() { lines.append(statement.text) }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension Statement {
    /// The statement in assembler syntax.
    public var text: String {
        func r(_ register: Register) -> String { "%r\(register.rawValue)" }
        func operand(_ o: Operand) -> String {
            switch o {
            case .register(let x): r(x)
            case .immediate(let v): number(Int64(v))
            }
        }
        func suffix(_ width: Width) -> String { width == .bits32 ? "32" : "" }
        func memory(_ base: Register, _ offset: Int16) -> String {
            offset == 0 ? "[\(r(base))]" : "[\(r(base))\(offset < 0 ? "-" : "+")\(offset.magnitude)]"
        }
        func relative(_ offset: Int32) -> String { offset < 0 ? "\(offset)" : "+\(offset)" }
        func size(_ s: AccessSize) -> String {
            switch s {
            case .byte: "b"
            case .half: "h"
            case .word: "w"
            case .double: "dw"
            }
        }
        switch self {
        case .alu(let operation, let width, let dst, let src):
            return "\(operation.mnemonic)\(suffix(width)) \(r(dst)), \(operand(src))"
        case .negate(let width, let dst):
            return "neg\(suffix(width)) \(r(dst))"
        case .moveSignExtend(let width, let dst, let src, let bits):
            return "movsx\(bits)\(width == .bits64 ? 64 : 32) \(r(dst)), \(r(src))"
        case .byteOrder(let order, let dst, let bits):
            let name = switch order {
            case .toLittle: "le"
            case .toBig: "be"
            case .swap: "bswap"
            }
            return "\(name)\(bits) \(r(dst))"
        case .loadImmediate64(let dst, let value):
            return "lddw \(r(dst)), " + (value < 1 << 16 ? "\(value)" : "0x" + String(value, radix: 16))
        case .load(let s, let dst, let base, let offset, let signExtend):
            return "ldx\(signExtend ? "s" : "")\(size(s)) \(r(dst)), \(memory(base, offset))"
        case .store(let s, let base, let offset, .immediate(let v)):
            return "st\(size(s)) \(memory(base, offset)), \(number(Int64(v)))"
        case .store(let s, let base, let offset, .register(let src)):
            return "stx\(size(s)) \(memory(base, offset)), \(r(src))"
        case .atomic(let operation, let width, let base, let offset, let src):
            let name = switch operation {
            case .add: "add"
            case .or: "or"
            case .and: "and"
            case .xor: "xor"
            case .fetchAdd: "fetch add"
            case .fetchOr: "fetch or"
            case .fetchAnd: "fetch and"
            case .fetchXor: "fetch xor"
            case .exchange: "xchg"
            case .compareExchange: "cmpxchg"
            }
            return "lock \(name)\(suffix(width)) \(memory(base, offset)), \(r(src))"
        case .jump(let offset, let wide):
            return "ja\(wide ? "32" : "") \(relative(offset))"
        case .branch(let condition, let width, let dst, let src, let offset):
            return "j\(condition.mnemonic)\(suffix(width)) \(r(dst)), \(operand(src)), \(relative(Int32(offset)))"
        case .callHelper(let id):
            return "call \(id)"
        case .callLocal(let offset):
            return "call local \(relative(offset))"
        case .callRegister(let x):
            return "call \(r(x))"
        case .exit:
            return "exit"
        }
    }
}

/// Small numbers in decimal, large ones as hex bit patterns (which read back the same).
private func number(_ v: Int64) -> String {
    if v >= -4096 && v <= 65535 { return "\(v)" }
    return "0x" + String(UInt32(truncatingIfNeeded: v), radix: 16)
}
