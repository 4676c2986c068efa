// Damaged images, as an attacker or a failing disk would hand them over: C-FFS's fields
// set to the values that break careless code (zero, all ones, one past each limit), and
// random bytes. XN refuses to mount what breaks its own structure; whatever it mounts,
// C-FFS's fsck must finish on and ExOS must walk, read and write with errors at worst,
// never a trap (a trap would end the test run).

@testable import CFFS
import ExOS
import Testing
import XN
import Xok
import XokABI
import XokSimulation
import XokTools

@Suite struct CorruptImages {
    /// A tree with small and large files, a symbolic link and nested directories, synced
    /// and shut down; its metadata blocks.
    func image(seed: UInt64) throws -> (disk: SimulatedDisk, superblock: BlockNumber, metadata: [BlockNumber]) {
        let m = try Machine(blocks: 4096, frames: 4096, seed: seed)
        let os = m.root
        try os.mkdir("/a")
        try os.mkdir("/a/b")
        for i in 0..<20 { try os.put("/a/f\(i)", pattern(i * 700)) }
        try os.put("/a/b/large", pattern(7 * 4096 + 3 * 4096 + 11))
        try os.symlink("../f3", "/a/b/link")
        try os.sync()
        let fs = os.fs
        let a = try #require(try fs.lookup(Array("a".utf8), in: .root))
        let b = try #require(try fs.lookup(Array("b".utf8), in: a))
        let large = try #require(try fs.lookup(Array("large".utf8), in: b))
        var metadata = [fs.rootDirectory, try fs.inode(a).pointers[0], try fs.inode(b).pointers[0], try fs.inode(large).pointers[7]]
        metadata += Set([a.block, b.block, large.block]).sorted()
        let superblock = fs.superblock
        let disk = try #require(try m.kernel.shutdown())
        return (disk, superblock, Array(Set(metadata)).sorted())
    }

    /// Values careless code breaks on, by width.
    static let edges64: [UInt64] = [0, 1, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, .max, .max - 1, 4096, 4095, 1 << 40]
    static let edges32: [UInt32] = [0, 1, .max, 0x7fff_ffff, 0o170000, 0o040000, 0o120000, 0o100000, 0o140777]
    static let edges8: [UInt8] = [0, 1, 0x2e, 0x2f, 120, 121, 0x7f, 0x80, 0xff]

