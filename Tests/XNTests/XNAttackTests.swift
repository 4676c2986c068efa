// A malicious library file system against XN, through its own port, each test named for
// its attack. Every one is refused with the documented error and the honest file
// system's tree survives a remount intact (fsck clean).

import BPF
import Testing
import TreeFS
import TreeFSUDFs
import XN
import Xok
import XokABI
import XokSimulation

let allowAll: [UInt8] = try! Assembler.assemble("mov %r0, 1\nexit").bytes
let zeroSize: [UInt8] = try! Assembler.assemble("mov %r0, 0\nexit").bytes

/// Installs a type with these UDFs through `client`'s port.
func install(_ client: Client, name: String, owns: [UInt8], acl: [UInt8], size: [UInt8]) throws(KernelError) -> TypeID {
    var spans: [FrameSpan] = []
    for code in [owns, acl, size] {
        let frame = try client.newFrame()
        try client.port.map(frame, writable: true, credential: client.slots.own)
        try client.port.store(code, into: frame, offset: 0)
        spans.append(FrameSpan(frame: frame, length: UInt32(code.count)))
    }
    return try client.port.installType(named: name, owns: [spans[0]], acl: [spans[1]], size: [spans[2]], credential: LibrarySlot.types)
}

@Suite struct XNAttacks {
    /// a's tree: a directory with a data block, all durable.
    func honestTree(_ v: Volume) throws -> (dir: BlockNumber, file: BlockNumber) {
        let dir = try v.a.add(under: v.rootA, type: v.a.type)
        let file = try v.a.add(under: dir, type: .data)
        try v.a.write(Array("mine".utf8), at: 0, of: file)
        try v.a.port.writeback([file])
        try v.a.port.writeback([dir])
        try v.a.port.writeback([v.rootA])
        return (dir, file)
    }

    func expectHonestTreeIntact(_ v: Volume, _ tree: (dir: BlockNumber, file: BlockNumber)) throws {
        #expect(v.kernel.checkInvariants() == [])
        try v.remount()
        #expect(try v.a.children(of: v.rootA).map(\.block) == [tree.dir])
        #expect(try v.a.contents(tree.file, via: [v.rootA, tree.dir]).prefix(4) == ArraySlice("mine".utf8))
        #expect(v.check.violations == [])
    }

