// The kernel's call set as data: every request and reply has a fixed, versioned binary
// layout, because the same calls will travel over a shared-memory ring to `xokd`. The
// in-process port encodes and decodes every call too, so that layout is always exercised.
//
// A request on the wire (all integers little-endian):
//
//     0        2        4                 8
//     +--------+--------+-----------------+---------------------------+
//     |version | call   | payload bytes   | payload (the call's fields)|
//     +--------+--------+-----------------+---------------------------+
//
// A reply has the same header with the call field replaced by a status: 0 for success
// (then the payload is the result), or a `KernelError` code (no payload).
// Field encodings: integers at their width; a capability is component count (u8), rights
// (u8), then the components (u64 each); an ACL or a list is a u16 count then the items;
// bytes are a u32 count then the bytes; an optional is a u8 flag then the value.

/// The wire format's version; a request of another version is refused (`badRequest`).
public let kernelCallVersion: UInt16 = 3

/// A kernel call. Every call that touches a protected object names its credential: a
/// slot of the caller's capability list. The caller's identity is never in the request;
/// the port it arrives on says who it is.
public enum KernelRequest: Hashable, Sendable {
    /// A new capability in a free slot: `source`'s name extended, rights a subset.
    case capabilityDerive(source: CapabilitySlot, appending: [UInt64], rights: Rights)
    /// Empties a slot.
    case capabilityDrop(CapabilitySlot)
    /// A child environment protected by `acl`, holding copies of the `grants` slots
    /// (each needs the grant right), with `quota` taken out of the caller's unused share.
    /// Needs write on the kernel's environment ACL.
    case environmentCreate(credential: CapabilitySlot, acl: AccessControlList, grants: [CapabilitySlot], quota: Quota)
    /// Destroys an environment and its whole subtree, reclaiming all they hold. Needs
    /// write on its ACL, or being one of its ancestors.
    case environmentDestroy(credential: CapabilitySlot, EnvironmentID)
    /// Who may send the caller messages.
    case environmentSetMessageACL(AccessControlList)
    /// A free frame, protected by `acl`. Needs write on the kernel's frame ACL.
    case frameAllocate(credential: CapabilitySlot, acl: AccessControlList)
    /// Returns a frame no one else has mapped. Needs write on its ACL.
    case frameFree(credential: CapabilitySlot, FrameNumber)
    /// Replaces a frame's ACL. Needs write on its ACL.
    case frameSetACL(credential: CapabilitySlot, FrameNumber, AccessControlList)
    /// Binds a frame into the caller: read-only, or read-write. Needs read (and write).
    case frameMap(credential: CapabilitySlot, FrameNumber, writable: Bool)
    /// Removes the caller's binding of a frame.
    case frameUnmap(FrameNumber)
    /// Asks every other holder to unmap a frame within `graceTicks`, then forces it.
    /// Needs write on its ACL.
    case frameRevoke(credential: CapabilitySlot, FrameNumber, graceTicks: UInt64)
    /// A zeroed software region of `size` bytes protected by `acl`. Needs write on the
    /// kernel's region ACL.
    case regionCreate(credential: CapabilitySlot, acl: AccessControlList, size: UInt32)
    /// `length` bytes at `offset`. Needs read on its ACL.
    case regionRead(credential: CapabilitySlot, RegionID, offset: UInt32, length: UInt32)
    /// Writes bytes at `offset`. Needs write on its ACL.
    case regionWrite(credential: CapabilitySlot, RegionID, offset: UInt32, bytes: [UInt8])
    /// Destroys a region. Needs write on its ACL.
    case regionDestroy(credential: CapabilitySlot, RegionID)
    /// Queues a message for `target`. Needs write on the target's message ACL.
    case ipcSend(credential: CapabilitySlot, target: EnvironmentID, message: [UInt8])
    /// The next upcall waiting for the caller, if any (notices before messages).
    case upcallNext
    /// Sleeps the caller until `program` (a verified `wakeupPredicate`) returns nonzero.
    /// It reads the exposed state and, when `region` is given, that region (needs read).
    case predicateInstall(credential: CapabilitySlot, program: [UInt8], region: RegionID?)
    /// Removes the caller's predicate and wakes it.
    case predicateRemove
    /// Takes a free slice. Needs write on the kernel's slice ACL.
    case sliceAllocate(credential: CapabilitySlot, SliceIndex)
    /// Returns one of the caller's slices.
    case sliceFree(SliceIndex)
    /// Gives the rest of the current slice to `target` (directed yield), or ends it.
    case yield(to: EnvironmentID?)

