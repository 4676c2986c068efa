// C-FFS's side of the buffer cache. XN keeps the registry (which block is in which
// frame); this keeps what one client needs on top of it: the frames it has mapped, the
// parent through which XN checks each block (a block is read in through its parent, so
// a parent that left the cache is brought back first), the blocks it changed and must
// write back, and frames to give the cache. What to read ahead, when to write behind and
// what to evict is the `CachePolicy`'s, which an application may replace.

import XokABI

/// Decisions a buffer cache leaves to its application.
public protocol CachePolicy: AnyObject {
    /// How many blocks past `index` to read in when a file is read at `index`, given
    /// whether its reads so far have been sequential.
    func readAhead(index: UInt64, sequential: Bool) -> Int
    /// Whether to write back and evict now, with `dataBlocks` file blocks cached and
    /// `dirty` blocks changed and not yet written.
    func shouldWriteBehind(dataBlocks: Int, dirty: Int) -> Bool
}

/// Writes behind once 262,144 file blocks (1 GiB) are cached, then evicts the older
/// half; before that, when the client's frame quota runs out (`BlockCache` evicts then
/// whatever the policy says). Mapped blocks are bounded apart from this: past the
/// kernel's binding limit the older ones are unmapped, staying cached. It reads 32 blocks
/// ahead of a sequential read (C-FFS brings them in with the blocks the read needs, one
/// call for 64; docs/cffs.md).
public final class DefaultCachePolicy: CachePolicy {
    public var dataBlocksMax: Int
    public var readAheadMax: Int
    public init(dataBlocksMax: Int = 262_144, readAheadMax: Int = 32) {
        self.dataBlocksMax = dataBlocksMax
        self.readAheadMax = readAheadMax
    }
    public func readAhead(index: UInt64, sequential: Bool) -> Int { sequential ? readAheadMax : 0 }
    public func shouldWriteBehind(dataBlocks: Int, dirty: Int) -> Bool { dataBlocks >= dataBlocksMax }
}

/// One client's view of the cache.
public final class BlockCache<P: KernelPort> {
    public let port: P
    let identity: CFFSIdentity
    public var policy: CachePolicy
    /// The frame of each block mapped into this environment.
    var mapped: [BlockNumber: FrameNumber] = [:]
    /// Data blocks mapped writable and marked dirty since they were last written.
    var marked: Set<BlockNumber> = []
    /// Each block's parent, as seen on the way down, and the credential it is read with.
    var parentOf: [BlockNumber: BlockNumber] = [:]
    var credentialOf: [BlockNumber: CapabilitySlot] = [:]
    /// The client's own frames holding blocks: they come back when the block leaves.
    var ownFrame: [BlockNumber: FrameNumber] = [:]
    /// Frames of this client's holding no block: unbound, and bound writable here (ready
    /// to be filled with a new block's bytes).
    var spare: [FrameNumber] = []
    var spareBound: [FrameNumber] = []
    /// Blocks this client changed and has not written back.
    public private(set) var dirty: Set<BlockNumber> = []
    /// File blocks cached for this client (what write-behind evicts), and the order they
    /// came in (oldest from `dataOrderStart`; blocks gone since are skipped).
    private(set) var dataBlocks: Set<BlockNumber> = []
    private var dataOrder: [BlockNumber] = []
    private var dataOrderStart = 0

    init(port: P, identity: CFFSIdentity, policy: CachePolicy) {
        self.port = port
        self.identity = identity
        self.policy = policy
    }

    /// A frame of this client's to hold a block. When its quota has no more, older file
    /// blocks are written back and evicted for theirs.
    func spareFrame() throws(Errno) -> FrameNumber {
        if let frame = spare.popLast() ?? spareBound.popLast() { return frame }
        do { return try port.allocateFrame(credential: identity.frameSlot, acl: identity.frameACL) } catch {
            guard error == .limitExceeded || error == .exhausted, !dataBlocks.isEmpty else { throw Errno(error) }
        }
        try shrink(to: dataBlocks.count / 2)
        if let frame = spare.popLast() { return frame }
        throw .EDQUOT
    }

