// mkfs and fsck on real image files through the Linux host: a clean image passes; each
// deliberately corrupted copy is caught, both by `XNImage.check` and by `xok fsck` (exit 4,
// one line a violation, as fsck(8)); missing and foreign images get a UNIX tool's message;
// mkfs will not overwrite a file system or data unless forced; a huge sparse image is
// refused in the time and memory of what is really there.

import Foundation
import Testing
import TreeFS
import TreeFSUDFs
@testable import XN
import Xok
import XokABI
import XokHostLinux
import XokSimulation

typealias LinuxClient = TreeClient<LocalPort<LinuxHost>>

@Suite struct FsckImages {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("xok-fsck-\(UUID().uuidString)")

    /// A clean image: two file systems, a directory, a data block, a freed block.
    func cleanImage(_ name: String) throws -> (path: String, info: (rootA: BlockNumber, rootB: BlockNumber, dir: BlockNumber, geometry: XNLayout.Geometry)) {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent(name).path
        let kernel = Kernel(host: try LinuxHost(frameCount: 256))
        try kernel.mountDisk(try FileBlockDevice.create(path: path, blocks: 600), format: true)
        let a = try LibraryEnvironment.treeClient(kernel, ownerID: 1, format: treeFormat)
        let b = try LibraryEnvironment.treeClient(kernel, ownerID: 2, format: listFormat)
        let rootA = try a.createRoot(name: "a"), rootB = try b.createRoot(name: "b")
        let dir = try a.add(under: rootA, type: a.type)
        let file = try a.add(under: dir, type: .data), gone = try a.add(under: dir, type: .data)
        try a.write([1, 2, 3], at: 0, of: file)
        try a.port.writeback([file, gone])
        try a.port.writeback([dir])
        try b.port.writeback([rootB])
        try a.port.writeback([rootA])
        try a.remove(gone, from: dir)
        let geometry = kernel.xn!.geometry
        _ = try kernel.shutdown()
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
        #expect(XNImage.check(try FileBlockDevice.open(path: path, readOnly: true)).violations == [])
        let run = try runXok(["fsck", path])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("0 violations"))
    }

    @Test func everyCorruptionIsFound() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        func entry(_ n: Int) -> Range<Int> { (16 + 16 * n)..<(32 + 16 * n) }
        let corruptions: [(String, String, (String, (rootA: BlockNumber, rootB: BlockNumber, dir: BlockNumber, geometry: XNLayout.Geometry)) throws -> Void)] = [
            ("superblock", "superblock checksum mismatch", { p, _ in try edit(p, 0) { $0[30] ^= 4 } }),
            ("catalogue", "type catalogue block 0 checksum mismatch", { p, i in try edit(p, i.geometry.typeCatalogueStart) { $0[300] ^= 1 } }),
            ("roots", "root catalogue block 0 checksum mismatch", { p, i in try edit(p, i.geometry.rootCatalogue) { $0[50] ^= 1 } }),
            ("free map: reachable block marked free", "is reachable but the free map says free", { p, i in
                try edit(p, i.geometry.freeMapStart) { $0[Int(i.dir) / 8] &= ~(1 << UInt8(i.dir % 8)); XNLayout.reseal(&$0) } }),
            ("free map: leaked block", "is allocated but not reachable", { p, i in
                try edit(p, i.geometry.freeMapStart) { $0[590 / 8] |= 1 << UInt8(590 % 8); XNLayout.reseal(&$0) } }),
            ("pointer outside the disk", "outside the data area", { p, i in
                try edit(p, i.dir) { $0.replaceSubrange(entry(0), with: LinuxClient.entry(5000, .data)) } }),
            ("pointer into XN's structures", "outside the data area", { p, i in
                try edit(p, i.dir) { $0.replaceSubrange(entry(0), with: LinuxClient.entry(1, .data)) } }),
            ("two pointers to one block", "reachable twice", { p, i in
                try edit(p, i.rootB) { $0.replaceSubrange(entry(0), with: LinuxClient.entry(i.dir, TypeID(rawValue: 1))); $0[listFormat.highWaterOffset] = 1 } }),
            ("pointer of an unknown type", "of unknown type 9", { p, i in
                try edit(p, i.rootA) { $0.replaceSubrange(entry(1), with: LinuxClient.entry(590, TypeID(rawValue: 9))); $0[treeFormat.highWaterOffset] = 2 } }),
            ("two roots of one name", "two roots are named 'a'", { p, i in
                try edit(p, i.geometry.rootCatalogue) { $0.replaceSubrange((8 + 112)..<(8 + 112 + 32), with: Array("a".utf8) + [UInt8](repeating: 0, count: 31)); XNLayout.reseal(&$0) } }),
            ("a name with a NUL inside", "root 1 has a malformed name", { p, i in
                try edit(p, i.geometry.rootCatalogue) { $0.replaceSubrange((8 + 112)..<(8 + 112 + 4), with: [0x62, 0, 0x78, 0]); XNLayout.reseal(&$0) } }),
            ("a move log image that does not match its record", "does not match its record", { p, i in
                try edit(p, i.geometry.moveLogStart) { $0 = moveRecord([(i.dir, 0x1234_5678)]) } }),
            ("a move log record naming too many blocks", "names 65 blocks", { p, i in
                try edit(p, i.geometry.moveLogStart) { $0 = moveRecord((0..<65).map { (i.dir + UInt64($0), 0) }) } }),
            ("a move log record naming XN's own blocks", "outside the data area", { p, i in
                try edit(p, i.geometry.moveLogStart) { $0 = moveRecord([(1, 0)]) } }),
            ("a move log record naming a block twice", "names a block twice", { p, i in
                try edit(p, i.geometry.moveLogStart) { $0 = moveRecord([(i.dir, 0), (i.dir, 0)]) } }),
        ]
        for (name, expected, corrupt) in corruptions {
            let (path, info) = try cleanImage(name.replacingOccurrences(of: " ", with: "-") + ".img")
            try corrupt(path, info)
            let report = XNImage.check(try FileBlockDevice.open(path: path, readOnly: true))
            #expect(report.violations.contains { $0.contains(expected) }, "\(name): \(report.violations)")
            let run = try runXok(["fsck", path])
            #expect(run.status == 4, "\(name): \(run.output)")
            #expect(run.output.contains("\(path): ") && run.output.contains(expected), "\(name): \(run.output)")
        }
    }

    @Test func aMoveTheLogHoldsIsCheckedAsDoneAndFinishedByTheNextMount() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        let (path, info) = try cleanImage("logged.img")
        // The record and image of a move that reached the log: the directory as it is,
        // with its first entry cleared (as if it had moved out).
        var image = try FileBlockDevice.open(path: path).read([info.dir])[0]
        image.replaceSubrange((16..<32), with: [UInt8](repeating: 0, count: 16))
        try edit(path, info.geometry.moveLogStart + 1) { $0 = image }
        try edit(path, info.geometry.moveLogStart) { $0 = moveRecord([(info.dir, CRC32C.checksum(image[...]))]) }
        // A record is left only by a crash: the image was not shut down cleanly.
        try edit(path, 0) { $0 = XNLayout.superblock(for: info.geometry, clean: false) }
        // The disk in place still has the entry; fsck sees the disk as the replay will
        // leave it, and finds nothing wrong.
        let report = XNImage.check(try FileBlockDevice.open(path: path, readOnly: true))
        #expect(report.movePending == 1)
        #expect(report.violations == [])
        let run = try runXok(["fsck", path])
        #expect(run.status == 0 && run.output.contains("the move log holds a move of 1 blocks"), "\(run.output)")
        // Mount finishes it and erases the record.
        let kernel = Kernel(host: try LinuxHost(frameCount: 64))
        try kernel.mountDisk(try FileBlockDevice.open(path: path), format: false)
        let device = kernel.xn!.device
        #expect(try device.read([info.dir])[0] == image)
        _ = try kernel.shutdown()
        #expect(XNImage.check(try FileBlockDevice.open(path: path, readOnly: true)).movePending == 0)
    }

    @Test func fsckSaysWhatIsWrongWithWhatIsNotAnImage() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        let missing = try runXok(["fsck", "/nonexistent/xok.img"])
        #expect(missing.status == 8)
        #expect(missing.output == "fsck: /nonexistent/xok.img: No such file or directory\n")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let foreign = folder.appendingPathComponent("foreign.img").path
        _ = FileManager.default.createFile(atPath: foreign, contents: Data(repeating: 0x41, count: 1 << 16))
        let run = try runXok(["fsck", foreign])
        #expect(run.status == 8)
        #expect(run.output == "fsck: \(foreign): not an XN disk (no XN magic in block 0)\n")
        let tiny = folder.appendingPathComponent("notes.txt").path
        _ = FileManager.default.createFile(atPath: tiny, contents: Data("hi\n".utf8))
        let short = try runXok(["fsck", tiny])
        #expect(short.status == 8)
        #expect(short.output == "fsck: \(tiny): not an XN disk (shorter than one 4 KiB block)\n")
    }

    @Test func mkfsRefusesAFileSystemOrDataUnlessForced() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        let (path, _) = try cleanImage("full.img")
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let refused = try runXok(["mkfs", path])
        #expect(refused.status == 1)
        #expect(refused.output == "mkfs: \(path): already holds an XN disk; use --force to overwrite it\n")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before, "a refused mkfs wrote nothing")
        let text = folder.appendingPathComponent("notes.txt").path
        _ = FileManager.default.createFile(atPath: text, contents: Data("precious".utf8))
        let data = try runXok(["mkfs", text])
        #expect(data.status == 1 && data.output.contains("already holds data"))
        #expect(try String(contentsOfFile: text, encoding: .utf8) == "precious")
        let forced = try runXok(["mkfs", "--force", path])
        #expect(forced.status == 0, "\(forced.output)")
        let check = try runXok(["fsck", path])
        #expect(check.status == 0 && check.output.contains("0 blocks reachable"), "\(check.output)")
    }

    @Test func aHugeSparseImageIsRefusedInTheTimeOfWhatIsThere() throws {
        // 15 TiB claimed by a valid superblock over a sparse file: the free map it names is
        // holes. Mount and fsck stop at the first bad free-map block, having sized
        // nothing by the claim.
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("sparse.img").path
        let blocks: UInt64 = 15 << 28   // 15 TiB of 4 KiB blocks
        let device: FileBlockDevice
        do { device = try FileBlockDevice.create(path: path, blocks: blocks) } catch {
            // A file system that cannot hold such a file says so; nothing to test here.
            return
        }
        let geometry = try #require(XNLayout.Geometry(blockCount: blocks))
        try device.write([(0, XNLayout.superblock(for: geometry, clean: true))])
        let clock = ContinuousClock()
        let start = clock.now
        #expect(throws: XNError.self) { try XN.mount(device, memory: SimulatedMemory(frameCount: 1)) }
        let report = XNImage.check(device)
        #expect(report.violations.contains { $0.contains("checksum mismatch") })
        // Seconds, not the hours a table per claimed block would take.
        #expect(clock.now - start < .seconds(60))
    }
}

