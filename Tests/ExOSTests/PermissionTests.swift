import CFFS
import ExOS
import Testing
import XokABI
import XokSimulation

private func bytes(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

/// Alice and bob on a new C-FFS: a shared /tmp holding alice's 0600 /tmp/secret and bob's
/// directory /tmp/bob, and alice's own /alice (0755) holding her 0600 /alice/kept.
private func aliceAndBob(_ mode: Mode) throws -> (Machine, Process, Process) {
    let m = try Machine(mode)
    try m.shared("/tmp")
    let alice = try m.process(uid: 1000, gid: 1000)
    let bob = try m.process(uid: 1001, gid: 1001)
    try m.root.mkdir("/alice", mode: 0o755)
    try m.root.chown("/alice", uid: 1000, gid: 1000)
    try alice.put("/alice/kept", Array("kept".utf8), mode: 0o600)
    try alice.put("/tmp/secret", Array("alice's".utf8), mode: 0o600)
    try bob.mkdir("/tmp/bob", mode: 0o755)
    return (m, alice, bob)
}

/// Two users on one C-FFS: UNIX permissions hold even against a process that skips
/// C-FFS and calls the kernel with its own code, because C-FFS's UDFs refuse it there.
@Suite struct TwoUsers {
    @Test(arguments: Mode.allCases) func aPrivateFileStaysPrivateEvenThroughTheKernel(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.shared("/home")
        let alice = try m.process(uid: 1000, gid: 1000)
        let bob = try m.process(uid: 1001, gid: 1001)
        try alice.put("/home/secret", Array("alice's".utf8), mode: 0o600)
        try alice.sync()

        // Through ExOS: refused with EACCES.
        #expect(throws: Errno.EACCES) { _ = try bob.get("/home/secret") }
        #expect(throws: Errno.EACCES) { _ = try bob.open("/home/secret", .writeOnly) }
        #expect(throws: Errno.EPERM) { try bob.chmod("/home/secret", 0o666) }

        // Straight to the kernel with bob's own credential: the UDFs refuse it.
        let home = try #require(try alice.fs.lookup(Array("home".utf8), in: .root))
        let ref = try #require(try alice.fs.lookup(Array("secret".utf8), in: home))
        let inode = try alice.fs.inode(ref)
        let data = inode.pointers[0]
        #expect(data != 0)
        let port = bob.fs.port
        _ = try bob.list("/home")   // bob may read the directory, as in UNIX
        let frame = try port.allocateFrame(credential: ExOSSlot.frames, acl: bob.fs.identity.frameACL)
        #expect(throws: KernelError.permissionDenied) { _ = try port.readIn(data, frame: frame, credential: ExOSSlot.user) }
        #expect(throws: KernelError.permissionDenied) { _ = try port.map(data, writable: false, credential: ExOSSlot.user) }
        #expect(throws: KernelError.permissionDenied) {
            try port.writeData(data, .inline([(0, Array("bob was here".utf8))]), credential: ExOSSlot.user)
        }
        // Nor may he rewrite the entry to make it his, or grant himself access.
        let at = CFFSLayout.slotOffset(ref.slot)
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(ref.block, .write, .inline([(at + CFFSLayout.eMode, [0xb6, 0x81, 0, 0])]), credential: ExOSSlot.user)
        }
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(ref.block, .write, .inline([(at + CFFSLayout.eUID, [0xe9, 0x03, 0, 0])]), credential: ExOSSlot.user)
        }
        // Nor take over the directory through its block's header (the stamp its UDF checks):
        // mode 040700, or uid 1001.
        let homeBlock = try bob.fs.inode(home).pointers[0]
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(homeBlock, .write, .inline([(CFFSLayout.mode, [0xc0, 0x41, 0, 0])]), credential: ExOSSlot.user)
        }
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(homeBlock, .write, .inline([(CFFSLayout.uid, [0xe9, 0x03, 0, 0])]), credential: ExOSSlot.user)
        }
        #expect(try alice.get("/home/secret") == Array("alice's".utf8))
        #expect(m.check.violations == [])
    }

    @Test(arguments: Mode.allCases) func statOfASearchOnlyDirectoryNeedsNoReadPermission(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.root.mkdir("/private", mode: 0o711)
        try m.root.mkdir("/private/sub")
        let bob = try m.process(uid: 1001, gid: 1001)
        #expect(throws: Errno.EACCES) { _ = try bob.list("/private") }
        let status = try bob.stat("/private")
        #expect(status.mode & 0o777 == 0o711)
        #expect(status.nlink == 3)
        #expect(try bob.stat("/private/sub").nlink == 2)
    }

    @Test(arguments: Mode.allCases) func groupAndOthersBitsAreHonoured(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.shared("/shared")
        let alice = try m.process(uid: 1000, gid: 50)
        let carol = try m.process(uid: 1002, gid: 50)
        let dave = try m.process(uid: 1003, gid: 60)
        try alice.put("/shared/notes", Array("group".utf8), mode: 0o640)
        #expect(try carol.get("/shared/notes") == Array("group".utf8))
        #expect(throws: Errno.EACCES) { _ = try dave.get("/shared/notes") }
        #expect(throws: Errno.EACCES) { try carol.put("/shared/notes", [1]) }
    }

    @Test(arguments: Mode.allCases) func aDirectoryWithoutWriteRefusesNewNames(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.root.mkdir("/ro", mode: 0o755)
        let bob = try m.process(uid: 1001, gid: 1001)
        #expect(throws: Errno.EACCES) { try bob.put("/ro/x", [1]) }
        #expect(throws: Errno.EACCES) { try bob.mkdir("/ro/d") }
        // And through the kernel: a new entry in the root's directory block.
        var inode = Inode()
        inode.mode = FileMode.regular | 0o644
        inode.uid = 1001
        inode.name = Array("x".utf8)
        let ro = try #require(try m.root.fs.lookup(Array("ro".utf8), in: .root))
        let block = try m.root.fs.inode(ro).pointers[0]
        _ = try bob.list("/ro")
        #expect(throws: KernelError.permissionDenied) {
            try bob.fs.port.modify(block, .write, .inline([(CFFSLayout.slotOffset(0), inode.encoded)]), credential: ExOSSlot.user)
        }
    }

    @Test(arguments: Mode.allCases) func aRenameAcrossDirectoriesNeedsWriteOnBothAndChangesNoOwnership(_ mode: Mode) throws {
        let (m, alice, bob) = try aliceAndBob(mode)
        try bob.mkdir("/tmp/bob/empty", mode: 0o755)
        try alice.sync()
        try bob.sync()

        // Out of a directory bob may not write, or into one: refused.
        #expect(throws: Errno.EACCES) { try bob.rename("/alice/kept", "/tmp/bob/kept") }
        try bob.put("/tmp/mine", [2])
        #expect(throws: Errno.EACCES) { try bob.rename("/tmp/mine", "/alice/mine") }
        // Between two he may write, as in UNIX, even another's file; it stays hers, 0600.
        try bob.rename("/tmp/secret", "/tmp/bob/secret")
        #expect(try bob.stat("/tmp/bob/secret").uid == 1000)
        #expect(throws: Errno.EACCES) { _ = try bob.get("/tmp/bob/secret") }

        // Straight to the kernel: the move's own rules.
        let port = bob.fs.port
        let tmp = try #require(try bob.fs.lookup(Array("tmp".utf8), in: .root))
        let tmpBlock = try bob.fs.inode(tmp).pointers[0]
        let bobDir = try #require(try bob.fs.lookup(Array("bob".utf8), in: tmp))
        let bobBlock = try bob.fs.inode(bobDir).pointers[0]
        let secret = try #require(try bob.fs.lookup(Array("secret".utf8), in: bobDir))
        #expect(secret.block == bobBlock)
        let from = CFFSLayout.slotOffset(secret.slot)
        let into = CFFSLayout.slotOffset(try #require((0..<CFFSLayout.slots).first { (try? bob.fs.inode(FileRef(block: tmpBlock, slot: $0))) == nil }))
        let move = { (offset: Int, count: Int, at: Int, edits: [(offset: Int, bytes: [UInt8])]) throws(KernelError) in
            try port.move(from: bobBlock, offset: offset, count: count, to: tmpBlock, at: at, edits: .inline(edits), credential: ExOSSlot.user)
        }
        // Making it his on the way, or readable: refused by the UDF.
        #expect(throws: KernelError.permissionDenied) { try move(from, CFFSLayout.slotBytes, into, [(into + CFFSLayout.eUID, [0xe9, 0x03, 0, 0])]) }
        #expect(throws: KernelError.permissionDenied) { try move(from, CFFSLayout.slotBytes, into, [(into + CFFSLayout.eMode, [0xb6, 0x81, 0, 0])]) }
        // Part of an entry, or an entry landing across two slots: refused.
        #expect(throws: KernelError.permissionDenied) { try move(from + 56, 8, into + 56, []) }
        let empty = try bob.fs.inode(try #require(try bob.fs.lookup(Array("empty".utf8), in: bobDir))).pointers[0]
        #expect(throws: KernelError.permissionDenied) {
            try port.move(from: bobBlock, offset: from, count: CFFSLayout.slotBytes, to: empty, at: CFFSLayout.slotOffset(0) + 8,
                          edits: .none, credential: ExOSSlot.user)
        }
        // Onto bytes in use, an edit outside the landing range, a range past the block.
        let used = CFFSLayout.slotOffset(try #require(try bob.fs.lookup(Array("mine".utf8), in: tmp)).slot)
        #expect(throws: KernelError.invalidArgument) { try move(from, CFFSLayout.slotBytes, used, []) }
        #expect(throws: KernelError.invalidArgument) { try move(from, CFFSLayout.slotBytes, into, [(0, [0])]) }
        #expect(throws: KernelError.invalidArgument) { try move(CFFSLayout.blockBytes - 8, 16, into, []) }
        // Into a file's indirect block, whose UDF takes part in no move: refused.
        try bob.put("/tmp/bob/big", Array(repeating: 1, count: 40_000))
        let big = try bob.fs.inode(try #require(try bob.fs.lookup(Array("big".utf8), in: bobDir)))
        let indirect = big.pointers[CFFSLayout.directCount]
        #expect(throws: KernelError.permissionDenied) {
            try port.move(from: bobBlock, offset: from, count: CFFSLayout.slotBytes, to: indirect, at: CFFSLayout.blockBytes - 512,
                          edits: .none, credential: ExOSSlot.user)
        }
        // A directory's entry into its own block: the tree would not be a tree.
        #expect(throws: KernelError.invalidArgument) {
            try m.root.fs.port.move(from: tmpBlock, offset: CFFSLayout.slotOffset(bobDir.slot), count: CFFSLayout.slotBytes, to: bobBlock,
                                    at: CFFSLayout.slotOffset(14), edits: .none, credential: ExOSSlot.user)
        }
        #expect(try alice.get("/tmp/bob/secret") == Array("alice's".utf8))
        try bob.sync()
        try alice.sync()
        #expect(m.check.violations == [])
        #expect(m.cffsCheck.violations == [])
    }

    @Test(arguments: Mode.allCases) func aHardLinkToAnotherUsersFileGivesNoAccessToIt(_ mode: Mode) throws {
        let (m, alice, bob) = try aliceAndBob(mode)
        try alice.sync()

        // A first link rewrites the file's directory: not where bob may not write.
        #expect(throws: Errno.EACCES) { try bob.link("/alice/kept", "/tmp/bob/kept") }
        // Where he may, he can name her file, as in UNIX; reading it is still hers to allow.
        try bob.link("/tmp/secret", "/tmp/bob/mine")
        #expect(try bob.stat("/tmp/bob/mine").uid == 1000)
        #expect(try bob.stat("/tmp/secret").nlink == 2)
        #expect(throws: Errno.EACCES) { _ = try bob.get("/tmp/bob/mine") }
        #expect(throws: Errno.EACCES) { _ = try bob.open("/tmp/bob/mine", .writeOnly) }
        #expect(throws: Errno.EPERM) { try bob.chmod("/tmp/bob/mine", 0o666) }

        // Straight to the kernel with bob's credential.
        let port = bob.fs.port
        let tmp = try #require(try bob.fs.lookup(Array("tmp".utf8), in: .root))
        let bobDir = try #require(try bob.fs.lookup(Array("bob".utf8), in: tmp))
        let bobBlock = try bob.fs.inode(bobDir).pointers[0]
        let file = try #require(try bob.fs.lookup(Array("mine".utf8), in: bobDir))
        let inode = try bob.fs.inode(file)
        #expect(file.slot == 0 && inode.pointers[0] != 0)
        let frame = try port.allocateFrame(credential: ExOSSlot.frames, acl: bob.fs.identity.frameACL)
        #expect(throws: KernelError.permissionDenied) { _ = try port.readIn(inode.pointers[0], frame: frame, credential: ExOSSlot.user) }
        // The inode block's own rules: no new owner or mode, no second entry, nothing moved out.
        let at = CFFSLayout.slotOffset(0)
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(file.block, .write, .inline([(at + CFFSLayout.eMode, [0xb6, 0x81, 0, 0])]), credential: ExOSSlot.user)
        }
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(file.block, .write, .inline([(CFFSLayout.slotOffset(1), [0xa4, 0x81, 0, 0])]), credential: ExOSSlot.user)
        }
        let free = try #require((0..<CFFSLayout.slots).first { (try? bob.fs.inode(FileRef(block: bobBlock, slot: $0))) == nil })
        #expect(throws: KernelError.permissionDenied) {
            try port.move(from: file.block, offset: at, count: CFFSLayout.slotBytes, to: bobBlock, at: CFFSLayout.slotOffset(free),
                          edits: .none, credential: ExOSSlot.user)
        }
        // A link entry's inode block never changes; a link to a block of a type that is
        // not shareable (her data, his own directory) is refused; so is a pointer to her
        // inode block that claims to be a plain write.
        let linkSlot = try #require((0..<CFFSLayout.slots).first { (try? bob.fs.inode(FileRef(block: bobBlock, slot: $0)))?.isLink == true })
        let linkAt = CFFSLayout.slotOffset(linkSlot)
        #expect(throws: KernelError.permissionDenied) {
            try port.modify(bobBlock, .free(file.block), .inline([(linkAt + CFFSLayout.eDirect, bytes(0))]), credential: ExOSSlot.user)
        }
        var forged = Inode()
        forged.mode = FileMode.link
        forged.uid = 1001
        forged.gid = 1001
        forged.name = Array("forged".utf8)
        forged.pointers[0] = inode.pointers[0]
        let freeAt = CFFSLayout.slotOffset(free)
        #expect(throws: KernelError.invalidArgument) {
            try port.modify(bobBlock, .link(inode.pointers[0]), .inline([(freeAt, forged.encoded)]), credential: ExOSSlot.user)
        }
        forged.pointers[0] = file.block
        #expect(throws: KernelError.pointerInvented) {
            try port.modify(bobBlock, .write, .inline([(freeAt, forged.encoded)]), credential: ExOSSlot.user)
        }
        // Removing his own name is his to do; her file stays, with its one name.
        try bob.unlink("/tmp/bob/mine")
        #expect(try alice.stat("/tmp/secret").nlink == 1)
        #expect(try alice.get("/tmp/secret") == Array("alice's".utf8))
        try bob.sync()
        try alice.sync()
        #expect(m.check.violations == [])
        #expect(m.cffsCheck.violations == [])
    }

    @Test(arguments: Mode.allCases) func aDirectoryJustMadeTakesAnotherUsersFileBeforeItReachesTheDisk(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.shared("/tmp")
        // Nothing synced: /tmp's block is fresh, allocated by root's environment.
        let alice = try m.process(uid: 1000, gid: 1000)
        try alice.put("/tmp/a", [1, 2, 3])
        #expect(try alice.stat("/tmp/a").uid == 1000)
        #expect(try m.root.get("/tmp/a") == [1, 2, 3])
        try alice.sync()
        try m.root.sync()
        #expect(m.check.violations == [])
    }

    @Test(arguments: Mode.allCases) func aNewEntryMustNameItsCreatorAsOwner(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.shared("/tmp")
        let bob = try m.process(uid: 1001, gid: 1001)
        _ = try bob.list("/tmp")
        let tmp = try #require(try bob.fs.lookup(Array("tmp".utf8), in: .root))
        let block = try bob.fs.inode(tmp).pointers[0]
        var inode = Inode()
        inode.mode = FileMode.regular | 0o644
        inode.name = Array("planted".utf8)
        for forged: UInt32 in [0, 1000, 1002] {
            inode.uid = forged
            #expect(throws: KernelError.permissionDenied) {
                try bob.fs.port.modify(block, .write, .inline([(CFFSLayout.slotOffset(0), inode.encoded)]), credential: ExOSSlot.user)
            }
        }
        inode.uid = 1001
        try bob.fs.port.modify(block, .write, .inline([(CFFSLayout.slotOffset(0), inode.encoded)]), credential: ExOSSlot.user)
        #expect(try m.root.stat("/tmp/planted").uid == 1001)
    }

    @Test(arguments: Mode.allCases) func aGroupMemberCreatesThroughTheGroupAsHimself(_ mode: Mode) throws {
        let m = try Machine(mode)
        try m.root.mkdir("/team", mode: 0o770)
        try m.root.chown("/team", uid: 0, gid: 50)
        try m.root.chmod("/team", 0o770)
        let carol = try m.process(uid: 1002, gid: 50)
        let dave = try m.process(uid: 1003, gid: 60)
        try carol.put("/team/plan", Array("plan".utf8), mode: 0o640)
        #expect(try carol.stat("/team/plan").uid == 1002)
        #expect(try m.root.get("/team/plan") == Array("plan".utf8))
        #expect(throws: Errno.EACCES) { try dave.put("/team/x", [1]) }
        #expect(throws: Errno.EACCES) { _ = try dave.list("/team") }
    }
}
