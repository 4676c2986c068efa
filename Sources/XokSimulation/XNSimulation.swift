// Seeded workloads of several library file systems sharing one XN disk (DESIGN.md §8):
// they build and prune trees, write data, write back in every order (XN refuses the
// unsafe ones), attack each other's blocks, and die. With crashes, the power fails after
// a random write; the disk keeps a random subset of the unbarriered writes; XN must mount
// (recovering the free map) and fsck must find nothing wrong. A failure names its seed.

import XN
import XokABI

/// One simulation run's outcome.
public struct XNSimulationReport: Sendable {
    public var runs = 0
    public var crashPoints = 0
    public var operations = 0
    public var refused = 0
    /// Each violation, with the seed that reproduces it.
    public var violations: [String] = []

    public init() {}

    public mutating func add(_ other: XNSimulationReport) {
        runs += other.runs
        crashPoints += other.crashPoints
        operations += other.operations
        refused += other.refused
        violations += other.violations
    }
}

/// Workloads on a simulated disk.
public enum XNSimulation {
    public static let formats = [TreeFormat(name: "tree", ownerOffset: 0), TreeFormat(name: "list", ownerOffset: 8)]

    /// A random workload of `steps` steps; with `crash`, the power fails once at a random
    /// write and the run goes on after recovery.
    public static func run(seed: UInt64, crash: Bool, steps: Int = 120) -> XNSimulationReport {
        var report = XNSimulationReport()
        report.runs = 1
        var rng = SeededRandom(seed: seed)
        var world: World
        do { world = try World(seed: seed) } catch {
            report.violations.append("seed \(seed): format failed: \(error)")
            return report
        }
        if crash { world.xn.device.failAfterWrites = world.xn.device.writesIssued + 1 + Int(rng.next() % 60) }
        // Every step, then the shutdown — the power may fail during that too, so it gets a
        // second try after recovery.
        var step = 0, shutdowns = 0
        while step < steps || shutdowns < 2 {
            do {
                if step < steps {
                    step += 1
                    try world.randomStep(&rng, &report)
                } else {
                    shutdowns += 1
                    let disk = try world.xn.unmount()
                    report.violations += XN.check(disk).violations.map { "seed \(seed), after unmount: \($0)" }
                    return report
                }
            } catch XNError.device {
                // The power failed: recover on a fresh mount.
                report.crashPoints += 1
                if let violation = world.recover(seed: seed) {
                    report.violations.append(violation)
                    return report
                }
            } catch {
                report.violations.append("seed \(seed) step \(step): unexpected \(error)")
                return report
            }
        }
        return report
    }

    /// Cuts the power after each write of a small workload in turn (every crash point),
    /// each time recovering and checking.
    public static func exhaustive(seed: UInt64, steps: Int = 25) -> XNSimulationReport {
        var report = XNSimulationReport()
        // A dry run counts the writes.
        var dry = XNSimulationReport()
        guard var world = try? World(seed: seed) else { return report }
        let formatWrites = world.xn.device.writesIssued
        var rng = SeededRandom(seed: seed)
        for _ in 0..<steps { try? world.randomStep(&rng, &dry) }
        guard let disk = try? world.xn.unmount() else { return report }
        let total = disk.writesIssued
        for cut in (formatWrites + 1)...max(formatWrites + 1, total) {
            report.runs += 1
            guard var run = try? World(seed: seed) else { continue }
            run.xn.device.failAfterWrites = cut
            var rng = SeededRandom(seed: seed)
            var ignored = XNSimulationReport()
            var crashed = false
            for _ in 0..<steps {
                do { try run.randomStep(&rng, &ignored) } catch XNError.device { crashed = true; break } catch {}
            }
            if !crashed { crashed = (try? run.xn.unmount()) == nil }
            if crashed {
                report.crashPoints += 1
                if let violation = run.recover(seed: seed) { report.violations.append(violation + " (crash after write \(cut))") }
            }
        }
        report.operations = dry.operations
        return report
    }

    /// Several file systems on one XN.
    struct World {
        var xn: XN<SimulatedDisk>
        var clients: [TreeClient<SimulatedDisk>]
        /// Each client's known nodes and data blocks.
        var nodes: [[BlockNumber]]
        var data: [[BlockNumber]]
        var dead: Set<Int> = []

        init(seed: UInt64) throws {
            xn = try XN.format(SimulatedDisk(blockCount: 768, seed: seed))
            let tree = try formats[0].install(on: xn), list = try formats[1].install(on: xn)
            clients = [TreeClient(environment: EnvironmentID(rawValue: 1), ownerID: 11, format: formats[0], type: tree),
                       TreeClient(environment: EnvironmentID(rawValue: 2), ownerID: 22, format: formats[1], type: list),
                       TreeClient(environment: EnvironmentID(rawValue: 3), ownerID: 33, format: formats[0], type: tree)]
            nodes = []
            data = []
            for (i, client) in clients.enumerated() {
                let root = try client.createRoot(xn, name: "fs\(i)")
                try xn.writeback([root], by: client.environment)
                nodes.append([root])
                data.append([])
            }
        }

