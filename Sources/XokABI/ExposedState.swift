// The exposed kernel state (DESIGN.md §3): read-only pages every environment reads
// without a call, sized for a real machine. The layout is versioned and self-describing:
// a one-page header gives the offset and size of every table, so a reader never assumes
// how many frames or environments the machine has. Little-endian. A reader takes a
// consistent snapshot by reading `generation` before and after and retrying if it changed
// or is odd (the kernel makes it odd while it writes).
//
// Header (page 0):
//
//     offset  size  field
//     0       4     magic 'XOKS'                 4    4  layout version (2)
//     8       8     generation (even when consistent)
//     16      8     clock, ticks
//     24      4     bytes in the whole exposed state (a predicate's region follows)
//     28      4     frames in all                32   4  frames free
//     36      4     environments alive
//     40      4     environment table offset     44   4  entries     48  4  entry bytes
//     52      4     slice vector offset          56   4  slices
//     60      4     registry offset              64   4  entries     68  4  entry bytes
//     72      4     registry index offset        76   4  index slots (a power of two)
//     80      8     disk blocks (0: no disk)     88   8  free disk blocks
//     96      4     cached blocks                100  4  dirty cached blocks
//
// Environment table: one 16-byte entry per table index (an id's low bits):
//     id u32 (0 = empty), state u32 (bit 0: asleep), frames bound u32, messages waiting u32
// Slice vector: the owner of each slice, u32 (0 = free).
// Buffer-cache registry (XN, DESIGN.md §5): one 32-byte entry per frame, for the block it
// holds — names and state, never contents:
//     block u64, parent u64 (0: a root), type u32, owner u32 (the environment the frame is
//     charged to; 0: the kernel), state u8 (0 none, 1 coming in, 2 valid, 3 going out),
//     flags u8 (bit 0 dirty, bit 1 tainted), references u16 (the pointers that reach the
//     block: 0 for a root, 1 for most; a shared block's link count, saturating), 4 bytes
//     reserved
// Registry index: an open-addressed table from block to frame. Slot `hash(block)` and
// the slots after it (wrapping) hold frame + 1 until an empty slot (0); the entry whose
// block matches is the one. `ExposedState.indexSlot(of:slots:)` is the hash.

/// The exposed state's layout, and a typed view of a snapshot.
public struct ExposedState: Sendable {
    public static let magic: UInt32 = 0x534b_4f58   // "XOKS" little-endian
    public static let version: UInt32 = 2
    public static let generationOffset = 8
    public static let clockOffset = 16
    public static let totalBytesOffset = 24
    public static let framesTotalOffset = 28
    public static let framesFreeOffset = 32
    public static let environmentsOffset = 36
    public static let environmentTableOffsetField = 40
    public static let sliceVectorOffsetField = 52
    public static let registryOffsetField = 60
    public static let indexOffsetField = 72
    public static let diskBlocksOffset = 80
    public static let diskFreeOffset = 88
    public static let cachedBlocksOffset = 96
    public static let dirtyBlocksOffset = 100
    /// A count the kernel moves after every successful call that may have changed some
    /// frame's bytes or who may read them beyond its caller's own frames (all but
    /// `KernelRequest.leavesFramesAlone`, `framesChangedForCallerAlone`, and a store into
    /// a frame or a change to a block (`blockChanged`) only its caller holds), when a
    /// binding is taken from an environment that did not ask, and when an environment
    /// dies. A library OS that reads frames by call (ChannelPort) may keep what it read
    /// while this count stays the same, if it drops the copies its own calls change.
    public static let frameChangesOffset = 104
    public static let headerBytes = KernelLimits.pageBytes
    public static let environmentEntryBytes = 16
    public static let registryEntryBytes = 32

    /// Where each table lies for a machine of `frames` frames.
    public struct Layout: Equatable, Sendable {
        public var environmentTable: Int
        public var sliceVector: Int
        public var registry: Int
        public var index: Int
        public var indexSlots: Int
        public var frames: Int
        public var totalBytes: Int

        public init(frames: Int) {
            self.frames = frames
            environmentTable = ExposedState.headerBytes
            sliceVector = environmentTable + KernelLimits.environmentsMax * ExposedState.environmentEntryBytes
            registry = sliceVector + 4 * KernelLimits.slices
            index = registry + frames * ExposedState.registryEntryBytes
            var slots = 16
            while slots < 2 * frames { slots *= 2 }
            indexSlots = slots
            let end = index + 4 * slots
            totalBytes = (end + KernelLimits.pageBytes - 1) / KernelLimits.pageBytes * KernelLimits.pageBytes
        }
    }

    /// The index slot where the probe for `block` starts, in a table of `slots` (a power
    /// of two): Fibonacci hashing.
    public static func indexSlot(of block: UInt64, slots: Int) -> Int {
        var bits = 0
        while (1 << bits) < slots { bits += 1 }
        return bits == 0 ? 0 : Int((block &* 0x9E37_79B9_7F4A_7C15) >> UInt64(64 - bits))
    }

    /// The snapshot's bytes.
    public let raw: [UInt8]

    public init(raw: [UInt8]) { self.raw = raw }

    /// Zero for reads past the end: a view of a malformed snapshot never traps.
    public func u8(at offset: Int) -> UInt8 { offset >= 0 && offset < raw.count ? raw[offset] : 0 }
    public func u32(at offset: Int) -> UInt32 {
        guard offset >= 0, offset <= raw.count - 4 else { return 0 }
        return raw.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }
    public func u64(at offset: Int) -> UInt64 {
        guard offset >= 0, offset <= raw.count - 8 else { return 0 }
        return raw.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }

