// The verifier's abstract domain: what it knows about each register and stack byte at a
// point of the program, over every path that reaches it. Joins are sound
// over-approximations; widening to the program's own constants makes loops settle.

/// A set of unsigned 64-bit values: those in `lo...hi` that are ≡ `residue` modulo
/// `stride` (stride 1: any value). The congruence lets the verifier prove accesses in a
/// loop that steps by a fixed amount: `r6` from 16 by 80 while below 4096 is at most 4016.
struct Interval: Equatable {
    var lo: UInt64
    var hi: UInt64
    private(set) var stride: UInt64 = 1
    private(set) var residue: UInt64 = 0

    init(lo: UInt64, hi: UInt64) {
        self.lo = lo
        self.hi = hi
    }

    /// `lo...hi` restricted to values ≡ `residue` (mod `stride`), its ends moved inward to
    /// the nearest such values; nil when none is left.
    init?(lo: UInt64, hi: UInt64, stride: UInt64, residue: UInt64) {
        self.init(lo: lo, hi: hi)
        guard stride > 1, stride <= 1 << 32, lo < hi else { return }
        let r = residue % stride
        let up = (r &+ stride &- lo % stride) % stride
        let down = (hi % stride &+ stride &- r) % stride
        guard up <= hi - lo, lo + up <= hi - down else { return nil }
        self.lo = lo + up
        self.hi = hi - down
        if self.lo < self.hi {
            self.stride = stride
            self.residue = r
        }
    }

    static let full = Interval(lo: 0, hi: .max)
    static let low32 = Interval(lo: 0, hi: UInt64(UInt32.max))
    static func constant(_ v: UInt64) -> Interval { Interval(lo: v, hi: v) }

    var constant: UInt64? { lo == hi ? lo : nil }
    var fits32: Bool { hi <= UInt64(UInt32.max) }

    /// The congruence as (stride, residue), with stride 0 for a single value.
    var congruence: (stride: UInt64, residue: UInt64) { lo == hi ? (0, lo) : (stride, residue) }

    func hull(_ other: Interval) -> Interval {
        let (a, b) = (congruence, other.congruence)
        let s = gcd(gcd(a.stride, b.stride), a.residue > b.residue ? a.residue - b.residue : b.residue - a.residue)
        let l = min(lo, other.lo), h = max(hi, other.hi)
        guard s > 1 else { return Interval(lo: l, hi: h) }
        return Interval(lo: l, hi: h, stride: s, residue: a.residue % s) ?? Interval(lo: l, hi: h)
    }

    func intersection(_ other: Interval) -> Interval? {
        let l = max(lo, other.lo), h = min(hi, other.hi)
        guard l <= h else { return nil }
        // Either congruence holds of every value in both; keep the stronger-looking one.
        let (s, r) = stride >= other.stride ? congruence : other.congruence
        if s == 0 { return r >= l && r <= h ? .constant(r) : nil }
        return Interval(lo: l, hi: h, stride: s, residue: r)
    }

    /// The same values seen through a wider range (for widening): the congruence stays.
    func with(lo: UInt64, hi: UInt64) -> Interval {
        Interval(lo: lo, hi: hi, stride: congruence.stride, residue: congruence.residue) ?? Interval(lo: lo, hi: hi)
    }

    /// Values a load of `bytes` can produce.
    static func ofSize(_ bytes: Int) -> Interval {
        bytes >= 8 ? .full : Interval(lo: 0, hi: (1 << UInt64(bytes * 8)) - 1)
    }
}

func gcd(_ a: UInt64, _ b: UInt64) -> UInt64 {
    var (x, y) = (a, b)
    while y != 0 { (x, y) = (y, x % y) }
    return x
}

/// The memory regions a program can address.
enum Region: UInt8, Equatable, Sendable {
    case context, stack, output

    var name: String {
        switch self {
        case .context: "context"
        case .stack: "stack"
        case .output: "output"
        }
    }
}

