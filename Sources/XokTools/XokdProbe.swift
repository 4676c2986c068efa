// `xok probe` (docs/xokd.md): a hostile library operating system, run against a live
// `xokd` to check its boundary from outside. It speaks the daemon's protocols by hand —
// the socket handshake, the call channel's words, the shared pages — and tries what a
// malicious process would: greetings that are garbage, short, oversized or never sent;
// writing, resizing or resealing the pages it was given; calls that are garbage, that
// claim impossible lengths or that scribble over the channel's control words; opening
// other environments' channels through /proc; loading, storing and mapping frames it was
// never given; writing other environments' blocks; destroying other environments;
// claiming children with forged tokens or spawning them with rights it lacks; and
// vanishing in the middle of a call. Each attempt must end in an error or a hang-up,
// and the daemon must go on answering afterwards.
//
// What counts as refused depends on who runs it: root may open any process's
// descriptors and reach every file, so the probe means most run as an ordinary user.

import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XokABI
import XokHostLinux

public struct XokdProbe {
    /// One attack and how it ended.
    public struct Finding: Sendable {
        public var attack: String
        /// True when the daemon refused it and went on serving.
        public var held: Bool
        public var detail: String
    }

    let socketPath: String
    private var findings: [Finding] = []
    private var random = SystemRandomNumberGenerator()

    /// Runs every attack against the daemon listening on `socket`, in order, reporting each
    /// as it ends.
    public static func run(socket: String, report: (Finding) -> Void) -> [Finding] {
        var probe = XokdProbe(socketPath: socket)
        probe.attack(report)
        return probe.findings
    }

    private mutating func note(_ attack: String, held: Bool, _ detail: String, _ report: (Finding) -> Void) {
        let finding = Finding(attack: attack, held: held, detail: detail)
        findings.append(finding)
        report(finding)
    }

    private mutating func attack(_ report: (Finding) -> Void) {
        // The handshake.
        for (name, greeting) in [("a garbage greeting", Array("HELLO?!?".utf8)), ("a truncated greeting", Array("XOKD".utf8)),
                                 ("an oversized greeting", [UInt8]((0..<65_536).map { UInt8(truncatingIfNeeded: $0) })),
                                 ("an empty greeting", [])] {
            guard let fd = Self.connect(socketPath) else { return note(name, held: false, "cannot connect to \(socketPath)", report) }
            _ = greeting.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            let closed = Self.hangsUp(fd, within: 3)
            close(fd)
            note(name, held: closed, closed ? "the daemon hung up" : "the daemon kept the connection open", report)
        }
        if let silent = Self.connect(socketPath) {
            let served = withSession { $0.call(KernelRequest.upcallNext.encoded) != nil } ?? false
            let closed = Self.hangsUp(silent, within: Double(Xokd.helloSeconds) + 2)
            close(silent)
            note("a connection that never says hello", held: served && closed,
                 "others were \(served ? "" : "not ")served meanwhile; it was \(closed ? "" : "not ")dropped", report)
        }

        // More connections than the daemon serves at once: the one past the limit is
        // closed at once, well before the silent ones time out, and once they are gone a
        // new environment is served.
        let floodStart = CallChannel.now()
        var flood: [Int32] = []
        for _ in 0...Xokd.clientsMax {
            guard let fd = Self.connect(socketPath) else { break }
            flood.append(fd)
        }
        usleep(200_000)
        // Silent connections are dropped only after `helloSeconds`: one closed before
        // that was refused.
        let early = CallChannel.now() - floodStart < (Xokd.helloSeconds * 1_000 - 500) * 1_000_000
        let refused = flood.filter { Self.hangsUp($0, within: 0) }.count
        for fd in flood { close(fd) }
        usleep(300_000)
        let afterFlood = withSession { $0.call(KernelRequest.upcallNext.encoded) != nil } ?? false
        note("a flood of connections", held: flood.count == Xokd.clientsMax + 1 && early && refused >= 1 && afterFlood,
             "\(flood.count) opened, \(refused) closed at once\(early ? "" : " (too slow to tell)"); the daemon \(afterFlood ? "serves again" : "no longer serves")", report)

        // Taking every environment the daemon has for its user, to dilute the quota the
        // others share: its own connections divide its own share, and past
        // `clientsPerUserMax` it is refused; then it is served again.
        var mine: [Int32] = []
        var welcomed = 0
        for _ in 0..<(Xokd.clientsPerUserMax + 4) {
            guard let fd = Self.connect(socketPath) else { break }
            mine.append(fd)
            var patience = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, socklen_t(MemoryLayout<timeval>.size))
            var answer = [UInt8](repeating: 0, count: 64)
            if Xokd.hello.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == Xokd.hello.count,
               recv(fd, &answer, answer.count, 0) == Xokd.Welcome.bytes { welcomed += 1 }
        }
        for fd in mine { close(fd) }
        usleep(300_000)
        let servedAgain = withSession { $0.call(KernelRequest.upcallNext.encoded) != nil } ?? false
        note("taking every environment for its user", held: welcomed <= Xokd.clientsPerUserMax && servedAgain,
             "\(welcomed) of \(mine.count) welcomed (at most \(Xokd.clientsPerUserMax) a user); the daemon \(servedAgain ? "serves again" : "no longer serves")", report)

