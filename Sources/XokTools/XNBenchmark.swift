// `xok bench xn`: the cost of XN's checks end to end. The same metadata-heavy workload —
// allocate, write and free blocks under many parents, with writeback to an image file —
// runs with the UDF checks on and with them off (a benchmark-only setting), in one run.

import BPF
#if canImport(Glibc)
import Glibc
#endif
import XN
import XokABI
import XokHostLinux
import XokSimulation

public enum XNBenchmark {
    public struct Run: Sendable {
        public var checks: Bool
        public var seconds: Double
        /// User CPU time: neither the disk's waits nor the kernel's I/O work count, so the
        /// difference between the two settings is the checks' own cost, with little noise.
        public var cpuSeconds: Double
        /// Checked changes: allocations, data writes and frees.
        public var changes: Int
        public var microsecondsPerChange: Double { seconds * 1e6 / Double(changes) }
    }

    /// Children per directory: many small directories, as a file tree has.
    public static let childrenPerDirectory = 50

    /// What a benchmark found.
    public struct Outcome: Sendable {
        /// The fastest run of each setting.
        public var on: Run
        public var off: Run
        /// The median over rounds of (checks on ÷ checks off) within a round: each round
        /// runs both settings back to back, so slow spells of the disk cancel out.
        public var ratio: Double
        /// Every round's ratio, in order.
        public var ratios: [Double]
    }

    /// Runs the workload over `blocks` blocks in an image at `path`, `repeats` rounds of
    /// both settings. The order alternates off-on, on-off, … and the image is removed and
    /// the file system synced between runs: a run that follows another pays for the file
    /// system reclaiming the previous image, an order effect larger than the difference
    /// being measured.
    public static func run(blocks: Int, path: String, repeats: Int = 5) throws -> Outcome {
        var best: [Bool: Run] = [:]
        var ratios: [Double] = []
        for round in 0..<max(1, repeats) {
            var pair: [Bool: Run] = [:]
            for checks in round % 2 == 0 ? [false, true] : [true, false] {
                let run = try workload(blocks: blocks, path: path, checks: checks)
                unlink(path)
                sync()
                pair[checks] = run
                if best[checks].map({ run.seconds < $0.seconds }) ?? true { best[checks] = run }
            }
            ratios.append(pair[true]!.seconds / pair[false]!.seconds)
        }
        let sorted = ratios.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        return Outcome(on: best[true]!, off: best[false]!, ratio: median, ratios: ratios)
    }

    static func workload(blocks: Int, path: String, checks: Bool) throws -> Run {
        let directories = max(1, blocks / childrenPerDirectory)
        let groups = max(1, (directories + 199) / 200)
        let device = try FileBlockDevice.create(path: path, blocks: UInt64(blocks + directories + groups + 4096), direct: true)
        let xn = try XN.format(device)
        let format = TreeFormat(name: "tree", ownerOffset: 0)
        let client = TreeClient<FileBlockDevice>(environment: EnvironmentID(rawValue: 1), ownerID: 1, format: format, type: try format.install(on: xn))
        let root = try client.createRoot(xn, name: "bench")
        try xn.writeback([root], by: client.environment)
        xn.checksEnabled = checks
        let credential = client.credential, env = client.environment
        func entry(_ slot: Int) -> Int { TreeFormat.entriesStart + slot * TreeFormat.entryBytes }
        let empty = [UInt8](repeating: 0, count: TreeFormat.entryBytes)
        var changes = 0
        var next: BlockNumber = xn.geometry.dataStart

        func allocate(_ parent: BlockNumber, slot: Int, type: TypeID) throws -> BlockNumber {
            while !xn.isFree(next) { next += 1 }
            let child = next
            try xn.modify(parent, [Modification(offset: entry(slot), bytes: TreeClient<FileBlockDevice>.entry(child, type)), format.highWater(slot + 1)],
                          operation: .allocate(child, type), credential: credential, by: env)
            changes += 1
            return child
        }

        let clock = ContinuousClock()
        let cpuStart = cpuTime()
        let start = clock.now
        var group: BlockNumber = 0
        for d in 0..<directories {
            if d % 200 == 0 {
                group = try allocate(root, slot: d / 200, type: client.type)
                try xn.modify(group, [client.stamp], operation: .write, credential: credential, by: env)
                try xn.writeback([group], by: env)
                try xn.writeback([root], by: env)
            }
            let directory = try allocate(group, slot: d % 200, type: client.type)
            try xn.modify(directory, [client.stamp], operation: .write, credential: credential, by: env)
            try xn.writeback([directory], by: env)
            try xn.writeback([group], by: env)
            var children: [BlockNumber] = []
            for slot in 0..<childrenPerDirectory {
                let child = try allocate(directory, slot: slot, type: .data)
                try xn.writeData(child, offset: 0, bytes: [UInt8(truncatingIfNeeded: slot), 1, 2, 3], credential: credential, by: env)
                changes += 1
                children.append(child)
            }
            try xn.writeback(children, by: env)
            try xn.writeback([directory], by: env)
            // Newest first, lowering the directory's high-water mark as it empties.
            for (slot, child) in children.enumerated().reversed() {
                try xn.modify(directory, [Modification(offset: entry(slot), bytes: empty), format.highWater(slot)], operation: .free(child),
                              credential: credential, by: env)
                changes += 1
            }
            try xn.writeback([directory], by: env)
            next = xn.geometry.dataStart
        }
        let d = clock.now - start
        let cpu = cpuTime() - cpuStart
        _ = try xn.unmount()
        let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        return Run(checks: checks, seconds: seconds, cpuSeconds: cpu, changes: changes)
    }

    /// The process's user CPU time so far, in seconds.
    static func cpuTime() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
    }
}
