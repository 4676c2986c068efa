// Whole-structure checks of the kernel's bookkeeping. Tests run them after every step of
// every simulation; each violation is a sentence naming what is inconsistent.

import XokABI

extension Kernel {
    /// Every broken invariant, in words; empty when the kernel is consistent.
    public func checkInvariants() -> [String] {
        var broken: [String] = []
        let live = Set(liveEnvironments)
        if live.count != environments.compactMap({ $0 }).count { broken.append("two environments share an id") }
        for record in environments.compactMap({ $0 }) {
            let id = record.id.rawValue
            if record.capabilities.count != KernelLimits.capabilitySlots { broken.append("env \(id): capability list has \(record.capabilities.count) slots") }
            for c in record.capabilities.compactMap({ $0 }) where c.name.count > KernelLimits.nameComponentsMax {
                broken.append("env \(id): a capability name is too long")
            }
            let children = environments.compactMap { $0 }.filter { $0.parent == record.id }.count
            if children != record.children { broken.append("env \(id): counts \(record.children) children, has \(children)") }
            if record.children > KernelLimits.childrenMax { broken.append("env \(id): over its children limit") }
            let owned = frames.compactMap { $0 }.filter { $0.owner == record.id }.count
            if owned != record.framesOwned { broken.append("env \(id): counts \(record.framesOwned) frames, owns \(owned)") }
            if owned > KernelLimits.framesPerEnvironment { broken.append("env \(id): over its frame limit") }
            if record.bindings.count > KernelLimits.framesPerEnvironment { broken.append("env \(id): over its binding limit") }
            let regionCount = regions.values.filter { $0.owner == record.id }.count
            if regionCount != record.regionsOwned { broken.append("env \(id): counts \(record.regionsOwned) regions, owns \(regionCount)") }
            if regionCount > KernelLimits.regionsPerEnvironment { broken.append("env \(id): over its region limit") }
            if record.messages.count > KernelLimits.messageQueueDepth { broken.append("env \(id): message queue over its depth") }
            if sliceVector.filter({ $0 == record.id }).count > KernelLimits.slicesPerEnvironment { broken.append("env \(id): over its slice limit") }
            for (frame, writable) in record.bindings.sorted(by: { $0.key < $1.key }) {
                let f = Int(frame.rawValue)
                if f >= frames.count || frames[f]?.bindings[record.id] != writable {
                    broken.append("env \(id): binding of frame \(frame.rawValue) unknown to the frame")
                }
            }
            for frame in record.revocationsToDeliver.keys.sorted() where record.bindings[frame] == nil {
                broken.append("env \(id): asked to give back frame \(frame.rawValue) it does not hold")
            }
        }
        for (number, frame) in frames.enumerated() {
            guard let frame else { continue }
            if !live.contains(frame.owner) { broken.append("frame \(number): owner \(frame.owner.rawValue) is dead") }
            for (holder, writable) in frame.bindings.sorted(by: { $0.key < $1.key }) {
                if !live.contains(holder) {
                    broken.append("frame \(number): bound into dead env \(holder.rawValue)")
                } else if self[holder].bindings[FrameNumber(rawValue: UInt32(number))] != writable {
                    broken.append("frame \(number): binding into env \(holder.rawValue) unknown to the env")
                }
            }
            if (frame.revocationDeadline == nil) != (frame.revoker == nil) { broken.append("frame \(number): half a revocation") }
        }
        for (id, region) in regions.sorted(by: { $0.key < $1.key }) {
            if !live.contains(region.owner) { broken.append("region \(id.rawValue): owner is dead") }
            if region.bytes.isEmpty || region.bytes.count > KernelLimits.regionBytesMax { broken.append("region \(id.rawValue): size out of range") }
        }
        for (i, owner) in sliceVector.enumerated() {
            if let owner, !live.contains(owner) { broken.append("slice \(i): owner is dead") }
        }
        if let running, !live.contains(running) { broken.append("running env \(running.rawValue) is dead") }
        let view = exposedState
        if view.generation % 2 != 0 { broken.append("exposed state left mid-write") }
        if view.framesFree != frames.filter({ $0 == nil }).count { broken.append("exposed free-frame count is stale") }
        if view.environmentCount != live.count { broken.append("exposed environment count is stale") }
        if view.sliceOwners != sliceVector { broken.append("exposed slice vector is stale") }
        return broken
    }

    /// Whether `frame` is bound into `environment`, and writable: the kernel's side of the
    /// secure binding, for checking a host's MMU against.
    public func binding(of frame: FrameNumber, in environment: EnvironmentID) -> Bool? {
        guard Int(frame.rawValue) < frames.count else { return nil }
        return frames[Int(frame.rawValue)]?.bindings[environment]
    }

    /// The live environments, in id order.
    public var environmentIDs: [EnvironmentID] { liveEnvironments }

    /// Whether `environment` is asleep on a wakeup predicate.
    public func isAsleep(_ environment: EnvironmentID) -> Bool {
        environmentIndex(environment).map { environments[$0]!.asleep } ?? false
    }
}
