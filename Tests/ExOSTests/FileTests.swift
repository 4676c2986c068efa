import CFFS
import ExOS
import Testing
import XokABI

@Suite struct Files {
    @Test(arguments: Mode.allCases) func aFileWrittenIsReadBack(_ mode: Mode) throws {
        let m = try Machine(mode)
        let p = m.root
        try p.put("/hello", Array("hello, exokernel\n".utf8))
        #expect(try p.get("/hello") == Array("hello, exokernel\n".utf8))
        #expect(try p.stat("/hello").size == 17)
        #expect(try p.list("/") == ["hello"])
    }

    @Test(arguments: Mode.allCases) func bigFilesGoThroughIndirectBlocks(_ mode: Mode) throws {
        let m = try Machine(mode, blocks: 16_384, frames: 8192)
        let p = m.root
        let bytes = pattern(7 * 4096 + 504 * 4096 + 3 * 4096 + 123)
        try p.put("/big", bytes)
        #expect(try p.get("/big") == bytes)
        try p.sync()
        #expect(m.check.violations == [])
    }

    @Test(arguments: Mode.allCases) func aFileLargerThanTheProcesssFramesIsWrittenAndReadThroughEviction(_ mode: Mode) throws {
        let m = try Machine(mode, blocks: 16_384, frames: 4096)
        let user = try m.process(uid: 1000, gid: 1000)
        let quota = try #require(m.kernel.quota(of: user.fs.port.environment)).quota.frames
        let bytes = pattern(Int(quota) * 2 * 4096 + 77)
        try m.shared("/u")
        try user.put("/u/big", bytes)   // twice the frames it may hold
        #expect(try user.get("/u/big") == bytes)
        try user.sync()
        try m.root.sync()
        #expect(m.check.violations == [])
    }

    @Test(arguments: Mode.allCases) func aReaderIsNotFooledWhenTheFramesItMappedComeBackToItForOtherBlocks(_ mode: Mode) throws {
        // Bob writes a file, so its cached blocks are in his frames; Ann reads it through
        // the same cached blocks. Bob dies: his clean blocks leave the cache and his
        // frames go back to the free list, whence Ann's next allocations take them for a
        // file of her own. Her cache still remembers the old mappings by frame number;
        // read through them blindly, the first file would show the second's bytes.
        let m = try Machine(mode, blocks: 16_384, frames: 4096)
        try m.shared("/s")
        let bob = try m.process(uid: 1001, gid: 1001), ann = try m.process(uid: 1000, gid: 1000)
        let first = pattern(40 * 4096 + 5), second = pattern(40 * 4096 + 9).map { $0 ^ 0x5A }
        try bob.put("/s/first", first)
        try bob.sync()
        #expect(try ann.get("/s/first") == first)
        m.kernel.kill(bob.fs.port.environment)
        try ann.put("/s/second", second)
        #expect(try ann.get("/s/first") == first)
        #expect(try ann.get("/s/second") == second)
        try ann.sync()
        #expect(m.check.violations == [])
        #expect(m.cffsCheck.violations == [])
    }

    @Test(arguments: Mode.allCases) func oneWriteFillsHolesBetweenBlocksAlreadyThere(_ mode: Mode) throws {
        // Every other block exists: the new blocks' pointers are not adjacent, so each is
        // a range of its own in the change that allocates them (64 in the indirect block's).
        let m = try Machine(mode, blocks: 16_384, frames: 8192)
        let p = m.root
        let fd = try p.open("/sparse", [.readWrite, .create], mode: 0o644)
        for i in stride(from: 0, to: 300, by: 2) { _ = try p.pwrite(fd, [UInt8(i & 0x7f)], at: UInt64(i) * 4096 + 9) }
        #expect(try p.pread(fd, count: 10, at: 2 * 4096) == [UInt8](repeating: 0, count: 9) + [2])
        let bytes = pattern(300 * 4096 + 5)
        #expect(try p.pwrite(fd, bytes, at: 0) == bytes.count)
        try p.close(fd)
        #expect(try p.get("/sparse") == bytes)
        try p.truncate("/sparse", 3 * 4096 + 1)
        #expect(try p.get("/sparse") == Array(bytes.prefix(3 * 4096 + 1)))
        try p.sync()
        #expect(m.check.violations == [])
    }

    @Test(arguments: Mode.allCases) func directoryTimesMoveAtOnceHereAndReachTheDiskWithSync(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.shared("/d")
        let other = try m.process(uid: 0, gid: 0)
        let before = try m.root.stat("/d").mtime
        try m.root.put("/d/f", [1])
        let moved = try m.root.stat("/d").mtime
        #expect(moved > before)
        // Another process sees the time once it is written: at sync.
        #expect(try other.stat("/d").mtime == before)
        try m.root.sync()
        #expect(try other.stat("/d").mtime == moved)
        // The root directory's time lives in its block's header, and works the same way.
        try m.root.put("/g", [2])
        let rootMoved = try m.root.stat("/").mtime
        try m.root.sync()
        #expect(try other.stat("/").mtime == rootMoved)
    }

    @Test(arguments: Mode.allCases) func aDirectoryGoneBeforeItsTimeIsWrittenIsPassedOver(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.root.mkdir("/a")
        try m.root.mkdir("/a/b")
        try m.root.put("/a/b/f", [1])      // b's time waits
        try m.root.unlink("/a/b/f")
        try m.root.rmdir("/a/b")
        try m.root.mkdir("/a/c")           // may take b's slot, with a block of its own
        try m.root.sync()
        try m.root.rmdir("/a/c")
        #expect(try m.root.list("/a") == [])
        #expect(m.check.violations == [])
    }

    @Test(arguments: Mode.allCases) func namesCachedByOneProcessFollowAnothersRenamesAndRemovals(_ mode: Mode) throws {
        let m = try Machine(mode)
        let a = m.root, b = try m.process(uid: 0, gid: 0)
        try a.mkdir("/d")
        try a.put("/d/f", [1])
        #expect(try a.get("/d/f") == [1])          // a has looked /d/f up
        try b.rename("/d/f", "/d/g")
        try b.put("/d/f", [2])                     // a new f, in another slot
        #expect(try a.get("/d/f") == [2])
        #expect(try a.get("/d/g") == [1])
        try b.unlink("/d/g")
        #expect(throws: Errno.ENOENT) { _ = try a.stat("/d/g") }
        #expect(throws: Errno.ENOTDIR) { try b.rmdir("/d/f") }
    }

    @Test(arguments: Mode.allCases) func aCreateAfterAFailedLookupDoesNotTakeASlotAnotherProcessFilledBetween(_ mode: Mode) throws {
        let m = try Machine(mode)
        let a = m.root, b = try m.process(uid: 0, gid: 0)
        try a.mkdir("/d")
        for i in 0..<14 { try a.put("/d/f\(i)", [UInt8(i)]) }   // one slot of the first block left
        // a looks x up and creates it, as open(O_CREAT) does; b takes the slot between.
        let d = try #require(try a.fs.find(Array("d".utf8), in: .root))
        #expect(try a.fs.find(Array("x".utf8), in: d.ref) == nil)
        try b.put("/d/y", [])
        let x = try a.fs.create(Array("x".utf8), in: d.ref, mode: FileMode.regular | 0o644)
        _ = try a.fs.write(x, at: 0, [7])
        #expect(try a.get("/d/x") == [7])
        #expect(try b.stat("/d/y").size == 0)
        #expect(try a.list("/d").sorted() == ((0..<14).map { "f\($0)" } + ["x", "y"]).sorted())
        try a.sync()
        try b.sync()
        #expect(m.check.violations == [])
    }
}
