// `xok bench xn`: the cost of XN's checks end to end, through the kernel's call path. The
// same metadata-heavy workload — allocate, write and free blocks under many parents, with
// writeback to an image file — runs as a library file system calling a kernel booted on
// the Linux host through its port, with XN's UDF checks on and with them off (a boot
// setting of the benchmark's own kernel, which no call can change), in one run.

import BPF
#if canImport(Glibc)
import Glibc
#endif
import TreeFS
import XN
import Xok
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
        let kernel = Kernel(host: try LinuxHost(frameCount: directories + groups + 4 * childrenPerDirectory + 64))
        try kernel.mountDisk(device, format: true, checks: checks)
        let format = TreeFormat(name: "tree", ownerOffset: 0)
        let client = try LibraryEnvironment.treeClient(kernel, ownerID: 1, format: format,
                                                       quota: LibraryEnvironment.share(of: kernel, parts: 1))
        let port = client.port, own = client.slots.own
        let root = try client.createRoot(name: "bench")
        try port.writeback([root])
        func entry(_ slot: Int) -> Int { TreeFormat.entriesStart + slot * TreeFormat.entryBytes }
        let empty = [UInt8](repeating: 0, count: TreeFormat.entryBytes)
        var changes = 0
        var next = try port.firstFreeBlock(from: 0)
        // Frames for children come back when the children are freed; reuse them.
        var spare: [FrameNumber] = []

        func allocate(_ parent: BlockNumber, slot: Int, type: TypeID) throws -> (BlockNumber, FrameNumber) {
            next = try port.firstFreeBlock(from: next)
            let child = next
            let frame = try spare.popLast() ?? client.newFrame()
            try port.modify(parent, .allocate(child, type, frame: frame),
                            .inline([(entry(slot), TreeClient<LocalPort<LinuxHost>>.entry(child, type)), format.highWater(slot + 1)]), credential: own)
            changes += 1
            return (child, frame)
        }

        let clock = ContinuousClock()
        let cpuStart = cpuTime()
        let start = clock.now
        var group: BlockNumber = 0
        let first = next
        for d in 0..<directories {
            if d % 200 == 0 {
                group = try allocate(root, slot: d / 200, type: client.type).0
                try port.modify(group, .write, .inline([client.stamp]), credential: own)
                try port.writeback([group])
                try port.writeback([root])
            }
            let directory = try allocate(group, slot: d % 200, type: client.type).0
            try port.modify(directory, .write, .inline([client.stamp]), credential: own)
            try port.writeback([directory])
            try port.writeback([group])
            var children: [(BlockNumber, FrameNumber)] = []
            for slot in 0..<childrenPerDirectory {
                let child = try allocate(directory, slot: slot, type: .data)
                try port.writeData(child.0, .inline([(0, [UInt8(truncatingIfNeeded: slot), 1, 2, 3])]), credential: own)
                changes += 1
                children.append(child)
            }
            try port.writeback(children.map(\.0))
            try port.writeback([directory])
            // Newest first, lowering the directory's high-water mark as it empties.
            for (slot, child) in children.enumerated().reversed() {
                try port.modify(directory, .free(child.0), .inline([(entry(slot), empty), format.highWater(slot)]), credential: own)
                spare.append(child.1)
                changes += 1
            }
            try port.writeback([directory])
            next = first
        }
        let d = clock.now - start
        let cpu = cpuTime() - cpuStart
        _ = try kernel.shutdown()
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
