// Booting the kernel on the Linux host with a disk image, and an ExOS process for the
// shell: what `xok` does before its first prompt. A missing image is created (sparse)
// and formatted; an XN image without C-FFS gets one.

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

public final class ExOSSession {
    public let kernel: Kernel<LinuxHost>
    public let os: ExOS<LocalPort<LinuxHost>>
    public let image: String

    /// Blocks of a new image: 4 GiB, sparse, so a fresh clone's image takes only what is
    /// written to it.
    public static let defaultBlocks: UInt64 = 1 << 20

    /// Boots on `image`, creating and formatting it when absent (and saying so through
    /// `say`), and starts a process acting as `uid`/`gid`.
    public init(image: String, uid: UInt32, gid: UInt32, blocks: UInt64 = ExOSSession.defaultBlocks, frames: Int? = nil,
                say: (String) -> Void) throws {
        self.image = image
        let exists = access(image, F_OK) == 0
        let device = exists ? try FileBlockDevice.open(path: image) : try FileBlockDevice.create(path: image, blocks: blocks)
        kernel = Kernel(host: try LinuxHost(frameCount: frames ?? LinuxMemory.defaultFrameCount))
        do { try kernel.mountDisk(device, format: !exists) } catch {
            throw SessionError("\(image): \(error)")
        }
        if !exists {
            say("xok: created \(image) (\((blocks * 4096) >> 30) GiB sparse image) and laid out an XN disk on it")
        }
        let now = { Self.now() }
        let hasCFFS = (try? LocalPort(kernel: kernel, environment: kernel.initEnvironment).root(named: "cffs")) != nil
        if !hasCFFS {
            let admin = try ExOSEnvironment.format(kernel, quota: ExOSEnvironment.share(of: kernel, parts: 16), now: now)
            if uid != 0 || gid != 0 { try admin.chown("/", uid: uid, gid: gid) }
            try admin.sync()
            say("xok: formatted C-FFS on \(image)")
        }
        do {
            os = try ExOSEnvironment.mount(kernel, uid: uid, gid: gid, quota: ExOSEnvironment.share(of: kernel, parts: 2), now: now)
        } catch let error as Errno {
            throw SessionError("\(image): cannot mount C-FFS: \(error)")
        }
    }

    /// Writes everything back and shuts the kernel down, leaving the image clean.
    public func close() throws {
        try os.sync()
        _ = try kernel.shutdown()
    }

    /// The wall clock, in nanoseconds since the epoch.
    public static func now() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }
}

public struct SessionError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
