// A malicious library file system against XN, each test named for its attack. Every one
// is refused with the documented error and the honest file system's tree survives a
// remount intact (fsck clean).

import BPF
import Testing
import XN
import XokABI
import XokSimulation

@Suite struct XNAttacks {
    /// a's tree: a directory with a data block, all durable.
    func honestTree(_ v: Volume) throws -> (dir: BlockNumber, file: BlockNumber) {
        let dir = try v.a.add(v.xn, under: v.rootA, type: v.a.type)
        let file = try v.a.add(v.xn, under: dir, type: .data)
        try v.xn.writeData(file, offset: 0, bytes: Array("mine".utf8), credential: v.a.credential, by: envA)
        try v.xn.writeback([file], by: envA)
        try v.xn.writeback([dir], by: envA)
        try v.xn.writeback([v.rootA], by: envA)
        return (dir, file)
    }

    func expectHonestTreeIntact(_ v: Volume, _ tree: (dir: BlockNumber, file: BlockNumber)) throws {
        try v.remount()
        #expect(try v.a.children(v.xn, of: v.rootA) == [Pointer(block: tree.dir, type: v.a.type)])
        #expect(try v.xn.read(tree.file, credential: v.a.credential).prefix(4) == ArraySlice("mine".utf8))
        #expect(v.check.violations == [])
    }

