// Blocks with several parents (`link`): only of a type installed shareable, counted by
// XN, freed with everything below them when the last pointer goes — and never reused
// while any parent that dropped one still points to them on disk.

@testable import Xok
import Testing
import TreeFS
import XN
import XokABI
import XokSimulation

extension World {
    /// `trees()` with a shareable node type ("shared"), a second directory `dir2`, and a
    /// shared node under `dir` holding one data block, all written back.
    func sharedTrees() throws -> (t: Trees, dir2: BlockNumber, shared: BlockNumber, sharedType: TypeID, data: BlockNumber) {
        let t = try trees()
        let sharedType = try tree(a, format: TreeFormat(name: "shared", ownerOffset: 0, shareable: true)).type
        let dir2 = try t.a.add(under: t.rootA, type: t.a.type)
        let shared = try t.a.add(under: t.dir, type: sharedType)
        let data = try t.a.add(under: shared, type: .data)
        for block in [data, shared, t.dir, dir2, t.rootA] { try a.writeback([block]) }
        return (t, dir2, shared, sharedType, data)
    }
}

@Suite struct XNLinks {
    @Test func aSharedNodeKeepsItsBlocksUntilItsLastNameGoes() throws {
        let w = World()
        let (t, dir2, shared, sharedType, data) = try w.sharedTrees()
        let xn = w.kernel.xn!
        try t.a.link(shared, type: sharedType, into: dir2)
        #expect(xn.references(shared) == 2)
        #expect(w.a.exposedState().registry(block: shared)?.references == 2)
        try w.a.writeback([dir2])
        #expect(XNImage.check(xn.device).violations == [])

        // One name goes: the node stays, readable through the other.
        try t.a.remove(shared, from: t.dir)
        #expect(xn.references(shared) == 1)
        #expect(try t.a.children(of: shared).map(\.block) == [data])
        // The last goes, though the node still holds its data block: both are freed.
        try t.a.remove(shared, from: dir2)
        #expect(xn.references(shared) == 0)
        // Written: dir2 no longer points to them, but dir, on disk, still does.
        try w.a.writeback([dir2])
        #expect(!xn.isFree(shared) && !xn.isFree(data))
        #expect(XNImage.check(xn.device).violations == [])
        try w.a.writeback([t.dir])
        #expect(xn.isFree(shared) && xn.isFree(data))
        #expect(XNImage.check(xn.device).violations == [])
        w.expectConsistent()
    }

    @Test func linksXNMayNotAllowAreRefused() throws {
        let w = World()
        let (t, dir2, shared, sharedType, data) = try w.sharedTrees()
        // A block whose type is not shareable: a node, a data block; a root.
        #expect(throws: KernelError.invalidArgument) { try t.a.link(t.dir, type: t.a.type, into: dir2) }
        #expect(throws: KernelError.invalidArgument) { try t.a.link(data, type: .data, into: dir2) }
        #expect(throws: KernelError.invalidArgument) { try t.a.link(t.rootA, type: t.a.type, into: dir2) }
        // A free block, one past the disk.
        let free = try w.a.firstFreeBlock(from: 0)
        #expect(throws: KernelError.invalidArgument) { try t.a.link(free, type: sharedType, into: dir2) }
        #expect(throws: KernelError.invalidArgument) { try t.a.link(.max, type: sharedType, into: dir2) }
        // Under itself: a node inside the shared one cannot name it.
        let inner = try t.a.add(under: shared, type: t.a.type)
        #expect(throws: KernelError.invalidArgument) { try t.a.link(shared, type: sharedType, into: inner) }
        #expect(throws: KernelError.invalidArgument) { try t.a.link(shared, type: sharedType, into: shared) }
        // A pointer of another type than the block's, or one the operation does not name.
        #expect(throws: KernelError.pointerInvented) { try t.a.link(shared, type: t.a.type, into: dir2) }
        let named = [(entry(5), Tree.entry(shared, sharedType)), t.a.format.highWater(6)]
        let unchanged = w.kernel.stateDigest()
        #expect(throws: KernelError.pointerInvented) { try w.a.modify(dir2, .write, .inline(named), credential: Slot.own) }
        #expect(w.kernel.stateDigest() == unchanged)
        // Another environment, which may not read the node, cannot name it.
        let entryB = [(entry(0), Tree.entry(shared, sharedType)), t.b.format.highWater(1)]
        #expect(throws: KernelError.permissionDenied) { try w.b.modify(t.rootB, .link(shared), .inline(entryB), credential: Slot.own) }
        #expect(w.kernel.stateDigest() == unchanged)
        w.expectConsistent()
    }

    @Test func aPowerCutAnywhereInLinksAndUnlinksLeavesACleanDisk() throws {
        var cut = 1
        while true {
            let w = World()
            let (t, dir2, shared, sharedType, _) = try w.sharedTrees()
            try t.a.link(shared, type: sharedType, into: dir2)
            try t.a.link(shared, type: sharedType, into: t.rootA)
            w.kernel.xn!.device.failAfterWrites = w.kernel.xn!.device.writesIssued + cut
            var finished = false
            do {
                try w.a.writeback([dir2, t.rootA])
                try t.a.remove(shared, from: t.dir)
                try t.a.remove(shared, from: dir2)
                try w.a.writeback([dir2])
                try t.a.remove(shared, from: t.rootA)
                try w.a.writeback([t.rootA])
                try w.a.writeback([t.dir])
                finished = true
            } catch {}
            var disk = w.kernel.xn!.device
            _ = disk.powerLoss()
            #expect(XNImage.check(disk).violations == [], "cut at write \(cut)")
            let kernel = Kernel(host: SimulatedHost(frameCount: 64))
            try kernel.mountDisk(disk, format: false)
            #expect(XNImage.check(kernel.xn!.device).violations == [], "cut at write \(cut)")
            if finished { break }
            cut += 1
        }
        #expect(cut > 3)
    }