    // XN (docs/kernel-interface.md, "XN"): the disk shared among library file systems.
    /// Installs a block type named `name` whose three UDFs lie in frames the caller has
    /// bound (each program the bytes of its spans, one after another, in up to
    /// `udfFramesMax` frames). Needs write on the kernel's type ACL; counts against the
    /// caller's quota. A `shareable` type's blocks may have several parents; a
    /// `freedWhole` type's block is freed with everything below it.
    case xnInstallType(credential: CapabilitySlot, name: [UInt8], owns: [FrameSpan], acl: [FrameSpan], size: [FrameSpan], shareable: Bool = false,
                       freedWhole: Bool = false)
    /// The installed type called `name`.
    case xnLookupType(name: [UInt8])
    /// A root named `name`: a fresh block of `type`, cached in `frame` (the caller's own),
    /// protected by the capability in slot `protection`. Needs write on the kernel's root
    /// ACL; counts against the caller's quota.
    case xnCreateRoot(credential: CapabilitySlot, name: [UInt8], type: TypeID, protection: CapabilitySlot, frame: FrameNumber)
    /// The root called `name`: its block, type and protecting capability.
    case xnLookupRoot(name: [UInt8])
    /// Brings `block` into the buffer cache in `frame` (the caller's own, bound by no one
    /// else), or finds it cached; replies with the frame that holds it. Needs read on it.
    case xnReadIn(credential: CapabilitySlot, BlockNumber, frame: FrameNumber)
    /// Copies cached `block` into `frame`, which the caller has bound writable. Needs read.
    case xnRead(credential: CapabilitySlot, BlockNumber, into: FrameNumber)
    /// Binds the frame holding cached `block` into the caller and replies with it:
    /// read-only for metadata (XN is its only writer), writable for data if its parent's
    /// acl UDF grants it.
    case xnMap(credential: CapabilitySlot, BlockNumber, writable: Bool)
    /// Changes metadata `block` by `changes`, as `operation` says; XN checks it with the
    /// type's UDFs.
    case xnModify(credential: CapabilitySlot, BlockNumber, XNOperation, XNChanges)
    /// Writes bytes into data `block`. Needs what its parent's acl UDF grants.
    case xnWriteData(credential: CapabilitySlot, BlockNumber, XNChanges)
    /// Writes the dirty blocks among `blocks` to disk, in block order, then a barrier.
    case xnWriteback([BlockNumber])
    /// Drops clean `block` from the cache; its frame goes back to the environment that
    /// gave it. Needs read on the block.
    case xnEvict(credential: CapabilitySlot, BlockNumber)
    /// The first free block at or after `from` (file systems choose their own blocks).
    case xnFindFree(from: BlockNumber)
    /// Brings each of `blocks` into the cache and maps it read-only here, as `xnReadIn`
    /// then `xnMap` would: a block not cached is read into `frames[i]` (the caller's own;
    /// a run of consecutive blocks is one I/O), one cached already stays where it is.
    /// Replies with the frame holding each block. At most `KernelLimits.xnBatchMax`
    /// blocks; all or nothing.
    case xnMapMany(credential: CapabilitySlot, blocks: [BlockNumber], frames: [FrameNumber])
    /// `count` free frames (1 to `KernelLimits.xnBatchMax`), each protected by `acl` and
    /// bound writable into the caller from birth (the ACL governs later bindings). Needs
    /// write on the kernel's frame ACL. All or nothing.
    case frameAllocateMany(credential: CapabilitySlot, acl: AccessControlList, count: UInt16)
    /// Moves the bytes of `range` from metadata block `source` to offset `at` of metadata
    /// block `destination`, where they must land on zeros, then puts `edits` there (each
    /// inside the landed range): the pointers in the bytes go with them, and both blocks
    /// reach the disk as one (docs/xn.md, "Moves"). Each block's acl UDF is asked
    /// (`moveOut`, `moveIn`); no moved block may end up under itself.
    case xnMove(credential: CapabilitySlot, source: BlockNumber, range: XNChanges.Range, destination: BlockNumber, at: UInt16, edits: XNChanges)
    /// Removes the caller's bindings of `frames` (1 to `KernelLimits.xnBatchMax`, none
    /// named twice), as `frameUnmap` does for each. All or nothing.
    case frameUnmapMany([FrameNumber])
    /// Reads `count` bytes at `offset` of a frame bound into the caller: what a load
    /// instruction does where the frame is mapped. For environments in their own process,
    /// whose bound frames are not all mapped (docs/xokd.md). Throws `notMapped` when the
    /// frame is not bound or the range leaves the page.
    case frameLoad(FrameNumber, offset: UInt16, count: UInt16)
    /// Writes `bytes` at `offset` of a frame bound writable into the caller, as a store
    /// instruction would; `notMapped` when it is not bound writable or the range leaves
    /// the page.
    case frameStore(FrameNumber, offset: UInt16, bytes: [UInt8])
}