@Suite struct LinuxImageFiles {
    @Test func xnRoundTripsThroughAnImageOpenedWithODirectAndRealFrames() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("xok-direct-\(UUID().uuidString).img").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var kernel = Kernel(host: try LinuxHost(frameCount: 64))
        try kernel.mountDisk(try FileBlockDevice.create(path: path, blocks: 512, direct: true), format: true)
        var a = try LibraryEnvironment.treeClient(kernel, ownerID: 1, format: treeFormat)
        let root = try a.createRoot(name: "a")
        let file = try a.add(under: root, type: .data)
        try a.write(Array("direct".utf8), at: 100, of: file)
        // The bytes are in a real page of the memfd the host mapped.
        let frame = try #require(kernel.xn!.registryEntry(file)?.frame)
        #expect(Array(kernel.host.memory.bytes(of: frame)[100..<106]) == Array("direct".utf8))
        try a.port.writeback([file])
        try a.port.writeback([root])
        _ = try kernel.shutdown()
        kernel = Kernel(host: try LinuxHost(frameCount: 64))
        try kernel.mountDisk(try FileBlockDevice.open(path: path, direct: true), format: false)
        #expect(!kernel.xn!.recovered)
        a = try LibraryEnvironment.treeClient(kernel, ownerID: 1, format: treeFormat)
        #expect(try a.contents(file, via: [root])[100..<106] == ArraySlice("direct".utf8))
        #expect(XNImage.check(try #require(try kernel.shutdown())).violations == [])
    }

    @Test func missingImageIsAClearError() {
        #expect(throws: DeviceError.self) { try FileBlockDevice.open(path: "/nonexistent/xok.img") }
        do { _ = try FileBlockDevice.open(path: "/nonexistent/xok.img") } catch {
            #expect(error.message.contains("cannot open /nonexistent/xok.img"))
        }
    }
}

/// A sealed move log record naming `blocks`, each with its image's checksum.
func moveRecord(_ blocks: [(BlockNumber, UInt32)]) -> [UInt8] {
    var record = [UInt8](repeating: 0, count: XNLayout.blockBytes)
    func put(_ value: UInt64, _ bytes: Int, at offset: Int) {
        for k in 0..<bytes { record[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
    }
    put(XNLayout.moveLogMagic, 8, at: 0)
    put(UInt64(blocks.count), 4, at: 8)
    for (i, (block, checksum)) in blocks.enumerated() {
        put(block, 8, at: 16 + 12 * i)
        put(UInt64(checksum), 4, at: 24 + 12 * i)
    }
    XNLayout.reseal(&record)
    return record
}
