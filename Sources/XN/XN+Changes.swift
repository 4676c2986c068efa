// Metadata changes and data access (DESIGN.md §5). A change is a list of byte
// modifications to one cached block with a credential. XN runs the type's `acl` UDF on the
// change and `owns` on the block before and after, and applies the change only when the
// pointers differ exactly as the operation says; otherwise nothing changes.

import BPF
import XokABI

/// The state of a cached block (the buffer cache registry's states).
public enum CacheState: Sendable {
    case empty, comingIn, valid, goingOut
}

/// How far a block allocated by a change has got towards the disk.
public enum Durability: Sendable {
    /// Never written: its parent may not be written (tainted).
    case unwritten(allocator: EnvironmentID)
    /// On disk (every writeback ends with a barrier).
    case durable
}

/// One entry of the buffer cache registry.
public struct CacheEntry: Sendable {
    public var contents: [UInt8]
    public var type: TypeID
    public var parent: BlockNumber?
    public var state: CacheState
    public var dirty: Bool
    /// Who dirtied it last: the only environment that may write it back while alive.
    public var owner: EnvironmentID?
    public var durability: Durability
    /// What it points to (from `owns`; empty for data blocks).
    var pointers: [Pointer]
}

/// What a change does to the block's pointers.
public enum ChangeOperation: Hashable, Sendable {
    /// Bytes change; pointers stay the same.
    case write
    /// A pointer to `block` (free now) of `type` appears; the block is allocated.
    case allocate(BlockNumber, TypeID)
    /// The pointer to `block` disappears; the block is freed once this one is durable.
    case free(BlockNumber)
    /// Pointers move within the block; none appears or disappears.
    case swap
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

extension XN {
    /// The registry entry of a cached block.
    public func registryEntry(_ block: BlockNumber) -> CacheEntry? { cache[block] }

    /// Whether `block` points to new metadata that is not yet durable.
    public func isTainted(_ block: BlockNumber) -> Bool {
        guard let entry = cache[block] else { return false }
        return entry.pointers.contains { p in
            switch cache[p.block]?.durability {
            case .unwritten?: true
            default: false
            }
        }
    }

    /// Brings an allocated block into the cache (a fresh block is all zeros).
    func load(_ block: BlockNumber) throws(XNError) -> CacheEntry {
        if let entry = cache[block] { return entry }
        guard block < geometry.blockCount, let type = types[block], pendingFree[block] == nil else { throw .notMetadata }
        var entry = CacheEntry(contents: [], type: type, parent: parents[block], state: .comingIn, dirty: false, owner: nil,
                               durability: .durable, pointers: [])
        cache[block] = entry
        do { entry.contents = try device.read(block) } catch {
            cache[block] = nil
            throw .device(error.message)
        }
        if let template = template(type) {
            do { entry.pointers = try template.pointers(in: entry.contents) } catch {
                cache[block] = nil
                throw error
            }
        }
        entry.state = .valid
        cache[block] = entry
        return entry
    }

    /// Lays out the acl UDF's context.
    func fillAclContext(_ context: inout [UInt8], before: [UInt8], after: [UInt8], first: Int, count: Int, operation: AclContext.Operation,
                        target: BlockNumber, credential: Capability) {
        context.withUnsafeMutableBytes { c in
            before.withUnsafeBytes { c.baseAddress!.advanced(by: AclContext.blockBeforeOffset).copyMemory(from: $0.baseAddress!, byteCount: XNLayout.blockBytes) }
            after.withUnsafeBytes { c.baseAddress!.advanced(by: AclContext.blockAfterOffset).copyMemory(from: $0.baseAddress!, byteCount: XNLayout.blockBytes) }
        }
        context.withUnsafeMutableBytes { c in
            _ = c.baseAddress!.advanced(by: AclContext.changeOffset).initializeMemory(as: UInt8.self, repeating: 0, count: AclContext.bytes - AclContext.changeOffset)
        }
        context.put32(UInt32(first), at: AclContext.changeOffset)
        context.put32(UInt32(count), at: AclContext.changeOffset + 4)
        context.put32(operation.rawValue, at: AclContext.operationOffset)
        context.put64(target, at: AclContext.targetOffset)
        context.put64(UInt64(credential.rights.rawValue), at: AclContext.credentialOffset)
        context.put64(UInt64(credential.name.count), at: AclContext.credentialOffset + 8)
        for (i, c) in credential.name.enumerated() { context.put64(c, at: AclContext.credentialOffset + 16 + 8 * i) }
    }

