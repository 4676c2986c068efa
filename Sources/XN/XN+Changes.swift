// Metadata changes and data access (DESIGN.md §5). A change is a list of byte
// modifications to one cached block with a credential. XN runs the type's `acl` UDF on the
// change and `owns` on the block before and after, and applies the change only when the
// pointers differ exactly as the operation says; otherwise nothing changes. A root block
// is also guarded by the capability it was created with: reading it needs that
// capability's read right, changing it the write right, on every mount.

import BPF
import XokABI

/// The state of a cached block (the buffer cache registry's states).
public enum CacheState: Sendable {
    case comingIn, valid, goingOut
}

/// How far a block allocated by a change has got towards the disk.
public enum Durability: Equatable, Sendable {
    /// Never written: its parent may not be written (tainted). Until the allocator's
    /// first change (`initialized`), no one else may change it: a block that still reads
    /// as zeros is the allocator's to lay out, and UDFs may rely on that.
    case unwritten(allocator: EnvironmentID, initialized: Bool)
    /// On disk (every writeback ends with a barrier).
    case durable
}

/// One entry of the buffer cache registry: names and state, never contents (those are
/// in the frame, which only the kernel binds).
public struct CacheEntry: Sendable {
    /// The frame holding the block.
    public var frame: FrameNumber
    public var type: TypeID
    public var parent: BlockNumber?
    public var state: CacheState
    public var dirty: Bool
    /// The environment the frame is charged to; nil once it died (the kernel holds it).
    public var owner: EnvironmentID?
    /// Environments that changed it since it was last written: each may write it back.
    public var writers: [EnvironmentID]
    public var durability: Durability
    /// What it points to (from `owns`; empty for data blocks).
    var pointers: [Pointer]
}

/// Bytes to put at an offset of a block.
public struct Modification: Hashable, Sendable {
    public var offset: Int
    public var bytes: [UInt8]
    public init(offset: Int, bytes: [UInt8]) {
        self.offset = offset
        self.bytes = bytes
    }
}

/// A frame leaving the buffer cache, for the kernel to give back or free.
public struct ReleasedFrame: Hashable, Sendable {
    public var frame: FrameNumber
    /// Who it was charged to (nil: the kernel held it).
    public var owner: EnvironmentID?
}

extension XN {
    /// The registry entry of a cached block.
    public func registryEntry(_ block: BlockNumber) -> CacheEntry? { cache[block] }

    /// Every cached block, in block order.
    public var cachedBlocks: [BlockNumber] { cache.keys.sorted() }

    /// Whether `block` points to new metadata that is not yet durable.
    public func isTainted(_ block: BlockNumber) -> Bool {
        guard let entry = cache[block] else { return false }
        return entry.pointers.contains { p in
            if case .unwritten? = cache[p.block]?.durability { true } else { false }
        }
    }

    /// Whether anything waits for `drainEvents`.
    public var hasEvents: Bool { !changed.isEmpty || !released.isEmpty }

    /// Blocks whose registry entry may have changed, and frames that left the cache,
    /// since the last call: the kernel republishes the one and gives back the other.
    public func drainEvents() -> (changed: [BlockNumber], released: [ReleasedFrame]) {
        if changed.isEmpty && released.isEmpty { return ([], []) }
        let result = (changed.sorted(), released)
        changed.removeAll(keepingCapacity: true)
        released.removeAll(keepingCapacity: true)
        return result
    }

    func contents(_ entry: CacheEntry) -> [UInt8] { memory.copy(of: entry.frame) }

    /// Whether `credential` passes a root's capability for `needed`.
    func rootPermits(_ root: RootEntry, _ credential: Capability, _ needed: Rights) -> Bool {
        root.capability.rights.isSuperset(of: needed) && credential.dominates(root.capability)
    }

