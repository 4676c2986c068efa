// A small library file system for testing XN without C-FFS: a tree of node blocks, each
// stamped with its owner's id and holding up to 255 entries of (block, type), with data
// blocks as leaves. Its templates are generated for an owner field at a given offset, so
// two file systems with different layouts can share one disk. Like any library file
// system it imports only `XokABI` (and the BPF builder for its UDFs) and reaches the disk
// only through a `KernelPort`: Package.swift gives it no other dependency.
//
//     node block:  owner u64 at `ownerOffset` (0 or 8); in the other half of the
//                  16-byte header, the high-water mark u32: every slot in use is below it
//                  entries from byte 16: block u64, type u64 (block 0 = empty slot)
//
// `owns` looks only below the high-water mark (rounded up to its unroll of five), so a
// directory's check costs what it holds, not what it could hold. An entry above the mark
// is no pointer at all; raising the mark over one is a change XN checks like any other.

import BPF
import XokABI

/// The node format and its three UDFs.
public struct TreeFormat: Sendable {
    public let name: String
    public let ownerOffset: Int
    public static let entriesStart = 16
    public static let entryBytes = 16
    public static let entries = (KernelLimits.pageBytes - entriesStart) / entryBytes

    public init(name: String, ownerOffset: Int) {
        precondition(ownerOffset == 0 || ownerOffset == 8)
        self.name = name
        self.ownerOffset = ownerOffset
    }

    /// Where the high-water mark lives: the half of the header the owner does not use.
    public var highWaterOffset: Int { 8 - ownerOffset }

    /// `owns`: every nonzero entry below the high-water mark, as (block, type). Unrolled
    /// five entries a turn (so the mark counts in fives), r9 walking the output area.
    public var owns: [UInt8] {
        let perTurn = 5
        var b = ProgramBuilder()
        let loop = b.makeLabel(), done = b.makeLabel(), clamped = b.makeLabel()
        b.mov(.r0, 0)
        b.mov(.r9, .r3)
        // r2: the byte offset where the scan stops, 16 + 16 × min(mark, 255).
        b.load(.word, .r2, from: .r1, offset: Int16(highWaterOffset))
        b.branch(.le, .r2, .immediate(Int32(Self.entries)), to: clamped)
        b.mov(.r2, .immediate(Int32(Self.entries)))
        b.bind(clamped)
        b.alu(.lsh, .r2, 4)
        b.add(.r2, .immediate(Int32(Self.entriesStart)))
        b.mov(.r6, .immediate(Int32(Self.entriesStart)))
        b.bind(loop)
        b.branch(.ge, .r6, .r2, to: done)
        b.mov(.r4, .r1)
        b.add(.r4, .r6)
        for k in 0..<perTurn {
            let skip = b.makeLabel()
            b.load(.double, .r5, from: .r4, offset: Int16(k * Self.entryBytes))
            b.branch(.eq, .r5, 0, to: skip)
            b.load(.double, .r7, from: .r4, offset: Int16(k * Self.entryBytes + 8))
            b.store(.double, to: .r9, offset: 0, .r5)
            b.store(.double, to: .r9, offset: 8, .r7)
            b.add(.r9, .immediate(Int32(Self.entryBytes)))
            b.add(.r0, 1)
            b.bind(skip)
        }
        b.add(.r6, .immediate(Int32(perTurn * Self.entryBytes)))
        b.branch(.lt, .r6, .immediate(Int32(KernelLimits.pageBytes)), to: loop)
        b.bind(done)
        b.exit()
        return try! b.build().bytes
    }

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

    /// `acl`: a block stamped with an owner may be read (read right) or changed (write
    /// right) only by a credential whose first name component is that owner, and the stamp
    /// may not change; a fresh block (owner 0) may only be stamped by its new owner.
    public var acl: [UInt8] {
        let credential = Int16(AclContext.credentialOffset)
        let owner = Int16(ownerOffset), ownerAfter = Int16(AclContext.blockAfterOffset + ownerOffset)
        var b = ProgramBuilder()
        let deny = b.makeLabel(), allow = b.makeLabel(), owned = b.makeLabel(), reading = b.makeLabel()
        b.load(.word, .r2, from: .r1, offset: Int16(AclContext.operationOffset))
        b.load(.double, .r3, from: .r1, offset: credential + 8)
        b.branch(.eq, .r3, 0, to: deny)
        b.load(.double, .r4, from: .r1, offset: credential + 16)
        b.load(.double, .r5, from: .r1, offset: credential)
        b.load(.double, .r6, from: .r1, offset: owner)
        b.branch(.ne, .r6, 0, to: owned)
        b.load(.double, .r7, from: .r1, offset: ownerAfter)
        b.branch(.ne, .r7, .r4, to: deny)
        b.emit(.branch(.set, .bits64, .r5, .immediate(Int32(Rights.write.rawValue)), offset: 0), to: allow)
        b.jump(to: deny)
        b.bind(owned)
        b.branch(.ne, .r6, .r4, to: deny)
        b.branch(.eq, .r2, .immediate(Int32(AclContext.Operation.read.rawValue)), to: reading)
        b.load(.double, .r7, from: .r1, offset: ownerAfter)
        b.branch(.ne, .r7, .r6, to: deny)
        b.emit(.branch(.set, .bits64, .r5, .immediate(Int32(Rights.write.rawValue)), offset: 0), to: allow)
        b.jump(to: deny)
        b.bind(reading)
        b.emit(.branch(.set, .bits64, .r5, .immediate(Int32(Rights.read.rawValue)), offset: 0), to: allow)
        b.bind(deny)
        b.mov(.r0, 0)
        b.exit()
        b.bind(allow)
        b.mov(.r0, 1)
        b.exit()
        return try! b.build().bytes
    }

    /// `size`: a node is one block.
    public var size: [UInt8] {
        var b = ProgramBuilder()
        b.mov(.r0, .immediate(Int32(KernelLimits.pageBytes)))
        b.exit()
        return try! b.build().bytes
    }

    /// Installs the format through `port` (or finds it installed). Each UDF travels in a
    /// frame of the caller's, which it frees afterwards.
    public func install<P: KernelPort>(through port: P, slots: TreeSlots, types: CapabilitySlot,
                                       frameACL: AccessControlList) throws(KernelError) -> TypeID {
        if let existing = try? port.type(named: name) { return existing }
        var spans: [FrameSpan] = []
        defer { for span in spans { try? port.unmap(span.frame); try? port.free(span.frame, credential: slots.own) } }
        for code in [owns, acl, size] {
            let frame = try port.allocateFrame(credential: slots.frames, acl: frameACL)
            spans.append(FrameSpan(frame: frame, length: UInt32(code.count)))
            try port.map(frame, writable: true, credential: slots.own)
            try port.store(code, into: frame, offset: 0)
        }
        return try port.installType(named: name, owns: spans[0], acl: spans[1], size: spans[2], credential: types)
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

    /// Removes `child` (which must hold nothing) from `parent`.
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
