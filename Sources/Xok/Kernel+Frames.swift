// Frames and secure bindings (DESIGN.md §3): frames are numbered and exposed; an
// environment binds one into itself when its credential passes the frame's ACL.
// Revocation is visible first — holders are told and given a deadline — and forced after
// it (the abort protocol): the host removes the binding, so the holder's next access
// faults.

import XokABI

struct FrameRecord {
    /// The environment whose limit the frame counts against.
    var owner: EnvironmentID
    var acl: AccessControlList
    /// Environments it is bound into, and whether writable.
    var bindings: [EnvironmentID: Bool] = [:]
    /// While a revocation is under way: when it will be forced.
    var revocationDeadline: UInt64?
    /// Who asked for it, and keeps its own binding.
    var revoker: EnvironmentID?
}

extension Kernel {
    /// The frame's record, after checking the credential passes its ACL for `needed`.
    @discardableResult
    func frameRecord(_ frame: FrameNumber, _ caller: EnvironmentID, _ credential: CapabilitySlot, needs needed: Rights) throws(KernelError) -> FrameRecord {
        guard Int(frame.rawValue) < frames.count, let record = frames[Int(frame.rawValue)] else { throw .noSuchFrame }
        try authorize(caller, credential, record.acl, needed)
        return record
    }

    func allocateFrame(_ caller: EnvironmentID, _ credential: CapabilitySlot, acl: AccessControlList) throws(KernelError) -> FrameNumber {
        try authorize(caller, credential, systemACLs.frames, .write)
        guard self[caller].framesOwned < KernelLimits.framesPerEnvironment else { throw .limitExceeded }
        guard let index = frames.firstIndex(where: { $0 == nil }) else { throw .exhausted }
        let frame = FrameNumber(rawValue: UInt32(index))
        host.zero(frame)
        frames[index] = FrameRecord(owner: caller, acl: acl)
        self[caller].framesOwned += 1
        return frame
    }

    func freeFrame(_ caller: EnvironmentID, _ credential: CapabilitySlot, _ frame: FrameNumber) throws(KernelError) {
        let record = try frameRecord(frame, caller, credential, needs: .write)
        guard record.bindings.keys.allSatisfy({ $0 == caller }) else { throw .busy }
        releaseFrame(frame)
    }

    /// Frees a frame: every binding removed (holders other than the owner are told), the
    /// owner's count returned.
    func releaseFrame(_ frame: FrameNumber) {
        let record = frames[Int(frame.rawValue)]!
        for holder in record.bindings.keys.sorted() {
            host.unbind(frame, from: holder)
            self[holder].bindings[frame] = nil
            self[holder].revocationsToDeliver[frame] = nil
            if holder != record.owner { self[holder].revokedToDeliver.insert(frame) }
        }
        if environmentIndex(record.owner) != nil { self[record.owner].framesOwned -= 1 }
        frames[Int(frame.rawValue)] = nil
    }

    func mapFrame(_ caller: EnvironmentID, _ credential: CapabilitySlot, _ frame: FrameNumber, writable: Bool) throws(KernelError) {
        let record = try frameRecord(frame, caller, credential, needs: writable ? [.read, .write] : .read)
        guard record.revocationDeadline == nil || record.revoker == caller else { throw .busy }
        if self[caller].bindings[frame] == nil {
            guard self[caller].bindings.count < KernelLimits.framesPerEnvironment else { throw .limitExceeded }
        }
        host.bind(frame, to: caller, writable: writable)
        frames[Int(frame.rawValue)]!.bindings[caller] = writable
        self[caller].bindings[frame] = writable
    }

    func unmapFrame(_ caller: EnvironmentID, _ frame: FrameNumber) throws(KernelError) {
        guard self[caller].bindings[frame] != nil else { throw .notMapped }
        host.unbind(frame, from: caller)
        self[caller].bindings[frame] = nil
        self[caller].revocationsToDeliver[frame] = nil
        frames[Int(frame.rawValue)]!.bindings[caller] = nil
        completeRevocations()
    }

    func revokeFrame(_ caller: EnvironmentID, _ credential: CapabilitySlot, _ frame: FrameNumber, graceTicks: UInt64) throws(KernelError) {
        let record = try frameRecord(frame, caller, credential, needs: .write)
        guard graceTicks <= KernelLimits.revocationGraceMax else { throw .invalidArgument }
        guard record.revocationDeadline == nil else { throw .busy }
        let holders = record.bindings.keys.filter { $0 != caller }.sorted()
        guard !holders.isEmpty else { return }
        let deadline = host.ticks + graceTicks
        frames[Int(frame.rawValue)]!.revocationDeadline = deadline
        frames[Int(frame.rawValue)]!.revoker = caller
        for holder in holders { self[holder].revocationsToDeliver[frame] = deadline }
    }

    /// Ends revocations whose holders have all unmapped, and forces those past deadline.
    func completeRevocations() {
        for number in frames.indices {
            guard let record = frames[number], let deadline = record.revocationDeadline else { continue }
            let frame = FrameNumber(rawValue: UInt32(number))
            let holders = record.bindings.keys.filter { $0 != record.revoker }.sorted()
            if !holders.isEmpty && host.ticks >= deadline {
                for holder in holders {
                    host.unbind(frame, from: holder)
                    self[holder].bindings[frame] = nil
                    self[holder].revocationsToDeliver[frame] = nil
                    self[holder].revokedToDeliver.insert(frame)
                    frames[number]!.bindings[holder] = nil
                }
            }
            if frames[number]!.bindings.keys.allSatisfy({ $0 == record.revoker }) {
                frames[number]!.revocationDeadline = nil
                frames[number]!.revoker = nil
            }
        }
    }
}
