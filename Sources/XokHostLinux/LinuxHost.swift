// The Linux host for one trusted application (DESIGN.md §2, §7): frames are real pages of
// a memfd mapped into this process, the clock is CLOCK_MONOTONIC, and the disk is an image
// file or a block device. Every environment shares this process, so a binding is the
// kernel's record alone; separate processes with their own mappings (real protection)
// come with `xokd`.

import CLinux
#if canImport(Glibc)
import Glibc
#endif
import XN
import Xok
import XokABI

/// Physical memory: one memfd of `frameCount` pages, mapped shared.
public final class LinuxMemory: FrameMemory {
    public let frameCount: Int
    /// The memfd: the pages are the file's, so a later `xokd` can hand them to other
    /// processes.
    public let fd: Int32
    private let base: UnsafeMutableRawPointer
    /// Which 2 MiB chunks of the memfd have their pages faulted in. The first use of a
    /// chunk faults in all 512 of its pages with one `madvise`: a page fault for each
    /// page was a tenth of the time spent writing new files.
    private var populated: [Bool]
    static let chunkFrames = 512

    /// - Throws: `DeviceError` when Linux refuses the memfd or the mapping.
    public init(frameCount: Int) throws(DeviceError) {
        let bytes = max(1, frameCount) * KernelLimits.pageBytes
        let (fd, base) = try SharedMemory.create(named: "xok-frames", bytes: bytes)
        self.frameCount = frameCount
        self.fd = fd
        self.base = base
        populated = [Bool](repeating: false, count: (max(1, frameCount) + Self.chunkFrames - 1) / Self.chunkFrames)
    }

    deinit {
        munmap(base, max(1, frameCount) * KernelLimits.pageBytes)
        close(fd)
    }

    public func bytes(of frame: FrameNumber) -> UnsafeMutableRawBufferPointer {
        let chunk = Int(frame.rawValue) / Self.chunkFrames
        if chunk < populated.count, !populated[chunk] { populate(chunk) }
        return UnsafeMutableRawBufferPointer(start: base + Int(frame.rawValue) * KernelLimits.pageBytes, count: KernelLimits.pageBytes)
    }

    /// Faults in a chunk's pages ahead of use (MADV_POPULATE_WRITE, Linux 5.14). Where
    /// Linux has no such advice the pages fault one by one, as before: nothing else changes.
    private func populate(_ chunk: Int) {
        populated[chunk] = true
        let first = chunk * Self.chunkFrames
        let frames = min(Self.chunkFrames, frameCount - first)
        guard frames > 0 else { return }
        _ = madvise(base + first * KernelLimits.pageBytes, frames * KernelLimits.pageBytes, Self.populateWrite)
    }

    static let populateWrite: Int32 = 23   // MADV_POPULATE_WRITE

    /// A sensible default for the frames of a machine: an eighth of its physical memory,
    /// at least 4,096 frames and at most 1 Mi (4 GiB).
    public static var defaultFrameCount: Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, pageSize > 0 else { return 65_536 }
        let frames = pages * pageSize / KernelLimits.pageBytes / 8
        return min(1 << 20, max(4096, frames))
    }
}

/// Memory to share with other processes: a memfd, sized and mapped.
enum SharedMemory {
    /// A new memfd of `bytes` bytes (closed on exec), mapped shared.
    static func create(named name: String, bytes: Int) throws(DeviceError) -> (fd: Int32, base: UnsafeMutableRawPointer) {
        let fd = xok_memfd_create(name)
        guard fd >= 0 else { throw DeviceError("memfd_create: \(String(cString: strerror(errno)))") }
        guard ftruncate(fd, off_t(bytes)) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw DeviceError("cannot size the memfd \(name) to \(bytes) bytes: \(why)")
        }
        return (fd, try map(fd, bytes: bytes))
    }

    /// Maps `bytes` bytes of `fd` shared, closing `fd` when it cannot.
    static func map(_ fd: Int32, bytes: Int) throws(DeviceError) -> UnsafeMutableRawPointer {
        guard let base = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), base != MAP_FAILED else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw DeviceError("cannot map \(bytes) bytes of shared memory: \(why)")
        }
        return base
    }
}

/// The Linux machine under the kernel.
public struct LinuxHost: Host {
    public typealias Disk = FileBlockDevice
    public let memory: LinuxMemory
    public var frameCount: Int { memory.frameCount }

    /// - Throws: `DeviceError` when the frames cannot be had.
    public init(frameCount: Int = LinuxMemory.defaultFrameCount) throws(DeviceError) {
        memory = try LinuxMemory(frameCount: frameCount)
    }

    /// Microseconds of CLOCK_MONOTONIC.
    public var ticks: UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }

    // One process: the kernel's table of bindings is the protection there is.
    public mutating func bind(_ frame: FrameNumber, to environment: EnvironmentID, writable: Bool) {}
    public mutating func unbind(_ frame: FrameNumber, from environment: EnvironmentID) {}
}
