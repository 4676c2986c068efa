// The kernel's physical names, exposed (DESIGN.md §3): environments, frames, regions,
// slices, disk blocks and XN types are numbered, and library OSes use the numbers
// directly. Environment and region ids are a table index and a generation: an id is
// reused only after its generation has come round, so no counter ever traps on wrapping
// and a stale id names nothing for as long as possible.

/// An environment: the kernel's unit of protection and accounting. 0 is never one.
public struct EnvironmentID: RawRepresentable, Hashable, Comparable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    /// The low bits: the environment's entry in the exposed environment table.
    public static let indexBits: UInt32 = 10
    public static let indexMask: UInt32 = (1 << indexBits) - 1
    public init(index: Int, generation: UInt32) {
        rawValue = generation << Self.indexBits | (UInt32(truncatingIfNeeded: index) & Self.indexMask)
    }
    public var index: Int { Int(rawValue & Self.indexMask) }
    public var generation: UInt32 { rawValue >> Self.indexBits }
}

/// A physical page of memory, by number.
public struct FrameNumber: RawRepresentable, Hashable, Comparable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// A software region: byte-granular memory read and written only through calls.
public struct RegionID: RawRepresentable, Hashable, Comparable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    public static let indexBits: UInt32 = 12
    public static let indexMask: UInt32 = (1 << indexBits) - 1
    public init(index: Int, generation: UInt32) {
        rawValue = generation << Self.indexBits | (UInt32(truncatingIfNeeded: index) & Self.indexMask)
    }
    public var index: Int { Int(rawValue & Self.indexMask) }
    public var generation: UInt32 { rawValue >> Self.indexBits }
}

/// A slice of the CPU: an index into the slice vector.
public struct SliceIndex: RawRepresentable, Hashable, Comparable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// A block of the disk XN shares, by number.
public typealias BlockNumber = UInt64

/// A block type of XN's catalogue: 0 is untyped data.
public struct TypeID: RawRepresentable, Hashable, Comparable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let data = TypeID(rawValue: 0)
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// Where bulk bytes of a call live: the first `length` bytes of a frame the caller has
/// bound into itself.
public struct FrameSpan: Hashable, Sendable {
    public var frame: FrameNumber
    public var length: UInt32
    public init(frame: FrameNumber, length: UInt32) {
        self.frame = frame
        self.length = length
    }
}
