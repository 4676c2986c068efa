// Writeback and crash ordering (DESIGN.md §5):
// (1) a freed block becomes free only once the parent without the pointer is durable;
// (2) a parent pointing to new, not yet durable metadata is tainted and its writeback is
//     refused (`tainted`), so no persistent pointer to uninitialized data is ever written;
// (3) only the environment that dirtied a block writes it back, except that anyone may
//     flush the dirty blocks of an environment that died, so no handed-over data is lost.
// Each writeback issues its blocks in block order and ends with a barrier.

import XokABI

extension XN {
    /// Writes back the dirty blocks among `blocks`, in block order, then a barrier.
    /// - Throws: `notOwner` (a block dirtied by another environment still alive),
    ///   `tainted` (a block pointing to new metadata not yet durable), `device`. Nothing
    ///   is written when it throws for a block's state.
    public func writeback(_ blocks: [BlockNumber], by environment: EnvironmentID) throws(XNError) {
        try write(blocks, by: environment)
    }

    /// Writeback on behalf of `environment`, or of the kernel itself (nil: the shutdown
    /// flush, which may write any block).
    func write(_ blocks: [BlockNumber], by environment: EnvironmentID?) throws(XNError) {
        let dirty = Set(blocks).sorted().filter { cache[$0]?.dirty == true }
        for block in dirty {
            if let owner = cache[block]!.owner, let environment, owner != environment, !dead.contains(owner) { throw .notOwner }
            if isTainted(block) { throw .tainted }
        }
        guard !dirty.isEmpty else { return }
        for block in dirty { cache[block]!.state = .goingOut }
        do {
            try device.write(dirty.map { ($0, cache[$0]!.contents) })
            try device.barrier()
        } catch {
            for block in dirty { cache[block]!.state = .valid }
            throw .device(error.message)
        }
        for block in dirty {
            cache[block]!.state = .valid
            cache[block]!.dirty = false
            cache[block]!.durability = .durable
        }
        releaseFreedBlocks(afterWriting: Set(dirty))
    }

    /// Frees the blocks whose old parent is now durable without them — and, in a cascade,
    /// blocks whose old parent was itself just freed (nothing on disk reaches them).
    func releaseFreedBlocks(afterWriting written: Set<BlockNumber>) {
        var released = Set<BlockNumber>()
        var changed = true
        while changed {
            changed = false
            for (child, parent) in pendingFree.sorted(by: { $0.key < $1.key }) {
                let parentGone = released.contains(parent) || (types[parent] == nil && pendingFree[parent] == nil)
                if written.contains(parent) || parentGone {
                    pendingFree[child] = nil
                    allocated[Int(child)] = false
                    released.insert(child)
                    changed = true
                }
            }
        }
    }

    /// Writes back every dirty block, children before parents (for shutdown).
    func flushAll() throws(XNError) {
        var rounds = 0
        while true {
            let ready = cache.keys.filter { cache[$0]!.dirty && !isTainted($0) }
            if ready.isEmpty { break }
            try write(ready, by: nil)
            rounds += 1
            precondition(rounds <= cache.count + 1, "every round makes a level of new metadata durable")
        }
    }

    /// The dirty blocks an environment that died left behind, which any flusher may write.
    public func orphanedDirtyBlocks() -> [BlockNumber] {
        cache.keys.filter { b in cache[b]!.dirty && cache[b]!.owner.map { dead.contains($0) } == true }
    }
}
