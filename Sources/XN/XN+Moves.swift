// Moves (docs/xn.md, "Moves"): bytes, and the pointers in them, leaving one metadata block
// for another in one change — a file's entry going to another directory. XN checks both
// blocks' UDFs, that the pointers go with the bytes, and that the tree stays a tree; it
// then ties the two blocks into a group that reaches the disk as one unit, with whatever
// else must go with it (`atomicUnit`): the unit's images go to the move log, a record
// naming them follows, and only then are the blocks written in place. A crash before the
// record leaves the old blocks; after it, mount replays the log. So a pointer is never on
// disk in both blocks, or in neither.

import BPF
import XokABI

/// A move log record: the blocks a unit writes, each with the checksum of its image.
struct MoveRecord {
    var blocks: [(block: BlockNumber, checksum: UInt32)]

    /// The record block: magic u64, count u32, then (block u64, checksum u32) each; sealed.
    var encoded: [UInt8] {
        var payload = [UInt8](repeating: 0, count: XNLayout.payloadBytes)
        payload.put64(XNLayout.moveLogMagic, at: 0)
        payload.put32(UInt32(blocks.count), at: 8)
        for (i, entry) in blocks.enumerated() {
            payload.put64(entry.block, at: 16 + 12 * i)
            payload.put32(entry.checksum, at: 24 + 12 * i)
        }
        return Seal.sealed(payload[...])
    }

    /// The record in `block`, or nil when it holds none (erased, torn, or never written).
    /// - Throws: `corruptImage` for a sealed record that names too many blocks, a block
    ///   outside the data area, or one block twice.
    init?(_ block: [UInt8], _ g: XNLayout.Geometry) throws(XNError) {
        guard Seal.isSealed(block), block.u64(at: 0) == XNLayout.moveLogMagic else { return nil }
        let count = Int(block.u32(at: 8))
        guard count >= 1, count <= XNLayout.moveLogImages else { throw .corruptImage("the move log record names \(count) blocks") }
        blocks = (0..<count).map { (block.u64(at: 16 + 12 * $0), block.u32(at: 24 + 12 * $0)) }
        for entry in blocks where entry.block < g.dataStart || entry.block >= g.blockCount {
            throw .corruptImage("the move log record names block \(entry.block), outside the data area")
        }
        guard Batch.distinct(blocks.map { $0.block }) else { throw .corruptImage("the move log record names a block twice") }
    }

    init(blocks: [(block: BlockNumber, checksum: UInt32)]) { self.blocks = blocks }
}