    /// A frame of this client's to fill with a new block's bytes, bound writable here.
    func writableFrame() throws(Errno) -> FrameNumber {
        if let frame = spareBound.popLast() { return frame }
        makeRoomToMap()
        if spare.isEmpty, let fresh = try? port.allocateFrames(Self.framesAtOnce, credential: identity.frameSlot, acl: identity.frameACL),
           let frame = fresh.last {
            spareBound += fresh.dropLast()
            return frame
        }
        let frame = try spareFrame()
        do { try port.map(frame, writable: true, credential: identity.userSlot) } catch {
            spare.append(frame)
            throw Errno(error)
        }
        return frame
    }

    /// Fills a writable frame with `bytes` placed at `offset` of a block of zeros.
    func filledFrame(_ bytes: ArraySlice<UInt8>, at offset: Int) throws(Errno) -> FrameNumber {
        let frame = try writableFrame()
        var block = [UInt8](repeating: 0, count: CFFSLayout.blockBytes)
        block.replaceSubrange(offset..<offset + bytes.count, with: bytes)
        do { try port.store(block, into: frame, offset: 0) } catch {
            spareBound.append(frame)
            throw Errno(error)
        }
        return frame
    }

    /// Allocates a run of data blocks near `hint` under `parent`, block i holding what
    /// `frames[i]` (filled by `filledFrame`) holds, with the changes to `parent` that
    /// `changes(blocks)` gives: one call for the run. The blocks stay mapped writable
    /// here, as XN leaves a batch's data frames.
    func allocateData(under parent: BlockNumber, near hint: BlockNumber, frames: [FrameNumber], credential: CapabilitySlot,
                      _ changes: ([BlockNumber]) -> [(offset: Int, bytes: [UInt8])]) throws(Errno) -> [BlockNumber] {
        var blocks: [BlockNumber] = []
        var start = hint
        var wrapped = false
        var contiguous = true
        // Another environment may take a block between finding and allocating it.
        for _ in 0..<16 {
            do {
                blocks = []
                while blocks.count < frames.count {
                    let from = blocks.last.map { $0 + 1 } ?? start
                    let next = contiguous && !blocks.isEmpty ? from : try port.firstFreeBlock(from: from)
                    blocks.append(next)
                }
            } catch .exhausted where !wrapped && start > 0 {
                wrapped = true
                start = 0
                continue
            } catch {
                spareBound += frames
                throw error == .exhausted ? .ENOSPC : Errno(error)
            }
            do {
                try kernelModify(parent, .allocateMany(blocks, .data, frames: frames), Self.coalesced(changes(blocks)), credential: credential)
            } catch .notFree {
                // Part of the run is taken: find each block on its own next time.
                if !contiguous { start = blocks[0] + 1 }
                contiguous = false
                continue
            } catch {
                spareBound += frames
                throw Errno(error)
            }
            for (child, frame) in zip(blocks, frames) {
                ownFrame[child] = frame
                mapped[child] = frame
                marked.insert(child)
                note(child, parent: parent, credential: credential)
                dirty.insert(child)
                noteData(child)
            }
            return blocks
        }
        spareBound += frames
        throw .ENOSPC
    }

    /// `changes` with ranges that touch merged (a run of pointers is one range), so a
    /// batch stays within a change's range limit.
    static func coalesced(_ changes: [(offset: Int, bytes: [UInt8])]) -> [(offset: Int, bytes: [UInt8])] {
        var result: [(offset: Int, bytes: [UInt8])] = []
        for c in changes.sorted(by: { $0.offset < $1.offset }) {
            if let last = result.last, last.offset + last.bytes.count == c.offset {
                result[result.count - 1].bytes += c.bytes
            } else {
                result.append(c)
            }
        }
        return result
    }

    /// Notes a file block this client has cached.
    func noteData(_ block: BlockNumber) {
        guard dataBlocks.insert(block).inserted else { return }
        dataOrder.append(block)
        // Blocks freed or evicted leave stale places behind: sweep them now and then.
        if dataOrder.count - dataOrderStart > 2 * dataBlocks.count + 4096 {
            dataOrder = dataOrder[dataOrderStart...].filter { dataBlocks.contains($0) }
            dataOrderStart = 0
        }
    }

    /// Notes where `block` hangs and how to read it, for bringing it back later.
    func note(_ block: BlockNumber, parent: BlockNumber?, credential: CapabilitySlot) {
        // Mostly already known: a look is cheaper than a store.
        if let parent, parentOf[block] != parent { parentOf[block] = parent }
        if credentialOf[block] != credential { credentialOf[block] = credential }
    }