    public var generation: UInt64 { u64(at: Self.generationOffset) }
    public var clockTicks: UInt64 { u64(at: Self.clockOffset) }
    public var framesTotal: Int { Int(u32(at: Self.framesTotalOffset)) }
    public var framesFree: Int { Int(u32(at: Self.framesFreeOffset)) }
    public var environmentCount: Int { Int(u32(at: Self.environmentsOffset)) }
    public var diskBlocks: UInt64 { u64(at: Self.diskBlocksOffset) }
    public var diskFreeBlocks: UInt64 { u64(at: Self.diskFreeOffset) }
    public var cachedBlocks: Int { Int(u32(at: Self.cachedBlocksOffset)) }
    public var dirtyBlocks: Int { Int(u32(at: Self.dirtyBlocksOffset)) }
    public var frameChanges: UInt64 { u64(at: Self.frameChangesOffset) }

    /// The owner of each slice, nil where free.
    public var sliceOwners: [EnvironmentID?] {
        let base = Int(u32(at: Self.sliceVectorOffsetField)), count = Int(u32(at: Self.sliceVectorOffsetField + 4))
        return (0..<min(count, KernelLimits.slices)).map { i in
            let v = u32(at: base + 4 * i)
            return v == 0 ? nil : EnvironmentID(rawValue: v)
        }
    }

    /// One row of the environment table.
    public struct EnvironmentEntry: Hashable, Sendable {
        public var id: EnvironmentID
        public var asleep: Bool
        public var framesBound: Int
        public var messagesWaiting: Int
    }

    /// The live environments, in table order.
    public var environments: [EnvironmentEntry] {
        let base = Int(u32(at: Self.environmentTableOffsetField)), count = Int(u32(at: Self.environmentTableOffsetField + 4))
        return (0..<min(count, KernelLimits.environmentsMax)).compactMap { i in
            let at = base + i * Self.environmentEntryBytes
            let id = u32(at: at)
            guard id != 0 else { return nil }
            return EnvironmentEntry(id: EnvironmentID(rawValue: id), asleep: u32(at: at + 4) & 1 == 1,
                                    framesBound: Int(u32(at: at + 8)), messagesWaiting: Int(u32(at: at + 12)))
        }
    }

    /// A cached block's state, as the registry shows it.
    public enum BlockState: UInt8, Sendable {
        case none = 0, comingIn, valid, goingOut
    }

    /// One registry entry: what a frame of the buffer cache holds.
    public struct RegistryEntry: Hashable, Sendable {
        public var frame: FrameNumber
        public var block: BlockNumber
        public var parent: BlockNumber?
        public var type: TypeID
        /// The environment the frame is charged to (nil: the kernel holds it).
        public var owner: EnvironmentID?
        public var state: BlockState
        public var dirty: Bool
        public var tainted: Bool
        /// How many pointers reach the block (a hard-linked file's link count).
        public var references: Int = 1
    }
}

/// Little-endian reads of exposed-state bytes, zero past the end: a snapshot
/// (`ExposedState`), or the live pages themselves where a library OS shares the kernel's
/// process (reading one registry entry then copies nothing else).
public protocol ExposedBytes {
    func u8(at offset: Int) -> UInt8
    func u32(at offset: Int) -> UInt32
    func u64(at offset: Int) -> UInt64
}

extension ExposedState: ExposedBytes {}

extension ExposedBytes {
    /// The registry entry of `frame`, nil when it holds no block.
    public func registry(frame: FrameNumber) -> ExposedState.RegistryEntry? {
        let base = Int(u32(at: ExposedState.registryOffsetField)), count = Int(u32(at: ExposedState.registryOffsetField + 4))
        guard Int(frame.rawValue) < count else { return nil }
        let at = base + Int(frame.rawValue) * ExposedState.registryEntryBytes
        guard let state = ExposedState.BlockState(rawValue: u8(at: at + 24)), state != .none else { return nil }
        let parent = u64(at: at + 8), owner = u32(at: at + 20), flags = u8(at: at + 25)
        return ExposedState.RegistryEntry(frame: frame, block: u64(at: at), parent: parent == 0 ? nil : parent, type: TypeID(rawValue: u32(at: at + 16)),
                             owner: owner == 0 ? nil : EnvironmentID(rawValue: owner), state: state,
                             dirty: flags & 1 != 0, tainted: flags & 2 != 0, references: Int(u8(at: at + 26)) | Int(u8(at: at + 27)) << 8)
    }

    /// The registry entry of cached `block`, found through the index; nil when not cached.
    public func registry(block: BlockNumber) -> ExposedState.RegistryEntry? {
        let base = Int(u32(at: ExposedState.indexOffsetField)), slots = Int(u32(at: ExposedState.indexOffsetField + 4))
        guard slots > 0, slots & (slots - 1) == 0 else { return nil }
        var slot = ExposedState.indexSlot(of: block, slots: slots)
        for _ in 0..<slots {
            let v = u32(at: base + 4 * slot)
            if v == 0 { return nil }
            if let entry = registry(frame: FrameNumber(rawValue: v - 1)), entry.block == block { return entry }
            slot = (slot + 1) & (slots - 1)
        }
        return nil
    }
}
