// `xok top` (docs/xokd.md): a live view of a daemon's exposed state, read as any
// environment reads it — from the sealed pages, mapped read-only — so watching costs the
// daemon nothing but the one environment the view is.

import Foundation
import XokABI
import XokHostLinux

public enum Top {
    /// What one refresh saw, kept to show rates at the next.
    public struct Sample {
        public var state: ExposedState
        public var at: ContinuousClock.Instant
        public init(state: ExposedState, at: ContinuousClock.Instant) {
            self.state = state
            self.at = at
        }
    }

    /// The screen for `sample`: totals, slices, and one row per environment, with rates
    /// against `previous` when there is one. `me` is the view's own environment.
    public static func render(_ sample: Sample, previous: Sample?, me: EnvironmentID, title: String) -> String {
        let s = sample.state
        var lines = [title]
        var rate = ""
        if let previous {
            let d = sample.at - previous.at
            let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
            // The generation moves by two for every published change (odd while writing).
            if seconds > 0 {
                rate = String(format: ", %.0f calls/s that change frames, %.0f state changes/s",
                              Double(s.frameChanges &- previous.state.frameChanges) / seconds,
                              Double(s.generation &- previous.state.generation) / 2 / seconds)
            }
        }
        lines.append("kernel: generation \(s.generation)\(rate), clock \(String(format: "%.1f", Double(s.clockTicks) / 1e6)) s")
        let used = s.framesTotal - s.framesFree
        lines.append("frames: \(s.framesTotal) total, \(s.framesFree) free (\(String(format: "%.1f", s.framesTotal > 0 ? 100 * Double(used) / Double(s.framesTotal) : 0))% in use)")
        lines.append("disk:   \(s.diskBlocks) blocks, \(s.diskFreeBlocks) free; cache: \(s.cachedBlocks) blocks, \(s.dirtyBlocks) dirty")

        // Slices and cached blocks, by environment.
        var slices: [EnvironmentID: Int] = [:]
        let owners = s.sliceOwners
        for owner in owners { if let owner { slices[owner, default: 0] += 1 } }
        var cached: [EnvironmentID?: (blocks: Int, dirty: Int)] = [:]
        for frame in 0..<s.framesTotal {
            guard let entry = s.registry(frame: FrameNumber(rawValue: UInt32(truncatingIfNeeded: frame))) else { continue }
            cached[entry.owner, default: (0, 0)].blocks += 1
            if entry.dirty { cached[entry.owner, default: (0, 0)].dirty += 1 }
        }
        lines.append("slices: \(owners.count) total, \(slices.values.reduce(0, +)) owned")
        lines.append("")
        lines.append("ENV      STATE    BOUND   CACHED   DIRTY   SLICES   MESSAGES")
        func row(_ name: String, _ state: String, _ bound: String, _ blocks: Int, _ dirty: Int, _ slices: Int, _ messages: String) -> String {
            name.padding(toLength: 9, withPad: " ", startingAt: 0) + state.padding(toLength: 7, withPad: " ", startingAt: 0)
                + [bound, "\(blocks)", "\(dirty)", "\(slices)", messages].map { $0.leftPadded(to: 8) }.joined(separator: " ")
        }
        for e in s.environments {
            let counts = cached[e.id] ?? (0, 0)
            lines.append(row("\(e.id.rawValue)\(e.id == me ? " *" : "")", e.asleep ? "asleep" : "run", "\(e.framesBound)",
                             counts.blocks, counts.dirty, slices[e.id] ?? 0, "\(e.messagesWaiting)"))
        }
        if let kernel = cached[nil] {
            lines.append(row("kernel", "", "", kernel.blocks, kernel.dirty, 0, ""))
        }
        lines.append("")
        lines.append("* this view. BOUND: frames bound into it; CACHED, DIRTY: XN's cached blocks charged to it (kernel: left by the dead).")
        return lines.joined(separator: "\n")
    }
}

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