    /// The frame holding `block`, mapped read-only (or already writable) here; read in
    /// through its parent first if need be.
    func frame(_ block: BlockNumber, parent: BlockNumber?, credential: CapabilitySlot) throws(Errno) -> FrameNumber {
        note(block, parent: parent, credential: credential)
        if let frame = mapped[block] { return frame }
        return try bring(block, depth: 0)
    }

    private func bring(_ block: BlockNumber, depth: Int) throws(Errno) -> FrameNumber {
        let credential = credentialOf[block] ?? identity.userSlot
        do {
            return try readInAndMap(block, credential)
        } catch .notCached {
            // Its parent left the cache: bring the parent back, then try once more.
            guard depth < 64, let parent = parentOf[block] else { throw .EIO }
            mapped[parent] = nil
            _ = try bring(parent, depth: depth + 1)
            do { return try readInAndMap(block, credential) } catch { throw Errno(error) }
        } catch {
            throw Errno(error)
        }
    }

    private func readInAndMap(_ block: BlockNumber, _ credential: CapabilitySlot) throws(KernelError) -> FrameNumber {
        makeRoomToMap()
        let mine: FrameNumber
        do { mine = try spareFrame() } catch { throw .exhausted }
        let holder: FrameNumber
        do { holder = try port.readIn(block, frame: mine, credential: credential) } catch {
            spare.append(mine)
            throw error
        }
        if holder == mine { ownFrame[block] = mine } else { spare.append(mine) }
        let frame = try port.map(block, writable: false, credential: credential)
        mapped[block] = frame
        return frame
    }

    /// Maps each of `blocks` not mapped here yet (each noted with its parent before),
    /// reading in what is not cached: one call for up to 64, and one I/O for a run of
    /// consecutive blocks. Best effort: when frames run short or the kernel refuses a
    /// batch, the blocks are left to be brought one at a time when read.
    func prefetch(_ blocks: [BlockNumber], credential: CapabilitySlot) {
        var seen: Set<BlockNumber> = []
        let wanted = blocks.filter { mapped[$0] == nil && seen.insert($0).inserted }
        var i = 0
        while i < wanted.count {
            let chunk = Array(wanted[i..<min(wanted.count, i + KernelLimits.xnBatchMax)])
            i += chunk.count
            makeRoomToMap()
            // Spare frames first (unbound, then bound), then new ones in one call (bound
            // here). The kernel unbinds those it fills; the rest go back where they came from.
            var frames: [FrameNumber] = []
            while frames.count < chunk.count, let frame = spare.popLast() { frames.append(frame) }
            let unbound = frames.count
            while frames.count < chunk.count, let frame = spareBound.popLast() { frames.append(frame) }
            if frames.count < chunk.count {
                guard let fresh = try? port.allocateFrames(chunk.count - frames.count, credential: identity.frameSlot, acl: identity.frameACL) else {
                    spare += frames[..<unbound]
                    spareBound += frames[unbound...]
                    return
                }
                frames += fresh
            }
            guard let holders = try? port.map(chunk, frames: frames, credential: credential) else {
                spare += frames[..<unbound]
                spareBound += frames[unbound...]
                return
            }
            for (i, (block, holder)) in zip(chunk, holders).enumerated() {
                mapped[block] = holder
                credentialOf[block] = credential
                if holder == frames[i] {
                    ownFrame[block] = holder
                } else if i < unbound {
                    spare.append(frames[i])
                } else {
                    spareBound.append(frames[i])
                }
                noteData(block)
            }
        }
    }

    /// `count` bytes of `block` from `offset`.
    func read(_ block: BlockNumber, parent: BlockNumber?, credential: CapabilitySlot, offset: Int = 0,
              count: Int = CFFSLayout.blockBytes) throws(Errno) -> [UInt8] {
        let frame = try self.frame(block, parent: parent, credential: credential)
        if let bytes = try? port.load(frame, offset: offset, count: count), holds(frame, block) { return bytes }
        // The block left the cache under us (another client evicted it, or its holder
        // died), and its frame may since hold another block: bring it in again.
        mapped[block] = nil
        marked.remove(block)
        let again = try bring(block, depth: 0)
        do { return try port.load(again, offset: offset, count: count) } catch { throw Errno(error) }
    }

