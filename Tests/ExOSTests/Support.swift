// A kernel on the simulated host with a fresh XN disk and C-FFS formatted on it; ExOS
// processes for any user, each in its own environment reaching the kernel through its
// own port. Every suite that applies runs in both of the ways a library OS reaches the
// kernel: in its process (`LocalPort`), and as under xokd, over a call channel served on
// a thread of the kernel's side with the exposed state read from sealed pages mapped
// read-only (`ChannelPort`). The handshake over xokd's socket is tested with real
// processes in XNTests/XokdProcessTests.

import CFFS
import ExOS
import Foundation
import Testing
import XN
import Xok
import XokABI
import XokHostLinux
import XokSimulation

typealias Process = ExOS<TestPort>

/// How a test's library operating systems reach the kernel.
enum Mode: String, CaseIterable, CustomTestStringConvertible {
    case inProcess, xokd
    var testDescription: String { rawValue }
}

/// The simulated host with its exposed state in a sealed memfd, as on Linux, so that a
/// `ChannelPort` can map it.
final class SharedHost: Xok.Host {
    typealias Disk = SimulatedDisk
    let base: SimulatedHost
    let exposed = ExposedMemory()

    init(frameCount: Int) { base = SimulatedHost(frameCount: frameCount) }

    var ticks: UInt64 { base.ticks }
    var frameCount: Int { base.frameCount }
    var memory: SimulatedMemory { base.memory }
    func bind(_ frame: FrameNumber, to environment: EnvironmentID, writable: Bool) { base.bind(frame, to: environment, writable: writable) }
    func unbind(_ frame: FrameNumber, from environment: EnvironmentID) { base.unbind(frame, from: environment) }

    func exposedPages(shared: Int, scratch: Int) -> UnsafeMutableRawBufferPointer {
        guard let pages = exposed.make(shared: shared, scratch: scratch) else { fatalError("test host: no sealed memfd for the exposed state") }
        return pages
    }

    func releaseExposedPages(_ pages: UnsafeMutableRawBufferPointer) {}
}

/// Either port, so one test body serves both modes.
final class TestPort: KernelPort {
    let inner: any KernelPort
    init(_ inner: any KernelPort) { self.inner = inner }
    var environment: EnvironmentID { inner.environment }
    func perform(_ request: KernelRequest) throws(KernelError) -> KernelReply { try inner.perform(request) }
    func exposedState() -> ExposedState { inner.exposedState() }
    func registryEntry(of block: BlockNumber) -> ExposedState.RegistryEntry? { inner.registryEntry(of: block) }
    func load(_ frame: FrameNumber, offset: Int, count: Int) throws(KernelError) -> [UInt8] { try inner.load(frame, offset: offset, count: count) }
    func store(_ bytes: [UInt8], into frame: FrameNumber, offset: Int) throws(KernelError) { try inner.store(bytes, into: frame, offset: offset) }
}

final class Machine {
    let mode: Mode
    var kernel: Kernel<SharedHost>
    /// The superuser's process, which formatted the disk.
    var root: Process
    let frames: Int
    /// Set when the machine goes: the channels' serving threads end.
    private let stopped = StopFlag()

    init(_ mode: Mode = .inProcess, blocks: UInt64 = 8192, frames: Int = 4096, seed: UInt64 = 1) throws {
        self.mode = mode
        self.frames = frames
        kernel = Kernel(host: SharedHost(frameCount: frames))
        try kernel.mountDisk(SimulatedDisk(blockCount: blocks, seed: seed), format: true)
        let (local, identity) = try ExOSEnvironment.make(kernel, uid: 0, gid: 0, quota: ExOSEnvironment.share(of: kernel, parts: 4), admin: true)
        root = try Process(fs: CFFS.format(port: try Self.connect(local, mode: mode, kernel: kernel, until: stopped), identity: identity, types: ExOSSlot.types, roots: ExOSSlot.roots,
                                           mountCapability: ExOSSlot.mount, now: Clock().tick))
    }

    deinit { stopped.set() }

    /// A process of `uid` in `gid` (and `groups`).
    func process(uid: UInt32, gid: UInt32, groups: [UInt32] = []) throws -> Process {
        let (local, identity) = try ExOSEnvironment.make(kernel, uid: uid, gid: gid, groups: groups, quota: ExOSEnvironment.share(of: kernel, parts: 4))
        return Process(fs: try CFFS.mount(port: try Self.connect(local, mode: mode, kernel: kernel, until: stopped), identity: identity, name: "cffs", now: Clock().tick))
    }

    /// The environment's port in this machine's mode: in xokd's, a channel served by a
    /// thread of its own, which is the only code that touches the kernel for it.
    private static func connect(_ local: LocalPort<SharedHost>, mode: Mode, kernel: Kernel<SharedHost>, until stopped: StopFlag) throws -> TestPort {
        guard mode == .xokd else { return TestPort(local) }
        nonisolated(unsafe) let channel = try CallChannel.create()
        nonisolated(unsafe) let kernel = kernel
        let environment = local.environment
        Thread {
            try? serve(channel, kernel: kernel, environment: environment) { !stopped.isSet }
        }.start()
        return TestPort(ChannelPort(environment: environment, channel: try CallChannel.attach(fd: dup(channel.fd)),
                                    exposed: try MappedExposedState(fd: dup(kernel.host.exposed.fd))))
    }

    var xn: XN<SimulatedDisk, SimulatedMemory> { kernel.xn! }

    /// A directory everyone may use (mode 0777, past root's umask), made by root.
    func shared(_ path: String) throws {
        try root.mkdir(path)
        try root.chmod(path, 0o777)
    }

    /// XN's fsck of the disk as it is now.
    var check: CheckReport { XNImage.check(xn.device) }

    /// C-FFS's fsck of the disk as it is now.
    var cffsCheck: CFFSCheckReport {
        var disk = xn.device
        return CFFSCheck.check(superblock: root.fs.superblock) { block in try? disk.read([block]).first }
    }
}

final class Clock: @unchecked Sendable {
    var now: Int64 = 1_700_000_000_000_000_000
    func tick() -> Int64 {
        now += 1000
        return now
    }
}

extension ExOS {
    /// Writes a whole file.
    func put(_ path: String, _ bytes: [UInt8], mode: UInt32 = 0o644) throws {
        let fd = try open(path, [.writeOnly, .create, .truncate], mode: mode)
        defer { try? close(fd) }
        var done = 0
        while done < bytes.count { done += try write(fd, Array(bytes[done..<min(bytes.count, done + 10_000)])) }
    }

    /// Reads a whole file.
    func get(_ path: String) throws -> [UInt8] {
        let fd = try open(path, .readOnly)
        defer { try? close(fd) }
        var result: [UInt8] = []
        while true {
            let chunk = try read(fd, count: 65_536)
            if chunk.isEmpty { return result }
            result += chunk
        }
    }
}

/// Bytes that differ from block to block, so a misplaced block shows.
func pattern(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / 4096 &+ Int(seed)) }
}
