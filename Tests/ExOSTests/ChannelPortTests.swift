// ExOS and C-FFS unchanged on a `ChannelPort`: the kernel, booted on the Linux host with an
// image file, answers one environment's calls over a call channel on its own thread, and
// the environment reads the exposed state from the sealed pages mapped read-only and its
// frames by `frameLoad`/`frameStore`, as it will from its own process under xokd.
// Afterwards the image passes XN's and C-FFS's fsck.

import CFFS
import ExOS
import Foundation
import Testing
import TreeFS
import XN
import Xok
import XokABI
import XokHostLinux
import XokSimulation

@Suite struct ChannelPorts {
    @Test func exosWorksUnchangedOverACallChannel() throws {
        let image = FileManager.default.temporaryDirectory.appendingPathComponent("xok-channel-\(UUID().uuidString).img").path
        defer { try? FileManager.default.removeItem(atPath: image) }
        let host = try LinuxHost(frameCount: 4096)
        let kernel = Kernel(host: host)
        try kernel.mountDisk(try FileBlockDevice.create(path: image, blocks: 8192), format: true)
        let admin = try ExOSEnvironment.format(kernel, quota: ExOSEnvironment.share(of: kernel, parts: 4), mode: 0o777, now: { 1 })
        try admin.sync()
        let (local, identity) = try ExOSEnvironment.make(kernel, uid: 1000, gid: 1000, quota: ExOSEnvironment.share(of: kernel, parts: 2))

        // The kernel's side, on a thread of its own; from here on only it touches the kernel.
        nonisolated(unsafe) let channel = try CallChannel.create()
        nonisolated(unsafe) let served = kernel
        let stop = StopFlag(), environment = local.environment
        let server = Thread {
            do { try serve(channel, kernel: served, environment: environment) { !stop.isSet } } catch { stop.failed = true }
            stop.done = true
        }
        server.start()

        // The environment's side.
        let port = ChannelPort(environment: environment, channel: try CallChannel.attach(fd: dup(channel.fd)),
                               exposed: try MappedExposedState(fd: dup(host.exposedMemory.fd)))
        var clock: Int64 = 1_700_000_000_000_000_000
        let os = ExOS(fs: try CFFS.mount(port: port, identity: identity, name: "cffs", now: { clock += 1000; return clock }))
        try os.mkdir("/home")
        try os.mkdir("/home/ann")
        var contents: [String: [UInt8]] = [:]
        for i in 0..<40 {
            let bytes = (0..<(i * 1531 % 70_000)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) }
            let fd = try os.open("/home/ann/f\(i)", [.writeOnly, .create, .truncate], mode: 0o640)
            _ = try os.write(fd, bytes)
            try os.close(fd)
            contents["f\(i)"] = bytes
        }
        try os.rename("/home/ann/f0", "/home/ann/renamed")
        contents["renamed"] = contents.removeValue(forKey: "f0")
        try os.unlink("/home/ann/f1")
        contents["f1"] = nil
        try os.symlink("f2", "/home/ann/link")
        #expect(try os.readlink("/home/ann/link") == "f2")
        #expect(Set(try os.list("/home/ann")) == Set(contents.keys).union(["link"]))
        for (name, bytes) in contents {
            let fd = try os.open("/home/ann/" + name, .readOnly)
            #expect(try os.read(fd, count: 100_000) == bytes, "\(name)")
            try os.close(fd)
            #expect(try os.stat("/home/ann/" + name).size == UInt64(bytes.count))
        }
        #expect(try os.stat("/home/ann/f3").uid == 1000)
        // The exposed state seen through the mapping agrees with what the calls did.
        #expect(port.exposedState().environmentCount >= 3)
        try os.sync()

        stop.set()
        while !stop.done { usleep(1000) }
        #expect(!stop.failed)
        _ = try kernel.shutdown()
        let device = try FileBlockDevice.open(path: image, readOnly: true)
        #expect(XNImage.check(device).violations == [])
        let superblock = try #require(admin.fs.superblock as BlockNumber?)
        let report = CFFSCheck.check(superblock: superblock) { block in try? device.read([block]).first }
        #expect(report.violations == [])
        #expect(report.files >= 39)
    }
}

