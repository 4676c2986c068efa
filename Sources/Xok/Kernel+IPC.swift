// IPC and upcalls (DESIGN.md §3): messages between environments, checked against the
// target's message ACL and held in a bounded queue (a full queue is the sender's error,
// never a lost message), and the kernel's notices, delivered in a fixed order through
// `upcallNext`. Notices are kept as state, not queued, so they are bounded by construction.

import XokABI

extension Kernel {
    func send(_ caller: EnvironmentID, _ credential: CapabilitySlot, to target: EnvironmentID, message: [UInt8]) throws(KernelError) {
        guard environmentIndex(target) != nil else { throw .noSuchEnvironment }
        try authorize(caller, credential, self[target].messageACL, .write)
        guard message.count <= KernelLimits.messageBytesMax else { throw .invalidArgument }
        guard self[target].messages.count < KernelLimits.messageQueueDepth else { throw .queueFull }
        self[target].messages.append((caller, message))
    }

    /// The next upcall for `caller`: forced revocations, revocation requests (by frame
    /// number), a wakeup, slice start and end, then messages in arrival order.
    func nextUpcall(_ caller: EnvironmentID) -> Upcall? {
        var record = self[caller]
        defer { self[caller] = record }
        if let frame = record.revokedToDeliver.min() {
            record.revokedToDeliver.remove(frame)
            return .frameRevoked(frame)
        }
        if let frame = record.revocationsToDeliver.keys.min() {
            let deadline = record.revocationsToDeliver.removeValue(forKey: frame)!
            return .revocationRequested(frame, deadline: deadline)
        }
        if record.wakeupPending {
            record.wakeupPending = false
            return .wakeup
        }
        if let slice = record.sliceStartPending {
            record.sliceStartPending = nil
            return .sliceStart(slice)
        }
        if let slice = record.sliceEndPending {
            record.sliceEndPending = nil
            return .sliceEnd(slice)
        }
        if !record.messages.isEmpty {
            let m = record.messages.removeFirst()
            return .message(from: m.from, m.bytes)
        }
        return nil
    }
}
