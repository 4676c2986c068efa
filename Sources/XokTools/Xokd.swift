// `xokd` (docs/xokd.md): the kernel as a daemon on a disk image, serving library
// operating systems that run in their own processes. A process connects to its Unix
// socket; the daemon takes the peer's uid and gid from Linux (SO_PEERCRED, not from
// anything the process says), makes it an ExOS environment acting as that user, and hands
// over two descriptors: its call channel and the exposed state's sealed pages. Each
// environment's calls are served on a thread of its own, one call at a time across the
// kernel. When the connection closes, however the process ended, the environment is
// killed (everything it held comes back) and the dirty blocks it handed to XN are
// written.

import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CFFS
import ExOS
import XN
import Xok
import XokABI
import XokHostLinux
import XokSimulation

public final class Xokd: @unchecked Sendable {
    /// The handshake: the client sends `hello`; the daemon answers with `Welcome` and the
    /// two descriptors.
    public static let hello: [UInt8] = Array("XOKD0001".utf8)
    static let welcomeMagic: UInt32 = 0x584F_4B57   // "XOKW"
    /// How long a new connection has to say hello.
    public static let helloSeconds = 2

    let kernel: Kernel<LinuxHost>
    let host: LinuxHost
    /// One call at a time across the kernel, whichever environment makes it.
    let lock = NSLock()
    let listener: Int32
    public let socketPath: String
    private let stopping = Flag()
    private let clients = Counter()

    /// Each environment's quota: this fraction of the machine's frames and disk.
    let parts: Int

    /// Boots on `image` (created and formatted when absent, as the shell does) and listens
    /// on `socket`, replacing a stale socket file there. Each environment gets 1/`parts`
    /// of the machine.
    public init(image: String, socket: String, frames: Int? = nil, parts: Int = 8, say: (String) -> Void) throws {
        self.parts = max(1, parts)
        let exists = access(image, F_OK) == 0
        let device = exists ? try FileBlockDevice.open(path: image) : try FileBlockDevice.create(path: image, blocks: ExOSSession.defaultBlocks)
        host = try LinuxHost(frameCount: frames ?? LinuxMemory.defaultFrameCount)
        kernel = Kernel(host: host)
        do { try kernel.mountDisk(device, format: !exists) } catch { throw SessionError("\(image): \(error)") }
        if !exists { say("xokd: created \(image) and laid out an XN disk on it") }
        if (try? LocalPort(kernel: kernel, environment: kernel.initEnvironment).root(named: "cffs")) == nil {
            let admin = try ExOSEnvironment.format(kernel, quota: ExOSEnvironment.share(of: kernel, parts: 16), now: ExOSSession.now)
            try admin.sync()
            say("xokd: formatted C-FFS on \(image)")
        }
        // Other processes of the daemon's user may not trace it or open its descriptors
        // (every environment's channel) through /proc.
        guard xok_forbid_tracing() == 0 else { throw SessionError("xokd: cannot make the daemon undumpable: \(String(cString: strerror(errno)))") }
        guard host.exposedMemory.fd >= 0 else { throw SessionError("xokd: Linux would not give the exposed state a sealed memfd") }
        socketPath = socket
        listener = try Self.listen(on: socket)
    }

    deinit { close(listener) }