/// Every call, by its code on the wire: the list coverage tests are built from.
public enum KernelCall: UInt16, CaseIterable, Sendable {
    case capabilityDerive = 1, capabilityDrop, environmentCreate, environmentDestroy, environmentSetMessageACL
    case frameAllocate, frameFree, frameSetACL, frameMap, frameUnmap, frameRevoke
    case regionCreate, regionRead, regionWrite, regionDestroy
    case ipcSend, upcallNext, predicateInstall, predicateRemove, sliceAllocate, sliceFree, yield
    case xnInstallType, xnLookupType, xnCreateRoot, xnLookupRoot, xnReadIn, xnRead, xnMap, xnModify, xnWriteData
    case xnWriteback, xnEvict, xnFindFree, xnMapMany, frameAllocateMany, xnMove, frameUnmapMany
    case frameLoad, frameStore
}

/// What a metadata change does to the block's pointers.
public enum XNOperation: Hashable, Sendable {
    /// Bytes change; pointers stay the same.
    case write
    /// A pointer to `block` (free now) of `type` appears; the block is allocated and
    /// cached, zeroed, in `frame` (the caller's own).
    case allocate(BlockNumber, TypeID, frame: FrameNumber)
    /// The pointer to `block` disappears; the block is freed once this one is on disk.
    case free(BlockNumber)
    /// Pointers move within the block; none appears or disappears.
    case swap
    /// Pointers to every block of `blocks` (each free now, all of `type`) appear at once:
    /// block i is allocated and cached in `frames[i]`, the caller's own. A metadata block
    /// starts zeroed; a data block starts with what its frame holds, so a file system
    /// writes new blocks' contents as it allocates them, in one call. At most
    /// `KernelLimits.xnBatchMax` blocks, none named twice, nor any frame.
    case allocateMany([BlockNumber], TypeID, frames: [FrameNumber])
    /// The pointers to every block of `blocks` disappear at once; each is freed once this
    /// block is on disk. At most `KernelLimits.xnBatchMax`, none named twice.
    case freeMany([BlockNumber])
    /// One more pointer to `block`, an allocated block of a shareable type that the
    /// caller may read through a parent it has now (a hard link). The block is freed,
    /// with everything below it, when its last pointer is.
    case link(BlockNumber)
}

/// Byte ranges to put into a block. Their bytes travel in the call (at most
/// `KernelLimits.xnInlineBytesMax` in all) or lie at the same offsets of a frame the
/// caller has bound.
public struct XNChanges: Hashable, Sendable {
    public struct Range: Hashable, Sendable {
        public var offset: UInt16
        public var length: UInt16
        public init(offset: UInt16, length: UInt16) {
            self.offset = offset
            self.length = length
        }
    }
    public var ranges: [Range]
    /// Every range's bytes in order, when they travel in the call.
    public var bytes: [UInt8]
    /// Or the frame that holds them.
    public var source: FrameNumber?