    /// Checks that `credential` may read `block` (`.read`) or write it as data
    /// (`.writeData`): a root by its capability, any other block by a parent's `acl` UDF
    /// (a shared block's: any cached parent's that allows it).
    /// - Throws: `notMetadata` (not allocated), `notCached` (no parent cached), `aclDenied`, `udfFailed`.
    public func authorizeAccess(_ block: BlockNumber, credential: Capability, _ operation: AclContext.Operation) throws(XNError) {
        guard types[block] != nil, pendingFree[block] == nil else { throw .notMetadata }
        if let root = roots.first(where: { $0.block == block }) {
            guard rootPermits(root, credential, operation == .read ? .read : .write) else { throw .aclDenied }
            return
        }
        guard let parent = parents[block] else { throw .notMetadata }
        var refusal = XNError.notCached
        for parent in [parent] + (sharers[block] ?? []) {
            guard let parentEntry = cache[parent] else { continue }
            guard let template = template(parentEntry.type) else { return }
            let bytes = contents(parentEntry)
            do {
                try authorize(template, before: bytes, after: bytes, first: 0, count: 0, operation: operation, target: block, credential: credential,
                              block: parent)
                try requirePath(through: parent, to: block, credential: credential)
                return
            } catch {
                refusal = error
            }
        }
        throw refusal
    }

    /// How many pointers reach `block`: its link count, for a shareable block (a root
    /// has none).
    public func references(_ block: BlockNumber) -> Int {
        (parents[block] == nil ? 0 : 1) + (sharers.isEmpty ? 0 : sharers[block]?.count ?? 0)
    }

    /// Where the parent tables and the cached blocks' pointers disagree: each cached
    /// block must be recorded as a parent of each block it points to, once per pointer,
    /// and nowhere else (for the kernel's invariant checks).
    public func parentTableViolations() -> [String] {
        var recorded: [BlockNumber: [BlockNumber: Int]] = [:]
        for (child, parent) in parents where cache[parent] != nil { recorded[parent, default: [:]][child, default: 0] += 1 }
        for (child, others) in sharers {
            for parent in others where cache[parent] != nil { recorded[parent, default: [:]][child, default: 0] += 1 }
        }
        var found: [String] = []
        for block in cache.keys.sorted() {
            var held: [BlockNumber: Int] = [:]
            for p in cache[block]!.pointers { held[p.block, default: 0] += 1 }
            if held != recorded[block] ?? [:] { found.append("block \(block)'s pointers and the parent tables disagree") }
        }
        return found
    }

    /// How many pointers reach `block` past its first parent's (0 unless it is shared).
    public func sharedBy(_ block: BlockNumber) -> Int { sharers.isEmpty ? 0 : sharers[block]?.count ?? 0 }

    /// Whether `type`'s blocks may have several parents.
    func isShareable(_ type: TypeID) -> Bool { template(type)?.shareable ?? false }
    /// Whether freeing the last pointer to a block of `type` takes its subtree with it.
    func freesSubtree(_ type: TypeID) -> Bool { template(type).map { $0.shareable || $0.freedWhole } ?? false }

    /// Every block above `block` (itself included), through all parents.
    func ancestors(of block: BlockNumber) -> Set<BlockNumber> {
        blocksAbove(block, parents: parents, sharers: sharers).union([block])
    }

    /// Every block that may be above `block` on disk: its ancestors, and the parents
    /// along the way that dropped a shared block's pointer, or (`throughMoves`) that a
    /// move took a block out of, and have not been written since.
    func diskAncestors(of block: BlockNumber, throughMoves: Bool) -> Set<BlockNumber> {
        var seen: Set<BlockNumber> = [block]
        var queue = [block]
        while let b = queue.popLast() {
            var above = Array(drops[b] ?? [])
            if let first = parents[b] { above += [first] + (sharers[b] ?? []) }
            if throughMoves { above += movedFrom[b] ?? [] }
            for parent in above where (types[parent] != nil || pendingFree[parent] != nil) && seen.insert(parent).inserted {
                queue.append(parent)
            }
        }
        return seen
    }

    /// Records one more pointer from `parent` to `child`.
    func addParent(_ child: BlockNumber, _ parent: BlockNumber) {
        if parents[child] == nil { parents[child] = parent } else { sharers[child, default: []].append(parent) }
    }

    /// Forgets one pointer from `parent` to `child`, which has others.
    func removeParent(_ child: BlockNumber, _ parent: BlockNumber) {
        guard var others = sharers[child], !others.isEmpty else { return }
        if parents[child] == parent {
            parents[child] = others.removeLast()
        } else if let i = others.firstIndex(of: parent) {
            others.remove(at: i)
        }
        sharers[child] = others.isEmpty ? nil : others
        pathsReshaped()
        if cache[child] != nil {
            cache[child]!.parent = parents[child]
            changed.insert(child)
        }
    }