    /// Asks the acl UDF of `block`'s type.
    func authorize(_ template: Template, before: [UInt8], after: [UInt8], first: Int, count: Int,
                   operation: AclContext.Operation, target: BlockNumber, credential: Capability) throws(XNError) {
        guard checksEnabled else { return }
        fillAclContext(&aclScratch, before: before, after: after, first: first, count: count, operation: operation,
                       target: target, credential: credential)
        guard try template.allows(&aclScratch) else { throw .aclDenied }
    }

    /// Checks a pointer list `owns` produced: inside the data area, of a known type, each
    /// block once.
    func validate(_ pointers: [Pointer]) throws(XNError) {
        var previous: BlockNumber?
        for p in pointers {
            guard p.block >= geometry.dataStart, p.block < geometry.blockCount, p.type == .data || template(p.type) != nil else {
                throw .invalidPointer
            }
            guard p.block != previous else { throw .invalidPointer }
            previous = p.block
        }
    }

    /// Changes metadata block `block` by `modifications`, as `operation` says.
    /// - Throws: `notMetadata`; `notOwner` (a fresh block changed by another than its
    ///   allocator); `badModification`; `aclDenied`; `udfFailed`; `invalidPointer`;
    ///   `pointerInvented`; `pointerLost`; `notFree` and `unknownType` (allocate);
    ///   `notAChild` and `notEmpty` (free); `device`. Nothing changes when it throws.
    public func modify(_ block: BlockNumber, _ modifications: [Modification], operation: ChangeOperation,
                       credential: Capability, by environment: EnvironmentID) throws(XNError) {
        var entry = try load(block)
        guard let template = template(entry.type) else { throw .notMetadata }
        if case .unwritten(let allocator) = entry.durability, allocator != environment { throw .notOwner }
        guard modifications.count <= XNLayout.modificationsMax else { throw .badModification }
        var after = entry.contents
        var first = XNLayout.blockBytes, last = 0
        for m in modifications {
            guard m.offset >= 0, m.offset <= XNLayout.blockBytes, m.bytes.count <= XNLayout.blockBytes - m.offset else { throw .badModification }
            after.replaceSubrange(m.offset..<m.offset + m.bytes.count, with: m.bytes)
            first = min(first, m.offset)
            last = max(last, m.offset + m.bytes.count)
        }
        let aclOperation: AclContext.Operation
        let target: BlockNumber
        switch operation {
        case .write: (aclOperation, target) = (.write, 0)
        case .swap: (aclOperation, target) = (.swap, 0)
        case .allocate(let b, _): (aclOperation, target) = (.allocate, b)
        case .free(let b): (aclOperation, target) = (.free, b)
        }
        try authorize(template, before: entry.contents, after: after, first: first == XNLayout.blockBytes ? 0 : first,
                      count: max(0, last - first), operation: aclOperation, target: target, credential: credential)
        // The pointers the operation says the block will hold afterwards.
        let old = entry.pointers
        let expected: [Pointer]
        switch operation {
        case .write, .swap:
            expected = old
        case .allocate(let child, let type):
            guard type == .data || self.template(type) != nil else { throw .unknownType }
            guard isFree(child) else { throw .notFree }
            let pointer = Pointer(block: child, type: type)
            var sorted = old
            sorted.insert(pointer, at: old.firstIndex { pointer < $0 } ?? old.count)
            expected = sorted
        case .free(let child):
            guard let gone = old.first(where: { $0.block == child }) else { throw .notAChild }
            expected = old.filter { $0 != gone }
            if let childEntry = cache[child], !childEntry.pointers.isEmpty { throw .notEmpty }
            if cache[child] == nil, gone.type != .data, let childTemplate = self.template(gone.type) {
                let contents: [UInt8]
                do { contents = try device.read(child) } catch { throw .device(error.message) }
                if !(try childTemplate.pointers(in: contents)).isEmpty { throw .notEmpty }
            }
        }
        // What `owns` says it holds: exactly the expected pointers, or the change is refused.
        var new = expected
        if checksEnabled {
            new = try template.pointers(in: after)
            try validate(new)
            if new != expected {
                // Both lists are sorted and free of duplicates: a pointer in one and not the
                // other was invented or lost.
                throw new.contains(where: { !expected.contains($0) }) ? .pointerInvented : .pointerLost
            }
        }

        // Commit.
        entry.contents = after
        entry.pointers = new
        entry.dirty = true
        entry.owner = environment
        cache[block] = entry
        switch operation {
        case .allocate(let child, let type):
            allocated[Int(child)] = true
            types[child] = type
            parents[child] = block
            cache[child] = CacheEntry(contents: [UInt8](repeating: 0, count: XNLayout.blockBytes), type: type, parent: block,
                                      state: .valid, dirty: true, owner: environment,
                                      durability: .unwritten(allocator: environment), pointers: [])
        case .free(let child):
            cache[child] = nil
            types[child] = nil
            parents[child] = nil
            pendingFree[child] = block
        case .write, .swap:
            break
        }
    }