        // The pages it is given.
        var channelRefusals: [String] = []
        withSession { session in
            let exposed = session.exposedFD, bytes = Int(Self.size(of: exposed))
            var refusals: [String] = []
            if let writable = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, exposed, 0), writable != MAP_FAILED {
                munmap(writable, bytes)
            } else { refusals.append("writable mapping") }
            if let readable = mmap(nil, bytes, PROT_READ, MAP_SHARED, exposed, 0), readable != MAP_FAILED {
                if mprotect(readable, bytes, PROT_READ | PROT_WRITE) != 0 { refusals.append("mprotect") }
                munmap(readable, bytes)
            }
            var byte: UInt8 = 1
            if pwrite(exposed, &byte, 1, 0) != 1 { refusals.append("write") }
            if ftruncate(exposed, 0) != 0 { refusals.append("shrink") }
            if ftruncate(exposed, off_t(bytes * 2)) != 0 { refusals.append("grow") }
            note("changing the exposed state", held: refusals.count == 5, "refused: \(refusals.joined(separator: ", "))", report)

            // Shrunk, the daemon's next look at the channel would fault; it looks at least
            // every 100 ms. (Touching it here would fault this process too, so the size is
            // put back before anything here does.)
            if ftruncate(session.channelFD, 0) == 0 {
                usleep(500_000)
                _ = ftruncate(session.channelFD, off_t(CallChannel.bytes))
            } else { channelRefusals.append("shrink") }
            if ftruncate(session.channelFD, off_t(CallChannel.bytes * 2)) != 0 { channelRefusals.append("grow") }
        }
        let alive = withSession { $0.call(KernelRequest.upcallNext.encoded) != nil } ?? false
        note("resizing its call channel under the daemon", held: channelRefusals.count == 2 && alive,
             "refused: \(channelRefusals.joined(separator: ", ")); the daemon \(alive ? "still serves" : "no longer serves")", report)

        // Calls.
        withSession { session in
            let edges = [0, 1, 2, 3, 4, 5, 8, 9, 16, 17, 255, 256, 4095, 4096, 4097, 65_535, 65_536, CallChannel.capacity - 1, CallChannel.capacity]
            var answered = 0, accepted = 0, total = 0
            for round in 0..<1_500 {
                let length = round < edges.count ? edges[round] : Int.random(in: 0...600, using: &random)
                var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
                // Half start with a real call's code, so the decoder goes past the first byte.
                if round % 2 == 1, !bytes.isEmpty { bytes[0] = UInt8.random(in: 1...44, using: &random) }
                total += 1
                guard let reply = session.call(bytes) else { break }
                answered += 1
                if (try? KernelReply(decoding: reply)) != nil { accepted += 1 }
            }
            let alive = session.call(KernelRequest.upcallNext.encoded) != nil
            note("garbage calls", held: answered == total && alive,
                 "\(answered) of \(total) answered (\(accepted) happened to decode as a call and were carried out)", report)

            var impossible: [String] = []
            for length in [UInt32(CallChannel.capacity + 1), UInt32.max] {
                if let reply = session.call([], claiming: length), case .failure(.badRequest) = Result(catching: { () throws(KernelError) in try KernelReply(decoding: reply) }) {
                    impossible.append("\(length)")
                }
            }
            note("a request length past the channel", held: impossible.count == 2, "refused as badRequest: \(impossible.joined(separator: ", "))", report)

            for _ in 0..<2_000 { session.scribble(using: &random) }
        }
        let served = withSession { $0.call(KernelRequest.upcallNext.encoded) != nil } ?? false
        note("scribbling over the channel's control words", held: served, served ? "a new environment is served afterwards" : "the daemon no longer serves", report)

        // Other environments' things.
        withSession { session in
            guard let state = try? MappedExposedState(fd: dup(session.exposedFD)) else { return note("others' frames", held: false, "cannot map the exposed state", report) }
            let snapshot = state.snapshot()
            let others = (0..<snapshot.framesTotal).compactMap { snapshot.registry(frame: FrameNumber(rawValue: UInt32($0))) }.filter { $0.owner != session.environment }

            // Every frame holding someone's block, the ends of the frame numbers and one
            // past them, and a stride through the rest.
            let total = UInt32(clamping: snapshot.framesTotal)
            var frames = Set(others.map(\.frame.rawValue))
            frames.formUnion([0, 1, total &- 1, total, total &+ 1, UInt32.max])
            frames.formUnion(stride(from: 0, to: total, by: 61))
            var reached: [String] = []
            for frame in frames.sorted() {
                let f = FrameNumber(rawValue: frame)
                if session.succeeds(.frameLoad(f, offset: 0, count: 16)) { reached.append("load \(frame)") }
                if session.succeeds(.frameStore(f, offset: 4095, bytes: [0xEE])) { reached.append("store \(frame)") }
            }
            note("loading and storing frames it was never given", held: reached.isEmpty,
                 reached.isEmpty ? "\(2 * frames.count) refused, over \(frames.count) frames" : "reached: \(reached.prefix(8).joined(separator: ", "))", report)

            reached = []
            for entry in others {
                for slot in 0..<16 {
                    let s = CapabilitySlot(rawValue: UInt16(slot))
                    if session.succeeds(.frameMap(credential: s, entry.frame, writable: true)) { reached.append("frame \(entry.frame.rawValue)") }
                    if session.succeeds(.xnMap(credential: s, entry.block, writable: true)) { reached.append("block \(entry.block)") }
                    if session.succeeds(.xnWriteData(credential: s, entry.block, XNChanges(ranges: [.init(offset: 0, length: 1)], bytes: [0xEE], source: nil))) {
                        reached.append("write \(entry.block)")
                    }
                }
            }
            note("mapping or writing other environments' cached blocks", held: reached.isEmpty,
                 reached.isEmpty ? "\(3 * 16 * others.count) refused over \(others.count) blocks" : "reached: \(reached.prefix(8).joined(separator: ", "))", report)

            reached = []
            let neighbours = snapshot.environments.map(\.id).filter { $0 != session.environment }
            for target in neighbours {
                for slot in 0..<16 where session.succeeds(.environmentDestroy(credential: CapabilitySlot(rawValue: UInt16(slot)), target)) {
                    reached.append("\(target.rawValue)")
                }
            }
            note("destroying other environments", held: reached.isEmpty,
                 reached.isEmpty ? "\(16 * neighbours.count) refused" : "destroyed: \(reached.joined(separator: ", "))", report)

            // The daemon's descriptors, which include every environment's channel.
            let folder = "/proc/\(session.daemonPID)/fd"
            var opened = 0
            if let listing = try? FileManager.default.contentsOfDirectory(atPath: folder) {
                for name in listing {
                    let fd = open(folder + "/" + name, O_RDWR)
                    if fd >= 0 { opened += 1; close(fd) }
                }
            }
            note("opening other environments' channels through /proc", held: opened == 0,
                 opened == 0 ? "\(folder) is closed to this process" : "opened \(opened) of the daemon's descriptors" + (getuid() == 0 ? " (as root, which may)" : ""), report)
        }

        // Spawning and claiming children (`xok run`).
        if let fd = Self.connect(socketPath) {
            var random = SystemRandomNumberGenerator()
            let token = (0..<Xokd.tokenBytes).map { _ in UInt8.random(in: 0...255, using: &random) }
            let forged = Xokd.adoptionHello + token
            _ = forged.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            let closed = Self.hangsUp(fd, within: 3)
            close(fd)
            note("claiming a child with a forged token", held: closed, closed ? "the daemon hung up" : "the daemon kept the connection open", report)
        }
        withSession { session in
            // Grants it does not hold, a slot past the end, and a credential that is not the
            // right to create environments.
            let asks = [Xokd.SpawnRequest(credential: Xokd.environmentsSlot, grants: [CapabilitySlot(rawValue: 31)]),
                        Xokd.SpawnRequest(credential: Xokd.environmentsSlot, grants: [CapabilitySlot(rawValue: UInt16.max)]),
                        Xokd.SpawnRequest(credential: CapabilitySlot(rawValue: 0), grants: [])]
            var refused = 0
            for ask in asks {
                if let answer = session.ask(ask.encoded), Array(answer.prefix(4)) == Xokd.refused { refused += 1 }
            }
            note("spawning a child with rights it does not hold", held: refused == asks.count, "\(refused) of \(asks.count) refused", report)
        }
        withSession { session in
            let garbage = Array("XOKSgarbage".utf8)
            _ = garbage.withUnsafeBytes { send(session.socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            let closed = XokdProbe.hangsUp(session.socket, within: 3)
            note("garbage on the socket after the handshake", held: closed, closed ? "the daemon hung up" : "the daemon kept the connection open", report)
        }

        // Vanishing: a request published, then everything closed at once.
        withSession { $0.publishAndLeave(KernelRequest.upcallNext.encoded) }
        usleep(300_000)
        let after = withSession { $0.call(KernelRequest.upcallNext.encoded) != nil } ?? false
        note("vanishing in the middle of a call", held: after, after ? "the daemon went on serving" : "the daemon no longer serves", report)
    }

    /// Runs `body` with a new environment of the daemon's; nil when the handshake failed.
    @discardableResult
    private func withSession<T>(_ body: (inout Session) -> T) -> T? {
        guard var session = Session(socketPath) else { return nil }
        defer { session.close() }
        return body(&session)
    }

    static func connect(_ path: String) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0, var address = try? Xokd.unixAddress(path) else { return nil }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Whether the other end closes `fd` within `seconds` (0: has closed it already).
    static func hangsUp(_ fd: Int32, within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            var state = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&state, 1, seconds > 0 ? 50 : 0) >= 0 else { return true }
            if state.revents & Int16(POLLHUP | POLLERR) != 0 { return true }
            if state.revents & Int16(POLLIN) != 0 {
                var byte = [UInt8](repeating: 0, count: 64)
                if recv(fd, &byte, byte.count, Int32(MSG_DONTWAIT)) == 0 { return true }
            }
        } while Date() < deadline
        return false
    }

    static func size(of fd: Int32) -> off_t {
        var status = stat()
        return fstat(fd, &status) == 0 ? status.st_size : 0
    }

    /// An environment's end of the daemon, handled word by word.
    struct Session {
        let socket: Int32
        let channelFD: Int32
        let exposedFD: Int32
        let environment: EnvironmentID
        let daemonPID: Int32
        let base: UnsafeMutableRawPointer

        init?(_ path: String) {
            guard let fd = XokdProbe.connect(path) else { return nil }
            var uid: UInt32 = 0, gid: UInt32 = 0, pid: Int32 = 0
            var reply = [UInt8](repeating: 0, count: 64)
            var fds: [Int32] = [-1, -1]
            var count: Int32 = 0
            guard xok_peer_credentials(fd, &uid, &gid, &pid) == 0, send(fd, Xokd.hello, Xokd.hello.count, Int32(MSG_NOSIGNAL)) == Xokd.hello.count,
                  xok_receive_with_fds(fd, &reply, UInt(reply.count), &fds, 2, &count) == Xokd.Welcome.bytes, count == 2,
                  let welcome = Xokd.Welcome(decoding: Array(reply.prefix(Xokd.Welcome.bytes))),
                  let base = mmap(nil, CallChannel.bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0), base != MAP_FAILED else {
                for f in fds where f >= 0 { Glibc.close(f) }
                Glibc.close(fd)
                return nil
            }
            socket = fd
            channelFD = fds[0]
            exposedFD = fds[1]
            environment = welcome.environment
            daemonPID = pid
            self.base = base
        }

        func close() {
            munmap(base, CallChannel.bytes)
            Glibc.close(channelFD)
            Glibc.close(exposedFD)
            Glibc.close(socket)
        }

        private func word(_ offset: Int) -> UnsafeMutablePointer<UInt32> { (base + offset).assumingMemoryBound(to: UInt32.self) }

        /// Puts `bytes` in the request area, claims `length`, and publishes the next sequence.
        private func publish(_ bytes: [UInt8], claiming length: UInt32) -> UInt32 {
            bytes.withUnsafeBytes { if let from = $0.baseAddress { (base + CallChannel.requestOffset(length: $0.count)).copyMemory(from: from, byteCount: $0.count) } }
            word(CallChannel.requestLength).pointee = length
            let sequence = xok_load_acquire(word(CallChannel.requestSequence)) &+ 1
            xok_store_release(word(CallChannel.requestSequence), sequence)
            xok_fence()
            _ = xok_futex_wake(word(CallChannel.requestSequence), 1)
            return sequence
        }

        /// One call, its length claimed as `length` (the bytes' own count unless given);
        /// the reply, or nil when none came within five seconds.
        func call(_ bytes: [UInt8], claiming length: UInt32? = nil) -> [UInt8]? {
            let sequence = publish(bytes, claiming: length ?? UInt32(bytes.count))
            let deadline = CallChannel.now() + 5_000_000_000
            while xok_load_acquire(word(CallChannel.replySequence)) != sequence {
                if CallChannel.now() > deadline { return nil }
                sched_yield()
            }
            let count = Int(xok_load_acquire(word(CallChannel.replyLength)))
            guard count <= CallChannel.capacity else { return nil }
            return Array(UnsafeRawBufferPointer(start: base + CallChannel.replyOffset(length: count), count: count))
        }

        /// Whether `request` was carried out rather than refused.
        func succeeds(_ request: KernelRequest) -> Bool {
            guard let reply = call(request.encoded) else { return false }
            return (try? KernelReply(decoding: reply)) != nil
        }

        /// Random values into random control words.
        mutating func scribble(using random: inout SystemRandomNumberGenerator) {
            let offsets = [CallChannel.requestSequence, CallChannel.replySequence, CallChannel.kernelSleeping, CallChannel.callerSleeping,
                           CallChannel.requestLength, CallChannel.replyLength, CallChannel.magicOffset]
            let offset = offsets[Int.random(in: 0..<offsets.count, using: &random)]
            xok_store_release(word(offset), UInt32.random(in: 0...UInt32.max, using: &random))
            _ = xok_futex_wake(word(offset), 1)
        }

        /// Sends `message` on the socket and waits up to three seconds for the answer.
        func ask(_ message: [UInt8]) -> [UInt8]? {
            guard message.withUnsafeBytes({ send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == message.count else { return nil }
            var patience = timeval(tv_sec: 3, tv_usec: 0)
            setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &patience, socklen_t(MemoryLayout<timeval>.size))
            var answer = [UInt8](repeating: 0, count: 256)
            let n = recv(socket, &answer, answer.count, 0)
            return n > 0 ? Array(answer.prefix(n)) : nil
        }

        /// Publishes a request and leaves without waiting for the reply.
        func publishAndLeave(_ bytes: [UInt8]) { _ = publish(bytes, claiming: UInt32(bytes.count)) }
    }
}