    /// Brings allocated `block` into the cache in `frame`, or finds it there. Returns the
    /// frame that holds it.
    /// - Throws: `notMetadata`, `notCached`, `aclDenied`, `udfFailed`, `device`.
    public func readIn(_ block: BlockNumber, frame: FrameNumber, credential: Capability, by environment: EnvironmentID) throws(XNError) -> FrameNumber {
        let holders = try readIn([block], frames: [frame], credential: credential, by: environment)
        return holders[0]
    }

    /// Brings each of `blocks` into the cache, or finds it there: block i, when not
    /// cached, is read into `frames[i]`, with one device read for the whole list. Checks
    /// every block before reading any, and caches none unless all are read and pass
    /// `owns`. Returns the frame holding each block.
    /// - Throws: `badModification` (a list too long, lists of different lengths, a block
    ///   or frame named twice), and what the one-block `readIn` throws.
    public func readIn(_ blocks: [BlockNumber], frames: [FrameNumber], credential: Capability,
                       by environment: EnvironmentID) throws(XNError) -> [FrameNumber] {
        guard blocks.count == frames.count, blocks.count <= XNLayout.batchMax, Batch.distinct(blocks),
              Batch.distinct(frames.map { UInt64($0.rawValue) }) else { throw .badModification }
        for block in blocks { try authorizeAccess(block, credential: credential, .read) }
        let missing = blocks.indices.filter { cache[blocks[$0]] == nil }
        var contents: [[UInt8]] = []
        if !missing.isEmpty {
            do { contents = try device.read(missing.map { blocks[$0] }) } catch { throw .device(error.message) }
        }
        var pointers: [[Pointer]] = []
        for (k, i) in missing.enumerated() {
            guard let type = types[blocks[i]] else { throw .notMetadata }
            pointers.append(try template(type)?.pointers(in: contents[k]) ?? [])
        }
        var holders = blocks.map { cache[$0]?.frame }
        for (k, i) in missing.enumerated() {
            let block = blocks[i]
            memory.store(contents[k], in: frames[i])
            cache[block] = CacheEntry(frame: frames[i], type: types[block] ?? .data, parent: parents[block], state: .valid, dirty: false,
                                      owner: environment, writers: [], durability: .durable, pointers: pointers[k])
            changed.insert(block)
            holders[i] = frames[i]
        }
        return zip(holders, frames).map { $0 ?? $1 }
    }

    /// Drops clean `block` from the cache and releases its frame. Its owner may always;
    /// anyone else needs read on it.
    /// - Throws: `notCached`, `dirty`, and what `authorizeAccess` throws.
    public func evict(_ block: BlockNumber, credential: Capability, by environment: EnvironmentID) throws(XNError) {
        guard let entry = cache[block] else { throw .notCached }
        if entry.owner != environment { try authorizeAccess(block, credential: credential, .read) }
        guard !entry.dirty, entry.durability == .durable, entry.state == .valid else { throw .dirty }
        cache[block] = nil
        changed.insert(block)
        released.append(ReleasedFrame(frame: entry.frame, owner: entry.owner))
    }

