// Reads bring in more than they need, with one call: the rest of a sequential read's
// blocks (read-ahead), and a small file's neighbours in its directory block (the group).

@testable import CFFS
import ExOS
import Testing
import XokABI

@Suite struct ReadingAhead {
    /// The block of file block `index` of `path`, through the entry's direct pointers.
    func directBlock(_ p: Process, _ path: String) throws -> BlockNumber {
        let name = Array(path.split(separator: "/").last!.utf8)
        let dir = try #require(try p.fs.find(Array("d".utf8), in: .root))
        let file = try #require(try p.fs.find(name, in: dir.ref, directory: dir.inode))
        return file.inode.pointers[0]
    }

    @Test(arguments: Mode.allCases) func aSmallFilesFirstReadBringsInItsNeighbours(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.root.mkdir("/d")
        for i in 0..<10 { try m.root.put("/d/f\(i)", [UInt8](repeating: UInt8(i), count: 100 + i)) }
        try m.root.sync()
        // A process of its own has nothing mapped yet.
        let reader = try m.process(uid: 0, gid: 0)
        let blocks = try (0..<10).map { try directBlock(reader, "/d/f\($0)") }
        #expect(blocks.allSatisfy { reader.fs.cache.mapped[$0] == nil })
        #expect(try reader.get("/d/f0") == [UInt8](repeating: 0, count: 100))
        // f0 shares its directory block with the first 14 entries: all came in with it.
        #expect(blocks.allSatisfy { reader.fs.cache.mapped[$0] != nil })
        for i in 1..<10 { #expect(try reader.get("/d/f\(i)") == [UInt8](repeating: UInt8(i), count: 100 + i)) }
    }

    @Test(arguments: Mode.allCases) func aSequentialReadMapsTheNextBlocksToo(_ mode: Mode) throws {
        let m = try Machine(mode, blocks: 16_384, frames: 8192)
        try m.root.mkdir("/d")
        let bytes = pattern(200 * 4096)
        try m.root.put("/d/big", bytes)
        try m.root.sync()
        let reader = try m.process(uid: 0, gid: 0)
        let fd = try reader.open("/d/big", .readOnly)
        let dir = try #require(try reader.fs.find(Array("d".utf8), in: .root))
        let file = try #require(try reader.fs.find(Array("big".utf8), in: dir.ref, directory: dir.inode))
        var inode = file.inode
        func block(_ index: UInt64) throws -> BlockNumber { try #require(try reader.fs.fileBlock(file.ref, &inode, index, allocate: false)).block }
        #expect(try reader.read(fd, count: 4096) == Array(bytes[0..<4096]))
        #expect(reader.fs.cache.mapped[try block(20)] == nil, "one read is not yet a sequence")
        #expect(try reader.read(fd, count: 4096) == Array(bytes[4096..<8192]))
        for index: UInt64 in [2, 20, 33] { #expect(reader.fs.cache.mapped[try block(index)] != nil) }
        #expect(reader.fs.cache.mapped[try block(60)] == nil)
        var rest: [UInt8] = []
        while true {
            let chunk = try reader.read(fd, count: 10_000)
            if chunk.isEmpty { break }
            rest += chunk
        }
        #expect(rest == Array(bytes[8192...]))
        try reader.close(fd)
    }

    @Test(arguments: Mode.allCases) func readingBlocksAnotherProcessCachedTakesNoFramesOfItsOwn(_ mode: Mode) throws {
        // b's reads find every block in XN's cache (a wrote them): the frames b offers go
        // unused and must be offered again, not pile up.
        let m = try Machine(mode, blocks: 16_384, frames: 8192)
        for d in 0..<12 {
            try m.root.mkdir("/d\(d)")
            for f in 0..<15 { try m.root.put("/d\(d)/f\(f)", [UInt8(f), UInt8(d)]) }
        }
        let b = try m.process(uid: 0, gid: 0)
        let before = try #require(m.kernel.quota(of: b.fs.port.environment)).used.frames
        for d in 0..<12 {
            for f in 0..<15 { #expect(try b.get("/d\(d)/f\(f)") == [UInt8(f), UInt8(d)]) }
        }
        let used = try #require(m.kernel.quota(of: b.fs.port.environment)).used.frames - before
        #expect(used <= UInt32(KernelLimits.xnBatchMax), "b took \(used) frames to read blocks already cached")
    }
}
