// XN doing its job through the kernel: trees built by two library file systems survive a
// shutdown and a new boot, writeback keeps the crash-ordering rules, recovery rebuilds
// the free map, and the registry in the exposed state follows the cache.

import BPF
import Testing
import TreeFS
import TreeFSUDFs
import XN
import Xok
import XokABI
import XokSimulation

@Suite struct XNBasics {
    @Test func treesPersistAcrossACleanRemount() throws {
        let v = try Volume()
        let dir = try v.a.add(under: v.rootA, type: v.a.type)
        let file = try v.a.add(under: dir, type: .data)
        try v.a.write(Array("hello".utf8), at: 0, of: file)
        try v.a.port.writeback([file])               // children first…
        try v.a.port.writeback([dir])
        try v.a.port.writeback([v.rootA])            // …then the parent
        try v.remount()
        #expect(!v.xn.recovered)
        #expect(try v.a.children(of: v.rootA).map(\.block) == [dir])
        #expect(try v.a.contents(file, via: [v.rootA, dir]).prefix(5) == ArraySlice("hello".utf8))
        let report = v.check
        #expect(report.violations == [])
        #expect(report.clean == false)                     // mounted again: in use
    }

    @Test func parentOfUnwrittenMetadataIsTaintedUntilTheChildIsDurable() throws {
        let v = try Volume()
        let dir = try v.a.add(under: v.rootA, type: v.a.type)
        let file = try v.a.add(under: dir, type: .data)
        #expect(v.kernel.exposedState.registry(block: v.rootA)?.tainted == true)
        #expect(v.kernel.exposedState.registry(block: dir)?.tainted == true)
        // A writeback of the parent writes what taints it first, deepest first (a level
        // and a barrier at a time), whoever allocated it: the disk never holds a pointer to
        // a block it does not hold, and a sync is never held back by a co-writer.
        try v.b.port.writeback([v.rootA])
        for block in [v.rootA, dir, file] {
            #expect(v.kernel.exposedState.registry(block: block)?.tainted == false)
            #expect(v.kernel.exposedState.registry(block: block)?.dirty == false)
        }
        #expect(v.check.violations == [])
        #expect(v.kernel.checkInvariants() == [])
    }

