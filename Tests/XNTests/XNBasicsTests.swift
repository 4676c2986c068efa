// XN doing its job: trees built by two library file systems survive unmount and remount,
// writeback keeps the crash-ordering rules, and recovery rebuilds the free map.

import BPF
import Testing
import XN
import XokABI
import XokSimulation

@Suite struct XNBasics {
    @Test func treesPersistAcrossACleanRemount() throws {
        let v = try Volume()
        let dir = try v.a.add(v.xn, under: v.rootA, type: v.a.type)
        let file = try v.a.add(v.xn, under: dir, type: .data)
        try v.xn.writeData(file, offset: 0, bytes: Array("hello".utf8), credential: v.a.credential, by: envA)
        try v.xn.writeback([file], by: envA)               // children first…
        try v.xn.writeback([dir], by: envA)
        try v.xn.writeback([v.rootA], by: envA)            // …then the parent
        try v.remount()
        #expect(!v.xn.recovered)
        #expect(try v.a.children(v.xn, of: v.rootA) == [Pointer(block: dir, type: v.a.type)])
        #expect(try v.xn.read(file, credential: v.a.credential).prefix(5) == ArraySlice("hello".utf8))
        let report = v.check
        #expect(report.violations == [])
        #expect(report.clean == false)                     // mounted again: in use
    }

    @Test func parentOfUnwrittenMetadataIsTaintedUntilTheChildIsDurable() throws {
        let v = try Volume()
        let dir = try v.a.add(v.xn, under: v.rootA, type: v.a.type)
        #expect(v.xn.isTainted(v.rootA))
        #expect(throws: XNError.tainted) { try v.xn.writeback([v.rootA], by: envA) }
        // Writing both at once is refused too: the child is not durable yet.
        #expect(throws: XNError.tainted) { try v.xn.writeback([v.rootA, dir], by: envA) }
        try v.xn.writeback([dir], by: envA)
        #expect(!v.xn.isTainted(v.rootA))
        try v.xn.writeback([v.rootA], by: envA)
    }

    @Test func freedBlockIsNotReusableUntilItsParentIsDurableWithoutIt() throws {
        let v = try Volume()
        let dir = try v.a.add(v.xn, under: v.rootA, type: v.a.type)
        try v.xn.writeback([dir], by: envA)
        try v.xn.writeback([v.rootA], by: envA)
        try v.a.remove(v.xn, dir, from: v.rootA)
        #expect(!v.xn.isFree(dir))
        let slot = TreeFormat.entriesStart + 5 * TreeFormat.entryBytes
        #expect(throws: XNError.notFree) {
            try v.xn.modify(v.rootA, [Modification(offset: slot, bytes: TreeClient<Disk>.entry(dir, .data))],
                            operation: .allocate(dir, .data), credential: v.a.credential, by: envA)
        }
        try v.xn.writeback([v.rootA], by: envA)
        #expect(v.xn.isFree(dir))
    }

    @Test func crashRecoveryRebuildsTheFreeMapFromTheRoots() throws {
        let v = try Volume()
        let dir = try v.a.add(v.xn, under: v.rootA, type: v.a.type)
        try v.xn.writeback([dir], by: envA)
        try v.xn.writeback([v.rootA], by: envA)
        // A second child whose parent never reaches the disk: after the crash it is free.
        let lost = try v.a.add(v.xn, under: v.rootA, type: v.a.type)
        try v.xn.writeback([lost], by: envA)
        var disk = v.xn.device
        disk.powerLoss()
        let xn = try XN.mount(disk)
        #expect(xn.recovered)
        #expect(!xn.isFree(dir))
        #expect(xn.isFree(lost))
        #expect(XN.check(try xn.unmount()).violations == [])
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
