// Reaching a block: UNIX's search permission along a path, enforced however a block is
// named. Every call that names a block (a read, a map, a data write, a change, a move)
// must pass through every block above it, and XN asks each of those blocks' `acl` UDF
// with operation `traverse`. A block number found in the registry is therefore worth
// nothing by itself: the caller must be able to walk to it from a root.
//
// The answers are remembered, so a path costs a UDF run per block only the first time:
//   - a *pass* is a block's answer for one credential and one child. It depends only on
//     the block's bytes (UDFs are deterministic), so a change to the block forgets its
//     passes, and with them every reach (`PathMemory.epoch`).
//   - a *reach* says a block was reached by a credential through a given parent while
//     nothing on the way changed: a change to a block that let someone pass, a move, a
//     dropped link or a freed metadata block ends them all, and a parent that is no
//     longer the block's ends its own. After that a walk costs a lookup a step, and a UDF
//     run only where the block changed.

import XokABI

/// A credential and a block, as a key of what XN remembers of paths.
struct PassKey: Hashable {
    let credential: Capability
    let block: BlockNumber
}

/// A block letting a credential pass to one of its children.
struct PassFact: Hashable {
    let credential: Capability
    let block: BlockNumber
    let target: BlockNumber
}

/// A block reached by a credential: through which parent, and under which epoch.
struct Reach {
    let parent: BlockNumber?
    let epoch: UInt64
}

/// Paths remembered, with their bound.
struct PathMemory {
    /// Blocks that let a credential pass to a child, and each block's (to forget when
    /// the block changes).
    var passes: Set<PassFact> = []
    var passedBy: [BlockNumber: [PassFact]] = [:]
    var reaches: [PassKey: Reach] = [:]
    /// Moves on whenever a remembered reach may no longer hold.
    var epoch: UInt64 = 0

    /// Entries kept at most: past this, everything is forgotten and learnt again.
    static let entriesMax = 1 << 20
    /// Shared blocks one path may go through (each tries its parents in turn).
    static let sharedDepthMax = 16

    mutating func forgetAll() {
        passes.removeAll()
        passedBy.removeAll()
        reaches.removeAll()
        epoch &+= 1
    }
}

extension XN {
    /// Refuses unless `credential` may pass through `parent` to `child` and through
    /// every block above `parent`: the way to `child`. Before a change to a block XN asks
    /// it with the block as both: the caller must be able to enter the block itself.
    /// - Throws: `notCached` (a block above it left the cache, and the way through it is
    ///   not remembered: read it in again), `aclDenied`, `udfFailed`.
    public func requirePath(through parent: BlockNumber, to child: BlockNumber, credential: Capability) throws(XNError) {
        guard checksEnabled else { return }
        _ = try pass(parent, to: child, credential)
        try reach(parent, credential, sharedDepth: 0)
    }

    /// Walks up from `block` to a root or a reach remembered. A reach is remembered for the
    /// call's credential only when that credential itself passed every step: one made
    /// with the caller's other capabilities must not serve another holder of the same
    /// credential (the mount capability, say, which every user holds).
    private func reach(_ block: BlockNumber, _ credential: Capability, sharedDepth: Int) throws(XNError) {
        var below: [BlockNumber] = []
        var ownCredentialAlone = true
        var current = block
        while true {
            guard let parent = parents[current] else { break }   // a root, or not allocated (refused by the caller)
            let key = PassKey(credential: credential, block: current)
            if let known = paths.reaches[key], known.epoch == paths.epoch, known.parent == parent { break }
            if let others = sharers[current], !others.isEmpty {
                // Any name will do, as any path to a hard-linked file does in UNIX.
                guard sharedDepth < PathMemory.sharedDepthMax else { throw .aclDenied }
                var refusal = XNError.aclDenied
                var reached = false
                for candidate in [parent] + others {
                    do {
                        if !(try pass(candidate, to: current, credential)) { ownCredentialAlone = false }
                        try reach(candidate, credential, sharedDepth: sharedDepth + 1)
                        reached = true
                        break
                    } catch {
                        if case .notCached = error { refusal = error } else if case .aclDenied = refusal { refusal = error }
                    }
                }
                guard reached else { throw refusal }
                below.append(current)
                break
            }
            if !(try pass(parent, to: current, credential)) { ownCredentialAlone = false }
            below.append(current)
            current = parent
        }
        guard ownCredentialAlone else { return }
        if paths.reaches.count + below.count > PathMemory.entriesMax { paths.forgetAll() }
        for b in below { paths.reaches[PassKey(credential: credential, block: b)] = Reach(parent: parents[b], epoch: paths.epoch) }
    }

    /// Refuses unless `block`'s acl UDF lets `credential`, or another capability the
    /// caller holds (`pathCredentials`), pass through it to `target`: UNIX's search check
    /// counts every group of the process, whichever identity the call itself uses.
    /// Returns whether `credential` itself passed.
    private func pass(_ block: BlockNumber, to target: BlockNumber, _ credential: Capability) throws(XNError) -> Bool {
        if paths.passes.contains(PassFact(credential: credential, block: block, target: target)) { return true }
        for case let other? in pathCredentials where other != credential {
            if paths.passes.contains(PassFact(credential: other, block: block, target: target)) { return false }
        }
        guard let entry = cache[block] else { throw .notCached }
        guard let template = template(entry.type) else { throw .aclDenied }
        let bytes = contents(entry)
        var candidates = [credential]
        for case let other? in pathCredentials where other != credential { candidates.append(other) }
        for candidate in candidates {
            do {
                try authorize(template, before: bytes, after: bytes, first: 0, count: 0, operation: .traverse, target: target,
                              credential: candidate, block: block)
                remember(PassFact(credential: candidate, block: block, target: target))
                return candidate == credential
            } catch .aclDenied {}
        }
        throw .aclDenied
    }

    private func remember(_ fact: PassFact) {
        if paths.passes.count >= PathMemory.entriesMax { paths.forgetAll() }
        paths.passes.insert(fact)
        paths.passedBy[fact.block, default: []].append(fact)
    }

    /// `block` changed: what it let pass is asked again when next needed, and nothing
    /// reached through it is taken for granted.
    func pathsChanged(at block: BlockNumber) {
        guard let facts = paths.passedBy.removeValue(forKey: block) else { return }
        for fact in facts { paths.passes.remove(fact) }
        paths.epoch &+= 1
    }

    /// Paths may have changed shape (a move, a dropped link, a freed block whose number
    /// may come back elsewhere): nothing remembered of reaching holds, and a freed
    /// block's passes go.
    func pathsReshaped(freeing block: BlockNumber? = nil) {
        paths.epoch &+= 1
        if let block { pathsChanged(at: block) }
    }
}
