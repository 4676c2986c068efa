// A simulated disk (DESIGN.md §8): blocks in memory, a latency in ticks per operation,
// and power loss: the writes issued since the last barrier survive in whatever subset the
// seed chooses, the rest are lost. Deterministic from its seed.

import XN
import XokABI

/// A disk that can lose power.
public struct SimulatedDisk: BlockDevice {
    public let blockCount: UInt64
    private var durable: [[UInt8]]
    /// Writes since the last barrier, in issue order.
    private var pending: [(BlockNumber, [UInt8])] = []
    private var rng: SeededRandom
    /// Ticks the disk has spent (reads, writes and barriers each cost some).
    public private(set) var ticks: UInt64 = 0
    /// Writes issued since the disk was made.
    public private(set) var writesIssued = 0
    /// After this many writes the power fails: later operations throw until `powerLoss()`.
    public var failAfterWrites: Int?
    public private(set) var powerFailed = false

    public static let readTicks: UInt64 = 60, writeTicks: UInt64 = 84, barrierTicks: UInt64 = 46

    /// A disk of `blockCount` blocks holding the garbage a used disk holds: whatever reads a
    /// block never written gets stale bytes, not zeros.
    public init(blockCount: UInt64, seed: UInt64) {
        self.blockCount = blockCount
        rng = SeededRandom(seed: seed)
        var garbage = SeededRandom(seed: seed ^ 0x5eed_6a4b)
        durable = (0..<Int(blockCount)).map { _ in
            var block = [UInt8](repeating: 0, count: XNLayout.blockBytes)
            for i in stride(from: 0, to: XNLayout.blockBytes, by: 8) { block.put64le(garbage.next() % 3 == 0 ? 0 : garbage.next(), at: i) }
            return block
        }
    }

    private func current(_ block: BlockNumber) -> [UInt8] {
        pending.last { $0.0 == block }?.1 ?? durable[Int(block)]
    }

    public mutating func read(_ blocks: [BlockNumber]) throws(DeviceError) -> [[UInt8]] {
        guard !powerFailed else { throw DeviceError("power lost") }
        var result: [[UInt8]] = []
        for b in blocks {
            guard b < blockCount else { throw DeviceError("block \(b) past the end of the disk") }
            result.append(current(b))
            ticks += Self.readTicks
        }
        return result
    }

    public mutating func write(_ writes: [(BlockNumber, [UInt8])]) throws(DeviceError) {
        for (b, bytes) in writes {
            guard !powerFailed else { throw DeviceError("power lost") }
            guard b < blockCount, bytes.count == XNLayout.blockBytes else { throw DeviceError("bad write of block \(b)") }
            pending.append((b, bytes))
            writesIssued += 1
            ticks += Self.writeTicks
            if let limit = failAfterWrites, writesIssued >= limit { powerFailed = true }
        }
    }

    public mutating func barrier() throws(DeviceError) {
        guard !powerFailed else { throw DeviceError("power lost") }
        for (b, bytes) in pending { durable[Int(b)] = bytes }
        pending = []
        ticks += Self.barrierTicks
    }

    /// Cuts the power: each write since the last barrier survives or not as the seed
    /// chooses; the disk then works again (as after a reboot). Returns how many were lost.
    @discardableResult
    public mutating func powerLoss() -> Int {
        var lost = 0
        for (b, bytes) in pending {
            if rng.next() % 2 == 0 { durable[Int(b)] = bytes } else { lost += 1 }
        }
        pending = []
        powerFailed = false
        failAfterWrites = nil
        return lost
    }

    /// Every block as a read would see it now: for checking that a refused call wrote
    /// nothing.
    public var snapshot: [[UInt8]] { (0..<blockCount).map { current($0) } }

    /// Overwrites a block directly, bypassing everything (for building corrupt images).
    public mutating func corrupt(_ block: BlockNumber, _ change: (inout [UInt8]) -> Void) {
        change(&durable[Int(block)])
    }
}

extension Array where Element == UInt8 {
    mutating func put64le(_ v: UInt64, at offset: Int) {
        for i in 0..<8 { self[offset + i] = UInt8(truncatingIfNeeded: v >> UInt64(8 * i)) }
    }
}
