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
    /// A new memfd of `bytes` bytes (closed on exec), mapped shared. With `sealed`, its
    /// size is sealed: a memfd handed to another process must be, or that process could
    /// truncate it under this one, whose next touch would fault.
    static func create(named name: String, bytes: Int, sealed: Bool = false) throws(DeviceError) -> (fd: Int32, base: UnsafeMutableRawPointer) {
        let fd = sealed ? xok_memfd_create_sealable(name) : xok_memfd_create(name)
        guard fd >= 0 else { throw DeviceError("memfd_create: \(String(cString: strerror(errno)))") }
        guard ftruncate(fd, off_t(bytes)) == 0, !sealed || xok_seal_size(fd) == 0 else {
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

/// The exposed state's pages on Linux: a sealed memfd that other processes may map, only
/// for reading, followed in the kernel's address space by private scratch memory.
public final class ExposedMemory {
    /// The memfd of the shared part, sealed so that no holder can write it; -1 when Linux
    /// refused and the pages are ordinary memory.
    public private(set) var fd: Int32 = -1
    /// Bytes of the shared part.
    public private(set) var sharedBytes = 0
    private var reservation: (base: UnsafeMutableRawPointer, bytes: Int)?

    public init() {}

    deinit {
        if let reservation { munmap(reservation.base, reservation.bytes) }
        if fd >= 0 { close(fd) }
    }

    /// Reserves `shared + scratch` bytes of address space, puts the memfd's pages at its
    /// start and private pages after them; nil when Linux refuses any step.
    public func make(shared: Int, scratch: Int) -> UnsafeMutableRawBufferPointer? {
        guard reservation == nil, shared > 0, shared % KernelLimits.pageBytes == 0 else { return nil }
        let scratchPages = (scratch + KernelLimits.pageBytes - 1) / KernelLimits.pageBytes * KernelLimits.pageBytes
        let fd = xok_memfd_create_sealable("xok-exposed-state")
        guard fd >= 0 else { return nil }
        guard ftruncate(fd, off_t(shared)) == 0,
              let base = mmap(nil, shared + scratchPages, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), base != MAP_FAILED else {
            close(fd)
            return nil
        }
        guard mmap(base, shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == base,
              scratchPages == 0 || mmap(base + shared, scratchPages, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == base + shared,
              xok_seal_for_readers(fd) == 0 else {
            munmap(base, shared + scratchPages)
            close(fd)
            return nil
        }
        self.fd = fd
        sharedBytes = shared
        reservation = (base, shared + scratchPages)
        return UnsafeMutableRawBufferPointer(start: base, count: shared + scratch)
    }

    func owns(_ pages: UnsafeMutableRawBufferPointer) -> Bool { pages.baseAddress != nil && pages.baseAddress == reservation?.base }
}

/// The Linux machine under the kernel.
public final class LinuxHost: Host {
    public typealias Disk = FileBlockDevice
    public let memory: LinuxMemory
    public var frameCount: Int { memory.frameCount }
    /// The exposed state's pages, once the kernel has asked for them.
    public let exposedMemory = ExposedMemory()

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

    /// In a sealed memfd (`exposedMemory.fd`), so that `xokd` can map them read-only into
    /// environments' processes; ordinary memory if Linux refuses.
    public func exposedPages(shared: Int, scratch: Int) -> UnsafeMutableRawBufferPointer {
        if let pages = exposedMemory.make(shared: shared, scratch: scratch) { return pages }
        let pages = UnsafeMutableRawBufferPointer.allocate(byteCount: shared + scratch, alignment: 64)
        pages.initializeMemory(as: UInt8.self, repeating: 0)
        return pages
    }

    public func releaseExposedPages(_ pages: UnsafeMutableRawBufferPointer) {
        if !exposedMemory.owns(pages) { pages.deallocate() }
    }

    // One process: the kernel's table of bindings is the protection there is.
    public func bind(_ frame: FrameNumber, to environment: EnvironmentID, writable: Bool) {}
    public func unbind(_ frame: FrameNumber, from environment: EnvironmentID) {}
}
