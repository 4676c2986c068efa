// A hostile co-user of a shared image, who skips C-FFS and calls the kernel with block
// numbers read from the public registry and bytes of his own choosing. Each test is one
// way in that an outside attack found open (issue 23), run in both modes; each must be
// refused with an error and change nothing that is not the attacker's to change.

@testable import CFFS
import ExOS
import Foundation
@testable import XokTools
import Testing
import XN
import Xok
import XokABI
import XokHostLinux
import XokSimulation

private func le64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

extension Process {
    /// The place of the entry at `path` (every component looked up from the root).
    func place(_ path: String) throws -> FileRef {
        var ref = FileRef.root
        for component in path.split(separator: "/") {
            ref = try #require(try fs.lookup(Array(component.utf8), in: ref))
        }
        return ref
    }

    /// A frame of this process's own, bound writable here, to hand the kernel.
    func frame() throws -> FrameNumber {
        let frame = try fs.port.allocateFrame(credential: ExOSSlot.frames, acl: fs.identity.frameACL)
        try fs.port.map(frame, writable: true, credential: ExOSSlot.user)
        return frame
    }
}

@Suite struct HostileCoUser {
    /// Finding 1: reaching a file needs search permission on every directory of its path,
    /// however the block is named.
    @Test(arguments: Mode.allCases) func aBlockInADirectoryBobMayNotSearchIsRefusedHoweverHeNamesIt(_ mode: Mode) throws {
        let m = try Machine(mode)
        let alice = try m.process(uid: 1000, gid: 1000)
        let bob = try m.process(uid: 1001, gid: 1001)
        try m.root.mkdir("/alice", mode: 0o755)
        try m.root.chown("/alice", uid: 1000, gid: 1000)
        try alice.chmod("/alice", 0o700)
        try alice.put("/alice/open", Array("open by its mode".utf8), mode: 0o644)
        try alice.mkdir("/alice/sub", mode: 0o755)
        try alice.put("/alice/sub/deep", Array("writable by its mode".utf8), mode: 0o666)
        try alice.sync()
        let openData = try alice.fs.inode(try alice.place("/alice/open")).pointers[0]
        let sub = try alice.place("/alice/sub")
        let subBlock = try alice.fs.inode(sub).pointers[0]
        let deep = try alice.place("/alice/sub/deep")
        let deepData = try alice.fs.inode(deep).pointers[0]

        // ExOS refuses him.
        _ = try bob.list("/")
        #expect(throws: Errno.EACCES) { _ = try bob.get("/alice/open") }
        #expect(throws: Errno.EACCES) { _ = try bob.list("/alice/sub") }
        // So does the kernel, whichever call names the blocks.
        let port = bob.fs.port
        let frame = try bob.frame()
        for block in [openData, subBlock, deepData] {
            #expect(throws: KernelError.permissionDenied) { _ = try port.readIn(block, frame: frame, credential: ExOSSlot.user) }
            #expect(throws: KernelError.permissionDenied) { _ = try port.map(block, writable: false, credential: ExOSSlot.user) }
            #expect(throws: KernelError.permissionDenied) { try port.read(block, into: frame, credential: ExOSSlot.user) }
        }
        #expect(throws: KernelError.permissionDenied) { try port.writeData(deepData, .inline([(0, Array("bob".utf8))]), credential: ExOSSlot.user) }
        #expect(throws: KernelError.permissionDenied) { _ = try port.map(deepData, writable: true, credential: ExOSSlot.user) }
        // Nor may he change the 0666 file's entry (its times), which its mode alone allows.
        let at = CFFSLayout.slotOffset(deep.slot) + CFFSLayout.eMtime
        #expect(throws: KernelError.permissionDenied) { try port.modify(deep.block, .write, .inline([(at, le64(7))]), credential: ExOSSlot.user) }
        #expect(try alice.get("/alice/sub/deep") == Array("writable by its mode".utf8))

        // Search permission given, UNIX's rules are the file's own again.
        try alice.chmod("/alice", 0o711)
        #expect(try bob.get("/alice/open") == Array("open by its mode".utf8))
        #expect(try port.readIn(openData, frame: frame, credential: ExOSSlot.user) != FrameNumber(rawValue: .max))
        #expect(throws: Errno.EACCES) { _ = try bob.list("/alice") }
        try alice.sync()
        #expect(m.check.violations == [])
    }