    @Test func inventAPointer() throws {
        let v = try Volume()
        let tree = try honestTree(v)
        // b claims a's file as its own child, and a free block, without allocating.
        for target in [tree.file, v.xn.firstFree(from: 0)!] {
            #expect(throws: XNError.pointerInvented) {
                try v.xn.modify(v.rootB, [Modification(offset: slot(0), bytes: TreeClient<Disk>.entry(target, .data)),
                                          listFormat.highWater(TreeFormat.entries)],
                                operation: .write, credential: v.b.credential, by: envB)
            }
        }
        try expectHonestTreeIntact(v, tree)
    }

    @Test func stealAnotherFileSystemsBlock() throws {
        let v = try Volume()
        let tree = try honestTree(v)
        #expect(throws: XNError.notFree) {
            try v.xn.modify(v.rootB, [Modification(offset: slot(0), bytes: TreeClient<Disk>.entry(tree.dir, v.b.type))],
                            operation: .allocate(tree.dir, v.b.type), credential: v.b.credential, by: envB)
        }
        #expect(throws: XNError.aclDenied) { try v.xn.read(tree.file, credential: v.b.credential) }
        #expect(throws: XNError.aclDenied) { try v.xn.writeData(tree.file, offset: 0, bytes: [0], credential: v.b.credential, by: envB) }
        #expect(throws: XNError.aclDenied) { try v.b.remove(v.xn, tree.file, from: tree.dir) }
        #expect(throws: XNError.aclDenied) {
            try v.xn.modify(tree.dir, [Modification(offset: slot(0), bytes: [UInt8](repeating: 0, count: 16))], operation: .free(tree.file),
                            credential: v.b.credential, by: envB)
        }
        try expectHonestTreeIntact(v, tree)
    }

    @Test func freeABlockTwice() throws {
        let v = try Volume()
        let file = try v.a.add(v.xn, under: v.rootA, type: .data)
        try v.xn.writeback([file], by: envA)
        try v.xn.writeback([v.rootA], by: envA)
        try v.a.remove(v.xn, file, from: v.rootA)
        #expect(throws: XNError.notAChild) {
            try v.xn.modify(v.rootA, [], operation: .free(file), credential: v.a.credential, by: envA)
        }
        // Nor may it be taken again before the parent without it is durable.
        #expect(throws: XNError.notFree) {
            try v.xn.modify(v.rootA, [Modification(offset: slot(1), bytes: TreeClient<Disk>.entry(file, .data))],
                            operation: .allocate(file, .data), credential: v.a.credential, by: envA)
        }
        try v.remount()
        #expect(v.check.violations == [])
    }

    @Test func writeATaintedParent() throws {
        let v = try Volume()
        let dir = try v.a.add(v.xn, under: v.rootA, type: v.a.type)
        #expect(throws: XNError.tainted) { try v.xn.writeback([v.rootA], by: envA) }
        // A dead environment's flusher is held to the same rule.
        v.xn.environmentDied(envA)
        #expect(throws: XNError.tainted) { try v.xn.writeback([v.rootA], by: envB) }
        try v.xn.writeback([dir], by: envB)
        try v.xn.writeback([v.rootA], by: envB)
    }

    @Test func writeAnothersBlock() throws {
        let v = try Volume()
        let tree = try honestTree(v)
        try v.xn.writeData(tree.file, offset: 0, bytes: Array("MINE".utf8), credential: v.a.credential, by: envA)
        #expect(throws: XNError.notOwner) { try v.xn.writeback([tree.file], by: envB) }
        #expect(throws: XNError.aclDenied) {
            try v.xn.modify(tree.dir, [Modification(offset: 200, bytes: [1])], operation: .write, credential: v.b.credential, by: envB)
        }
        // Once a dies, its dirty data is flushed by anyone, and nothing it handed over is lost.
        v.xn.environmentDied(envA)
        #expect(v.xn.orphanedDirtyBlocks() == [tree.file])
        try v.xn.writeback(v.xn.orphanedDirtyBlocks(), by: envB)
        try v.remount()
        #expect(try v.xn.read(tree.file, credential: v.a.credential).prefix(4) == ArraySlice("MINE".utf8))
    }

    @Test func installATemplateWhoseUDFReadsOutOfBounds() throws {
        let v = try Volume()
        for (owns, acl) in [(try Assembler.assemble("ldxdw %r0, [%r1+4090]\nexit").bytes, allowAll),
                            (treeFormat.owns, try Assembler.assemble("ldxb %r0, [%r1+9000]\nexit").bytes),
                            (try Assembler.assemble("stdw [%r3+8192], 1\nmov %r0, 0\nexit").bytes, allowAll)] {
            #expect(throws: XNError.self) { try v.xn.installTemplate(name: "evil", owns: owns, acl: acl, size: zeroSize) }
        }
        #expect(v.xn.type(named: "evil") == nil)
    }

    @Test func installATemplateWhoseUDFNeverEnds() throws {
        let v = try Volume()
        let forever = try Assembler.assemble("mov %r0, 0\nja -1\nexit").bytes
        do {
            _ = try v.xn.installTemplate(name: "forever", owns: forever, acl: allowAll, size: zeroSize)
            Issue.record("installed")
        } catch {
            guard case .templateRejected(let why) = error else { Issue.record("\(error)"); return }
            #expect(why.contains("budget"))
        }
        // And an owns that names something in an empty block is refused too.
        let liar = try Assembler.assemble("stdw [%r3], 700\nstdw [%r3+8], 0\nmov %r0, 1\nexit").bytes
        #expect(throws: XNError.templateRejected("owns of an all-zero block names 1 blocks")) {
            try v.xn.installTemplate(name: "liar", owns: liar, acl: allowAll, size: zeroSize)
        }
        try v.remount()
        #expect(v.xn.type(named: "forever") == nil && v.xn.type(named: "liar") == nil)
    }

    @Test func mountACorruptedImage() throws {
        func corrupted(_ change: (inout Disk, Volume) throws -> Void) throws -> (Disk, [[UInt8]]) {
            let v = try Volume()
            _ = try honestTree(v)
            var disk = try v.xn.unmount()
            try change(&disk, v)
            return (disk, disk.snapshot)
        }
        let cases: [(String, (inout Disk, Volume) throws -> Void, (XNError) -> Bool)] = [
            ("superblock bit flip", { d, _ in d.corrupt(0) { $0[20] ^= 1 } }, { if case .corruptImage = $0 { true } else { false } }),
            ("foreign image", { d, _ in d.corrupt(0) { $0 = [UInt8](repeating: 0x55, count: 4096) } }, { if case .notXN = $0 { true } else { false } }),
            ("type catalogue bit flip", { d, v in d.corrupt(v.xn.geometry.typeCatalogueStart) { $0[100] ^= 0x10 } }, { if case .corruptImage = $0 { true } else { false } }),
            ("root catalogue bit flip", { d, v in d.corrupt(v.xn.geometry.rootCatalogue) { $0[10] ^= 1 } }, { if case .corruptImage = $0 { true } else { false } }),
            ("pointer outside the disk", { d, v in d.corrupt(v.rootA) { $0.replaceSubrange(slot(0)..<slot(0) + 16, with: TreeClient<Disk>.entry(1 << 40, .data)) } },
             { if case .corruptImage = $0 { true } else { false } }),
            ("two pointers to one block", { d, v in
                let dir = d.snapshot[Int(v.rootA)].u64le(slot(0))
                d.corrupt(v.rootB) {
                    $0.replaceSubrange(slot(0)..<slot(0) + 16, with: TreeClient<Disk>.entry(dir, v.a.type))
                    $0[listFormat.highWaterOffset] = 1
                }
            }, { if case .corruptImage = $0 { true } else { false } }),
        ]
        for (name, change, matches) in cases {
            let (disk, before) = try corrupted(change)
            do {
                _ = try XN.mount(disk)
                Issue.record("\(name): mounted")
            } catch {
                #expect(matches(error), "\(name): \(error)")
            }
            // Refusing to mount writes nothing: the image is left as it was, for fsck.
            #expect(disk.snapshot == before, "\(name)")
            #expect(!XN.check(disk).violations.isEmpty, "\(name): fsck found nothing")
        }
    }

    @Test func deviceTooSmallForXN() {
        #expect(throws: XNError.deviceTooSmall) { try XN.format(Disk(blockCount: 100, seed: 1)) }
    }
}
