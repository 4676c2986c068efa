// A kernel with a simulated disk and two tree file systems in environments of their own
// (different layouts, different owners), each reaching XN only through its port.

import Foundation
import Testing
import TreeFS
import TreeFSUDFs
import XN
import Xok
import XokABI
import XokSimulation

typealias Disk = SimulatedDisk
typealias Client = TreeClient<LocalPort<SimulatedHost>>
let treeFormat = TreeFormat(name: "tree", ownerOffset: 0)
let listFormat = TreeFormat(name: "list", ownerOffset: 8)

func slot(_ n: Int) -> Int { TreeFormat.entriesStart + n * TreeFormat.entryBytes }

/// XN on a fresh simulated disk, with `a` (tree format, owner 1, root "a") and `b` (list
/// format, owner 2, root "b"); both roots written back.
final class Volume {
    var kernel: Kernel<SimulatedHost>
    var a: Client
    var b: Client
    var rootA: BlockNumber
    var rootB: BlockNumber
    let frames: Int

    init(blocks: UInt64 = 1024, seed: UInt64 = 1, frames: Int = 1024) throws {
        self.frames = frames
        kernel = Kernel(host: SimulatedHost(frameCount: frames))
        try kernel.mountDisk(Disk(blockCount: blocks, seed: seed), format: true)
        a = try LibraryEnvironment.treeClient(kernel, ownerID: 1, format: treeFormat)
        b = try LibraryEnvironment.treeClient(kernel, ownerID: 2, format: listFormat)
        rootA = try a.createRoot(name: "a")
        rootB = try b.createRoot(name: "b")
        try a.port.writeback([rootA])
        try b.port.writeback([rootB])
    }

    var xn: XN<Disk, SimulatedMemory> { kernel.xn! }

    /// Shuts the kernel down and boots a new one on the same disk; a and b start again
    /// in new environments.
    func remount() throws {
        let disk = try #require(try kernel.shutdown())
        try reboot(disk)
    }

    /// Boots a new kernel on `disk` (after a crash, say).
    func reboot(_ disk: Disk) throws {
        kernel = Kernel(host: SimulatedHost(frameCount: frames))
        try kernel.mountDisk(disk, format: false)
        a = try LibraryEnvironment.treeClient(kernel, ownerID: 1, format: treeFormat)
        b = try LibraryEnvironment.treeClient(kernel, ownerID: 2, format: listFormat)
    }

    /// fsck of the current device (without unmounting).
    var check: CheckReport { XNImage.check(xn.device) }
}

/// The `xok` built beside the tests.
func xokExecutable() throws -> URL {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let candidates = [Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("xok"),
                      root.appendingPathComponent(".build/debug/xok")]
    return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }, "xok is not built")
}

func runXok(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = try xokExecutable()
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}