    /// A directory that may be read but not searched lists, whatever its size, and gives
    /// nothing of what it holds.
    @Test(arguments: Mode.allCases) func aDirectoryReadableButNotSearchableListsAndGivesNothingAway(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.root.mkdir("/listed", mode: 0o744)
        for i in 0..<40 { try m.root.put("/listed/f\(i)", [UInt8(i)], mode: 0o644) }
        try m.root.sync()
        let bob = try m.process(uid: 1001, gid: 1001)
        #expect(try bob.list("/listed").count == 40)
        #expect(throws: Errno.EACCES) { _ = try bob.get("/listed/f39") }
        let last = try m.root.place("/listed/f39")
        let data = try m.root.fs.inode(last).pointers[0]
        #expect(throws: KernelError.permissionDenied) { _ = try bob.fs.port.map(data, writable: false, credential: ExOSSlot.user) }
    }

    /// Finding 2: whoever lays out a fresh block (a directory's next block, an indirect
    /// block) must give it what its parent says it is, with nothing else in that change.
    @Test(arguments: Mode.allCases) func aFreshBlockTakesOnlyWhatItsParentSaysItIs(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.shared("/tmp")
        let alice = try m.process(uid: 1000, gid: 1000)
        try alice.put("/tmp/a", [1])
        try alice.sync()
        let bob = try m.process(uid: 1001, gid: 1001)
        _ = try bob.list("/tmp")
        let fs = bob.fs, port = fs.port
        let tmp = try fs.inode(try bob.place("/tmp"))
        let tmpBlock = tmp.pointers[0]

        // Bob, who may write /tmp, appends a block to it.
        let child = try port.firstFreeBlock(from: tmpBlock + 64)
        try port.modify(tmpBlock, .allocate(child, fs.dirType, frame: try bob.frame()), .inline([(CFFSLayout.next, le64(child))]), credential: ExOSSlot.user)
        var header = BlockHeader(magic: CFFSLayout.dirMagic, dirType: fs.dirType, indType: fs.indType, inoType: fs.inoType)
        header.uid = tmp.uid
        header.gid = tmp.gid
        header.mode = tmp.mode
        var planted = Inode()
        planted.mode = FileMode.regular | 0o4755
        planted.uid = 1000
        planted.gid = 1000
        planted.name = Array("alices".utf8)
        let data = try port.firstFreeBlock(from: child + 1)
        planted.pointers[0] = data
        planted.size = 4
        // Entries owned by another, with a data block of his, in the layout: refused.
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(child, .allocate(data, .data, frame: try bob.frame()), .inline([(0, header.encoded), (CFFSLayout.slotOffset(0), planted.encoded)]),
                            credential: ExOSSlot.user)
        }
        // His own entry in the layout: refused too (entries come by the rules of changes).
        planted.uid = 1001
        planted.pointers[0] = 0
        planted.size = 0
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(child, .write, .inline([(0, header.encoded), (CFFSLayout.slotOffset(0), planted.encoded)]), credential: ExOSSlot.user)
        }
        // A stamp of his own choosing, other type ids, or a next block: refused.
        for forged in [{ (h: inout BlockHeader) in h.uid = 1001 }, { $0.mode = FileMode.directory | 0o700 }, { $0.gid = 1001 },
                       { swap(&$0.dirType, &$0.indType) }, { $0.next = data }] {
            var h = header
            forged(&h)
            #expect(throws: KernelError.permissionDenied) { try port.modify(child, .write, .inline([(0, h.encoded)]), credential: ExOSSlot.user) }
        }
        // What the parent says: accepted. Then entries follow the rules: his own only.
        try port.modify(child, .write, .inline([(0, header.encoded)]), credential: ExOSSlot.user)
        planted.uid = 1000
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(child, .write, .inline([(CFFSLayout.slotOffset(0), planted.encoded)]), credential: ExOSSlot.user)
        }
        planted.uid = 1001
        planted.name = Array("bobs".utf8)
        try port.modify(child, .write, .inline([(CFFSLayout.slotOffset(0), planted.encoded)]), credential: ExOSSlot.user)
        #expect(try alice.list("/tmp").sorted() == ["a", "bobs"])
        #expect(try alice.stat("/tmp/bobs").uid == 1001)

        // An indirect block under his own file takes his file's stamp and the level its
        // pointer says.
        try bob.put("/tmp/mine", [1, 2, 3], mode: 0o600)
        let mine = try bob.place("/tmp/mine")
        let ind = try port.firstFreeBlock(from: child + 64)
        try port.modify(mine.block, .allocate(ind, fs.indType, frame: try bob.frame()),
                        .inline([(CFFSLayout.slotOffset(mine.slot) + CFFSLayout.eIndirect, le64(ind))]), credential: ExOSSlot.user)
        var indHeader = BlockHeader(magic: CFFSLayout.indMagic, dirType: fs.dirType, indType: fs.indType, inoType: fs.inoType)
        indHeader.level = 1
        indHeader.uid = 1001
        indHeader.gid = 1001
        indHeader.mode = FileMode.regular | 0o600
        for forged in [{ (h: inout BlockHeader) in h.uid = 1000 }, { $0.level = 2 }, { $0.mode = FileMode.regular | 0o666 }] {
            var h = indHeader
            forged(&h)
            #expect(throws: KernelError.permissionDenied) { try port.modify(ind, .write, .inline([(0, h.encoded)]), credential: ExOSSlot.user) }
        }
        try port.modify(ind, .write, .inline([(0, indHeader.encoded)]), credential: ExOSSlot.user)

        try bob.sync()
        try alice.sync()
        try m.root.sync()
        #expect(m.check.violations == [])
        #expect(m.cffsCheck.violations == [])
    }

    /// Findings 6 and 7: no entry without a name, and no size past what a file can hold,
    /// even from the file's owner calling the kernel himself.
    @Test(arguments: Mode.allCases) func noNamelessEntryAndNoSizeBeyondTheLayout(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.shared("/tmp")
        let bob = try m.process(uid: 1001, gid: 1001)
        try bob.put("/tmp/mine", [1, 2, 3])
        let mine = try bob.place("/tmp/mine")
        let port = bob.fs.port
        let at = CFFSLayout.slotOffset(mine.slot)
        for size in [UInt64.max, CFFSLayout.bytesMax + 1, 1 << 63] {
            #expect(throws: KernelError.permissionDenied) {
                try port.modify(mine.block, .write, .inline([(at + CFFSLayout.eSize, le64(size))]), credential: ExOSSlot.user)
            }
        }
        try port.modify(mine.block, .write, .inline([(at + CFFSLayout.eSize, le64(CFFSLayout.bytesMax))]), credential: ExOSSlot.user)
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(mine.block, .write, .inline([(at + CFFSLayout.eNameLength, [0])]), credential: ExOSSlot.user)
        }
        var nameless = Inode()
        nameless.mode = FileMode.directory | 0o755
        nameless.uid = 1001
        let free = try #require((0..<CFFSLayout.slots).first { (try? bob.fs.inode(FileRef(block: mine.block, slot: $0))) == nil })
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(mine.block, .write, .inline([(CFFSLayout.slotOffset(free), nameless.encoded)]), credential: ExOSSlot.user)
        }
        var link = nameless
        link.mode = FileMode.symlink | 0o777
        link.name = Array("l".utf8)
        link.size = 4097
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(mine.block, .write, .inline([(CFFSLayout.slotOffset(free), link.encoded)]), credential: ExOSSlot.user)
        }
        #expect(try bob.list("/tmp") == ["mine"])
    }

    /// Finding 9: in a sticky directory only the entry's owner, the directory's owner or
    /// the superuser may remove or rename an entry.
    @Test(arguments: Mode.allCases) func aStickyDirectoryKeepsOthersFromRemovingOrRenamingYourFiles(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.root.mkdir("/tmp")
        try m.root.chmod("/tmp", 0o1777)
        let alice = try m.process(uid: 1000, gid: 1000)
        let bob = try m.process(uid: 1001, gid: 1001)
        try alice.put("/tmp/hers", Array("hers".utf8), mode: 0o600)
        try alice.put("/tmp/also", Array("also".utf8), mode: 0o666)
        try bob.put("/tmp/his", Array("his".utf8))
        #expect(throws: Errno.EPERM) { try bob.unlink("/tmp/hers") }
        #expect(throws: Errno.EPERM) { try bob.rename("/tmp/also", "/tmp/taken") }
        #expect(throws: Errno.EPERM) { try bob.rename("/tmp/his", "/tmp/hers") }
        try bob.mkdir("/tmp/bobdir")
        #expect(throws: Errno.EPERM) { try bob.rename("/tmp/also", "/tmp/bobdir/also") }
        // Through the kernel: clearing her slot, or moving her entry out, is refused.
        let hers = try bob.place("/tmp/hers")
        let port = bob.fs.port
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(hers.block, .write, .inline([(CFFSLayout.slotOffset(hers.slot), [UInt8](repeating: 0, count: CFFSLayout.slotBytes))]),
                            credential: ExOSSlot.user)
        }
        let bobdir = try bob.fs.inode(try bob.place("/tmp/bobdir")).pointers[0]
        #expect(throws: KernelError.permissionDenied) {
            try port.move(from: hers.block, offset: CFFSLayout.slotOffset(hers.slot), count: CFFSLayout.slotBytes, to: bobdir,
                          at: CFFSLayout.slotOffset(0), edits: .none, credential: ExOSSlot.user)
        }
        #expect(try alice.get("/tmp/hers") == Array("hers".utf8))
        // His own he may remove; she hers; the superuser anything.
        try bob.unlink("/tmp/his")
        try alice.rename("/tmp/hers", "/tmp/hers2")
        try m.root.unlink("/tmp/also")
        #expect(try alice.list("/tmp").sorted() == ["bobdir", "hers2"])
        try alice.sync()
        try bob.sync()
        #expect(m.check.violations == [])
    }

    /// Finding 3: a sync means the caller's changes are on disk, even when a co-writer
    /// of the same directory block left a new file there that he never synced.
    @Test(arguments: Mode.allCases) func aSyncIsTrueThoughACoWriterNeverSyncs(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.shared("/tmp")
        try m.root.sync()
        let alice = try m.process(uid: 1000, gid: 1000)
        let bob = try m.process(uid: 1001, gid: 1001)
        try bob.put("/tmp/bobs", Array(repeating: 7, count: 9000))
        try bob.mkdir("/tmp/bobdir")
        try alice.put("/tmp/alices", Array("kept".utf8))
        try alice.sync()
        let tmpBlock = try alice.fs.inode(try alice.place("/tmp")).pointers[0]
        var disk = m.xn.device
        let onDisk = try #require(try disk.read([tmpBlock]).first)
        let names = (0..<CFFSLayout.slots).compactMap { Inode(onDisk, at: CFFSLayout.slotOffset($0)) }.map { String(decoding: $0.name, as: UTF8.self) }
        #expect(names.contains("alices"), "\(names)")
        #expect(m.check.violations == [])
        #expect(m.cffsCheck.violations == [])
    }

    /// Finding 5: a freed block's charge goes back to whoever was charged for it, not to
    /// whoever frees it; a dead environment's charges are its parent's, and come back to
    /// it when the blocks are freed, so honest use never leaks quota.
    @Test(arguments: Mode.allCases) func aFreedBlockGoesBackToWhoeverWasChargedForIt(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.shared("/tmp")
        try m.root.sync()
        let kernel = m.kernel
        let bob = try m.process(uid: 1001, gid: 1001)
        let alice = try m.process(uid: 1000, gid: 1000)
        try bob.put("/tmp/his", pattern(64 * 1024))
        try alice.put("/tmp/hers", pattern(64 * 1024))
        let bobHolds = try #require(kernel.quota(of: bob.fs.port.environment)).used.blocks
        let aliceHolds = try #require(kernel.quota(of: alice.fs.port.environment)).used.blocks
        try bob.unlink("/tmp/hers")
        #expect(try #require(kernel.quota(of: bob.fs.port.environment)).used.blocks == bobHolds, "the deleter gains nothing")
        #expect(try #require(kernel.quota(of: alice.fs.port.environment)).used.blocks == aliceHolds - 17, "16 data blocks and an indirect one")

        // Write, exit, delete, over and over: the parent's charge comes back each time.
        let parent = kernel.initEnvironment
        let baseline = try #require(kernel.quota(of: parent)).used.blocks
        for cycle in 0..<6 {
            let writer = try m.process(uid: 1000, gid: 1000)
            try writer.put("/tmp/cycle", pattern(300_000))
            try writer.sync()
            kernel.kill(writer.fs.port.environment)
            #expect(try #require(kernel.quota(of: parent)).used.blocks > baseline)
            try bob.unlink("/tmp/cycle")
            #expect(try #require(kernel.quota(of: parent)).used.blocks == baseline, "cycle \(cycle)")
        }
        #expect(kernel.checkInvariants() == [])
    }

    /// The property itself: a hostile user's random raw calls, each checked against UNIX's
    /// rules (XokSimulation/ProtectionFuzz.swift). CI runs 100,000 calls
    /// (`xok sim --protection`); this runs a few thousand.
    @Test(arguments: [UInt64(101), 102]) func randomHostileCallsGetNothingUNIXWouldRefuse(seed: UInt64) {
        let report = ProtectionFuzz(seed: seed, calls: 1500).run()
        #expect(report.violations == [])
        #expect(report.calls == 1500)
        #expect(report.allowed > 100, "the generator reaches what bob may do, too")
    }

    /// Finding 10: a revocation's deadline is kept by the daemon's clock, with no call
    /// from anyone to move it.
    @Test func aRevocationDeadlineIsKeptByTheDaemonsClockAlone() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("xokd-clock-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let daemon = try Xokd(image: folder.appendingPathComponent("x.img").path, socket: folder.appendingPathComponent("s").path,
                              frames: 4096, say: { _ in })
        let done = StopFlag()
        Thread {
            try? daemon.run()
            done.set()
        }.start()
        defer {
            daemon.stop()
            while !done.isSet { usleep(10_000) }
        }
        let kernel = daemon.kernel
        let (a, b, frame) = try daemon.lock.withLock { () throws -> (LocalPort<LinuxHost>, LocalPort<LinuxHost>, FrameNumber) in
            let quota = ExOSEnvironment.share(of: kernel, parts: 8)
            let a = try ExOSEnvironment.make(kernel, uid: 1000, gid: 1000, quota: quota).port
            let b = try ExOSEnvironment.make(kernel, uid: 1001, gid: 1001, quota: quota).port
            let shared = try AccessControlList([try Capability(name: CFFSNames.mount, rights: .read),
                                                try Capability(name: [SystemACLs.framesName], rights: .write)])
            let frame = try a.allocateFrame(credential: ExOSSlot.frames, acl: shared)
            _ = try b.map(frame, writable: false, credential: ExOSSlot.mount)
            try a.revoke(frame, graceTicks: 200_000, credential: ExOSSlot.frames)   // 200 ms
            return (a, b, frame)
        }
        #expect(daemon.lock.withLock { kernel.binding(of: frame, in: b.environment) } != nil)
        usleep(800_000)
        #expect(daemon.lock.withLock { kernel.binding(of: frame, in: b.environment) } == nil, "still bound 600 ms past its deadline")
        _ = a
    }

    /// XN remembers paths; one a user passed with a group's capability must not open for
    /// another user who calls with a capability both hold (the mount capability, with
    /// which anyone who reaches a symbolic link may read it).
    @Test(arguments: Mode.allCases) func aPathPassedThroughAGroupStaysThatUsers(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.root.mkdir("/team", mode: 0o750)
        try m.root.chown("/team", uid: 0, gid: 50)
        try m.root.chmod("/team", 0o750)
        try m.root.mkdir("/team/sub", mode: 0o755)
        try m.root.symlink("/where/the/plans/are", "/team/sub/plans")
        try m.root.sync()
        let data = try m.root.fs.inode(try m.root.place("/team/sub/plans")).pointers[0]
        let carol = try m.process(uid: 1002, gid: 50)
        let eve = try m.process(uid: 1003, gid: 60)
        _ = try carol.list("/")
        _ = try eve.list("/")
        try carol.fs.port.read(data, into: try carol.frame(), credential: ExOSSlot.mount)
        #expect(throws: KernelError.permissionDenied) { try eve.fs.port.read(data, into: try eve.frame(), credential: ExOSSlot.mount) }
    }
}
