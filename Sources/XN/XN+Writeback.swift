// Writeback and crash ordering (DESIGN.md §5):
// (1) a freed block becomes free only once the parent without the pointer is durable;
// (2) a parent pointing to new, not yet durable metadata is tainted and its writeback is
//     refused (`tainted`), so no persistent pointer to uninitialized data is ever written;
// (3) anyone may write back any dirty block: writing back reveals nothing and changes
//     nothing a reader sees, and a co-writer who never syncs must not hold back anyone
//     else's changes. So a writeback of a tainted block first writes the new blocks below
//     it, deepest first, whoever allocated them: `sync` means the caller's own changes are
//     on disk, whatever the co-writers of its directories do.
// Each writeback issues its blocks in block order and ends with a barrier.

import XokABI

extension XN {
    /// Writes back the dirty blocks among `blocks`, in block order, then a barrier; a
    /// block in a move group takes its group along, written through the move log; a
    /// block pointing to new blocks not yet written has them written first.
    /// - Throws: `tainted` (a move unit that cannot be written yet), `device`. Nothing of
    ///   `blocks` is written when it throws for a block's state.
    public func writeback(_ blocks: [BlockNumber], by environment: EnvironmentID) throws(XNError) {
        try write(blocks, by: environment)
    }

    /// Writeback on behalf of `environment`, or of the kernel itself (nil). First, with
    /// `descending`, the new blocks that taint what is asked, level by level from the
    /// deepest, each level ending with a barrier.
    func write(_ blocks: [BlockNumber], by environment: EnvironmentID?, descending: Bool = true) throws(XNError) {
        let asked = Set(blocks).filter { dirtySet.contains($0) }
        if descending { try writeNewBlocksBelow(asked) }
        // A block in a move group goes with its whole unit (`atomicUnit`), whoever dirtied
        // the others: writing them only makes durable what XN already let through.
        var groups: [[BlockNumber]] = []
        var grouped = Set<BlockNumber>()
        for block in moveGroups.isEmpty ? [] : asked.sorted() where !grouped.contains(block) && moveGroups[block] != nil {
            guard let unit = atomicUnit(block) else { throw .tainted }
            groups.append(unit)
            grouped.formUnion(unit)
        }
        let dirty = asked.union(grouped).sorted().filter { dirtySet.contains($0) }
        for block in dirty where !grouped.contains(block) && isTainted(block) { throw .tainted }
        guard !dirty.isEmpty else { return }
        for block in dirty { cache[block]!.state = .goingOut }
        do {
            for group in groups {
                try writeGroup(group.filter { dirtySet.contains($0) }.map { ($0, contents(cache[$0]!)) })
            }
            // Straight from the frames: the device copies at most once.
            let plain = dirty.filter { !grouped.contains($0) }
            let frames = plain.map { cache[$0]!.frame }
            try device.write(plain) { UnsafeRawBufferPointer(memory.bytes(of: frames[$0])) }
            try device.barrier()
        } catch {
            for block in dirty { cache[block]!.state = .valid }
            throw .device(error.message)
        }
        for block in grouped { moveGroups[block] = nil }
        // Dropped pointers to shared blocks are on disk now.
        for child in drops.isEmpty ? [] : Array(drops.keys) {
            drops[child]!.subtract(dirty)
            if drops[child]!.isEmpty { drops[child] = nil }
        }
        for child in movedFrom.isEmpty ? [] : Array(movedFrom.keys) {
            movedFrom[child]!.subtract(dirty)
            if movedFrom[child]!.isEmpty { movedFrom[child] = nil }
        }
        for child in freeWaits.isEmpty ? [] : Array(freeWaits.keys) {
            freeWaits[child]!.subtract(dirty)
            if freeWaits[child]!.isEmpty { freeWaits[child] = nil }
        }
        if !unlinked.isEmpty {
            for block in dirty { for pointer in cache[block]!.pointers { unlinked.remove(pointer.block) } }
        }
        for block in dirty {
            cache[block]!.state = .valid
            cache[block]!.dirty = false
            dirtySet.remove(block)
            cache[block]!.writers = []
            cache[block]!.durability = .durable
            changed.insert(block)
            // A parent's taint may have just cleared (each parent's, for a shared block).
            if let parent = cache[block]!.parent { changed.insert(parent) }
            if !sharers.isEmpty, let others = sharers[block] { changed.formUnion(others) }
        }
        releaseFreedBlocks(afterWriting: Set(dirty))
        // Frames the kernel held for dead environments go once their blocks are safe.
        for block in dirty where cache[block]!.owner == nil && !isTainted(block) {
            released.append(ReleasedFrame(frame: cache[block]!.frame, owner: nil))
            cache[block] = nil
        }
    }

