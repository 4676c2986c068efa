// Wakeup predicates (DESIGN.md §3): an environment sleeps until a verified BPF program it
// downloaded returns nonzero. The program reads a window: the whole exposed state (its
// header says how long it is), then `KernelLimits.predicateRegionBytes` of a region the
// environment may read, or zeros. r2 holds the window's length. The kernel reruns
// predicates only when what they read has changed.

import BPF
import XokABI

struct InstalledPredicate {
    let interpreter: Interpreter
    let region: RegionID?
    /// The credential that let it read the region; checked again at every evaluation.
    let credential: CapabilitySlot
}

extension Kernel {
    func installPredicate(_ caller: EnvironmentID, _ credential: CapabilitySlot, program: [UInt8], region: RegionID?) throws(KernelError) {
        if let region { try regionRecord(region, caller, credential, needs: .read) }
        let verified: VerifiedProgram
        do { verified = try Verifier.verify(bytes: program, kind: .wakeupPredicate) } catch { throw .programRejected }
        self[caller].predicate = InstalledPredicate(interpreter: Interpreter(verified), region: region, credential: credential)
        predicatesEvaluatedAt = (.max, .max)
    }

    /// Runs every installed predicate whose inputs changed; wakes those that return
    /// nonzero (or fail at run time, so a faulty predicate cannot sleep forever).
    func evaluatePredicates() {
        guard (generation, regionVersion) != predicatesEvaluatedAt else { return }
        predicatesEvaluatedAt = (generation, regionVersion)
        var woke = false
        let window = UnsafeMutableRawBufferPointer(rebasing: exposed[0..<layout.totalBytes + KernelLimits.predicateRegionBytes])
        let tail = UnsafeMutableRawBufferPointer(rebasing: exposed[layout.totalBytes...])
        for id in liveEnvironments {
            guard let predicate = self[id].predicate else { continue }
            tail.initializeMemory(as: UInt8.self, repeating: 0)
            if let region = predicate.region, let record = regionIfLive(region),
               (try? authorize(id, predicate.credential, record.acl, .read)) != nil {
                let n = min(record.bytes.count, KernelLimits.predicateRegionBytes)
                record.bytes.withUnsafeBytes { tail.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
            let result = (try? predicate.interpreter.run(context: window, clockTicks: host.ticks)) ?? 1
            if result != 0 {
                self[id].predicate = nil
                self[id].wakeupPending = true
                woke = true
            }
        }
        if woke { publish() }
    }
}
