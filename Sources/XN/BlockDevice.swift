// Stable storage under XN (DESIGN.md §5): numbered 4 KiB blocks, vectored reads and
// writes, and a write barrier. Writes issued before a barrier are durable once it
// returns; between barriers a crash may keep any subset of them.

import XokABI

/// A failure of the device itself.
public struct DeviceError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A disk: an image file, a block device, or a simulated disk.
public protocol BlockDevice {
    /// Bytes in a block: always `XNLayout.blockBytes`.
    var blockCount: UInt64 { get }
    /// The blocks' contents, in the order asked.
    mutating func read(_ blocks: [BlockNumber]) throws(DeviceError) -> [[UInt8]]
    /// Writes each block (4096 bytes each), in the order given.
    mutating func write(_ writes: [(BlockNumber, [UInt8])]) throws(DeviceError)
    /// Writes `blocks[i]` from the bytes `source(i)` gives, valid during the call (a
    /// frame's page, with no copy where the device can manage it), in the order given.
    mutating func write(_ blocks: [BlockNumber], from source: (Int) -> UnsafeRawBufferPointer) throws(DeviceError)
    /// Makes every write issued so far durable.
    mutating func barrier() throws(DeviceError)
}

extension BlockDevice {
    mutating func read(_ block: BlockNumber) throws(DeviceError) -> [UInt8] { try read([block])[0] }

    /// By copies: for devices that keep what they are given.
    public mutating func write(_ blocks: [BlockNumber], from source: (Int) -> UnsafeRawBufferPointer) throws(DeviceError) {
        try write(blocks.indices.map { (blocks[$0], Array(source($0))) })
    }
}
