// Moving bytes, and the pointers in them, from one metadata block to another (`xnMove`):
// the pointer goes with the bytes, the tree stays a tree, and the two blocks reach the
// disk as one — a power cut at any write of the move leaves the pointer in exactly one.

@testable import Xok
import Testing
import TreeFS
import XN
import XokABI
import XokSimulation

@Suite struct XNMoves {
    @Test func thePointerGoesWithTheBytesAndBothBlocksAreWrittenAsOne() throws {
        let w = World()
        let (t, dir2) = try w.moveTrees()
        _ = try w.a.perform(moveRequest(t.dir, entry(0), 16, dir2, entry(0)))
        #expect(try t.a.children(of: t.dir).isEmpty)
        #expect(try t.a.children(of: dir2).map(\.block) == [t.file])
        #expect(w.kernel.xn!.registryEntry(t.file)?.parent == dir2)
        // Reading the file now goes through its new parent.
        #expect(try t.a.contents(t.file, via: [t.rootA, dir2]).count == 4096)
        // The emptied directory cannot go until the move is on disk.
        let cleared = [UInt8](repeating: 0, count: 16)
        #expect(throws: KernelError.busy) { try w.a.modify(t.rootA, .free(t.dir), .inline([(entry(0), cleared)]), credential: Slot.own) }
        // Writing either block writes both.
        try w.a.writeback([t.dir])
        #expect(w.kernel.xn!.registryEntry(dir2)?.dirty == false)
        try w.a.modify(t.rootA, .free(t.dir), .inline([(entry(0), cleared)]), credential: Slot.own)
        try w.a.writeback([t.rootA])
        var disk = w.kernel.xn!.device
        #expect(XNImage.check(disk).violations == [])
        let onDisk = try disk.read([dir2])[0]
        #expect(Array(onDisk[entry(0)..<entry(0) + 8]) == Array(Tree.entry(t.file, .data).prefix(8)))
        w.expectConsistent()
    }

    @Test func aPowerCutAtAnyWriteOfAMoveLeavesThePointerInExactlyOneBlock() throws {
        var cut = 1, logged = 0
        while true {
            let w = World()
            let (t, dir2) = try w.moveTrees()
            _ = try w.a.perform(moveRequest(t.dir, entry(0), 16, dir2, entry(0)))
            w.kernel.xn!.device.failAfterWrites = w.kernel.xn!.device.writesIssued + cut
            let finished = (try? w.a.writeback([dir2])) != nil
            var disk = w.kernel.xn!.device
            _ = disk.powerLoss()
            // fsck before recovery sees the disk as the log will leave it.
            let before = XNImage.check(disk)
            #expect(before.violations == [], "cut at write \(cut)")
            if before.movePending > 0 { logged += 1 }
            let kernel = Kernel(host: SimulatedHost(frameCount: 64))
            try kernel.mountDisk(disk, format: false)
            var recovered = kernel.xn!.device
            #expect(XNImage.check(recovered).violations == [], "cut at write \(cut)")
            let holders = try [t.dir, dir2].filter { block in
                let bytes = try recovered.read([block])[0]
                return bytes[entry(0)..<entry(0) + 8].elementsEqual(Tree.entry(t.file, .data).prefix(8))
            }
            #expect(holders.count == 1, "cut at write \(cut): the file's pointer is in \(holders)")
            if finished { break }
            cut += 1
        }
        #expect(cut > 4, "the move takes several writes: images, record, blocks, erasure")
        #expect(logged > 0, "some cut falls where the log holds the move")
    }

    /// Under the root a directory, under it b, under b c. c moves up to the root, then b
    /// moves into c: two moves with no block in common. Written apart, the second could
    /// reach the disk without the first: c, still under b there, would hold b, and both
    /// would be lost in a loop no root reaches.
    @Test func aNodeMovedIntoOneJustMovedOutOfItReachesTheDiskWithIt() throws {
        var cut = 1
        while true {
            let w = World()
            let t = try w.trees()
            let b = try t.a.add(under: t.dir, type: t.a.type)
            let c = try t.a.add(under: b, type: t.a.type)
            for block in [c, b, t.dir, t.rootA] { try w.a.writeback([block]) }
            let reachable = XNImage.check(w.kernel.xn!.device).reachable
            try t.a.move(c, from: b, to: t.rootA)
            try t.a.move(b, from: t.dir, to: c)
            #expect(w.kernel.xn!.registryEntry(b)?.parent == c)
            w.kernel.xn!.device.failAfterWrites = w.kernel.xn!.device.writesIssued + cut
            var finished = true
            // The second move's blocks first: alone, they would close the loop on disk.
            for block in [c, t.dir, b, t.rootA] where (try? w.a.writeback([block])) == nil { finished = false }
            var disk = w.kernel.xn!.device
            _ = disk.powerLoss()
            let kernel = Kernel(host: SimulatedHost(frameCount: 64))
            try kernel.mountDisk(disk, format: false)
            let report = XNImage.check(kernel.xn!.device)
            #expect(report.violations == [], "cut at write \(cut)")
            // Every block is still reachable, in one place or the other.
            #expect(report.reachable == reachable, "cut at write \(cut): \(report.reachable) blocks reachable")
            if finished { break }
            cut += 1
        }
    }

    @Test func anotherEnvironmentGainsNothingByMoving() throws {
        let w = World()
        let (t, dir2) = try w.moveTrees()
        // b moves a's file into its own root: refused by a's UDF, nothing changes.
        let rootB = t.rootB
        try w.b.modify(rootB, .write, .inline([t.b.format.highWater(1)]), credential: Slot.own)
        let before = w.kernel.stateDigest()
        #expect(throws: KernelError.permissionDenied) { _ = try w.b.perform(moveRequest(t.dir, entry(0), 16, rootB, entry(0))) }
        #expect(throws: KernelError.permissionDenied) { _ = try w.b.perform(moveRequest(t.dir, entry(0), 16, dir2, entry(0))) }
        #expect(w.kernel.stateDigest() == before)
        w.expectConsistent()
    }
}
