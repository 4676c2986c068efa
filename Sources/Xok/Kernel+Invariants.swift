// Whole-structure checks of the kernel's bookkeeping. Tests run them after every step of
// every simulation; each violation is a sentence naming what is inconsistent.

import XN
import XokABI

extension Kernel {
    /// Every broken invariant, in words; empty when the kernel is consistent.
    public func checkInvariants() -> [String] {
        var broken: [String] = []
        let records = liveRecords
        let live = Set(records.map(\.id))
        if live.count != liveCount { broken.append("counts \(liveCount) environments, holds \(live.count)") }
        // What each environment holds, counted in one pass over each table.
        var held: [EnvironmentID: Quota] = [:]
        for frame in frames { if let owner = frame?.owner { held[owner, default: .none].frames += 1 } }
        for region in regions.values { held[region.owner, default: .none].regions += 1 }
        for owner in sliceVector { if let owner { held[owner, default: .none].slices += 1 } }
        for record in records {
            for m in record.messages { held[m.from, default: .none].messages += 1 }
            if let parent = record.parent, let reservation = Quota.reservation(for: record.quota) {
                held[parent] = (held[parent] ?? Quota.none).adding(reservation) ?? Quota.none
            }
        }
        var inTable = 0
        for entry in environments where entry != nil { inTable += 1 }
        if inTable != liveIndices.count || !liveIndices.allSatisfy({ environments[$0] != nil }) {
            broken.append("the live-entry set disagrees with the table")
        }
        for record in records {
            let index = record.id.index
            let id = record.id.rawValue
            if record.id.index != index { broken.append("env \(id) sits at table entry \(index)") }
            if record.capabilities.count != KernelLimits.capabilitySlots { broken.append("env \(id): capability list has \(record.capabilities.count) slots") }
            // What it holds itself, plus what it set aside for its children, is what it counts.
            var holds = held[record.id] ?? .none
            holds.blocks = record.used.blocks
            holds.catalogueEntries = record.used.catalogueEntries
            if holds != record.used { broken.append("env \(id): counts \(record.used) used, holds \(holds)") }
            if !record.quota.covers(record.used) { broken.append("env \(id): uses more than its quota") }
            if record.bindings.count > KernelLimits.bindingsMax { broken.append("env \(id): over its binding limit") }
            var perSender: [EnvironmentID: Int] = [:]
            for m in record.messages { perSender[m.from, default: 0] += 1 }
            for (sender, n) in perSender where n > KernelLimits.messagesPerSender {
                broken.append("env \(id): over its share of messages from env \(sender.rawValue)")
            }
            if let parent = record.parent, !live.contains(parent) { broken.append("env \(id): parent \(parent.rawValue) is dead") }
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
        var freeCount = 0
        for (number, frame) in frames.enumerated() {
            guard let frame else {
                freeCount += 1
                continue
            }
            if let owner = frame.owner, !live.contains(owner) { broken.append("frame \(number): owner \(owner.rawValue) is dead") }
            if frame.owner == nil && !frame.cached { broken.append("frame \(number): no owner and not cached") }
            for (holder, writable) in frame.bindings.sorted(by: { $0.key < $1.key }) {
                if !live.contains(holder) {
                    broken.append("frame \(number): bound into dead env \(holder.rawValue)")
                } else if self[holder].bindings[FrameNumber(rawValue: UInt32(number))] != writable {
                    broken.append("frame \(number): binding into env \(holder.rawValue) unknown to the env")
                }
            }
            if (frame.revocationDeadline == nil) != (frame.revoker == nil) { broken.append("frame \(number): half a revocation") }
        }
        if freeCount != freeFrames.count || Set(freeFrames).count != freeFrames.count { broken.append("free frame list is wrong") }
        for (i, region) in regions.sorted(by: { $0.key < $1.key }) {
            if !live.contains(region.owner) { broken.append("region \(i): owner is dead") }
            if region.bytes.isEmpty || region.bytes.count > KernelLimits.regionBytesMax { broken.append("region \(i): size out of range") }
        }
        for (i, owner) in sliceVector.enumerated() {
            if let owner, !live.contains(owner) { broken.append("slice \(i): owner is dead") }
        }
        if let running, !live.contains(running) { broken.append("running env \(running.rawValue) is dead") }
        let view = exposedState
        broken += checkCacheFrames(view)
        if view.generation % 2 != 0 { broken.append("exposed state left mid-write") }
        if view.framesFree != freeCount { broken.append("exposed free-frame count is stale") }
        if view.environmentCount != live.count { broken.append("exposed environment count is stale") }
        if view.sliceOwners != sliceVector { broken.append("exposed slice vector is stale") }
        // Each live environment at its entry, and no other entry in use.
        var shown = 0
        for index in 0..<KernelLimits.environmentsMax where get32(layout.environmentTable + index * ExposedState.environmentEntryBytes) != 0 { shown += 1 }
        if shown != live.count || records.contains(where: { get32(layout.environmentTable + $0.id.index * ExposedState.environmentEntryBytes) != $0.id.rawValue }) {
            broken.append("exposed environment table is stale")
        }
        return broken
    }

    /// The buffer cache and the frames agree: every cached block's frame is a cache frame
    /// charged to the block's owner, no metadata frame is bound writable, and the
    /// exposed registry shows each cached block at its frame.
    func checkCacheFrames(_ view: ExposedState) -> [String] {
        var broken: [String] = []
        var cacheFrames = Set<Int>()
        if let xn {
            for block in xn.cachedBlocks {
                let entry = xn.registryEntry(block)!
                let f = Int(entry.frame.rawValue)
                cacheFrames.insert(f)
                guard f < frames.count, let record = frames[f], record.cached else {
                    broken.append("block \(block): frame \(f) is not a cache frame")
                    continue
                }
                if record.owner != entry.owner { broken.append("block \(block): frame \(f) charged to another than the block's owner") }
                if entry.type != .data && record.bindings.values.contains(true) { broken.append("metadata block \(block) is bound writable") }
                let shown = view.registry(block: block)
                if liveExposedState.registry(block: block) != shown { broken.append("block \(block): the exposed pages read in place and their snapshot disagree") }
                if shown?.frame != entry.frame || shown?.dirty != entry.dirty || shown?.type != entry.type || shown?.tainted != xn.isTainted(block)
                    || shown?.references != min(xn.references(block), Int(UInt16.max)) {
                    broken.append("exposed registry shows block \(block) wrongly")
                }
            }
            if view.cachedBlocks != xn.cachedCount { broken.append("exposed cached-block count is stale") }
            broken += xn.parentTableViolations()
        }
        for (number, frame) in frames.enumerated() where frame?.cached == true && !cacheFrames.contains(number) {
            broken.append("frame \(number): marked cached, holds no block")
        }
        for f in 0..<frames.count where !cacheFrames.contains(f) && view.registry(frame: FrameNumber(rawValue: UInt32(f))) != nil {
            broken.append("exposed registry shows frame \(f), which holds no block")
        }
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

    /// What `environment` may hold and holds now.
    public func quota(of environment: EnvironmentID) -> (quota: Quota, used: Quota)? {
        environmentIndex(environment).map { (environments[$0]!.quota, environments[$0]!.used) }
    }
}

extension Kernel {
    /// The environment `frame` is charged to, if it is allocated.
    public func frameOwner(_ frame: FrameNumber) -> EnvironmentID? {
        Int(frame.rawValue) < frames.count ? frames[Int(frame.rawValue)]?.owner : nil
    }
}

extension Kernel {
    /// A digest of the kernel's whole state: every environment's capabilities, ACLs,
    /// quota, bindings, messages and notices; every frame's record and bytes; every
    /// region's bytes; the slice vector; the exposed pages; and XN's cache and tables.
    /// Tests compare it before and after a refused call.
    public func stateDigest() -> StateDigest {
        var d = StateDigest()
        for record in liveRecords {
            d.add(record.id.rawValue); d.add(optional: record.parent)
            d.add(record.acl); d.add(record.messageACL)
            for c in record.capabilities {
                d.add(c != nil)
                if let c { d.add(c) }
            }
            d.add(record.quota); d.add(record.used)
            for (frame, writable) in record.bindings.sorted(by: { $0.key < $1.key }) { d.add(frame.rawValue); d.add(writable) }
            for m in record.messages { d.add(m.from.rawValue); d.add(m.bytes) }
            for (frame, deadline) in record.revocationsToDeliver.sorted(by: { $0.key < $1.key }) { d.add(frame.rawValue); d.add(deadline) }
            for frame in record.revokedToDeliver.sorted() { d.add(frame.rawValue) }
            d.add(record.wakeupPending); d.add(optional: record.sliceStartPending); d.add(optional: record.sliceEndPending)
            d.add(record.predicate != nil); d.add(optional: record.predicate?.region)
        }
        for (number, frame) in frames.enumerated() {
            guard let frame else { continue }
            d.add(number); d.add(optional: frame.owner); d.add(frame.acl); d.add(frame.cached)
            for (holder, writable) in frame.bindings.sorted(by: { $0.key < $1.key }) { d.add(holder.rawValue); d.add(writable) }
            d.add(frame.revocationDeadline ?? .max); d.add(optional: frame.revoker)
            d.add(UnsafeRawBufferPointer(host.memory.bytes(of: FrameNumber(rawValue: UInt32(number)))))
        }
        d.add(freeFrames.count)
        for (index, region) in regions.sorted(by: { $0.key < $1.key }) {
            d.add(index); d.add(regionGenerations[index]); d.add(region.owner.rawValue); d.add(region.acl); d.add(region.bytes)
        }
        for owner in sliceVector { d.add(optional: owner) }
        d.add(optional: running); d.add(optional: currentSlice)
        d.add(UnsafeRawBufferPointer(rebasing: exposed[0..<layout.totalBytes]))
        xn?.digest(into: &d)
        return d
    }
}
