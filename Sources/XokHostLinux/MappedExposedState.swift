// The exposed kernel state as an environment in its own process reads it (DESIGN.md §3,
// docs/xokd.md): the kernel's sealed memfd mapped read-only. The kernel writes the pages
// while the environment reads them, so a whole copy is taken like a seqlock's reader:
// the generation before and after must be the same even number.

import CLinux
#if canImport(Glibc)
import Glibc
#endif
import XokABI

public final class MappedExposedState: ExposedBytes {
    private let base: UnsafeRawPointer
    /// Bytes mapped: the whole exposed state.
    public let count: Int

    /// Maps the exposed state the kernel's host handed over as `fd` (read-only; the
    /// descriptor is closed here, the mapping stays).
    public init(fd: Int32) throws(ChannelError) {
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_size >= off_t(ExposedState.headerBytes) else {
            throw ChannelError("descriptor \(fd) is not an exposed state")
        }
        let bytes = Int(status.st_size)
        guard let p = mmap(nil, bytes, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw ChannelError("cannot map the exposed state: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
        count = bytes
        guard u32(at: 0) == ExposedState.magic else {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
            throw ChannelError("descriptor \(fd) is not an exposed state")
        }
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), count) }

    // Single fields, read in place (each may be newer than the last).
    public func u8(at offset: Int) -> UInt8 { offset >= 0 && offset < count ? base.load(fromByteOffset: offset, as: UInt8.self) : 0 }
    public func u32(at offset: Int) -> UInt32 {
        guard offset >= 0, offset <= count - 4 else { return 0 }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    public func u64(at offset: Int) -> UInt64 {
        guard offset >= 0, offset <= count - 8 else { return 0 }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// The generation, read with acquire ordering.
    public var generation: UInt64 {
        UInt64(littleEndian: xok_load_acquire_u64((base + ExposedState.generationOffset).assumingMemoryBound(to: UInt64.self)))
    }

    /// The kernel's count of frame changes, read with acquire ordering.
    public var frameChanges: UInt64 {
        UInt64(littleEndian: xok_load_acquire_u64((base + ExposedState.frameChangesOffset).assumingMemoryBound(to: UInt64.self)))
    }

    /// What `read` makes of the pages, read again until the generation was the same even
    /// number before and after (the kernel finishes a publish in microseconds).
    public func consistent<T>(_ read: () -> T) -> T {
        var attempts = 0
        while true {
            let before = generation
            if before & 1 == 0 {
                let value = read()
                xok_fence()
                if generation == before { return value }
            }
            attempts += 1
            if attempts % 64 == 0 { sched_yield() } else { xok_spin_pause() }
        }
    }

    /// A consistent copy of the whole exposed state.
    public func snapshot() -> ExposedState {
        consistent { ExposedState(raw: Array(UnsafeRawBufferPointer(start: base, count: count))) }
    }
}
