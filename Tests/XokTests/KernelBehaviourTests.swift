// What the kernel does when calls succeed: capability dominance, the wire format, the
// exposed state, slices with their notices and directed yield, and wakeup predicates.

import Testing
import Xok
import XokABI
import XokSimulation

@Suite struct Capabilities {
    static let dominance: [([UInt64], Rights, [UInt64], Rights, Bool)] = [
        ([], .all, [1, 2], .read, true),              // the root dominates everything
        ([1], .read, [1, 2], .read, true),            // a prefix with the same rights
        ([1], [.read, .write], [1], .read, true),
        ([1], .read, [1], [.read, .write], false),    // fewer rights
        ([1, 2], .all, [1], .read, false),            // longer name: not a prefix
        ([1, 3], .all, [1, 2, 3], .read, false),      // diverging names
        ([2], .all, [1], .read, false),
    ]

    @Test(arguments: dominance.indices)
    func dominanceIsNamePrefixAndRightsInclusion(_ i: Int) {
        let (an, ar, bn, br, expected) = Self.dominance[i]
        #expect(capability(an, ar).dominates(capability(bn, br)) == expected)
    }

    @Test func aclPassesACredentialThatDominatesAnEntryGrantingTheRight() {
        let list = acl(capability([5, 1], .read), capability([5, 2], [.read, .write]))
        #expect(list.permits(capability([5], .all), .write))
        #expect(list.permits(capability([5, 2], [.read, .write]), .write))
        #expect(!list.permits(capability([5, 1], .all), .write))   // the entry it dominates grants only read
        #expect(!list.permits(capability([6], .all), .read))
        #expect(throws: KernelError.invalidArgument) { try AccessControlList(Array(repeating: .root, count: 9)) }
        #expect(throws: KernelError.invalidArgument) { try Capability(name: Array(repeating: 1, count: 9), rights: .read) }
    }
}

