// A small library file system for testing XN without C-FFS: a tree of node blocks, each
// stamped with its owner's id and holding up to 255 entries of (block, type), with data
// blocks as leaves. Its templates are generated for an owner field at a given offset, so
// two file systems with different layouts can share one disk. Like any library file
// system it imports only `XokABI` and reaches the disk only through a `KernelPort`:
// Package.swift gives it no other dependency. Its UDFs are built with the BPF builder by
// the `TreeFSUDFs` target and handed to `install` as bytes.
//
//     node block:  owner u64 at `ownerOffset` (0 or 8); in the other half of the
//                  16-byte header, the high-water mark u32: every slot in use is below it
//                  entries from byte 16: block u64, type u64 (block 0 = empty slot)
//
// `owns` looks only below the high-water mark (rounded up to its unroll of five), so a
// directory's check costs what it holds, not what it could hold. An entry above the mark
// is no pointer at all; raising the mark over one is a change XN checks like any other.

import XokABI

/// The three UDFs of a format, as bytecode.
public struct TreeUDFs: Sendable {
    public var owns: [UInt8], acl: [UInt8], size: [UInt8]
    public init(owns: [UInt8], acl: [UInt8], size: [UInt8]) {
        self.owns = owns
        self.acl = acl
        self.size = size
    }
}

/// The node format.
public struct TreeFormat: Sendable {
    public let name: String
    public let ownerOffset: Int
    /// Whether XN lets a node of this format have several parents (`link`).
    public let shareable: Bool
    public static let entriesStart = 16
    public static let entryBytes = 16
    public static let entries = (KernelLimits.pageBytes - entriesStart) / entryBytes

    public init(name: String, ownerOffset: Int, shareable: Bool = false) {
        precondition(ownerOffset == 0 || ownerOffset == 8)
        self.name = name
        self.ownerOffset = ownerOffset
        self.shareable = shareable
    }

    /// Where the high-water mark lives: the half of the header the owner does not use.
    public var highWaterOffset: Int { 8 - ownerOffset }

    /// The high-water mark set to `mark` (a change of a node).
    public func highWater(_ mark: Int) -> (offset: Int, bytes: [UInt8]) {
        var bytes = [UInt8](repeating: 0, count: 4)
        for i in 0..<4 { bytes[i] = UInt8(truncatingIfNeeded: mark >> (8 * i)) }
        return (highWaterOffset, bytes)
    }

    /// A node's high-water mark.
    public func mark(of contents: [UInt8]) -> Int { Int(contents.u64le(highWaterOffset) & 0xffff_ffff) }

    /// The slots `owns` looks at in a node.
    public func scanned(_ contents: [UInt8]) -> Range<Int> { 0..<min(Self.entries, (mark(of: contents) + 4) / 5 * 5) }

    /// Installs the format through `port` (or finds it installed). Each UDF travels in a
    /// frame of the caller's, which it frees afterwards.
    public func install<P: KernelPort>(through port: P, udfs: TreeUDFs, slots: TreeSlots, types: CapabilitySlot,
                                       frameACL: AccessControlList) throws(KernelError) -> TypeID {
        if let existing = try? port.type(named: name) { return existing }
        var spans: [FrameSpan] = []
        defer { for span in spans { try? port.unmap(span.frame); try? port.free(span.frame, credential: slots.own) } }
        for code in [udfs.owns, udfs.acl, udfs.size] {
            let frame = try port.allocateFrame(credential: slots.frames, acl: frameACL)
            spans.append(FrameSpan(frame: frame, length: UInt32(code.count)))
            try port.map(frame, writable: true, credential: slots.own)
            try port.store(code, into: frame, offset: 0)
        }
        return try port.installType(named: name, owns: [spans[0]], acl: [spans[1]], size: [spans[2]], shareable: shareable, credential: types)
    }
}

/// The capability slots a tree client uses.
public struct TreeSlots: Sendable {
    /// A capability named `[ownerID]` with every right: the client's own files.
    public var own: CapabilitySlot
    /// One that passes the kernel's frame ACL, and one its root ACL.
    public var frames: CapabilitySlot
    public var roots: CapabilitySlot
    public init(own: CapabilitySlot, frames: CapabilitySlot, roots: CapabilitySlot) {
        self.own = own
        self.frames = frames
        self.roots = roots
    }
}

