// A kernel on the simulated host with a fresh XN disk and C-FFS formatted on it; ExOS
// processes for any user, each in its own environment reaching the kernel through its
// own port.

import CFFS
import ExOS
import Testing
import XN
import Xok
import XokABI
import XokSimulation

typealias Process = ExOS<LocalPort<SimulatedHost>>

final class Machine {
    var kernel: Kernel<SimulatedHost>
    /// The superuser's process, which formatted the disk.
    var root: Process
    let frames: Int
    /// A clock that moves a microsecond each time it is read.
    var time: Int64 = 1_700_000_000_000_000_000

    init(blocks: UInt64 = 8192, frames: Int = 4096, seed: UInt64 = 1) throws {
        self.frames = frames
        kernel = Kernel(host: SimulatedHost(frameCount: frames))
        try kernel.mountDisk(SimulatedDisk(blockCount: blocks, seed: seed), format: true)
        root = try Process(fs: CFFS.format(port: ExOSEnvironment.make(kernel, uid: 0, gid: 0, quota: ExOSEnvironment.share(of: kernel, parts: 4),
                                                                        admin: true).port,
                                             identity: CFFSIdentity(uid: 0, gid: 0, userSlot: ExOSSlot.user, groupSlots: [0: CapabilitySlot(ExOSSlot.firstGroup)],
                                                                    mountSlot: ExOSSlot.mount, frameSlot: ExOSSlot.frames),
                                             types: ExOSSlot.types, roots: ExOSSlot.roots, mountCapability: ExOSSlot.mount, now: { 0 }))
        let clock = Clock()
        root.fs.now = clock.tick
    }

    /// A process of `uid` in `gid` (and `groups`).
    func process(uid: UInt32, gid: UInt32, groups: [UInt32] = []) throws -> Process {
        let clock = Clock()
        return try ExOSEnvironment.mount(kernel, uid: uid, gid: gid, groups: groups, quota: ExOSEnvironment.share(of: kernel, parts: 4),
                                         now: clock.tick)
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

extension Process {
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
