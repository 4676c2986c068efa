// Allocating and freeing many blocks in one change (`allocateMany`, `freeMany`): what
// happens, what it costs the quota, and that another environment gains nothing by it.

@testable import Xok
import Testing
import TreeFS
import XokABI
import XokSimulation

@Suite struct XNBatches {
    /// Frames of a's, mapped writable, each holding `fill` and its index.
    func filledFrames(_ w: World, _ count: Int, fill: UInt8) throws -> [FrameNumber] {
        try (0..<count).map { i in try bytesFrame(w, w.a, [fill, UInt8(i)] + [UInt8](repeating: fill, count: 4094)) }
    }

    @Test func dataBlocksKeepTheirBytesAndTheQuotaPaysForEachBlock() throws {
        let w = World()
        let t = try w.trees()
        let blocks: [BlockNumber] = [400, 401, 402, 500]
        let frames = try filledFrames(w, blocks.count, fill: 0x5a)
        let used = w.kernel.quota(of: w.a.environment)!.used.blocks
        _ = try w.a.perform(try batchAllocation(w, t, blocks: blocks, frames: frames))
        #expect(w.kernel.quota(of: w.a.environment)!.used.blocks == used + UInt64(blocks.count))
        #expect(try t.a.children(of: t.dir).map(\.block) == [t.file] + blocks)
        // The frames stay bound writable, as a writable map of each block would leave them.
        try w.a.store([0x5a], into: frames[3], offset: 1)
        for (i, block) in blocks.enumerated() {
            let frame = try w.a.map(block, writable: false, credential: Slot.own)
            #expect(try w.a.load(frame, offset: 0, count: 3) == [0x5a, i == 3 ? 0x5a : UInt8(i), 0x5a])
        }
        // On disk too, after the blocks and then their parent are written back.
        try w.a.writeback(blocks)
        try w.a.writeback([t.dir])
        for block in blocks { try w.a.evict(block, credential: Slot.own) }
        _ = try w.a.readIn(401, frame: try w.frame(of: w.a), credential: Slot.own)
        let frame = try w.a.map(BlockNumber(401), writable: false, credential: Slot.own)
        #expect(try w.a.load(frame, offset: 0, count: 3) == [0x5a, 1, 0x5a])
        w.expectConsistent()
    }

    @Test func metadataBlocksStartZeroedWhateverTheirFramesHeld() throws {
        let w = World()
        let t = try w.trees()
        let frames = try filledFrames(w, 2, fill: 0xee)
        var changes = [(offset: entry(1), bytes: Tree.entry(400, t.a.type)), (offset: entry(2), bytes: Tree.entry(401, t.a.type))]
        changes.append(t.a.format.highWater(3))
        try w.a.modify(t.dir, .allocateMany([400, 401], t.a.type, frames: frames), .inline(changes), credential: Slot.own)
        for block: BlockNumber in [400, 401] {
            #expect(try t.a.contents(block) == [UInt8](repeating: 0, count: 4096))
        }
        // Their frames are XN's to write: the caller's bindings are gone.
        #expect(throws: KernelError.notMapped) { try w.a.store([1], into: frames[0], offset: 0) }
        w.expectConsistent()
    }

    @Test func freeingManyGivesTheQuotaBackAndTheBlocksOnceTheParentIsOnDisk() throws {
        let w = World()
        let t = try w.trees()
        let blocks: [BlockNumber] = [400, 401, 402]
        _ = try w.a.perform(try batchAllocation(w, t, blocks: blocks))
        try w.a.writeback(blocks)
        try w.a.writeback([t.dir])
        let used = w.kernel.quota(of: w.a.environment)!.used.blocks
        let cleared = (1...3).map { (offset: entry($0), bytes: [UInt8](repeating: 0, count: 16)) } + [t.a.format.highWater(1)]
        try w.a.modify(t.dir, .freeMany([402, 400, 401]), .inline(cleared), credential: Slot.own)
        #expect(w.kernel.quota(of: w.a.environment)!.used.blocks == used - 3)
        #expect(try t.a.children(of: t.dir).map(\.block) == [t.file])
        // Not reusable until the parent that dropped them is on disk.
        #expect(try w.a.firstFreeBlock(from: 400) > 402)
        try w.a.writeback([t.dir])
        #expect(try w.a.firstFreeBlock(from: 400) == 400)
        w.expectConsistent()
    }

