// UNIX protection on C-FFS as a property, checked after every call (DESIGN.md §8). Alice,
// carol and root keep a tree of files and directories of every mode on a shared image;
// bob, a hostile co-user in one of carol's groups, skips C-FFS and makes random raw XN
// calls with his own capabilities: reads, maps, data writes, metadata changes built from
// real entries with hostile fields, allocations and layouts of fresh blocks, frees,
// links, moves, writebacks and evictions, aimed at every block of the tree and at
// random ones. After each call the oracle asks, by UNIX's rules read from the tree as it
// was before the call:
//   - what bob obtained (a block read, mapped, or mapped writable, a data block written)
//     was his to obtain: the path searchable, the file readable (writable);
//   - nothing of anyone else's changed beyond his rights: no entry gone or renamed from a
//     directory he may not write (or, sticky, from another's entry), none new where he
//     may not create, none claiming another owner unless it moved from where he could
//     take it, no owner, group or mode of another's changed, no size, blocks or times of
//     a file he may not write, no directory's stamp;
// and every 200 calls, and at the end, that no data block of a file he may not write
// changed, XN's fsck is clean, the kernel's invariants hold, and each victim reads back
// every file bob could not touch as it was written.

import CFFS
import ExOS
import XN
import Xok
import XokABI

/// One run of the protection fuzzer.
public struct ProtectionFuzz {
    public let seed: UInt64
    public let calls: Int

    public init(seed: UInt64, calls: Int = 5000) {
        self.seed = seed
        self.calls = calls
    }

    public struct Report: Sendable {
        public var calls = 0
        /// Calls the kernel carried out (the rest it refused).
        public var allowed = 0
        public var violations: [String] = []
    }

    public func run() -> Report {
        var report = Report()
        do { try runChecked(&report) } catch { report.violations.append("seed \(seed): the run stopped: \(error)") }
        return report
    }

    static let bob: UInt32 = 1001

    private func runChecked(_ report: inout Report) throws {
        var rng = SeededRandom(seed: seed)
        var clock: Int64 = 1_700_000_000_000_000_000
        let now = { () -> Int64 in clock += 1000; return clock }
        let kernel = Kernel(host: SimulatedHost(frameCount: 12_000))
        try kernel.mountDisk(SimulatedDisk(blockCount: 16_384, seed: seed), format: true)
        let root = try ExOSEnvironment.format(kernel, quota: ExOSEnvironment.share(of: kernel, parts: 5), now: now)
        let alice = try ExOSEnvironment.mount(kernel, uid: 1000, gid: 1000, quota: ExOSEnvironment.share(of: kernel, parts: 4), now: now)
        let carol = try ExOSEnvironment.mount(kernel, uid: 1002, gid: 50, quota: ExOSEnvironment.share(of: kernel, parts: 3), now: now)
        let (port, identity) = try ExOSEnvironment.make(kernel, uid: Self.bob, gid: 1001, groups: [50], quota: ExOSEnvironment.share(of: kernel, parts: 2))
        let bob = ExOS(fs: try CFFS.mount(port: port, identity: identity, now: now))
        let written = try Self.plant(root: root, alice: alice, carol: carol, bob: bob, rng: &rng)
        guard let xn = kernel.xn else { return }
        var tree = TreeView(xn: xn, superblock: root.fs.superblock, bob: identity)
        var hashes = tree.protectedHashes()
        let scratch = try port.allocateFrame(credential: ExOSSlot.frames, acl: identity.frameACL)
        try port.map(scratch, writable: true, credential: ExOSSlot.user)
        let types = [TypeID.data, bob.fs.dirType, bob.fs.indType, bob.fs.inoType, bob.fs.superType]

        func fail(_ text: String) { report.violations.append("seed \(seed), call \(report.calls): \(text)") }

        for _ in 0..<calls {
            report.calls += 1
            let call = HostileCall.random(&rng, tree: tree, types: types)
            // Mostly his own identity; now and then his groups, the mount capability, others.
            let credential = CapabilitySlot(rng.next() % 2 == 0 ? 0 : Int(rng.next() % 7))
            var frames: [FrameNumber] = []
            if call.needsFrames > 0 {
                guard let given = try? port.allocateFrames(call.needsFrames, credential: ExOSSlot.frames, acl: identity.frameACL) else { continue }
                frames = given
            }
            let outcome = call.perform(port, credential: credential, scratch: scratch, frames: frames)
            for frame in frames where outcome != .allowed || !call.givesFrames { try? port.free(frame, credential: ExOSSlot.user) }
            guard outcome == .allowed else { continue }
            report.allowed += 1
            // What he obtained.
            for block in call.read where !tree.mayRead(block) { fail("\(call): read block \(block), which is not his to read") }
            for block in call.written where !tree.mayWrite(block) { fail("\(call): wrote block \(block), which is not his to write") }
            // What changed.
            if call.mayChangeMetadata {
                let after = TreeView(xn: xn, superblock: root.fs.superblock, bob: identity)
                for problem in tree.changesBeyondRights(to: after) { fail("\(call): \(problem)") }
                tree = after
            }
            if report.calls % 200 == 0 {
                for problem in tree.dataChanged(since: hashes) { fail(problem) }
                hashes = tree.protectedHashes()
                if let problem = Self.checkWhole(kernel) { fail(problem) }
            }
            if report.violations.count > 20 { return }
        }
        for problem in tree.dataChanged(since: hashes) { fail(problem) }
        if let problem = Self.checkWhole(kernel) { fail(problem) }
        // Every file of theirs that he could not touch reads back as written.
        let final = TreeView(xn: xn, superblock: root.fs.superblock, bob: identity)
        for (path, (who, bytes)) in written.sorted(by: { $0.key < $1.key }) where !final.couldTouch(path) {
            let os = [0: root, 1000: alice, 1002: carol][who]!
            guard let read = try? Self.contents(os, path) else { fail("\(path) no longer reads for its owner"); continue }
            if read != bytes { fail("\(path) changed") }
        }
        try? alice.sync()
        try? carol.sync()
        try? root.sync()
        if let problem = Self.checkWhole(kernel) { fail(problem) }
    }