/// One environment using a tree file system through its kernel port.
public final class TreeClient<P: KernelPort> {
    public let port: P
    public let ownerID: UInt64
    public let format: TreeFormat
    public let type: TypeID
    public let slots: TreeSlots
    /// A frame of its own, mapped writable, that blocks are copied into to be read.
    private var scratch: FrameNumber?

    public init(port: P, ownerID: UInt64, format: TreeFormat, type: TypeID, slots: TreeSlots) {
        self.port = port
        self.ownerID = ownerID
        self.format = format
        self.type = type
        self.slots = slots
    }

    /// The ACL of the client's frames: its own name, every right.
    public var frameACL: AccessControlList {
        // One entry with a one-component name: within every limit.
        try! AccessControlList([try! Capability(name: [ownerID], rights: .all)])
    }

    /// A fresh frame of the client's, for the cache to hold a block in.
    public func newFrame() throws(KernelError) -> FrameNumber {
        try port.allocateFrame(credential: slots.frames, acl: frameACL)
    }

    /// The bytes that stamp a fresh node as ours.
    public var stamp: (offset: Int, bytes: [UInt8]) {
        var bytes = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: ownerID >> UInt64(8 * i)) }
        return (format.ownerOffset, bytes)
    }

    /// Creates and stamps a root.
    public func createRoot(name: String) throws(KernelError) -> BlockNumber {
        let frame = try newFrame()
        let block: BlockNumber
        do { block = try port.createRoot(named: name, type: type, protection: slots.own, frame: frame, credential: slots.roots) } catch {
            try? port.free(frame, credential: slots.own)
            throw error
        }
        try port.modify(block, .write, .inline([stamp]), credential: slots.own)
        return block
    }

    /// Makes sure `block` is cached: reads it in with a fresh frame, or finds it there.
    public func cache(_ block: BlockNumber) throws(KernelError) {
        let frame = try newFrame()
        let holder: FrameNumber
        do { holder = try port.readIn(block, frame: frame, credential: slots.own) } catch {
            try? port.free(frame, credential: slots.own)
            throw error
        }
        if holder != frame { try? port.free(frame, credential: slots.own) }
    }

    /// The contents of `block`, read into the client's scratch frame (read in first if
    /// not cached).
    public func contents(_ block: BlockNumber) throws(KernelError) -> [UInt8] {
        let scratch = try scratchFrame()
        do { try port.read(block, into: scratch, credential: slots.own) } catch .notCached {
            try cache(block)
            try port.read(block, into: scratch, credential: slots.own)
        }
        return try port.load(scratch, offset: 0, count: KernelLimits.pageBytes)
    }

    /// The contents of `block`, whose ancestors from its root down are `path`: XN checks a
    /// block's access with its parent's UDF, so the parent must be cached first.
    public func contents(_ block: BlockNumber, via path: [BlockNumber]) throws(KernelError) -> [UInt8] {
        for ancestor in path { _ = try contents(ancestor) }
        return try contents(block)
    }

    private func scratchFrame() throws(KernelError) -> FrameNumber {
        if let scratch { return scratch }
        let frame = try newFrame()
        try port.map(frame, writable: true, credential: slots.own)
        scratch = frame
        return frame
    }

    /// The entry bytes pointing at `child` of `type`.
    public static func entry(_ child: BlockNumber, _ type: TypeID) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: TreeFormat.entryBytes)
        for i in 0..<8 {
            bytes[i] = UInt8(truncatingIfNeeded: child >> UInt64(8 * i))
            bytes[8 + i] = UInt8(truncatingIfNeeded: UInt64(type.rawValue) >> UInt64(8 * i))
        }
        return bytes
    }

    /// The first empty entry slot of `contents`.
    public func freeSlot(in contents: [UInt8]) -> Int? {
        for slot in 0..<TreeFormat.entries {
            let at = TreeFormat.entriesStart + slot * TreeFormat.entryBytes
            if contents[at..<at + 8].allSatisfy({ $0 == 0 }) { return slot }
        }
        return nil
    }

    /// Allocates a child of `childType` under `parent` at the first free block after
    /// `hint`; a node child is stamped as ours. Returns the child.
    public func add(under parent: BlockNumber, type childType: TypeID, hint: BlockNumber = 0) throws(KernelError) -> BlockNumber {
        let contents = try contents(parent)
        guard let slot = freeSlot(in: contents) else { throw .exhausted }
        let child = try port.firstFreeBlock(from: hint)
        let at = TreeFormat.entriesStart + slot * TreeFormat.entryBytes
        var changes = [(offset: at, bytes: Self.entry(child, childType))]
        if slot >= format.mark(of: contents) { changes.append(format.highWater(slot + 1)) }
        let frame = try newFrame()
        do { try port.modify(parent, .allocate(child, childType, frame: frame), .inline(changes), credential: slots.own) } catch {
            try? port.free(frame, credential: slots.own)
            throw error
        }
        if childType != .data {
            try port.modify(child, .write, .inline([stamp]), credential: slots.own)
        }
        return child
    }

    /// Adds another pointer to `child`, a node of shareable `childType` that this client
    /// may read, in a free entry of `node` (a hard link).
    public func link(_ child: BlockNumber, type childType: TypeID, into node: BlockNumber) throws(KernelError) {
        let contents = try contents(node)
        guard let slot = freeSlot(in: contents) else { throw .exhausted }
        let at = TreeFormat.entriesStart + slot * TreeFormat.entryBytes
        var changes = [(offset: at, bytes: Self.entry(child, childType))]
        if slot >= format.mark(of: contents) { changes.append(format.highWater(slot + 1)) }
        try port.modify(node, .link(child), .inline(changes), credential: slots.own)
    }

    /// Removes `child` from `parent`: a block that must hold nothing, or one pointer to a
    /// shared node (with its last, the node and all below it go).
    public func remove(_ child: BlockNumber, from parent: BlockNumber) throws(KernelError) {
        let contents = try contents(parent)
        for slot in format.scanned(contents) {
            let at = TreeFormat.entriesStart + slot * TreeFormat.entryBytes
            if contents.u64le(at) == child {
                var changes = [(offset: at, bytes: [UInt8](repeating: 0, count: TreeFormat.entryBytes))]
                if slot + 1 == format.mark(of: contents) { changes.append(format.highWater(slot)) }
                try port.modify(parent, .free(child), .inline(changes), credential: slots.own)
                return
            }
        }
        throw .notAChild
    }

    /// Moves the entry for `child` from `parent` to a free entry of `node` in one call
    /// (`xnMove`), raising `node`'s high-water mark first when the entry lies past it.
    public func move(_ child: BlockNumber, from parent: BlockNumber, to node: BlockNumber) throws(KernelError) {
        let source = try contents(parent)
        guard let slot = format.scanned(source).first(where: { source.u64le(TreeFormat.entriesStart + $0 * TreeFormat.entryBytes) == child }) else {
            throw .notAChild
        }
        let destination = try contents(node)
        guard let free = freeSlot(in: destination) else { throw .exhausted }
        if free >= format.mark(of: destination) {
            try port.modify(node, .write, .inline([format.highWater(free + 1)]), credential: slots.own)
        }
        try port.move(from: parent, offset: TreeFormat.entriesStart + slot * TreeFormat.entryBytes, count: TreeFormat.entryBytes,
                      to: node, at: TreeFormat.entriesStart + free * TreeFormat.entryBytes, edits: .none, credential: slots.own)
    }

    /// Writes `bytes` at `offset` of data block `block` (cached: it was just allocated, or
    /// read in first).
    public func write(_ bytes: [UInt8], at offset: Int, of block: BlockNumber) throws(KernelError) {
        let changes = XNChanges.inline([(offset, bytes)])
        do { try port.writeData(block, changes, credential: slots.own) } catch .notCached {
            try cache(block)
            try port.writeData(block, changes, credential: slots.own)
        }
    }

    /// The children `node` points to.
    public func children(of node: BlockNumber) throws(KernelError) -> [(block: BlockNumber, type: TypeID)] {
        let contents = try contents(node)
        var result: [(block: BlockNumber, type: TypeID)] = []
        for slot in format.scanned(contents) {
            let at = TreeFormat.entriesStart + slot * TreeFormat.entryBytes
            let block = contents.u64le(at)
            if block != 0 { result.append((block, TypeID(rawValue: UInt32(truncatingIfNeeded: contents.u64le(at + 8))))) }
        }
        return result
    }
}

extension Array where Element == UInt8 {
    public func u64le(_ offset: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(self[offset + i]) << UInt64(8 * i) }
        return v
    }
}
