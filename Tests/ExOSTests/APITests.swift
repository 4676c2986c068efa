// Every ExOS call, what it does and each error it returns, as a program would meet them.

import CFFS
import ExOS
import Testing
import XokABI

@Suite struct Descriptors {
    @Test(arguments: Mode.allCases) func openCreatesTruncatesAppendsAndRefuses(_ mode: Mode) throws {
        let m = try Machine(mode)
        let os = m.root
        #expect(throws: Errno.ENOENT) { _ = try os.open("/f", .readOnly) }
        let fd = try os.open("/f", [.readWrite, .create], mode: 0o640)
        #expect(try os.write(fd, Array("hello".utf8)) == 5)
        #expect(try os.fstat(fd).mode == FileMode.regular | 0o640 & ~0o022)
        try os.close(fd)
        #expect(throws: Errno.EEXIST) { _ = try os.open("/f", [.writeOnly, .create, .exclusive]) }
        let appending = try os.open("/f", [.writeOnly, .append])
        _ = try os.write(appending, Array(" world".utf8))
        try os.close(appending)
        #expect(try os.get("/f") == Array("hello world".utf8))
        let truncating = try os.open("/f", [.writeOnly, .truncate])
        #expect(try os.fstat(truncating).size == 0)
        try os.close(truncating)
        try os.mkdir("/d")
        #expect(throws: Errno.EISDIR) { _ = try os.open("/d", .writeOnly) }
        #expect(throws: Errno.ENOTDIR) { _ = try os.open("/f", [.readOnly, .directory]) }
        #expect(throws: Errno.ENOTDIR) { _ = try os.open("/f/x", .readOnly) }
        #expect(throws: Errno.ENAMETOOLONG) { _ = try os.open("/" + String(repeating: "n", count: 121), [.writeOnly, .create]) }
        try os.symlink("/f", "/l")
        #expect(throws: Errno.ELOOP) { _ = try os.open("/l", [.readOnly, .noFollow]) }
    }

    @Test(arguments: Mode.allCases) func descriptorsAreCheckedAndTheTableIsBounded(_ mode: Mode) throws {
        let m = try Machine(mode)
        let os = m.root
        #expect(throws: Errno.EBADF) { try os.close(3) }
        #expect(throws: Errno.EBADF) { _ = try os.read(-1, count: 1) }
        #expect(throws: Errno.EBADF) { _ = try os.write(Int32.max, [1]) }
        try os.put("/f", [1, 2, 3])
        let reader = try os.open("/f", .readOnly)
        #expect(throws: Errno.EBADF) { _ = try os.write(reader, [1]) }
        #expect(throws: Errno.EINVAL) { try os.ftruncate(reader, 0) }   // as Linux
        let writer = try os.open("/f", .writeOnly)
        #expect(throws: Errno.EBADF) { _ = try os.read(writer, count: 1) }
        #expect(throws: Errno.EINVAL) { _ = try os.read(reader, count: -1) }
        try os.close(reader)
        #expect(throws: Errno.EBADF) { try os.close(reader) }
        try os.close(writer)
        // The table: 1,024 descriptors, then EMFILE; a closed one is reused.
        var open: [Int32] = []
        var last = Result<Int32, Errno>.success(0)
        while case .success = last, open.count <= 1024 {
            last = Result { () throws(Errno) in try os.open("/f", .readOnly) }
            if case .success(let fd) = last { open.append(fd) }
        }
        #expect(open.count == 1024)
        #expect(throws: Errno.EMFILE) { try last.get() }
        try os.close(open[10])
        #expect(try os.open("/f", .readOnly) == open[10])
    }