    public init(ranges: [Range], bytes: [UInt8], source: FrameNumber?) {
        self.ranges = ranges
        self.bytes = bytes
        self.source = source
    }

    /// Changes whose bytes travel in the call. An offset that is negative or past 16 bits,
    /// or a length past 16 bits, becomes 65,535, never a wrapped value, so the kernel
    /// refuses it rather than writing elsewhere.
    public static func inline(_ changes: [(offset: Int, bytes: [UInt8])]) -> XNChanges {
        XNChanges(ranges: changes.map { Range(offset: UInt16(clamping: $0.offset < 0 ? Int.max : $0.offset), length: UInt16(clamping: $0.bytes.count)) },
                  bytes: changes.flatMap { $0.bytes }, source: nil)
    }

    /// No bytes at all (an allocation whose only change is the pointer, say, still names
    /// its bytes; this is for a free that names none).
    public static let none = XNChanges(ranges: [], bytes: [], source: nil)
}

/// A root of XN's catalogue, as `xnLookupRoot` returns it.
public struct XNRoot: Hashable, Sendable {
    public var block: BlockNumber
    public var type: TypeID
    /// Who may use the root: a credential must dominate it.
    public var capability: Capability
    public init(block: BlockNumber, type: TypeID, capability: Capability) {
        self.block = block
        self.type = type
        self.capability = capability
    }
}

extension KernelRequest {
    /// Whether the call can change no frame's bytes and no binding (it reads, or works on
    /// regions, which are not frames), so a library OS's copies of frames it read stay true
    /// (`ExposedState.frameChangesOffset`).
    public var leavesFramesAlone: Bool {
        switch self {
        case .frameLoad, .xnLookupType, .xnLookupRoot, .xnFindFree, .upcallNext, .regionCreate, .regionRead, .regionWrite, .regionDestroy:
            return true
        default: return false
        }
    }

    /// For a call whose effect on frames stays with its caller, the frames whose bytes or
    /// bindings it may change; nil for every other call. Such a call binds frames into the
    /// caller (`frameMap`, `xnMap`, `frameAllocate`, `frameAllocateMany`, and `xnMapMany`
    /// for cached blocks), unbinds the caller's own (`frameUnmap`, `frameUnmapMany`,
    /// `frameFree`, which is refused while another holds the frame), or has XN read blocks
    /// into frames the caller gives (`xnReadIn`, `xnMapMany`), which no one else may hold.
    /// No other environment's copy of any frame can go stale by it, so the kernel leaves
    /// the frame-change count alone, unless the call also took a binding from someone
    /// else (a revocation forced, a frame XN let go); the caller's own port drops its
    /// copies of the frames named.
    public var framesChangedForCallerAlone: [FrameNumber]? {
        switch self {
        case .frameMap, .xnMap, .frameAllocate, .frameAllocateMany: return []
        case .frameUnmap(let frame), .frameFree(_, let frame), .xnReadIn(_, _, let frame): return [frame]
        case .frameUnmapMany(let frames), .xnMapMany(_, _, let frames): return frames
        default: return nil
        }
    }

    /// For `xnModify` and `xnWriteData`, the cached block whose bytes the call changes and
    /// the frames it gives the cache (which no one but the caller may hold); nil for every
    /// other call. When no environment but the caller holds the block's frame either, the
    /// call changes frames for its caller alone: the kernel leaves the frame-change count
    /// (unless a binding was taken: a block freed while someone held it), and the caller's
    /// port drops its copies of the block's frame and of the frames given.
    public var blockChanged: (block: BlockNumber, given: [FrameNumber])? {
        switch self {
        case .xnModify(_, let block, .allocate(_, _, let frame), _): return (block, [frame])
        case .xnModify(_, let block, .allocateMany(_, _, let frames), _): return (block, frames)
        case .xnModify(_, let block, _, _), .xnWriteData(_, let block, _): return (block, [])
        default: return nil
        }
    }
}

