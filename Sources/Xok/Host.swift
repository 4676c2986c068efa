// What the kernel needs from the machine it runs on (DESIGN.md §2): a clock, physical
// frames and a way to bind them into environments. The kernel is generic over it, so the
// same code runs on the deterministic simulation, on Linux, and later on bare metal.

import XokABI

/// The machine under the kernel.
public protocol Host {
    /// The clock, in ticks; never goes backward.
    var ticks: UInt64 { get }
    /// Physical frames, numbered `0..<frameCount`.
    var frameCount: Int { get }
    /// Makes `frame` accessible to `environment`, read-only or read-write (a secure
    /// binding). Replaces any binding it had.
    mutating func bind(_ frame: FrameNumber, to environment: EnvironmentID, writable: Bool)
    /// Removes the binding: the environment's next access to the frame faults.
    mutating func unbind(_ frame: FrameNumber, from environment: EnvironmentID)
    /// Zeroes a frame before it goes to a new owner, so nothing leaks between owners.
    mutating func zero(_ frame: FrameNumber)
}
