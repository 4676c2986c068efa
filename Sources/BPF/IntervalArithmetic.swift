// Sound range arithmetic for the verifier: for every operation, an interval that contains
// every result the operation can produce from operands in the given intervals. Exact
// constants fold through Semantics, the same code the interpreter runs.

enum IntervalArithmetic {
    /// Range of `a op b` at `width`.
    static func alu(_ operation: AluOperation, _ width: Width, _ a: Interval, _ b: Interval) -> Interval {
        if let x = a.constant, let y = b.constant {
            return .constant(width == .bits64 ? Semantics.alu64(operation, x, y) : Semantics.alu32(operation, x, y))
        }
        if operation == .mov {
            if let y = b.constant { return .constant(width == .bits64 ? y : y & UInt64(UInt32.max)) }
            return width == .bits64 || b.fits32 ? b : .low32
        }
        if width == .bits32 {
            guard a.fits32, b.fits32 else { return .low32 }
            let r = range(operation, a, b, bits: 32)
            return r.fits32 ? r : .low32
        }
        return withCongruence(operation, a, b, range(operation, a, b, bits: 64))
    }

    /// `result` narrowed by what is known modulo a stride, for the operations that keep it
    /// (when the range did not wrap, so no value went round 2^64).
    private static func withCongruence(_ operation: AluOperation, _ a: Interval, _ b: Interval, _ result: Interval) -> Interval {
        guard result != .full else { return result }
        let (x, y) = (a.congruence, b.congruence)
        let stride: UInt64, residue: UInt64
        switch operation {
        case .add:
            stride = gcd(x.stride, y.stride)
            guard stride > 1 else { return result }
            residue = (x.residue % stride &+ y.residue % stride) % stride
        case .sub:
            stride = gcd(x.stride, y.stride)
            guard stride > 1 else { return result }
            residue = (x.residue % stride &+ stride &- y.residue % stride) % stride
        case .mul where y.stride == 0:
            let (s, overflow) = x.stride.multipliedReportingOverflow(by: y.residue)
            guard !overflow, s > 1 else { return result }
            (stride, residue) = (s, (x.residue &* y.residue) % s)
        case .lsh where y.stride == 0 && y.residue < 64:
            let s = x.stride << y.residue
            guard s >> y.residue == x.stride, s > 1 else { return result }
            (stride, residue) = (s, (x.residue << y.residue) % s)
        default:
            return result
        }
        return Interval(lo: result.lo, hi: result.hi, stride: stride, residue: residue) ?? result
    }

    private static func range(_ operation: AluOperation, _ a: Interval, _ b: Interval, bits: UInt64) -> Interval {
        let top: UInt64 = bits == 64 ? .max : UInt64(UInt32.max)
        let full = Interval(lo: 0, hi: top)
        let shiftMax: UInt64 = bits - 1
        switch operation {
        case .add:
            let (h, overflow) = a.hi.addingReportingOverflow(b.hi)
            return overflow || h > top ? full : Interval(lo: a.lo + b.lo, hi: h)
        case .sub:
            return a.lo >= b.hi ? Interval(lo: a.lo - b.hi, hi: a.hi - b.lo) : full
        case .mul:
            let (h, overflow) = a.hi.multipliedReportingOverflow(by: b.hi)
            return overflow || h > top ? full : Interval(lo: a.lo * b.lo, hi: h)
        case .div:
            return b.lo > 0 ? Interval(lo: a.lo / b.hi, hi: a.hi / b.lo) : Interval(lo: 0, hi: a.hi)
        case .mod:
            return b.lo > 0 ? Interval(lo: 0, hi: min(a.hi, b.hi - 1)) : Interval(lo: 0, hi: a.hi)
        case .and:
            return Interval(lo: 0, hi: min(a.hi, b.hi))
        case .or:
            return Interval(lo: max(a.lo, b.lo), hi: allOnes(upTo: max(a.hi, b.hi)))
        case .xor:
            return Interval(lo: 0, hi: allOnes(upTo: max(a.hi, b.hi)))
        case .lsh:
            guard b.hi <= shiftMax else { return full }
            let h = a.hi << b.hi
            guard h >> b.hi == a.hi, h <= top else { return full }
            return Interval(lo: a.lo << b.lo, hi: h)
        case .rsh:
            guard b.hi <= shiftMax else { return Interval(lo: 0, hi: a.hi) }
            return Interval(lo: a.lo >> b.hi, hi: a.hi >> b.lo)
        case .arsh:
            // A value with its sign bit clear shifts like an unsigned one.
            guard a.hi < 1 << shiftMax else { return full }
            return range(.rsh, a, b, bits: bits)
        case .sdiv, .smod:
            return full
        case .mov:
            return b
        }
    }

    /// The smallest all-ones number at least `x`.
    private static func allOnes(upTo x: UInt64) -> UInt64 { x == 0 ? 0 : .max >> UInt64(x.leadingZeroBitCount) }

