import CFFS
import ExOS
import Testing
import XokABI

@Suite struct Files {
    @Test func aFileWrittenIsReadBack() throws {
        let m = try Machine()
        let p = m.root
        try p.put("/hello", Array("hello, exokernel\n".utf8))
        #expect(try p.get("/hello") == Array("hello, exokernel\n".utf8))
        #expect(try p.stat("/hello").size == 17)
        #expect(try p.list("/") == ["hello"])
    }

    @Test func bigFilesGoThroughIndirectBlocks() throws {
        let m = try Machine(blocks: 16_384, frames: 8192)
        let p = m.root
        let bytes = pattern(7 * 4096 + 504 * 4096 + 3 * 4096 + 123)
        try p.put("/big", bytes)
        #expect(try p.get("/big") == bytes)
        try p.sync()
        #expect(m.check.violations == [])
    }

    @Test func aFileLargerThanTheProcesssFramesIsWrittenAndReadThroughEviction() throws {
        let m = try Machine(blocks: 16_384, frames: 4096)
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

    @Test func directoryTimesMoveAtOnceHereAndReachTheDiskWithSync() throws {
        let m = try Machine()
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

    @Test func aDirectoryGoneBeforeItsTimeIsWrittenIsPassedOver() throws {
        let m = try Machine()
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
}
