// A malicious library OS tries every way in (DESIGN.md §8). Each test is named for the
// attack, expects the documented error, and leaves every invariant intact.

import Testing
import Xok
import XokABI
import XokSimulation

@Suite struct Attacks {
    @Test func forgedCapabilityBytesOnTheWireAreRefused() throws {
        let w = World()
        // A derive asking for rights bits that do not exist.
        var forged = KernelRequest.capabilityDerive(source: Slot.weak, appending: [], rights: .read).encoded
        forged[forged.count - 1] = 0xff
        #expect(throws: KernelError.badRequest) { try w.a.perform(raw: forged) }
        // An ACL entry claiming 200 name components.
        var acl = KernelRequest.frameAllocate(credential: Slot.frames, acl: w.ownACL(w.a)).encoded
        acl[12] = 200
        #expect(throws: KernelError.badRequest) { try w.a.perform(raw: acl) }
        // Random corruption of every kind of request never gets past decoding unnoticed
        // into an inconsistent kernel.
        var rng = SeededRandom(seed: 7)
        let requests: [KernelRequest] = [.frameAllocate(credential: Slot.frames, acl: w.ownACL(w.a)),
                                         .regionWrite(credential: Slot.own, RegionID(rawValue: 1), offset: 0, bytes: [1, 2, 3]),
                                         .environmentCreate(credential: Slot.environments, acl: w.ownACL(w.a), grants: [Slot.own], quota: Quota(frames: 2)),
                                         .ipcSend(credential: Slot.own, target: w.b.environment, message: [9])]
        for _ in 0..<5_000 {
            var bytes = requests[Int(rng.next() % UInt64(requests.count))].encoded
            for _ in 0..<(1 + rng.next() % 3) { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            if rng.next() % 4 == 0 { bytes.removeLast(Int(rng.next() % UInt64(bytes.count))) }
            _ = try? w.a.perform(raw: bytes)
        }
        w.expectConsistent()
    }

    @Test func credentialSlotOutOfRangeIsRefused() {
        let w = World()
        #expect(throws: KernelError.slotOutOfRange) { try w.a.allocateFrame(credential: CapabilitySlot(rawValue: .max), acl: w.ownACL(w.a)) }
        w.expectConsistent()
    }

    @Test func rightsAmplificationByDerivationIsRefused() throws {
        let w = World()
        // The weak read-only capability cannot become writable, nor grow its rights by
        // growing its name, nor climb the name hierarchy.
        #expect(throws: KernelError.permissionDenied) { try w.a.derive(Slot.weak, rights: [.read, .write]) }
        #expect(throws: KernelError.permissionDenied) { try w.a.derive(Slot.weak, appending: [1], rights: .all) }
        let longer = try w.a.derive(Slot.frames, appending: [7], rights: .write)
        #expect(throws: KernelError.permissionDenied) { try w.a.allocateFrame(credential: longer, acl: w.ownACL(w.a)) }
        // A derived capability passed to a child carries no more than its source.
        let child = try w.a.createEnvironment(credential: Slot.environments, acl: w.ownACL(w.a), grants: [Slot.weak])
        let childPort = w.port(child)
        #expect(throws: KernelError.permissionDenied) { try childPort.derive(CapabilitySlot(0), rights: .write) }
        w.expectConsistent()
    }

    @Test func mappingAFrameWithoutTheACLsRightIsRefused() throws {
        let w = World()
        let f = try w.frame(of: w.a)
        #expect(throws: KernelError.permissionDenied) { try w.b.map(f, writable: false, credential: Slot.own) }
        try w.a.setACL(acl(capability([101], .all), capability([102], .read)), of: f, credential: Slot.own)
        try w.b.map(f, writable: false, credential: Slot.own)
        #expect(throws: KernelError.permissionDenied) { try w.b.map(f, writable: true, credential: Slot.own) }
        // b may not change the ACL to let itself write.
        #expect(throws: KernelError.permissionDenied) { try w.b.setACL(acl(capability([102], .all)), of: f, credential: Slot.own) }
        w.expectConsistent()
    }

    @Test func writingAReadOnlyBindingFaults() throws {
        let w = World()
        let f = try w.frame(of: w.a)
        try w.a.setACL(acl(capability([101], .all), capability([102], .read)), of: f, credential: Slot.own)
        try w.a.map(f, writable: true, credential: Slot.own)
        try w.b.map(f, writable: false, credential: Slot.own)
        try w.kernel.host.store(w.a.environment, f, offset: 0, 42)
        #expect(try w.kernel.host.load(w.b.environment, f, offset: 0) == 42)
        #expect(throws: SimulatedHost.Fault.self) { try w.kernel.host.store(w.b.environment, f, offset: 0, 1) }
        #expect(try w.kernel.host.load(w.a.environment, f, offset: 0) == 42)
        w.expectConsistent()
    }

    @Test func touchingAFrameAfterForcedRevocationFaults() throws {
        let w = World()
        let f = try w.frameSharedWithB()
        try w.a.revoke(f, graceTicks: 10, credential: Slot.own)
        // Visible first: b is told, and still holds the frame until the deadline.
        #expect(try w.upcalls(w.b) == [.revocationRequested(f, deadline: 10)])
        w.kernel.host.advanceClock(by: 9)
        w.kernel.advance()
        #expect(try w.kernel.host.load(w.b.environment, f, offset: 0) == 0)
        // b ignores it; at the deadline the kernel takes the frame back.
        w.kernel.host.advanceClock(by: 1)
        w.kernel.advance()
        #expect(throws: SimulatedHost.Fault.self) { try w.kernel.host.load(w.b.environment, f, offset: 0) }
        #expect(try w.upcalls(w.b) == [.frameRevoked(f)])
        #expect(w.kernel.binding(of: f, in: w.b.environment) == nil)
        // And the frame can be mapped again afterwards, by those the ACL allows.
        try w.b.map(f, writable: false, credential: Slot.own)
        w.expectConsistent()
    }

    @Test func holderThatGivesTheFrameBackInTimeKeepsNoBindingAndGetsNoForcedNotice() throws {
        let w = World()
        let f = try w.frameSharedWithB()
        try w.a.revoke(f, graceTicks: 10, credential: Slot.own)
        try w.b.unmap(f)
        w.kernel.host.advanceClock(by: 20)
        w.kernel.advance()
        #expect(try w.upcalls(w.b) == [])
        try w.a.revoke(f, graceTicks: 10, credential: Slot.own)   // nothing to revoke: done at once
        w.expectConsistent()
    }

    @Test func regionAccessOutOfBoundsIsRefused() throws {
        let w = World()
        let r = try w.region(of: w.a, size: 100)
        #expect(throws: KernelError.outOfBounds) { try w.a.read(r, offset: 99, length: 2, credential: Slot.own) }
        #expect(throws: KernelError.outOfBounds) { try w.a.write([1, 2], to: r, offset: 99, credential: Slot.own) }
        #expect(throws: KernelError.outOfBounds) { try w.a.read(r, offset: Int(UInt32.max), length: 1, credential: Slot.own) }
        #expect(throws: KernelError.outOfBounds) { try w.a.read(r, offset: -1, length: 1, credential: Slot.own) }
        try w.a.write([1, 2], to: r, offset: 98, credential: Slot.own)
        #expect(try w.a.read(r, offset: 97, length: 3, credential: Slot.own) == [0, 1, 2])
        #expect(throws: KernelError.permissionDenied) { try w.b.read(r, offset: 0, length: 1, credential: Slot.own) }
        w.expectConsistent()
    }

    @Test func ipcFloodIsRefusedWithoutLosingAMessage() throws {
        let w = World()
        try w.b.setMessageACL(acl(capability([101], .write)))
        var sent = 0
        for i in 0..<1_000 {
            do {
                try w.a.send([UInt8(i & 0xff)], to: w.b.environment, credential: Slot.own)
                sent += 1
            } catch {
                #expect(error == .queueFull)
            }
        }
        #expect(sent == KernelLimits.messagesPerSender)
        let received = try w.upcalls(w.b)
        #expect(received == (0..<sent).map { .message(from: w.a.environment, [UInt8($0)]) })
        // Drained, the queue takes messages again.
        try w.a.send([7], to: w.b.environment, credential: Slot.own)
        // And only senders the ACL names get in at all.
        #expect(throws: KernelError.permissionDenied) { try w.b.send([1], to: w.a.environment, credential: Slot.own) }
        w.expectConsistent()
    }

    @Test func predicateThatReadsOutsideWhatItMayReadIsRefused() throws {
        let w = World()
        #expect(throws: KernelError.programRejected) {
            try w.a.sleep(until: predicate("ldxdw %r0, [%r1+4092]\nexit"), credential: Slot.own)
        }
        #expect(throws: KernelError.programRejected) {
            try w.a.sleep(until: predicate("mov %r2, %r1\nadd %r2, 5000\nldxb %r0, [%r2]\nexit"), credential: Slot.own)
        }
        // Another's region: the credential must pass its ACL for read.
        let secret = try w.region(of: w.b)
        #expect(throws: KernelError.permissionDenied) {
            try w.a.sleep(until: predicate("ldxb %r0, [%r1+2048]\nexit"), region: secret, credential: Slot.own)
        }
        #expect(!w.kernel.isAsleep(w.a.environment))
        w.expectConsistent()
    }

    @Test func exhaustingEveryPerEnvironmentLimitIsRefused() throws {
        let w = World()
        func exhaust(_ expected: KernelError, _ body: () throws(KernelError) -> Void) {
            var count = 0
            while true {
                do { try body(); count += 1 } catch {
                    #expect(error == expected)
                    break
                }
                if count > 10_000 { Issue.record("no limit"); break }
            }
        }
        exhaust(.limitExceeded) { () throws(KernelError) in _ = try w.a.allocateFrame(credential: Slot.frames, acl: w.ownACL(w.a)) }
        exhaust(.limitExceeded) { () throws(KernelError) in _ = try w.a.createRegion(size: 16, acl: w.ownACL(w.a), credential: Slot.regions) }
        exhaust(.limitExceeded) { () throws(KernelError) in _ = try w.a.createEnvironment(credential: Slot.environments, acl: w.ownACL(w.a)) }
        exhaust(.limitExceeded) { () throws(KernelError) in _ = try w.a.derive(Slot.weak, rights: .read) }
        var slice: UInt32 = 0
        exhaust(.limitExceeded) { () throws(KernelError) in try w.a.allocate(SliceIndex(rawValue: slice), credential: Slot.slices); slice += 1 }
        #expect(w.kernel.exposedState.framesFree == 300 - Int(w.childQuota.frames))
        // b is unaffected: it still gets what it asks for.
        _ = try w.frame(of: w.b)
        _ = try w.region(of: w.b)
        w.expectConsistent()
    }

    @Test func environmentDyingHoldingEverythingReturnsAllOfIt() throws {
        let w = World()
        let freeBefore = w.kernel.exposedState.framesFree
        // a owns frames (one mapped by b), holds a binding of b's frame, owns regions and
        // slices, has messages waiting, and sleeps on a predicate.
        let own = try w.frame(of: w.a)
        try w.a.setACL(acl(capability([101], .all), capability([102], .read)), of: own, credential: Slot.own)
        try w.a.map(own, writable: true, credential: Slot.own)
        try w.b.map(own, writable: false, credential: Slot.own)
        for _ in 0..<5 { _ = try w.frame(of: w.a) }
        let theirs = try w.frame(of: w.b)
        try w.b.setACL(acl(capability([102], .all), capability([101], .read)), of: theirs, credential: Slot.own)
        try w.a.map(theirs, writable: false, credential: Slot.own)
        let region = try w.region(of: w.a)
        try w.a.allocate(SliceIndex(rawValue: 5), credential: Slot.slices)
        try w.a.setMessageACL(acl(capability([102], .write)))
        try w.b.send([1], to: w.a.environment, credential: Slot.own)
        try w.a.sleep(until: predicate("mov %r0, 0\nexit"), credential: Slot.own)

        w.kernel.kill(w.a.environment)

        #expect(!w.kernel.environmentIDs.contains(w.a.environment))
        #expect(w.kernel.exposedState.framesFree == freeBefore - 1)          // only b's frame is left
        #expect(w.kernel.exposedState.sliceOwners[5] == nil)
        #expect(w.kernel.binding(of: own, in: w.b.environment) == nil)
        #expect(throws: SimulatedHost.Fault.self) { try w.kernel.host.load(w.b.environment, own, offset: 0) }
        #expect(try w.upcalls(w.b) == [.frameRevoked(own)])
        #expect(w.kernel.host.mmu.values.allSatisfy { $0[w.a.environment] == nil })
        #expect(throws: KernelError.noSuchRegion) { try w.b.read(region, offset: 0, length: 1, credential: Slot.own) }
        #expect(throws: KernelError.noSuchEnvironment) { try w.a.nextUpcall() }
        // Its resources are really free: b can take the slice and frames again.
        try w.b.allocate(SliceIndex(rawValue: 5), credential: Slot.slices)
        w.expectConsistent()
    }
}