@Suite struct WireFormat {
    static let requests: [KernelRequest] = [
        .capabilityDerive(source: CapabilitySlot(3), appending: [1, 2], rights: [.read, .grant]),
        .capabilityDrop(CapabilitySlot(9)),
        .environmentCreate(credential: CapabilitySlot(1), acl: acl(capability([1, 2], .all), .root), grants: [CapabilitySlot(4), CapabilitySlot(5)],
                           quota: Quota(environments: 1, frames: 2, regions: 3, slices: 4, messages: 5, blocks: 1 << 40, catalogueEntries: 7)),
        .environmentDestroy(credential: CapabilitySlot(0), EnvironmentID(rawValue: 7)),
        .environmentSetMessageACL(acl()),
        .frameAllocate(credential: CapabilitySlot(0), acl: acl(.root)),
        .frameFree(credential: CapabilitySlot(0), FrameNumber(rawValue: 12)),
        .frameSetACL(credential: CapabilitySlot(0), FrameNumber(rawValue: 12), acl(capability([9], .read))),
        .frameMap(credential: CapabilitySlot(2), FrameNumber(rawValue: 1), writable: true),
        .frameUnmap(FrameNumber(rawValue: 1)),
        .frameRevoke(credential: CapabilitySlot(2), FrameNumber(rawValue: 1), graceTicks: 1 << 40),
        .regionCreate(credential: CapabilitySlot(1), acl: acl(.root), size: 4096),
        .regionRead(credential: CapabilitySlot(1), RegionID(rawValue: 3), offset: 5, length: 6),
        .regionWrite(credential: CapabilitySlot(1), RegionID(rawValue: 3), offset: 5, bytes: [1, 2, 3]),
        .regionDestroy(credential: CapabilitySlot(1), RegionID(rawValue: 3)),
        .ipcSend(credential: CapabilitySlot(1), target: EnvironmentID(rawValue: 2), message: [0xde, 0xad]),
        .upcallNext,
        .predicateInstall(credential: CapabilitySlot(1), program: [0x95, 0, 0, 0, 0, 0, 0, 0], region: RegionID(rawValue: 4)),
        .predicateInstall(credential: CapabilitySlot(1), program: [], region: nil),
        .predicateRemove,
        .sliceAllocate(credential: CapabilitySlot(3), SliceIndex(rawValue: 2)),
        .sliceFree(SliceIndex(rawValue: 2)),
        .yield(to: EnvironmentID(rawValue: 3)),
        .yield(to: nil),
        .xnInstallType(credential: CapabilitySlot(6), name: Array("tree".utf8), owns: [FrameSpan(frame: FrameNumber(rawValue: 1), length: 4096), FrameSpan(frame: FrameNumber(rawValue: 4), length: 400)],
                       acl: [FrameSpan(frame: FrameNumber(rawValue: 2), length: 8)], size: [FrameSpan(frame: FrameNumber(rawValue: 3), length: 16)],
                       shareable: true),
        .xnLookupType(name: Array("tree".utf8)),
        .xnCreateRoot(credential: CapabilitySlot(7), name: Array("home".utf8), type: TypeID(rawValue: 2), protection: CapabilitySlot(5),
                      frame: FrameNumber(rawValue: 9)),
        .xnLookupRoot(name: Array("home".utf8)),
        .xnReadIn(credential: CapabilitySlot(5), 1 << 33, frame: FrameNumber(rawValue: 4)),
        .xnRead(credential: CapabilitySlot(5), 77, into: FrameNumber(rawValue: 4)),
        .xnMap(credential: CapabilitySlot(5), 77, writable: true),
        .xnModify(credential: CapabilitySlot(5), 77, .write, .inline([(16, [1, 2]), (4000, [3])])),
        .xnModify(credential: CapabilitySlot(5), 77, .allocate(78, TypeID(rawValue: 1), frame: FrameNumber(rawValue: 5)),
                  XNChanges(ranges: [XNChanges.Range(offset: 0, length: 4096)], bytes: [], source: FrameNumber(rawValue: 6))),
        .xnModify(credential: CapabilitySlot(5), 77, .free(78), .none),
        .xnModify(credential: CapabilitySlot(5), 77, .swap, .inline([(32, [9])])),
        .xnModify(credential: CapabilitySlot(5), 77, .allocateMany([78, 1 << 50], .data, frames: [FrameNumber(rawValue: 5), FrameNumber(rawValue: 6)]),
                  .inline([(64, [1])])),
        .xnModify(credential: CapabilitySlot(5), 77, .freeMany([78, 79, 80]), .none),
        .xnModify(credential: CapabilitySlot(5), 77, .link(78), .none),
        .xnWriteData(credential: CapabilitySlot(5), 78, .inline([(0, Array("data".utf8))])),
        .xnWriteback([77, 78, 1 << 40]),
        .xnEvict(credential: CapabilitySlot(5), 78),
        .xnFindFree(from: 300),
        .xnMapMany(credential: CapabilitySlot(5), blocks: [77, 1 << 40], frames: [FrameNumber(rawValue: 4), FrameNumber(rawValue: 9)]),
        .frameAllocateMany(credential: CapabilitySlot(0), acl: acl(.root), count: 3),
        .xnMove(credential: CapabilitySlot(5), source: 77, range: XNChanges.Range(offset: 64, length: 256), destination: 1 << 40, at: 320,
                edits: .inline([(334, [1, 2])])),
        .frameUnmapMany([FrameNumber(rawValue: 4), FrameNumber(rawValue: .max)]),
        .frameLoad(FrameNumber(rawValue: 4), offset: 16, count: 8),
        .frameStore(FrameNumber(rawValue: 4), offset: 4090, bytes: [1, 2, 3]),
    ]

    @Test func theListHasEveryCall() {
        #expect(Set(Self.requests.map(\.call)) == Set(KernelCall.allCases))
    }