/// Byte offsets of an address from the start of its region (for the stack: from r10).
/// Either a range within ±`Offsets.magnitudeMax`, or unbounded: the analysis lost track
/// (a number too large to follow was added). Unbounded is its own state, never a range: a
/// range at the magnitude limit would be indistinguishable from a real one, and the
/// difference of two such addresses would get a bound that is false.
struct Offsets: Equatable {
    /// Meaningful only when `isBounded`.
    private(set) var lo: Int64
    private(set) var hi: Int64
    /// Whether every value is known to lie in `lo...hi`.
    private(set) var isBounded: Bool

    static let magnitudeMax: Int64 = 1 << 40
    static let unbounded = Offsets(lo: 0, hi: 0, isBounded: false)
    static func exactly(_ v: Int64) -> Offsets { Offsets(lo: v, hi: v) }

    private init(lo: Int64, hi: Int64, isBounded: Bool) {
        self.lo = lo
        self.hi = hi
        self.isBounded = isBounded
    }

    /// The range `lo...hi`, or unbounded when it is empty or reaches past the magnitude
    /// the analysis follows.
    init(lo: Int64, hi: Int64) {
        if lo < -Offsets.magnitudeMax || hi > Offsets.magnitudeMax || lo > hi {
            self = .unbounded
        } else {
            self.init(lo: lo, hi: hi, isBounded: true)
        }
    }

    var isExact: Bool { isBounded && lo == hi }

    /// The offsets moved by a number in `delta` (as signed values); unbounded when either
    /// is, or when the number may be too large to follow.
    func moved(by delta: Interval, negated: Bool) -> Offsets {
        guard isBounded, let (dlo, dhi) = delta.asSmallSigned else { return .unbounded }
        return negated ? Offsets(lo: lo - dhi, hi: hi - dlo) : Offsets(lo: lo + dlo, hi: hi + dhi)
    }

    /// Offsets on either path.
    func hull(_ other: Offsets) -> Offsets {
        guard isBounded, other.isBounded else { return .unbounded }
        return Offsets(lo: min(lo, other.lo), hi: max(hi, other.hi))
    }

    /// `+8`, `-16`, `+[0, 4088]`, or `+?` when unbounded.
    var rendered: String {
        guard isBounded else { return "+?" }
        if isExact { return lo < 0 ? "\(lo)" : "+\(lo)" }
        return "+[\(lo), \(hi)]"
    }
}

extension Interval {
    /// The interval read as signed numbers, when all of it lies within ±2^40.
    var asSmallSigned: (Int64, Int64)? {
        let m = UInt64(Offsets.magnitudeMax)
        if hi <= m { return (Int64(lo), Int64(hi)) }
        if lo >= 0 &- m { return (Int64(bitPattern: lo), Int64(bitPattern: hi)) }
        return nil
    }
}

/// What a register holds on every path to a point.
enum Value: Equatable {
    /// Not written on some path.
    case uninitialized
    /// An address on some paths and a number (or another region's address) on others.
    case conflicted
    case scalar(Interval)
    /// The length of a variable-size context (bounded by the state's `contextLength`).
    case contextLength
    /// An address in `Region` at `Offsets`.
    case pointer(Region, Offsets)

    static func constant(_ v: UInt64) -> Value { .scalar(.constant(v)) }

    /// A value on either of two paths, each with its own context length: the length on one
    /// path and another number on the other is a number either way.
    static func joined(_ v: Value, _ w: Value, length: Interval, otherLength: Interval) -> Value {
        switch (v, w) {
        case (.contextLength, .contextLength): .contextLength
        case (.contextLength, _): Value.scalar(length).joined(with: w)
        case (_, .contextLength): v.joined(with: .scalar(otherLength))
        default: v.joined(with: w)
        }
    }

