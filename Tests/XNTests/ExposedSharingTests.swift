// The exposed state on the Linux host lives in a sealed memfd that other processes may map
// only for reading: what a reader maps is byte for byte the kernel's exposed state; no
// holder of the descriptor can write it by any route (a writable mapping, raising a
// read-only one, write(2), ftruncate, reopening through /proc); and copies taken while
// the kernel keeps changing it are always consistent.

import CLinux
import Foundation
import Testing
import Xok
import XokABI
@testable import XokHostLinux
import XokSimulation

@Suite struct ExposedSharing {
    static func bootedKernel() throws -> (Kernel<LinuxHost>, LinuxHost) {
        let host = try LinuxHost(frameCount: 512)
        return (Kernel(host: host), host)
    }

    @Test func aReaderMapsExactlyTheKernelsExposedState() throws {
        let (kernel, host) = try Self.bootedKernel()
        #expect(host.exposedMemory.fd >= 0)
        let reader = try MappedExposedState(fd: dup(host.exposedMemory.fd))
        let port = try LibraryEnvironment.make(kernel, ownerID: 7, quota: LibraryEnvironment.share(of: kernel))
        let frames = try port.allocateFrames(5, credential: LibrarySlot.frames, acl: AccessControlList([try Capability(name: [7], rights: .all)]))
        let snapshot = reader.snapshot()
        #expect(snapshot.raw == kernel.exposedState.raw)
        #expect(snapshot.generation % 2 == 0)
        #expect(snapshot.framesFree == 512 - frames.count)
        #expect(reader.u32(at: ExposedState.framesFreeOffset) == UInt32(512 - frames.count))
        #expect(reader.u32(at: -1) == 0 && reader.u64(at: reader.count - 4) == 0)
    }

    @Test func noHolderOfTheDescriptorCanWriteIt() throws {
        let (_, host) = try Self.bootedKernel()
        let fd = host.exposedMemory.fd, bytes = host.exposedMemory.sharedBytes
        // A writable shared mapping.
        let writable = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        #expect(writable == MAP_FAILED)
        // A read-only one raised to writable.
        let readable = try #require(mmap(nil, bytes, PROT_READ, MAP_SHARED, fd, 0))
        #expect(readable != MAP_FAILED)
        #expect(mprotect(readable, bytes, PROT_READ | PROT_WRITE) != 0)
        munmap(readable, bytes)
        // write(2), growing and shrinking.
        var byte: UInt8 = 1
        #expect(pwrite(fd, &byte, 1, 0) == -1)
        #expect(ftruncate(fd, off_t(bytes / 2)) != 0 && ftruncate(fd, off_t(bytes * 2)) != 0)
        // Reopened read-write through /proc: the seals belong to the file, not the descriptor.
        let reopened = open("/proc/self/fd/\(fd)", O_RDWR)
        #expect(reopened >= 0)
        #expect(mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, reopened, 0) == MAP_FAILED)
        #expect(pwrite(reopened, &byte, 1, 0) == -1)
        close(reopened)
        // And the seals themselves are sealed.
        #expect(xok_seal_for_readers(fd) != 0)
    }

    @Test func copiesTakenWhileTheKernelWritesAreConsistent() throws {
        let (kernel, host) = try Self.bootedKernel()
        let reader = try MappedExposedState(fd: dup(host.exposedMemory.fd))
        let port = try LibraryEnvironment.make(kernel, ownerID: 7, quota: LibraryEnvironment.share(of: kernel))
        let acl = try AccessControlList([try Capability(name: [7], rights: .all)])
        // Only the writer thread touches the kernel; the reader only the mapping.
        nonisolated(unsafe) let writerPort = port
        let done = ManagedAtomicFlag(), failed = ManagedAtomicFlag()
        let writer = Thread {
            do {
                for _ in 0..<3000 {
                    let frames = try writerPort.allocateFrames(7, credential: LibrarySlot.frames, acl: acl)
                    for f in frames { try writerPort.free(f, credential: LibrarySlot.own) }
                }
            } catch { failed.set() }
            done.set()
        }
        writer.start()
        var copies = 0
        while !done.isSet || copies == 0 {
            let s = reader.snapshot()
            copies += 1
            // Every copy is a state the kernel published: an even generation, the header
            // intact, and 505 to 512 free frames (seven taken, then given back one a call).
            #expect(s.generation % 2 == 0 && s.raw.count == host.exposedMemory.sharedBytes && (505...512).contains(s.framesFree),
                    "copy \(copies): generation \(s.generation), \(s.framesFree) free")
            #expect(s.framesTotal == 512)
        }
        #expect(!failed.isSet)
        #expect(copies > 10)
        _ = kernel
    }
}

/// A flag one thread sets and another polls.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    init() { word.initialize(to: 0) }
    deinit { word.deallocate() }
    func set() { xok_store_release(word, 1) }
    var isSet: Bool { xok_load_acquire(word) != 0 }
}
