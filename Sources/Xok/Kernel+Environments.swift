// Environments and capabilities: creation needs a credential and a quota out of the
// creator's unused share; a child gets only what its parent could grant; an ancestor may
// always destroy its subtree; death returns every resource held, the whole subtree's.

import BPF
import XN
import XokABI

/// Everything the kernel keeps for one environment.
struct EnvironmentRecord {
    let id: EnvironmentID
    let parent: EnvironmentID?
    /// Who may destroy it (its ancestors always may).
    var acl: AccessControlList
    /// Who may send it messages.
    var messageACL: AccessControlList
    var capabilities: [Capability?]
    /// What its subtree may hold, and what it holds now: its own resources plus what it
    /// gave its living children. Only init's grows, when a disk is mounted.
    var quota: Quota
    var used = Quota.none
    /// Frames bound into it, and whether writable.
    var bindings: [FrameNumber: Bool] = [:]
    var messages: [(from: EnvironmentID, bytes: [UInt8])] = []
    /// Revocations asked of it and not yet delivered as upcalls: frame → deadline.
    var revocationsToDeliver: [FrameNumber: UInt64] = [:]
    /// Bindings the kernel removed, not yet delivered as upcalls.
    var revokedToDeliver: Set<FrameNumber> = []
    var wakeupPending = false
    var sliceStartPending: SliceIndex?
    var sliceEndPending: SliceIndex?
    var predicate: InstalledPredicate?

    var asleep: Bool { predicate != nil }
}

extension Quota {
    /// What a creator sets aside for a child with quota `q`: the quota, and the child itself.
    static func reservation(for q: Quota) -> Quota? {
        q.adding(Quota(environments: 1))
    }
}

extension Kernel {
    func environmentIndex(_ id: EnvironmentID) -> Int? {
        let index = id.index
        guard index < environments.count else { return nil }
        // Through the buffer, the record is borrowed for its id, not copied whole.
        return environments.withUnsafeBufferPointer { $0[index]?.id == id } ? index : nil
    }

    /// The record of a live environment (callers have checked it exists).
    subscript(_ id: EnvironmentID) -> EnvironmentRecord {
        get { environments[id.index]! }
        set {
            environments[id.index] = newValue
            staleEnvironmentEntries.insert(id.index)
        }
        // In place: `self[id].bindings[frame] = …` through get and set copied the
        // record's tables on every change (a whole dictionary of bindings per bind).
        _modify {
            staleEnvironmentEntries.insert(id.index)
            yield &environments[id.index]!
        }
    }

    /// The live environments, in id order.
    var liveEnvironments: [EnvironmentID] { liveIndices.map { environments[$0]!.id }.sorted() }

    /// The live records, in table order.
    var liveRecords: [EnvironmentRecord] { liveIndices.sorted().map { environments[$0]! } }

    /// The capability in `slot` of `caller`'s list.
    /// - Throws: `slotOutOfRange`, `emptySlot`.
    func capability(_ caller: EnvironmentID, _ slot: CapabilitySlot) throws(KernelError) -> Capability {
        let index = Int(slot.rawValue)
        guard index < KernelLimits.capabilitySlots else { throw .slotOutOfRange }
        guard let c = self[caller].capabilities[index] else { throw .emptySlot }
        return c
    }

    /// Checks that `caller`'s credential passes `acl` for `needed`.
    /// - Throws: `slotOutOfRange`, `emptySlot`, `permissionDenied`.
    func authorize(_ caller: EnvironmentID, _ slot: CapabilitySlot, _ acl: AccessControlList, _ needed: Rights) throws(KernelError) {
        guard acl.permits(try capability(caller, slot), needed) else { throw .permissionDenied }
    }

    /// Charges `amount` to `caller`'s quota.
    /// - Throws: `limitExceeded` when it does not fit what is left.
    func charge(_ caller: EnvironmentID, _ amount: Quota) throws(KernelError) {
        guard let total = self[caller].used.adding(amount), self[caller].quota.covers(total) else { throw .limitExceeded }
        self[caller].used = total
    }

    /// Returns `amount` to `environment`'s quota, if it lives (never below zero).
    func refund(_ environment: EnvironmentID, _ amount: Quota) {
        guard environmentIndex(environment) != nil else { return }
        let used = self[environment].used
        self[environment].used = used.subtracting(amount) ?? Quota(
            environments: used.environments - min(used.environments, amount.environments), frames: used.frames - min(used.frames, amount.frames),
            regions: used.regions - min(used.regions, amount.regions), slices: used.slices - min(used.slices, amount.slices),
            messages: used.messages - min(used.messages, amount.messages), blocks: used.blocks - min(used.blocks, amount.blocks),
            catalogueEntries: used.catalogueEntries - min(used.catalogueEntries, amount.catalogueEntries))
    }

    func deriveCapability(_ caller: EnvironmentID, _ source: CapabilitySlot, appending: [UInt64], rights: Rights) throws(KernelError) -> CapabilitySlot {
        let derived = try capability(caller, source).derived(appending: appending, rights: rights)
        guard let free = self[caller].capabilities.firstIndex(where: { $0 == nil }) else { throw .limitExceeded }
        self[caller].capabilities[free] = derived
        return CapabilitySlot(free)
    }

