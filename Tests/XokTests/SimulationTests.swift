// Seeded random call sequences of several environments, invariants checked after every
// step. 1,000 seeds in CI; set XOK_SIMULATION_SEEDS for more. A failure prints its seed.

import Foundation
import Testing
import XokSimulation

@Suite struct KernelSimulation {
    static let seedCount = ProcessInfo.processInfo.environment["XOK_SIMULATION_SEEDS"].flatMap(Int.init) ?? 1_000

    @Test func randomCallSequencesKeepEveryInvariant() {
        var calls = 0, refused = 0, faults = 0, deaths = 0
        for seed in 0..<UInt64(Self.seedCount) {
            let report = Simulation(seed: seed).run()
            if let failure = report.failure {
                Issue.record(Comment(rawValue: failure))
                return
            }
            calls += report.calls
            refused += report.refused
            faults += report.faults
            deaths += report.deaths
        }
        // The workload must exercise both sides: calls that succeed and calls refused,
        // accesses that fault after revocation or death, and deaths.
        #expect(calls > 100 * Self.seedCount)
        #expect(refused > 0 && refused < calls)
        #expect(faults > 0)
        #expect(deaths > 0)
    }

    @Test func aSeedReproducesItsRun() {
        let a = Simulation(seed: 42).run(), b = Simulation(seed: 42).run()
        #expect(a.calls == b.calls && a.refused == b.refused && a.faults == b.faults && a.deaths == b.deaths)
    }
}