extension ChannelPorts {
    /// Runs `body` with a `ChannelPort` for `environment`, whose calls `kernel` answers on
    /// a thread of its own until `body` returns.
    func withChannelPort(_ kernel: Kernel<LinuxHost>, _ environment: EnvironmentID, _ body: (ChannelPort) throws -> Void) throws {
        nonisolated(unsafe) let channel = try CallChannel.create()
        nonisolated(unsafe) let served = kernel
        let stop = StopFlag()
        let server = Thread {
            do { try serve(channel, kernel: served, environment: environment) { !stop.isSet } } catch { stop.failed = true }
            stop.done = true
        }
        server.start()
        defer {
            stop.set()
            while !stop.done { usleep(1000) }
            #expect(!stop.failed)
        }
        try body(ChannelPort(environment: environment, channel: try CallChannel.attach(fd: dup(channel.fd)),
                             exposed: try MappedExposedState(fd: dup(kernel.host.exposedMemory.fd))))
    }

    /// A channel port keeps whole pages between changes; its own store into a frame it
    /// alone holds leaves the kernel's count of frame changes where it was, so the page it
    /// keeps must take the stored bytes too, or its next load would read the old ones. And
    /// a page is kept at its second read since the last change, however the reads of
    /// other frames fall between.
    @Test func aPortsKeptPageFollowsItsOwnStores() throws {
        let kernel = Kernel(host: try LinuxHost(frameCount: 64))
        let environment = try LibraryEnvironment.make(kernel, ownerID: 1, quota: LibraryEnvironment.share(of: kernel)).environment
        try withChannelPort(kernel, environment) { port in
            let frame = try port.allocateFrame(credential: LibrarySlot.frames, acl: try AccessControlList([try Capability(name: [1], rights: .all)]))
            try port.map(frame, writable: true, credential: LibrarySlot.own)
            try port.store([UInt8](repeating: 7, count: KernelLimits.pageBytes), into: frame, offset: 0)
            let counted = port.exposedState().frameChanges
            // The second read of the frame with no change between keeps the whole page.
            #expect(try port.load(frame, offset: 0, count: 2) == [7, 7])
            #expect(try port.load(frame, offset: 100, count: 2) == [7, 7])
            for (offset, bytes) in [(100, [UInt8]([1, 2])), (0, [3]), (KernelLimits.pageBytes - 3, [4, 5, 6])] {
                try port.store(bytes, into: frame, offset: offset)
                #expect(try port.load(frame, offset: offset, count: bytes.count) == bytes)
            }
            #expect(port.exposedState().frameChanges == counted, "the stores were the caller's alone")
            #expect(try port.load(frame, offset: 0, count: 4) == [3, 7, 7, 7])
            // What the kernel holds agrees with the kept page.
            #expect(try kernel.host.memory.copy(of: frame) == port.load(frame, offset: 0, count: KernelLimits.pageBytes))

            // Reads that alternate between two frames, as writing a file alternates between
            // its inode and its indirect block: each page is kept at its second read, so two
            // hundred reads make four calls, not two hundred.
            let second = try port.allocateFrame(credential: LibrarySlot.frames, acl: try AccessControlList([try Capability(name: [1], rights: .all)]))
            try port.map(second, writable: false, credential: LibrarySlot.own)
            let calls = port.frameLoadCalls
            for i in 0..<100 {
                #expect(try port.load(frame, offset: i, count: 1) == [i == 0 ? 3 : 7])
                #expect(try port.load(second, offset: i, count: 1) == [0])
            }
            #expect(port.frameLoadCalls - calls <= 4)
        }
    }

