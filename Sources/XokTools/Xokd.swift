// `xokd` (docs/xokd.md): the kernel as a daemon on a disk image, serving library
// operating systems that run in their own processes. A process connects to its Unix
// socket; the daemon takes the peer's uid and gid from Linux (SO_PEERCRED, not from
// anything the process says), makes it an ExOS environment acting as that user, and hands
// over two descriptors: its call channel and the exposed state's sealed pages. Each
// environment's calls are served on a thread of its own, one call at a time across the
// kernel. When the connection closes, however the process ended, the environment is
// killed (everything it held comes back) and the dirty blocks it handed to XN are
// written. Between calls the socket carries one more request, to spawn a child
// environment (`xok run`), which the child's own process then claims with a token.

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
    /// The greeting of a process that claims a child its parent spawned, followed by the
    /// token `spawn` gave the parent.
    public static let adoptionHello: [UInt8] = Array("XOKD0002".utf8)
    static let tokenBytes = 16
    /// The answers to a spawn request.
    static let spawned = Array("XOKT".utf8), refused = Array("XOKN".utf8)
    /// The slot of a daemon environment's right to create environments: after its one
    /// group's.
    public static let environmentsSlot = CapabilitySlot(ExOSSlot.firstGroup + 1)
    /// How long a new connection has to say hello.
    public static let helloSeconds = 2
    /// Connections served at once, each with a thread of its own; one more is closed at
    /// once, so a flood of connections cannot exhaust the daemon's threads.
    public static let clientsMax = 256
    /// Connections one user may have at once: a user cannot take every thread.
    public static let clientsPerUserMax = 32
    /// How long shutdown waits for the environments' threads before writing back.
    public static let shutdownSeconds = 5

    let kernel: Kernel<LinuxHost>
    let host: LinuxHost
    /// One call at a time across the kernel, whichever environment makes it.
    let lock = NSLock()
    let listener: Int32
    public let socketPath: String
    private let stopping = Flag()
    private let clients = Counter()
    /// Children made by `spawn` and not yet claimed, by token (under `lock`).
    private var adoptions: [[UInt8]: Adoption] = [:]
    /// Each user's environment, which holds the user's share of the machine and is the
    /// parent of every environment the user's connections make (under `lock`): one user's
    /// connections divide that user's share, never anyone else's.
    private var users: [UserKey: EnvironmentID] = [:]
    /// Connections each user has open (under `lock`).
    private var connections: [UInt32: Int] = [:]

    struct UserKey: Hashable {
        var uid: UInt32
        var gid: UInt32
    }

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

    /// Serves until `stop` is called, then refuses new connections and calls, lets the
    /// calls in flight finish (each ends its thread's serving at once), waits at most
    /// `shutdownSeconds` for the threads, writes everything back and shuts the kernel
    /// down. Every 100 ms it moves the kernel's clock-driven state (forced revocations
    /// past their deadline, predicates), as a timer interrupt would.
    public func run() throws {
        while !stopping.isSet {
            lock.withLock { kernel.advance() }
            var ready = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 100) > 0 else { continue }
            let client = xok_accept(listener)
            guard client >= 0 else { continue }
            guard clients.value < Self.clientsMax else {
                close(client)
                continue
            }
            clients.add(1)
            let thread = Thread { [self] in
                serveClient(client)
                close(client)
                clients.add(-1)
            }
            thread.start()
        }
        // Threads end after the call each is in; one stuck outside a call (a client that
        // never finished its greeting) is not waited for past the bound.
        let deadline = Date().addingTimeInterval(Double(Self.shutdownSeconds))
        while clients.value > 0, Date() < deadline { usleep(10_000) }
        try lock.withLock {
            do { _ = try kernel.shutdown() } catch { throw SessionError("xokd: cannot write the disk back: \(error)") }
        }
        unlink(socketPath)
    }

    /// Asks `run` to end (from a signal handler's flag or another thread).
    public func stop() { stopping.set() }

    /// One client, from handshake to death: a new environment for its user, or (with an
    /// adoption token) the child environment a parent made for it.
    func serveClient(_ client: Int32) {
        var uid: UInt32 = 0, gid: UInt32 = 0, pid: Int32 = 0
        guard xok_peer_credentials(client, &uid, &gid, &pid) == 0 else { return }
        // A client that says nothing is dropped after `helloSeconds`, not waited for forever.
        var patience = timeval(tv_sec: Self.helloSeconds, tv_usec: 0)
        guard setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &patience, socklen_t(MemoryLayout<timeval>.size)) == 0 else { return }
        var greeting = [UInt8](repeating: 0, count: 64)
        let said = recv(client, &greeting, greeting.count, 0)
        let environment: EnvironmentID
        if said == Self.hello.count, Array(greeting.prefix(Self.hello.count)) == Self.hello {
            let admitted = lock.withLock { () -> Bool in
                guard connections[uid, default: 0] < Self.clientsPerUserMax else { return false }
                connections[uid, default: 0] += 1
                return true
            }
            guard admitted else { return }
            defer { lock.withLock { connections[uid, default: 1] -= 1 } }
            do {
                environment = try lock.withLock { () throws(KernelError) -> EnvironmentID in
                    try connectionEnvironment(under: try userEnvironment(uid: uid, gid: gid), uid: uid)
                }
            } catch { return }
        } else if said == Self.adoptionHello.count + Self.tokenBytes, Array(greeting.prefix(Self.adoptionHello.count)) == Self.adoptionHello {
            // The token names a child some environment of this same user made; it is good once.
            let token = Array(greeting[Self.adoptionHello.count..<Self.adoptionHello.count + Self.tokenBytes])
            guard let adopted = lock.withLock({ () -> EnvironmentID? in
                guard let child = adoptions.removeValue(forKey: token), child.uid == uid, kernel.quota(of: child.environment) != nil else { return nil }
                (uid, gid) = (child.uid, child.gid)
                return child.environment
            }) else { return }
            environment = adopted
        } else {
            return
        }
        defer { reclaim(environment) }
        guard let channel = try? CallChannel.create() else { return }
        let welcome = Welcome(environment: environment, uid: uid, gid: gid)
        let fds = [channel.fd, host.exposedMemory.fd]
        guard welcome.encoded.withUnsafeBytes({ xok_send_with_fds(client, $0.baseAddress, UInt($0.count), fds, 2) }) == Welcome.bytes else { return }
        try? serve(channel, handle: { (request) throws(KernelError) -> KernelReply in
            lock.lock()
            defer { lock.unlock() }
            return try kernel.handle(request, from: environment)
        }, while: { !stopping.isSet && attend(client, environment, uid: uid, gid: gid) }, stopping: { stopping.isSet })
    }

    /// The environment that holds `uid`'s share (made at the user's first connection with
    /// 2/`parts` of what init has left, and room for `clientsPerUserMax` connections with
    /// their descendants). Called under `lock`.
    func userEnvironment(uid: UInt32, gid: UInt32) throws(KernelError) -> EnvironmentID {
        let key = UserKey(uid: uid, gid: gid)
        if let known = users[key], kernel.quota(of: known) != nil { return known }
        var quota = ExOSEnvironment.share(of: kernel, parts: max(1, parts / 2))
        if let (total, used) = kernel.quota(of: kernel.initEnvironment), let left = total.subtracting(used) {
            quota.environments = min(UInt32(Self.clientsPerUserMax) * (Self.childrenMax + 1), left.environments / UInt32(max(1, parts / 2)))
        }
        // Only the daemon (init) may end it: none of the user's own environments holds
        // this name, so no connection can take its siblings down with it.
        let made = try ExOSEnvironment.make(kernel, uid: uid, gid: gid, quota: quota, mayCreate: true,
                                            destroyableBy: [CFFSNames.tag, 9, UInt64(uid)]).port.environment
        users[key] = made
        return made
    }

    /// A connection's environment: a child of its user's, acting as the user (the same
    /// capabilities, slot for slot), with half of what the user's has left (a first
    /// connection gets 1/`parts` of the machine) and room for up to `childrenMax`
    /// descendants (`xok run`). Called under `lock`.
    func connectionEnvironment(under user: EnvironmentID, uid: UInt32) throws(KernelError) -> EnvironmentID {
        guard let (total, used) = kernel.quota(of: user), let left = total.subtracting(used) else { throw .noSuchEnvironment }
        let quota = Quota(environments: min(Self.childrenMax, left.environments > 0 ? left.environments - 1 : 0), frames: left.frames / 2, regions: left.regions / 2,
                          slices: left.slices / 2, messages: left.messages / 2, blocks: left.blocks / 2,
                          catalogueEntries: left.catalogueEntries / 2)
        let name = uid == 0 ? CFFSNames.superuser : CFFSNames.user(uid)
        let acl = try AccessControlList([try Capability(name: name, rights: .write)])
        let slots = (0...Int(Self.environmentsSlot.rawValue)).map { CapabilitySlot($0) }
        return try LocalPort(kernel: kernel, environment: user).createEnvironment(credential: Self.environmentsSlot, acl: acl, grants: slots, quota: quota)
    }

    /// Descendants one connecting process may have alive at once: with
    /// `clientsPerUserMax` connections, 160 of the machine's 1,024 environments for a
    /// user, so six users find their whole shares.
    public static let childrenMax: UInt32 = 4

    /// Looks at a client's socket between calls: false when it closed or sent something
    /// that is not a request to spawn a child (the connection then ends); a spawn request
    /// is answered.
    func attend(_ client: Int32, _ environment: EnvironmentID, uid: UInt32, gid: UInt32) -> Bool {
        var state = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
        guard poll(&state, 1, 0) >= 0 else { return false }
        if state.revents & Int16(POLLHUP | POLLERR) != 0 { return false }
        guard state.revents & Int16(POLLIN) != 0 else { return true }
        var message = [UInt8](repeating: 0, count: 256)
        let n = recv(client, &message, message.count, Int32(MSG_DONTWAIT))
        guard n > 0, let request = SpawnRequest(decoding: Array(message.prefix(n))) else { return false }
        let answer = spawn(request, for: environment, uid: uid, gid: gid)
        return answer.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == answer.count
    }

    /// Makes a child of `parent`, as `parent` (the kernel checks its credential and every
    /// grant), with half of what `parent` has left, and a token its process can claim
    /// it with. The answer is `spawned`, the child and the token, or an encoded error.
    func spawn(_ request: SpawnRequest, for parent: EnvironmentID, uid: UInt32, gid: UInt32) -> [UInt8] {
        lock.withLock {
            do throws(KernelError) {
                guard let (quota, used) = kernel.quota(of: parent), let unused = quota.subtracting(used) else { throw .noSuchEnvironment }
                let half = Quota(environments: unused.environments / 2, frames: unused.frames / 2, regions: unused.regions / 2,
                                 slices: unused.slices / 2, messages: unused.messages / 2, blocks: unused.blocks / 2,
                                 catalogueEntries: unused.catalogueEntries / 2)
                let user = uid == 0 ? CFFSNames.superuser : CFFSNames.user(uid)
                let acl = try AccessControlList([try Capability(name: user, rights: .write)])
                let child = try LocalPort(kernel: kernel, environment: parent)
                    .createEnvironment(credential: request.credential, acl: acl, grants: request.grants, quota: half)
                var token = [UInt8](repeating: 0, count: Self.tokenBytes)
                var random = SystemRandomNumberGenerator()
                for i in token.indices { token[i] = UInt8.random(in: 0...255, using: &random) }
                adoptions[token] = Adoption(environment: child, uid: uid, gid: gid)
                var answer = Self.spawned
                withUnsafeBytes(of: child.rawValue.littleEndian) { answer += $0 }
                return answer + token
            } catch {
                return Self.refused + KernelReply.encode(.failure(error))
            }
        }
    }

    /// A parent's request to spawn a child: the credential to create it with and the
    /// parent's slots to grant it, in the child's slot order.
    public struct SpawnRequest: Equatable, Sendable {
        public var credential: CapabilitySlot
        public var grants: [CapabilitySlot]
        static let magic = Array("XOKS".utf8)

        public init(credential: CapabilitySlot, grants: [CapabilitySlot]) {
            self.credential = credential
            self.grants = grants
        }

        var encoded: [UInt8] {
            var bytes = Self.magic
            for slot in [credential] + grants { withUnsafeBytes(of: slot.rawValue.littleEndian) { bytes += $0 } }
            return bytes
        }

        /// Nil unless it is the magic and a whole number of slots (at least the credential,
        /// at most `KernelLimits.capabilitySlots` grants).
        init?(decoding bytes: [UInt8]) {
            guard bytes.count >= 6, Array(bytes.prefix(4)) == Self.magic, (bytes.count - 4) % 2 == 0 else { return nil }
            let slots = stride(from: 4, to: bytes.count, by: 2).map { CapabilitySlot(rawValue: UInt16(bytes[$0]) | UInt16(bytes[$0 + 1]) << 8) }
            guard slots.count - 1 <= KernelLimits.capabilitySlots else { return nil }
            self.init(credential: slots[0], grants: Array(slots.dropFirst()))
        }
    }

    /// A child waiting for its process.
    struct Adoption {
        var environment: EnvironmentID
        var uid: UInt32
        var gid: UInt32
    }

    /// Ends a dead environment and writes back every dirty block it handed to XN.
    func reclaim(_ environment: EnvironmentID) {
        lock.withLock {
            defer { adoptions = adoptions.filter { kernel.quota(of: $0.value.environment) != nil } }
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
        /// The daemon's socket.
        public let path: String
        private let socket: Int32

        init(port: ChannelPort, identity: CFFSIdentity, welcome: Welcome, path: String, socket: Int32) {
            self.port = port
            self.identity = identity
            self.welcome = welcome
            self.path = path
            self.socket = socket
        }

        deinit { close(socket) }

        /// Has the daemon make a child of this environment, created with `credential` and
        /// given `grants` (this environment's slots, in the child's order) and half of what
        /// this one has left. Returns the child and the token its process connects with.
        public func spawnChild(credential: CapabilitySlot, grants: [CapabilitySlot]) throws -> (environment: EnvironmentID, token: [UInt8]) {
            let request = SpawnRequest(credential: credential, grants: grants).encoded
            guard request.withUnsafeBytes({ send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
                throw SessionError("xokd: the daemon hung up")
            }
            var patience = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &patience, socklen_t(MemoryLayout<timeval>.size))
            var answer = [UInt8](repeating: 0, count: 256)
            let n = recv(socket, &answer, answer.count, 0)
            guard n >= 4 else { throw SessionError("xokd: no answer to the spawn request") }
            let reply = Array(answer.prefix(n))
            if Array(reply.prefix(4)) == Xokd.refused {
                do { _ = try KernelReply(decoding: Array(reply.dropFirst(4))) } catch { throw SessionError("xokd: cannot spawn a child: \(error)") }
            }
            guard Array(reply.prefix(4)) == Xokd.spawned, n == 8 + Xokd.tokenBytes else { throw SessionError("xokd: a garbled answer to the spawn request") }
            let id = UInt32(reply[4]) | UInt32(reply[5]) << 8 | UInt32(reply[6]) << 16 | UInt32(reply[7]) << 24
            return (EnvironmentID(rawValue: id), Array(reply[8...]))
        }
    }

    /// Connects to the daemon listening on `socket`: a new environment for this process's
    /// user, or, with `token`, the child a parent spawned for this process.
    public static func connect(_ path: String, token: [UInt8]? = nil) throws -> Connection {
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
        let greeting = token.map { adoptionHello + $0 } ?? hello
        guard send(fd, greeting, greeting.count, Int32(MSG_NOSIGNAL)) == greeting.count else {
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
            throw SessionError(token == nil ? "xokd: the daemon at \(path) sent no welcome"
                                            : "xokd: the daemon at \(path) refused the token (claimed already, its parent gone, or another user's)")
        }
        do {
            let channel: CallChannel
            do { channel = try CallChannel.attach(fd: fds[0]) } catch {
                close(fds[1])
                throw error
            }
            // A daemon that dies mid-call closes the socket: the call then says so, and the
            // process ends with an error instead of waiting forever.
            channel.peerAlive = {
                var state = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&state, 1, 0) >= 0, state.revents & Int16(POLLHUP | POLLERR) == 0 else {
                    FileHandle.standardError.write(Data("xok: the daemon at \(path) is gone\n".utf8))
                    exit(3)
                }
                return true
            }
            let port = ChannelPort(environment: welcome.environment, channel: channel, exposed: try MappedExposedState(fd: fds[1]))
            let identity = try CFFSIdentity(uid: welcome.uid, gid: welcome.gid, userSlot: ExOSSlot.user,
                                            groupSlots: [welcome.gid: CapabilitySlot(ExOSSlot.firstGroup)],
                                            mountSlot: ExOSSlot.mount, frameSlot: ExOSSlot.frames)
            return Connection(port: port, identity: identity, welcome: welcome, path: path, socket: fd)
        } catch {
            close(fd)
            throw SessionError("xokd: \(error)")
        }
    }

    /// The environment a parent left this process (`xok run`): the daemon's socket and a
    /// token in XOK_DAEMON and XOK_TOKEN, taken out of the environment so that nothing
    /// this process starts tries the spent token. Nil when there is none.
    public static func inherited() throws -> Connection? {
        guard let path = ProcessInfo.processInfo.environment["XOK_DAEMON"], let text = ProcessInfo.processInfo.environment["XOK_TOKEN"] else { return nil }
        unsetenv("XOK_TOKEN")
        unsetenv("XOK_DAEMON")
        unsetenv("XOK_ENVIRONMENT")
        guard let token = try? Hex.bytes(text), token.count == tokenBytes else { throw SessionError("xokd: XOK_TOKEN is not a token") }
        return try connect(path, token: token)
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
