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
    /// number), a wakeup, slice start and end, then messages in arrival order. Taken from
    /// the record in place (a copy and write-back of the whole record was most of a null
    /// call's time).
    func nextUpcall(_ caller: EnvironmentID) -> Upcall? {
        // Borrowed through the buffer: a plain read would copy the whole record.
        guard caller.index < environments.count, environments.withUnsafeBufferPointer({ $0[caller.index]?.hasUpcall ?? false }),
              let (upcall, sender) = self[caller].takeUpcall() else { return nil }
        if let sender { refund(sender, Quota(messages: 1)) }
        return upcall
    }
}

extension EnvironmentRecord {
    /// Whether an upcall is waiting.
    var hasUpcall: Bool {
        !revokedToDeliver.isEmpty || !revocationsToDeliver.isEmpty || wakeupPending || sliceStartPending != nil
            || sliceEndPending != nil || !messages.isEmpty
    }

    /// Removes and returns the next upcall, with the sender of a message (whose quota the
    /// message counted against).
    mutating func takeUpcall() -> (Upcall, sender: EnvironmentID?)? {
        if let frame = revokedToDeliver.min() {
            revokedToDeliver.remove(frame)
            return (.frameRevoked(frame), nil)
        }
        if let (frame, deadline) = revocationsToDeliver.min(by: { $0.key < $1.key }) {
            revocationsToDeliver[frame] = nil
            return (.revocationRequested(frame, deadline: deadline), nil)
        }
        if wakeupPending {
            wakeupPending = false
            return (.wakeup, nil)
        }
        if let slice = sliceStartPending {
            sliceStartPending = nil
            return (.sliceStart(slice), nil)
        }
        if let slice = sliceEndPending {
            sliceEndPending = nil
            return (.sliceEnd(slice), nil)
        }
        if !messages.isEmpty {
            let m = messages.removeFirst()
            return (.message(from: m.from, m.bytes), m.from)
        }
        return nil
    }
}