    /// Lays out the acl UDF's context. For a change to `block` (not an access), the
    /// parent area holds its parent as cached now.
    func fillAclContext(_ context: inout [UInt8], before: [UInt8], after: [UInt8], first: Int, count: Int, operation: AclContext.Operation,
                        target: BlockNumber, credential: Capability, block: BlockNumber) {
        context.withUnsafeMutableBytes { c in
            before.withUnsafeBytes { c.baseAddress!.advanced(by: AclContext.blockBeforeOffset).copyMemory(from: $0.baseAddress!, byteCount: XNLayout.blockBytes) }
            after.withUnsafeBytes { c.baseAddress!.advanced(by: AclContext.blockAfterOffset).copyMemory(from: $0.baseAddress!, byteCount: XNLayout.blockBytes) }
        }
        context.withUnsafeMutableBytes { c in
            _ = c.baseAddress!.advanced(by: AclContext.changeOffset).initializeMemory(as: UInt8.self, repeating: 0, count: AclContext.parentOffset - AclContext.changeOffset)
        }
        context.put32(UInt32(first), at: AclContext.changeOffset)
        context.put32(UInt32(count), at: AclContext.changeOffset + 4)
        context.put32(operation.rawValue, at: AclContext.operationOffset)
        context.put64(target, at: AclContext.targetOffset)
        context.put64(UInt64(credential.rights.rawValue), at: AclContext.credentialOffset)
        context.put64(UInt64(credential.name.count), at: AclContext.credentialOffset + 8)
        for (i, c) in credential.name.enumerated() { context.put64(c, at: AclContext.credentialOffset + 16 + 8 * i) }
        context.put64(block, at: AclContext.blockNumberOffset)
        let isChange = operation != .read && operation != .writeData && operation != .traverse
        if isChange, let parent = parents[block], let parentEntry = cache[parent] {
            context.put64(parent, at: AclContext.parentNumberOffset)
            let source = UnsafeRawBufferPointer(memory.bytes(of: parentEntry.frame))
            context.withUnsafeMutableBytes { c in
                c.baseAddress!.advanced(by: AclContext.parentOffset).copyMemory(from: source.baseAddress!, byteCount: XNLayout.blockBytes)
            }
            aclParentClear = false
        } else if !aclParentClear {
            context.withUnsafeMutableBytes { c in
                _ = c.baseAddress!.advanced(by: AclContext.parentOffset).initializeMemory(as: UInt8.self, repeating: 0, count: XNLayout.blockBytes)
            }
            aclParentClear = true
        }
    }

    /// Asks the acl UDF of `block`'s type.
    func authorize(_ template: Template, before: [UInt8], after: [UInt8], first: Int, count: Int,
                   operation: AclContext.Operation, target: BlockNumber, credential: Capability, block: BlockNumber) throws(XNError) {
        guard checksEnabled else { return }
        fillAclContext(&aclScratch, before: before, after: after, first: first, count: count, operation: operation,
                       target: target, credential: credential, block: block)
        guard try template.allows(&aclScratch) else { throw .aclDenied }
    }

    /// Checks a pointer list `owns` produced: inside the data area, of a known type, each
    /// block once (a block of a shareable type may be named again, with the same type).
    func validate(_ pointers: [Pointer]) throws(XNError) {
        var previous: Pointer?
        for p in pointers {
            guard p.block >= geometry.dataStart, p.block < geometry.blockCount, p.type == .data || template(p.type) != nil else {
                throw .invalidPointer
            }
            if let previous, p.block == previous.block, p != previous || !isShareable(p.type) { throw .invalidPointer }
            previous = p
        }
    }

    /// `modifications` applied to `before`, with the range they cover.
    func applied(_ modifications: [Modification], to before: [UInt8]) throws(XNError) -> (after: [UInt8], first: Int, count: Int) {
        guard modifications.count <= XNLayout.modificationsMax else { throw .badModification }
        var after = before
        var first = XNLayout.blockBytes, last = 0
        for m in modifications {
            guard m.offset >= 0, m.offset <= XNLayout.blockBytes, m.bytes.count <= XNLayout.blockBytes - m.offset else { throw .badModification }
            after.replaceSubrange(m.offset..<m.offset + m.bytes.count, with: m.bytes)
            first = min(first, m.offset)
            last = max(last, m.offset + m.bytes.count)
        }
        return (after, first == XNLayout.blockBytes ? 0 : first, max(0, last - first))
    }

    /// Refuses a change to a fresh block that its allocator has not yet initialized,
    /// by anyone else.
    func requireInitializer(_ entry: CacheEntry, _ environment: EnvironmentID) throws(XNError) {
        if case .unwritten(let allocator, false) = entry.durability, allocator != environment { throw .notOwner }
    }

    /// Records that `environment` changed cached `block` (for a fresh block, its
    /// allocator's first change initializes it).
    func markWritten(_ block: BlockNumber, by environment: EnvironmentID) {
        if case .unwritten(let allocator, false) = cache[block]!.durability {
            cache[block]!.durability = .unwritten(allocator: allocator, initialized: true)
        }
        cache[block]!.dirty = true
        dirtySet.insert(block)
        if !cache[block]!.writers.contains(environment) { cache[block]!.writers.append(environment) }
        changed.insert(block)
        if !paths.passedBy.isEmpty { pathsChanged(at: block) }
    }

