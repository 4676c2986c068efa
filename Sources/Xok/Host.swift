// What the kernel needs from the machine it runs on (DESIGN.md §2): a clock, physical
// frames with their bytes and a way to bind them into environments, and a disk. The
// kernel is generic over it, so the same code runs on the deterministic simulation, on
// Linux, and later on bare metal.

import XN
import XokABI

/// The machine under the kernel. A class: the kernel holds its one machine by reference,
/// so reading the clock or the frames on a call's path copies nothing.
public protocol Host: AnyObject {
    /// The frames' bytes.
    associatedtype Memory: FrameMemory
    /// The disk XN shares among library file systems.
    associatedtype Disk: BlockDevice

    /// The clock, in ticks; never goes backward.
    var ticks: UInt64 { get }
    /// Physical frames, numbered `0..<frameCount`.
    var frameCount: Int { get }
    /// The bytes of every frame.
    var memory: Memory { get }
    /// Makes `frame` accessible to `environment`, read-only or read-write (a secure
    /// binding). Replaces any binding it had.
    func bind(_ frame: FrameNumber, to environment: EnvironmentID, writable: Bool)
    /// Removes the binding: the environment's next access to the frame faults.
    func unbind(_ frame: FrameNumber, from environment: EnvironmentID)
    /// Zeroed memory for the exposed state: `shared` bytes (a whole number of pages) that
    /// environments may be given to read, followed at once by `scratch` bytes that only
    /// the kernel sees (a predicate's window runs across both).
    func exposedPages(shared: Int, scratch: Int) -> UnsafeMutableRawBufferPointer
    /// Takes back what `exposedPages` gave, when the kernel goes.
    func releaseExposedPages(_ pages: UnsafeMutableRawBufferPointer)
}

extension Host {
    /// Ordinary memory, for hosts whose environments share the kernel's process.
    public func exposedPages(shared: Int, scratch: Int) -> UnsafeMutableRawBufferPointer {
        let pages = UnsafeMutableRawBufferPointer.allocate(byteCount: shared + scratch, alignment: 64)
        pages.initializeMemory(as: UInt8.self, repeating: 0)
        return pages
    }

    public func releaseExposedPages(_ pages: UnsafeMutableRawBufferPointer) { pages.deallocate() }
}