extension XN {
    /// Moves `count` bytes at `offset` of cached metadata block `source` to `at` of cached
    /// metadata block `destination`, where they must land on zeros, then applies `edits`
    /// (each inside the landing range) there. The pointers `owns` finds in the moved bytes
    /// leave `source` and appear in `destination`, and nothing else changes: `source`'s
    /// acl UDF is asked with operation `moveOut` (the range zeroed), `destination`'s with
    /// `moveIn` (before: the bytes landed as they were; after: with the edits). A moved
    /// block may not end up under itself.
    /// - Throws: `badModification` (a range out of the block, an empty one, an edit outside
    ///   the landing range, one block for both), `destinationInUse`, `cycle`, `moving` (the
    ///   group would outgrow the log), and what `modify` throws. Nothing changes when it
    ///   throws.
    public func move(from source: BlockNumber, offset: Int, count: Int, to destination: BlockNumber, at landing: Int,
                     edits: [Modification], credential: Capability, by environment: EnvironmentID) throws(XNError) {
        guard source != destination, count >= 1, count <= XNLayout.blockBytes,
              offset >= 0, offset <= XNLayout.blockBytes - count, landing >= 0, landing <= XNLayout.blockBytes - count else {
            throw .badModification
        }
        for edit in edits {
            guard edit.offset >= landing, edit.offset <= landing + count, edit.bytes.count <= landing + count - edit.offset else {
                throw .badModification
            }
        }
        let (sourceEntry, sourceTemplate) = try movable(source, credential, environment)
        let (destinationEntry, destinationTemplate) = try movable(destination, credential, environment)

        // The three states: the source without the bytes, the destination with them as they
        // were, and with the edits.
        let sourceBefore = contents(sourceEntry)
        let destinationBefore = contents(destinationEntry)
        guard destinationBefore[landing..<landing + count].allSatisfy({ $0 == 0 }) else { throw .destinationInUse }
        var sourceAfter = sourceBefore
        sourceAfter.replaceSubrange(offset..<offset + count, with: repeatElement(0, count: count))
        var landed = destinationBefore
        landed.replaceSubrange(landing..<landing + count, with: sourceBefore[offset..<offset + count])
        let (destinationAfter, _, _) = try applied(edits, to: landed)

        try authorize(sourceTemplate, before: sourceBefore, after: sourceAfter, first: offset, count: count, operation: .moveOut,
                      target: destination, credential: credential, block: source)
        try authorize(destinationTemplate, before: landed, after: destinationAfter, first: landing, count: count, operation: .moveIn,
                      target: source, credential: credential, block: destination)
        try requirePath(through: source, to: source, credential: credential)
        try requirePath(through: destination, to: destination, credential: credential)

        // The pointers: the source keeps a subset of its own, and the destination gains
        // exactly the rest. `owns` runs even with checks off: it is the only way to know
        // which blocks move.
        let sourcePointers = try sourceTemplate.pointers(in: sourceAfter)
        try validate(sourcePointers)
        guard let moved = Self.removing(sourcePointers, from: sourceEntry.pointers) else { throw .pointerInvented }
        let destinationPointers = try destinationTemplate.pointers(in: destinationAfter)
        try validate(destinationPointers)
        let expected = (destinationEntry.pointers + moved).sorted()
        if destinationPointers != expected {
            throw destinationPointers.contains(where: { !expected.contains($0) }) ? .pointerInvented : .pointerLost
        }
        // The tree stays a tree: no moved block may be the destination or above it. And it
        // stays one on disk: a block above the destination that a move not yet on disk
        // brought there may still be, on disk, under a moved block (a directory moved into
        // one just moved out of it). Such a move joins this one's group, so the two reach
        // the disk together.
        var group = Set((moveGroups[source] ?? [source]) + (moveGroups[destination] ?? [destination]))
        for block in ancestors(of: destination) {
            if moved.contains(where: { $0.block == block }) { throw .cycle }
            if let pending = moveGroups[block] { group.formUnion(pending) }
        }
        // Nor through a pointer a shared block dropped that its old parent still holds on
        // disk: that waits until the parent is written.
        if !drops.isEmpty {
            let above = diskAncestors(of: destination, throughMoves: false)
            if moved.contains(where: { above.contains($0.block) }) { throw .moving }
        }
        guard closed(group).count <= XNLayout.moveGroupMax else { throw .moving }

        // Commit.
        memory.store(sourceAfter, in: sourceEntry.frame)
        memory.store(destinationAfter, in: destinationEntry.frame)
        cache[source]!.pointers = sourcePointers
        cache[destination]!.pointers = destinationPointers
        markWritten(source, by: environment)
        markWritten(destination, by: environment)
        for pointer in moved {
            movedFrom[pointer.block, default: []].insert(source)
            if parents[pointer.block] == source {
                parents[pointer.block] = destination
            } else if let i = sharers[pointer.block]?.firstIndex(of: source) {
                sharers[pointer.block]![i] = destination
            }
            if cache[pointer.block] != nil {
                cache[pointer.block]!.parent = parents[pointer.block]
                changed.insert(pointer.block)
            }
        }
        let members = group.sorted()
        for block in members { moveGroups[block] = members }
        pathsReshaped()
    }

    /// `all` without the pointers of `kept` (both sorted), or nil when `kept` holds one
    /// that `all` does not (as often as it does: a shared block may be named twice).
    static func removing(_ kept: [Pointer], from all: [Pointer]) -> [Pointer]? {
        var rest: [Pointer] = []
        var k = 0
        for p in all {
            if k < kept.count && kept[k] == p { k += 1 } else { rest.append(p) }
        }
        return k == kept.count ? rest : nil
    }