    func joined(with other: Value) -> Value {
        switch (self, other) {
        case (.uninitialized, _), (_, .uninitialized): .uninitialized
        case (.conflicted, _), (_, .conflicted): .conflicted
        case (.scalar(let a), .scalar(let b)): .scalar(a.hull(b))
        case (.contextLength, .contextLength): .contextLength
        case (.pointer(let r, let a), .pointer(let s, let b)) where r == s: .pointer(r, a.hull(b))
        default: .conflicted
        }
    }
}

/// The current frame's stack on every path to a point: which bytes are written, and what
/// each 8-byte slot holds where a whole register was spilled to it (so an address, a
/// range or a constant comes back intact when the compiler reloads it).
struct StackFrame: Equatable {
    /// One bit per byte, from the frame's bottom (r10 - 512).
    private var written: [UInt64]
    /// One value per 8-byte slot, from the frame's bottom: what a spill left there,
    /// `.scalar(.full)` for plain bytes, `.conflicted` where some bytes may be part of an
    /// address (reading any of them would leak it).
    private(set) var slots: [Value]

    static let slotCount = Limits.stackBytes / 8

    /// A frame with nothing written, or (for kinds whose stack starts zeroed) all zeros.
    init(allWritten: Bool) {
        written = Array(repeating: allWritten ? .max : 0, count: Limits.stackBytes / 64)
        slots = Array(repeating: allWritten ? .constant(0) : .scalar(.full), count: StackFrame.slotCount)
    }

    /// Whether every byte in `range` (indices from the frame's bottom) is written.
    func allWritten(_ range: Range<Int>) -> Bool {
        for i in range where written[i >> 6] & (1 << UInt64(i & 63)) == 0 { return false }
        return true
    }

    /// The slots any byte of `range` lies in.
    private func slotIndices(_ range: Range<Int>) -> Range<Int> {
        range.isEmpty ? 0..<0 : (range.lowerBound / 8)..<((range.upperBound + 7) / 8)
    }

    /// Whether some byte of `range` may belong to a spilled address.
    func mayHoldAddress(_ range: Range<Int>) -> Bool {
        slotIndices(range).contains { index in
            switch slots[index] {
            case .pointer, .conflicted: true
            default: false
            }
        }
    }

    /// A whole register stored to the 8-byte slot at byte `index`.
    mutating func spill(_ value: Value, at index: Int) {
        slots[index / 8] = value
        markWritten(index..<(index + 8))
    }

    /// Bytes in `range` overwritten with numbers: slots they touch keep no value, and a
    /// slot that held an address now holds a mix of its bytes and others.
    mutating func overwrite(_ range: Range<Int>, exactly: Bool) {
        for index in slotIndices(range) {
            switch slots[index] {
            case .pointer, .conflicted: slots[index] = .conflicted
            default: slots[index] = .scalar(.full)
            }
        }
        if exactly { markWritten(range) }
    }

    private mutating func markWritten(_ range: Range<Int>) {
        for i in range { written[i >> 6] |= 1 << UInt64(i & 63) }
    }

    /// The frame on either path; `length` and `otherLength` are each path's context length,
    /// for slots that hold it.
    func joined(with other: StackFrame, length: Interval, otherLength: Interval) -> StackFrame {
        var result = self
        for i in written.indices { result.written[i] &= other.written[i] }
        for i in slots.indices where slots[i] != other.slots[i] {
            result.slots[i] = Value.joined(slots[i], other.slots[i], length: length, otherLength: otherLength)
        }
        return result
    }

    /// `new` with every slot whose range grew pushed out to a threshold.
    func widened(from old: StackFrame, _ thresholds: Thresholds) -> StackFrame {
        var result = self
        for i in slots.indices where slots[i] != old.slots[i] { result.slots[i] = thresholds.widen(old.slots[i], slots[i]) }
        return result
    }
}

/// What the verifier knows at one point of one path.
struct AbstractState: Equatable {
    var registers: [Value]
    var stack: StackFrame
    /// Bounds on the context's length on this path (one value for a fixed-size context).
    var contextLength: Interval