    /// Changes cached metadata block `block` by `modifications`, as `operation` says.
    /// - Throws: `notCached`; `notMetadata`; `aclDenied` (a root's capability, or the
    ///   acl UDF); `notOwner` (a fresh block changed by another than its allocator);
    ///   `badModification` (also a batch too long, or naming a block or frame twice);
    ///   `udfFailed`; `invalidPointer`; `pointerInvented`; `pointerLost`; `notFree` and
    ///   `unknownType` (allocate); `notShareable` and `cycle` (link); `notAChild`,
    ///   `notEmpty` and `moving` (free); `device`. Nothing changes when it throws.
    ///
    /// Freeing the last pointer to a shareable block frees it and everything below it
    /// (the last name of a file goes, and the file with it).
    /// Returns the blocks it freed (for the kernel to return each to whoever was charged).
    @discardableResult
    public func modify(_ block: BlockNumber, _ modifications: [Modification], operation: XNOperation,
                       credential: Capability, by environment: EnvironmentID) throws(XNError) -> [BlockNumber] {
        guard let entry = cache[block] else { throw types[block] == nil ? .notMetadata : .notCached }
        guard let template = template(entry.type) else { throw .notMetadata }
        if let root = roots.first(where: { $0.block == block }), !rootPermits(root, credential, .write) { throw .aclDenied }
        try requireInitializer(entry, environment)
        let change = try Batch(operation)
        let before = contents(entry)
        let (after, first, count) = try applied(modifications, to: before)
        // The acl UDF is asked once for each block that appears or disappears.
        if change.targets.isEmpty {
            try authorize(template, before: before, after: after, first: first, count: count, operation: change.aclOperation, target: 0,
                          credential: credential, block: block)
        }
        for target in change.targets {
            try authorize(template, before: before, after: after, first: first, count: count, operation: change.aclOperation,
                          target: target, credential: credential, block: block)
        }
        try requirePath(through: block, to: block, credential: credential)
        // The pointers the operation says the block will hold afterwards.
        let old = entry.pointers
        var expected = old
        // Blocks the change frees outright, each with the parent whose write frees it, and
        // pointers that go with the blocks below a freed shareable one.
        var freed = Subtree()
        if change.aclOperation == .link {
            for child in change.targets {
                guard let type = types[child], parents[child] != nil, pendingFree[child] == nil, isShareable(type) else { throw .notShareable }
                try authorizeAccess(child, credential: credential, .read)
                if ancestors(of: block).contains(child) { throw .cycle }
                // Above it on disk still (a move or a drop not yet written): written
                // apart, the two could close a loop there. Wait for the writeback.
                if (!drops.isEmpty || !movedFrom.isEmpty) && diskAncestors(of: block, throughMoves: true).contains(child) { throw .moving }
                let pointer = Pointer(block: child, type: type)
                expected.insert(pointer, at: expected.firstIndex { pointer < $0 } ?? expected.count)
            }
        } else if let type = change.allocatedType {
            guard type == .data || self.template(type) != nil else { throw .unknownType }
            for child in change.targets {
                guard isFree(child) else { throw .notFree }
                let pointer = Pointer(block: child, type: type)
                expected.insert(pointer, at: expected.firstIndex { pointer < $0 } ?? expected.count)
            }
        } else if change.aclOperation == .free {
            for child in change.targets {
                guard let gone = expected.firstIndex(where: { $0.block == child }) else { throw .notAChild }
                // Until its move is on disk, the block's old place may still be what the
                // disk holds: freeing it then could lose the moved pointers.
                guard moveGroups.isEmpty || moveGroups[child] == nil else { throw .moving }
                let type = expected.remove(at: gone).type
                if references(child) > 1 { continue }   // only a name goes
                if freesSubtree(type) {
                    let below = try subtree(child, under: block)
                    freed.freed += below.freed
                    freed.dropped += below.dropped
                } else {
                    try requireEmpty(child, type)
                    freed.freed.append((child, block))
                }
            }
        }
        // What `owns` says it holds: exactly the expected pointers, or the change is refused.
        var new = expected
        if checksEnabled {
            new = try template.pointers(in: after)
            try validate(new)
            if new != expected {
                // Both lists are sorted (a shared block may be named more than once): a
                // pointer in one and not the other, or once more, was invented or lost.
                throw new.count > expected.count || new.contains(where: { !expected.contains($0) }) ? .pointerInvented : .pointerLost
            }
        }

        // Commit.
        memory.store(after, in: entry.frame)
        cache[block]!.pointers = new
        markWritten(block, by: environment)
        if let type = change.allocatedType {
            for (child, frame) in zip(change.targets, change.frames) {
                allocated[child] = true
                types[child] = type
                parents[child] = block
                if type != .data { unlinked.insert(child) }
                // A batch's data blocks keep the bytes their allocator put in the frames.
                let keep = change.keepsContents && type == .data
                if !keep { memory.zero(frame) }
                cache[child] = CacheEntry(frame: frame, type: type, parent: block, state: .valid, dirty: true, owner: environment,
                                          writers: [environment], durability: .unwritten(allocator: environment, initialized: keep),
                                          pointers: [])
                dirtySet.insert(child)
                changed.insert(child)
            }
        } else if change.aclOperation == .link {
            for child in change.targets {
                addParent(child, block)
                if cache[child] != nil { changed.insert(child) }
            }
        } else if change.aclOperation == .free {
            for child in change.targets where references(child) > 1 {
                removeParent(child, block)
                drops[child, default: []].insert(block)
            }
            for (child, from) in freed.dropped {
                removeParent(child, from)
                drops[child, default: []].insert(block)
            }
            for (child, parent) in freed.freed {
                if let childEntry = cache[child] {
                    released.append(ReleasedFrame(frame: childEntry.frame, owner: childEntry.owner))
                    cache[child] = nil
                    dirtySet.remove(child)
                    changed.insert(child)
                }
                if types[child] != .data { pathsReshaped(freeing: child) }
                types[child] = nil
                parents[child] = nil
                sharers[child] = nil
                movedFrom[child] = nil
                if !unlinked.isEmpty { unlinked.remove(child) }
                pendingFree[child] = parent
                // Parents that dropped it earlier may still point to it on disk.
                if let waits = drops.removeValue(forKey: child) {
                    let others = waits.subtracting([parent])
                    if !others.isEmpty { freeWaits[child] = others }
                }
            }
        }
        return freed.freed.map { $0.block }
    }

