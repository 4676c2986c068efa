// `xok bench fs`: the I/O-intensive benchmark of the exokernel paper, adapted. The same
// eight steps on a real tree run twice in one process's run: in ExOS on C-FFS on an image
// file, with the kernel booted here on the Linux host, and with GNU coreutils, tar and
// diff on the host's own file system in a directory beside the image. Every step that
// writes ends with its data durable on both sides: ExOS's sync (XN's writeback, then
// fdatasync of the image) against `sync -f` (syncfs) of the host's directory.

import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CFFS
import ExOS
import Xok
import XokABI
import XokHostLinux

public enum FSBenchmark {
    /// One step's times on both sides.
    public struct Step: Sendable {
        public var name: String
        public var exos: Double
        public var linux: Double
        /// Processor time (user and system) each side spent: ExOS's in this process, Linux's
        /// in the tools it ran. Wall time is what counts; these show how much of it was work.
        public var exosCPU: Double = 0
        public var linuxCPU: Double = 0
        /// The same step with ExOS in its own process calling `xokd` (`--xokd`).
        public var xokd: Double?
        public var ratio: Double { exos / linux }
    }

    /// The steps: what each does in ExOS's shell and with the host's tools (run by
    /// /bin/sh in the host directory).
    static let steps: [(name: String, exos: String, linux: String)] = [
        ("1 copy the tar in", "import %TAR /tree.tar; sync", "cp %TAR tree.tar && sync -f ."),
        ("2 extract it", "mkdir /x; tar -x -f /tree.tar -C /x; sync", "mkdir x && tar -x -f tree.tar -C x && sync -f ."),
        ("3 cp -r", "cp -r /x /y; sync", "cp -r x y && sync -f ."),
        ("4 diff -r", "diff -r /x /y", "diff -r x y"),
        ("5 cksum every file", "%CKSUM /y", "find y -type f -exec cksum {} + > /dev/null"),
        ("6 rm -r the copy", "rm -r /y; sync", "rm -r y && sync -f ."),
        ("7 tar it again", "tar -c -f /again.tar /x; sync", "tar -c -f again.tar x && sync -f ."),
        ("8 rm -r everything", "rm -r /x /tree.tar /again.tar; sync", "rm -r x tree.tar again.tar && sync -f ."),
    ]