    /// Writes the new blocks below `asked` (and below the move units they belong to) that
    /// keep them from being written: a level at a time from the deepest, each in one batch
    /// and one barrier, so a co-writer's thousand new blocks cost a barrier a level, not
    /// one each. A block its level cannot take yet (a move unit, a block still tainted by
    /// another level's) is retried in rounds, each writing whatever XN's ordering lets go
    /// now, until nothing below is left or a round writes nothing.
    private func writeNewBlocksBelow(_ asked: Set<BlockNumber>) throws(XNError) {
        var levels: [[BlockNumber]] = []
        var seen = asked
        var frontier = asked.sorted()
        while !frontier.isEmpty {
            var next: [BlockNumber] = [], level: [BlockNumber] = []
            for block in frontier {
                if let group = moveGroups[block] {
                    for member in closed(Set(group)) where seen.insert(member).inserted { next.append(member) }
                }
                for pointer in cache[block]?.pointers ?? [] where isUnwritten(pointer.block) && seen.insert(pointer.block).inserted {
                    next.append(pointer.block)
                    level.append(pointer.block)
                }
            }
            if !level.isEmpty { levels.append(level) }
            frontier = next
        }
        guard !levels.isEmpty else { return }
        for level in levels.reversed() {
            let dirty = level.filter { dirtySet.contains($0) }
            guard !dirty.isEmpty else { continue }
            do { try write(dirty, by: nil, descending: false) } catch .tainted {
                continue   // left to the rounds below
            }
        }
        var pending = levels.reversed().flatMap { $0 }.filter { dirtySet.contains($0) }
        for _ in 0...pending.count where !pending.isEmpty {
            var progressed = false
            for block in pending where dirtySet.contains(block) {
                do {
                    try write([block], by: nil, descending: false)
                    progressed = true
                } catch .tainted {
                    continue
                }
            }
            pending = pending.filter { dirtySet.contains($0) }
            if !progressed { return }
        }
    }

    /// Frees the blocks whose old parent is now durable without them — and, in a cascade,
    /// blocks whose old parent was itself just freed (nothing on disk reaches them). A
    /// shared block that others dropped before waits for each of them in turn.
    func releaseFreedBlocks(afterWriting written: Set<BlockNumber>) {
        var released = Set<BlockNumber>()
        func done(_ parent: BlockNumber) -> Bool {
            written.contains(parent) || released.contains(parent) || (types[parent] == nil && pendingFree[parent] == nil)
        }
        var changed = true
        while changed {
            changed = false
            for (child, parent) in pendingFree.sorted(by: { $0.key < $1.key }) {
                if done(parent), var waits = freeWaits[child] {
                    waits = waits.filter { !done($0) }
                    if let other = waits.min() {
                        pendingFree[child] = other
                        waits.remove(other)
                        freeWaits[child] = waits.isEmpty ? nil : waits
                        continue
                    }
                    freeWaits[child] = nil
                }
                if done(parent) {
                    pendingFree[child] = nil
                    allocated[child] = false
                    released.insert(child)
                    changed = true
                }
            }
        }
    }

    /// Writes back every dirty block, children before parents (for shutdown).
    func flushAll() throws(XNError) {
        while true {
            if dirtySet.isEmpty { break }
            let ready = dirtySet.sorted().filter { !isHeldBack($0) }
            // Only move units too large for the log can wait on each other for good.
            if ready.isEmpty { throw .tainted }
            // Each round makes at least the deepest level of new metadata durable, so
            // the loop ends within the cache's depth.
            try write(ready, by: nil)
        }
    }

    /// Tells XN an environment died: its clean cached blocks leave the cache (their frames
    /// are released); its dirty ones stay, held by the kernel, for any flusher to write.
    public func environmentDied(_ environment: EnvironmentID) {
        for block in cache.keys.sorted() {
            let entry = cache[block]!
            guard entry.owner == environment || entry.writers.contains(environment) else { continue }
            cache[block]!.writers.removeAll { $0 == environment }
            if entry.owner == environment {
                if !entry.dirty && entry.durability == .durable && entry.state == .valid {
                    released.append(ReleasedFrame(frame: entry.frame, owner: environment))
                    cache[block] = nil
                } else {
                    cache[block]!.owner = nil
                }
            }
            changed.insert(block)
        }
    }

    /// The dirty blocks `environment` answers for: charged to it, or changed by it since
    /// they were last written.
    public func dirtyBlocks(of environment: EnvironmentID) -> [BlockNumber] {
        dirtySet.sorted().filter { cache[$0]!.owner == environment || cache[$0]!.writers.contains(environment) }
    }

    /// Writes back `blocks` with the kernel's own authority, whoever they are charged to,
    /// children before parents; for what an environment handed over before it died. A
    /// block waiting on new metadata outside `blocks` (another environment's new block it
    /// now points to) cannot go first, so then everything dirty is written, as at shutdown.
    public func flush(_ blocks: [BlockNumber]) throws(XNError) {
        var left = Set(blocks).intersection(dirtySet)
        while !left.isEmpty {
            let ready = left.sorted().filter { !isHeldBack($0) }
            if ready.isEmpty { return try flushAll() }
            try write(ready, by: nil)
            left.formIntersection(dirtySet)
        }
    }

    /// The dirty blocks that any environment may now write back (everyone who could
    /// write them is gone).
    public func orphanedDirtyBlocks() -> [BlockNumber] {
        dirtySet.sorted().filter { b in cache[b]!.owner == nil && cache[b]!.writers.isEmpty }
    }
}
