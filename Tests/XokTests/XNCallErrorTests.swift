// XN's calls × the errors each returns, through a port, in the same table as the rest of
// the kernel's calls (CallErrorTests.swift runs them all and checks nothing changed).

import BPF
import Testing
import TreeFS
import TreeFSUDFs
import XN
import Xok
import XokABI
import XokSimulation

typealias Tree = TreeClient<LocalPort<SimulatedHost>>

func entry(_ n: Int) -> Int { TreeFormat.entriesStart + n * TreeFormat.entryBytes }

/// A frame of `port`'s, mapped writable, holding `bytes`.
func bytesFrame(_ w: World, _ port: LocalPort<SimulatedHost>, _ bytes: [UInt8]) throws -> FrameNumber {
    let f = try w.frame(of: port)
    try port.map(f, writable: true, credential: Slot.own)
    try port.store(bytes, into: f, offset: 0)
    return f
}

extension World {
    /// a's tree file system with its root "a" (written back), a directory in it holding
    /// a data block (both written back), and b's tree with root "b".
    func trees() throws -> (a: Tree, rootA: BlockNumber, dir: BlockNumber, file: BlockNumber, b: Tree, rootB: BlockNumber) {
        let ta = try tree(a), tb = try tree(b, format: TreeFormat(name: "list", ownerOffset: 8))
        let rootA = try ta.createRoot(name: "a"), rootB = try tb.createRoot(name: "b")
        let dir = try ta.add(under: rootA, type: ta.type)
        let file = try ta.add(under: dir, type: .data)
        try a.writeback([file])
        try a.writeback([dir])
        try a.writeback([rootA])
        try b.writeback([rootB])
        return (ta, rootA, dir, file, tb, rootB)
    }
}

let ownsSpinningOnAMark: [UInt8] = try! Assembler.assemble("""
    ldxb %r5, [%r1+100]
    mov %r0, 0
    jeq %r5, 0, +2
    add %r5, 1
    ja -2
    exit
    """).bytes
let allowEverything: [UInt8] = try! Assembler.assemble("mov %r0, 1\nexit").bytes
let sizeZero: [UInt8] = try! Assembler.assemble("mov %r0, 0\nexit").bytes

func installRequest(_ w: World, _ port: LocalPort<SimulatedHost>, name: [UInt8], owns: [UInt8], credential: CapabilitySlot = Slot.types) throws -> KernelRequest {
    let spans = try [owns, allowEverything, sizeZero].map { FrameSpan(frame: try bytesFrame(w, port, $0), length: UInt32($0.count)) }
    return .xnInstallType(credential: credential, name: name, owns: [spans[0]], acl: [spans[1]], size: [spans[2]])
}

/// a's request to allocate `blocks` as data in its directory (entries 1 on), each in a
/// frame of its own unless `frames` says otherwise.
func batchAllocation(_ w: World, _ t: (a: Tree, rootA: BlockNumber, dir: BlockNumber, file: BlockNumber, b: Tree, rootB: BlockNumber),
                     blocks: [BlockNumber], frames: [FrameNumber]? = nil) throws -> KernelRequest {
    var changes = blocks.enumerated().map { (offset: entry(1 + $0.offset), bytes: Tree.entry($0.element, .data)) }
    changes.append(t.a.format.highWater(1 + blocks.count))
    let given = try frames ?? blocks.map { _ in try w.frame(of: w.a) }
    return .xnModify(credential: Slot.own, t.dir, .allocateMany(blocks, .data, frames: given), XNChanges.inline(changes))
}

typealias Trees = (a: Tree, rootA: BlockNumber, dir: BlockNumber, file: BlockNumber, b: Tree, rootB: BlockNumber)

extension World {
    /// `trees()` with a second directory beside `dir`: empty, scanned from entry 0 on,
    /// written back with its parent. Moving `dir`'s entry 0 (the file) to its entry 0 is a
    /// valid move.
    func moveTrees() throws -> (t: Trees, dir2: BlockNumber) {
        let t = try trees()
        let dir2 = try t.a.add(under: t.rootA, type: t.a.type)
        try a.modify(dir2, .write, .inline([t.a.format.highWater(1)]), credential: Slot.own)
        try a.writeback([dir2])
        try a.writeback([t.rootA])
        return (t, dir2)
    }
}

