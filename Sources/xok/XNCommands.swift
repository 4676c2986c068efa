// `xok mkfs`, `xok fsck`, `xok sim`: XN on disk images and in simulation.

import ArgumentParser
import Foundation
import XN
import XokHostLinux
import XokSimulation

struct Mkfs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a disk image (or use a block device) and lay out an empty XN disk on it.")

    @Argument(help: "The image file (created) or block device.")
    var image: String

    @Option(help: "Blocks of 4 KiB in a new image file.")
    var blocks: UInt64 = 16_384

    func run() throws {
        do {
            let isBlockDevice = image.hasPrefix("/dev/")
            let device = isBlockDevice ? try FileBlockDevice.open(path: image) : try FileBlockDevice.create(path: image, blocks: blocks)
            let xn = try XN.format(device)
            print("mkfs: \(image): \(xn.geometry.blockCount) blocks, data from block \(xn.geometry.dataStart), \(xn.freeBlockCount) free")
            _ = try xn.unmount()
        } catch {
            fail("mkfs: \(error)")
        }
    }
}

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check an XN image without changing it; prints each violation. Exit 0 when clean, 1 otherwise.")

    @Argument(help: "The image file or block device.")
    var image: String

    func run() throws {
        let device: FileBlockDevice
        do { device = try FileBlockDevice.open(path: image, readOnly: true) } catch { fail("fsck: \(error)", code: 2) }
        let report = XN.check(device)
        for violation in report.violations { print("violation: \(violation)") }
        print("fsck: \(image): \(report.reachable) blocks reachable, \(report.clean ? "clean shutdown" : "not shut down cleanly (free map rebuilt at mount)"), \(report.violations.count) violations")
        if !report.violations.isEmpty { throw ExitCode(1) }
    }
}

struct Sim: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seeded simulations: XN workloads on a simulated disk (with --crash or --exhaustive power failures), or the kernel (--kernel).",
        discussion: "Ends with 'RUNS runs, CRASHES crash points, VIOLATIONS violations'; exits 1 on any violation, naming its seed.")

    @Option(help: "Seeds to run: A-B, or N for 1-N.")
    var seeds = "1-100"

    @Flag(help: "Cut the power once per run at a random write, recover, and fsck.")
    var crash = false

    @Flag(help: "Cut the power after every write of a small workload in turn.")
    var exhaustive = false

    @Flag(help: "Simulate the kernel's calls instead of XN.")
    var kernel = false

    func run() throws {
        let range = try parseSeeds(seeds)
        var runs = 0, crashes = 0
        var violations: [String] = []
        for seed in range {
            if kernel {
                let report = Simulation(seed: seed).run()
                runs += 1
                if let failure = report.failure { violations.append(failure) }
            } else {
                var report = XNSimulationReport()
                if exhaustive { report.add(XNSimulation.exhaustive(seed: seed)) }
                if crash || !exhaustive { report.add(XNSimulation.run(seed: seed, crash: crash)) }
                runs += report.runs
                crashes += report.crashPoints
                violations += report.violations
            }
        }
        for v in violations { print("violation: \(v)") }
        print("\(runs) runs, \(crashes) crash points, \(violations.count) violations")
        if !violations.isEmpty { throw ExitCode(1) }
    }

    func parseSeeds(_ text: String) throws -> ClosedRange<UInt64> {
        let parts = text.split(separator: "-").map { UInt64($0) }
        if parts.count == 1, let n = parts[0], n >= 1 { return 1...n }
        if parts.count == 2, let a = parts[0], let b = parts[1], a <= b { return a...b }
        throw ValidationError("--seeds takes A-B or N, not '\(text)'")
    }
}