    /// What freeing the last pointer from `parent` to shareable block `top` takes with it:
    /// the blocks freed, each with the block whose write frees it, and the pointers to
    /// shared blocks below that only go away (their blocks keep other parents).
    /// - Throws: `moving` (a block of it in a move not yet on disk), `udfFailed`, `device`.
    private func subtree(_ top: BlockNumber, under parent: BlockNumber) throws(XNError) -> Subtree {
        var result = Subtree(freed: [(top, parent)])
        var inside: [BlockNumber: Int] = [:]
        var next = 0
        while next < result.freed.count {
            let block = result.freed[next].block
            next += 1
            guard moveGroups.isEmpty || moveGroups[block] == nil else { throw .moving }
            guard let type = types[block], let template = template(type) else { continue }
            let pointers: [Pointer]
            if let entry = cache[block] {
                pointers = entry.pointers
            } else {
                let bytes: [UInt8]
                do { bytes = try device.read(block) } catch { throw .device(error.message) }
                pointers = try template.pointers(in: bytes)
            }
            for p in pointers {
                let count = references(p.block)
                guard count > 1 else {
                    result.freed.append((p.block, block))
                    continue
                }
                // A shared block goes too once every pointer to it is inside.
                inside[p.block, default: 0] += 1
                result.dropped.append((p.block, block))
                if inside[p.block] == count { result.freed.append((p.block, block)) }
            }
        }
        let freed = Set(result.freed.map { $0.block })
        result.dropped.removeAll { freed.contains($0.child) }
        return result
    }