    subscript(_ r: Register) -> Value {
        get { registers[Int(r.rawValue)] }
        set { registers[Int(r.rawValue)] = newValue }
    }

    func joined(with other: AbstractState) -> AbstractState {
        var result = self
        for i in registers.indices where registers[i] != other.registers[i] {
            result.registers[i] = Value.joined(registers[i], other.registers[i], length: contextLength, otherLength: other.contextLength)
        }
        result.stack = stack.joined(with: other.stack, length: contextLength, otherLength: other.contextLength)
        result.contextLength = contextLength.hull(other.contextLength)
        return result
    }

    /// The registers in words, for rejections: `r1=context+0 r2=4096 r10=stack+0`.
    var rendered: String {
        var parts: [String] = []
        for r in Register.allCases {
            let text: String
            switch self[r] {
            case .uninitialized: continue
            case .conflicted: text = "mixed"
            case .scalar(let i): text = i.rendered
            case .contextLength: text = "length" + contextLength.rendered
            case .pointer(let region, let o): text = region.name + o.rendered
            }
            parts.append("r\(r.rawValue)=" + text)
        }
        return parts.isEmpty ? "no register written" : parts.joined(separator: " ")
    }
}

extension Interval {
    var rendered: String {
        if let c = constant { return c < 1 << 16 ? "\(c)" : "0x" + String(c, radix: 16) }
        if self == .full { return "any" }
        return "[\(lo), \(hi)]"
    }
}

/// The constants a program mentions, sorted: the points to which widening extends a
/// growing range, so a loop bounded by `jlt r6, 4096` keeps the bound 4096.
struct Thresholds {
    private var unsigned: [UInt64]
    private var signed: [Int64]

    init(constants: [UInt64]) {
        var set = Set<UInt64>([0, 1, .max])
        for c in constants {
            set.insert(c); set.insert(c &+ 1); set.insert(c &- 1)
        }
        unsigned = set.sorted()
        var s = Set<Int64>()
        for c in unsigned {
            let v = Int64(bitPattern: c)
            if v >= -Offsets.magnitudeMax && v <= Offsets.magnitudeMax { s.insert(v) }
        }
        s.insert(-Offsets.magnitudeMax); s.insert(Offsets.magnitudeMax)
        signed = s.sorted()
    }

    func above(_ v: UInt64) -> UInt64 { unsigned.first { $0 >= v } ?? .max }
    func below(_ v: UInt64) -> UInt64 { unsigned.last { $0 <= v } ?? 0 }
    func above(_ v: Int64) -> Int64 { signed.first { $0 >= v } ?? Offsets.magnitudeMax }
    func below(_ v: Int64) -> Int64 { signed.last { $0 <= v } ?? -Offsets.magnitudeMax }

    func widen(_ old: Interval, _ new: Interval) -> Interval {
        new.with(lo: new.lo < old.lo ? below(new.lo) : new.lo, hi: new.hi > old.hi ? above(new.hi) : new.hi)
    }

    func widen(_ old: Value, _ new: Value) -> Value {
        switch (old, new) {
        case (.scalar(let a), .scalar(let b)): .scalar(widen(a, b))
        case (.pointer(let r, let a), .pointer(let s, let b)) where r == s && a.isBounded && b.isBounded:
            .pointer(r, Offsets(lo: b.lo < a.lo ? below(b.lo) : b.lo, hi: b.hi > a.hi ? above(b.hi) : b.hi))
        default: new
        }
    }

    /// `new` (which includes `old`) with every range that grew pushed out to a threshold.
    func widen(_ old: AbstractState, _ new: AbstractState) -> AbstractState {
        var result = new
        for i in new.registers.indices { result.registers[i] = widen(old.registers[i], new.registers[i]) }
        result.stack = new.stack.widened(from: old.stack, self)
        result.contextLength = widen(old.contextLength, new.contextLength)
        return result
    }
}
