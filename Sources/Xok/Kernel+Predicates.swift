// Wakeup predicates (DESIGN.md §3): an environment sleeps until a verified BPF program it
// downloaded returns nonzero. The program reads a 4096-byte window: the exposed state,
// then (if named) the first bytes of a region the environment may read. The kernel reruns
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
        predicatesEvaluatedAt = .max
    }

    /// What the predicates read, summed into one number that changes when any of it does.
    var predicateInputsVersion: UInt64 {
        regions.values.reduce(generation) { $0 &+ $1.version &* 0x9e37_79b9 }
    }

    /// Runs every installed predicate whose inputs changed; wakes those that return
    /// nonzero (or fail at run time, so a faulty predicate cannot sleep forever).
    func evaluatePredicates() {
        let version = predicateInputsVersion
        guard version != predicatesEvaluatedAt else { return }
        predicatesEvaluatedAt = version
        var woke = false
        for id in liveEnvironments {
            guard let predicate = self[id].predicate else { continue }
            var window = exposed + [UInt8](repeating: 0, count: KernelLimits.predicateRegionBytes)
            if let region = predicate.region, let record = regions[region],
               (try? authorize(id, predicate.credential, record.acl, .read)) != nil {
                let n = min(record.bytes.count, KernelLimits.predicateRegionBytes)
                window.replaceSubrange(ExposedState.bytes..<ExposedState.bytes + n, with: record.bytes[0..<n])
            }
            let ticks = host.ticks
            let result = window.withUnsafeMutableBytes { bytes -> UInt64 in
                (try? predicate.interpreter.run(context: bytes, clockTicks: ticks)) ?? 1
            }
            if result != 0 {
                self[id].predicate = nil
                self[id].wakeupPending = true
                woke = true
            }
        }
        if woke { publish() }
    }
}
