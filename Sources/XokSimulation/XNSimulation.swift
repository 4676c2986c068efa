// Seeded workloads of several library file systems sharing one XN disk through the
// kernel (DESIGN.md §8): each is an environment calling through its `LocalPort`, so every
// call crosses the wire format and the kernel's checks. They build and prune trees, write
// data, write back in every order (XN refuses the unsafe ones), and die; a malicious
// environment attacks their blocks and frames through the same kind of port. With
// crashes, the power fails after a random write; the disk keeps a random subset of the
// unbarriered writes; XN must mount (recovering the free map) and fsck must find nothing
// wrong. A failure names its seed.

import TreeFS
import XN
import Xok
import XokABI

/// One simulation run's outcome.
public struct XNSimulationReport: Sendable {
    public var runs = 0
    public var crashPoints = 0
    public var operations = 0
    public var refused = 0
    /// Attacks made, all of which must have been refused.
    public var attacks = 0
    /// Each violation, with the seed that reproduces it.
    public var violations: [String] = []

    public init() {}

    public mutating func add(_ other: XNSimulationReport) {
        runs += other.runs
        crashPoints += other.crashPoints
        operations += other.operations
        refused += other.refused
        attacks += other.attacks
        violations += other.violations
    }
}

/// Workloads on a simulated disk.
public enum XNSimulation {
    public static let formats = [TreeFormat(name: "tree", ownerOffset: 0), TreeFormat(name: "list", ownerOffset: 8)]
    /// Nodes that may have several parents (hard links), for the file systems of the
    /// first layout.
    public static let shared = TreeFormat(name: "shared", ownerOffset: 0, shareable: true)
    static let diskBlocks: UInt64 = 768

