// `xok simulate`: seeded random runs of several library OSes against the kernel, with every
// invariant checked after every step. The test suite runs 1,000 seeds; this runs as many as
// you like and names the first seed that fails.

import ArgumentParser
import XokSimulation

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run seeded kernel simulations, checking every invariant after every step.")

    @Option(help: "How many seeds to run.")
    var seeds = 1_000

    @Option(help: "The first seed.")
    var firstSeed: UInt64 = 0

    @Option(help: "Steps (calls, clock ticks, slices, deaths) per seed.")
    var steps = 200

    func run() throws {
        var calls = 0, refused = 0, faults = 0, deaths = 0
        for seed in firstSeed..<(firstSeed + UInt64(max(0, seeds))) {
            let report = Simulation(seed: seed, steps: steps).run()
            if let failure = report.failure {
                print("FAIL " + failure)
                print("reproduce: xok simulate --first-seed \(seed) --seeds 1 --steps \(steps)")
                throw ExitCode(1)
            }
            calls += report.calls
            refused += report.refused
            faults += report.faults
            deaths += report.deaths
        }
        print("simulate: \(seeds) seeds × \(steps) steps: \(calls) calls (\(refused) refused), \(faults) faults on revoked bindings, \(deaths) deaths; no invariant broken")
    }
}
