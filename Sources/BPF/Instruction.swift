// The eBPF instruction encoding of RFC 9669 §3: raw 64-bit slots, and the program as a
// sequence of them. Decoding into meaning (and every well-formedness rule) is in
// Statement.swift; this file only moves bytes.

/// One 64-bit instruction slot, as RFC 9669 §3 lays it out (little-endian on the wire):
///
///     byte 0    byte 1        bytes 2-3        bytes 4-7
///     +--------+----+----+----------------+--------------------------------+
///     | opcode |src |dst |  offset (s16)  |         immediate (s32)        |
///     +--------+----+----+----------------+--------------------------------+
///               hi4  lo4
///
/// A wide instruction (`lddw`) takes two slots; the second carries the upper 32 bits of
/// its immediate and zeros elsewhere.
public struct Instruction: Hashable, Sendable {
    /// Operation code: class, size or source, and operation.
    public var opcode: UInt8
    /// Destination register number (4 bits).
    public var dst: UInt8
    /// Source register number (4 bits).
    public var src: UInt8
    /// Signed offset: of a memory access, or of a jump.
    public var offset: Int16
    /// Signed 32-bit immediate.
    public var imm: Int32

    /// A slot from its fields (registers must fit 4 bits).
    public init(opcode: UInt8, dst: UInt8 = 0, src: UInt8 = 0, offset: Int16 = 0, imm: Int32 = 0) {
        precondition(dst < 16 && src < 16, "register fields are 4 bits")
        self.opcode = opcode
        self.dst = dst
        self.src = src
        self.offset = offset
        self.imm = imm
    }

    /// The slot read from 8 little-endian bytes.
    public init(slot bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) {
        opcode = bytes.0
        dst = bytes.1 & 0x0f
        src = bytes.1 >> 4
        offset = Int16(bitPattern: UInt16(bytes.2) | UInt16(bytes.3) << 8)
        imm = Int32(bitPattern: UInt32(bytes.4) | UInt32(bytes.5) << 8 | UInt32(bytes.6) << 16 | UInt32(bytes.7) << 24)
    }

    /// The slot as a 64-bit word whose little-endian bytes are the encoding (the form the
    /// conformance suite's `-- raw` sections use).
    public var word: UInt64 {
        UInt64(opcode) | UInt64(src << 4 | dst) << 8 | UInt64(UInt16(bitPattern: offset)) << 16
            | UInt64(UInt32(bitPattern: imm)) << 32
    }

    /// The slot from the 64-bit word `word` returns.
    public init(word: UInt64) {
        self.init(slot: (
            UInt8(truncatingIfNeeded: word), UInt8(truncatingIfNeeded: word >> 8),
            UInt8(truncatingIfNeeded: word >> 16), UInt8(truncatingIfNeeded: word >> 24),
            UInt8(truncatingIfNeeded: word >> 32), UInt8(truncatingIfNeeded: word >> 40),
            UInt8(truncatingIfNeeded: word >> 48), UInt8(truncatingIfNeeded: word >> 56)))
    }

    /// The 8 bytes of the slot, in wire order.
    public func appendBytes(to bytes: inout [UInt8]) {
        let w = word
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: w >> UInt64(shift))) }
    }
}

/// A program: instruction slots, not yet checked for meaning.
public struct Program: Hashable, Sendable {
    /// The slots, in order.
    public var instructions: [Instruction]

    /// A program of these slots.
    public init(_ instructions: [Instruction]) { self.instructions = instructions }

    /// Reads a program from its bytes.
    /// - Throws: `ProgramFormatError` when the length is not a whole number of slots, or
    ///   the program is empty or longer than `Limits.programSlotsMax`.
    public init(bytes: [UInt8]) throws(ProgramFormatError) {
        guard !bytes.isEmpty else { throw .empty }
        guard bytes.count % 8 == 0 else { throw .partialSlot(byteCount: bytes.count) }
        guard bytes.count / 8 <= Limits.programSlotsMax else { throw .tooLong(slots: bytes.count / 8) }
        var instructions: [Instruction] = []
        instructions.reserveCapacity(bytes.count / 8)
        var i = 0
        while i < bytes.count {
            instructions.append(Instruction(slot: (bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3],
                                                   bytes[i + 4], bytes[i + 5], bytes[i + 6], bytes[i + 7])))
            i += 8
        }
        self.instructions = instructions
    }

    /// The program's bytes, 8 per slot.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(instructions.count * 8)
        for instruction in instructions { instruction.appendBytes(to: &out) }
        return out
    }
}

/// Why a byte string is not a program at all.
public enum ProgramFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No instructions.
    case empty
    /// The length is not a multiple of the 8-byte slot.
    case partialSlot(byteCount: Int)
    /// More slots than `Limits.programSlotsMax`.
    case tooLong(slots: Int)
    /// Text that should be hex bytes is not (`position` counts characters from 0).
    case badHex(position: Int)

    public var description: String {
        switch self {
        case .empty: "the program has no instructions"
        case .partialSlot(let n): "the program is \(n) bytes, not a whole number of 8-byte instructions"
        case .tooLong(let n): "the program has \(n) instruction slots; at most \(Limits.programSlotsMax) are allowed"
        case .badHex(let p): "not hex bytes at character \(p)"
        }
    }
}