    @Test(arguments: Mode.allCases) func readWritePositionsAndSeek(_ mode: Mode) throws {
        let m = try Machine(mode)
        let os = m.root
        let fd = try os.open("/f", [.readWrite, .create])
        _ = try os.write(fd, Array("0123456789".utf8))
        #expect(try os.lseek(fd, 0, .current) == 10)
        #expect(try os.lseek(fd, 2, .set) == 2)
        #expect(try os.read(fd, count: 3) == Array("234".utf8))
        #expect(try os.lseek(fd, -1, .end) == 9)
        #expect(try os.read(fd, count: 100) == Array("9".utf8))
        #expect(try os.read(fd, count: 100) == [])
        #expect(throws: Errno.EINVAL) { _ = try os.lseek(fd, -11, .end) }
        #expect(throws: Errno.EINVAL) { _ = try os.lseek(fd, Int64.min, .set) }
        // pread/pwrite leave the offset alone; a write past the end leaves a hole of zeros.
        #expect(try os.pread(fd, count: 2, at: 4) == Array("45".utf8))
        #expect(try os.pwrite(fd, [0x41], at: 20_000) == 1)
        #expect(try os.lseek(fd, 0, .current) == 10)
        #expect(try os.fstat(fd).size == 20_001)
        #expect(try os.pread(fd, count: 4, at: 9_000) == [0, 0, 0, 0])
        #expect(try os.pread(fd, count: 4, at: UInt64.max) == [])
        #expect(throws: Errno.EFBIG) { _ = try os.pwrite(fd, [1], at: UInt64.max - 1) }
        try os.fsync(fd)
        try os.close(fd)
    }

    @Test(arguments: Mode.allCases) func truncateShrinksAndGrowsWithZeros(_ mode: Mode) throws {
        let m = try Machine(mode)
        let os = m.root
        try os.put("/f", pattern(100_000))
        try os.truncate("/f", 5_000)
        #expect(try os.get("/f") == Array(pattern(100_000).prefix(5_000)))
        let fd = try os.open("/f", .readWrite)
        try os.ftruncate(fd, 9_000)
        try os.close(fd)
        #expect(try os.get("/f") == Array(pattern(100_000).prefix(5_000)) + [UInt8](repeating: 0, count: 4_000))
        try os.mkdir("/d")
        #expect(throws: Errno.EISDIR) { try os.truncate("/d", 0) }
        try os.sync()
        #expect(m.check.violations == [])
    }
}

@Suite struct Names {
    @Test(arguments: Mode.allCases) func mkdirRmdirAndTheirErrors(_ mode: Mode) throws {
        let m = try Machine(mode)
        let os = m.root
        try os.mkdir("/a")
        #expect(throws: Errno.EEXIST) { try os.mkdir("/a") }
        #expect(throws: Errno.ENOENT) { try os.mkdir("/x/y") }
        try os.mkdir("/a/b", mode: 0o700)
        #expect(try os.stat("/a/b").mode == FileMode.directory | 0o700)
        #expect(try os.stat("/a").nlink == 3)
        #expect(throws: Errno.ENOTEMPTY) { try os.rmdir("/a") }
        try os.put("/a/f", [1])
        #expect(throws: Errno.ENOTDIR) { try os.rmdir("/a/f") }
        #expect(throws: Errno.EISDIR) { try os.unlink("/a/b") }
        #expect(throws: Errno.EINVAL) { try os.rmdir("/a/b/.") }
        try os.rmdir("/a/b")
        #expect(try os.stat("/a").nlink == 2)
        #expect(throws: Errno.ENOENT) { try os.rmdir("/a/b") }
        try os.unlink("/a/f")
        #expect(throws: Errno.ENOENT) { try os.unlink("/a/f") }
        try os.rmdir("/a")
        #expect(try os.list("/") == [])
    }

    @Test(arguments: Mode.allCases) func manyEntriesSpanDirectoryBlocks(_ mode: Mode) throws {
        let m = try Machine(mode)
        let os = m.root
        try os.mkdir("/big")
        let names = (0..<100).map { "file-\($0)" }
        for name in names { try os.put("/big/" + name, Array(name.utf8)) }
        #expect(try os.list("/big").sorted() == names.sorted())
        for name in names.shuffled().prefix(50) { try os.unlink("/big/" + name) }
        #expect(try os.list("/big").count == 50)
        let stream = try os.opendir("/big")
        var seen = 0
        while let entry = try os.readdir(stream) {
            #expect(try os.get("/big/" + String(decoding: entry.name, as: UTF8.self)) == entry.name)
            seen += 1
        }
        try os.closedir(stream)
        #expect(seen == 50)
        #expect(throws: Errno.ENOTDIR) { _ = try os.opendir("/big/" + (try os.list("/big")[0])) }
        try os.sync()
        #expect(m.check.violations == [])
    }