    /// Whether the registry shows `block` cached in `frame`. A frame this cache mapped
    /// can be released when its block leaves the cache (its holder died, another client
    /// evicted it) and come back to this cache for another block; the mapping alone would
    /// then read or write the wrong block.
    func holds(_ frame: FrameNumber, _ block: BlockNumber) -> Bool {
        port.registryEntry(of: block)?.frame == frame
    }

    /// Changes metadata `block` (cached: the caller just read it).
    func modify(_ block: BlockNumber, _ operation: XNOperation, _ changes: [(offset: Int, bytes: [UInt8])],
                credential: CapabilitySlot) throws(Errno) {
        do { try kernelModify(block, operation, changes, credential: credential) } catch { throw Errno(error) }
    }

    /// How many changes this client has asked of XN (metadata changes and allocations).
    public private(set) var changes = 0

    private func kernelModify(_ block: BlockNumber, _ operation: XNOperation, _ changes: [(offset: Int, bytes: [UInt8])],
                              credential: CapabilitySlot) throws(KernelError) {
        self.changes &+= 1
        do { try port.modify(block, operation, .inline(changes), credential: credential) } catch .notCached {
            // It left the cache since it was read: bring it back and try again.
            mapped[block] = nil
            do { _ = try frame(block, parent: parentOf[block], credential: credentialOf[block] ?? credential) } catch { throw .notCached }
            try port.modify(block, operation, .inline(changes), credential: credential)
        }
        dirty.insert(block)
    }

    /// Allocates a free block near `hint` as a child of `parent`, with the changes to
    /// `parent` that `changes(child)` gives. The child is cached, zeroed, in a frame of
    /// this client's.
    func allocate(under parent: BlockNumber, type: TypeID, near hint: BlockNumber, credential: CapabilitySlot,
                  _ changes: (BlockNumber) -> [(offset: Int, bytes: [UInt8])]) throws(Errno) -> BlockNumber {
        let frame = try spareFrame()
        var start = hint
        var wrapped = false
        // Another environment may take the block between finding and allocating it.
        for _ in 0..<16 {
            let child: BlockNumber
            do { child = try port.firstFreeBlock(from: start) } catch .exhausted where !wrapped && start > 0 {
                wrapped = true
                start = 0
                continue
            } catch {
                spare.append(frame)
                throw error == .exhausted ? .ENOSPC : Errno(error)
            }
            do { try kernelModify(parent, .allocate(child, type, frame: frame), changes(child), credential: credential) } catch .notFree {
                start = child + 1
                continue
            } catch {
                spare.append(frame)
                throw Errno(error)
            }
            ownFrame[child] = frame
            note(child, parent: parent, credential: credential)
            dirty.insert(child)
            if type == .data { noteData(child) }
            return child
        }
        spare.append(frame)
        throw .ENOSPC
    }

    /// Removes `child` from `parent` with `changes`; its frame, if it was this client's,
    /// comes back.
    func free(_ child: BlockNumber, from parent: BlockNumber, _ changes: [(offset: Int, bytes: [UInt8])],
              credential: CapabilitySlot) throws(Errno) {
        try drop(child, from: parent, changes, credential: credential)
        forget(child)
    }

    /// Removes `parent`'s pointer to `child` with `changes`, knowing nothing of what
    /// became of `child`: a shared inode block stays while other names point to it (the
    /// caller finds out, and `forget(below:)`s it when it went).
    func drop(_ child: BlockNumber, from parent: BlockNumber, _ changes: [(offset: Int, bytes: [UInt8])],
              credential: CapabilitySlot) throws(Errno) {
        do { try kernelModify(parent, .free(child), changes, credential: credential) } catch .busy {
            // The child is in a move not yet on disk (an emptied directory's block): once
            // the move is written, it may go.
            try writeBack()
            do { try kernelModify(parent, .free(child), changes, credential: credential) } catch { throw Errno(error) }
        } catch {
            throw Errno(error)
        }
    }

