// A deterministic host (DESIGN.md §2): a virtual clock in ticks, frames in one block of
// memory, a simulated disk, and an MMU table of bindings that every simulated memory
// access goes through, so a revoked binding really makes the next access fault.

import XN
import Xok
import XokABI

/// The simulated machine's memory: `frameCount` pages in one allocation.
public final class SimulatedMemory: FrameMemory {
    public let frameCount: Int
    private let base: UnsafeMutableRawBufferPointer

    public init(frameCount: Int) {
        self.frameCount = frameCount
        base = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, frameCount) * KernelLimits.pageBytes, alignment: KernelLimits.pageBytes)
        base.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { base.deallocate() }

    public func bytes(of frame: FrameNumber) -> UnsafeMutableRawBufferPointer {
        let start = Int(frame.rawValue) * KernelLimits.pageBytes
        return UnsafeMutableRawBufferPointer(rebasing: base[start..<start + KernelLimits.pageBytes])
    }
}

/// A simulated machine.
public final class SimulatedHost: Host {
    public private(set) var ticks: UInt64 = 0
    public let frameCount: Int
    /// Bytes in one frame.
    public static let frameBytes = KernelLimits.pageBytes
    public let memory: SimulatedMemory
    /// The MMU: frame → environment → writable.
    public private(set) var mmu: [FrameNumber: [EnvironmentID: Bool]] = [:]

    public typealias Disk = SimulatedDisk

    public init(frameCount: Int) {
        self.frameCount = frameCount
        memory = SimulatedMemory(frameCount: frameCount)
    }

    /// Moves the virtual clock forward.
    public func advanceClock(by ticks: UInt64) { self.ticks += ticks }

    public func bind(_ frame: FrameNumber, to environment: EnvironmentID, writable: Bool) {
        mmu[frame, default: [:]][environment] = writable
    }

    public func unbind(_ frame: FrameNumber, from environment: EnvironmentID) {
        mmu[frame]?[environment] = nil
        if mmu[frame]?.isEmpty == true { mmu[frame] = nil }
    }

    /// A memory fault: the access the MMU refused.
    public struct Fault: Error, Equatable {
        public var environment: EnvironmentID
        public var frame: FrameNumber
        public var write: Bool
    }

    /// `environment` reads a byte of `frame` through its binding.
    /// - Throws: `Fault` when the frame is not bound into it.
    public func load(_ environment: EnvironmentID, _ frame: FrameNumber, offset: Int) throws(Fault) -> UInt8 {
        guard mmu[frame]?[environment] != nil, offset >= 0, offset < Self.frameBytes else { throw Fault(environment: environment, frame: frame, write: false) }
        return memory.bytes(of: frame)[offset]
    }

    /// `environment` writes a byte of `frame` through its binding.
    /// - Throws: `Fault` when the frame is not bound into it, or bound read-only.
    public func store(_ environment: EnvironmentID, _ frame: FrameNumber, offset: Int, _ value: UInt8) throws(Fault) {
        guard mmu[frame]?[environment] == true, offset >= 0, offset < Self.frameBytes else { throw Fault(environment: environment, frame: frame, write: true) }
        memory.bytes(of: frame)[offset] = value
    }
}

/// A small seeded generator (SplitMix64): a whole simulation is a function of its seed.
public struct SeededRandom: RandomNumberGenerator {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