/// What a call returns.
public enum KernelReply: Hashable, Sendable {
    case done
    case slot(CapabilitySlot)
    case environment(EnvironmentID)
    case frame(FrameNumber)
    case region(RegionID)
    case bytes([UInt8])
    case upcall(Upcall?)
    case type(TypeID)
    case block(BlockNumber)
    case root(XNRoot)
    case frames([FrameNumber])
}

/// An upcall: how the kernel tells an environment something (Xok's upcalls), delivered in
/// order through `upcallNext`.
public enum Upcall: Hashable, Sendable {
    /// A slice of the caller's begins (prologue).
    case sliceStart(SliceIndex)
    /// The caller's slice ends (epilogue).
    case sliceEnd(SliceIndex)
    /// Another environment asks for a frame back before `deadline` (the abort protocol's
    /// visible phase).
    case revocationRequested(FrameNumber, deadline: UInt64)
    /// The kernel removed the caller's binding of a frame: revocation was forced, or the
    /// frame's owner died.
    case frameRevoked(FrameNumber)
    /// The caller's wakeup predicate became true.
    case wakeup
    /// A message.
    case message(from: EnvironmentID, [UInt8])
}

// MARK: - Wire encoding

/// Appends little-endian fields. Its storage only grows, so one writer reused for every
/// call (`removeAll`) allocates nothing once it has held the largest; writes are plain
/// stores, with one check of room (and of sharing, since a copy writes apart) per field.
public struct WireWriter {
    /// Raw bytes and their capacity.
    @usableFromInline final class Storage {
        @usableFromInline let base: UnsafeMutableRawPointer
        @usableFromInline let capacity: Int
        init(capacity: Int) {
            base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
            self.capacity = capacity
        }
        deinit { base.deallocate() }
    }
    @usableFromInline var storage: Storage
    /// Bytes written.
    public internal(set) var count = 0

    public init(capacity: Int = 64) { storage = Storage(capacity: max(16, capacity)) }

    /// What is written.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Calls `body` with what is written, in place.
    @inlinable
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        defer { withExtendedLifetime(storage) {} }
        return try body(UnsafeRawBufferPointer(start: storage.base, count: count))
    }

    /// Empties it, keeping its storage.
    public mutating func removeAll() { count = 0 }

    /// Room for `n` more bytes; returns where they go.
    @inline(__always)
    private mutating func claim(_ n: Int) -> UnsafeMutableRawPointer {
        let at = count
        if storage.capacity - at < n || !isKnownUniquelyReferenced(&storage) { regrow(toHold: at + n) }
        count = at + n
        return storage.base + at
    }

    /// New storage of its own, with room for `needed` bytes, holding what is written.
    private mutating func regrow(toHold needed: Int) {
        let larger = Storage(capacity: max(needed, 2 * storage.capacity))
        larger.base.copyMemory(from: storage.base, byteCount: count)
        storage = larger
    }

    // The field writers and readers are inlined into the encoders and decoders: as calls,
    // they cost as much as a null call's kernel work.
    @inline(__always) public mutating func u8(_ v: UInt8) { claim(1).storeBytes(of: v, as: UInt8.self) }
    @inline(__always) public mutating func u16(_ v: UInt16) { integer(v) }
    @inline(__always) public mutating func u32(_ v: UInt32) { integer(v) }
    @inline(__always) public mutating func u64(_ v: UInt64) { integer(v) }
    @inline(__always)
    private mutating func integer<T: FixedWidthInteger>(_ v: T) {
        claim(MemoryLayout<T>.size).storeBytes(of: v.littleEndian, as: T.self)
    }
    /// Overwrites the four bytes at `offset` (a length field written before what it
    /// counts); nothing when they lie outside what is written.
    public mutating func patch32(_ v: UInt32, at offset: Int) {
        guard offset >= 0, count - offset >= 4 else { return }
        if !isKnownUniquelyReferenced(&storage) { regrow(toHold: count) }
        (storage.base + offset).storeBytes(of: v.littleEndian, as: UInt32.self)
    }
    public mutating func bool(_ v: Bool) { u8(v ? 1 : 0) }
    /// Counts are written truncated, never trapping: a list too long for its count field
    /// no longer matches its count, and the decoder refuses it (`badRequest`).
    public mutating func data(_ v: [UInt8]) {
        u32(UInt32(truncatingIfNeeded: v.count))
        let to = claim(v.count)
        v.withUnsafeBytes { UnsafeMutableRawBufferPointer(start: to, count: $0.count).copyMemory(from: $0) }
    }
    public mutating func count16(_ n: Int) { u16(UInt16(truncatingIfNeeded: n)) }
    public mutating func capability(_ c: Capability) {
        u8(UInt8(truncatingIfNeeded: c.name.count))
        u8(c.rights.rawValue)
        for component in c.name { u64(component) }
    }
    public mutating func acl(_ a: AccessControlList) {
        count16(a.entries.count)
        for entry in a.entries { capability(entry) }
    }
}

