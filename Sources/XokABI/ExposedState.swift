// The exposed kernel state (DESIGN.md §3): a read-only page every environment reads
// without a call. Fixed layout, little-endian; a reader takes a consistent snapshot by
// reading `generation` before and after and retrying if it changed or is odd (the kernel
// makes it odd while it writes).
//
//     offset  size  field
//     0       4     magic 'XOKS'
//     4       4     layout version (1)
//     8       8     generation (even when consistent)
//     16      8     clock, ticks
//     24      4     frames in all        28  4  frames free
//     32      4     environments alive   36  4  slices in the vector
//     40      64    slice vector: owner environment of each slice (0 = free), u32 each
//     104     1024  environment table: 64 entries of 16 bytes:
//                     id u32 (0 = empty), state u32 (0 running/runnable, 1 asleep),
//                     frames held u32, messages waiting u32
//     1128    ...   reserved for XN's buffer-cache registry (next issue)

/// The exposed state's layout, and a typed view of a snapshot.
public struct ExposedState: Sendable {
    public static let magic: UInt32 = 0x534b_4f58   // "XOKS" little-endian
    public static let version: UInt32 = 1
    public static let generationOffset = 8
    public static let clockOffset = 16
    public static let framesTotalOffset = 24
    public static let framesFreeOffset = 28
    public static let environmentsOffset = 32
    public static let slicesOffset = 36
    public static let sliceVectorOffset = 40
    public static let environmentTableOffset = sliceVectorOffset + 4 * KernelLimits.slices
    public static let environmentEntryBytes = 16
    public static let bytes = KernelLimits.exposedStateBytes

    /// The snapshot's bytes.
    public let raw: [UInt8]

    public init(raw: [UInt8]) {
        precondition(raw.count == ExposedState.bytes)
        self.raw = raw
    }

    public func u32(at offset: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(raw[offset + i]) << UInt32(8 * i) }
        return v
    }
    public func u64(at offset: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(raw[offset + i]) << UInt64(8 * i) }
        return v
    }

    public var generation: UInt64 { u64(at: Self.generationOffset) }
    public var clockTicks: UInt64 { u64(at: Self.clockOffset) }
    public var framesTotal: Int { Int(u32(at: Self.framesTotalOffset)) }
    public var framesFree: Int { Int(u32(at: Self.framesFreeOffset)) }
    public var environmentCount: Int { Int(u32(at: Self.environmentsOffset)) }
    /// The owner of each slice, nil where free.
    public var sliceOwners: [EnvironmentID?] {
        (0..<KernelLimits.slices).map { i in
            let v = u32(at: Self.sliceVectorOffset + 4 * i)
            return v == 0 ? nil : EnvironmentID(rawValue: v)
        }
    }

    /// One row of the environment table.
    public struct EnvironmentEntry: Hashable, Sendable {
        public var id: EnvironmentID
        public var asleep: Bool
        public var framesHeld: Int
        public var messagesWaiting: Int
    }

    /// The live environments, in table order.
    public var environments: [EnvironmentEntry] {
        (0..<KernelLimits.environmentsMax).compactMap { i in
            let base = Self.environmentTableOffset + i * Self.environmentEntryBytes
            let id = u32(at: base)
            guard id != 0 else { return nil }
            return EnvironmentEntry(id: EnvironmentID(rawValue: id), asleep: u32(at: base + 4) == 1,
                                    framesHeld: Int(u32(at: base + 8)), messagesWaiting: Int(u32(at: base + 12)))
        }
    }
}