    /// Calls that change frames for their caller alone (unmapping its own, freeing one it
    /// alone holds, allocating) leave the kernel's count of frame changes where it was, so
    /// the port must drop the pages it kept of the frames they name: a frame unmapped must
    /// not load from a kept page, and one freed and allocated again must read as zeros.
    @Test func aPortDropsThePagesItsOwnCallsChanged() throws {
        let kernel = Kernel(host: try LinuxHost(frameCount: 64))
        let environment = try LibraryEnvironment.make(kernel, ownerID: 1, quota: LibraryEnvironment.share(of: kernel)).environment
        try withChannelPort(kernel, environment) { port in
            let acl = try AccessControlList([try Capability(name: [1], rights: .all)])
            let frame = try port.allocateFrame(credential: LibrarySlot.frames, acl: acl)
            try port.map(frame, writable: true, credential: LibrarySlot.own)
            try port.store([UInt8](repeating: 7, count: KernelLimits.pageBytes), into: frame, offset: 0)
            for _ in 0..<2 { #expect(try port.load(frame, offset: 0, count: 2) == [7, 7]) }
            let counted = port.exposedState().frameChanges

            try port.unmap(frame)
            #expect(throws: KernelError.notMapped) { try port.load(frame, offset: 0, count: 2) }
            try port.map(frame, writable: true, credential: LibrarySlot.own)
            for _ in 0..<2 { #expect(try port.load(frame, offset: 0, count: 2) == [7, 7]) }

            // Freed while bound, then allocated again (the free list gives it back first).
            try port.free(frame, credential: LibrarySlot.own)
            let again = try port.allocateFrame(credential: LibrarySlot.frames, acl: acl)
            try #require(again == frame)
            try port.map(again, writable: false, credential: LibrarySlot.own)
            #expect(try port.load(again, offset: 0, count: 2) == [0, 0])
            #expect(port.exposedState().frameChanges == counted, "every call was the caller's alone")
        }
    }

    /// XN reading a block into a frame its caller gives changes the frame's bytes without
    /// moving the count (no one else may hold such a frame), so the port must drop a page
    /// it kept of the frame: the block's bytes must show, not what the frame held before.
    @Test func aFrameGivenToTheCacheIsLoadedAfresh() throws {
        let image = FileManager.default.temporaryDirectory.appendingPathComponent("xok-given-\(UUID().uuidString).img").path
        defer { try? FileManager.default.removeItem(atPath: image) }
        let kernel = Kernel(host: try LinuxHost(frameCount: 256))
        try kernel.mountDisk(try FileBlockDevice.create(path: image, blocks: 1024), format: true)
        let format = TreeFormat(name: "tree", ownerOffset: 0)
        let local = try LibraryEnvironment.treeClient(kernel, ownerID: 1, format: format)
        try withChannelPort(kernel, local.port.environment) { port in
            let client = TreeClient(port: port, ownerID: 1, format: format, type: local.type, slots: LibrarySlot.tree)
            // A root on disk and out of the cache.
            let root = try client.createRoot(name: "given")
            try port.writeback([root])
            guard case .done = try port.perform(.xnEvict(credential: LibrarySlot.own, root)) else { throw KernelError.badRequest }

            let frame = try client.newFrame()
            try port.map(frame, writable: true, credential: LibrarySlot.own)
            try port.store([UInt8](repeating: 0xAA, count: KernelLimits.pageBytes), into: frame, offset: 0)
            for _ in 0..<2 { #expect(try port.load(frame, offset: 0, count: 8) == [UInt8](repeating: 0xAA, count: 8)) }
            let counted = port.exposedState().frameChanges
            #expect(try port.readIn(root, frame: frame, credential: LibrarySlot.own) == frame)
            #expect(try port.map(root, writable: false, credential: LibrarySlot.own) == frame)
            let head = try port.load(frame, offset: 0, count: 8), page = try port.load(frame, offset: 0, count: KernelLimits.pageBytes)
            #expect(head == client.stamp.bytes)
            #expect(page == kernel.host.memory.copy(of: frame))
            #expect(port.exposedState().frameChanges == counted, "the frame was the caller's alone")
        }
    }
}

/// Flags the server thread and the test share.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private var _done = false, _failed = false
    func set() { lock.withLock { stopped = true } }
    var isSet: Bool { lock.withLock { stopped } }
    var done: Bool {
        get { lock.withLock { _done } }
        set { lock.withLock { _done = newValue } }
    }
    var failed: Bool {
        get { lock.withLock { _failed } }
        set { lock.withLock { _failed = newValue } }
    }
}