/// A move request of a's.
func moveRequest(_ source: BlockNumber, _ offset: Int, _ count: Int, _ destination: BlockNumber, _ at: Int,
                 _ edits: XNChanges = .none) -> KernelRequest {
    .xnMove(credential: Slot.own, source: source, range: XNChanges.Range(offset: UInt16(offset), length: UInt16(count)),
            destination: destination, at: UInt16(at), edits: edits)
}

let xnMoveErrorCases: [ErrorCase] = [
    ErrorCase(call: "xnMove", error: .invalidArgument, why: "one block for both") { w in
        let (t, _) = try w.moveTrees()
        return (w.a, moveRequest(t.dir, entry(0), 16, t.dir, entry(3))) },
    ErrorCase(call: "xnMove", error: .invalidArgument, why: "an empty range") { w in
        let (t, dir2) = try w.moveTrees()
        return (w.a, moveRequest(t.dir, entry(0), 0, dir2, entry(0))) },
    ErrorCase(call: "xnMove", error: .invalidArgument, why: "a range past the block") { w in
        let (t, dir2) = try w.moveTrees()
        return (w.a, moveRequest(t.dir, 4090, 16, dir2, entry(0))) },
    ErrorCase(call: "xnMove", error: .invalidArgument, why: "a landing past the block") { w in
        let (t, dir2) = try w.moveTrees()
        return (w.a, moveRequest(t.dir, entry(0), 16, dir2, 4081)) },
    ErrorCase(call: "xnMove", error: .invalidArgument, why: "a landing on bytes in use") { w in
        let (t, _) = try w.moveTrees()
        return (w.a, moveRequest(t.dir, entry(0), 16, t.rootA, entry(0))) },
    ErrorCase(call: "xnMove", error: .invalidArgument, why: "an edit outside the landing range") { w in
        let (t, dir2) = try w.moveTrees()
        return (w.a, moveRequest(t.dir, entry(0), 16, dir2, entry(0), .inline([(entry(1), [1])]))) },
    ErrorCase(call: "xnMove", error: .invalidArgument, why: "a directory moved under itself") { w in
        let (t, _) = try w.moveTrees()
        return (w.a, moveRequest(t.rootA, entry(0), 16, t.dir, entry(1))) },
    ErrorCase(call: "xnMove", error: .pointerInvented, why: "an edit changes the pointer that arrives") { w in
        let (t, dir2) = try w.moveTrees()
        return (w.a, moveRequest(t.dir, entry(0), 16, dir2, entry(0), .inline([(entry(0), Tree.entry(400, .data))]))) },
    ErrorCase(call: "xnMove", error: .pointerLost, why: "the pointer lands where owns does not look") { w in
        let (t, dir2) = try w.moveTrees()
        return (w.a, moveRequest(t.dir, entry(0), 16, dir2, entry(9))) },
    ErrorCase(call: "xnMove", error: .permissionDenied, why: "another's blocks, refused by the acl UDF") { w in
        let (t, dir2) = try w.moveTrees()
        return (w.b, moveRequest(t.dir, entry(0), 16, dir2, entry(0))) },
    ErrorCase(call: "xnMove", error: .permissionDenied, why: "into another's root, which its capability protects") { w in
        let (t, _) = try w.moveTrees()
        return (w.a, moveRequest(t.dir, entry(0), 16, t.rootB, entry(0))) },
    ErrorCase(call: "xnMove", error: .notCached, why: "the destination evicted") { w in
        let (t, dir2) = try w.moveTrees()
        try w.a.evict(dir2, credential: Slot.own)
        return (w.a, moveRequest(t.dir, entry(0), 16, dir2, entry(0))) },
    ErrorCase(call: "xnMove", error: .noSuchBlock, why: "a free block as the source") { w in
        let (_, dir2) = try w.moveTrees()
        return (w.a, moveRequest(500, entry(0), 16, dir2, entry(0))) },
    ErrorCase(call: "xnMove", error: .noSuchBlock, why: "a data block as the destination") { w in
        let (t, _) = try w.moveTrees()
        return (w.a, moveRequest(t.dir, entry(0), 16, t.file, 0)) },
    ErrorCase(call: "xnMove", error: .invalidArgument, why: "edits whose inline bytes do not match their ranges") { w in
        let (t, dir2) = try w.moveTrees()
        return (w.a, moveRequest(t.dir, entry(0), 16, dir2, entry(0), XNChanges(ranges: [.init(offset: UInt16(entry(0)), length: 4)], bytes: [1], source: nil))) },
    ErrorCase(call: "xnMove", error: .busy, why: "a move that would tie more than 16 blocks together") { w in
        let (t, _) = try w.moveTrees()
        // A chain of directories, the file passed along it without a writeback.
        var chain = [t.dir]
        for _ in 0..<XNLayout.moveGroupMax {
            let d = try t.a.add(under: t.rootA, type: t.a.type)
            try w.a.modify(d, .write, .inline([t.a.format.highWater(1)]), credential: Slot.own)
            try w.a.writeback([d])
            chain.append(d)
        }
        try w.a.writeback([t.rootA])
        for i in 0..<XNLayout.moveGroupMax - 1 { _ = try w.a.perform(moveRequest(chain[i], entry(0), 16, chain[i + 1], entry(0))) }
        return (w.a, moveRequest(chain[XNLayout.moveGroupMax - 1], entry(0), 16, chain[XNLayout.moveGroupMax], entry(0))) },
    ErrorCase(call: "xnModify", error: .busy, why: "freeing a block whose move is not yet on disk") { w in
        let (t, dir2) = try w.moveTrees()
        _ = try w.a.perform(moveRequest(t.dir, entry(0), 16, dir2, entry(0)))
        return (w.a, .xnModify(credential: Slot.own, t.rootA, .free(t.dir), .inline([(entry(0), [UInt8](repeating: 0, count: 16))]))) },
]