    /// The registry entry and template of a block a move may change.
    private func movable(_ block: BlockNumber, _ credential: Capability,
                         _ environment: EnvironmentID) throws(XNError) -> (CacheEntry, Template) {
        guard let entry = cache[block] else { throw types[block] == nil ? .notMetadata : .notCached }
        guard let template = template(entry.type) else { throw .notMetadata }
        if let root = roots.first(where: { $0.block == block }), !rootPermits(root, credential, .write) { throw .aclDenied }
        try requireInitializer(entry, environment)
        return (entry, template)
    }

    /// `blocks` with what must go with them: each one's move group, and for each that no
    /// parent on disk reaches yet, its parent — and so on, for what those add.
    func closed(_ blocks: Set<BlockNumber>) -> Set<BlockNumber> {
        var result = blocks
        var queue = Array(blocks)
        while let block = queue.popLast() {
            for member in moveGroups[block] ?? [] where result.insert(member).inserted { queue.append(member) }
            if unlinked.contains(block), let parent = parents[block], result.insert(parent).inserted { queue.append(parent) }
        }
        return result
    }

    /// Whether a writeback of `block` would be refused for a taint: its own, or its
    /// move group's (`atomicUnit`).
    func isHeldBack(_ block: BlockNumber) -> Bool {
        moveGroups.isEmpty || moveGroups[block] == nil ? isTainted(block) : atomicUnit(block) == nil
    }

    /// The blocks that must reach the disk as one with `block`, which is in a move group:
    /// the group; the parent of any member no parent on disk reaches yet (else the disk
    /// could hold the move in a block it cannot reach); and every new block on a path of
    /// new blocks from a member back down to a member or into another group, with that
    /// group (written apart, each would wait for the other forever; written as one,
    /// pointers among them cannot dangle). Nil while a member points to a new block that
    /// must go first, or when the unit outgrows the move log.
    func atomicUnit(_ block: BlockNumber) -> [BlockNumber]? {
        guard let group = moveGroups[block] else { return nil }
        var unit = closed(Set(group))
        var grew = true
        while grew {
            grew = false
            for member in unit.sorted() {
                for pointer in cache[member]?.pointers ?? [] where !unit.contains(pointer.block) && isUnwritten(pointer.block) {
                    let back = newBlocksLeadingBack(from: pointer.block, into: unit)
                    guard !back.isEmpty else { continue }
                    unit = closed(unit.union(back))
                    grew = true
                }
            }
            guard unit.count <= XNLayout.moveLogImages else { return nil }
        }
        for member in unit {
            for pointer in cache[member]?.pointers ?? [] where !unit.contains(pointer.block) && isUnwritten(pointer.block) { return nil }
        }
        return unit.sorted()
    }

    func isUnwritten(_ block: BlockNumber) -> Bool {
        if case .unwritten? = cache[block]?.durability { true } else { false }
    }

    /// The new blocks below `start` (itself included) from which a path of new blocks
    /// leads to a block of `unit` or of a move group; empty when none does.
    func newBlocksLeadingBack(from start: BlockNumber, into unit: Set<BlockNumber>) -> Set<BlockNumber> {
        let isTarget = { (b: BlockNumber) in unit.contains(b) || self.moveGroups[b] != nil }
        // The new blocks reachable from `start` through new blocks, stopping at targets.
        var seen: Set<BlockNumber> = [start]
        var order: [BlockNumber] = [start]
        var next = 0
        while next < order.count {
            let b = order[next]
            next += 1
            if isTarget(b) { continue }
            for pointer in cache[b]?.pointers ?? [] where isUnwritten(pointer.block) && seen.insert(pointer.block).inserted {
                order.append(pointer.block)
            }
        }
        // Those that lead to a target, found from the bottom up.
        var leads = Set(order.filter(isTarget))
        var changed = true
        while changed {
            changed = false
            for b in order where !leads.contains(b) {
                if (cache[b]?.pointers ?? []).contains(where: { leads.contains($0.block) }) {
                    leads.insert(b)
                    changed = true
                }
            }
        }
        return leads.contains(start) ? leads.subtracting(unit) : []
    }