    /// Found by the simulation (seed 152): a node moved out from under a shared node, then
    /// the shared node linked into it. In memory that is no loop; on disk, until the move
    /// is written, the node is still under the shared one, and writing the link alone
    /// closed a loop that lost both.
    @Test func aLinkUnderABlockStillBelowItOnDiskWaitsForTheWriteback() throws {
        let w = World()
        let (t, dir2, shared, sharedType, _) = try w.sharedTrees()
        let node = try t.a.add(under: shared, type: t.a.type)
        for block in [node, shared] { try w.a.writeback([block]) }
        try t.a.move(node, from: shared, to: dir2)
        #expect(throws: KernelError.busy) { try t.a.link(shared, type: sharedType, into: node) }
        try w.a.writeback([dir2])
        try t.a.link(shared, type: sharedType, into: node)
        try w.a.writeback([node])
        #expect(XNImage.check(w.kernel.xn!.device).violations == [])
        // The same through a pointer dropped but not yet written: shared node x, under
        // shared node s and named from dir2 too, leaves s; node n is under x. Until s is
        // written, s still holds x on disk, so s may not go under n.
        let w2 = World()
        let (t2, dir22, s2, sharedType2, _) = try w2.sharedTrees()
        let x = try t2.a.add(under: s2, type: sharedType2)
        try t2.a.link(x, type: sharedType2, into: dir22)
        let n = try t2.a.add(under: x, type: t2.a.type)
        for block in [n, x, s2, dir22] { try w2.a.writeback([block]) }
        try t2.a.remove(x, from: s2)
        #expect(throws: KernelError.busy) { try t2.a.link(s2, type: sharedType2, into: n) }
        try w2.a.writeback([s2])
        try t2.a.link(s2, type: sharedType2, into: n)
        for block in [n, x, s2, dir22, t2.dir, t2.rootA] { try w2.a.writeback([block]) }
        #expect(XNImage.check(w2.kernel.xn!.device).violations == [])
        w.expectConsistent()
        w2.expectConsistent()
    }

    @Test func fsckFindsASharedNodeThatIsItsOwnAncestor() throws {
        let w = World()
        let (t, _, shared, sharedType, _) = try w.sharedTrees()
        let xn = w.kernel.xn!
        #expect(XNImage.check(xn.device).violations == [])
        // On disk, the shared node names itself: a loop below the walk's first visit.
        var disk = xn.device
        var bytes = try disk.read([shared])[0]
        bytes.replaceSubrange(entry(1)..<entry(2), with: Tree.entry(shared, sharedType))
        bytes.replaceSubrange(t.a.format.highWaterOffset..<t.a.format.highWaterOffset + 4, with: [2, 0, 0, 0])
        try disk.write([(shared, bytes)])
        #expect(XNImage.check(disk).violations.contains("block \(shared) is its own ancestor"))
        // A node of a type that is not shareable, reached twice, is still a violation.
        bytes.replaceSubrange(entry(1)..<entry(2), with: Tree.entry(t.dir, t.a.type))
        try disk.write([(shared, bytes)])
        #expect(XNImage.check(disk).violations.contains { $0.hasPrefix("block \(t.dir) is reachable twice") })
    }
}

/// a's request to link `child` (of `type`) into entry 5 of `node`.
func linkRequest(_ t: Trees, _ child: BlockNumber, _ type: TypeID, into node: BlockNumber) -> KernelRequest {
    .xnModify(credential: Slot.own, node, .link(child), .inline([(entry(5), Tree.entry(child, type)), t.a.format.highWater(6)]))
}

let xnLinkErrorCases: [ErrorCase] = [
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "a link to a block whose type is not shareable") { w in
        let (t, dir2, _, _, _) = try w.sharedTrees()
        return (w.a, linkRequest(t, t.dir, t.a.type, into: dir2)) },
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "a link to a root") { w in
        let (t, dir2, _, _, _) = try w.sharedTrees()
        return (w.a, linkRequest(t, t.rootA, t.a.type, into: dir2)) },
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "a link to a free block") { w in
        let (t, dir2, _, sharedType, _) = try w.sharedTrees()
        return (w.a, linkRequest(t, try w.a.firstFreeBlock(from: 0), sharedType, into: dir2)) },
    ErrorCase(call: "xnModify", error: .invalidArgument, why: "a link that would make a block its own ancestor") { w in
        let (t, _, shared, sharedType, _) = try w.sharedTrees()
        return (w.a, linkRequest(t, shared, sharedType, into: shared)) },
    ErrorCase(call: "xnModify", error: .permissionDenied, why: "a link to a block the caller may not read") { w in
        let (t, _, shared, sharedType, _) = try w.sharedTrees()
        return (w.b, .xnModify(credential: Slot.own, t.rootB, .link(shared),
                               .inline([(entry(0), Tree.entry(shared, sharedType)), t.b.format.highWater(1)]))) },
    ErrorCase(call: "xnModify", error: .pointerLost, why: "a link whose change does not name the block") { w in
        let (t, dir2, shared, _, _) = try w.sharedTrees()
        return (w.a, .xnModify(credential: Slot.own, dir2, .link(shared), .inline([t.a.format.highWater(6)]))) },
]
