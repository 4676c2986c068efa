// Frames and secure bindings (DESIGN.md §3): frames are numbered and exposed; an
// environment binds one into itself when its credential passes the frame's ACL.
// Revocation is visible first — holders are told and given a deadline — and forced after
// it (the abort protocol): the host removes the binding, so the holder's next access
// faults. A frame given to XN's buffer cache is bound only through XN's calls, which
// apply XN's rules instead of the frame's ACL.

import XN
import XokABI

struct FrameRecord {
    /// The environment whose quota the frame counts against; nil for a cached block's
    /// frame the kernel holds after its environment died.
    var owner: EnvironmentID?
    var acl: AccessControlList
    /// Environments it is bound into, and whether writable.
    var bindings: [EnvironmentID: Bool] = [:]
    /// While a revocation is under way: when it will be forced.
    var revocationDeadline: UInt64?
    /// Who asked for it, and keeps its own binding.
    var revoker: EnvironmentID?
    /// Whether it holds a block of XN's buffer cache.
    var cached = false
}

extension Kernel {
    /// The frame's record, after checking the credential passes its ACL for `needed`.
    /// - Throws: `noSuchFrame`; `busy` for a frame of the buffer cache (XN's calls reach
    ///   those); the credential's errors.
    @discardableResult
    func frameRecord(_ frame: FrameNumber, _ caller: EnvironmentID, _ credential: CapabilitySlot, needs needed: Rights) throws(KernelError) -> FrameRecord {
        guard Int(frame.rawValue) < frames.count, let record = frames[Int(frame.rawValue)] else { throw .noSuchFrame }
        try authorize(caller, credential, record.acl, needed)
        guard !record.cached else { throw .busy }
        return record
    }

    func allocateFrame(_ caller: EnvironmentID, _ credential: CapabilitySlot, acl: AccessControlList) throws(KernelError) -> FrameNumber {
        try authorize(caller, credential, systemACLs.frames, .write)
        guard let number = freeFrames.last else { throw .exhausted }
        try charge(caller, Quota(frames: 1))
        freeFrames.removeLast()
        let frame = FrameNumber(rawValue: number)
        host.memory.zero(frame)
        frames[Int(number)] = FrameRecord(owner: caller, acl: acl)
        return frame
    }

    /// `count` frames at once, each bound writable into `caller`. Everything is checked
    /// before any frame is taken.
    func allocateFrames(_ caller: EnvironmentID, _ credential: CapabilitySlot, acl: AccessControlList, count: Int) throws(KernelError) -> [FrameNumber] {
        guard count >= 1, count <= KernelLimits.xnBatchMax else { throw .invalidArgument }
        try authorize(caller, credential, systemACLs.frames, .write)
        guard freeFrames.count >= count else { throw .exhausted }
        guard self[caller].bindings.count + count <= KernelLimits.bindingsMax else { throw .limitExceeded }
        try charge(caller, Quota(frames: UInt32(count)))
        var result: [FrameNumber] = []
        for _ in 0..<count {
            let frame = FrameNumber(rawValue: freeFrames.removeLast())
            host.memory.zero(frame)
            frames[Int(frame.rawValue)] = FrameRecord(owner: caller, acl: acl)
            try bind(frame, into: caller, writable: true)
            result.append(frame)
        }
        return result
    }

    /// Bytes of a frame bound into `caller`, as its loads see them (`LocalPort.load`
    /// directly, `frameLoad` for a process without the frame mapped).
    /// - Throws: `notMapped` when the frame is not bound or the range leaves the page.
    func load(_ frame: FrameNumber, offset: Int, count: Int, by caller: EnvironmentID) throws(KernelError) -> [UInt8] {
        guard binding(of: frame, in: caller) != nil, offset >= 0, count >= 0, count <= KernelLimits.pageBytes - offset else { throw .notMapped }
        return Array(UnsafeRawBufferPointer(rebasing: host.memory.bytes(of: frame)[offset..<offset + count]))
    }