    @Test(arguments: Mode.allCases) func renameInOneDirectoryAndAcross(_ mode: Mode) throws {
        let m = try Machine(mode)
        let os = m.root
        try os.mkdir("/d")
        try os.mkdir("/e")
        try os.put("/d/a", [1])
        try os.put("/d/b", [2])
        try os.rename("/d/a", "/d/c")
        #expect(try os.list("/d").sorted() == ["b", "c"])
        try os.rename("/d/c", "/d/b")   // replaces b
        #expect(try os.list("/d") == ["b"])
        #expect(try os.get("/d/b") == [1])
        #expect(throws: Errno.ENOENT) { try os.rename("/d/zz", "/d/y") }
        try os.mkdir("/d/sub")
        #expect(throws: Errno.EISDIR) { try os.rename("/d/b", "/d/sub") }
        #expect(throws: Errno.ENOTDIR) { try os.rename("/d/sub", "/d/b") }
        try os.rename("/d/b", "/d/b")
        #expect(try os.get("/d/b") == [1])

        // Across directories: the file, then a directory with everything under it.
        try os.rename("/d/b", "/e/moved")
        #expect(throws: Errno.ENOENT) { _ = try os.get("/d/b") }
        #expect(try os.get("/e/moved") == [1])
        try os.put("/d/sub/deep", Array(repeating: 7, count: 50_000))
        try os.rename("/d/sub", "/e/sub2")
        #expect(try os.list("/d") == [])
        #expect(try os.list("/e").sorted() == ["moved", "sub2"])
        #expect(try os.get("/e/sub2/deep") == Array(repeating: 7, count: 50_000))
        #expect(try os.stat("/e").nlink == 3)
        #expect(try os.stat("/d").nlink == 2)
        // Over an existing file; an empty directory over an empty directory; not over
        // a non-empty one.
        try os.put("/d/x", [9])
        try os.rename("/e/moved", "/d/x")
        #expect(try os.get("/d/x") == [1])
        try os.mkdir("/d/empty")
        try os.mkdir("/e/empty2")
        try os.rename("/e/empty2", "/d/empty")
        #expect(try os.list("/e") == ["sub2"])
        try os.mkdir("/d/full")
        try os.put("/d/full/f", [1])
        #expect(throws: Errno.ENOTEMPTY) { try os.rename("/e/sub2", "/d/full") }
        #expect(throws: Errno.EISDIR) { try os.rename("/d/x", "/d/full") }
        #expect(throws: Errno.ENOTDIR) { try os.rename("/e/sub2", "/d/x") }
        // Never under itself.
        try os.mkdir("/e/sub2/inner")
        #expect(throws: Errno.EINVAL) { try os.rename("/e/sub2", "/e/sub2/inner/loop") }
        #expect(throws: Errno.EINVAL) { try os.rename("/e", "/e/sub2/inner/loop") }
        #expect(try os.get("/e/sub2/deep") == Array(repeating: 7, count: 50_000))
        // The inode number is the entry's place: a file moved away has a new one, and a
        // file made in the slot it left takes the old one.
        try os.put("/d/p", [5])
        let left = try os.stat("/d/p").ino
        try os.rename("/d/p", "/e/p")
        try os.put("/d/q", [6])
        #expect(try os.stat("/d/q").ino == left)
        #expect(try os.stat("/e/p").ino != left)
        try os.sync()
        #expect(m.check.violations == [])
        #expect(m.cffsCheck.violations == [])
    }

