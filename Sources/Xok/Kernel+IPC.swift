// IPC and upcalls (DESIGN.md §3): messages between environments, checked against the
// target's message ACL. Each sender has a share of each receiver's queue of its own
// (`messagesPerSender`), and every message waiting counts against its sender's quota, so
// no sender can fill a queue for the others or the machine for everyone; a full share is
// the sender's error, never a lost message. The kernel's notices are delivered in a fixed
// order through `upcallNext`; they are kept as state, not queued, so they are bounded by
// construction.

import XokABI

extension Kernel {
    func send(_ caller: EnvironmentID, _ credential: CapabilitySlot, to target: EnvironmentID, message: [UInt8]) throws(KernelError) {
        guard environmentIndex(target) != nil else { throw .noSuchEnvironment }
        try authorize(caller, credential, self[target].messageACL, .write)
        guard message.count <= KernelLimits.messageBytesMax else { throw .invalidArgument }
        guard self[target].messages.lazy.filter({ $0.from == caller }).count < KernelLimits.messagesPerSender else { throw .queueFull }
        try charge(caller, Quota(messages: 1))
        self[target].messages.append((caller, message))
    }

    /// The next upcall for `caller`: forced revocations, revocation requests (by frame
    /// number), a wakeup, slice start and end, then messages in arrival order.
    func nextUpcall(_ caller: EnvironmentID) -> Upcall? {
        var record = self[caller]
        var delivered: EnvironmentID?
        defer {
            self[caller] = record
            if let delivered { refund(delivered, Quota(messages: 1)) }
        }
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
            delivered = m.from
            return .message(from: m.from, m.bytes)
        }
        return nil
    }
}
