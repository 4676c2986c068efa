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
}