    /// Runs the benchmark `rounds` times on `tree` in a new directory under `work`, which
    /// it removes afterwards, each round on a fresh image and host directory after
    /// `settleHost`. Each step's figures are the medians of the rounds', side by side.
    /// `settled` is false when the host's caches could not be dropped before some round.
    /// `say` gets progress lines.
    /// With `xokd` (the path of an `xok` executable), each round also runs ExOS's steps in
    /// this process against a daemon that executable runs on an image of its own.
    public static func run(tree: String, work: String, rounds: Int = 1, xokd: String? = nil,
                           say: (String) -> Void) throws -> (steps: [Step], settled: Bool) {
        guard let resolved = realpath(work, nil) else { throw SessionError("bench fs: \(work): \(String(cString: strerror(errno)))") }
        let absolute = String(cString: resolved)
        free(resolved)
        var template = Array((absolute + "/xok-bench-fs.XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw SessionError("bench fs: cannot make a directory in \(work)") }
        let dir = String(cString: made)
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        let host = dir + "/linux"
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: false)

        // The tar of the tree, made by the host's tar (not timed).
        let url = URL(fileURLWithPath: tree).standardizedFileURL
        let tarPath = dir + "/tree.tar"
        say("bench fs: making a tar of \(url.path)")
        try shell("tar -c -f \(quoted(tarPath)) -C \(quoted(url.deletingLastPathComponent().path)) \(quoted(url.lastPathComponent))", in: dir)

        var all: [[Step]] = []
        var settled = true
        for round in 1...max(1, rounds) {
            settled = settleHost(warming: tarPath) && settled
            let progress = { (line: String) in say(rounds > 1 ? "\(line) (round \(round) of \(rounds))" : line) }
            var steps = try runRound(tarPath: tarPath, dir: dir, host: host, say: progress)
            if let xokd {
                let times = try runOverDaemon(xok: xokd, tarPath: tarPath, dir: dir, say: progress)
                for i in steps.indices { steps[i].xokd = times[i] }
            }
            all.append(steps)
        }
        return (median(all), settled)
    }

    /// Puts Linux's side in the same state before every round: written out, with no
    /// cached metadata. ext4 without a journal (as on these VMs) will not hand out an inode
    /// freed in the last minutes while its inode-table block is still cached, and looking
    /// for one that it may costs it up to 20 times its own speed on `tar -x` and `cp -r`
    /// after a large `rm -r` (the previous round's, the previous run's, anyone's). Writing
    /// everything out and dropping the page, dentry and inode caches (as root only) ends
    /// that; then the tar is read back in so step 1 copies from memory on both sides.
    /// Returns false when the caches could not be dropped.
    static func settleHost(warming tar: String) -> Bool {
        sync()
        let fd = open("/proc/sys/vm/drop_caches", O_WRONLY)
        var dropped = false
        if fd >= 0 {
            dropped = write(fd, "3\n", 2) == 2
            close(fd)
        }
        let input = open(tar, O_RDONLY)
        if input >= 0 {
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
            while read(input, buffer, 1 << 20) > 0 {}
            buffer.deallocate()
            close(input)
        }
        return dropped
    }

    /// The eight steps once, on a fresh image and an empty host directory.
    static func runRound(tarPath: String, dir: String, host: String, say: (String) -> Void) throws -> [Step] {
        for name in try FileManager.default.contentsOfDirectory(atPath: host) { try FileManager.default.removeItem(atPath: host + "/" + name) }
        try? FileManager.default.removeItem(atPath: dir + "/bench.img")
        let session = try ExOSSession(image: dir + "/bench.img", uid: 0, gid: 0, say: { _ in })
        var results: [Step] = []
        for step in steps {
            say("bench fs: \(step.name)")
            let linuxStart = cpuTime(RUSAGE_CHILDREN.rawValue)
            let linux = try time { try shell(step.linux.replacingOccurrences(of: "%TAR", with: quoted(tarPath)), in: host) }
            let linuxCPU = cpuTime(RUSAGE_CHILDREN.rawValue) - linuxStart
            let exosStart = cpuTime(RUSAGE_SELF.rawValue)
            let exos = try time { try run(step, on: session.os, tarPath: tarPath) }
            results.append(Step(name: step.name, exos: exos, linux: linux, exosCPU: cpuTime(RUSAGE_SELF.rawValue) - exosStart,
                                linuxCPU: linuxCPU))
        }
        try session.close()
        return results
    }

    /// ExOS's side of `step` on `os`.
    static func run<P: KernelPort>(_ step: (name: String, exos: String, linux: String), on os: ExOS<P>, tarPath: String) throws {
        let failures = Lines()
        let shell = Shell(os: os, standardOutput: { _ in }, standardError: { failures.lines.append($0) })
        if step.exos.hasPrefix("%CKSUM ") {
            try shell.cksumTree(String(step.exos.dropFirst(7)))
        } else if !shell.run(step.exos.replacingOccurrences(of: "%TAR", with: quoted(tarPath))) {
            throw SessionError("bench fs: \(step.name) failed in ExOS: \(failures.lines.joined(separator: "; "))")
        }
    }

    /// ExOS's eight steps in this process against `xok daemon`, started from `xok` on a
    /// fresh image and giving each environment the share of the machine an in-process
    /// session's has; the seconds of each.
    static func runOverDaemon(xok: String, tarPath: String, dir: String, say: (String) -> Void) throws -> [Double] {
        let image = dir + "/xokd.img", socket = dir + "/xokd.sock"
        try? FileManager.default.removeItem(atPath: image)
        var pid: pid_t = 0
        let arguments = [xok, "daemon", "--image", image, "--socket", socket, "--parts", "2"]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let spawned = posix_spawn(&pid, xok, &actions, nil, argv, environ)
        guard spawned == 0 else { throw SessionError("bench fs: cannot start \(xok) daemon: \(String(cString: strerror(spawned)))") }
        defer {
            kill(pid, SIGTERM)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        var connection: Xokd.Connection?
        for _ in 0..<600 where connection == nil {
            connection = try? Xokd.connect(socket)
            if connection == nil { usleep(50_000) }
        }
        guard let connection else { throw SessionError("bench fs: the daemon did not start on \(image)") }
        let os = try Xokd.exos(connection)
        var times: [Double] = []
        for step in steps {
            say("bench fs: \(step.name), over xokd")
            times.append(try time { try run(step, on: os, tarPath: tarPath) })
        }
        return times
    }

    /// Each step's median over the rounds, figure by figure (the median of an even count
    /// is the mean of the middle two).
    static func median(_ rounds: [[Step]]) -> [Step] {
        func middle(_ values: [Double]) -> Double {
            let sorted = values.sorted(), n = sorted.count
            return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        }
        guard let first = rounds.first else { return [] }
        return first.indices.map { i in
            let taken = rounds.map { $0[i] }
            let xokd = taken.compactMap(\.xokd)
            return Step(name: first[i].name, exos: middle(taken.map(\.exos)), linux: middle(taken.map(\.linux)),
                        exosCPU: middle(taken.map(\.exosCPU)), linuxCPU: middle(taken.map(\.linuxCPU)),
                        xokd: xokd.count == taken.count ? middle(xokd) : nil)
        }
    }

    final class Lines {
        var lines: [String] = []
    }

    /// Seconds `body` took.
    static func time(_ body: () throws -> Void) throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        try body()
        let d = clock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// User and system time so far, in seconds, of this process or of its waited-for children.
    static func cpuTime(_ who: Int32) -> Double {
        var usage = rusage()
        guard getrusage(who, &usage) == 0 else { return 0 }
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    static func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// Runs `command` with /bin/sh in `directory`; throws when it fails. (posix_spawn and
    /// waitpid: Foundation's Process polls for the child's exit every 50 ms, which would
    /// be most of a small step's time.)
    static func shell(_ command: String, in directory: String) throws {
        let script = "cd " + quoted(directory) + " && " + command
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(script), nil]
        defer { for p in argv { free(p) } }
        let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ)
        guard spawned == 0 else { throw SessionError("bench fs: cannot run /bin/sh: \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw SessionError("bench fs: waitpid: \(String(cString: strerror(errno)))") }
        }
        guard status == 0 else { throw SessionError("bench fs: `\(command)` failed (wait status \(status))") }
    }

    /// The table: each step on both sides, the ratio, the total, and the targets; with
    /// figures over `xokd`, those and their ratio to in-process ExOS's too.
    public static func table(_ steps: [Step]) -> String {
        let daemon = steps.allSatisfy { $0.xokd != nil } && !steps.isEmpty
        func row(_ name: String, _ exos: Double, _ linux: Double, _ exosCPU: Double, _ linuxCPU: Double, _ xokd: Double?) -> String {
            var line = name.padding(toLength: 24, withPad: " ", startingAt: 0)
                + String(format: "  %7.3f  %8.3f  %10.2f           %5.2f  %5.2f", exos, linux, exos / linux, exosCPU, linuxCPU)
            if let xokd { line += String(format: "  %8.3f  %10.2f", xokd, xokd / exos) }
            return line
        }
        var lines = ["step                      ExOS s   Linux s   ExOS/Linux   (cpu s: ExOS  Linux)" + (daemon ? "   xokd s   xokd/ExOS" : "")]
        for s in steps { lines.append(row(s.name, s.exos, s.linux, s.exosCPU, s.linuxCPU, s.xokd)) }
        let exos = steps.reduce(0) { $0 + $1.exos }, linux = steps.reduce(0) { $0 + $1.linux }
        let exosCPU = steps.reduce(0) { $0 + $1.exosCPU }, linuxCPU = steps.reduce(0) { $0 + $1.linuxCPU }
        let xokd = daemon ? steps.reduce(0) { $0 + ($1.xokd ?? 0) } : nil
        lines.append(row("total", exos, linux, exosCPU, linuxCPU, xokd))
        let small = steps.filter { ["2", "3", "6", "8"].contains($0.name.prefix(1)) }
        let smallRatio = small.reduce(0) { $0 + $1.exos } / small.reduce(0) { $0 + $1.linux }
        lines.append(String(format: "targets: total ≤ 1.00 (%.2f, %@); small-file steps 2, 3, 6, 8 ≤ 0.50 each (%@)", exos / linux,
                            exos / linux <= 1 ? "met" : "missed",
                            small.map { String(format: "%.2f", $0.ratio) + ($0.ratio <= 0.5 ? "" : " missed") }.joined(separator: ", ")))
        lines.append(String(format: "small-file steps together: %.2f", smallRatio))
        if let xokd {
            lines.append(String(format: "xokd target: total ≤ 1.20 × in-process ExOS (%.2f, %@)", xokd / exos, xokd / exos <= 1.2 ? "met" : "missed"))
        }
        return lines.joined(separator: "\n")
    }

    /// A bar chart of the steps: two bars a step, ExOS and Linux, in seconds.
    public static func svg(_ steps: [Step]) -> String {
        let width = 760.0, rowHeight = 44.0, left = 170.0, top = 40.0
        let longest = max(steps.map { max($0.exos, $0.linux) }.max() ?? 1, 1e-9)
        let scale = (width - left - 90) / longest
        var body = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(top + rowHeight * Double(steps.count) + 40))" \
            font-family="sans-serif" font-size="12">
            <text x="10" y="20" font-size="14">xok bench fs: seconds per step (ExOS on C-FFS, blue; Linux coreutils, grey)</text>

            """
        for (i, s) in steps.enumerated() {
            let y = top + rowHeight * Double(i)
            body += "<text x=\"10\" y=\"\(y + 20)\">\(s.name)</text>\n"
            for (j, (value, colour)) in [(s.exos, "#3465a4"), (s.linux, "#999999")].enumerated() {
                let barY = y + 4 + Double(j) * 17
                body += String(format: "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.1f\" height=\"15\" fill=\"%@\"/>", left, barY, max(1, value * scale), colour)
                body += String(format: "<text x=\"%.1f\" y=\"%.0f\">%.3f s</text>\n", left + max(1, value * scale) + 5, barY + 12, value)
            }
        }
        let exos = steps.reduce(0) { $0 + $1.exos }, linux = steps.reduce(0) { $0 + $1.linux }
        body += String(format: "<text x=\"10\" y=\"%.0f\">total: ExOS %.2f s, Linux %.2f s, ratio %.2f</text>\n",
                       top + rowHeight * Double(steps.count) + 20, exos, linux, exos / linux)
        return body + "</svg>\n"
    }
}

extension Shell {
    /// cksum of every regular file under `root`, output discarded (step 5 of the benchmark).
    func cksumTree(_ root: String) throws {
        var files: [String] = []
        var pending = [root]
        while let dir = pending.popLast() {
            for name in try os.list(dir) {
                let path = Self.join(dir, name)
                let s = try os.lstat(path)
                if s.isDirectory { pending.append(path) } else if s.isRegular { files.append(path) }
            }
        }
        try cksum(files)
    }
}
