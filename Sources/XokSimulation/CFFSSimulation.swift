// Seeded C-FFS workloads through ExOS on a simulated disk that loses power. A process
// makes directories, writes files small and large (through indirect blocks), overwrites,
// truncates, renames (within a directory and into another, files and whole
// directories), makes hard links, removes, and now and then syncs. The power fails after
// a chosen write; the disk keeps a random subset of what was not yet behind a barrier.
// After recovery XN's fsck and C-FFS's must find nothing wrong, C-FFS must mount, every
// file synced and not touched since must read back as it was (under each of its names),
// every rename and directory move since the last sync must have left exactly one of its
// two names, and a file grown after the crash must read as zeros past its old end.

import CFFS
import ExOS
import XN
import Xok
import XokABI

public enum CFFSSimulation {
    static let diskBlocks: UInt64 = 4096

    /// A workload of `steps` steps with the power cut at a random write (or at write
    /// `cut`), then recovery and the checks. Without `crash`, a clean shutdown and fsck.
    public static func run(seed: UInt64, crash: Bool, steps: Int = 80, cut: Int? = nil) -> XNSimulationReport {
        var report = XNSimulationReport()
        report.runs = 1
        var rng = SeededRandom(seed: seed)
        let world: CFFSWorld
        do { world = try CFFSWorld(seed: seed) } catch {
            report.violations.append("seed \(seed): setup failed: \(error)")
            return report
        }
        if crash { world.setPowerCut(afterWrites: cut ?? 1 + Int(rng.next() % 160)) }
        for step in 1...steps {
            world.randomStep(&rng)
            report.operations += 1
            if world.powerFailed { break }
            if let broken = world.kernel.checkInvariants().first {
                report.violations.append("seed \(seed) step \(step): \(broken)")
                return report
            }
            if let wrong = world.unexpected {
                report.violations.append("seed \(seed) step \(step): \(wrong)")
                return report
            }
        }
        if !world.powerFailed {
            // Sync, then shut down: the power may fail during either.
            world.sync()
            if !world.powerFailed {
                do {
                    guard let disk = try world.kernel.shutdown() else { return report }
                    report.violations += world.checkDisk(disk).map { "seed \(seed), after shutdown: \($0)" }
                    return report
                } catch {
                    if !world.powerFailed {
                        report.violations.append("seed \(seed): shutdown failed: \(error)")
                        return report
                    }
                }
            }
        }
        report.crashPoints += 1
        report.violations += world.recover().map { "seed \(seed) (crash after write \(world.cutAt)): \($0)" }
        return report
    }

    /// Cuts the power after each write of a small workload in turn.
    public static func exhaustive(seed: UInt64, steps: Int = 16) -> XNSimulationReport {
        var report = XNSimulationReport()
        guard let dry = try? CFFSWorld(seed: seed) else { return report }
        let setup = dry.writes
        var rng = SeededRandom(seed: seed)
        for _ in 0..<steps { dry.randomStep(&rng) }
        dry.sync()
        let total = dry.writes
        for cut in stride(from: setup + 1, through: max(setup + 1, total), by: 1) {
            report.add(run(seed: seed, crash: true, steps: steps, cut: cut - setup))
        }
        return report
    }
}

/// One kernel, disk and ExOS process, with a model of what the files should hold.
final class CFFSWorld {
    var kernel: Kernel<SimulatedHost>
    var os: ExOS<LocalPort<SimulatedHost>>
    let clock = SimulatedClock()
    /// What the tree holds now (files by path, with contents; directories), and what it
    /// held at the last sync.
    var files: [String: [UInt8]] = [:]
    var directories: Set<String> = ["/"]
    var durable: [String: [UInt8]] = [:]
    /// Paths changed since the last sync, and renames since then of files that were
    /// synced and untouched.
    var touched: Set<String> = []
    var renames: [(from: String, to: String, contents: [UInt8])] = []
    /// Directories as of the last sync, and directory moves since then between
    /// directories that were synced: after a crash exactly one of the two names is there.
    var durableDirectories: Set<String> = ["/"]
    var directoryMoves: [(from: String, to: String)] = []
    /// Each hard-linked file's other names.
    var aliases: [String: Set<String>] = [:]
    var names = 0
    var cutAt = 0
    /// A failure that is not the power's: the workload's own model disagreeing.
    var unexpected: String?