    @Test(arguments: Mode.allCases) func descriptorsAndTheCurrentDirectoryFollowARename(_ mode: Mode) throws {
        let m = try Machine(mode)
        let os = m.root
        try os.mkdir("/a")
        try os.mkdir("/a/work")
        try os.mkdir("/b")
        try os.put("/a/work/log", Array("one".utf8))
        let fd = try os.open("/a/work/log", [.readWrite, .append])
        try os.chdir("/a/work")
        try os.rename("/a/work/log", "/b/log")
        _ = try os.write(fd, Array(" two".utf8))
        #expect(try os.fstat(fd).size == 7)
        try os.close(fd)
        #expect(try os.get("/b/log") == Array("one two".utf8))
        try os.rename("/a/work", "/b/work")
        #expect(os.getcwd() == "/b/work")
        try os.put("here", [1])
        #expect(try os.get("/b/work/here") == [1])
        try os.sync()
        #expect(m.check.violations == [])
    }

    @Test(arguments: Mode.allCases) func hardLinksShareOneFileUntilTheLastNameGoes(_ mode: Mode) throws {
        let m = try Machine(mode)
        let os = m.root
        try os.mkdir("/a")
        try os.mkdir("/b")
        let contents = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 * 7) }   // direct and indirect blocks
        try os.sync()
        let free = os.fs.port.exposedState().diskFreeBlocks
        try os.put("/a/f", contents)
        let fd = try os.open("/a/f", .readWrite)
        let changed = try os.stat("/a/f").ctime
        try os.link("/a/f", "/b/g")
        #expect(try os.stat("/b/g").ctime > changed)
        try os.link("/b/g", "/a/h")                   // a link of a link: the same file
        let a = try os.stat("/a/f"), b = try os.stat("/b/g"), h = try os.stat("/a/h")
        #expect(a.ino == b.ino && b.ino == h.ino)
        #expect(a.nlink == 3 && b.nlink == 3)
        #expect(try os.get("/b/g") == contents)
        // A descriptor opened before the first link still reaches the file.
        #expect(try os.pwrite(fd, Array("via fd".utf8), at: 0) == 6)
        #expect(try os.fstat(fd).nlink == 3)
        #expect(try os.get("/a/h").prefix(6) == ArraySlice(Array("via fd".utf8)))
        try os.close(fd)
        // Changes through one name show through the others.
        try os.chmod("/b/g", 0o600)
        #expect(try os.stat("/a/f").mode & 0o777 == 0o600)
        try os.truncate("/a/h", 5000)
        #expect(try os.stat("/b/g").size == 5000)

        #expect(throws: Errno.EEXIST) { try os.link("/a/f", "/b/g") }
        #expect(throws: Errno.ENOENT) { try os.link("/a/none", "/b/x") }
        #expect(throws: Errno.ENOENT) { try os.link("/a/f", "/none/x") }
        #expect(throws: Errno.EPERM) { try os.link("/a", "/b/dir") }
        #expect(throws: Errno.ENOTDIR) { try os.link("/a/f/x", "/b/x") }
        #expect(throws: Errno.EEXIST) { try os.link("/a/f", "/a/f") }

        // Renames move a name, not the file; two names of one file rename to nothing.
        try os.rename("/a/h", "/b/h2")
        #expect(try os.stat("/b/h2").ino == a.ino)
        try os.rename("/b/h2", "/a/f")
        #expect(try os.stat("/b/h2").nlink == 3)
        try os.unlink("/b/h2")
        #expect(try os.stat("/a/f").nlink == 2)

        try os.unlink("/a/f")
        #expect(try os.stat("/b/g").nlink == 1)
        #expect(try os.get("/b/g").count == 5000)
        try os.sync()
        #expect(m.check.violations == [])
        try os.unlink("/b/g")
        try os.sync()
        #expect(os.fs.port.exposedState().diskFreeBlocks == free)   // the file's blocks and its inode block are free again
        #expect(m.check.violations == [])
        #expect(try os.list("/a").isEmpty && os.list("/b").isEmpty)
    }

    @Test(arguments: Mode.allCases) func linksSymlinksAndPaths(_ mode: Mode) throws {
        let m = try Machine(mode)
        let os = m.root
        try os.mkdir("/a")
        try os.mkdir("/a/b")
        try os.put("/a/b/f", Array("x".utf8))
        try os.symlink("b/f", "/a/rel")
        try os.symlink("/a/b", "/dir")
        #expect(try os.readlink("/a/rel") == "b/f")
        #expect(try os.get("/a/rel") == Array("x".utf8))
        #expect(try os.get("/dir/f") == Array("x".utf8))
        #expect(try os.lstat("/a/rel").isSymlink)
        #expect(try os.stat("/a/rel").isRegular)
        #expect(throws: Errno.EINVAL) { _ = try os.readlink("/a/b/f") }
        #expect(throws: Errno.EEXIST) { try os.symlink("x", "/a/rel") }
        try os.symlink("/loop2", "/loop1")
        try os.symlink("/loop1", "/loop2")
        #expect(throws: Errno.ELOOP) { _ = try os.stat("/loop1") }
        #expect(try os.get("/a/b/../b/./f") == Array("x".utf8))
        #expect(try os.get("/../../a/b/f") == Array("x".utf8))
        try os.chdir("/a/b")
        #expect(os.getcwd() == "/a/b")
        #expect(try os.get("f") == Array("x".utf8))
        try os.chdir("..")
        #expect(os.getcwd() == "/a")
        try os.chdir("/dir")
        #expect(try os.get("f") == Array("x".utf8))
        #expect(throws: Errno.ENOTDIR) { try os.chdir("/a/b/f") }
        #expect(throws: Errno.ENOENT) { try os.chdir("/nope") }
        #expect(throws: Errno.ENOENT) { _ = try os.stat("") }
    }

    @Test(arguments: Mode.allCases) func modesOwnersTimesAndUmask(_ mode: Mode) throws {
        let m = try Machine(mode)
        let os = m.root
        #expect(os.umask(0o077) == 0o022)
        try os.put("/f", [1], mode: 0o666)
        #expect(try os.stat("/f").mode & 0o777 == 0o600)
        _ = os.umask(0o022)
        try os.chmod("/f", 0o4755)
        #expect(try os.stat("/f").mode & 0o7777 == 0o4755)
        try os.chown("/f", uid: 1000, gid: 50)
        #expect(try os.stat("/f").uid == 1000)
        #expect(try os.stat("/f").gid == 50)
        try os.utimes("/f", access: 1_000_000_000, modification: 2_000_000_000)
        #expect(try os.stat("/f").mtime == 2_000_000_000)
        #expect(try os.stat("/f").atime == 1_000_000_000)
        try os.symlink("/f", "/l")
        try os.lutimes("/l", access: 5, modification: 7)
        #expect(try os.lstat("/l").mtime == 7)
        #expect(try os.stat("/f").mtime == 2_000_000_000)
        let fd = try os.open("/f", .readOnly)
        try os.fchmod(fd, 0o640)
        try os.futimes(fd, access: 11, modification: 13)
        #expect(try os.fstat(fd).mode & 0o7777 == 0o640)
        #expect(try os.stat("/f").mtime == 13)
        try os.close(fd)
        #expect(throws: Errno.EBADF) { try os.fchmod(fd, 0o600) }
        #expect(throws: Errno.EBADF) { try os.futimes(fd, access: 0, modification: 0) }
        try os.utimes("/f", access: 1_000_000_000, modification: 2_000_000_000)
        try os.lchown("/l", uid: 7, gid: nil)
        #expect(try os.lstat("/l").uid == 7)
        #expect(try os.stat("/f").uid == 1000)
        let user = try m.process(uid: 1001, gid: 1001)
        #expect(throws: Errno.EPERM) { try user.chmod("/f", 0o777) }
        #expect(throws: Errno.EPERM) { try user.chown("/f", uid: 1001, gid: nil) }
        #expect(throws: Errno.EPERM) { try user.utimes("/f", access: 0, modification: 0) }
        #expect(throws: Errno.ENOENT) { try os.chmod("/nope", 0o644) }
    }
}
