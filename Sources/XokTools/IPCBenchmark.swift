// `xok bench ipc`: what a kernel call costs when the caller is another Linux process,
// beside the floors measured in the same run. Three ping-pongs between this process and a
// child it starts (the same `xok`, told which side to play), each pinned to its own
// processor when there are two:
// - polled: each side spins on a word in shared memory: the least a round trip can cost;
// - futex: each side sleeps until woken: what a round trip costs when nobody spins;
// - call: the child sends `upcallNext` (a null call) over a call channel to a kernel booted
//   here, which decodes, checks, handles and answers it.
// The child times its round trips and prints nanoseconds per round trip on its standard
// output, which comes back through a pipe.

import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Xok
import XokABI
import XokHostLinux
import XokSimulation

public enum IPCBenchmark {
    public enum Mode: String, CaseIterable, Sendable {
        case polled, futex, call
    }

    public struct Result: Sendable {
        public var mode: Mode
        public var nanoseconds: Double
    }

    /// The descriptor the child finds its shared memory on.
    static let childFD: Int32 = 3

    // The two words of the floors' shared page, on separate cache lines.
    static let ping = 0, pong = 64

    /// Runs the three modes, `calls` round trips each, with children started from
    /// `executable` (this program).
    public static func run(calls: Int, executable: String) throws -> [Result] {
        if sysconf(Int32(_SC_NPROCESSORS_ONLN)) >= 2 { _ = xok_pin_to_cpu(0) }
        return try Mode.allCases.map { mode in
            Result(mode: mode, nanoseconds: mode == .call ? try runCall(calls: calls, executable: executable)
                                                         : try runFloor(mode, calls: calls, executable: executable))
        }
    }

    // MARK: The parent's sides

    static func runFloor(_ mode: Mode, calls: Int, executable: String) throws -> Double {
        let page = try SharedPage()
        let child = try spawn(executable, mode: mode, calls: calls, fd: page.fd)
        let ping = page.word(Self.ping), pong = page.word(Self.pong)
        for i in 1...UInt32(calls) {
            // Answer each ping; give up if the child is gone.
            var spins = 0
            while xok_load_acquire(ping) != i {
                if mode == .polled {
                    xok_spin_pause()
                    spins += 1
                    if spins & 0xFFFFF == 0, child.exited() { throw SessionError("bench ipc: the \(mode) child died") }
                } else {
                    let seen = xok_load_acquire(ping)
                    if seen != i, xok_futex_wait(ping, seen, 100_000_000) != 0, errno == ETIMEDOUT, child.exited() {
                        throw SessionError("bench ipc: the \(mode) child died")
                    }
                }
            }
            xok_store_release(pong, i)
            if mode == .futex { _ = xok_futex_wake(pong, 1) }
        }
        try child.finish()
        return child.figure
    }

    static func runCall(calls: Int, executable: String) throws -> Double {
        let kernel = Kernel(host: try LinuxHost(frameCount: 256))
        let environment = try LibraryEnvironment.make(kernel, ownerID: 1, quota: LibraryEnvironment.share(of: kernel)).environment
        let channel = try CallChannel.create()
        let child = try spawn(executable, mode: .call, calls: calls, fd: channel.fd)
        try serve(channel, kernel: kernel, environment: environment) { !child.exited() }
        try child.finish()
        return child.figure
    }

    // MARK: The child's side

