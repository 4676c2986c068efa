// What an instruction means: the decoded form of RFC 9669 §4-5 that the verifier,
// interpreter, assembler and disassembler share. Decoding is strict: every field the RFC
// leaves unused must be zero, so each accepted statement has exactly one encoding.

/// One of the eleven registers. r10 is the read-only frame pointer.
public enum Register: UInt8, CaseIterable, Hashable, Sendable {
    case r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10
}

/// The width an ALU or jump operates on.
public enum Width: Hashable, Sendable {
    case bits32, bits64
}

/// A register or a 32-bit immediate.
public enum Operand: Hashable, Sendable {
    case register(Register)
    case immediate(Int32)
}

/// The two-operand ALU operations (RFC 9669 §4.1).
public enum AluOperation: UInt8, CaseIterable, Hashable, Sendable {
    case add, sub, mul, div, sdiv, or, and, lsh, rsh, mod, smod, xor, mov, arsh
}

/// Memory access sizes (RFC 9669 §5.1).
public enum AccessSize: UInt8, CaseIterable, Hashable, Sendable {
    case word = 0x00, half = 0x08, byte = 0x10, double = 0x18

    public var bytes: Int {
        switch self {
        case .byte: 1
        case .half: 2
        case .word: 4
        case .double: 8
        }
    }
}

/// Byte-order conversions (RFC 9669 §4.2): to little or big endian (class ALU), or an
/// unconditional swap (class ALU64).
public enum ByteOrder: Hashable, Sendable {
    case toLittle, toBig, swap
}

/// Conditions of conditional jumps (RFC 9669 §4.3). The raw value is the code field.
public enum JumpCondition: UInt8, CaseIterable, Hashable, Sendable {
    case eq = 0x1, gt = 0x2, ge = 0x3, set = 0x4, ne = 0x5, sgt = 0x6, sge = 0x7
    case lt = 0xa, le = 0xb, slt = 0xc, sle = 0xd
}

/// Atomic read-modify-write operations (RFC 9669 §5.3). The raw value is the imm field.
public enum AtomicOperation: Int32, CaseIterable, Hashable, Sendable {
    case add = 0x00, or = 0x40, and = 0x50, xor = 0xa0
    case fetchAdd = 0x01, fetchOr = 0x41, fetchAnd = 0x51, fetchXor = 0xa1
    case exchange = 0xe1, compareExchange = 0xf1

    /// Whether the old memory value is written back to a register.
    public var fetches: Bool { rawValue & 1 != 0 }
}

/// The meaning of one instruction (one slot, or two for `loadImmediate64`).
public enum Statement: Hashable, Sendable {
    /// `dst = dst op src` (for `mov`, `dst = src`).
    case alu(AluOperation, Width, Register, Operand)
    /// `dst = -dst`.
    case negate(Width, Register)
    /// `dst = sign-extend(low fromBits of src)` (MOVSX, RFC 9669 §4.1.1).
    case moveSignExtend(Width, Register, Register, fromBits: UInt8)
    /// Byte-order conversion of the low `bits` of dst (16, 32 or 64).
    case byteOrder(ByteOrder, Register, bits: UInt8)
    /// `dst = imm64` (`lddw`, source 0): two slots.
    case loadImmediate64(Register, UInt64)
    /// `dst = *(size *)(base + offset)`, sign-extended when `signExtend`.
    case load(AccessSize, Register, base: Register, offset: Int16, signExtend: Bool)
    /// `*(size *)(base + offset) = value`.
    case store(AccessSize, base: Register, offset: Int16, value: Operand)
    /// Atomic operation on `*(width *)(base + offset)` with `src`.
    case atomic(AtomicOperation, Width, base: Register, offset: Int16, source: Register)
    /// `pc += offset` (`ja`; `wide` is the JMP32 form whose offset is in the immediate).
    case jump(offset: Int32, wide: Bool)
    /// `if dst cond src { pc += offset }`.
    case branch(JumpCondition, Width, Register, Operand, offset: Int16)
    /// Call of a helper by its static id.
    case callHelper(Int32)
    /// Call of a program-local function at `pc + 1 + offset`.
    case callLocal(offset: Int32)
    /// Call of the helper whose id is in a register (`callx`).
    case callRegister(Register)
    /// Return from the function, or end the program with r0.
    case exit

    /// Slots the statement occupies.
    public var slotCount: Int {
        if case .loadImmediate64 = self { 2 } else { 1 }
    }
}

/// Why a slot does not decode to a statement.
public struct DecodeError: Error, Equatable, Sendable {
    /// Index of the offending slot.
    public var slot: Int
    public var reason: String
}

// MARK: - Opcode fields (RFC 9669 §3)