    static func negate(_ width: Width, _ a: Interval) -> Interval {
        if let x = a.constant { return .constant(Semantics.negate(width, x)) }
        return width == .bits64 ? .full : .low32
    }

    static func signExtend(_ width: Width, _ a: Interval, fromBits bits: UInt8) -> Interval {
        if let x = a.constant { return .constant(Semantics.signExtend(width, x, fromBits: bits)) }
        // A value below the narrow width's sign bit is unchanged by sign extension.
        if a.hi < 1 << UInt64(bits - 1) { return a }
        return width == .bits64 ? .full : .low32
    }

    static func byteOrder(_ order: ByteOrder, _ a: Interval, bits: UInt8) -> Interval {
        if let x = a.constant { return .constant(Semantics.byteOrder(order, x, bits: bits)) }
        let narrow = bits == 64 ? Interval.full : Interval.ofSize(Int(bits) / 8)
        if order == .toLittle, a.hi <= narrow.hi { return a }
        return narrow
    }

    /// The operand ranges on each edge of `if a cond b`: nil for an edge no value can take.
    static func refine(_ condition: JumpCondition, _ width: Width, _ a: Interval, _ b: Interval)
        -> (taken: (Interval, Interval)?, fallthrough: (Interval, Interval)?)
    {
        if let x = a.constant, let y = b.constant {
            return Semantics.condition(condition, width, x, y) ? ((a, b), nil) : (nil, (a, b))
        }
        let both = (a, b)
        // Low halves of wider values relate unpredictably to the full values.
        if width == .bits32 && !(a.fits32 && b.fits32) { return (both, both) }
        switch condition {
        case .eq: return (equal(a, b), notEqual(a, b))
        case .ne: return (notEqual(a, b), equal(a, b))
        case .gt: return (greater(a, b), swapped(greaterOrEqual(b, a)))
        case .ge: return (greaterOrEqual(a, b), swapped(greater(b, a)))
        case .lt: return (swapped(greater(b, a)), greaterOrEqual(a, b))
        case .le: return (swapped(greaterOrEqual(b, a)), greater(a, b))
        case .set: return a == .constant(0) || b == .constant(0) ? (nil, both) : (both, both)
        case .sgt, .sge, .slt, .sle:
            let signBit: UInt64 = width == .bits64 ? 1 << 63 : 1 << 31
            let aNegative = a.lo >= signBit, aNonNegative = a.hi < signBit
            let bNegative = b.lo >= signBit, bNonNegative = b.hi < signBit
            let unsignedCondition: JumpCondition
            switch condition {
            case .sgt: unsignedCondition = .gt
            case .sge: unsignedCondition = .ge
            case .slt: unsignedCondition = .lt
            default: unsignedCondition = .le
            }
            // Within one half the signed order is the unsigned order.
            if (aNegative && bNegative) || (aNonNegative && bNonNegative) {
                return refine(unsignedCondition, width, a, b)
            }
            let greaterSigned = condition == .sgt || condition == .sge
            if aNonNegative && bNegative { return greaterSigned ? (both, nil) : (nil, both) }
            if aNegative && bNonNegative { return greaterSigned ? (nil, both) : (both, nil) }
            return (both, both)
        }
    }

    private static func swapped(_ pair: (Interval, Interval)?) -> (Interval, Interval)? {
        guard let (x, y) = pair else { return nil }
        return (y, x)
    }

    /// `a > b`.
    private static func greater(_ a: Interval, _ b: Interval) -> (Interval, Interval)? {
        guard a.hi > b.lo else { return nil }
        return (Interval(lo: max(a.lo, b.lo + 1), hi: a.hi), Interval(lo: b.lo, hi: min(b.hi, a.hi - 1)))
    }

    /// `a >= b`.
    private static func greaterOrEqual(_ a: Interval, _ b: Interval) -> (Interval, Interval)? {
        guard a.hi >= b.lo else { return nil }
        return (Interval(lo: max(a.lo, b.lo), hi: a.hi), Interval(lo: b.lo, hi: min(b.hi, a.hi)))
    }

    private static func equal(_ a: Interval, _ b: Interval) -> (Interval, Interval)? {
        guard let both = a.intersection(b) else { return nil }
        return (both, both)
    }

    private static func notEqual(_ a: Interval, _ b: Interval) -> (Interval, Interval)? {
        if let y = b.constant { return trim(a, y).map { ($0, b) } }
        if let x = a.constant { return trim(b, x).map { (a, $0) } }
        return (a, b)
    }

    /// `a` without the value `v` where `v` is an end of it.
    private static func trim(_ a: Interval, _ v: UInt64) -> Interval? {
        if a.constant == v { return nil }
        if a.lo == v { return Interval(lo: v + 1, hi: a.hi) }
        if a.hi == v { return Interval(lo: a.lo, hi: v - 1) }
        return a
    }
}
