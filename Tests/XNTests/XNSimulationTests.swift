// Seeded workloads with crashes, as `xok sim` runs them: 200 seeds with a crash each, and
// every crash point of a small workload. XN_SIMULATION_SEEDS runs more.

import Foundation
import Testing
import XokSimulation

@Suite struct XNCrashSimulation {
    static let seeds = ProcessInfo.processInfo.environment["XN_SIMULATION_SEEDS"].flatMap(Int.init) ?? 200

    @Test func randomWorkloadsWithCrashesLeaveNoViolation() {
        var total = XNSimulationReport()
        for seed in 1...UInt64(Self.seeds) { total.add(XNSimulation.run(seed: seed, crash: true)) }
        #expect(total.violations == [])
        #expect(total.crashPoints > Self.seeds / 2, "most runs reach their crash point")
        #expect(total.refused > 0 && total.refused < total.operations)
    }

    @Test func everyCrashPointOfASmallWorkloadRecovers() {
        var total = XNSimulationReport()
        for seed in 1...UInt64(3) { total.add(XNSimulation.exhaustive(seed: seed)) }
        #expect(total.violations == [])
        #expect(total.runs > 30)
        #expect(total.crashPoints == total.runs, "every cut point is reached")
    }
}