    static func contents<P: KernelPort>(_ os: ExOS<P>, _ path: String) throws -> [UInt8] {
        let fd = try os.open(path, .readOnly)
        defer { try? os.close(fd) }
        var result: [UInt8] = []
        while true {
            let chunk = try os.read(fd, count: 65_536)
            if chunk.isEmpty { return result }
            result += chunk
        }
    }

    static func checkWhole(_ kernel: Kernel<SimulatedHost>) -> String? {
        let invariants = kernel.checkInvariants()
        if let first = invariants.first { return "kernel invariant: \(first)" }
        let report = XNImage.check(kernel.xn!.device)
        return report.violations.first.map { "XN fsck: \($0)" }
    }

    /// The victims' tree: directories and files of every mode, owned by alice, carol and
    /// root, hard links, a large file and a symbolic link; and a /tmp for bob. Returns
    /// each file written, with its owner and bytes.
    static func plant<P: KernelPort>(root: ExOS<P>, alice: ExOS<P>, carol: ExOS<P>, bob: ExOS<P>,
                                     rng: inout SeededRandom) throws -> [String: (UInt32, [UInt8])] {
        var written: [String: (UInt32, [UInt8])] = [:]
        func put(_ os: ExOS<P>, _ uid: UInt32, _ path: String, _ mode: UInt32, _ count: Int) throws {
            var bytes = [UInt8](repeating: 0, count: count)
            for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: rng.next()) }
            // Written first, then given its mode: C-FFS's UDFs check every write, not the open.
            let fd = try os.open(path, [.writeOnly, .create, .truncate], mode: 0o600)
            _ = try os.write(fd, bytes)
            try os.close(fd)
            try os.chmod(path, mode)
            if mode & 0o400 != 0 { written[path] = (uid, bytes) }   // what its owner can read back
        }
        try root.mkdir("/tmp")
        try root.chmod("/tmp", 0o1777)
        try root.mkdir("/open")
        try root.chmod("/open", 0o777)
        for (name, mode) in [("home", 0o755 as UInt32)] { try root.mkdir("/" + name, mode: mode) }
        try root.mkdir("/home/alice")
        try root.chown("/home/alice", uid: 1000, gid: 1000)
        try root.mkdir("/team")
        try root.chown("/team", uid: 1002, gid: 50)
        try root.chmod("/team", 0o770)
        try root.mkdir("/listed", mode: 0o744)
        try put(root, 0, "/listed/r", 0o644, 300)
        try put(root, 0, "/secret", 0o600, 5000)
        for (dir, mode) in [("private", 0o700 as UInt32), ("search", 0o711), ("public", 0o755), ("shared", 0o777), ("readonly", 0o555)] {
            let path = "/home/alice/" + dir
            try alice.mkdir(path)
            try alice.chmod(path, 0o700)
            for (file, fileMode) in [("r", 0o644 as UInt32), ("w", 0o666), ("p", 0o600), ("g", 0o640), ("none", 0o000)] {
                try put(alice, 1000, path + "/" + file, fileMode, Int(rng.next() % 9000))
            }
            try alice.mkdir(path + "/sub")
            try put(alice, 1000, path + "/sub/deep", 0o644, 100)
            try alice.chmod(path, mode)
        }
        try put(alice, 1000, "/home/alice/public/big", 0o644, 70_000)
        try put(alice, 1000, "/open/alices", 0o600, 9000)
        try put(alice, 1000, "/open/shared", 0o666, 40)
        try put(alice, 1000, "/tmp/alices", 0o644, 2000)
        try alice.link("/home/alice/public/r", "/open/r-link")
        try alice.symlink("/home/alice/private/p", "/open/to-private")
        try put(carol, 1002, "/team/plan", 0o640, 700)
        try put(carol, 1002, "/team/own", 0o600, 700)
        try put(carol, 1002, "/team/all", 0o660, 700)
        for i in 0..<20 { try put(root, 0, "/home/f\(i)", 0o644, 10) }
        try put(bob, Self.bob, "/tmp/bobs", 0o644, 100)
        try bob.mkdir("/tmp/bobdir")
        for os in [root, alice, carol, bob] { try os.sync() }
        return written
    }
}