/// Reads little-endian fields; every read is bounds-checked and throws `badRequest`.
/// It reads bytes in place, so it lives only inside the `withUnsafeBytes` that lent them.
public struct WireReader {
    private let bytes: UnsafeRawBufferPointer
    private var position: Int

    public init(_ bytes: UnsafeRawBufferPointer, from position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    public var atEnd: Bool { position == bytes.count }

    private mutating func take(_ n: Int) throws(KernelError) -> UnsafeRawBufferPointer {
        guard n >= 0, bytes.count - position >= n else { throw .badRequest }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<position + n])
    }
    @inline(__always)
    private mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) throws(KernelError) -> T {
        let size = MemoryLayout<T>.size
        guard bytes.count - position >= size else { throw .badRequest }
        let v = bytes.loadUnaligned(fromByteOffset: position, as: T.self)
        position += size
        return T(littleEndian: v)
    }
    @inline(__always) public mutating func u8() throws(KernelError) -> UInt8 { try integer(UInt8.self) }
    @inline(__always) public mutating func u16() throws(KernelError) -> UInt16 { try integer(UInt16.self) }
    @inline(__always) public mutating func u32() throws(KernelError) -> UInt32 { try integer(UInt32.self) }
    @inline(__always) public mutating func u64() throws(KernelError) -> UInt64 { try integer(UInt64.self) }
    public mutating func bool() throws(KernelError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        default: throw .badRequest
        }
    }
    public mutating func data(max: Int) throws(KernelError) -> [UInt8] {
        let n = Int(try u32())
        guard n <= max else { throw .badRequest }
        return Array(try take(n))
    }
    public mutating func capability() throws(KernelError) -> Capability {
        let count = Int(try u8())
        let rights = Rights(rawValue: try u8())
        guard count <= KernelLimits.nameComponentsMax, Rights.all.isSuperset(of: rights) else { throw .badRequest }
        var name: [UInt64] = []
        for _ in 0..<count { name.append(try u64()) }
        return try Capability(name: name, rights: rights)
    }
    public mutating func acl() throws(KernelError) -> AccessControlList {
        let count = Int(try u16())
        guard count <= KernelLimits.aclEntriesMax else { throw .badRequest }
        var entries: [Capability] = []
        for _ in 0..<count { entries.append(try capability()) }
        return try AccessControlList(entries)
    }
    public mutating func slot() throws(KernelError) -> CapabilitySlot { CapabilitySlot(rawValue: try u16()) }
    public mutating func slots() throws(KernelError) -> [CapabilitySlot] {
        let count = Int(try u16())
        guard count <= KernelLimits.capabilitySlots else { throw .badRequest }
        var result: [CapabilitySlot] = []
        for _ in 0..<count { result.append(try slot()) }
        return result
    }
    public mutating func components() throws(KernelError) -> [UInt64] {
        let count = Int(try u16())
        guard count <= KernelLimits.nameComponentsMax else { throw .badRequest }
        var result: [UInt64] = []
        for _ in 0..<count { result.append(try u64()) }
        return result
    }
}