    /// Plays the child's side of `mode` on descriptor 3 and prints nanoseconds per round
    /// trip: the best of ten batches, each a tenth of `calls`, so that a moment when this
    /// VM's host runs something else does not count against a mode.
    public static func child(_ mode: Mode, calls: Int) throws {
        if sysconf(Int32(_SC_NPROCESSORS_ONLN)) >= 2 { _ = xok_pin_to_cpu(1) }
        let batch = max(1, calls / 10)
        var best = Double.infinity
        let clock = ContinuousClock()
        /// Runs `trip` for each of `trips`, timing them in batches and keeping the best.
        func timed(_ trips: ClosedRange<Int>, _ trip: (Int) throws -> Void) rethrows {
            var start = clock.now, done = 0
            for i in trips {
                try trip(i)
                done += 1
                if done == batch || i == trips.upperBound {
                    let d = clock.now - start
                    best = min(best, (Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9) / Double(done))
                    done = 0
                    start = clock.now
                }
            }
        }
        switch mode {
        case .polled, .futex:
            let page = try SharedPage(adopting: childFD)
            let ping = page.word(Self.ping), pong = page.word(Self.pong)
            timed(1...calls) { n in
                let i = UInt32(truncatingIfNeeded: n)
                xok_store_release(ping, i)
                if mode == .futex { _ = xok_futex_wake(ping, 1) }
                while xok_load_acquire(pong) != i {
                    if mode == .polled {
                        xok_spin_pause()
                    } else {
                        let seen = xok_load_acquire(pong)
                        if seen != i { _ = xok_futex_wait(pong, seen, 100_000_000) }
                    }
                }
            }
        case .call:
            let caller = ChannelCaller(channel: try CallChannel.attach(fd: childFD))
            // A first call outside the timing: the kernel's side may be asleep.
            _ = try caller.perform(.upcallNext)
            try timed(1...calls) { _ in
                guard case .upcall = try caller.perform(.upcallNext) else { throw SessionError("bench ipc: a null call got a wrong reply") }
            }
        }
        print(String(format: "%.3f", best))
    }

    // MARK: Processes and shared memory

    /// A page of memory in a memfd, for the floors.
    final class SharedPage {
        let fd: Int32
        let base: UnsafeMutableRawPointer

        init() throws {
            fd = xok_memfd_create("xok-bench-ipc")
            guard fd >= 0, ftruncate(fd, 4096) == 0 else { throw SessionError("bench ipc: cannot make shared memory") }
            guard let p = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
                throw SessionError("bench ipc: cannot map shared memory")
            }
            base = p
        }

        init(adopting fd: Int32) throws {
            self.fd = fd
            guard let p = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
                throw SessionError("bench ipc: descriptor \(fd) is not shared memory")
            }
            base = p
        }

        deinit {
            munmap(base, 4096)
            close(fd)
        }

        func word(_ offset: Int) -> UnsafeMutablePointer<UInt32> { (base + offset).assumingMemoryBound(to: UInt32.self) }
    }

    /// A child started with posix_spawn, its standard output in a pipe.
    final class Child {
        let pid: pid_t
        let output: Int32
        private(set) var figure = Double.nan
        private var status: Int32?

        init(pid: pid_t, output: Int32) {
            self.pid = pid
            self.output = output
        }

        /// Whether it has exited (reaped if so).
        func exited() -> Bool {
            if status != nil { return true }
            var s: Int32 = 0
            if waitpid(pid, &s, WNOHANG) == pid { status = s }
            return status != nil
        }

        /// Waits for it, checks it succeeded, and reads the figure it printed.
        func finish() throws {
            var text: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 256)
            while true {
                let n = read(output, &buffer, buffer.count)
                if n <= 0 { break }
                text += buffer[0..<n]
            }
            close(output)
            while status == nil {
                var s: Int32 = 0
                if waitpid(pid, &s, 0) == pid { status = s } else if errno != EINTR { break }
            }
            let printed = String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard status == 0, let value = Double(printed) else {
                throw SessionError("bench ipc: the child failed (wait status \(status ?? -1)): \(printed)")
            }
            figure = value
        }
    }

    static func spawn(_ executable: String, mode: Mode, calls: Int, fd: Int32) throws -> Child {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw SessionError("bench ipc: pipe: \(String(cString: strerror(errno)))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fd, childFD)
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
        let arguments = [executable, "bench", "ipc", "--child", mode.rawValue, "--calls", String(calls)]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, Glibc.environ)
        close(pipeEnds[1])
        guard spawned == 0 else {
            close(pipeEnds[0])
            throw SessionError("bench ipc: cannot start \(executable): \(String(cString: strerror(spawned)))")
        }
        return Child(pid: pid, output: pipeEnds[0])
    }

    /// This program's path, for starting children.
    public static func executablePath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }
}