    /// Refuses to free `child` (of `type`) while it holds pointers of its own.
    private func requireEmpty(_ child: BlockNumber, _ type: TypeID) throws(XNError) {
        if let childEntry = cache[child] {
            if !childEntry.pointers.isEmpty { throw .notEmpty }
        } else if type != .data, let childTemplate = self.template(type) {
            let contents: [UInt8]
            do { contents = try device.read(child) } catch { throw .device(error.message) }
            if !(try childTemplate.pointers(in: contents)).isEmpty { throw .notEmpty }
        }
    }

    /// Writes bytes into cached data block `block`. Needs what the parent's `acl` UDF
    /// grants for operation `writeData`; a fresh data block only its allocator may write.
    /// - Throws: `notData`, `notCached`, `notOwner`, `badModification`, `aclDenied`,
    ///   `udfFailed`.
    public func writeData(_ block: BlockNumber, _ modifications: [Modification], credential: Capability,
                          by environment: EnvironmentID) throws(XNError) {
        guard types[block] == .data, pendingFree[block] == nil else { throw .notData }
        guard let entry = cache[block] else { throw .notCached }
        try authorizeAccess(block, credential: credential, .writeData)
        try requireInitializer(entry, environment)
        let (after, _, _) = try applied(modifications, to: contents(entry))
        memory.store(after, in: entry.frame)
        markWritten(block, by: environment)
    }

    /// Checks that `credential` may map cached `block`: read-only needs read; writable is
    /// for data blocks only (XN is the only writer of metadata), needs `writeData`, and
    /// counts as a change by `environment` (the block is dirty from then on). Returns the
    /// frame to bind.
    /// - Throws: `notCached`, `notData` (a writable mapping of metadata), `notOwner` (a
    ///   fresh block mapped writable by another than its allocator), and what
    ///   `authorizeAccess` throws.
    public func mappableFrame(_ block: BlockNumber, writable: Bool, credential: Capability,
                              by environment: EnvironmentID) throws(XNError) -> FrameNumber {
        try authorizeAccess(block, credential: credential, .read)
        guard let entry = cache[block] else { throw .notCached }
        if writable {
            guard entry.type == .data else { throw .notData }
            try authorizeAccess(block, credential: credential, .writeData)
            try requireInitializer(entry, environment)
            markWritten(block, by: environment)
        }
        return entry.frame
    }
}

/// What a free takes with it (`XN.modify`).
struct Subtree {
    /// Blocks freed, each with the block whose write frees it.
    var freed: [(block: BlockNumber, parent: BlockNumber)] = []
    /// Pointers from freed blocks to shared blocks that keep other parents.
    var dropped: [(child: BlockNumber, from: BlockNumber)] = []
}

/// An operation as lists: the blocks that appear or disappear, and the frames of those
/// that appear.
struct Batch {
    var aclOperation: AclContext.Operation
    var targets: [BlockNumber] = []
    var frames: [FrameNumber] = []
    /// The type of the blocks that appear, when some do.
    var allocatedType: TypeID?
    /// Whether new data blocks keep their frames' bytes (a batch) or start zeroed.
    var keepsContents = false

    /// - Throws: `badModification` for a batch that is empty, too long, or names a
    ///   block or frame twice.
    init(_ operation: XNOperation) throws(XNError) {
        switch operation {
        case .write: aclOperation = .write
        case .swap: aclOperation = .swap
        case .allocate(let child, let type, let frame):
            (aclOperation, targets, frames, allocatedType) = (.allocate, [child], [frame], type)
        case .free(let child): (aclOperation, targets) = (.free, [child])
        case .link(let child): (aclOperation, targets) = (.link, [child])
        case .allocateMany(let children, let type, let given):
            guard given.count == children.count, Self.distinct(given.map { UInt64($0.rawValue) }) else { throw .badModification }
            (aclOperation, targets, frames, allocatedType, keepsContents) = (.allocate, children, given, type, true)
        case .freeMany(let children): (aclOperation, targets) = (.free, children)
        }
        guard !targets.isEmpty || (aclOperation != .allocate && aclOperation != .free) else { throw .badModification }
        guard targets.count <= XNLayout.batchMax, Self.distinct(targets) else { throw .badModification }
    }

    static func distinct(_ values: [UInt64]) -> Bool {
        if values.count < 2 { return true }
        let sorted = values.sorted()
        for i in 1..<sorted.count where sorted[i] == sorted[i - 1] { return false }
        return true
    }
}