    /// Writes a move unit so that the disk holds all of it or none: the images to the
    /// log, a barrier, the record, a barrier, the blocks in place, a barrier, the record
    /// erased, a barrier (a later write of these blocks must not be undone by a replay).
    func writeGroup(_ writes: [(BlockNumber, [UInt8])]) throws(DeviceError) {
        let record = MoveRecord(blocks: writes.map { ($0.0, CRC32C.checksum($0.1[...])) })
        try device.write(writes.enumerated().map { (geometry.moveLogStart + 1 + UInt64($0.offset), $0.element.1) })
        try device.barrier()
        try device.write([(geometry.moveLogStart, record.encoded)])
        try device.barrier()
        try device.write(writes)
        try device.barrier()
        try device.write([(geometry.moveLogStart, [UInt8](repeating: 0, count: XNLayout.blockBytes))])
        try device.barrier()
    }
}

extension XNStructures {
    /// The blocks a committed move log record says must be on disk, with their images;
    /// empty when the log holds no record.
    /// - Throws: `corruptImage` for a record whose images do not match it; `device`.
    static func loggedMove(_ device: inout D, _ g: XNLayout.Geometry) throws(XNError) -> [(BlockNumber, [UInt8])] {
        guard let record = try MoveRecord(try readBlock(&device, g.moveLogStart), g) else { return [] }
        var images: [(BlockNumber, [UInt8])] = []
        for (i, entry) in record.blocks.enumerated() {
            let image = try readBlock(&device, g.moveLogStart + 1 + UInt64(i))
            guard CRC32C.checksum(image[...]) == entry.checksum else {
                throw .corruptImage("the move log image of block \(entry.block) does not match its record")
            }
            images.append((entry.block, image))
        }
        return images
    }

    /// Finishes a move the log holds (mount, after a crash): the blocks in place, then
    /// the record erased.
    static func replayMoveLog(_ device: inout D, _ g: XNLayout.Geometry) throws(XNError) {
        let images = try loggedMove(&device, g)
        guard !images.isEmpty else { return }
        do {
            try device.write(images)
            try device.barrier()
            try device.write([(g.moveLogStart, [UInt8](repeating: 0, count: XNLayout.blockBytes))])
            try device.barrier()
        } catch { throw .device(error.message) }
    }
}

/// A device seen as it will be once its move log is replayed: what fsck checks, without
/// writing anything.
public struct ReplayedView<D: BlockDevice>: BlockDevice {
    public var base: D
    let images: [BlockNumber: [UInt8]]
    public var blockCount: UInt64 { base.blockCount }

    /// `device`, an XN disk, with the blocks its move log holds read from the log;
    /// `pending` is how many blocks that is (0: the log holds no record).
    /// - Throws: `notXN`, `corruptImage` (the superblock, or a log record whose images do
    ///   not match it), `device`.
    public init(_ device: D) throws(XNError) {
        var device = device
        let superblock = try Superblock(decoding: XNStructures<D>.readBlock(&device, 0), deviceBlocks: device.blockCount)
        var images: [BlockNumber: [UInt8]] = [:]
        for (block, image) in try XNStructures<D>.loggedMove(&device, superblock.geometry) { images[block] = image }
        base = device
        self.images = images
    }

    public var pending: Int { images.count }

    public mutating func read(_ blocks: [BlockNumber]) throws(DeviceError) -> [[UInt8]] {
        var result = try base.read(blocks)
        for (i, block) in blocks.enumerated() { if let image = images[block] { result[i] = image } }
        return result
    }

    public mutating func write(_ writes: [(BlockNumber, [UInt8])]) throws(DeviceError) { throw DeviceError("a replayed view is read-only") }
    public mutating func barrier() throws(DeviceError) {}
}
