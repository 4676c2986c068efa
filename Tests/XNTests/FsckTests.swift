// fsck on real image files: a clean image passes; each deliberately corrupted copy is
// caught, both by `XN.check` and by the `xok fsck` command (exit 1, one line a violation).

import Foundation
import Testing
import XN
import XokABI
import XokHostLinux
import XokSimulation

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

@Suite struct FsckImages {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("xok-fsck-\(UUID().uuidString)")

    /// A clean image: two file systems, a directory, a data block, a freed block.
    func cleanImage(_ name: String) throws -> (path: String, info: (rootA: BlockNumber, rootB: BlockNumber, dir: BlockNumber, geometry: XNLayout.Geometry)) {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent(name).path
        let xn = try XN.format(try FileBlockDevice.create(path: path, blocks: 600))
        let a = TreeClient<FileBlockDevice>(environment: envA, ownerID: 1, format: treeFormat, type: try treeFormat.install(on: xn))
        let b = TreeClient<FileBlockDevice>(environment: envB, ownerID: 2, format: listFormat, type: try listFormat.install(on: xn))
        let rootA = try a.createRoot(xn, name: "a"), rootB = try b.createRoot(xn, name: "b")
        let dir = try a.add(xn, under: rootA, type: a.type)
        let file = try a.add(xn, under: dir, type: .data), gone = try a.add(xn, under: dir, type: .data)
        try xn.writeData(file, offset: 0, bytes: [1, 2, 3], credential: a.credential, by: envA)
        try xn.writeback([file, gone], by: envA)
        try xn.writeback([dir], by: envA)
        try xn.writeback([rootB], by: envB)
        try xn.writeback([rootA], by: envA)
        try a.remove(xn, gone, from: dir)
        let geometry = xn.geometry
        _ = try xn.unmount()
        return (path, (rootA, rootB, dir, geometry))
    }

    /// Rewrites one block of the image.
    func edit(_ path: String, _ block: BlockNumber, _ change: (inout [UInt8]) -> Void) throws {
        let device = try FileBlockDevice.open(path: path)
        var bytes = try device.read([block])[0]
        change(&bytes)
        try device.write([(block, bytes)])
        try device.barrier()
    }

    @Test func cleanImagePasses() throws {
        let (path, _) = try cleanImage("clean.img")
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(XN.check(try FileBlockDevice.open(path: path, readOnly: true)).violations == [])
        let run = try runXok(["fsck", path])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("0 violations"))
    }

    @Test func everyCorruptionIsFound() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        func entry(_ n: Int) -> Range<Int> { (16 + 16 * n)..<(32 + 16 * n) }
        let corruptions: [(String, String, (String, (rootA: BlockNumber, rootB: BlockNumber, dir: BlockNumber, geometry: XNLayout.Geometry)) throws -> Void)] = [
            ("superblock", "superblock checksum mismatch", { p, _ in try edit(p, 0) { $0[30] ^= 4 } }),
            ("foreign", "not an XN image", { p, _ in try edit(p, 0) { $0 = [UInt8](repeating: 0, count: 4096) } }),
            ("catalogue", "type catalogue block 0 checksum mismatch", { p, i in try edit(p, i.geometry.typeCatalogueStart) { $0[300] ^= 1 } }),
            ("roots", "root catalogue checksum mismatch", { p, i in try edit(p, i.geometry.rootCatalogue) { $0[50] ^= 1 } }),
            ("free map: reachable block marked free", "is reachable but the free map says free", { p, i in
                try edit(p, i.geometry.freeMapStart) { $0[Int(i.dir) / 8] &= ~(1 << UInt8(i.dir % 8)); XNLayout.reseal(&$0) } }),
            ("free map: leaked block", "is allocated but not reachable", { p, i in
                try edit(p, i.geometry.freeMapStart) { $0[590 / 8] |= 1 << UInt8(590 % 8); XNLayout.reseal(&$0) } }),
            ("pointer outside the disk", "outside the data area", { p, i in
                try edit(p, i.dir) { $0.replaceSubrange(entry(0), with: TreeClient<FileBlockDevice>.entry(5000, .data)) } }),
            ("pointer into XN's structures", "outside the data area", { p, i in
                try edit(p, i.dir) { $0.replaceSubrange(entry(0), with: TreeClient<FileBlockDevice>.entry(1, .data)) } }),
            ("two pointers to one block", "reachable twice", { p, i in
                try edit(p, i.rootB) { $0.replaceSubrange(entry(0), with: TreeClient<FileBlockDevice>.entry(i.dir, TypeID(rawValue: 1))); $0[listFormat.highWaterOffset] = 1 } }),
            ("pointer of an unknown type", "of unknown type 9", { p, i in
                try edit(p, i.rootA) { $0.replaceSubrange(entry(1), with: TreeClient<FileBlockDevice>.entry(590, TypeID(rawValue: 9))); $0[treeFormat.highWaterOffset] = 2 } }),
        ]
        for (name, expected, corrupt) in corruptions {
            let (path, info) = try cleanImage(name.replacingOccurrences(of: " ", with: "-") + ".img")
            try corrupt(path, info)
            let report = XN.check(try FileBlockDevice.open(path: path, readOnly: true))
            #expect(report.violations.contains { $0.contains(expected) }, "\(name): \(report.violations)")
            let run = try runXok(["fsck", path])
            #expect(run.status == 1, "\(name): \(run.output)")
            #expect(run.output.contains("violation: ") && run.output.contains(expected), "\(name): \(run.output)")
        }
    }
}

@Suite struct LinuxImageFiles {
    @Test func xnRoundTripsThroughAnImageOpenedWithODirect() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("xok-direct-\(UUID().uuidString).img").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let xn = try XN.format(try FileBlockDevice.create(path: path, blocks: 512, direct: true))
        let a = TreeClient<FileBlockDevice>(environment: envA, ownerID: 1, format: treeFormat, type: try treeFormat.install(on: xn))
        let root = try a.createRoot(xn, name: "a")
        let file = try a.add(xn, under: root, type: .data)
        try xn.writeData(file, offset: 100, bytes: Array("direct".utf8), credential: a.credential, by: envA)
        try xn.writeback([file], by: envA)
        try xn.writeback([root], by: envA)
        _ = try xn.unmount()
        let again = try XN.mount(try FileBlockDevice.open(path: path, direct: true))
        #expect(!again.recovered)
        #expect(try again.read(file, credential: a.credential)[100..<106] == ArraySlice("direct".utf8))
        #expect(XN.check(try again.unmount()).violations == [])
    }

    @Test func missingImageIsAClearError() {
        #expect(throws: DeviceError.self) { try FileBlockDevice.open(path: "/nonexistent/xok.img") }
        do { _ = try FileBlockDevice.open(path: "/nonexistent/xok.img") } catch {
            #expect(error.message.contains("cannot open /nonexistent/xok.img"))
        }
    }
}