/// One random raw call of bob's, and what it would give him.
struct HostileCall: CustomStringConvertible {
    enum Kind {
        case readIn, read, map, mapMany, writeData, mapWritable, modify, allocate, free, link, move, writeback, evict
    }
    enum Outcome { case allowed, refused }
    var kind: Kind
    var block: BlockNumber = 0
    var blocks: [BlockNumber] = []
    var other: BlockNumber = 0
    var changes: [(offset: Int, bytes: [UInt8])] = []
    var operation: XNOperation = .write
    var range = (offset: 0, count: 0, at: 0)
    var needsFrames = 0
    /// Blocks whose bytes the call gives him when allowed, and blocks it lets him write.
    var read: [BlockNumber] = []
    var written: [BlockNumber] = []

    var description: String { "\(kind) \(block)\(blocks.isEmpty ? "" : " \(blocks)")\(other == 0 ? "" : " → \(other)")" }
    var givesFrames: Bool { kind == .allocate || kind == .readIn || kind == .mapMany }
    /// Whether the call may change metadata (the tree is compared after it).
    var mayChangeMetadata: Bool { [.modify, .allocate, .free, .link, .move].contains(kind) }

    static func random(_ rng: inout SeededRandom, tree: TreeView, types: [TypeID]) -> HostileCall {
        let known = tree.blocks
        func pick() -> BlockNumber {
            rng.next() % 8 == 0 ? BlockNumber(rng.next() % 16_384) : known[Int(rng.next() % UInt64(known.count))]
        }
        func metadata() -> BlockNumber {
            let all = tree.metadataBlocks
            return all[Int(rng.next() % UInt64(all.count))]
        }
        func hostileValue(_ width: Int) -> [UInt8] {
            let values: [UInt64] = [0, 1, 1000, 1001, 1002, 50, 0o100644, 0o040777, 0o104755, 0o170000, .max, 1 << 40,
                                    CFFSLayout.bytesMax + 1, pick(), pick()]
            let v = values[Int(rng.next() % UInt64(values.count))]
            return (0..<width).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) }
        }
        var call = HostileCall(kind: .evict)   // what a case that finds nothing to aim at leaves: refused
        switch rng.next() % 18 {
        case 0: call.kind = .readIn; call.block = pick(); call.needsFrames = 1; call.read = [call.block]
        case 1: call.kind = .read; call.block = pick(); call.read = [call.block]
        case 2: call.kind = .map; call.block = pick(); call.read = [call.block]
        case 3: call.kind = .mapMany; call.blocks = Array(Set((0..<(1 + rng.next() % 4)).map { _ in pick() })).sorted()
            call.needsFrames = call.blocks.count; call.read = call.blocks
        case 4: call.kind = .writeData; call.block = pick(); call.written = [call.block]
            call.changes = [(Int(rng.next() % 4000), hostileValue(8))]
        case 5: call.kind = .mapWritable; call.block = pick(); call.read = [call.block]; call.written = [call.block]
        case 6, 7, 8:
            // An entry's or a header's field, or an entry copied into another slot.
            call.kind = .modify; call.block = metadata()
            let slot = CFFSLayout.slotOffset(Int(rng.next() % UInt64(CFFSLayout.slots)))
            switch rng.next() % 4 {
            case 0:
                let field = [CFFSLayout.eMode, CFFSLayout.eUID, CFFSLayout.eGID, CFFSLayout.eSize, CFFSLayout.eMtime, CFFSLayout.eDirect,
                             CFFSLayout.eIndirect, CFFSLayout.eNameLength][Int(rng.next() % 8)]
                call.changes = [(slot + field, hostileValue(field == CFFSLayout.eNameLength ? 1 : field <= CFFSLayout.eGID ? 4 : 8))]
            case 1:
                let field = [CFFSLayout.magic, CFFSLayout.uid, CFFSLayout.gid, CFFSLayout.mode, CFFSLayout.next, CFFSLayout.level,
                             CFFSLayout.dirType][Int(rng.next() % 7)]
                call.changes = [(field, hostileValue(field == CFFSLayout.next ? 8 : 4))]
            case 2:
                if let entry = tree.randomEntry(&rng) {
                    var bytes = entry.encoded
                    bytes.replaceSubrange(CFFSLayout.eUID..<CFFSLayout.eUID + 4, with: hostileValue(4))
                    if rng.next() % 2 == 0 { bytes[CFFSLayout.eName] = UInt8(0x61 + rng.next() % 26) }
                    call.changes = [(slot, bytes)]
                }
            default:
                call.changes = [(slot, [UInt8](repeating: 0, count: CFFSLayout.slotBytes))]
            }
        case 9, 10:
            // A fresh block under a block he names, with the pointer to it where an owns
            // UDF will find it: a directory's next block, a new entry (a subdirectory, a link
            // entry, a file), or a file's indirect block. Whether he may is the UDFs' to say.
            call.kind = .allocate; call.needsFrames = 1
            call.other = BlockNumber(4096 + rng.next() % 12_000)
            var type = types[0]
            let child = (0..<8).map { UInt8(truncatingIfNeeded: call.other >> (8 * UInt64($0))) }
            switch rng.next() % 4 {
            case 0:
                guard let (block, last) = tree.randomDirectoryBlock(&rng) else { return call }
                call.block = block
                type = types[1]
                call.changes = [(CFFSLayout.next, last ? child : [UInt8](repeating: 0xff, count: 8))]
            case 1:
                guard let node = tree.randomNode(&rng), let place = node.place, node.inode.isRegular else { return call }
                call.block = place.block
                type = rng.next() % 2 == 0 ? types[2] : types[0]
                let field = type == types[2] ? CFFSLayout.eIndirect : CFFSLayout.eDirect + 8 * Int(rng.next() % 7)
                call.changes = [(CFFSLayout.slotOffset(place.slot) + field, child)]
            default:
                guard let (block, _) = tree.randomDirectoryBlock(&rng), let entry = tree.randomEntry(&rng) else { return call }
                call.block = block
                var planted = entry
                planted.name = Array("planted\(rng.next() % 100)".utf8)
                planted.mode = [FileMode.directory | 0o755, FileMode.link, FileMode.regular | 0o644][Int(rng.next() % 3)]
                planted.pointers = [BlockNumber](repeating: 0, count: planted.pointers.count)
                planted.pointers[planted.isRegular && rng.next() % 2 == 0 ? CFFSLayout.directCount : 0] = call.other
                type = planted.isDirectory ? types[1] : planted.isLink ? types[3] : planted.pointers[0] == 0 ? types[2] : types[0]
                planted.uid = [1000, 1001, 1001, 0][Int(rng.next() % 4)]
                planted.size = 0
                call.changes = [(CFFSLayout.slotOffset(Int(rng.next() % 15)), planted.encoded)]
            }
            call.operation = .allocate(call.other, type, frame: FrameNumber(rawValue: 0))
        case 11:
            call.kind = .free; call.block = metadata()
            let children = tree.children(of: call.block)
            guard !children.isEmpty else { return call }
            call.other = children[Int(rng.next() % UInt64(children.count))]
            call.changes = tree.fieldsPointing(to: call.other, in: call.block).map { ($0, [UInt8](repeating: 0, count: 8)) }
            if rng.next() % 3 == 0 { call.changes = [] }
        case 12:
            call.kind = .link; call.block = metadata(); call.other = pick()
            let at = CFFSLayout.slotOffset(Int(rng.next() % 15))
            var link = Inode()
            link.mode = FileMode.link
            link.uid = 1001
            link.gid = 1001
            link.name = Array("l\(rng.next() % 100)".utf8)
            link.pointers[0] = call.other
            call.changes = [(at, link.encoded)]
        case 13:
            call.kind = .move; call.block = metadata(); call.other = metadata()
            let from = CFFSLayout.slotOffset(Int(rng.next() % 15)), to = CFFSLayout.slotOffset(Int(rng.next() % 15))
            call.range = (from, CFFSLayout.slotBytes, to)
            if rng.next() % 2 == 0 { call.changes = [(to + CFFSLayout.eUID, hostileValue(4))] }
        case 14: call.kind = .writeback; call.blocks = Array(Set((0..<(1 + rng.next() % 8)).map { _ in pick() })).sorted()
        case 15: call.kind = .evict; call.block = pick()
        default:
            // A layout of a block never laid out (one bob just allocated, say): a header of
            // his choosing, with entries or a fresh child in the same change.
            guard !tree.unlaid.isEmpty else { return call }
            call.kind = .modify; call.block = tree.unlaid[Int(rng.next() % UInt64(tree.unlaid.count))]
            let magic = [CFFSLayout.dirMagic, CFFSLayout.indMagic, CFFSLayout.inoMagic][Int(rng.next() % 3)]
            var header = BlockHeader(magic: magic, dirType: types[1], indType: types[2], inoType: types[3])
            if let stamp = tree.randomStamp(&rng), rng.next() % 2 == 0 {
                (header.uid, header.gid, header.mode) = (stamp[0], stamp[1], stamp[2])
            } else {
                header.uid = [0, 1000, 1001][Int(rng.next() % 3)]
                header.gid = [0, 50, 1001][Int(rng.next() % 3)]
                header.mode = [FileMode.directory | 0o777, FileMode.directory | 0o700, FileMode.regular | 0o666][Int(rng.next() % 3)]
            }
            header.level = UInt32(rng.next() % 3)
            call.changes = [(0, header.encoded)]
            if rng.next() % 2 == 0, let entry = tree.randomEntry(&rng) {
                var planted = entry
                planted.name = Array("laid\(rng.next() % 100)".utf8)
                planted.uid = [1000, 1001, 0][Int(rng.next() % 3)]
                call.changes.append((CFFSLayout.slotOffset(0), planted.encoded))
            }
        }
        return call
    }

    func perform<P: KernelPort>(_ port: P, credential: CapabilitySlot, scratch: FrameNumber, frames: [FrameNumber]) -> Outcome {
        do {
            switch kind {
            case .readIn: _ = try port.readIn(block, frame: frames[0], credential: credential)
            case .read: try port.read(block, into: scratch, credential: credential)
            case .map: _ = try port.map(block, writable: false, credential: credential)
            case .mapMany: _ = try port.map(blocks, frames: frames, credential: credential)
            case .writeData: try port.writeData(block, .inline(changes), credential: credential)
            case .mapWritable: _ = try port.map(block, writable: true, credential: credential)
            case .modify: try port.modify(block, .write, .inline(changes), credential: credential)
            case .allocate:
                guard case .allocate(let child, let type, _) = operation else { return .refused }
                try port.modify(block, .allocate(child, type, frame: frames[0]), .inline(changes), credential: credential)
            case .free: try port.modify(block, .free(other), .inline(changes), credential: credential)
            case .link: try port.modify(block, .link(other), .inline(changes), credential: credential)
            case .move:
                try port.move(from: block, offset: range.offset, count: range.count, to: other, at: range.at, edits: .inline(changes),
                              credential: credential)
            case .writeback: try port.writeback(blocks)
            case .evict: try port.evict(block, credential: credential)
            }
            return .allowed
        } catch {
            return .refused
        }
    }
}