    /// A random workload of `steps` steps; with `crash`, the power fails once at a random
    /// write and the run goes on after recovery.
    public static func run(seed: UInt64, crash: Bool, steps: Int = 120) -> XNSimulationReport {
        var report = XNSimulationReport()
        report.runs = 1
        var rng = SeededRandom(seed: seed)
        var world: World
        do { world = try World(seed: seed) } catch {
            report.violations.append("seed \(seed): setup failed: \(error)")
            return report
        }
        if crash { world.disk.failAfterWrites = world.disk.writesIssued + 1 + Int(rng.next() % 60) }
        // Every step, then the shutdown — the power may fail during that too, so it gets a
        // second try after recovery.
        var step = 0, shutdowns = 0
        while step < steps || shutdowns < 2 {
            do {
                if step < steps {
                    step += 1
                    try world.randomStep(&rng, &report)
                    if let broken = world.kernel.checkInvariants().first {
                        report.violations.append("seed \(seed) step \(step): \(broken)")
                        return report
                    }
                } else {
                    shutdowns += 1
                    do {
                        guard let disk = try world.kernel.shutdown() else { return report }
                        report.violations += XNImage.check(disk).violations.map { "seed \(seed), after shutdown: \($0)" }
                        return report
                    } catch { throw KernelError.ioError }
                }
            } catch KernelError.ioError {
                // The power failed: recover on a fresh boot.
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
        let setupWrites = world.disk.writesIssued
        var rng = SeededRandom(seed: seed)
        for _ in 0..<steps { try? world.randomStep(&rng, &dry) }
        guard let disk = try? world.kernel.shutdown() else { return report }
        let total = disk.writesIssued
        for cut in (setupWrites + 1)...max(setupWrites + 1, total) {
            report.runs += 1
            guard var run = try? World(seed: seed) else { continue }
            run.disk.failAfterWrites = cut
            var rng = SeededRandom(seed: seed)
            var ignored = XNSimulationReport()
            var crashed = false
            for _ in 0..<steps {
                do { try run.randomStep(&rng, &ignored) } catch KernelError.ioError { crashed = true; break } catch {}
            }
            if !crashed { crashed = (try? run.kernel.shutdown()) == nil }
            if crashed {
                report.crashPoints += 1
                if let violation = run.recover(seed: seed) { report.violations.append(violation + " (crash after write \(cut))") }
            }
        }
        report.operations = dry.operations
        return report
    }

    typealias Client = TreeClient<LocalPort<SimulatedHost>>

    /// Several file systems, and an attacker, on one kernel and disk.
    struct World {
        var kernel: Kernel<SimulatedHost>
        var clients: [Client] = []
        var attacker: Client
        /// The attacker's own root, once made (where it tries to move others' entries).
        var attackerRoot: BlockNumber?
        /// The shareable node type.
        var sharedType = TypeID(rawValue: 0)
        /// Each client's known nodes and data blocks.
        var nodes: [[BlockNumber]] = []
        var data: [[BlockNumber]] = []
        var dead: Set<Int> = []

        /// The kernel's disk (its power switch, for the harness).
        var disk: SimulatedDisk {
            get { kernel.xn!.device }
            nonmutating set { kernel.xn!.device = newValue }
        }

        init(seed: UInt64) throws {
            kernel = Kernel(host: SimulatedHost(frameCount: 2048))
            try kernel.mountDisk(SimulatedDisk(blockCount: diskBlocks, seed: seed), format: true)
            attacker = try LibraryEnvironment.treeClient(kernel, ownerID: 66, format: formats[0])
            try makeClients(creatingRoots: true)
        }

        /// The three file systems (and their roots on a fresh disk).
        mutating func makeClients(creatingRoots: Bool) throws {
            clients = try [(11, formats[0]), (22, formats[1]), (33, formats[0])].map { owner, format throws(KernelError) in
                try LibraryEnvironment.treeClient(kernel, ownerID: owner, format: format)
            }
            nodes = []
            data = []
            let frameACL = try AccessControlList([try Capability(name: [11], rights: .all)])
            sharedType = try shared.install(through: clients[0].port, udfs: shared.udfs, slots: LibrarySlot.tree, types: LibrarySlot.types,
                                            frameACL: frameACL)
            for (i, client) in clients.enumerated() {
                let root: BlockNumber
                if creatingRoots {
                    root = try client.createRoot(name: "fs\(i)")
                    try client.port.writeback([root])
                } else {
                    root = try client.port.root(named: "fs\(i)").block
                }
                nodes.append([root])
                data.append([])
            }
        }

        func pick<T>(_ items: [T], _ rng: inout SeededRandom) -> T? { items.isEmpty ? nil : items[Int(rng.next() % UInt64(items.count))] }

        /// Dirty blocks the registry shows held by the kernel alone: anyone may flush them.
        func orphans() -> [BlockNumber] {
            let view = kernel.exposedState
            return (0..<view.framesTotal).compactMap { f in
                guard let e = view.registry(frame: FrameNumber(rawValue: UInt32(f))), e.dirty, e.owner == nil else { return nil }
                return e.block
            }
        }

        mutating func randomStep(_ rng: inout SeededRandom, _ report: inout XNSimulationReport) throws(KernelError) {
            let c = Int(rng.next() % UInt64(clients.count))
            let client = clients[c]
            report.operations += 1
            func attempt(_ body: () throws(KernelError) -> Void) throws(KernelError) {
                do { try body() } catch {
                    if error == .ioError { throw error }
                    report.refused += 1
                }
            }
            if dead.contains(c) {
                // Another file system flushes what the dead one left.
                let flusher = clients.indices.first { !dead.contains($0) } ?? c
                try attempt { () throws(KernelError) in try clients[flusher].port.writeback(orphans()) }
                return
            }
            switch rng.next() % 16 {
            case 13 where client.format.ownerOffset == shared.ownerOffset:
                // A node that may have several parents.
                guard let parent = pick(nodes[c], &rng) else { return }
                try attempt { () throws(KernelError) in
                    let child = try client.add(under: parent, type: sharedType, hint: rng.next() % diskBlocks)
                    nodes[c].append(child)
                }
            case 14:
                // Another name for one of them (XN refuses a node under itself, and a
                // node that is not shareable: counted as refused).
                let shareable = nodes[c].filter { kernel.exposedState.registry(block: $0)?.type == sharedType }
                let targets = rng.next() % 4 == 0 ? Array(nodes[c].dropFirst()) + data[c] : shareable
                guard let node = pick(nodes[c], &rng), let target = pick(targets, &rng) else { return }
                try attempt { () throws(KernelError) in try client.link(target, type: sharedType, into: node) }
            case 0, 1, 2:
                guard let parent = pick(nodes[c], &rng) else { return }
                try attempt { () throws(KernelError) in
                    let child = try client.add(under: parent, type: client.type, hint: rng.next() % diskBlocks)
                    nodes[c].append(child)
                }
            case 3, 4:
                guard let parent = pick(nodes[c], &rng) else { return }
                try attempt { () throws(KernelError) in
                    let child = try client.add(under: parent, type: .data, hint: rng.next() % diskBlocks)
                    data[c].append(child)
                    try client.write([UInt8(c), UInt8(truncatingIfNeeded: child)], at: Int(rng.next() % 4000), of: child)
                }
            case 5:
                // Remove a data block or an empty node.
                let candidates = data[c] + nodes[c].dropFirst()
                guard let victim = pick(candidates, &rng), let parent = parentOf(victim, c) else { return }
                let wasShared = kernel.exposedState.registry(block: victim)?.type == sharedType
                try attempt { () throws(KernelError) in
                    try client.remove(victim, from: parent)
                    nodes[c].removeAll { $0 == victim }
                    data[c].removeAll { $0 == victim }
                }
                // A shared node's last name takes all below it: forget what went.
                if wasShared { forgetUnreachable(c) }
            case 6, 7, 8:
                // Write back some of our blocks, deepest first or in any order.
                var blocks = (nodes[c] + data[c]).filter { kernel.exposedState.registry(block: $0)?.dirty == true }
                if rng.next() % 2 == 0 { blocks = blocks.filter { kernel.exposedState.registry(block: $0)?.tainted == false } }
                try attempt { () throws(KernelError) in try client.port.writeback(Array(blocks.prefix(KernelLimits.xnWritebackBlocksMax))) }
            case 9:
                // Change another file system's block: XN must refuse.
                let other = (c + 1 + Int(rng.next() % 2)) % clients.count
                guard let target = pick(nodes[other], &rng) else { return }
                try attack(&report, "env \(c) changed env \(other)'s block \(target)") { () throws(KernelError) in
                    try client.port.modify(target, .write, .inline([(Int(rng.next() % 64), [0xee])]), credential: client.slots.own)
                }
            case 10:
                // Invent a pointer to a free block in our own node.
                guard let node = pick(nodes[c], &rng), let free = try? client.port.firstFreeBlock(from: rng.next() % diskBlocks) else { return }
                let at = TreeFormat.entriesStart + Int(rng.next() % UInt64(TreeFormat.entries)) * TreeFormat.entryBytes
                try attack(&report, "env \(c) invented a pointer to block \(free)") { () throws(KernelError) in
                    try client.port.modify(node, .write, .inline([(at, Client.entry(free, .data)), client.format.highWater(TreeFormat.entries)]),
                                           credential: client.slots.own)
                }
            case 11:
                try attackFromOutside(&rng, &report)
            case 12:
                // Move a block, with what hangs under it, to another node (XN refuses a
                // node under itself: counted as refused).
                guard let moved = pick(data[c] + nodes[c].dropFirst(), &rng), let parent = parentOf(moved, c),
                      let node = pick(nodes[c].filter { $0 != parent }, &rng) else { return }
                try attempt { () throws(KernelError) in try client.move(moved, from: parent, to: node) }
            default:
                if rng.next() % 8 == 0 && dead.count < clients.count - 1 {
                    dead.insert(c)
                    kernel.kill(client.port.environment)
                }
            }
        }

        /// Runs an attack that must be refused; a success is a violation.
        func attack(_ report: inout XNSimulationReport, _ what: String, _ body: () throws(KernelError) -> Void) throws(KernelError) {
            report.attacks += 1
            do {
                try body()
                report.violations.append(what)
            } catch {
                if error == .ioError { throw error }
                report.refused += 1
            }
        }

        /// The malicious environment tries a way in at another's blocks or frames.
        mutating func attackFromOutside(_ rng: inout SeededRandom, _ report: inout XNSimulationReport) throws(KernelError) {
            let victim = Int(rng.next() % UInt64(clients.count))
            guard let target = pick(nodes[victim] + data[victim], &rng) else { return }
            let port = attacker.port
            let slot = attacker.slots.own
            let frame = FrameNumber(rawValue: UInt32(rng.next() % 2048))
            switch rng.next() % 10 {
            case 8:
                // Another's node named from the attacker's own root.
                guard let mine = attackerRoot else { return }
                try attack(&report, "attacker linked env \(victim)'s block \(target) into its own root") { () throws(KernelError) in
                    try attacker.link(target, type: sharedType, into: mine)
                }
            case 7:
                // An entry of another's node moved into the attacker's own (the attacker
                // cannot read the node: it guesses where the entry is).
                guard let parent = parentOf(target, victim) else { return }
                if attackerRoot == nil {
                    attackerRoot = try? attacker.createRoot(name: "loot")
                    if let mine = attackerRoot {
                        try? port.modify(mine, .write, .inline([attacker.format.highWater(TreeFormat.entries)]), credential: slot)
                    }
                }
                guard let mine = attackerRoot else { return }
                let at = TreeFormat.entriesStart + Int(rng.next() % 8) * TreeFormat.entryBytes
                try attack(&report, "attacker moved an entry of env \(victim)'s block \(parent) into its own root") { () throws(KernelError) in
                    try port.move(from: parent, offset: at, count: TreeFormat.entryBytes, to: mine,
                                  at: TreeFormat.entriesStart + Int(rng.next() % 8) * TreeFormat.entryBytes, edits: .none, credential: slot)
                }
            case 0:
                try attack(&report, "attacker read env \(victim)'s block \(target)") { () throws(KernelError) in
                    _ = try attacker.contents(target)
                }
            case 1:
                try attack(&report, "attacker mapped env \(victim)'s block \(target) writable") { () throws(KernelError) in
                    _ = try port.map(target, writable: true, credential: slot)
                }
            case 2:
                try attack(&report, "attacker wrote env \(victim)'s block \(target)") { () throws(KernelError) in
                    try port.writeData(target, .inline([(0, [0xaa])]), credential: slot)
                }
            case 3:
                guard let child = pick(data[victim], &rng), let parent = parentOf(child, victim) else { return }
                try attack(&report, "attacker freed env \(victim)'s block \(child)") { () throws(KernelError) in
                    try port.modify(parent, .free(child), .inline([]), credential: slot)
                }
            case 4:
                try attack(&report, "attacker evicted env \(victim)'s block \(target)") { () throws(KernelError) in
                    try port.evict(target, credential: slot)
                }
            case 5:
                // Another's frame, given to the cache as the attacker's own.
                try attack(&report, "attacker read a block into frame \(frame.rawValue)") { () throws(KernelError) in
                    if kernel.frameOwner(frame) == port.environment { throw KernelError.busy }
                    _ = try port.readIn(target, frame: frame, credential: slot)
                }
            case 6:
                try attack(&report, "attacker took root fs\(victim)'s name") { () throws(KernelError) in
                    _ = try attacker.createRoot(name: "fs\(victim)")
                }
            default:
                // A forged slot.
                try attack(&report, "attacker changed block \(target) with a forged slot") { () throws(KernelError) in
                    try port.modify(target, .write, .inline([(0, [1])]), credential: CapabilitySlot(Int(rng.next() % 40) + 4))
                }
            }
        }

        /// Keeps of client `c`'s known blocks those its root still reaches.
        mutating func forgetUnreachable(_ c: Int) {
            guard let root = nodes[c].first else { return }
            var reached: Set<BlockNumber> = [root]
            var queue = [root]
            while let node = queue.popLast() {
                for child in (try? clients[c].children(of: node)) ?? [] where reached.insert(child.block).inserted {
                    if child.type != .data { queue.append(child.block) }
                }
            }
            nodes[c].removeAll { !reached.contains($0) }
            data[c].removeAll { !reached.contains($0) }
        }

        /// The parent of `block` in client `c`'s tree, by walking its known nodes.
        func parentOf(_ block: BlockNumber, _ c: Int) -> BlockNumber? {
            if let parent = kernel.exposedState.registry(block: block)?.parent { return parent }
            for node in nodes[c] where (try? clients[c].children(of: node))?.contains(where: { $0.block == block }) == true { return node }
            return nil
        }

        /// After a power failure: the disk keeps a random subset of its unbarriered writes;
        /// a fresh kernel must mount it and fsck must be clean. Reloads what each file
        /// system can reach.
        mutating func recover(seed: UInt64) -> String? {
            var disk = self.disk
            disk.powerLoss()
            kernel = Kernel(host: SimulatedHost(frameCount: 2048))
            do { try kernel.mountDisk(disk, format: false) } catch { return "seed \(seed): mount after a crash failed: \(error)" }
            let check = XNImage.check(kernel.xn!.device)
            if let violation = check.violations.first { return "seed \(seed): after recovery: \(violation)" }
            do {
                attacker = try LibraryEnvironment.treeClient(kernel, ownerID: 66, format: formats[0])
                attackerRoot = try? attacker.port.root(named: "loot").block
                try makeClients(creatingRoots: false)
            } catch { return "seed \(seed): after recovery, a file system cannot start: \(error)" }
            for (i, client) in clients.enumerated() {
                var found = nodes[i], files: [BlockNumber] = []
                var next = 0
                while next < found.count {
                    for p in (try? client.children(of: found[next])) ?? [] {
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