enum OpcodeClass: UInt8 {
    case ld = 0, ldx = 1, st = 2, stx = 3, alu = 4, jmp = 5, jmp32 = 6, alu64 = 7
}

enum Mode: UInt8 {
    case immediate = 0x00, absolute = 0x20, indirect = 0x40, memory = 0x60, memorySignExtend = 0x80, atomic = 0xc0
}

let sourceRegisterBit: UInt8 = 0x08

extension AluOperation {
    /// The code (upper 4 bits of the opcode) and the offset that selects the signed form.
    var code: (UInt8, Int16) {
        switch self {
        case .add: (0x0, 0)
        case .sub: (0x1, 0)
        case .mul: (0x2, 0)
        case .div: (0x3, 0)
        case .sdiv: (0x3, 1)
        case .or: (0x4, 0)
        case .and: (0x5, 0)
        case .lsh: (0x6, 0)
        case .rsh: (0x7, 0)
        case .mod: (0x9, 0)
        case .smod: (0x9, 1)
        case .xor: (0xa, 0)
        case .mov: (0xb, 0)
        case .arsh: (0xc, 0)
        }
    }
}

extension Statement {
    /// Decodes the statement at `index` of `slots`.
    /// - Throws: `DecodeError` for an unknown opcode, a nonzero unused field, a register
    ///   number above 10, an unsupported form (legacy packet access, map references,
    ///   BTF calls), or a `lddw` without a well-formed second slot.
    public static func decode(_ slots: [Instruction], at index: Int) throws(DecodeError) -> Statement {
        let i = slots[index]
        func fail(_ reason: String) -> DecodeError { DecodeError(slot: index, reason: reason) }
        func register(_ n: UInt8) throws(DecodeError) -> Register {
            guard let r = Register(rawValue: n) else { throw fail("register r\(n) does not exist") }
            return r
        }
        func requireZero(_ field: String, _ value: Int64) throws(DecodeError) {
            guard value == 0 else { throw fail("unused \(field) field is \(value), not 0") }
        }
        let opcode = i.opcode
        let opClass = OpcodeClass(rawValue: opcode & 0x07)!
        let dst = try register(i.dst)
        switch opClass {
        case .alu, .alu64:
            let width: Width = opClass == .alu64 ? .bits64 : .bits32
            let code = opcode >> 4
            let fromRegister = opcode & sourceRegisterBit != 0
            func operand() throws(DecodeError) -> Operand {
                if fromRegister {
                    try requireZero("immediate", Int64(i.imm))
                    return .register(try register(i.src))
                }
                try requireZero("source", Int64(i.src))
                return .immediate(i.imm)
            }
            switch code {
            case 0x8:
                guard !fromRegister else { throw fail("neg takes no source register") }
                try requireZero("source", Int64(i.src)); try requireZero("offset", Int64(i.offset)); try requireZero("immediate", Int64(i.imm))
                return .negate(width, dst)
            case 0xd:
                try requireZero("source", Int64(i.src)); try requireZero("offset", Int64(i.offset))
                guard i.imm == 16 || i.imm == 32 || i.imm == 64 else { throw fail("byte-order width \(i.imm) is not 16, 32 or 64") }
                let order: ByteOrder
                if opClass == .alu64 {
                    guard !fromRegister else { throw fail("bswap has no big-endian form") }
                    order = .swap
                } else {
                    order = fromRegister ? .toBig : .toLittle
                }
                return .byteOrder(order, dst, bits: UInt8(i.imm))
            case 0xb where fromRegister && i.offset != 0:
                try requireZero("immediate", Int64(i.imm))
                let valid: Bool = width == .bits64 ? [8, 16, 32].contains(i.offset) : [8, 16].contains(i.offset)
                guard valid else { throw fail("movsx offset \(i.offset) is not a valid source width") }
                return .moveSignExtend(width, dst, try register(i.src), fromBits: UInt8(i.offset))
            case 0xe, 0xf:
                throw fail("unknown ALU operation 0x\(String(code, radix: 16))")
            default:
                let signed = i.offset == 1 && (code == 0x3 || code == 0x9)
                if !signed { try requireZero("offset", Int64(i.offset)) }
                let operation: AluOperation = switch code {
                case 0x0: .add
                case 0x1: .sub
                case 0x2: .mul
                case 0x3: signed ? .sdiv : .div
                case 0x4: .or
                case 0x5: .and
                case 0x6: .lsh
                case 0x7: .rsh
                case 0x9: signed ? .smod : .mod
                case 0xa: .xor
                case 0xb: .mov
                default: .arsh
                }
                return .alu(operation, width, dst, try operand())
            }
        case .ld:
            guard opcode == 0x18 else {
                let mode = opcode & 0xe0
                if mode == Mode.absolute.rawValue || mode == Mode.indirect.rawValue {
                    throw fail("legacy packet access (opcode 0x\(String(opcode, radix: 16))) is not supported")
                }
                throw fail("unknown load opcode 0x\(String(opcode, radix: 16))")
            }
            guard i.src == 0 else { throw fail("lddw source \(i.src) (a map or address reference) is not supported") }
            try requireZero("offset", Int64(i.offset))
            guard index + 1 < slots.count else { throw fail("lddw is missing its second slot") }
            let next = slots[index + 1]
            guard next.opcode == 0, next.dst == 0, next.src == 0, next.offset == 0 else {
                throw DecodeError(slot: index + 1, reason: "second slot of lddw must be zero except its immediate")
            }
            let value = UInt64(UInt32(bitPattern: i.imm)) | UInt64(UInt32(bitPattern: next.imm)) << 32
            return .loadImmediate64(dst, value)
        case .ldx:
            let mode = opcode & 0xe0
            let size = AccessSize(rawValue: opcode & 0x18)!
            try requireZero("immediate", Int64(i.imm))
            switch mode {
            case Mode.memory.rawValue:
                return .load(size, dst, base: try register(i.src), offset: i.offset, signExtend: false)
            case Mode.memorySignExtend.rawValue where size != .double:
                return .load(size, dst, base: try register(i.src), offset: i.offset, signExtend: true)
            default:
                throw fail("unknown load opcode 0x\(String(opcode, radix: 16))")
            }
        case .st:
            guard opcode & 0xe0 == Mode.memory.rawValue else { throw fail("unknown store opcode 0x\(String(opcode, radix: 16))") }
            try requireZero("source", Int64(i.src))
            return .store(AccessSize(rawValue: opcode & 0x18)!, base: dst, offset: i.offset, value: .immediate(i.imm))
        case .stx:
            let mode = opcode & 0xe0
            let size = AccessSize(rawValue: opcode & 0x18)!
            if mode == Mode.memory.rawValue {
                try requireZero("immediate", Int64(i.imm))
                return .store(size, base: dst, offset: i.offset, value: .register(try register(i.src)))
            }
            guard mode == Mode.atomic.rawValue, size == .word || size == .double else {
                throw fail("unknown store opcode 0x\(String(opcode, radix: 16))")
            }
            guard let operation = AtomicOperation(rawValue: i.imm) else {
                throw fail("unknown atomic operation 0x\(String(UInt32(bitPattern: i.imm), radix: 16))")
            }
            return .atomic(operation, size == .double ? .bits64 : .bits32, base: dst, offset: i.offset, source: try register(i.src))
        case .jmp, .jmp32:
            let code = opcode >> 4
            let fromRegister = opcode & sourceRegisterBit != 0
            switch code {
            case 0x0:
                guard !fromRegister else { throw fail("ja takes no source register") }
                try requireZero("destination", Int64(i.dst)); try requireZero("source", Int64(i.src))
                if opClass == .jmp {
                    try requireZero("immediate", Int64(i.imm))
                    return .jump(offset: Int32(i.offset), wide: false)
                }
                try requireZero("offset", Int64(i.offset))
                return .jump(offset: i.imm, wide: true)
            case 0x8 where opClass == .jmp:
                try requireZero("offset", Int64(i.offset))
                if fromRegister {
                    try requireZero("source", Int64(i.src)); try requireZero("immediate", Int64(i.imm))
                    return .callRegister(dst)
                }
                try requireZero("destination", Int64(i.dst))
                switch i.src {
                case 0: return .callHelper(i.imm)
                case 1: return .callLocal(offset: i.imm)
                default: throw fail("call source \(i.src) (helper by BTF id) is not supported")
                }
            case 0x9 where opClass == .jmp:
                guard !fromRegister else { throw fail("exit takes no source register") }
                try requireZero("destination", Int64(i.dst)); try requireZero("source", Int64(i.src))
                try requireZero("offset", Int64(i.offset)); try requireZero("immediate", Int64(i.imm))
                return .exit
            default:
                guard let condition = JumpCondition(rawValue: code) else {
                    throw fail("unknown jump opcode 0x\(String(opcode, radix: 16))")
                }
                let width: Width = opClass == .jmp ? .bits64 : .bits32
                if fromRegister {
                    try requireZero("immediate", Int64(i.imm))
                    return .branch(condition, width, dst, .register(try register(i.src)), offset: i.offset)
                }
                try requireZero("source", Int64(i.src))
                return .branch(condition, width, dst, .immediate(i.imm), offset: i.offset)
            }
        }
    }

