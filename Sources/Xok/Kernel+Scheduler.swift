// The CPU (DESIGN.md §3): a vector of slices run round-robin. Environments own slices
// (taking one needs write on the kernel's slice ACL), are told when each starts and ends,
// and may give the rest of a slice to a named environment (directed yield). The kernel
// decides who runs; the host (the simulation's cooperative tasks, or Linux) runs it.

import XokABI

extension Kernel {
    func allocateSlice(_ caller: EnvironmentID, _ credential: CapabilitySlot, _ slice: SliceIndex) throws(KernelError) {
        try authorize(caller, credential, systemACLs.slices, .write)
        guard Int(slice.rawValue) < KernelLimits.slices else { throw .noSuchSlice }
        guard sliceVector[Int(slice.rawValue)] == nil else { throw .busy }
        try charge(caller, Quota(slices: 1))
        sliceVector[Int(slice.rawValue)] = caller
    }

    func yield(_ caller: EnvironmentID, to target: EnvironmentID?) throws(KernelError) {
        guard let target else {
            if running == caller { running = nil }
            return
        }
        guard environmentIndex(target) != nil else { throw .noSuchEnvironment }
        guard running == caller, !self[target].asleep else { throw .busy }
        running = target
    }

    /// Moves the clock-driven state forward: forces revocations past their deadline and
    /// reruns predicates whose inputs changed. The host calls it when its clock moves.
    public func advance() {
        completeRevocations()
        publish()
        evaluatePredicates()
    }

    /// Starts the next slice of the vector: its owner is told (prologue) and becomes the
    /// running environment. Returns it, or nil when the slice is free or its owner sleeps.
    public func beginSlice() -> EnvironmentID? {
        if currentSlice != nil { endSlice() }
        let next = currentSlice.map { ($0.rawValue + 1) % UInt32(KernelLimits.slices) } ?? 0
        let slice = SliceIndex(rawValue: next)
        currentSlice = slice
        advance()
        guard let owner = sliceVector[Int(next)], !self[owner].asleep else {
            running = nil
            return nil
        }
        self[owner].sliceStartPending = slice
        running = owner
        return owner
    }

    /// Ends the current slice: its owner is told (epilogue); no one runs.
    public func endSlice() {
        if let slice = currentSlice, let owner = sliceVector[Int(slice.rawValue)] {
            self[owner].sliceEndPending = slice
        }
        running = nil
    }
}
