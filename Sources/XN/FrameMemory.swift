// Where cached blocks live (DESIGN.md §5): in frames that library OSes provide, which the
// kernel binds into environments. XN reads and changes a cached block through the frame's
// bytes, so an environment that maps the frame sees the block without a copy.

import XokABI

/// Physical memory, by frame: the host's pages.
public protocol FrameMemory: AnyObject {
    /// The `KernelLimits.pageBytes` bytes of `frame`, valid as long as the memory lives.
    /// The caller has checked that `frame` is a frame of this memory.
    func bytes(of frame: FrameNumber) -> UnsafeMutableRawBufferPointer
}

extension FrameMemory {
    /// A copy of a frame's bytes.
    public func copy(of frame: FrameNumber) -> [UInt8] { Array(UnsafeRawBufferPointer(bytes(of: frame))) }

    /// Overwrites a frame with `contents` (a page of bytes).
    public func store(_ contents: [UInt8], in frame: FrameNumber) {
        let target = bytes(of: frame)
        contents.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(target.count))) }
    }

    /// Zeroes a frame.
    public func zero(_ frame: FrameNumber) {
        let target = bytes(of: frame)
        if let base = target.baseAddress { base.initializeMemory(as: UInt8.self, repeating: 0, count: target.count) }
    }
}