    @Test(arguments: requests)
    func everyRequestRoundTrips(_ request: KernelRequest) throws {
        let bytes = request.encoded
        #expect(try KernelRequest(decoding: bytes) == request)
        // Every shorter prefix, and any trailing byte, is refused.
        for n in 0..<bytes.count { #expect(throws: KernelError.badRequest) { try KernelRequest(decoding: Array(bytes.prefix(n))) } }
        #expect(throws: KernelError.badRequest) { try KernelRequest(decoding: bytes + [0]) }
        var otherVersion = bytes
        otherVersion[0] = UInt8(kernelCallVersion + 1)
        #expect(throws: KernelError.badRequest) { try KernelRequest(decoding: otherVersion) }
    }

    static let replies: [KernelReply] = [.done, .slot(CapabilitySlot(4)), .environment(EnvironmentID(rawValue: 9)), .frame(FrameNumber(rawValue: 1)),
                                      .region(RegionID(rawValue: 2)), .bytes([1, 2, 3]), .upcall(nil), .upcall(.sliceStart(SliceIndex(rawValue: 1))),
                                      .upcall(.sliceEnd(SliceIndex(rawValue: 1))), .upcall(.revocationRequested(FrameNumber(rawValue: 3), deadline: 99)),
                                      .upcall(.frameRevoked(FrameNumber(rawValue: 3))), .upcall(.wakeup),
                                      .upcall(.message(from: EnvironmentID(rawValue: 5), [7, 8])), .type(TypeID(rawValue: 3)), .block(1 << 35),
                                      .root(XNRoot(block: 700, type: TypeID(rawValue: 2), capability: capability([5, 6], [.read, .write]))),
                                      .frames([FrameNumber(rawValue: 4), FrameNumber(rawValue: 9)])]

    @Test func everyReplyRoundTrips() throws {
        for reply in Self.replies { #expect(try KernelReply(decoding: KernelReply.encode(.success(reply))) == reply) }
        for error in KernelError.allCases {
            #expect(throws: error) { try KernelReply(decoding: KernelReply.encode(.failure(error))) }
        }
        #expect(throws: KernelError.badRequest) { try KernelRequest(decoding: [1, 0, 99, 0, 0, 0, 0, 0]) }
    }
}

@Suite struct Sizes {
    @Test func sizesTheModulesShareAgree() {
        #expect(SharedSizes.violations == [])
    }
}

@Suite struct ExposedStateView {
    @Test func exposedStateTracksTheKernelAndItsGenerationMoves() throws {
        let w = World(frames: 64)
        let before = w.a.exposedState()
        #expect(before.u32(at: 0) == ExposedState.magic && before.u32(at: 4) == ExposedState.version)
        #expect(before.generation % 2 == 0)
        #expect(before.framesTotal == 64 && before.framesFree == 64)
        #expect(before.environments.map(\.id) == w.kernel.environmentIDs)
        let f = try w.frame(of: w.a)
        try w.a.map(f, writable: true, credential: Slot.own)
        try w.a.allocate(SliceIndex(rawValue: 7), credential: Slot.slices)
        let after = w.b.exposedState()
        #expect(after.generation > before.generation && after.generation % 2 == 0)
        #expect(after.framesFree == 63)
        #expect(after.sliceOwners[7] == w.a.environment)
        #expect(after.environments.first { $0.id == w.a.environment }?.framesBound == 1)
    }
}

extension ExposedStateView {
    /// The frame-change count tells a port in another process when pages it keeps may be
    /// stale. A store into a frame only its caller holds cannot make anyone else's copy
    /// stale, so it leaves the count; once another environment holds the frame too, a
    /// store moves it. A refused store moves nothing.
    @Test func aStoreMovesTheFrameChangeCountOnlyWhenAnotherMayHoldTheFrame() throws {
        let w = World(frames: 64)
        let f = try w.frame(of: w.a)
        try w.a.map(f, writable: true, credential: Slot.own)
        let alone = w.a.exposedState().frameChanges
        guard case .done = try w.a.perform(.frameStore(f, offset: 4090, bytes: [1, 2, 3, 4, 5, 6])) else { throw KernelError.badRequest }
        #expect(w.a.exposedState().frameChanges == alone)
        #expect(try w.a.load(f, offset: 4090, count: 6) == [1, 2, 3, 4, 5, 6])
        // One past the page: refused, nothing changed, the count stays.
        #expect(throws: KernelError.notMapped) { try w.a.perform(.frameStore(f, offset: 4091, bytes: [1, 2, 3, 4, 5, 6])) }
        #expect(w.a.exposedState().frameChanges == alone)

        try w.a.setACL(acl(capability([101], .all), capability([102], .read)), of: f, credential: Slot.own)
        try w.b.map(f, writable: false, credential: Slot.own)
        let shared = w.a.exposedState().frameChanges
        #expect(shared != alone, "the acl changed")
        guard case .done = try w.a.perform(.frameStore(f, offset: 0, bytes: [9])) else { throw KernelError.badRequest }
        #expect(w.a.exposedState().frameChanges != shared)
        #expect(try w.b.load(f, offset: 0, count: 1) == [9])

        // A store into a frame the caller does not hold at all is refused and moves nothing.
        let other = try w.frame(of: w.b)
        let before = w.a.exposedState().frameChanges
        #expect(throws: KernelError.notMapped) { try w.a.perform(.frameStore(other, offset: 0, bytes: [1])) }
        #expect(throws: KernelError.notMapped) { try w.a.perform(.frameStore(FrameNumber(rawValue: .max), offset: 0, bytes: [1])) }
        #expect(w.a.exposedState().frameChanges == before)
    }

    /// A call whose effect on frames stays with its caller (binding into it, unbinding its
    /// own, freeing or allocating a frame only it holds) leaves the count: nobody else can
    /// hold a copy it makes stale. One that also takes someone else's binding moves it, as
    /// does a revocation forced by the clock, with no call at all.
    @Test func callsThatChangeOnlyTheCallersFramesLeaveTheFrameChangeCount() throws {
        let w = World(frames: 64)
        func count() -> UInt64 { w.a.exposedState().frameChanges }
        let f = try w.frame(of: w.a)
        try w.a.setACL(acl(capability([101], .all), capability([102], .read)), of: f, credential: Slot.own)
        let start = count()
        try w.a.map(f, writable: true, credential: Slot.own)
        try w.a.unmap(f)
        try w.a.map(f, writable: false, credential: Slot.own)
        try w.b.map(f, writable: false, credential: Slot.own)
        let spare = try w.a.allocateFrames(3, credential: Slot.frames, acl: w.ownACL(w.a))
        try w.a.unmap([spare[1], spare[2]])
        try w.a.free(spare[0], credential: Slot.own)   // bound into a alone
        #expect(count() == start)

        // b drops its binding itself: still nobody else's business.
        try w.b.unmap(f)
        #expect(count() == start)

        // a revokes the frame from b, which holds it again; a's own unmapping of another
        // frame after the deadline forces the revocation, taking b's binding: the count moves.
        try w.b.map(f, writable: false, credential: Slot.own)
        try w.a.revoke(f, graceTicks: 10, credential: Slot.own)
        let revoking = count()
        try w.a.map(spare[1], writable: false, credential: Slot.own)
        #expect(count() == revoking, "the deadline has not passed")
        w.kernel.host.advanceClock(by: 20)
        try w.a.unmap(spare[1])
        #expect(count() != revoking, "b lost its binding without asking")
        #expect(throws: KernelError.notMapped) { try w.b.load(f, offset: 0, count: 1) }

        // The same forced by the clock alone, between calls.
        try w.b.map(f, writable: false, credential: Slot.own)
        try w.a.revoke(f, graceTicks: 10, credential: Slot.own)
        let pending = count()
        w.kernel.host.advanceClock(by: 20)
        w.kernel.advance()
        #expect(count() != pending)
        #expect(throws: KernelError.notMapped) { try w.b.load(f, offset: 0, count: 1) }
    }
}

@Suite struct Scheduling {
    @Test func slicesRunRoundRobinWithPrologueAndEpilogue() throws {
        let w = World()
        try w.a.allocate(SliceIndex(rawValue: 0), credential: Slot.slices)
        try w.b.allocate(SliceIndex(rawValue: 1), credential: Slot.slices)
        var order: [EnvironmentID?] = []
        for _ in 0..<(2 * KernelLimits.slices) { order.append(w.kernel.beginSlice()) }
        w.kernel.endSlice()
        let expected = (0..<(2 * KernelLimits.slices)).map { i -> EnvironmentID? in
            i % KernelLimits.slices == 0 ? w.a.environment : i % KernelLimits.slices == 1 ? w.b.environment : nil
        }
        #expect(order == expected)
        // Notices coalesce to the latest start and end; the environment learns of both.
        #expect(try w.upcalls(w.a) == [.sliceStart(SliceIndex(rawValue: 0)), .sliceEnd(SliceIndex(rawValue: 0))])
    }

    @Test func directedYieldHandsTheRestOfTheSliceToTheTarget() throws {
        let w = World()
        try w.a.allocate(SliceIndex(rawValue: 0), credential: Slot.slices)
        #expect(w.kernel.beginSlice() == w.a.environment)
        try w.a.yield(to: w.b.environment)
        #expect(w.kernel.running == w.b.environment)
        // Only the running environment may yield.
        #expect(throws: KernelError.busy) { try w.a.yield(to: w.b.environment) }
        try w.b.yield()
        #expect(w.kernel.running == nil)
    }

    @Test func predicateSleepsUntilTheClockItReadsPassesAPoint() throws {
        let w = World()
        try w.a.allocate(SliceIndex(rawValue: 0), credential: Slot.slices)
        // The window's length is checked first, as for any variable-length context.
        let program = predicate("mov %r0, 1\njlt %r2, 24, +4\nldxdw %r2, [%r1+\(ExposedState.clockOffset)]\nmov %r0, 0\njlt %r2, 100, +1\nmov %r0, 1\nexit")
        try w.a.sleep(until: program, credential: Slot.own)
        #expect(w.kernel.isAsleep(w.a.environment))
        #expect(w.kernel.beginSlice() == nil)                 // asleep: its slice idles
        w.kernel.host.advanceClock(by: 99)
        w.kernel.advance()
        #expect(w.kernel.isAsleep(w.a.environment))
        w.kernel.host.advanceClock(by: 1)
        w.kernel.advance()
        #expect(!w.kernel.isAsleep(w.a.environment))
        #expect(try w.upcalls(w.a).contains(.wakeup))
    }

    @Test func predicateReadingTheRegistrySleepsUntilABlockIsOnDisk() throws {
        // a writes a data block (dirty in the registry); b sleeps until the registry entry
        // of the frame holding it says clean — the registry is public, its contents are
        // not. The predicate finds the registry through the header, so it works whatever
        // the machine's size. a's writeback wakes b.
        let w = World()
        let t = try w.trees()
        try t.a.write([1, 2, 3], at: 0, of: t.file)
        let frame = try #require(w.kernel.exposedState.registry(block: t.file)?.frame)
        let flags = Int(frame.rawValue) * ExposedState.registryEntryBytes + 25
        let program = predicate("""
            mov %r0, 1
            jlt %r2, \(ExposedState.headerBytes), +11
            ldxw %r3, [%r1+\(ExposedState.registryOffsetField)]
            add %r3, \(flags)
            mov %r4, %r3
            add %r4, 1
            jgt %r4, %r2, +6
            add %r1, %r3
            ldxb %r5, [%r1+0]
            and %r5, 1
            mov %r0, 0
            jne %r5, 0, +1
            mov %r0, 1
            exit
            """)
        try w.b.sleep(until: program, credential: Slot.own)
        w.kernel.advance()
        #expect(w.kernel.isAsleep(w.b.environment))
        _ = try w.a.nextUpcall()
        w.kernel.advance()
        #expect(w.kernel.isAsleep(w.b.environment), "an unrelated call does not wake it")
        try w.a.writeback([t.file])
        w.kernel.advance()
        #expect(!w.kernel.isAsleep(w.b.environment))
        #expect(try w.upcalls(w.b).contains(.wakeup))
    }

    @Test func predicateReadingARegionWakesWhenTheRegionChanges() throws {
        let w = World()
        // A flag a owns and b may set.
        let flag = try w.a.createRegion(size: 8, acl: acl(capability([101], .all), capability([102], .write)), credential: Slot.regions)
        // The region follows the exposed state, whose length the header gives at byte 24.
        try w.a.sleep(until: predicate("mov %r0, 1\njlt %r2, 28, +3\nldxw %r3, [%r1+24]\nadd %r1, %r3\nldxb %r0, [%r1+0]\nexit"),
                      region: flag, credential: Slot.own)
        w.kernel.advance()
        #expect(w.kernel.isAsleep(w.a.environment))
        try w.b.write([1], to: flag, offset: 0, credential: Slot.own)
        w.kernel.advance()
        #expect(!w.kernel.isAsleep(w.a.environment))
    }
}