    /// A new environment record in a free table entry, with the entry's next generation,
    /// or nil when the table is full.
    func makeEnvironment(parent: EnvironmentID?, acl: AccessControlList, capabilities: [Capability], quota: Quota) -> EnvironmentID? {
        guard liveIndices.count < environments.count, let index = environments.indices.first(where: { !liveIndices.contains($0) }) else { return nil }
        var generation = (environmentGenerations[index] &+ 1) & (UInt32.max >> EnvironmentID.indexBits)
        if generation == 0 { generation = 1 }
        environmentGenerations[index] = generation
        let id = EnvironmentID(index: index, generation: generation)
        var slots = [Capability?](repeating: nil, count: KernelLimits.capabilitySlots)
        for (i, c) in capabilities.prefix(KernelLimits.capabilitySlots).enumerated() { slots[i] = c }
        environments[index] = EnvironmentRecord(id: id, parent: parent, acl: acl, messageACL: acl, capabilities: slots, quota: quota)
        staleEnvironmentEntries.insert(index)
        liveIndices.insert(index)
        return id
    }

    func createEnvironment(_ caller: EnvironmentID, _ credential: CapabilitySlot, acl: AccessControlList,
                           grants: [CapabilitySlot], quota: Quota) throws(KernelError) -> EnvironmentID {
        try authorize(caller, credential, systemACLs.environments, .write)
        var granted: [Capability] = []
        for slot in grants {
            let c = try capability(caller, slot)
            guard c.rights.contains(.grant) else { throw .permissionDenied }
            granted.append(c)
        }
        guard let reservation = Quota.reservation(for: quota) else { throw .limitExceeded }
        guard let total = self[caller].used.adding(reservation), self[caller].quota.covers(total) else { throw .limitExceeded }
        guard let child = makeEnvironment(parent: caller, acl: acl, capabilities: granted, quota: quota) else { throw .exhausted }
        self[caller].used = total
        return child
    }

    /// Whether `ancestor` is `id`'s parent, or its parent's, and so on.
    func isAncestor(_ ancestor: EnvironmentID, of id: EnvironmentID) -> Bool {
        var current = environmentIndex(id).flatMap { environments[$0]!.parent }
        while let p = current {
            if p == ancestor { return true }
            current = environmentIndex(p).flatMap { environments[$0]!.parent }
        }
        return false
    }

    func destroyEnvironment(_ caller: EnvironmentID, _ credential: CapabilitySlot, _ target: EnvironmentID) throws(KernelError) {
        guard environmentIndex(target) != nil else { throw .noSuchEnvironment }
        if !isAncestor(caller, of: target) { try authorize(caller, credential, self[target].acl, .write) }
        kill(target)
    }

    /// `kill`, then writes back every dirty block the environment or its subtree handed to
    /// XN — the blocks charged to them and those they changed in others' frames — so that
    /// nothing handed over waits on a flusher that may never come (xokd, when a process
    /// dies). On a device error the blocks stay dirty and cached, for the next writeback.
    public func killWritingBack(_ id: EnvironmentID) throws(XNError) {
        var subtree = [id], next = 0
        while next < subtree.count {
            let parent = subtree[next]
            subtree += liveRecords.filter { $0.parent == parent }.map(\.id)
            next += 1
        }
        let left = xn.map { xn in Array(Set(subtree.flatMap { xn.dirtyBlocks(of: $0) })) } ?? []
        kill(id)
        guard let xn, !left.isEmpty else { return }
        defer { applyXNEvents(xn) }
        try xn.flush(left)
    }

    /// Ends an environment and its whole subtree, and returns everything they held: their
    /// bindings, their frames (whose other holders lose their bindings and are told),
    /// regions, slices, predicates and messages. Blocks and catalogue entries they charged
    /// stay charged to the parent, since they outlive them on disk (freeing such a block
    /// later returns it to the parent); the rest of the quota goes back to it. Dirty blocks handed to XN stay cached for any flusher.
    public func kill(_ id: EnvironmentID) {
        guard let index = environmentIndex(id) else { return }
        noteFrameChanges()
        for child in liveRecords.filter({ $0.parent == id }).map(\.id).sorted() { kill(child) }
        let record = environments[index]!
        for frame in record.bindings.keys.sorted() {
            host.unbind(frame, from: id)
            frames[Int(frame.rawValue)]!.bindings[id] = nil
        }
        if let xn {
            xn.environmentDied(id)
            applyXNEvents(xn)
        }
        for (number, frame) in frames.enumerated() where frame?.owner == id {
            if frame!.cached {
                // Held by the kernel until a flusher writes it.
                frames[number]!.owner = nil
            } else {
                releaseFrame(FrameNumber(rawValue: UInt32(number)))
            }
        }
        for (i, region) in regions.sorted(by: { $0.key < $1.key }) where region.owner == id {
            removeRegion(RegionID(index: i, generation: regionGenerations[i]))
        }
        for i in sliceVector.indices where sliceVector[i] == id { sliceVector[i] = nil }
        for message in record.messages { refund(message.from, Quota(messages: 1)) }
        if let parent = record.parent, environmentIndex(parent) != nil, let reservation = Quota.reservation(for: record.quota) {
            refund(parent, reservation)
            // What it left on disk is its parent's now, and so is each block's charge.
            self[parent].used.blocks += record.used.blocks
            self[parent].used.catalogueEntries += record.used.catalogueEntries
            blockCharges.bequeath(id, to: parent)
        }
        if running == id { running = nil }
        environments[index] = nil
        staleEnvironmentEntries.insert(index)
        liveIndices.remove(index)
        // Frames it was revoking complete once it is gone from their holders.
        completeRevocations()
        publish()
    }
}