        func pick<T>(_ items: [T], _ rng: inout SeededRandom) -> T? { items.isEmpty ? nil : items[Int(rng.next() % UInt64(items.count))] }

        mutating func randomStep(_ rng: inout SeededRandom, _ report: inout XNSimulationReport) throws(XNError) {
            let c = Int(rng.next() % UInt64(clients.count))
            let client = clients[c]
            report.operations += 1
            func attempt(_ body: () throws(XNError) -> Void) throws(XNError) {
                do { try body() } catch {
                    if case .device = error { throw error }
                    report.refused += 1
                }
            }
            if dead.contains(c) {
                // Another file system flushes what the dead one left.
                try attempt { () throws(XNError) in try xn.writeback(xn.orphanedDirtyBlocks(), by: clients[(c + 1) % clients.count].environment) }
                return
            }
            switch rng.next() % 12 {
            case 0, 1, 2:
                guard let parent = pick(nodes[c], &rng) else { return }
                try attempt { () throws(XNError) in
                    let child = try client.add(xn, under: parent, type: client.type, hint: BlockNumber(rng.next() % 768))
                    nodes[c].append(child)
                }
            case 3, 4:
                guard let parent = pick(nodes[c], &rng) else { return }
                try attempt { () throws(XNError) in
                    let child = try client.add(xn, under: parent, type: .data, hint: BlockNumber(rng.next() % 768))
                    data[c].append(child)
                    try xn.writeData(child, offset: Int(rng.next() % 4000), bytes: [UInt8(c), UInt8(truncatingIfNeeded: child)],
                                     credential: client.credential, by: client.environment)
                }
            case 5:
                // Remove a data block or an empty node.
                let candidates = data[c] + nodes[c].dropFirst()
                guard let victim = pick(candidates, &rng), let parent = xn.registryEntry(victim)?.parent ?? parentOf(victim) else { return }
                try attempt { () throws(XNError) in
                    try client.remove(xn, victim, from: parent)
                    nodes[c].removeAll { $0 == victim }
                    data[c].removeAll { $0 == victim }
                }
            case 6, 7, 8:
                // Write back some of our blocks, deepest first or in any order.
                var blocks = (nodes[c] + data[c]).filter { xn.registryEntry($0)?.dirty == true }
                if rng.next() % 2 == 0 { blocks = blocks.filter { !xn.isTainted($0) } }
                try attempt { () throws(XNError) in try xn.writeback(blocks, by: client.environment) }
            case 9:
                // Attack: change another file system's block; XN must refuse.
                let other = (c + 1 + Int(rng.next() % 2)) % clients.count
                guard let target = pick(nodes[other], &rng) else { return }
                do {
                    try xn.modify(target, [Modification(offset: Int(rng.next() % 64), bytes: [0xee])], operation: .write,
                                  credential: client.credential, by: client.environment)
                    report.violations.append("env \(c) changed env \(other)'s block \(target)")
                } catch {
                    if case .device = error { throw error }
                    report.refused += 1
                }
            case 10:
                // Attack: invent a pointer to a free block in our own node.
                guard let node = pick(nodes[c], &rng), let free = xn.firstFree(from: BlockNumber(rng.next() % 768)) else { return }
                let at = TreeFormat.entriesStart + Int(rng.next() % UInt64(TreeFormat.entries)) * TreeFormat.entryBytes
                do {
                    try xn.modify(node, [Modification(offset: at, bytes: TreeClient<SimulatedDisk>.entry(free, .data)),
                                         client.format.highWater(TreeFormat.entries)], operation: .write,
                                  credential: client.credential, by: client.environment)
                    report.violations.append("env \(c) invented a pointer to block \(free)")
                } catch {
                    if case .device = error { throw error }
                    report.refused += 1
                }
            default:
                if rng.next() % 8 == 0 && dead.count < clients.count - 1 {
                    dead.insert(c)
                    xn.environmentDied(client.environment)
                }
            }
        }

        func parentOf(_ block: BlockNumber) -> BlockNumber? { xn.registryEntry(block)?.parent }

        /// After a power failure: the disk keeps a random subset of its unbarriered writes;
        /// XN must mount and fsck must be clean. Reloads what each file system can reach.
        mutating func recover(seed: UInt64) -> String? {
            var disk = xn.device
            disk.powerLoss()
            do { xn = try XN.mount(disk) } catch { return "seed \(seed): mount after a crash failed: \(error)" }
            let check = XN.check(xn.device)
            if let violation = check.violations.first { return "seed \(seed): after recovery: \(violation)" }
            for (i, client) in clients.enumerated() {
                guard let root = try? xn.root(named: "fs\(i)") else { return "seed \(seed): root fs\(i) lost" }
                var found: [BlockNumber] = [root.block], files: [BlockNumber] = []
                var next = 0
                while next < found.count {
                    for p in (try? client.children(xn, of: found[next])) ?? [] {
                        if p.type == .data { files.append(p.block) } else { found.append(p.block) }
                    }
                    next += 1
                }
                nodes[i] = found
                data[i] = files
            }
            dead = []
            return nil
        }
    }
}