    init(seed: UInt64) throws {
        kernel = Kernel(host: SimulatedHost(frameCount: 4096))
        try kernel.mountDisk(SimulatedDisk(blockCount: CFFSSimulation.diskBlocks, seed: seed), format: true)
        let clock = self.clock
        os = try ExOSEnvironment.format(kernel, quota: ExOSEnvironment.share(of: kernel, parts: 2), now: clock.tick)
    }

    var disk: SimulatedDisk {
        get { kernel.xn!.device }
        set { kernel.xn!.device = newValue }
    }
    var writes: Int { disk.writesIssued }
    var powerFailed: Bool { disk.powerFailed }

    func setPowerCut(afterWrites n: Int) {
        cutAt = disk.writesIssued + n
        disk.failAfterWrites = cutAt
    }

    func pick<T>(_ items: [T], _ rng: inout SeededRandom) -> T? { items.isEmpty ? nil : items[Int(rng.next() % UInt64(items.count))] }

    func bytes(_ count: Int, _ rng: inout SeededRandom) -> [UInt8] {
        let seed = UInt8(truncatingIfNeeded: rng.next())
        return (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) ^ seed }
    }

    /// Runs `body`; a failure other than the power's is recorded as unexpected.
    func attempt(_ what: String, _ body: () throws(Errno) -> Void) {
        do { try body() } catch {
            if !powerFailed && unexpected == nil { unexpected = "\(what): \(error)" }
        }
    }

    /// Notes that `path` changed since the last sync: a rename that ended at it is no
    /// longer checked (its file has moved on or changed).
    func touch(_ path: String) {
        touched.insert(path)
        renames.removeAll { $0.to == path }
        directoryMoves.removeAll { $0.to == path }
    }

    /// `path` and its other names, if it has any.
    func group(_ path: String) -> [String] { [path] + (aliases[path] ?? []).sorted() }

    /// Gives every name of `path`'s file `contents`.
    func setContents(_ path: String, _ contents: [UInt8]) {
        for name in group(path) {
            files[name] = contents
            touch(name)
        }
    }

    /// The name `old` is now `new`.
    func renameAlias(_ old: String, _ new: String) {
        guard let others = aliases.removeValue(forKey: old) else { return }
        aliases[new] = others
        for other in others { aliases[other] = aliases[other]!.subtracting([old]).union([new]) }
    }

    /// The name `path` is gone; the file stays under its others.
    func dropAlias(_ path: String) {
        guard let others = aliases.removeValue(forKey: path) else { return }
        for other in others {
            aliases[other]!.remove(path)
            if aliases[other]!.isEmpty { aliases[other] = nil }
        }
    }

    func randomStep(_ rng: inout SeededRandom) {
        let dirs = directories.sorted(), paths = files.keys.sorted()
        switch rng.next() % 15 {
        case 0, 1:
            guard let parent = pick(dirs, &rng), directories.count < 24 else { return }
            names += 1
            let path = (parent == "/" ? "" : parent) + "/d\(names)"
            attempt("mkdir \(path)") { () throws(Errno) in try os.mkdir(path) }
            directories.insert(path)
            touch(path)
        case 2, 3, 4:
            guard let parent = pick(dirs, &rng) else { return }
            names += 1
            let path = (parent == "/" ? "" : parent) + "/f\(names)"
            let size = [0, 100, 4096, 5000, 30_000, 45_000][Int(rng.next() % 6)]
            let contents = bytes(size, &rng)
            attempt("create \(path)") { () throws(Errno) in
                let fd = try os.open(path, [.writeOnly, .create, .exclusive], mode: 0o644)
                defer { os.closeQuietly(fd) }
                _ = try os.write(fd, contents)
            }
            files[path] = contents
            touch(path)
        case 5:
            guard let path = pick(paths, &rng), var contents = files[path] else { return }
            let offset = Int(rng.next() % UInt64(contents.count + 5000))
            let patch = bytes(1 + Int(rng.next() % 9000), &rng)
            attempt("pwrite \(path)") { () throws(Errno) in
                let fd = try os.open(path, .writeOnly)
                defer { os.closeQuietly(fd) }
                _ = try os.pwrite(fd, patch, at: UInt64(offset))
            }
            if contents.count < offset + patch.count { contents += [UInt8](repeating: 0, count: offset + patch.count - contents.count) }
            contents.replaceSubrange(offset..<offset + patch.count, with: patch)
            setContents(path, contents)
        case 6:
            guard let path = pick(paths, &rng), var contents = files[path] else { return }
            let size = Int(rng.next() % 40_000)
            attempt("truncate \(path)") { () throws(Errno) in try os.truncate(path, UInt64(size)) }
            contents = size <= contents.count ? Array(contents.prefix(size)) : contents + [UInt8](repeating: 0, count: size - contents.count)
            setContents(path, contents)
        case 7:
            guard let path = pick(paths, &rng) else { return }
            attempt("unlink \(path)") { () throws(Errno) in try os.unlink(path) }
            files[path] = nil
            dropAlias(path)
            touch(path)
        case 8:
            let empty = dirs.filter { d in d != "/" && !directories.contains { $0.hasPrefix(d + "/") } && !files.keys.contains { $0.hasPrefix(d + "/") } }
            guard let path = pick(empty, &rng) else { return }
            attempt("rmdir \(path)") { () throws(Errno) in try os.rmdir(path) }
            directories.remove(path)
            touch(path)
        case 9, 10, 11:
            // A file renamed: within its directory, or (one time in three) into another.
            guard let from = pick(paths, &rng), let contents = files[from] else { return }
            let parent = Self.parent(of: from)
            var into = parent
            if rng.next() % 3 == 0, let other = pick(dirs.filter { $0 != parent }, &rng) { into = other }
            names += 1
            let to = (into == "/" ? "" : into) + "/r\(names)"
            attempt("rename \(from) \(to)") { () throws(Errno) in try os.rename(from, to) }
            // Checked after a crash when both names' directories were on disk at the last sync.
            let checked = !touched.contains(from) && durable[from] == contents && durableDirectories.contains(into)
            files[from] = nil
            files[to] = contents
            renameAlias(from, to)
            touch(from)
            touch(to)
            if checked { renames.append((from, to, contents)) }
        case 12:
            // A directory, with all under it, moved into another (never under itself).
            guard let from = pick(dirs.filter { $0 != "/" }, &rng) else { return }
            let parent = Self.parent(of: from)
            guard let into = pick(dirs.filter { $0 != parent && $0 != from && !$0.hasPrefix(from + "/") }, &rng) else { return }
            names += 1
            let to = (into == "/" ? "" : into) + "/m\(names)"
            attempt("rename \(from) \(to)") { () throws(Errno) in try os.rename(from, to) }
            let checked = durableDirectories.contains(from) && durableDirectories.contains(into)
            let moved = { (path: String) -> String? in path == from ? to : path.hasPrefix(from + "/") ? to + path.dropFirst(from.count) : nil }
            for path in directories.sorted() { if let new = moved(path) { directories.remove(path); directories.insert(new); touch(path); touch(new) } }
            for path in files.keys.sorted() {
                if let new = moved(path) {
                    files[new] = files.removeValue(forKey: path)
                    renameAlias(path, new)
                    touch(path)
                    touch(new)
                }
            }
            // A rename or move recorded under the moved directory names paths that now
            // depend on this move too: each commits on its own, so neither is checked.
            let under = { (path: String) in path == from || path.hasPrefix(from + "/") }
            directoryMoves.removeAll { under($0.to) || under($0.from) }
            renames.removeAll { under($0.to) || under($0.from) }
            if checked { directoryMoves.append((from, to)) }
        case 13:
            // Another name for a file, in any directory. The file's first link moves its
            // inode out of its directory: after a crash, the old name must still read as
            // it was synced.
            guard let from = pick(paths, &rng), let contents = files[from], let into = pick(dirs, &rng) else { return }
            names += 1
            let to = (into == "/" ? "" : into) + "/l\(names)"
            attempt("link \(from) \(to)") { () throws(Errno) in try os.link(from, to) }
            let all = group(from) + [to]
            for name in all { aliases[name] = Set(all).subtracting([name]) }
            files[to] = contents
            touch(to)
        default:
            sync()
        }
    }

    /// The directory a path is in.
    static func parent(of path: String) -> String {
        let parent = String(path[..<path.lastIndex(of: "/")!])
        return parent.isEmpty ? "/" : parent
    }

    func sync() {
        attempt("sync") { () throws(Errno) in try os.sync() }
        if powerFailed { return }
        durable = files
        durableDirectories = directories
        touched = []
        renames = []
        directoryMoves = []
    }

    /// XN's and C-FFS's checks of a disk.
    func checkDisk(_ disk: SimulatedDisk) -> [String] {
        var device = disk
        let report = XNImage.check(device)
        var violations = report.violations
        for root in report.roots {
            let cffs = CFFSCheck.check(superblock: root.block) { block in try? device.read([block]).first }
            violations += cffs.violations.map { "C-FFS: \($0)" }
        }
        return violations
    }

    /// After the power failed: reboot on what the disk kept, check it, mount C-FFS and
    /// compare with what was synced.
    func recover() -> [String] {
        var disk = self.disk
        disk.powerLoss()
        kernel = Kernel(host: SimulatedHost(frameCount: 4096))
        do { try kernel.mountDisk(disk, format: false) } catch { return ["mount after the crash failed: \(error)"] }
        var violations = checkDisk(kernel.xn!.device)
        if !violations.isEmpty { return violations }
        let clock = self.clock
        do { os = try ExOSEnvironment.mount(kernel, uid: 0, gid: 0, now: clock.tick) } catch { return ["C-FFS does not mount after the crash: \(error)"] }
        for (path, contents) in durable.sorted(by: { $0.key < $1.key }) where !touched.contains(path) {
            do {
                if try get(path) != contents { violations.append("\(path) was synced, not touched since, and reads back different") }
            } catch {
                violations.append("\(path) was synced, not touched since, and is gone: \(error)")
            }
        }
        // Whatever a crash left past a file's end, growing the file shows zeros there.
        for path in files.keys.sorted() {
            guard let size = try? os.stat(path).size else { continue }
            do {
                try os.truncate(path, size + 9000)
                let grown = try get(path)
                if grown.count != Int(size) + 9000 || grown.suffix(9000).contains(where: { $0 != 0 }) {
                    violations.append("\(path) grown after the crash does not read as zeros past its old end")
                }
                try os.truncate(path, size)
            } catch {
                violations.append("\(path) cannot be grown after the crash: \(error)")
            }
        }
        for rename in renames {
            let old = (try? get(rename.from)) == rename.contents, new = (try? get(rename.to)) == rename.contents
            if old == new { violations.append("rename \(rename.from) → \(rename.to): " + (old ? "both names survived" : "neither name survived")) }
        }
        for move in directoryMoves {
            let old = (try? os.stat(move.from))?.isDirectory == true, new = (try? os.stat(move.to))?.isDirectory == true
            if old == new { violations.append("directory move \(move.from) → \(move.to): " + (old ? "both names survived" : "neither name survived")) }
        }
        return violations
    }

    func get(_ path: String) throws(Errno) -> [UInt8] {
        let fd = try os.open(path, .readOnly)
        defer { os.closeQuietly(fd) }
        var result: [UInt8] = []
        while true {
            let chunk = try os.read(fd, count: 65_536)
            if chunk.isEmpty { return result }
            result += chunk
        }
    }
}

/// A clock for the simulation: a microsecond per reading.
final class SimulatedClock: @unchecked Sendable {
    var now: Int64 = 1_700_000_000_000_000_000
    func tick() -> Int64 {
        now += 1000
        return now
    }
}