    @Test(arguments: 1...40) func damageGivesErrorsNeverTraps(seed: UInt64) throws {
        var (disk, superblock, metadata) = try image(seed: seed)
        var rng = SeededRandom(seed: seed)
        for _ in 0..<(1 + Int(rng.next() % 6)) {
            let block = metadata[Int(rng.next() % UInt64(metadata.count))]
            disk.corrupt(block) { b in
                let slot = CFFSLayout.slotOffset(Int(rng.next() % UInt64(CFFSLayout.slots)))
                switch rng.next() % 6 {
                case 0:   // a header field
                    let at = [CFFSLayout.magic, CFFSLayout.level, CFFSLayout.uid, CFFSLayout.gid, CFFSLayout.mode][Int(rng.next() % 5)]
                    b.put32(Self.edges32[Int(rng.next() % UInt64(Self.edges32.count))], at: at)
                case 1:   // an entry's mode, uid or gid
                    let at = slot + [CFFSLayout.eMode, CFFSLayout.eUID, CFFSLayout.eGID, CFFSLayout.eNlink][Int(rng.next() % 4)]
                    b.put32(Self.edges32[Int(rng.next() % UInt64(Self.edges32.count))], at: at)
                case 2:   // size or a time
                    let at = slot + [CFFSLayout.eSize, CFFSLayout.eMtime, CFFSLayout.eAtime, CFFSLayout.eIno][Int(rng.next() % 4)]
                    b.put64(Self.edges64[Int(rng.next() % UInt64(Self.edges64.count))], at: at)
                case 3:   // the name's length or a byte of it
                    let at = slot + (rng.next() % 2 == 0 ? CFFSLayout.eNameLength : CFFSLayout.eName + Int(rng.next() % 8))
                    b[at] = Self.edges8[Int(rng.next() % UInt64(Self.edges8.count))]
                case 4:   // an indirect block's level, or the header's time
                    b.put64(Self.edges64[Int(rng.next() % UInt64(Self.edges64.count))], at: CFFSLayout.headerMtime)
                    b.put32(UInt32(rng.next() % 6), at: CFFSLayout.level)
                default:  // any byte at all
                    b[Int(rng.next() % 4096)] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
        }
        // fsck of the damaged image finishes.
        var reader = disk
        _ = CFFSCheck.check(superblock: superblock) { block in try? reader.read([block]).first }
        // XN may refuse it; whatever it mounts, ExOS copes.
        let kernel = Kernel(host: SimulatedHost(frameCount: 4096))
        do { try kernel.mountDisk(disk, format: false) } catch { return }
        let os: ExOS<LocalPort<SimulatedHost>>
        do { os = try ExOSEnvironment.mount(kernel, uid: 0, gid: 0, now: { 1 }) } catch { return }
        var pending = ["/"]
        var visited = 0
        while let dir = pending.popLast(), visited < 200 {
            visited += 1
            guard let names = try? os.list(dir) else { continue }
            for name in names {
                let path = dir == "/" ? "/" + name : dir + "/" + name
                guard let status = try? os.lstat(path) else { continue }
                _ = try? os.stat(path)
                if status.isDirectory {
                    pending.append(path)
                    _ = try? os.mkdir(path + "/new")
                } else if status.isSymlink {
                    _ = try? os.readlink(path)
                } else if let fd = try? os.open(path, .readWrite) {
                    _ = try? os.read(fd, count: 1 << 16)
                    _ = try? os.pread(fd, count: 4096, at: status.size &- 10)
                    _ = try? os.pwrite(fd, [1, 2, 3], at: status.size)
                    _ = try? os.ftruncate(fd, status.size / 2)
                    os.closeQuietly(fd)
                }
                _ = try? os.rename(path, path + "-moved")
                _ = try? os.chmod(path + "-moved", 0o600)
            }
        }
        _ = try? os.sync()
        #expect(kernel.checkInvariants() == [])
    }
}

extension CorruptImages {
    /// What an environment killed between allocating a block and writing its header
    /// leaves on disk: XN writes back the dirty blocks it handed over, so the parent's
    /// pointer reaches a block that reads as zeros. That is not damage: fsck notes it, a
    /// directory whose block was never laid out lists as empty and takes new names (its
    /// block laid out then), and a file whose indirect block was never laid out reads as
    /// holes there and takes writes.
    @Test func blocksWhoseAllocatorDiedBeforeLayingThemOutAreNotDamage() throws {
        let m = try Machine(blocks: 4096, frames: 4096, seed: 3)
        let os = m.root
        try os.mkdir("/d")
        try os.put("/big", pattern(8 * 4096 + 100))
        try os.sync()
        let fs = os.fs
        let d = try #require(try fs.lookup(Array("d".utf8), in: .root))
        let big = try #require(try fs.lookup(Array("big".utf8), in: .root))
        let directoryBlock = try fs.inode(d).pointers[0], indirectBlock = try fs.inode(big).pointers[7]
        #expect(directoryBlock != 0 && indirectBlock != 0)
        let superblock = fs.superblock
        var disk = try #require(try m.kernel.shutdown())
        disk.corrupt(directoryBlock) { b in for i in 0..<b.count { b[i] = 0 } }
        disk.corrupt(indirectBlock) { b in for i in 0..<CFFSLayout.indPointersStart { b[i] = 0 } }

        var reader = disk
        let before = CFFSCheck.check(superblock: superblock) { block in try? reader.read([block]).first }
        #expect(before.violations == [])
        #expect(before.notes.contains { $0.contains("block \(directoryBlock) was never laid out") }, "\(before.notes)")
        #expect(before.notes.contains { $0.contains("indirect block \(indirectBlock) was never laid out") }, "\(before.notes)")

        let kernel = Kernel(host: SimulatedHost(frameCount: 4096))
        try kernel.mountDisk(disk, format: false)
        // A user who may not write /d reads the block as empty and leaves it as it is.
        let outsider = try ExOSEnvironment.mount(kernel, uid: 1000, gid: 1000, now: { 1 })
        #expect(try outsider.list("/d") == [])
        let cached = try #require(kernel.xn?.registryEntry(directoryBlock)?.frame)
        #expect(kernel.host.memory.copy(of: cached) == [UInt8](repeating: 0, count: KernelLimits.pageBytes))
        let again = try ExOSEnvironment.mount(kernel, uid: 0, gid: 0, now: { 1 })
        #expect(try again.list("/d") == [])
        try again.put("/d/new", [1, 2, 3])
        #expect(try again.list("/d") == ["new"])
        #expect(try again.get("/big") == pattern(8 * 4096 + 100))
        let fd = try again.open("/big", .readWrite)
        _ = try again.pwrite(fd, [9, 9], at: 7 * 4096 + 5)
        try again.close(fd)
        try again.sync()
        var after = try #require(kernel.xn).device
        let report = CFFSCheck.check(superblock: superblock) { block in try? after.read([block]).first }
        #expect(report.violations == [])
        #expect(!report.notes.contains { $0.contains("block \(directoryBlock) was never laid out") }, "laid out at its first use")
    }
}

extension CorruptImages {
    /// Issue 23, findings 6 and 7: a crafted image with a nameless directory entry (a
    /// walk that trusts names recurses into it for ever), a file of 2^64 - 1 bytes and a
    /// link count of 65,535. fsck names each as damage; ExOS gives EIO for what holds
    /// them, the shell an error, and nothing traps.
    @Test func namelessEntriesAndImpossibleSizesAreDamageNotTraps() throws {
        let m = try Machine(blocks: 4096, frames: 4096, seed: 5)
        let os = m.root
        try os.mkdir("/d")
        try os.mkdir("/d/sub")
        try os.put("/d/f", pattern(5000))
        try os.mkdir("/e")
        try os.put("/e/huge", pattern(100))
        try os.sync()
        let fs = os.fs
        let d = try #require(try fs.lookup(Array("d".utf8), in: .root))
        let sub = try #require(try fs.lookup(Array("sub".utf8), in: d))
        let f = try #require(try fs.lookup(Array("f".utf8), in: d))
        let e = try #require(try fs.lookup(Array("e".utf8), in: .root))
        let huge = try #require(try fs.lookup(Array("huge".utf8), in: e))
        let superblock = fs.superblock
        var disk = try #require(try m.kernel.shutdown())
        disk.corrupt(sub.block) { b in b[CFFSLayout.slotOffset(sub.slot) + CFFSLayout.eNameLength] = 0 }
        disk.corrupt(huge.block) { b in b.put64(.max, at: CFFSLayout.slotOffset(huge.slot) + CFFSLayout.eSize) }
        disk.corrupt(f.block) { b in
            b[CFFSLayout.slotOffset(f.slot) + CFFSLayout.eNlink] = 0xff
            b[CFFSLayout.slotOffset(f.slot) + CFFSLayout.eNlink + 1] = 0xff
        }

        var reader = disk
        let report = CFFSCheck.check(superblock: superblock) { block in try? reader.read([block]).first }
        #expect(report.violations.contains { $0.contains("has an invalid name") }, "\(report.violations)")
        #expect(report.violations.contains { $0.contains("/e/huge") && $0.contains("past the") }, "\(report.violations)")
        #expect(report.violations.contains { $0.contains("/d/f") && $0.contains("link count") }, "\(report.violations)")

        let kernel = Kernel(host: SimulatedHost(frameCount: 4096))
        try kernel.mountDisk(disk, format: false)
        let again = try ExOSEnvironment.mount(kernel, uid: 0, gid: 0, now: { 1 })
        #expect(throws: Errno.EIO) { _ = try again.list("/d") }
        #expect(throws: Errno.EIO) { _ = try again.stat("/e/huge") }
        #expect(throws: Errno.EIO) { _ = try again.open("/e/huge", .readOnly) }
        #expect(throws: Errno.EIO) { _ = try again.list("/e") }
        var errors: [String] = []
        let shell = Shell(os: again, standardOutput: { _ in }, standardError: { errors.append($0) })
        #expect(!shell.run("du -s /"))
        #expect(errors.contains { $0.contains("Input/output error") }, "\(errors)")
        #expect(kernel.checkInvariants() == [])
    }
}
