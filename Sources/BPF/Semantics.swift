// The arithmetic of RFC 9669 §4, once: the interpreter executes these and the verifier
// folds constants with them, so the two can never disagree about a result.
// Division and modulo by zero do not trap (§4.1): x / 0 = 0, x % 0 = x.

enum Semantics {
    @inline(__always) static func alu64(_ operation: AluOperation, _ a: UInt64, _ b: UInt64) -> UInt64 {
        switch operation {
        case .add: a &+ b
        case .sub: a &- b
        case .mul: a &* b
        case .div: b == 0 ? 0 : a / b
        case .sdiv: sdiv64(a, b)
        case .or: a | b
        case .and: a & b
        case .lsh: a << (b & 63)
        case .rsh: a >> (b & 63)
        case .mod: b == 0 ? a : a % b
        case .smod: smod64(a, b)
        case .xor: a ^ b
        case .mov: b
        case .arsh: UInt64(bitPattern: Int64(bitPattern: a) >> Int64(b & 63))
        }
    }

    /// A 32-bit operation on the low halves; the result is zero-extended.
    @inline(__always) static func alu32(_ operation: AluOperation, _ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = UInt32(truncatingIfNeeded: a), y = UInt32(truncatingIfNeeded: b)
        let r: UInt32 = switch operation {
        case .add: x &+ y
        case .sub: x &- y
        case .mul: x &* y
        case .div: y == 0 ? 0 : x / y
        case .sdiv: sdiv32(x, y)
        case .or: x | y
        case .and: x & y
        case .lsh: x << (y & 31)
        case .rsh: x >> (y & 31)
        case .mod: y == 0 ? x : x % y
        case .smod: smod32(x, y)
        case .xor: x ^ y
        case .mov: y
        case .arsh: UInt32(bitPattern: Int32(bitPattern: x) >> Int32(y & 31))
        }
        return UInt64(r)
    }

    /// Signed division truncating toward zero; INT64_MIN / -1 wraps to INT64_MIN.
    @inline(__always) static func sdiv64(_ a: UInt64, _ b: UInt64) -> UInt64 {
        if b == 0 { return 0 }
        let x = Int64(bitPattern: a), y = Int64(bitPattern: b)
        return UInt64(bitPattern: x.dividedReportingOverflow(by: y).partialValue)
    }

    /// Signed remainder with the dividend's sign; x % 0 = x, INT64_MIN % -1 = 0.
    @inline(__always) static func smod64(_ a: UInt64, _ b: UInt64) -> UInt64 {
        if b == 0 { return a }
        let x = Int64(bitPattern: a), y = Int64(bitPattern: b)
        return UInt64(bitPattern: x.remainderReportingOverflow(dividingBy: y).partialValue)
    }

    @inline(__always) static func sdiv32(_ a: UInt32, _ b: UInt32) -> UInt32 {
        if b == 0 { return 0 }
        return UInt32(bitPattern: Int32(bitPattern: a).dividedReportingOverflow(by: Int32(bitPattern: b)).partialValue)
    }

    @inline(__always) static func smod32(_ a: UInt32, _ b: UInt32) -> UInt32 {
        if b == 0 { return a }
        return UInt32(bitPattern: Int32(bitPattern: a).remainderReportingOverflow(dividingBy: Int32(bitPattern: b)).partialValue)
    }

    @inline(__always) static func negate(_ width: Width, _ a: UInt64) -> UInt64 {
        width == .bits64 ? 0 &- a : UInt64(0 &- UInt32(truncatingIfNeeded: a))
    }

    /// MOVSX: sign-extend the low `bits` of `a`; a 32-bit result is then zero-extended.
    @inline(__always) static func signExtend(_ width: Width, _ a: UInt64, fromBits bits: UInt8) -> UInt64 {
        let extended: Int64 = switch bits {
        case 8: Int64(Int8(truncatingIfNeeded: a))
        case 16: Int64(Int16(truncatingIfNeeded: a))
        default: Int64(Int32(truncatingIfNeeded: a))
        }
        return width == .bits64 ? UInt64(bitPattern: extended) : UInt64(UInt32(truncatingIfNeeded: extended))
    }

    /// Byte-order conversion on a little-endian machine: `toLittle` truncates, the others swap.
    @inline(__always) static func byteOrder(_ order: ByteOrder, _ a: UInt64, bits: UInt8) -> UInt64 {
        switch (order, bits) {
        case (.toLittle, 16): UInt64(UInt16(truncatingIfNeeded: a))
        case (.toLittle, 32): UInt64(UInt32(truncatingIfNeeded: a))
        case (.toLittle, _): a
        case (_, 16): UInt64(UInt16(truncatingIfNeeded: a).byteSwapped)
        case (_, 32): UInt64(UInt32(truncatingIfNeeded: a).byteSwapped)
        default: a.byteSwapped
        }
    }

    /// Whether a conditional jump is taken. `width` 32 compares the low halves.
    @inline(__always) static func condition(_ condition: JumpCondition, _ width: Width, _ a: UInt64, _ b: UInt64) -> Bool {
        if width == .bits32 {
            let x = UInt32(truncatingIfNeeded: a), y = UInt32(truncatingIfNeeded: b)
            return switch condition {
            case .eq: x == y
            case .ne: x != y
            case .gt: x > y
            case .ge: x >= y
            case .lt: x < y
            case .le: x <= y
            case .set: x & y != 0
            case .sgt: Int32(bitPattern: x) > Int32(bitPattern: y)
            case .sge: Int32(bitPattern: x) >= Int32(bitPattern: y)
            case .slt: Int32(bitPattern: x) < Int32(bitPattern: y)
            case .sle: Int32(bitPattern: x) <= Int32(bitPattern: y)
            }
        }
        return switch condition {
        case .eq: a == b
        case .ne: a != b
        case .gt: a > b
        case .ge: a >= b
        case .lt: a < b
        case .le: a <= b
        case .set: a & b != 0
        case .sgt: Int64(bitPattern: a) > Int64(bitPattern: b)
        case .sge: Int64(bitPattern: a) >= Int64(bitPattern: b)
        case .slt: Int64(bitPattern: a) < Int64(bitPattern: b)
        case .sle: Int64(bitPattern: a) <= Int64(bitPattern: b)
        }
    }

    /// An immediate as the 64-bit value it stands for: sign-extended (RFC 9669 §4).
    @inline(__always) static func immediate(_ v: Int32) -> UInt64 { UInt64(bitPattern: Int64(v)) }
}