    @Test func anotherEnvironmentCannotBatchIntoWhatItCouldNotChangeOneByOne() throws {
        let w = World()
        let t = try w.trees()
        let frames = try [w.frame(of: w.b), w.frame(of: w.b)]
        let before = w.kernel.stateDigest()
        // b allocates under a's directory, and frees a's file together with nothing of its own.
        #expect(throws: KernelError.permissionDenied) {
            try w.b.modify(t.dir, .allocateMany([400, 401], .data, frames: frames),
                           .inline([(entry(1), Tree.entry(400, .data)), (entry(2), Tree.entry(401, .data)), t.a.format.highWater(3)]),
                           credential: Slot.own)
        }
        #expect(throws: KernelError.permissionDenied) {
            try w.b.modify(t.dir, .freeMany([t.file]), .inline([(entry(0), [UInt8](repeating: 0, count: 16))]), credential: Slot.own)
        }
        #expect(w.kernel.stateDigest() == before)
        w.expectConsistent()
    }

    @Test func mapManyReadsWhatIsNotCachedAndMapsEverythingReadOnly() throws {
        let w = World()
        let t = try w.trees()
        let blocks: [BlockNumber] = [400, 401, 402]
        let filled = try filledFrames(w, blocks.count, fill: 0x33)
        _ = try w.a.perform(try batchAllocation(w, t, blocks: blocks, frames: filled))
        try w.a.writeback(blocks)
        try w.a.writeback([t.dir])
        for block in [400, 402] as [BlockNumber] { try w.a.evict(block, credential: Slot.own) }
        // 401 is still cached (in its frame, mapped writable here); 400 and 402 are read in.
        let given = try [w.frame(of: w.a), w.frame(of: w.a), w.frame(of: w.a)]
        let holders = try w.a.map(blocks, frames: given, credential: Slot.own)
        #expect(holders[0] == given[0] && holders[2] == given[2])
        #expect(holders[1] == filled[1])
        for (i, frame) in holders.enumerated() {
            #expect(try w.a.load(frame, offset: 0, count: 2) == [0x33, UInt8(i)])
        }
        // Read-only where it was not mapped; a writable mapping stays writable.
        #expect(throws: KernelError.notMapped) { try w.a.store([1], into: holders[0], offset: 0) }
        try w.a.store([0x33], into: holders[1], offset: 0)
        // The frame it did not need is still the caller's to use.
        try w.a.map(given[1], writable: true, credential: Slot.own)
        try w.a.store([9], into: given[1], offset: 0)
        w.expectConsistent()
    }

    @Test func mapManyOfAnotherEnvironmentsBlocksChangesNothing() throws {
        let w = World()
        let t = try w.trees()
        try w.a.evict(t.file, credential: Slot.own)
        let frames = try [w.frame(of: w.b), w.frame(of: w.b)]
        let before = w.kernel.stateDigest()
        // b's own root first, then a's file: the whole call is refused, b's root included.
        try w.b.evict(t.rootB, credential: Slot.own)
        let afterEvict = w.kernel.stateDigest()
        #expect(throws: KernelError.permissionDenied) {
            _ = try w.b.map([t.rootB, t.file], frames: frames, credential: Slot.own)
        }
        #expect(w.kernel.stateDigest() == afterEvict)
        #expect(before != afterEvict)
        w.expectConsistent()
    }

    @Test func framesAllocatedTogetherAreZeroedBoundWritableAndChargedEach() throws {
        let w = World()
        let used = w.kernel.quota(of: w.a.environment)!.used.frames
        // A frame freed dirty comes back zeroed in the next batch.
        let old = try bytesFrame(w, w.a, [UInt8](repeating: 0xab, count: 4096))
        try w.a.unmap(old)
        try w.a.free(old, credential: Slot.own)
        let frames = try w.a.allocateFrames(KernelLimits.xnBatchMax, credential: Slot.frames, acl: w.ownACL(w.a))
        #expect(Set(frames).count == KernelLimits.xnBatchMax)
        #expect(w.kernel.quota(of: w.a.environment)!.used.frames == used + UInt32(KernelLimits.xnBatchMax))
        for frame in frames {
            #expect(try w.a.load(frame, offset: 0, count: 4096) == [UInt8](repeating: 0, count: 4096))
            try w.a.store([1], into: frame, offset: 4095)
        }
        w.expectConsistent()
    }
}

@Suite struct FrameBatches {
    @Test func unmappingManyUnbindsEachAndChargesNothing() throws {
        let w = World()
        let frames = try w.a.allocateFrames(5, credential: Slot.frames, acl: w.ownACL(w.a))
        try w.a.store([7], into: frames[0], offset: 0)
        let quota = w.kernel.quota(of: w.a.environment)!.used
        try w.a.unmap(Array(frames[0..<4]))
        for f in frames[0..<4] { #expect(throws: KernelError.notMapped) { _ = try w.a.load(f, offset: 0, count: 1) } }
        #expect(try w.a.load(frames[4], offset: 0, count: 1) == [0])
        // Still the caller's: mapped again, the bytes are there.
        try w.a.map(frames[0], writable: false, credential: Slot.own)
        #expect(try w.a.load(frames[0], offset: 0, count: 1) == [7])
        #expect(w.kernel.quota(of: w.a.environment)!.used == quota)
        w.expectConsistent()
    }
}
