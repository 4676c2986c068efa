// A digest of everything a structure holds, for tests that check "a refused call changes
// nothing" across the whole kernel rather than one view of it. FNV-1a over a canonical
// serialization: every collection is fed in a fixed order.

import XokABI

/// FNV-1a, 64-bit.
public struct StateDigest: Equatable, Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func add(_ byte: UInt8) {
        value ^= UInt64(byte)
        value &*= 0x0000_0100_0000_01b3
    }
    public mutating func add(_ v: UInt64) { for i in 0..<8 { add(UInt8(truncatingIfNeeded: v >> UInt64(8 * i))) } }
    public mutating func add(_ v: UInt32) { add(UInt64(v)) }
    public mutating func add(_ v: Int) { add(UInt64(bitPattern: Int64(v))) }
    public mutating func add(_ v: Bool) { add(UInt8(v ? 1 : 0)) }
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        add(bytes.count)
        for b in bytes { add(b) }
    }
    public mutating func add(_ bytes: [UInt8]) { bytes.withUnsafeBytes { add($0) } }
    public mutating func add(_ c: Capability) {
        add(UInt8(c.rights.rawValue))
        add(c.name.count)
        for n in c.name { add(n) }
    }
    public mutating func add(_ acl: AccessControlList) {
        add(acl.entries.count)
        for e in acl.entries { add(e) }
    }
    public mutating func add(_ q: Quota) {
        add(q.environments); add(q.frames); add(q.regions); add(q.slices); add(q.messages); add(q.blocks); add(q.catalogueEntries)
    }
    public mutating func add<T: RawRepresentable>(optional v: T?) where T.RawValue == UInt32 {
        add(v != nil)
        if let v { add(v.rawValue) }
    }
}

extension XN {
    /// Feeds everything XN holds in memory — the cache registry, the free map, types,
    /// parents, pending frees, move groups, the catalogues — and the cached blocks' bytes.
    public func digest(into d: inout StateDigest) {
        d.add(allocated.allocatedCount)
        for b in allocated.allocatedBlocks { d.add(b) }
        for (block, type) in types.sorted(by: { $0.key < $1.key }) { d.add(block); d.add(type.rawValue) }
        for (block, parent) in parents.sorted(by: { $0.key < $1.key }) { d.add(block); d.add(parent) }
        for (block, others) in sharers.sorted(by: { $0.key < $1.key }) { d.add(block); for parent in others { d.add(parent) } }
        for (block, waits) in drops.sorted(by: { $0.key < $1.key }) { d.add(block); for parent in waits.sorted() { d.add(parent) } }
        for (block, from) in movedFrom.sorted(by: { $0.key < $1.key }) { d.add(block); for parent in from.sorted() { d.add(parent) } }
        for (block, waits) in freeWaits.sorted(by: { $0.key < $1.key }) { d.add(block); for parent in waits.sorted() { d.add(parent) } }
        for (block, parent) in pendingFree.sorted(by: { $0.key < $1.key }) { d.add(block); d.add(parent) }
        for (block, group) in moveGroups.sorted(by: { $0.key < $1.key }) { d.add(block); for member in group { d.add(member) } }
        for block in unlinked.sorted() { d.add(block) }
        d.add(templates.count)
        for t in templates { d.add(t.name) }
        d.add(roots.count)
        for r in roots { d.add(r.name); d.add(r.block); d.add(r.type.rawValue); d.add(r.capability) }
        for block in cache.keys.sorted() {
            let e = cache[block]!
            d.add(block); d.add(e.frame.rawValue); d.add(e.type.rawValue); d.add(e.parent ?? .max)
            d.add(UInt8(e.state == .valid ? 1 : e.state == .comingIn ? 2 : 3)); d.add(e.dirty)
            d.add(optional: e.owner)
            d.add(e.writers.count)
            for w in e.writers { d.add(w.rawValue) }
            switch e.durability {
            case .durable: d.add(UInt8(0))
            case .unwritten(let allocator, let initialized):
                d.add(UInt8(initialized ? 2 : 1))
                d.add(allocator.rawValue)
            }
            for p in e.pointers { d.add(p.block); d.add(p.type.rawValue) }
            d.add(UnsafeRawBufferPointer(memory.bytes(of: e.frame)))
        }
        d.add(dirtySet.count)
    }
}