    @Test func inventAPointer() throws {
        let v = try Volume()
        let tree = try honestTree(v)
        // b claims a's file as its own child, and a free block, without allocating.
        _ = try v.b.contents(v.rootB)
        for target in [tree.file, v.xn.firstFree(from: 0)!] {
            #expect(throws: KernelError.pointerInvented) {
                try v.b.port.modify(v.rootB, .write, .inline([(slot(0), Client.entry(target, .data)), listFormat.highWater(TreeFormat.entries)]),
                                    credential: v.b.slots.own)
            }
        }
        try expectHonestTreeIntact(v, tree)
    }

    @Test func stealAnotherFileSystemsBlock() throws {
        let v = try Volume()
        let tree = try honestTree(v)
        let frame = try v.b.newFrame()
        #expect(throws: KernelError.notFree) {
            try v.b.port.modify(v.rootB, .allocate(tree.dir, v.b.type, frame: frame), .inline([(slot(0), Client.entry(tree.dir, v.b.type))]),
                                credential: v.b.slots.own)
        }
        #expect(throws: KernelError.permissionDenied) { _ = try v.b.contents(tree.file) }
        #expect(throws: KernelError.permissionDenied) { _ = try v.b.port.map(tree.file, writable: false, credential: v.b.slots.own) }
        #expect(throws: KernelError.permissionDenied) { try v.b.port.writeData(tree.file, .inline([(0, [0])]), credential: v.b.slots.own) }
        #expect(throws: KernelError.permissionDenied) {
            try v.b.port.modify(tree.dir, .free(tree.file), .inline([(slot(0), [UInt8](repeating: 0, count: 16))]), credential: v.b.slots.own)
        }
        #expect(throws: KernelError.permissionDenied) { try v.b.port.evict(tree.file, credential: v.b.slots.own) }
        try expectHonestTreeIntact(v, tree)
    }

    @Test func writeAMappedMetadataFrame() throws {
        let v = try Volume()
        let tree = try honestTree(v)
        // a may map its own directory, but only read-only: XN is a metadata block's only writer.
        #expect(throws: KernelError.noSuchBlock) { _ = try v.a.port.map(tree.dir, writable: true, credential: v.a.slots.own) }
        let frame = try v.a.port.map(tree.dir, writable: false, credential: v.a.slots.own)
        #expect(throws: KernelError.notMapped) { try v.a.port.store([0xff], into: frame, offset: slot(0)) }
        #expect(throws: SimulatedHost.Fault.self) { try v.kernel.host.store(v.a.port.environment, frame, offset: slot(0), 0xff) }
        // Nor through the frame calls: a cached block's frame is reached only through XN.
        #expect(throws: KernelError.busy) { try v.a.port.map(frame, writable: true, credential: v.a.slots.own) }
        #expect(throws: KernelError.busy) { try v.a.port.free(frame, credential: v.a.slots.own) }
        #expect(throws: KernelError.busy) { try v.a.port.setACL(v.a.frameACL, of: frame, credential: v.a.slots.own) }
        try expectHonestTreeIntact(v, tree)
    }

    @Test func giveTheCacheAFrameThatIsNotYours() throws {
        let v = try Volume()
        let tree = try honestTree(v)
        try v.a.port.evict(tree.file, credential: v.a.slots.own)
        let theirs = try v.a.newFrame()
        // b names a's frame, a frame past the machine, and a frame already in the cache.
        let cached = try #require(v.xn.registryEntry(tree.dir)?.frame)
        for frame in [theirs, FrameNumber(rawValue: UInt32.max), cached] {
            #expect(throws: KernelError.noSuchFrame) { _ = try v.b.port.readIn(v.rootB, frame: frame, credential: v.b.slots.own) }
        }
        // a's own frame, while another environment has it mapped, cannot go in either.
        try v.a.port.setACL(try AccessControlList([try Capability(name: [1], rights: .all), try Capability(name: [2], rights: .read)]),
                            of: theirs, credential: v.a.slots.own)
        try v.b.port.map(theirs, writable: false, credential: v.b.slots.own)
        #expect(throws: KernelError.busy) { _ = try v.a.port.readIn(tree.file, frame: theirs, credential: v.a.slots.own) }
        try expectHonestTreeIntact(v, tree)
    }

    @Test func freeABlockTwice() throws {
        let v = try Volume()
        let file = try v.a.add(under: v.rootA, type: .data)
        try v.a.port.writeback([file])
        try v.a.port.writeback([v.rootA])
        try v.a.remove(file, from: v.rootA)
        #expect(throws: KernelError.notAChild) { try v.a.port.modify(v.rootA, .free(file), .none, credential: v.a.slots.own) }
        // Nor may it be taken again before the parent without it is durable.
        let frame = try v.a.newFrame()
        #expect(throws: KernelError.notFree) {
            try v.a.port.modify(v.rootA, .allocate(file, .data, frame: frame), .inline([(slot(1), Client.entry(file, .data))]), credential: v.a.slots.own)
        }
        try v.remount()
        #expect(v.check.violations == [])
    }

    @Test func writeATaintedParent() throws {
        let v = try Volume()
        let dir = try v.a.add(under: v.rootA, type: v.a.type)
        // A dead environment's flusher is held to the same rule: the child goes first.
        v.kernel.kill(v.a.port.environment)
        try v.b.port.writeback([v.rootA])
        #expect(v.kernel.exposedState.registry(block: dir) == nil || v.kernel.exposedState.registry(block: dir)?.dirty == false)
        #expect(v.check.violations == [])
        #expect(v.kernel.checkInvariants() == [])
    }

    @Test func writeBackAnothersBlock() throws {
        let v = try Volume()
        let tree = try honestTree(v)
        try v.a.write(Array("MINE".utf8), at: 0, of: tree.file)
        // Writing back another's block reveals nothing and changes nothing he sees: anyone
        // may (a co-writer who never syncs must not hold back another's sync).
        #expect(throws: KernelError.permissionDenied) { try v.b.port.modify(tree.dir, .write, .inline([(200, [1])]), credential: v.b.slots.own) }
        try v.a.write(Array("MINE".utf8), at: 0, of: tree.file)
        // Once a dies, its dirty data is flushed by anyone, and nothing it handed over is lost.
        let holder = try #require(v.xn.registryEntry(tree.file)?.frame)
        v.kernel.kill(v.a.port.environment)
        #expect(v.xn.orphanedDirtyBlocks() == [tree.file])
        #expect(v.kernel.exposedState.registry(block: tree.file)?.owner == nil)
        #expect(v.kernel.frameOwner(holder) == nil)
        try v.b.port.writeback(v.xn.orphanedDirtyBlocks())
        // Written, the kernel lets the frame go.
        #expect(v.kernel.exposedState.registry(block: tree.file) == nil)
        #expect(v.kernel.checkInvariants() == [])
        try v.remount()
        #expect(try v.a.contents(tree.file, via: [v.rootA, tree.dir]).prefix(4) == ArraySlice("MINE".utf8))
    }

    @Test func installATemplateWhoseUDFReadsOutOfBounds() throws {
        let v = try Volume()
        let entriesBefore = v.kernel.quota(of: v.b.port.environment)?.used.catalogueEntries
        for (owns, acl) in [(try Assembler.assemble("ldxdw %r0, [%r1+4090]\nexit").bytes, allowAll),
                            (treeFormat.owns, try Assembler.assemble("ldxb %r0, [%r1+\(AclContext.bytes)]\nexit").bytes),
                            (try Assembler.assemble("stdw [%r3+8192], 1\nmov %r0, 0\nexit").bytes, allowAll)] {
            #expect(throws: KernelError.programRejected) { _ = try install(v.b, name: "evil", owns: owns, acl: acl, size: zeroSize) }
        }
        #expect(throws: KernelError.noSuchType) { _ = try v.b.port.type(named: "evil") }
        #expect(v.kernel.quota(of: v.b.port.environment)?.used.catalogueEntries == entriesBefore, "refused types cost nothing")
    }

    @Test func installATemplateWhoseUDFNeverEnds() throws {
        let v = try Volume()
        let forever = try Assembler.assemble("mov %r0, 0\nja -1\nexit").bytes
        #expect(throws: KernelError.programRejected) { _ = try install(v.b, name: "forever", owns: forever, acl: allowAll, size: zeroSize) }
        // And an owns that names something in an empty block is refused too.
        let liar = try Assembler.assemble("stdw [%r3], 700\nstdw [%r3+8], 0\nmov %r0, 1\nexit").bytes
        #expect(throws: KernelError.programRejected) { _ = try install(v.b, name: "liar", owns: liar, acl: allowAll, size: zeroSize) }
        try v.remount()
        #expect(throws: KernelError.noSuchType) { _ = try v.b.port.type(named: "forever") }
        #expect(throws: KernelError.noSuchType) { _ = try v.b.port.type(named: "liar") }
    }

    @Test func mountACorruptedImage() throws {
        func corrupted(_ change: (inout Disk, Volume) throws -> Void) throws -> Disk {
            let v = try Volume()
            _ = try honestTree(v)
            var disk = try #require(try v.kernel.shutdown())
            try change(&disk, v)
            return disk
        }
        let geometry = try #require(XNLayout.Geometry(blockCount: 1024))
        let cases: [(String, (inout Disk, Volume) throws -> Void, (XNError) -> Bool)] = [
            ("superblock bit flip", { d, _ in d.corrupt(0) { $0[20] ^= 1 } }, { if case .corruptImage = $0 { true } else { false } }),
            ("foreign image", { d, _ in d.corrupt(0) { $0 = [UInt8](repeating: 0x55, count: 4096) } }, { if case .notXN = $0 { true } else { false } }),
            ("type catalogue bit flip", { d, _ in d.corrupt(geometry.typeCatalogueStart) { $0[100] ^= 0x10 } }, { if case .corruptImage = $0 { true } else { false } }),
            ("root catalogue bit flip", { d, _ in d.corrupt(geometry.rootCatalogue) { $0[10] ^= 1 } }, { if case .corruptImage = $0 { true } else { false } }),
            ("pointer outside the disk", { d, v in d.corrupt(v.rootA) { $0.replaceSubrange(slot(0)..<slot(0) + 16, with: Client.entry(1 << 40, .data)) } },
             { if case .corruptImage = $0 { true } else { false } }),
            ("two pointers to one block", { d, v in
                let dir = d.snapshot[Int(v.rootA)].u64le(slot(0))
                d.corrupt(v.rootB) {
                    $0.replaceSubrange(slot(0)..<slot(0) + 16, with: Client.entry(dir, v.a.type))
                    $0[listFormat.highWaterOffset] = 1
                }
            }, { if case .corruptImage = $0 { true } else { false } }),
        ]
        for (name, change, matches) in cases {
            let recorder = RecordingDisk(try corrupted(change))
            let before = recorder.disk.snapshot
            do {
                _ = try XN.mount(recorder, memory: SimulatedMemory(frameCount: 8))
                Issue.record("\(name): mounted")
            } catch {
                #expect(matches(error), "\(name): \(error)")
            }
            // Refusing to mount writes nothing: the image XN was given is left as it was,
            // for fsck. (The recorder is the device XN used, not a copy of it.)
            #expect(recorder.writes == 0 && recorder.barriers == 0, "\(name)")
            #expect(recorder.disk.snapshot == before, "\(name)")
            let report = XNImage.check(recorder)
            #expect(report.notXN != nil || !report.violations.isEmpty, "\(name): fsck found nothing")
        }
    }

    @Test func theMountCheckSeesWhatMountWrites() throws {
        // The check above can fail: a healthy image, mounted, is written (its superblock
        // is marked in use), and the recorder sees it.
        let v = try Volume()
        let recorder = RecordingDisk(try #require(try v.kernel.shutdown()))
        let before = recorder.disk.snapshot
        _ = try XN.mount(recorder, memory: SimulatedMemory(frameCount: 8))
        #expect(recorder.writes > 0)
        #expect(recorder.disk.snapshot != before)
    }

    @Test func deviceTooSmallForXN() {
        #expect(throws: XNError.deviceTooSmall) { try XN.format(Disk(blockCount: 30, seed: 1), memory: SimulatedMemory(frameCount: 1)) }
    }
}

/// A disk that counts what is done to it, and is the very device XN is given (a class, so
/// no copy hides a write).
final class RecordingDisk: BlockDevice {
    var disk: Disk
    var writes = 0, barriers = 0
    init(_ disk: Disk) { self.disk = disk }
    var blockCount: UInt64 { disk.blockCount }
    func read(_ blocks: [BlockNumber]) throws(DeviceError) -> [[UInt8]] { try disk.read(blocks) }
    func write(_ w: [(BlockNumber, [UInt8])]) throws(DeviceError) {
        writes += w.count
        try disk.write(w)
    }
    func barrier() throws(DeviceError) {
        barriers += 1
        try disk.barrier()
    }
}