    @Test func freedBlockIsNotReusableUntilItsParentIsDurableWithoutIt() throws {
        let v = try Volume()
        let dir = try v.a.add(under: v.rootA, type: v.a.type)
        try v.a.port.writeback([dir])
        try v.a.port.writeback([v.rootA])
        try v.a.remove(dir, from: v.rootA)
        #expect(!v.xn.isFree(dir))
        let frame = try v.a.newFrame()
        #expect(throws: KernelError.notFree) {
            try v.a.port.modify(v.rootA, .allocate(dir, .data, frame: frame), .inline([(slot(5), Client.entry(dir, .data))]), credential: v.a.slots.own)
        }
        try v.a.port.writeback([v.rootA])
        #expect(v.xn.isFree(dir))
    }

    @Test func crashRecoveryRebuildsTheFreeMapFromTheRoots() throws {
        let v = try Volume()
        let dir = try v.a.add(under: v.rootA, type: v.a.type)
        try v.a.port.writeback([dir])
        try v.a.port.writeback([v.rootA])
        // A second child whose parent never reaches the disk: after the crash it is free.
        let lost = try v.a.add(under: v.rootA, type: v.a.type)
        try v.a.port.writeback([lost])
        var disk = v.xn.device
        disk.powerLoss()
        try v.reboot(disk)
        #expect(v.xn.recovered)
        #expect(!v.xn.isFree(dir))
        #expect(v.xn.isFree(lost))
        #expect(XNImage.check(try #require(try v.kernel.shutdown())).violations == [])
    }

    @Test func theRegistryFollowsTheCacheAndShowsNamesNotContents() throws {
        let v = try Volume()
        let file = try v.a.add(under: v.rootA, type: .data)
        let secret = Array("a secret only a may read".utf8)
        try v.a.write(secret, at: 100, of: file)
        let view = v.kernel.exposedState
        let entry = try #require(view.registry(block: file))
        #expect(entry.parent == v.rootA && entry.type == .data && entry.dirty && entry.owner == v.a.port.environment && entry.state == .valid)
        #expect(view.registry(frame: entry.frame)?.block == file)
        #expect(view.cachedBlocks == v.xn.cachedCount && view.dirtyBlocks == v.xn.dirtyCount)
        // Nowhere in the exposed pages do the block's bytes appear.
        #expect(!view.raw.indices.dropLast(secret.count).contains { view.raw[$0..<$0 + secret.count].elementsEqual(secret) })
        // Written, evicted: the entry and its index slot go; the frame goes back to a.
        try v.a.port.writeback([file])
        try v.a.port.evict(file, credential: v.a.slots.own)
        #expect(v.kernel.exposedState.registry(block: file) == nil)
        #expect(v.kernel.exposedState.registry(frame: entry.frame) == nil)
        #expect(v.kernel.frameOwner(entry.frame) == v.a.port.environment)
        #expect(v.kernel.checkInvariants() == [])
    }

    @Test func shutdownWritesEverythingAndGivesTheCacheFramesBack() throws {
        let v = try Volume()
        let file = try v.a.add(under: v.rootA, type: .data)
        try v.a.write([9], at: 0, of: file)
        let frame = try #require(v.xn.registryEntry(file)?.frame)
        let disk = try #require(try v.kernel.shutdown())
        #expect(v.kernel.xn == nil)
        #expect(v.kernel.frameOwner(frame) == v.a.port.environment, "back to the environment that gave it")
        #expect(v.kernel.exposedState.registry(block: file) == nil && v.kernel.exposedState.cachedBlocks == 0)
        #expect(throws: KernelError.noDisk) { try v.a.port.writeback([file]) }
        #expect(v.kernel.checkInvariants() == [])
        #expect(XNImage.check(disk).violations == [] && XNImage.check(disk).clean)
        // A disk can be mounted again; a second one cannot be mounted over it.
        try v.kernel.mountDisk(disk, format: false)
        #expect(throws: XNError.self) { try v.kernel.mountDisk(disk, format: false) }
        #expect(v.kernel.checkInvariants() == [])
    }

    @Test func manyCachedBlocksKeepTheIndexConsistent() throws {
        // Hundreds of blocks in and out of the cache: every lookup through the exposed
        // index finds the right frame, and removals leave no stale slot behind.
        let v = try Volume(blocks: 4096, frames: 2048)
        let dir = try v.a.add(under: v.rootA, type: v.a.type)
        var files: [BlockNumber] = []
        for i in 0..<200 { files.append(try v.a.add(under: dir, type: .data, hint: BlockNumber(i * 7))) }
        try v.a.port.writeback(files)
        for (i, file) in files.enumerated() where i % 3 == 0 { try v.a.port.evict(file, credential: v.a.slots.own) }
        let view = v.kernel.exposedState
        for (i, file) in files.enumerated() {
            #expect((view.registry(block: file) == nil) == (i % 3 == 0))
            if let entry = view.registry(block: file) { #expect(v.xn.registryEntry(file)?.frame == entry.frame) }
        }
        #expect(v.kernel.checkInvariants() == [])
    }
}

@Suite struct TreeFormatUDFs {
    @Test func ownsReadsOfTheBlockAreProvedInBoundsOnlyItsOutputStoresAreChecked() throws {
        // Five entries a turn, stepping by 80 from 16 while below 4096: the verifier's
        // congruence knows the last turn starts at 4016, so every load is proved; the
        // stores through the output cursor depend on how many pointers were found.
        let verified = try Verifier.verify(bytes: treeFormat.owns, kind: .udfOwns)
        #expect(verified.guardedAccessCount == 10)
    }
}
