// `xok mkfs`, `xok fsck`, `xok sim`: XN on disk images and in simulation.

import ArgumentParser
import CFFS
import Foundation
import XN
import Xok
import XokHostLinux
import XokSimulation

struct Mkfs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a disk image (or use a block device) and lay out an empty XN disk on it, through the kernel on the Linux host.",
        discussion: "Refuses a target that already holds an XN disk or any other data unless --force.")

    @Argument(help: "The image file (created) or block device.")
    var image: String

    @Option(help: "Blocks of 4 KiB in the image file (default: an existing file keeps its size; a new one gets 16384).")
    var blocks: UInt64?

    @Flag(help: "Overwrite whatever the target holds.")
    var force = false

    func run() throws {
        let isBlockDevice = image.hasPrefix("/dev/")
        if !force, let why = Self.existingData(at: image) {
            fail("mkfs: \(image): \(why); use --force to overwrite it", code: 1)
        }
        do {
            let keepSize = isBlockDevice || (blocks == nil && FileManager.default.fileExists(atPath: image))
            let device = keepSize ? try FileBlockDevice.open(path: image) : try FileBlockDevice.create(path: image, blocks: blocks ?? 16_384)
            let kernel = Kernel(host: try LinuxHost(frameCount: 64))
            try kernel.mountDisk(device, format: true)
            let xn = kernel.xn!
            print("mkfs: \(image): \(xn.geometry.blockCount) blocks of 4 KiB, data from block \(xn.geometry.dataStart), \(xn.freeBlockCount) free")
            _ = try kernel.shutdown()
        } catch {
            fail("mkfs: \(image): \(error)")
        }
    }

    /// Why the target must not be overwritten without --force: it holds an XN disk, or any
    /// nonzero byte in its first MiB. Nil for a missing or empty target.
    static func existingData(at path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 1 << 20)) ?? Data()
        if head.count >= 8, head.prefix(8).elementsEqual(withUnsafeBytes(of: XNLayout.magic.littleEndian) { Array($0) }) {
            return "already holds an XN disk"
        }
        return head.contains(where: { $0 != 0 }) ? "already holds data" : nil
    }
}

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check an XN image without changing it; prints each violation.",
        discussion: "Exit status as fsck(8): 0 clean, 4 violations found, 8 the image could not be checked (missing, unreadable, or not XN).")

    @Argument(help: "The image file or block device.")
    var image: String

    func run() throws {
        let device: FileBlockDevice
        do { device = try FileBlockDevice.open(path: image, readOnly: true) } catch {
            fail("fsck: \(image): \(Self.reason(error))", code: 8)
        }
        let report = XNImage.check(device)
        if let why = report.notXN { fail("fsck: \(image): not an XN disk (\(why))", code: 8) }
        for violation in report.violations { print("\(image): \(violation)") }
        let state = report.clean ? "cleanly shut down" : "not cleanly shut down (the next mount rebuilds its free map)"
        if report.movePending > 0 { print("fsck: \(image): the move log holds a move of \(report.movePending) blocks (checked as the next mount will finish it)") }
        print("fsck: \(image): \(report.reachable) blocks reachable, \(state), \(report.violations.count) violations")
        var failed = !report.violations.isEmpty
        // C-FFS's own checks, on every root that holds a C-FFS superblock.
        let terminal = isatty(2) == 1
        // C-FFS reads the disk as the next mount will leave it, like XN's checks.
        guard var view = try? ReplayedView(device) else { throw ExitCode(4) }
        for root in report.roots {
            guard let first = try? view.read([root.block]).first, BlockHeader(first).magic == CFFSLayout.superMagic else { continue }
            let cffs = CFFSCheck.check(superblock: root.block, progress: { directories in
                if terminal { FileHandle.standardError.write(Data("\r\u{1b}[Kfsck: C-FFS '\(root.name)': \(directories) directories".utf8)) }
            }, read: { block in try? view.read([block]).first })
            if terminal { FileHandle.standardError.write(Data("\r\u{1b}[K".utf8)) }
            for violation in cffs.violations { print("\(image): C-FFS '\(root.name)': \(violation)") }
            for note in cffs.notes { print("\(image): C-FFS '\(root.name)': note: \(note)") }
            print("fsck: \(image): C-FFS '\(root.name)': \(cffs.directories) directories, \(cffs.files) files, \(cffs.symlinks) symbolic links, "
                  + "\(cffs.dataBlocks) data blocks, \(cffs.violations.count) violations" + (cffs.notes.isEmpty ? "" : ", \(cffs.notes.count) notes"))
            failed = failed || !cffs.violations.isEmpty
        }
        if failed { throw ExitCode(4) }
    }

    /// The system's reason alone, as UNIX tools print it ("No such file or directory").
    static func reason(_ error: DeviceError) -> String {
        error.message.split(separator: ": ").last.map(String.init) ?? error.message
    }
}

struct Sim: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seeded simulations: XN workloads on a simulated disk (with --crash or --exhaustive power failures), C-FFS workloads (--cffs), the kernel (--kernel), or a hostile co-user (--protection).",
        discussion: "Ends with 'RUNS runs, CRASHES crash points, VIOLATIONS violations'; exits 1 on any violation, naming its seed.")

    @Option(help: "Seeds to run: A-B, or N for 1-N.")
    var seeds = "1-100"

    @Flag(help: "Cut the power once per run at a random write, recover, and fsck.")
    var crash = false

    @Flag(help: "Cut the power after every write of a small workload in turn.")
    var exhaustive = false

    @Flag(help: "Simulate the kernel's calls instead of XN.")
    var kernel = false

    @Flag(help: "C-FFS workloads through ExOS instead of XN's tree file systems: after a crash, fsck (XN's and C-FFS's), synced files intact, renames atomic.")
    var cffs = false

    @Flag(help: "A hostile user's random raw XN calls against other users' C-FFS files, each checked against UNIX's rules.")
    var protection = false

    @Option(help: "Calls per seed, with --protection.")
    var calls = 5000

    func run() throws {
        let range = try parseSeeds(seeds)
        var runs = 0, crashes = 0
        var violations: [String] = []
        if protection {
            var total = 0, allowed = 0
            for seed in range {
                let report = ProtectionFuzz(seed: seed, calls: calls).run()
                total += report.calls
                allowed += report.allowed
                violations += report.violations
            }
            for v in violations { print("violation: \(v)") }
            print("\(range.count) runs, \(total) hostile calls, \(allowed) allowed, \(violations.count) violations")
            if !violations.isEmpty { throw ExitCode(1) }
            return
        }
        for seed in range {
            if kernel {
                let report = Simulation(seed: seed).run()
                runs += 1
                if let failure = report.failure { violations.append(failure) }
            } else {
                var report = XNSimulationReport()
                if exhaustive { report.add(cffs ? CFFSSimulation.exhaustive(seed: seed) : XNSimulation.exhaustive(seed: seed)) }
                if crash || !exhaustive {
                    report.add(cffs ? CFFSSimulation.run(seed: seed, crash: crash) : XNSimulation.run(seed: seed, crash: crash))
                }
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