    /// Writes bytes into data block `block`. Needs what the parent's `acl` UDF grants for
    /// operation `writeData`; a fresh data block only its allocator may write.
    /// - Throws: `notData`, `notOwner`, `badModification`, `aclDenied`, `udfFailed`, `device`.
    public func writeData(_ block: BlockNumber, offset: Int, bytes: [UInt8], credential: Capability,
                          by environment: EnvironmentID) throws(XNError) {
        guard types[block] == .data, let parent = parents[block] else { throw .notData }
        guard offset >= 0, offset <= XNLayout.blockBytes, bytes.count <= XNLayout.blockBytes - offset else { throw .badModification }
        let parentEntry = try load(parent)
        if let template = template(parentEntry.type) {
            try authorize(template, before: parentEntry.contents, after: parentEntry.contents, first: offset, count: bytes.count,
                          operation: .writeData, target: block, credential: credential)
        }
        var entry = try load(block)
        if case .unwritten(let allocator) = entry.durability, allocator != environment { throw .notOwner }
        entry.contents.replaceSubrange(offset..<offset + bytes.count, with: bytes)
        entry.dirty = true
        entry.owner = environment
        cache[block] = entry
    }

    /// A copy of block `block`: a root needs a credential dominating its capability with
    /// read; any other block, what its parent's `acl` UDF grants for operation `read`.
    /// - Throws: `notMetadata` (not allocated), `aclDenied`, `udfFailed`, `device`.
    public func read(_ block: BlockNumber, credential: Capability) throws(XNError) -> [UInt8] {
        guard types[block] != nil, pendingFree[block] == nil else { throw .notMetadata }
        if let root = roots.first(where: { $0.block == block }) {
            guard credential.dominates(try! root.capability.derived(rights: .read)) else { throw .aclDenied }
        } else if let parent = parents[block] {
            let parentEntry = try load(parent)
            if let template = template(parentEntry.type) {
                try authorize(template, before: parentEntry.contents, after: parentEntry.contents, first: 0, count: 0,
                              operation: .read, target: block, credential: credential)
            }
        }
        return try load(block).contents
    }
}