    static func listen(on path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SessionError("xokd: socket: \(String(cString: strerror(errno)))") }
        var address = try unixAddress(path)
        unlink(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        // Any local user may connect: the daemon acts for the user Linux says the peer is.
        guard bound == 0, chmod(path, 0o666) == 0, Glibc.listen(fd, 64) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw SessionError("xokd: cannot listen on \(path): \(why)")
        }
        return fd
    }

    static func unixAddress(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw SessionError("xokd: socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return address
    }

    /// Serves until `stop` is called, then waits for the environments' threads to notice,
    /// writes everything back and shuts the kernel down.
    public func run() throws {
        while !stopping.isSet {
            var ready = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 100) > 0 else { continue }
            let client = xok_accept(listener)
            guard client >= 0 else { continue }
            clients.add(1)
            let thread = Thread { [self] in
                serveClient(client)
                close(client)
                clients.add(-1)
            }
            thread.start()
        }
        while clients.value > 0 { usleep(10_000) }
        try lock.withLock {
            do { _ = try kernel.shutdown() } catch { throw SessionError("xokd: cannot write the disk back: \(error)") }
        }
        unlink(socketPath)
    }

    /// Asks `run` to end (from a signal handler's flag or another thread).
    public func stop() { stopping.set() }

    /// One client, from handshake to death.
    func serveClient(_ client: Int32) {
        var uid: UInt32 = 0, gid: UInt32 = 0, pid: Int32 = 0
        guard xok_peer_credentials(client, &uid, &gid, &pid) == 0 else { return }
        // A client that says nothing is dropped after `helloSeconds`, not waited for forever.
        var patience = timeval(tv_sec: Self.helloSeconds, tv_usec: 0)
        guard setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &patience, socklen_t(MemoryLayout<timeval>.size)) == 0 else { return }
        var greeting = [UInt8](repeating: 0, count: 64)
        guard recv(client, &greeting, greeting.count, 0) == Self.hello.count, Array(greeting.prefix(Self.hello.count)) == Self.hello else { return }
        let made: (port: LocalPort<LinuxHost>, identity: CFFSIdentity)
        let channel: CallChannel
        do {
            made = try lock.withLock { () throws -> (port: LocalPort<LinuxHost>, identity: CFFSIdentity) in
                try ExOSEnvironment.make(kernel, uid: uid, gid: gid, quota: ExOSEnvironment.share(of: kernel, parts: parts))
            }
            channel = try CallChannel.create()
        } catch {
            return
        }
        let environment = made.port.environment
        defer { reclaim(environment) }
        let welcome = Welcome(environment: environment, uid: uid, gid: gid)
        let fds = [channel.fd, host.exposedMemory.fd]
        guard welcome.encoded.withUnsafeBytes({ xok_send_with_fds(client, $0.baseAddress, UInt($0.count), fds, 2) }) == Welcome.bytes else { return }
        try? serve(channel, handle: { (request) throws(KernelError) -> KernelReply in
            lock.lock()
            defer { lock.unlock() }
            return try kernel.handle(request, from: environment)
        }, while: { !stopping.isSet && Self.connected(client) })
    }

    /// Whether the other end still has the connection open.
    static func connected(_ client: Int32) -> Bool {
        var state = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
        guard poll(&state, 1, 0) >= 0 else { return false }
        if state.revents & Int16(POLLHUP | POLLERR) != 0 { return false }
        if state.revents & Int16(POLLIN) != 0 {
            var byte: UInt8 = 0
            return recv(client, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) > 0
        }
        return true
    }

    /// Ends a dead environment and writes back every dirty block it handed to XN.
    func reclaim(_ environment: EnvironmentID) {
        lock.withLock {
            do { try kernel.killWritingBack(environment) } catch {
                FileHandle.standardError.write(Data("xokd: environment \(environment.rawValue) died; writing back what it left failed: \(error); it stays cached for the next writeback\n".utf8))
            }
        }
    }

    /// What the daemon tells a new environment, beside its two descriptors.
    public struct Welcome: Equatable, Sendable {
        public var environment: EnvironmentID
        public var uid: UInt32
        public var gid: UInt32
        static let bytes = 16

        var encoded: [UInt8] {
            var w = [UInt8]()
            for v in [Xokd.welcomeMagic, environment.rawValue, uid, gid] { withUnsafeBytes(of: v.littleEndian) { w += $0 } }
            return w
        }

        init(environment: EnvironmentID, uid: UInt32, gid: UInt32) {
            self.environment = environment
            self.uid = uid
            self.gid = gid
        }

        init?(decoding bytes: [UInt8]) {
            guard bytes.count == Self.bytes else { return nil }
            func u32(_ i: Int) -> UInt32 { UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24 }
            guard u32(0) == Xokd.welcomeMagic else { return nil }
            self.init(environment: EnvironmentID(rawValue: u32(4)), uid: u32(8), gid: u32(12))
        }
    }

    // MARK: The client's side

    /// An ExOS process's connection to a running daemon: its port and C-FFS identity. The
    /// connection stays open as long as this lives; the daemon ends the environment when
    /// it closes.
    public final class Connection {
        public let port: ChannelPort
        public let identity: CFFSIdentity
        public let welcome: Welcome
        private let socket: Int32

        init(port: ChannelPort, identity: CFFSIdentity, welcome: Welcome, socket: Int32) {
            self.port = port
            self.identity = identity
            self.welcome = welcome
            self.socket = socket
        }

        deinit { close(socket) }
    }

    /// Connects to the daemon listening on `socket`.
    public static func connect(_ path: String) throws -> Connection {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SessionError("xokd: socket: \(String(cString: strerror(errno)))") }
        var address = try unixAddress(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw SessionError("xokd: cannot connect to \(path): \(why)")
        }
        guard send(fd, hello, hello.count, Int32(MSG_NOSIGNAL)) == hello.count else {
            close(fd)
            throw SessionError("xokd: the daemon at \(path) hung up")
        }
        var reply = [UInt8](repeating: 0, count: 64)
        var fds: [Int32] = [-1, -1]
        var count: Int32 = 0
        let n = xok_receive_with_fds(fd, &reply, UInt(reply.count), &fds, 2, &count)
        guard n == Welcome.bytes, count == 2, let welcome = Welcome(decoding: Array(reply.prefix(Welcome.bytes))) else {
            for f in fds.prefix(Int(max(0, count))) { close(f) }
            close(fd)
            throw SessionError("xokd: the daemon at \(path) sent no welcome")
        }
        do {
            let port = ChannelPort(environment: welcome.environment, channel: try CallChannel.attach(fd: fds[0]),
                                   exposed: try MappedExposedState(fd: fds[1]))
            let identity = try CFFSIdentity(uid: welcome.uid, gid: welcome.gid, userSlot: ExOSSlot.user,
                                            groupSlots: [welcome.gid: CapabilitySlot(ExOSSlot.firstGroup)],
                                            mountSlot: ExOSSlot.mount, frameSlot: ExOSSlot.frames)
            return Connection(port: port, identity: identity, welcome: welcome, socket: fd)
        } catch {
            close(fd)
            throw SessionError("xokd: \(error)")
        }
    }

    /// ExOS for a connection: C-FFS mounted through its port.
    public static func exos(_ connection: Connection) throws -> ExOS<ChannelPort> {
        ExOS(fs: try CFFS.mount(port: connection.port, identity: connection.identity, name: "cffs", now: ExOSSession.now))
    }
}

/// A flag set once, read from any thread.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

/// A count shared between threads.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add(_ n: Int) { lock.withLock { count += n } }
    var value: Int { lock.withLock { count } }
}