    /// The statement's encoding: one slot, or two for `loadImmediate64`.
    public var encoded: [Instruction] {
        func operandFields(_ operand: Operand) -> (UInt8, UInt8, Int32) {
            switch operand {
            case .register(let r): (sourceRegisterBit, r.rawValue, 0)
            case .immediate(let v): (0, 0, v)
            }
        }
        func aluClass(_ width: Width) -> UInt8 { width == .bits64 ? OpcodeClass.alu64.rawValue : OpcodeClass.alu.rawValue }
        switch self {
        case .alu(let operation, let width, let dst, let operand):
            let (code, offset) = operation.code
            let (sourceBit, src, imm) = operandFields(operand)
            return [Instruction(opcode: code << 4 | sourceBit | aluClass(width), dst: dst.rawValue, src: src, offset: offset, imm: imm)]
        case .negate(let width, let dst):
            return [Instruction(opcode: 0x80 | aluClass(width), dst: dst.rawValue)]
        case .moveSignExtend(let width, let dst, let src, let bits):
            return [Instruction(opcode: 0xb0 | sourceRegisterBit | aluClass(width), dst: dst.rawValue, src: src.rawValue, offset: Int16(bits))]
        case .byteOrder(let order, let dst, let bits):
            let opcode: UInt8 = switch order {
            case .toLittle: 0xd0 | OpcodeClass.alu.rawValue
            case .toBig: 0xd0 | sourceRegisterBit | OpcodeClass.alu.rawValue
            case .swap: 0xd0 | OpcodeClass.alu64.rawValue
            }
            return [Instruction(opcode: opcode, dst: dst.rawValue, imm: Int32(bits))]
        case .loadImmediate64(let dst, let value):
            return [Instruction(opcode: 0x18, dst: dst.rawValue, imm: Int32(bitPattern: UInt32(truncatingIfNeeded: value))),
                    Instruction(opcode: 0, imm: Int32(bitPattern: UInt32(truncatingIfNeeded: value >> 32)))]
        case .load(let size, let dst, let base, let offset, let signExtend):
            let mode = signExtend ? Mode.memorySignExtend : Mode.memory
            return [Instruction(opcode: mode.rawValue | size.rawValue | OpcodeClass.ldx.rawValue, dst: dst.rawValue, src: base.rawValue, offset: offset)]
        case .store(let size, let base, let offset, .immediate(let value)):
            return [Instruction(opcode: Mode.memory.rawValue | size.rawValue | OpcodeClass.st.rawValue, dst: base.rawValue, offset: offset, imm: value)]
        case .store(let size, let base, let offset, .register(let src)):
            return [Instruction(opcode: Mode.memory.rawValue | size.rawValue | OpcodeClass.stx.rawValue, dst: base.rawValue, src: src.rawValue, offset: offset)]
        case .atomic(let operation, let width, let base, let offset, let src):
            let size: AccessSize = width == .bits64 ? .double : .word
            return [Instruction(opcode: Mode.atomic.rawValue | size.rawValue | OpcodeClass.stx.rawValue, dst: base.rawValue, src: src.rawValue, offset: offset, imm: operation.rawValue)]
        case .jump(let offset, let wide):
            if wide { return [Instruction(opcode: OpcodeClass.jmp32.rawValue, imm: offset)] }
            return [Instruction(opcode: OpcodeClass.jmp.rawValue, offset: Int16(truncatingIfNeeded: offset))]
        case .branch(let condition, let width, let dst, let operand, let offset):
            let (sourceBit, src, imm) = operandFields(operand)
            let opClass = width == .bits64 ? OpcodeClass.jmp : OpcodeClass.jmp32
            return [Instruction(opcode: condition.rawValue << 4 | sourceBit | opClass.rawValue, dst: dst.rawValue, src: src, offset: offset, imm: imm)]
        case .callHelper(let id):
            return [Instruction(opcode: 0x85, imm: id)]
        case .callLocal(let offset):
            return [Instruction(opcode: 0x85, src: 1, imm: offset)]
        case .callRegister(let r):
            return [Instruction(opcode: 0x8d, dst: r.rawValue)]
        case .exit:
            return [Instruction(opcode: 0x95)]
        }
    }
}

extension Program {
    /// The program's statements with the slot index each starts at.
    /// - Throws: `DecodeError` for the first slot that is not well formed.
    public func statements() throws(DecodeError) -> [(slot: Int, statement: Statement)] {
        var result: [(slot: Int, statement: Statement)] = []
        var index = 0
        while index < instructions.count {
            let statement = try Statement.decode(instructions, at: index)
            result.append((index, statement))
            index += statement.slotCount
        }
        return result
    }
}