    /// Removes `children` from `parent` with `changes`, in batches of the kernel's limit
    /// (`changesFor` gives each batch's changes).
    func free(_ children: [BlockNumber], from parent: BlockNumber, credential: CapabilitySlot,
              _ changesFor: (ArraySlice<BlockNumber>) -> [(offset: Int, bytes: [UInt8])]) throws(Errno) {
        var i = 0
        while i < children.count {
            let batch = children[i..<min(children.count, i + KernelLimits.xnBatchMax)]
            i += batch.count
            let operation: XNOperation = batch.count == 1 ? .free(batch[batch.startIndex]) : .freeMany(Array(batch))
            try modify(parent, operation, Self.coalesced(changesFor(batch)), credential: credential)
            for child in batch { forget(child) }
        }
    }

    /// Moves the `count` bytes at `offset` of `source` to `at` of `destination`, with
    /// `edits` there (`xnMove`); `moved` are the blocks the bytes point to, whose parent
    /// becomes `destination`. When the two blocks' move group is full, this client's
    /// changes are written back first (unless `writingBackWhenBusy` is false: then the
    /// move is refused with `busy`).
    func move(from source: BlockNumber, offset: Int, count: Int, to destination: BlockNumber, at landing: Int,
              edits: [(offset: Int, bytes: [UInt8])], moved: [BlockNumber], credential: CapabilitySlot,
              writingBackWhenBusy: Bool = true) throws(KernelError) {
        changes &+= 1
        do {
            try port.move(from: source, offset: offset, count: count, to: destination, at: landing, edits: .inline(edits), credential: credential)
        } catch .busy {
            guard writingBackWhenBusy else { throw .busy }
            do { try writeBack() } catch { throw .busy }
            try port.move(from: source, offset: offset, count: count, to: destination, at: landing, edits: .inline(edits), credential: credential)
        }
        dirty.insert(source)
        dirty.insert(destination)
        for block in moved where parentOf[block] != nil { parentOf[block] = destination }
    }

    /// Drops what is known of `top` and every block noted below it: XN freed them all
    /// (a hard-linked file's last name went).
    func forget(below top: BlockNumber) {
        var gone: Set<BlockNumber> = [top]
        var grew = true
        while grew {
            grew = false
            for (block, parent) in parentOf where !gone.contains(block) && gone.contains(parent) {
                gone.insert(block)
                grew = true
            }
        }
        for block in gone.sorted() { forget(block) }
    }

    /// Drops what is known of `blocks`, which XN freed.
    func forget(_ blocks: [BlockNumber]) { for block in blocks { forget(block) } }

    /// Drops what is known of a block that left the cache.
    private func forget(_ block: BlockNumber) {
        mapped[block] = nil
        marked.remove(block)
        dirty.remove(block)
        dataBlocks.remove(block)
        parentOf[block] = nil
        credentialOf[block] = nil
        if let frame = ownFrame.removeValue(forKey: block) { spare.append(frame) }
    }

    /// Writes `bytes` at `offset` of data `block` through a writable mapping. XN marks a
    /// block dirty when it is mapped writable, so after each writeback the block is
    /// mapped again before the next store.
    func store(_ bytes: [UInt8], into block: BlockNumber, at offset: Int, parent: BlockNumber,
               credential: CapabilitySlot) throws(Errno) {
        note(block, parent: parent, credential: credential)
        for attempt in 0..<2 {
            if !marked.contains(block) {
                makeRoomToMap()
                // Straight to a writable mapping: a block just allocated or read is
                // cached; only one that left the cache is read in first.
                do { mapped[block] = try port.map(block, writable: true, credential: credential) } catch .notCached {
                    mapped[block] = nil
                    _ = try frame(block, parent: parent, credential: credential)
                    do { mapped[block] = try port.map(block, writable: true, credential: credential) } catch { throw Errno(error) }
                } catch {
                    throw Errno(error)
                }
                marked.insert(block)
            }
            guard let frame = mapped[block] else { throw .EIO }
            // A frame whose block left the cache may be this cache's again, holding
            // another block: only a store to the frame that still holds `block` is made.
            guard holds(frame, block) else {
                mapped[block] = nil
                marked.remove(block)
                if attempt == 1 { throw .EIO }
                continue
            }
            do {
                try port.store(bytes, into: frame, offset: offset)
                dirty.insert(block)
                noteData(block)
                return
            } catch {
                // Evicted under us: map it again.
                mapped[block] = nil
                marked.remove(block)
                if attempt == 1 { throw Errno(error) }
            }
        }
    }

    /// How deep `block` is below the root, by the parents seen.
    private func depth(_ block: BlockNumber) -> Int {
        var d = 0, b = block
        while let p = parentOf[b], d < 1 << 16 {
            d += 1
            b = p
        }
        return d
    }

