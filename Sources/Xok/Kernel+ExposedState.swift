// Writing the exposed kernel state (layout in XokABI/ExposedState.swift). The header is
// rewritten after every call; the slice vector, environment entries and registry entries
// only when they change, so a call costs what it changed, not the machine's size. The
// generation turns odd with the first write after a publish and even at the end of the
// next, so a reader elsewhere that sees the same even generation before and after its
// copy has a consistent one.

import XN
import XokABI

extension Kernel {
    func put32(_ v: UInt32, _ at: Int) {
        openWriteWindow()
        exposed.storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt32.self)
    }
    func put64(_ v: UInt64, _ at: Int) {
        openWriteWindow()
        exposed.storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt64.self)
    }

    /// Makes the generation odd before the first write since the last `publish`, so that a
    /// reader in another process copying the pages meanwhile sees that it must retry.
    func openWriteWindow() {
        guard generation & 1 == 0 else { return }
        generation &+= 1
        exposed.storeBytes(of: generation.littleEndian, toByteOffset: ExposedState.generationOffset, as: UInt64.self)
    }
    func get32(_ at: Int) -> UInt32 { UInt32(littleEndian: exposed.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }

    /// The header fields that never change after boot.
    func publishLayout() {
        put32(ExposedState.magic, 0)
        put32(ExposedState.version, 4)
        put32(UInt32(layout.totalBytes), ExposedState.totalBytesOffset)
        put32(UInt32(frames.count), ExposedState.framesTotalOffset)
        put32(UInt32(layout.environmentTable), ExposedState.environmentTableOffsetField)
        put32(UInt32(KernelLimits.environmentsMax), ExposedState.environmentTableOffsetField + 4)
        put32(UInt32(ExposedState.environmentEntryBytes), ExposedState.environmentTableOffsetField + 8)
        put32(UInt32(layout.sliceVector), ExposedState.sliceVectorOffsetField)
        put32(UInt32(KernelLimits.slices), ExposedState.sliceVectorOffsetField + 4)
        put32(UInt32(layout.registry), ExposedState.registryOffsetField)
        put32(UInt32(frames.count), ExposedState.registryOffsetField + 4)
        put32(UInt32(ExposedState.registryEntryBytes), ExposedState.registryOffsetField + 8)
        put32(UInt32(layout.index), ExposedState.indexOffsetField)
        put32(UInt32(layout.indexSlots), ExposedState.indexOffsetField + 4)
    }

    func publish() {
        // Frames XN let go change the frame counts below, so they come back first.
        openWriteWindow()
        if let xn { applyXNEvents(xn) }
        // Someone lost a binding without asking: a copy of the frame it kept by call must
        // go, and only the count can tell it.
        if bindingTaken {
            bindingTaken = false
            noteFrameChanges()
        }
        put64(host.ticks, ExposedState.clockOffset)
        put32(UInt32(freeFrames.count), ExposedState.framesFreeOffset)
        put32(UInt32(liveCount), ExposedState.environmentsOffset)
        if slicesChanged {
            for (i, owner) in sliceVector.enumerated() { put32(owner?.rawValue ?? 0, layout.sliceVector + 4 * i) }
            slicesChanged = false
        }
        for index in staleEnvironmentEntries.isEmpty ? [] : staleEnvironmentEntries.sorted() {
            let entry = environments[index]
            let at = layout.environmentTable + index * ExposedState.environmentEntryBytes
            put32(entry?.id.rawValue ?? 0, at)
            put32(entry?.asleep == true ? 1 : 0, at + 4)
            put32(UInt32(entry?.bindings.count ?? 0), at + 8)
            put32(UInt32(entry?.messages.count ?? 0), at + 12)
        }
        if !staleEnvironmentEntries.isEmpty { staleEnvironmentEntries.removeAll(keepingCapacity: true) }
        if let xn {
            put64(xn.geometry.blockCount, ExposedState.diskBlocksOffset)
            put64(xn.freeBlockCount, ExposedState.diskFreeOffset)
            put32(UInt32(xn.cachedCount), ExposedState.cachedBlocksOffset)
            put32(UInt32(xn.dirtyCount), ExposedState.dirtyBlocksOffset)
        }
        generation &+= 1
        exposed.storeBytes(of: generation.littleEndian, toByteOffset: ExposedState.generationOffset, as: UInt64.self)
    }

    /// Moves the exposed count of frame changes (`ExposedState.frameChangesOffset`):
    /// after any call that may have changed a frame's bytes or bindings beyond its
    /// caller's own frames, when a binding was taken from an environment that did not ask,
    /// and when an environment dies. A plain word outside the seqlock: readers compare it,
    /// whole.
    func noteFrameChanges() {
        frameChanges &+= 1
        exposed.storeBytes(of: frameChanges.littleEndian, toByteOffset: ExposedState.frameChangesOffset, as: UInt64.self)
    }

    /// Republishes the registry entries of `blocks`: first every entry that went away or
    /// moved to another frame is removed (while the pages still match the index), then
    /// every cached one is written at its frame's entry and in the index.
    func publishRegistry(_ blocks: [BlockNumber], _ xn: XN<H.Disk, H.Memory>) {
        for block in blocks {
            guard let old = published[block], xn.registryEntry(block)?.frame != old else { continue }
            _ = indexRemove(block)
            let at = layout.registry + Int(old.rawValue) * ExposedState.registryEntryBytes
            for i in 0..<ExposedState.registryEntryBytes { exposed[at + i] = 0 }
            published[block] = nil
        }
        for block in blocks {
            guard let entry = xn.registryEntry(block) else { continue }
            let at = layout.registry + Int(entry.frame.rawValue) * ExposedState.registryEntryBytes
            put64(block, at)
            put64(entry.parent ?? 0, at + 8)
            put32(entry.type.rawValue, at + 16)
            put32(entry.owner?.rawValue ?? 0, at + 20)
            let state: ExposedState.BlockState = switch entry.state {
            case .comingIn: .comingIn
            case .valid: .valid
            case .goingOut: .goingOut
            }
            exposed[at + 24] = state.rawValue
            exposed[at + 25] = (entry.dirty ? 1 : 0) | (xn.isTainted(block) ? 2 : 0)
            // Most blocks have their one parent, which the entry names (a root has none).
            let references = UInt16(min(entry.parent == nil ? 0 : 1 + xn.sharedBy(block), Int(UInt16.max)))
            exposed[at + 26] = UInt8(truncatingIfNeeded: references)
            exposed[at + 27] = UInt8(truncatingIfNeeded: references >> 8)
            if published[block] == nil {
                let (slot, _) = indexFind(block)
                put32(entry.frame.rawValue + 1, layout.index + 4 * slot)
                published[block] = entry.frame
            }
        }
    }

    func indexSlotValue(_ slot: Int) -> UInt32 { get32(layout.index + 4 * slot) }

    /// The slot of `block` in the registry index, or of the empty slot where it would go.
    func indexFind(_ block: BlockNumber) -> (slot: Int, found: Bool) {
        let mask = layout.indexSlots - 1
        var slot = ExposedState.indexSlot(of: block, slots: layout.indexSlots)
        while true {
            let v = indexSlotValue(slot)
            if v == 0 { return (slot, false) }
            if exposed.loadUnaligned(fromByteOffset: layout.registry + Int(v - 1) * ExposedState.registryEntryBytes, as: UInt64.self).littleEndian == block {
                return (slot, true)
            }
            slot = (slot + 1) & mask
        }
    }

    /// Removes `block` from the index (shifting later entries of its probe run back, so
    /// no tombstones are needed); returns the frame it named.
    func indexRemove(_ block: BlockNumber) -> FrameNumber? {
        let (found, present) = indexFind(block)
        guard present else { return nil }
        let mask = layout.indexSlots - 1
        let frame = FrameNumber(rawValue: indexSlotValue(found) - 1)
        var hole = found
        var slot = (found + 1) & mask
        while true {
            let v = indexSlotValue(slot)
            if v == 0 { break }
            let b = exposed.loadUnaligned(fromByteOffset: layout.registry + Int(v - 1) * ExposedState.registryEntryBytes, as: UInt64.self).littleEndian
            let home = ExposedState.indexSlot(of: b, slots: layout.indexSlots)
            // Move it into the hole unless its home lies cyclically in (hole, slot].
            let distanceToHome = (slot - home) & mask, distanceToHole = (slot - hole) & mask
            if distanceToHome >= distanceToHole {
                put32(v, layout.index + 4 * hole)
                hole = slot
            }
            slot = (slot + 1) & mask
        }
        put32(0, layout.index + 4 * hole)
        return frame
    }
}