    /// Writes into a frame bound writable into `caller`, as its stores would.
    /// - Throws: `notMapped` when it is not bound writable or the range leaves the page.
    func store(_ bytes: [UInt8], into frame: FrameNumber, offset: Int, by caller: EnvironmentID) throws(KernelError) {
        guard binding(of: frame, in: caller) == true, offset >= 0, bytes.count <= KernelLimits.pageBytes - offset else { throw .notMapped }
        let target = host.memory.bytes(of: frame)
        bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: target[offset..<offset + bytes.count]).copyMemory(from: $0) }
    }

    /// Whether `request` stores into a frame that is bound into `caller` and no other
    /// environment.
    func isPrivateStore(_ request: KernelRequest, by caller: EnvironmentID) -> Bool {
        guard case .frameStore(let frame, _, _) = request, Int(frame.rawValue) < frames.count else { return false }
        return frames.withUnsafeBufferPointer { all in
            guard let bindings = all[Int(frame.rawValue)]?.bindings else { return false }
            return bindings.count == 1 && bindings[caller] != nil
        }
    }

    /// Whether `request` changes a cached block whose frame no environment but `caller`
    /// holds (`KernelRequest.blockChanged`; the frames it gives were checked to be the
    /// caller's alone). Asked after the call, when the block is where the call left it.
    func changesBlockOfCallerAlone(_ request: KernelRequest, by caller: EnvironmentID) -> Bool {
        guard let (block, _) = request.blockChanged, let frame = xn?.registryEntry(block)?.frame, Int(frame.rawValue) < frames.count else {
            return false
        }
        return frames.withUnsafeBufferPointer { all in all[Int(frame.rawValue)]?.bindings.keys.allSatisfy { $0 == caller } ?? false }
    }

    func freeFrame(_ caller: EnvironmentID, _ credential: CapabilitySlot, _ frame: FrameNumber) throws(KernelError) {
        let record = try frameRecord(frame, caller, credential, needs: .write)
        guard record.bindings.keys.allSatisfy({ $0 == caller }) else { throw .busy }
        releaseFrame(frame, askedBy: caller)
    }

    /// Removes every binding of a frame but `keep`'s; holders are told (`telling`). A
    /// binding of anyone but `asker` was taken (`bindingTaken`).
    func unbindAll(_ frame: FrameNumber, telling: Bool, except keep: EnvironmentID? = nil, askedBy asker: EnvironmentID? = nil) {
        let record = frames[Int(frame.rawValue)]!
        for holder in record.bindings.keys.sorted() where holder != keep {
            if holder != asker { bindingTaken = true }
            host.unbind(frame, from: holder)
            self[holder].bindings[frame] = nil
            self[holder].revocationsToDeliver[frame] = nil
            if telling && holder != record.owner { self[holder].revokedToDeliver.insert(frame) }
            frames[Int(frame.rawValue)]!.bindings[holder] = nil
        }
    }

    /// Frees a frame: every binding removed (holders other than the owner are told), the
    /// owner's quota returned. `asker` is the environment whose call frees it, if any.
    func releaseFrame(_ frame: FrameNumber, askedBy asker: EnvironmentID? = nil) {
        unbindAll(frame, telling: true, askedBy: asker)
        if let owner = frames[Int(frame.rawValue)]!.owner { refund(owner, Quota(frames: 1)) }
        frames[Int(frame.rawValue)] = nil
        freeFrames.append(frame.rawValue)
        revoking.remove(frame.rawValue)
    }

    /// Binds `frame` into `caller`, counting the binding against its limit.
    func bind(_ frame: FrameNumber, into caller: EnvironmentID, writable: Bool) throws(KernelError) {
        if self[caller].bindings[frame] == nil {
            guard self[caller].bindings.count < KernelLimits.bindingsMax else { throw .limitExceeded }
        }
        host.bind(frame, to: caller, writable: writable)
        frames[Int(frame.rawValue)]!.bindings[caller] = writable
        self[caller].bindings[frame] = writable
    }

    func mapFrame(_ caller: EnvironmentID, _ credential: CapabilitySlot, _ frame: FrameNumber, writable: Bool) throws(KernelError) {
        let record = try frameRecord(frame, caller, credential, needs: writable ? [.read, .write] : .read)
        guard record.revocationDeadline == nil || record.revoker == caller else { throw .busy }
        try bind(frame, into: caller, writable: writable)
    }

    func unmapFrame(_ caller: EnvironmentID, _ frame: FrameNumber) throws(KernelError) {
        guard self[caller].bindings[frame] != nil else { throw .notMapped }
        host.unbind(frame, from: caller)
        self[caller].bindings[frame] = nil
        self[caller].revocationsToDeliver[frame] = nil
        frames[Int(frame.rawValue)]!.bindings[caller] = nil
        completeRevocations()
    }

    /// `frameUnmap` for each of `frames`, or for none.
    /// - Throws: `invalidArgument` (none, or one named twice), `notMapped`.
    func unmapFrames(_ caller: EnvironmentID, _ frames: [FrameNumber]) throws(KernelError) {
        guard !frames.isEmpty, frames.count <= KernelLimits.xnBatchMax, Set(frames.map(\.rawValue)).count == frames.count else {
            throw .invalidArgument
        }
        for frame in frames { guard self[caller].bindings[frame] != nil else { throw .notMapped } }
        for frame in frames { try unmapFrame(caller, frame) }
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
        revoking.insert(frame.rawValue)
    }

    /// Ends revocations whose holders have all unmapped, and forces those past deadline.
    func completeRevocations() {
        for raw in revoking.sorted() {
            let number = Int(raw)
            guard let record = frames[number], let deadline = record.revocationDeadline else {
                revoking.remove(raw)
                continue
            }
            let frame = FrameNumber(rawValue: UInt32(number))
            let holders = record.bindings.keys.filter { $0 != record.revoker }.sorted()
            if !holders.isEmpty && host.ticks >= deadline {
                for holder in holders {
                    bindingTaken = true
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
                revoking.remove(raw)
            }
        }
    }
}
