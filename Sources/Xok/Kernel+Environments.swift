// Environments and capabilities: creation needs a credential; a child gets only what its
// parent could grant; death returns every resource held.

import BPF
import XokABI

/// Everything the kernel keeps for one environment.
struct EnvironmentRecord {
    let id: EnvironmentID
    let parent: EnvironmentID?
    /// Who may destroy it.
    var acl: AccessControlList
    /// Who may send it messages.
    var messageACL: AccessControlList
    var capabilities: [Capability?]
    var children = 0
    var framesOwned = 0
    /// Frames bound into it, and whether writable.
    var bindings: [FrameNumber: Bool] = [:]
    var regionsOwned = 0
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

extension Kernel {
    func environmentIndex(_ id: EnvironmentID) -> Int? {
        environments.firstIndex { $0?.id == id }
    }

    /// The record of a live environment (callers have checked it exists).
    subscript(_ id: EnvironmentID) -> EnvironmentRecord {
        get { environments[environmentIndex(id)!]! }
        set { environments[environmentIndex(id)!] = newValue }
    }

    /// The live environments, in id order.
    var liveEnvironments: [EnvironmentID] { environments.compactMap { $0?.id }.sorted() }

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

    func deriveCapability(_ caller: EnvironmentID, _ source: CapabilitySlot, appending: [UInt64], rights: Rights) throws(KernelError) -> CapabilitySlot {
        let derived = try capability(caller, source).derived(appending: appending, rights: rights)
        guard let free = self[caller].capabilities.firstIndex(where: { $0 == nil }) else { throw .limitExceeded }
        self[caller].capabilities[free] = derived
        return CapabilitySlot(free)
    }

    /// A new environment record in a free table entry, or nil when the table is full.
    func makeEnvironment(parent: EnvironmentID?, acl: AccessControlList, capabilities: [Capability]) -> EnvironmentID? {
        guard let index = environments.firstIndex(where: { $0 == nil }) else { return nil }
        let id = EnvironmentID(rawValue: nextEnvironment)
        nextEnvironment += 1
        var slots = [Capability?](repeating: nil, count: KernelLimits.capabilitySlots)
        for (i, c) in capabilities.enumerated() { slots[i] = c }
        environments[index] = EnvironmentRecord(id: id, parent: parent, acl: acl, messageACL: acl, capabilities: slots)
        return id
    }

    func createEnvironment(_ caller: EnvironmentID, _ credential: CapabilitySlot, acl: AccessControlList,
                           grants: [CapabilitySlot]) throws(KernelError) -> EnvironmentID {
        try authorize(caller, credential, systemACLs.environments, .write)
        var granted: [Capability] = []
        for slot in grants {
            let c = try capability(caller, slot)
            guard c.rights.contains(.grant) else { throw .permissionDenied }
            granted.append(c)
        }
        guard self[caller].children < KernelLimits.childrenMax else { throw .limitExceeded }
        guard let child = makeEnvironment(parent: caller, acl: acl, capabilities: granted) else { throw .exhausted }
        self[caller].children += 1
        return child
    }

    func destroyEnvironment(_ caller: EnvironmentID, _ credential: CapabilitySlot, _ target: EnvironmentID) throws(KernelError) {
        guard environmentIndex(target) != nil else { throw .noSuchEnvironment }
        try authorize(caller, credential, self[target].acl, .write)
        kill(target)
    }

    /// Ends an environment and returns everything it held: its bindings, its frames (whose
    /// other holders lose their bindings and are told), its regions, slices, predicate and
    /// messages. Its children live on.
    public func kill(_ id: EnvironmentID) {
        guard let index = environmentIndex(id) else { return }
        let record = environments[index]!
        for frame in record.bindings.keys.sorted() {
            host.unbind(frame, from: id)
            frames[Int(frame.rawValue)]!.bindings[id] = nil
        }
        for (number, frame) in frames.enumerated() where frame?.owner == id {
            releaseFrame(FrameNumber(rawValue: UInt32(number)))
        }
        for region in regions.keys.sorted() where regions[region]!.owner == id { removeRegion(region) }
        for i in sliceVector.indices where sliceVector[i] == id { sliceVector[i] = nil }
        if let parent = record.parent, environmentIndex(parent) != nil { self[parent].children -= 1 }
        if running == id { running = nil }
        environments[index] = nil
        // Frames it was revoking complete once it is gone from their holders.
        completeRevocations()
        publish()
    }
}