let xnErrorCases: [ErrorCase] = [
    // Types
    ErrorCase(call: "xnInstallType", error: .invalidArgument, why: "a name with a NUL") { w in
        (w.a, try installRequest(w, w.a, name: Array("tree\0evil".utf8), owns: TreeFormat(name: "t", ownerOffset: 0).owns)) },
    ErrorCase(call: "xnInstallType", error: .invalidArgument, why: "an empty name") { w in
        (w.a, try installRequest(w, w.a, name: [], owns: TreeFormat(name: "t", ownerOffset: 0).owns)) },
    ErrorCase(call: "xnInstallType", error: .invalidArgument, why: "a name that is not UTF-8") { w in
        (w.a, try installRequest(w, w.a, name: [0xff, 0xfe], owns: TreeFormat(name: "t", ownerOffset: 0).owns)) },
    ErrorCase(call: "xnInstallType", error: .invalidArgument, why: "a span longer than a frame") { w in
        guard case .xnInstallType(let c, let n, var owns, let acl, let size, _, _) = try installRequest(w, w.a, name: Array("t".utf8), owns: allowEverything) else { throw KernelError.badRequest }
        owns[0].length = UInt32(KernelLimits.pageBytes + 1)
        return (w.a, .xnInstallType(credential: c, name: n, owns: owns, acl: acl, size: size)) },
    ErrorCase(call: "xnInstallType", error: .badRequest, why: "a UDF in more frames than a program may take (the wire refuses it)") { w in
        guard case .xnInstallType(let c, let n, let owns, let acl, let size, _, _) = try installRequest(w, w.a, name: Array("t".utf8), owns: allowEverything) else { throw KernelError.badRequest }
        return (w.a, .xnInstallType(credential: c, name: n, owns: Array(repeating: owns[0], count: KernelLimits.udfFramesMax + 1), acl: acl, size: size)) },
    ErrorCase(call: "xnInstallType", error: .notMapped, why: "UDFs in a frame the caller has not bound") { w in
        let unbound = FrameSpan(frame: try w.frame(of: w.a), length: 8)
        return (w.a, .xnInstallType(credential: Slot.types, name: Array("t".utf8), owns: [unbound], acl: [unbound], size: [unbound])) },
    ErrorCase(call: "xnInstallType", error: .programRejected, why: "owns reads past the block") { w in
        (w.a, try installRequest(w, w.a, name: Array("bad".utf8), owns: try Assembler.assemble("ldxb %r0, [%r1+4096]\nexit").bytes)) },
    ErrorCase(call: "xnInstallType", error: .nameTaken, why: "the name is installed") { w in
        _ = try w.tree(w.b)
        return (w.a, try installRequest(w, w.a, name: Array("tree".utf8), owns: TreeFormat(name: "t", ownerOffset: 0).owns)) },
    ErrorCase(call: "xnInstallType", error: .limitExceeded, why: "its quota of catalogue entries used") { w in
        for i in 0..<Int(w.childQuota.catalogueEntries) { _ = try w.tree(w.a, format: TreeFormat(name: "t\(i)", ownerOffset: 0)) }
        return (w.a, try installRequest(w, w.a, name: Array("one more".utf8), owns: TreeFormat(name: "t", ownerOffset: 0).owns)) },
    ErrorCase(call: "xnLookupType", error: .noSuchType, why: "never installed") { w in (w.a, .xnLookupType(name: Array("none".utf8))) },
    ErrorCase(call: "xnLookupType", error: .noDisk, why: "the kernel has no disk", diskBlocks: 0) { w in (w.a, .xnLookupType(name: Array("tree".utf8))) },
    // Roots
    ErrorCase(call: "xnCreateRoot", error: .noSuchType, why: "type never installed") { w in
        (w.a, .xnCreateRoot(credential: Slot.roots, name: Array("x".utf8), type: TypeID(rawValue: 99), protection: Slot.own, frame: try w.frame(of: w.a))) },
    ErrorCase(call: "xnCreateRoot", error: .noSuchType, why: "the data type") { w in
        (w.a, .xnCreateRoot(credential: Slot.roots, name: Array("x".utf8), type: .data, protection: Slot.own, frame: try w.frame(of: w.a))) },
    ErrorCase(call: "xnCreateRoot", error: .nameTaken, why: "the name is taken") { w in
        let t = try w.trees()
        return (w.b, .xnCreateRoot(credential: Slot.roots, name: Array("a".utf8), type: t.b.type, protection: Slot.own, frame: try w.frame(of: w.b))) },
    ErrorCase(call: "xnCreateRoot", error: .invalidArgument, why: "a name with a NUL") { w in
        let t = try w.tree(w.a)
        return (w.a, .xnCreateRoot(credential: Slot.roots, name: Array("home\0".utf8), type: t.type, protection: Slot.own, frame: try w.frame(of: w.a))) },
    ErrorCase(call: "xnCreateRoot", error: .emptySlot, why: "the protecting capability's slot is empty") { w in
        let t = try w.tree(w.a)
        return (w.a, .xnCreateRoot(credential: Slot.roots, name: Array("x".utf8), type: t.type, protection: Slot.empty, frame: try w.frame(of: w.a))) },
    ErrorCase(call: "xnCreateRoot", error: .noSuchFrame, why: "another's frame") { w in
        let t = try w.tree(w.a)
        return (w.a, .xnCreateRoot(credential: Slot.roots, name: Array("x".utf8), type: t.type, protection: Slot.own, frame: try w.frame(of: w.b))) },
    ErrorCase(call: "xnCreateRoot", error: .busy, why: "a frame another environment has mapped") { w in
        let t = try w.tree(w.a)
        let f = try w.frame(of: w.a)
        try w.a.setACL(acl(capability([101], .all), capability([102], .read)), of: f, credential: Slot.own)
        try w.b.map(f, writable: false, credential: Slot.own)
        return (w.a, .xnCreateRoot(credential: Slot.roots, name: Array("x".utf8), type: t.type, protection: Slot.own, frame: f)) },
    ErrorCase(call: "xnCreateRoot", error: .limitExceeded, why: "its quota of catalogue entries used") { w in
        let t = try w.tree(w.a)
        for i in 1..<Int(w.childQuota.catalogueEntries) { _ = try t.createRoot(name: "r\(i)") }
        return (w.a, .xnCreateRoot(credential: Slot.roots, name: Array("x".utf8), type: t.type, protection: Slot.own, frame: try w.frame(of: w.a))) },
    ErrorCase(call: "xnLookupRoot", error: .noSuchRoot, why: "never created") { w in (w.a, .xnLookupRoot(name: Array("none".utf8))) },
    // Reading and mapping
    ErrorCase(call: "xnReadIn", error: .noSuchBlock, why: "a free block") { w in
        _ = try w.trees()
        return (w.a, .xnReadIn(credential: Slot.own, 500, frame: try w.frame(of: w.a))) },
    ErrorCase(call: "xnReadIn", error: .notCached, why: "its parent is not cached") { w in
        let t = try w.trees()
        try w.a.evict(t.file, credential: Slot.own)
        try w.a.evict(t.dir, credential: Slot.own)
        return (w.a, .xnReadIn(credential: Slot.own, t.file, frame: try w.frame(of: w.a))) },
    ErrorCase(call: "xnReadIn", error: .permissionDenied, why: "another's root") { w in
        let t = try w.trees()
        try w.a.evict(t.file, credential: Slot.own)
        try w.a.evict(t.dir, credential: Slot.own)
        try w.a.evict(t.rootA, credential: Slot.own)
        return (w.b, .xnReadIn(credential: Slot.own, t.rootA, frame: try w.frame(of: w.b))) },
    ErrorCase(call: "xnReadIn", error: .noSuchFrame, why: "a frame past the machine") { w in
        let t = try w.trees()
        return (w.a, .xnReadIn(credential: Slot.own, t.dir, frame: FrameNumber(rawValue: .max))) },
    ErrorCase(call: "xnMapMany", error: .invalidArgument, why: "fewer frames than blocks") { w in
        let t = try w.trees()
        return (w.a, .xnMapMany(credential: Slot.own, blocks: [t.dir, t.file], frames: [try w.frame(of: w.a)])) },
    ErrorCase(call: "xnMapMany", error: .invalidArgument, why: "a block named twice") { w in
        let t = try w.trees()
        return (w.a, .xnMapMany(credential: Slot.own, blocks: [t.file, t.file], frames: [try w.frame(of: w.a), try w.frame(of: w.a)])) },
    ErrorCase(call: "xnMapMany", error: .invalidArgument, why: "a frame named twice") { w in
        let t = try w.trees()
        try w.a.evict(t.file, credential: Slot.own)
        let f = try w.frame(of: w.a)
        return (w.a, .xnMapMany(credential: Slot.own, blocks: [t.dir, t.file], frames: [f, f])) },
    ErrorCase(call: "xnMapMany", error: .noSuchBlock, why: "a free block after a cached one") { w in
        let t = try w.trees()
        return (w.a, .xnMapMany(credential: Slot.own, blocks: [t.dir, 500], frames: [try w.frame(of: w.a), try w.frame(of: w.a)])) },
    ErrorCase(call: "xnMapMany", error: .notCached, why: "a block whose parent is not cached") { w in
        let t = try w.trees()
        try w.a.evict(t.file, credential: Slot.own)
        try w.a.evict(t.dir, credential: Slot.own)
        return (w.a, .xnMapMany(credential: Slot.own, blocks: [t.rootA, t.file], frames: [try w.frame(of: w.a), try w.frame(of: w.a)])) },
    ErrorCase(call: "xnMapMany", error: .permissionDenied, why: "another's directory among its own blocks") { w in
        let t = try w.trees()
        return (w.b, .xnMapMany(credential: Slot.own, blocks: [t.rootB, t.dir], frames: [try w.frame(of: w.b), try w.frame(of: w.b)])) },
    ErrorCase(call: "xnMapMany", error: .noSuchFrame, why: "a frame of another's") { w in
        let t = try w.trees()
        try w.a.evict(t.file, credential: Slot.own)
        return (w.a, .xnMapMany(credential: Slot.own, blocks: [t.file], frames: [try w.frame(of: w.b)])) },
    ErrorCase(call: "xnMapMany", error: .busy, why: "a frame already holding a cached block") { w in
        let t = try w.trees()
        try w.a.evict(t.file, credential: Slot.own)
        let holder = try w.a.readIn(t.dir, frame: try w.frame(of: w.a), credential: Slot.own)
        return (w.a, .xnMapMany(credential: Slot.own, blocks: [t.file], frames: [holder])) },
    ErrorCase(call: "xnMapMany", error: .ioError, why: "the disk fails while reading") { w in
        let t = try w.trees()
        try w.a.evict(t.file, credential: Slot.own)
        // The power fails under another block's writeback.
        let other = try t.a.add(under: t.dir, type: .data)
        w.kernel.xn!.device.failAfterWrites = w.kernel.xn!.device.writesIssued + 1
        _ = try? w.a.writeback([other])
        return (w.a, .xnMapMany(credential: Slot.own, blocks: [t.file], frames: [try w.frame(of: w.a)])) },
    ErrorCase(call: "xnMapMany", error: .noDisk, why: "the kernel has no disk", diskBlocks: 0) { w in
        (w.a, .xnMapMany(credential: Slot.own, blocks: [1], frames: [try w.frame(of: w.a)])) },
    ErrorCase(call: "xnRead", error: .notMapped, why: "into a frame bound read-only") { w in
        let t = try w.trees()
        let f = try w.frame(of: w.a)
        try w.a.map(f, writable: false, credential: Slot.own)
        return (w.a, .xnRead(credential: Slot.own, t.dir, into: f)) },
    ErrorCase(call: "xnRead", error: .notCached, why: "an allocated block not in the cache") { w in
        let t = try w.trees()
        try w.a.evict(t.file, credential: Slot.own)
        return (w.a, .xnRead(credential: Slot.own, t.file, into: try bytesFrame(w, w.a, []))) },
    ErrorCase(call: "xnRead", error: .permissionDenied, why: "another's block") { w in
        let t = try w.trees()
        return (w.b, .xnRead(credential: Slot.own, t.file, into: try bytesFrame(w, w.b, []))) },
    ErrorCase(call: "xnMap", error: .noSuchBlock, why: "metadata, writable") { w in
        let t = try w.trees()
        return (w.a, .xnMap(credential: Slot.own, t.dir, writable: true)) },
    ErrorCase(call: "xnMap", error: .permissionDenied, why: "another's data") { w in
        let t = try w.trees()
        return (w.b, .xnMap(credential: Slot.own, t.file, writable: false)) },
    ErrorCase(call: "xnMap", error: .notCached, why: "not in the cache") { w in
        let t = try w.trees()
        try w.a.evict(t.file, credential: Slot.own)
        return (w.a, .xnMap(credential: Slot.own, t.file, writable: false)) },
    // Changes
    ErrorCase(call: "xnModify", error: .noSuchBlock, why: "a free block") { w in
        _ = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, 500, .write, .inline([(0, [1])]))) },
    ErrorCase(call: "xnModify", error: .noSuchBlock, why: "a data block") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.file, .write, .inline([(0, [1])]))) },
    ErrorCase(call: "xnModify", error: .notCached, why: "evicted") { w in
        let t = try w.trees()
        try w.a.evict(t.file, credential: Slot.own)
        try w.a.evict(t.dir, credential: Slot.own)
        return (w.a, .xnModify(credential: Slot.own, t.dir, .write, .inline([(300, [1])]))) },
    ErrorCase(call: "xnModify", error: .permissionDenied, why: "another's root, which its capability protects") { w in
        let t = try w.trees()
        return (w.b, .xnModify(credential: Slot.own, t.rootA, .write, .inline([(300, [1])]))) },
    ErrorCase(call: "xnModify", error: .permissionDenied, why: "another's directory, refused by the acl UDF") { w in
        let t = try w.trees()
        return (w.b, .xnModify(credential: Slot.own, t.dir, .write, .inline([(300, [1])]))) },
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "a range past the block") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.dir, .write, .inline([(4095, [1, 2])]))) },
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "an offset past 16 bits, which is not wrapped into the block") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.dir, .write, .inline([(70_000, [1])]))) },
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "a negative offset") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.dir, .write, .inline([(-1, [1])]))) },
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "inline bytes that do not match the ranges") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.dir, .write, XNChanges(ranges: [.init(offset: 300, length: 4)], bytes: [1], source: nil))) },
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "bytes both inline and in a frame") { w in
        let t = try w.trees()
        let f = try bytesFrame(w, w.a, [1])
        return (w.a, .xnModify(credential: Slot.own, t.dir, .write, XNChanges(ranges: [.init(offset: 300, length: 1)], bytes: [1], source: f))) },
    ErrorCase(call: "xnModify", error: .notMapped, why: "bytes from a frame the caller has not bound") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.dir, .write, XNChanges(ranges: [.init(offset: 300, length: 1)], bytes: [], source: try w.frame(of: w.a)))) },
    ErrorCase(call: "xnModify", error: .pointerInvented, why: "a write adds a pointer") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.dir, .write, .inline([(entry(3), Tree.entry(400, .data))]))) },
    ErrorCase(call: "xnModify", error: .pointerLost, why: "a write drops a pointer") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.dir, .write, .inline([(entry(0), [UInt8](repeating: 0, count: 16))]))) },
    ErrorCase(call: "xnModify", error: .invalidPointer, why: "a pointer into XN's own structures") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.dir, .write, .inline([(entry(3), Tree.entry(1, .data))]))) },
    ErrorCase(call: "xnModify", error: .notFree, why: "allocating another's block") { w in
        let t = try w.trees()
        return (w.b, .xnModify(credential: Slot.own, t.rootB, .allocate(t.dir, t.b.type, frame: try w.frame(of: w.b)),
                                .inline([(entry(0), Tree.entry(t.dir, t.b.type))]))) },
    ErrorCase(call: "xnModify", error: .noSuchType, why: "allocating an unknown type") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.dir, .allocate(400, TypeID(rawValue: 77), frame: try w.frame(of: w.a)),
                                .inline([(entry(1), Tree.entry(400, TypeID(rawValue: 77)))]))) },
    ErrorCase(call: "xnModify", error: .noSuchFrame, why: "allocating into another's frame") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.dir, .allocate(400, .data, frame: try w.frame(of: w.b)), .inline([(entry(1), Tree.entry(400, .data))]))) },
    ErrorCase(call: "xnModify", error: .notAChild, why: "freeing a block it does not point to") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.rootA, .free(t.file), .none)) },
    ErrorCase(call: "xnModify", error: .notEmpty, why: "freeing a directory that holds a block") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.rootA, .free(t.dir), .inline([(entry(0), [UInt8](repeating: 0, count: 16))]))) },
    ErrorCase(call: "xnModify", error: .udfFailed, why: "owns never ends on this content") { w in
        let spin = try w.tree(w.a)
        let request = try installRequest(w, w.a, name: Array("spin".utf8), owns: ownsSpinningOnAMark)
        guard case .type(let type) = try w.a.perform(request) else { throw KernelError.badRequest }
        let root = try w.a.createRoot(named: "spin", type: type, protection: Slot.own, frame: try w.frame(of: w.a), credential: Slot.roots)
        _ = spin
        return (w.a, .xnModify(credential: Slot.own, root, .write, .inline([(100, [1])]))) },
    // Batches: nothing of a batch happens unless all of it does.
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "an empty batch") { w in
        let t = try w.trees()
        return (w.a, try batchAllocation(w, t, blocks: [])) },
    ErrorCase(call: "xnModify", error: .badRequest, why: "a batch one past the limit, refused on the wire") { w in
        let t = try w.trees()
        return (w.a, try batchAllocation(w, t, blocks: Array(400..<400 + BlockNumber(KernelLimits.xnBatchMax) + 1))) },
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "a batch naming a block twice") { w in
        let t = try w.trees()
        return (w.a, try batchAllocation(w, t, blocks: [400, 401, 400])) },
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "a batch naming a frame twice") { w in
        let t = try w.trees()
        let f = try w.frame(of: w.a)
        return (w.a, try batchAllocation(w, t, blocks: [400, 401], frames: [f, f])) },
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "a batch with fewer frames than blocks") { w in
        let t = try w.trees()
        return (w.a, try batchAllocation(w, t, blocks: [400, 401], frames: [try w.frame(of: w.a)])) },
    ErrorCase(call: "xnModify", error: .notFree, why: "a batch whose last block is taken") { w in
        let t = try w.trees()
        return (w.a, try batchAllocation(w, t, blocks: [400, 401, t.file])) },
    ErrorCase(call: "xnModify", error: .noSuchFrame, why: "a batch with one frame of another's") { w in
        let t = try w.trees()
        return (w.a, try batchAllocation(w, t, blocks: [400, 401], frames: [try w.frame(of: w.a), try w.frame(of: w.b)])) },
    ErrorCase(call: "xnModify", error: .pointerLost, why: "a batch whose change leaves one pointer out") { w in
        let t = try w.trees()
        guard case .xnModify(let c, let block, let operation, var changes) = try batchAllocation(w, t, blocks: [400, 401, 402]) else {
            throw KernelError.badRequest
        }
        changes = .inline([(entry(1), Tree.entry(400, .data)), (entry(2), Tree.entry(401, .data)), t.a.format.highWater(4)])
        return (w.a, .xnModify(credential: c, block, operation, changes)) },
    ErrorCase(call: "xnModify", error: .limitExceeded, why: "a batch larger than its quota's room") { w in
        let t = try w.trees()
        let room = w.childQuota.blocks - w.kernel.quota(of: w.a.environment)!.used.blocks
        guard room < UInt64(KernelLimits.xnBatchMax) else {
            // The quota is larger than a batch: use it up but for one block.
            var parent = t.dir, n = 0
            for _ in 0..<room - 1 {
                if n == 200 { parent = try t.a.add(under: t.rootA, type: t.a.type); n = 0 }
                _ = try t.a.add(under: parent, type: .data, hint: 0)
                n += 1
            }
            let free = try w.a.firstFreeBlock(from: 0)
            return (w.a, try batchAllocation(w, t, blocks: [free, free + 1])) }
        return (w.a, try batchAllocation(w, t, blocks: Array(400..<400 + room + 1))) },
    ErrorCase(call: "xnModify", error: .notAChild, why: "a batch free naming one block it does not point to") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.dir, .freeMany([t.file, t.dir]), .inline([(entry(0), [UInt8](repeating: 0, count: 16))]))) },
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "a batch free naming a block twice") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.dir, .freeMany([t.file, t.file]), .inline([(entry(0), [UInt8](repeating: 0, count: 16))]))) },
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "an empty batch free") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.dir, .freeMany([]), .none)) },
    ErrorCase(call: "xnModify", error: .notEmpty, why: "a batch free of a directory that holds a block") { w in
        let t = try w.trees()
        return (w.a, .xnModify(credential: Slot.own, t.rootA, .freeMany([t.dir]), .inline([(entry(0), [UInt8](repeating: 0, count: 16))]))) },
    ErrorCase(call: "xnModify", error: .limitExceeded, why: "its quota of blocks used") { w in
        let t = try w.trees()
        var used = w.kernel.quota(of: w.a.environment)!.used.blocks
        var parent = t.dir, n = 0
        while used < w.childQuota.blocks {
            if n == 200 { parent = try t.a.add(under: t.rootA, type: t.a.type); n = 0 }
            _ = try t.a.add(under: parent, type: .data, hint: 0)
            n += 1
            used += 1
        }
        return (w.a, .xnModify(credential: Slot.own, t.rootA, .allocate(try w.a.firstFreeBlock(from: 0), .data, frame: try w.frame(of: w.a)),
                                .inline([(entry(100), Tree.entry(try w.a.firstFreeBlock(from: 0), .data))]))) },
    ErrorCase(call: "xnWriteData", error: .noSuchBlock, why: "a metadata block") { w in
        let t = try w.trees()
        return (w.a, .xnWriteData(credential: Slot.own, t.dir, .inline([(0, [1])]))) },
    ErrorCase(call: "xnWriteData", error: .notCached, why: "evicted") { w in
        let t = try w.trees()
        try w.a.evict(t.file, credential: Slot.own)
        return (w.a, .xnWriteData(credential: Slot.own, t.file, .inline([(0, [1])]))) },
    ErrorCase(call: "xnWriteData", error: .permissionDenied, why: "another's data") { w in
        let t = try w.trees()
        return (w.b, .xnWriteData(credential: Slot.own, t.file, .inline([(0, [1])]))) },
    ErrorCase(call: "xnWriteData", error: .invalidArgument, why: "past the block's end") { w in
        let t = try w.trees()
        return (w.a, .xnWriteData(credential: Slot.own, t.file, .inline([(4096, [1])]))) },
    // Writeback and eviction
    ErrorCase(call: "xnWriteback", error: .ioError, why: "the disk fails") { w in
        let t = try w.trees()
        try t.a.write([1], at: 0, of: t.file)
        w.kernel.xn!.device.failAfterWrites = w.kernel.xn!.device.writesIssued + 1
        return (w.a, .xnWriteback([t.file])) },
    ErrorCase(call: "xnEvict", error: .busy, why: "a dirty block") { w in
        let t = try w.trees()
        try t.a.write([1], at: 0, of: t.file)
        return (w.a, .xnEvict(credential: Slot.own, t.file)) },
    ErrorCase(call: "xnEvict", error: .notCached, why: "not in the cache") { w in
        let t = try w.trees()
        try w.a.evict(t.file, credential: Slot.own)
        return (w.a, .xnEvict(credential: Slot.own, t.file)) },
    ErrorCase(call: "xnEvict", error: .permissionDenied, why: "another's block") { w in
        let t = try w.trees()
        return (w.b, .xnEvict(credential: Slot.own, t.file)) },
    ErrorCase(call: "xnFindFree", error: .exhausted, why: "past the disk's end") { w in (w.a, .xnFindFree(from: 1 << 40)) },
]
+ credentialRows("xnInstallType") { w, s in try installRequest(w, w.a, name: Array("t".utf8), owns: allowEverything, credential: s) }
+ credentialRows("xnCreateRoot") { w, s in
    let t = try w.tree(w.a)
    return .xnCreateRoot(credential: s, name: Array("x".utf8), type: t.type, protection: Slot.own, frame: try w.frame(of: w.a)) }
+ credentialRows("xnReadIn") { w, s in
    let t = try w.trees()
    return .xnReadIn(credential: s, t.dir, frame: try w.frame(of: w.a)) }
+ credentialRows("xnModify") { w, s in
    let t = try w.trees()
    return .xnModify(credential: s, t.dir, .write, .inline([(300, [1])])) }