    /// Writes back every block this client changed, deepest first, so no parent is
    /// written before a new child it points to (XN refuses that: `tainted`). A pass that
    /// leaves blocks behind is followed by another while passes make progress: a move's
    /// blocks go to the disk together, possibly with a parent at another depth, once the
    /// new blocks they point to are there.
    public func writeBack() throws(Errno) {
        var left = dirty.count
        while !dirty.isEmpty {
            try writeBackPass()
            // A pass that wrote nothing will not write more: say so, never report a sync
            // that did not happen.
            if dirty.count >= left { throw .EIO }
            left = dirty.count
        }
    }

    private func writeBackPass() throws(Errno) {
        var byDepth: [Int: [BlockNumber]] = [:]
        for block in dirty { byDepth[depth(block), default: []].append(block) }
        for d in byDepth.keys.sorted(by: >) {
            let blocks = byDepth[d]!.sorted()
            var i = 0
            while i < blocks.count {
                let chunk = Array(blocks[i..<min(blocks.count, i + KernelLimits.xnWritebackBlocksMax)])
                i += chunk.count
                var written = chunk
                do { try port.writeback(chunk) } catch .tainted {
                    // A child someone else allocated is not on disk yet: write the others,
                    // and keep that one for the next writeback.
                    written = chunk.filter { (try? port.writeback([$0])) != nil }
                } catch {
                    throw Errno(error)
                }
                for block in written {
                    marked.remove(block)
                    dirty.remove(block)
                }
            }
        }
    }

    /// Writes back and evicts the older half of the cached file blocks when the policy
    /// says so.
    func writeBehindIfNeeded() throws(Errno) {
        guard policy.shouldWriteBehind(dataBlocks: dataBlocks.count, dirty: dirty.count) else { return }
        try shrink(to: dataBlocks.count / 2)
    }

    /// Writes back what this client changed, then evicts its oldest file blocks until
    /// `count` are left (blocks others hold, or that cannot go yet, are passed over).
    func shrink(to count: Int) throws(Errno) {
        try writeBack()
        var passed: [BlockNumber] = []
        while dataBlocks.count - passed.count > count, dataOrderStart < dataOrder.count {
            let block = dataOrder[dataOrderStart]
            dataOrderStart += 1
            guard dataBlocks.contains(block) else { continue }
            let credential = credentialOf[block] ?? identity.userSlot
            do { try port.evict(block, credential: credential) } catch {
                passed.append(block)
                continue
            }
            forget(block)
        }
        dataOrder.removeFirst(dataOrderStart)
        dataOrderStart = 0
        dataOrder += passed
        // Keep a pool the size of what write-behind lets build up (allocating a frame costs
        // more than keeping one); give the rest back.
        while spare.count > Self.sparePoolMax, let frame = spare.popLast() {
            try? port.free(frame, credential: identity.userSlot)
        }
    }

    static var sparePoolMax: Int { 40_000 }

    /// New frames to fill are asked for this many at a time (bound writable from birth).
    static var framesAtOnce: Int { 32 }

    /// Blocks this client keeps mapped at most: the kernel's binding limit, less room for
    /// its other bindings.
    static var mappedMax: Int { KernelLimits.bindingsMax - 8192 }

    /// Near the binding limit, unmaps the older half of the mapped file blocks. They stay
    /// in XN's cache: mapping one again is a call, with no I/O.
    func makeRoomToMap() {
        guard mapped.count + spareBound.count >= Self.mappedMax else { return }
        var left = mapped.count / 2
        var frames: [FrameNumber] = []
        for block in dataOrder[dataOrderStart...] where left > 0 {
            guard dataBlocks.contains(block), let frame = mapped[block] else { continue }
            frames.append(frame)
            mapped[block] = nil
            marked.remove(block)
            left -= 1
        }
        // A batch at a time. A block already gone from under us is no longer bound, which
        // fails its batch: that batch goes one by one (either way none is bound after).
        var i = 0
        while i < frames.count {
            let batch = Array(frames[i..<min(frames.count, i + KernelLimits.xnBatchMax)])
            i += batch.count
            if (try? port.unmap(batch)) == nil { for frame in batch { try? port.unmap(frame) } }
        }
    }
}
