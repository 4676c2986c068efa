// Every call × every error it can return: each row sets up a world, makes one call that
// must fail with exactly that error, and checks nothing changed (the exposed state is
// byte-for-byte the same and every invariant holds).

import Testing
import Xok
import XokABI
import XokSimulation

struct ErrorCase: CustomTestStringConvertible, Sendable {
    var call: String
    var error: KernelError
    var why: String
    /// Frames of the world's machine, and blocks of its disk (0: no disk).
    var frames = 300
    var diskBlocks: UInt64 = 512
    var setup: @Sendable (World) throws -> (LocalPort<SimulatedHost>, KernelRequest)
    var testDescription: String { "\(call) → \(error): \(why)" }
}

/// Rows for the credential errors every credentialed call shares.
func credentialRows(_ call: String, _ make: @escaping @Sendable (World, CapabilitySlot) throws -> KernelRequest) -> [ErrorCase] {
    [ErrorCase(call: call, error: .slotOutOfRange, why: "slot past the list") { w in (w.a, try make(w, Slot.outOfRange)) },
     ErrorCase(call: call, error: .emptySlot, why: "slot holds nothing") { w in (w.a, try make(w, Slot.empty)) },
     ErrorCase(call: call, error: .permissionDenied, why: "credential passes no ACL entry") { w in (w.a, try make(w, Slot.weak)) }]
}

let readOnly = acl(capability([101], .read))

let errorCases: [ErrorCase] = [
    // Capabilities
    ErrorCase(call: "capabilityDerive", error: .slotOutOfRange, why: "source past the list") { w in (w.a, .capabilityDerive(source: Slot.outOfRange, appending: [], rights: .read)) },
    ErrorCase(call: "capabilityDerive", error: .emptySlot, why: "source empty") { w in (w.a, .capabilityDerive(source: Slot.empty, appending: [], rights: .read)) },
    ErrorCase(call: "capabilityDerive", error: .permissionDenied, why: "adds a right") { w in (w.a, .capabilityDerive(source: Slot.weak, appending: [], rights: .write)) },
    ErrorCase(call: "capabilityDerive", error: .invalidArgument, why: "name too long") { w in
        (w.a, .capabilityDerive(source: Slot.own, appending: [1, 2, 3, 4, 5, 6, 7, 8], rights: .read)) },
    ErrorCase(call: "capabilityDerive", error: .limitExceeded, why: "no free slot") { w in
        for _ in 0..<(KernelLimits.capabilitySlots - 8) { _ = try w.a.derive(Slot.weak, rights: .read) }
        return (w.a, .capabilityDerive(source: Slot.weak, appending: [], rights: .read)) },
    ErrorCase(call: "capabilityDrop", error: .slotOutOfRange, why: "slot past the list") { w in (w.a, .capabilityDrop(Slot.outOfRange)) },
    ErrorCase(call: "capabilityDrop", error: .emptySlot, why: "slot holds nothing") { w in (w.a, .capabilityDrop(Slot.empty)) },
    // Environments
    ErrorCase(call: "environmentCreate", error: .permissionDenied, why: "grant without the grant right") { w in
        let noGrant = try w.a.derive(Slot.own, rights: .read)
        return (w.a, .environmentCreate(credential: Slot.environments, acl: w.ownACL(w.a), grants: [noGrant], quota: .none)) },
    ErrorCase(call: "environmentCreate", error: .emptySlot, why: "a granted slot is empty") { w in
        (w.a, .environmentCreate(credential: Slot.environments, acl: w.ownACL(w.a), grants: [Slot.empty], quota: .none)) },
    ErrorCase(call: "environmentCreate", error: .limitExceeded, why: "its quota of descendants used") { w in
        for _ in 0..<w.childQuota.environments { _ = try w.a.createEnvironment(credential: Slot.environments, acl: w.ownACL(w.a)) }
        return (w.a, .environmentCreate(credential: Slot.environments, acl: w.ownACL(w.a), grants: [], quota: .none)) },
    ErrorCase(call: "environmentCreate", error: .limitExceeded, why: "a child's quota past what is left") { w in
        (w.a, .environmentCreate(credential: Slot.environments, acl: w.ownACL(w.a), grants: [], quota: Quota(frames: w.childQuota.frames + 1))) },
    ErrorCase(call: "environmentCreate", error: .limitExceeded, why: "a quota that overflows") { w in
        (w.a, .environmentCreate(credential: Slot.environments, acl: w.ownACL(w.a), grants: [], quota: Quota(environments: .max))) },
    ErrorCase(call: "environmentDestroy", error: .noSuchEnvironment, why: "target never existed") { w in
        (w.a, .environmentDestroy(credential: Slot.own, EnvironmentID(rawValue: 999))) },
    ErrorCase(call: "environmentDestroy", error: .permissionDenied, why: "credential does not pass the target's ACL") { w in
        (w.a, .environmentDestroy(credential: Slot.own, w.b.environment)) },
    ErrorCase(call: "environmentSetMessageACL", error: .noSuchEnvironment, why: "caller is dead") { w in
        w.kernel.kill(w.a.environment)
        return (w.a, .environmentSetMessageACL(readOnly)) },
    // Frames
    ErrorCase(call: "frameAllocate", error: .limitExceeded, why: "frame quota used") { w in
        for _ in 0..<w.childQuota.frames { _ = try w.frame(of: w.a) }
        return (w.a, .frameAllocate(credential: Slot.frames, acl: w.ownACL(w.a))) },
    ErrorCase(call: "frameAllocate", error: .exhausted, why: "no free frame: the kernel holds a dead environment's dirty block") { w in
        // b leaves a dirty root in the cache and dies; its frame stays with the kernel,
        // charged to no one, so init's share is more than the machine has left.
        let tree = try w.tree(w.b)
        _ = try tree.createRoot(name: "b")
        w.kernel.kill(w.b.environment)
        for _ in 0..<w.childQuota.frames { _ = try w.frame(of: w.a) }
        while (try? w.root.allocateFrame(credential: CapabilitySlot(0), acl: readOnly)) != nil {}
        return (w.root, .frameAllocate(credential: CapabilitySlot(0), acl: readOnly)) },
    ErrorCase(call: "frameAllocateMany", error: .invalidArgument, why: "no frames") { w in
        (w.a, .frameAllocateMany(credential: Slot.frames, acl: w.ownACL(w.a), count: 0)) },
    ErrorCase(call: "frameAllocateMany", error: .invalidArgument, why: "one past the batch limit") { w in
        (w.a, .frameAllocateMany(credential: Slot.frames, acl: w.ownACL(w.a), count: UInt16(KernelLimits.xnBatchMax + 1))) },
    ErrorCase(call: "frameAllocateMany", error: .permissionDenied, why: "a credential the kernel's frame ACL refuses") { w in
        (w.a, .frameAllocateMany(credential: Slot.weak, acl: w.ownACL(w.a), count: 2)) },
    ErrorCase(call: "frameAllocateMany", error: .limitExceeded, why: "room in the quota for one frame fewer") { w in
        for _ in 0..<w.childQuota.frames - 3 { _ = try w.frame(of: w.a) }
        return (w.a, .frameAllocateMany(credential: Slot.frames, acl: w.ownACL(w.a), count: 4)) },
    ErrorCase(call: "frameAllocateMany", error: .exhausted, why: "fewer free frames than asked") { w in
        // As for frameAllocate: a dead environment's dirty block leaves init's share larger
        // than the machine; every frame is taken, then one given back.
        let tree = try w.tree(w.b)
        _ = try tree.createRoot(name: "b")
        w.kernel.kill(w.b.environment)
        for _ in 0..<w.childQuota.frames { _ = try w.frame(of: w.a) }
        var last: FrameNumber?
        while let f = try? w.root.allocateFrame(credential: CapabilitySlot(0), acl: acl(.root)) { last = f }
        try w.root.free(try #require(last), credential: CapabilitySlot(0))
        return (w.root, .frameAllocateMany(credential: CapabilitySlot(0), acl: readOnly, count: 2)) },
    ErrorCase(call: "frameFree", error: .noSuchFrame, why: "frame is free") { w in (w.a, .frameFree(credential: Slot.own, FrameNumber(rawValue: 3))) },
    ErrorCase(call: "frameFree", error: .noSuchFrame, why: "frame number past the machine") { w in (w.a, .frameFree(credential: Slot.own, FrameNumber(rawValue: 1 << 30))) },
    ErrorCase(call: "frameFree", error: .busy, why: "another environment has it mapped") { w in
        let f = try w.frameSharedWithB()
        return (w.a, .frameFree(credential: Slot.own, f)) },
    ErrorCase(call: "frameSetACL", error: .noSuchFrame, why: "frame is free") { w in (w.a, .frameSetACL(credential: Slot.own, FrameNumber(rawValue: 5), readOnly)) },
    ErrorCase(call: "frameMap", error: .noSuchFrame, why: "frame is free") { w in (w.a, .frameMap(credential: Slot.own, FrameNumber(rawValue: 5), writable: false)) },
    ErrorCase(call: "frameMap", error: .permissionDenied, why: "writable binding with a read-only credential") { w in
        let f = try w.frame(of: w.a)
        let reader = try w.a.derive(Slot.own, rights: .read)
        return (w.a, .frameMap(credential: reader, f, writable: true)) },
    ErrorCase(call: "frameMap", error: .busy, why: "frame is being revoked") { w in
        let f = try w.frameSharedWithB()
        try w.a.revoke(f, graceTicks: 100, credential: Slot.own)
        let reader = try w.root.derive(CapabilitySlot(0), rights: .read)
        return (w.root, .frameMap(credential: reader, f, writable: false)) },
    ErrorCase(call: "frameMap", error: .limitExceeded, why: "binding limit reached", frames: KernelLimits.bindingsMax + 300) { w in
        // Frames init owns, all readable by a.
        let shared = acl(capability([101], .read))
        for _ in 0..<KernelLimits.bindingsMax {
            let f = try w.root.allocateFrame(credential: CapabilitySlot(0), acl: shared)
            try w.a.map(f, writable: false, credential: Slot.own)
        }
        let f = try w.root.allocateFrame(credential: CapabilitySlot(0), acl: shared)
        return (w.a, .frameMap(credential: Slot.own, f, writable: false)) },
    ErrorCase(call: "frameUnmap", error: .notMapped, why: "caller holds no binding") { w in (w.a, .frameUnmap(try w.frame(of: w.b))) },
    ErrorCase(call: "frameLoad", error: .notMapped, why: "the caller has not bound the frame") { w in
        (w.a, .frameLoad(try w.frame(of: w.a), offset: 0, count: 8)) },
    ErrorCase(call: "frameLoad", error: .notMapped, why: "a frame past the machine") { w in (w.a, .frameLoad(FrameNumber(rawValue: .max), offset: 0, count: 1)) },
    ErrorCase(call: "frameLoad", error: .notMapped, why: "the range leaves the page") { w in
        let f = try w.frame(of: w.a)
        try w.a.map(f, writable: false, credential: Slot.own)
        return (w.a, .frameLoad(f, offset: UInt16(KernelLimits.pageBytes - 4), count: 5)) },
    ErrorCase(call: "frameStore", error: .notMapped, why: "the frame is bound read-only") { w in
        (w.b, .frameStore(try w.frameSharedWithB(), offset: 0, bytes: [1])) },
    ErrorCase(call: "frameStore", error: .notMapped, why: "another environment's frame") { w in
        (w.b, .frameStore(try w.frame(of: w.a), offset: 0, bytes: [1])) },
    ErrorCase(call: "frameStore", error: .notMapped, why: "the bytes leave the page") { w in
        let f = try w.frame(of: w.a)
        try w.a.map(f, writable: true, credential: Slot.own)
        return (w.a, .frameStore(f, offset: UInt16(KernelLimits.pageBytes - 1), bytes: [1, 2])) },
    ErrorCase(call: "frameUnmapMany", error: .invalidArgument, why: "no frames") { w in (w.a, .frameUnmapMany([])) },
    ErrorCase(call: "frameUnmapMany", error: .invalidArgument, why: "a frame named twice") { w in
        let f = try w.frame(of: w.a)
        try w.a.map(f, writable: false, credential: Slot.own)
        return (w.a, .frameUnmapMany([f, f])) },
    ErrorCase(call: "frameUnmapMany", error: .notMapped, why: "the last frame not bound (the others stay bound)") { w in
        let bound = try (0..<3).map { _ in try w.frame(of: w.a) }
        for f in bound { try w.a.map(f, writable: false, credential: Slot.own) }
        return (w.a, .frameUnmapMany(bound + [try w.frame(of: w.b)])) },
    ErrorCase(call: "frameRevoke", error: .noSuchFrame, why: "frame is free") { w in (w.a, .frameRevoke(credential: Slot.own, FrameNumber(rawValue: 9), graceTicks: 1)) },
    ErrorCase(call: "frameRevoke", error: .invalidArgument, why: "grace past the limit") { w in
        (w.a, .frameRevoke(credential: Slot.own, try w.frame(of: w.a), graceTicks: KernelLimits.revocationGraceMax + 1)) },
    ErrorCase(call: "frameRevoke", error: .busy, why: "already being revoked") { w in
        let f = try w.frameSharedWithB()
        try w.a.revoke(f, graceTicks: 100, credential: Slot.own)
        return (w.a, .frameRevoke(credential: Slot.own, f, graceTicks: 100)) },
    // Regions
    ErrorCase(call: "regionCreate", error: .invalidArgument, why: "size 0") { w in (w.a, .regionCreate(credential: Slot.regions, acl: readOnly, size: 0)) },
    ErrorCase(call: "regionCreate", error: .invalidArgument, why: "size past the limit") { w in
        (w.a, .regionCreate(credential: Slot.regions, acl: readOnly, size: UInt32(KernelLimits.regionBytesMax + 1))) },
    ErrorCase(call: "regionCreate", error: .limitExceeded, why: "region quota used") { w in
        for _ in 0..<w.childQuota.regions { _ = try w.region(of: w.a) }
        return (w.a, .regionCreate(credential: Slot.regions, acl: readOnly, size: 8)) },
    ErrorCase(call: "regionRead", error: .noSuchRegion, why: "no such region") { w in (w.a, .regionRead(credential: Slot.own, RegionID(rawValue: 77), offset: 0, length: 1)) },
    ErrorCase(call: "regionRead", error: .outOfBounds, why: "past the end") { w in (w.a, .regionRead(credential: Slot.own, try w.region(of: w.a, size: 64), offset: 60, length: 5)) },
    ErrorCase(call: "regionRead", error: .outOfBounds, why: "offset past the end") { w in (w.a, .regionRead(credential: Slot.own, try w.region(of: w.a, size: 64), offset: .max, length: 1)) },
    ErrorCase(call: "regionWrite", error: .noSuchRegion, why: "no such region") { w in (w.a, .regionWrite(credential: Slot.own, RegionID(rawValue: 77), offset: 0, bytes: [1])) },
    ErrorCase(call: "regionWrite", error: .outOfBounds, why: "past the end") { w in (w.a, .regionWrite(credential: Slot.own, try w.region(of: w.a, size: 64), offset: 63, bytes: [1, 2])) },
    ErrorCase(call: "regionWrite", error: .permissionDenied, why: "read-only credential") { w in
        let r = try w.region(of: w.a)
        return (w.a, .regionWrite(credential: try w.a.derive(Slot.own, rights: .read), r, offset: 0, bytes: [1])) },
    ErrorCase(call: "regionDestroy", error: .noSuchRegion, why: "no such region") { w in (w.a, .regionDestroy(credential: Slot.own, RegionID(rawValue: 77))) },
    // IPC
    ErrorCase(call: "ipcSend", error: .noSuchEnvironment, why: "no such target") { w in (w.a, .ipcSend(credential: Slot.own, target: EnvironmentID(rawValue: 999), message: [1])) },
    ErrorCase(call: "ipcSend", error: .queueFull, why: "the sender's share of the target's queue full") { w in
        try w.b.setMessageACL(acl(capability([101], .write)))
        for _ in 0..<KernelLimits.messagesPerSender { try w.a.send([1], to: w.b.environment, credential: Slot.own) }
        return (w.a, .ipcSend(credential: Slot.own, target: w.b.environment, message: [2])) },
    ErrorCase(call: "upcallNext", error: .noSuchEnvironment, why: "caller is dead") { w in
        w.kernel.kill(w.a.environment)
        return (w.a, .upcallNext) },
    // Predicates
    ErrorCase(call: "predicateInstall", error: .programRejected, why: "reads past its window") { w in
        (w.a, .predicateInstall(credential: Slot.own, program: predicate("ldxb %r0, [%r1+4096]\nexit"), region: nil)) },
    ErrorCase(call: "predicateInstall", error: .programRejected, why: "loops") { w in
        (w.a, .predicateInstall(credential: Slot.own, program: predicate("mov %r0, 0\nja -2\nexit"), region: nil)) },
    ErrorCase(call: "predicateInstall", error: .noSuchRegion, why: "names a region that does not exist") { w in
        (w.a, .predicateInstall(credential: Slot.own, program: predicate("mov %r0, 1\nexit"), region: RegionID(rawValue: 55))) },
    ErrorCase(call: "predicateRemove", error: .noSuchEnvironment, why: "caller is dead") { w in
        w.kernel.kill(w.a.environment)
        return (w.a, .predicateRemove) },
    // Slices
    ErrorCase(call: "sliceAllocate", error: .noSuchSlice, why: "index past the vector") { w in (w.a, .sliceAllocate(credential: Slot.slices, SliceIndex(rawValue: UInt32(KernelLimits.slices)))) },
    ErrorCase(call: "sliceAllocate", error: .busy, why: "slice owned by another") { w in
        try w.b.allocate(SliceIndex(rawValue: 3), credential: Slot.slices)
        return (w.a, .sliceAllocate(credential: Slot.slices, SliceIndex(rawValue: 3))) },
    ErrorCase(call: "sliceAllocate", error: .limitExceeded, why: "slice quota used") { w in
        for i in 0..<Int(w.childQuota.slices) { try w.a.allocate(SliceIndex(rawValue: UInt32(i)), credential: Slot.slices) }
        return (w.a, .sliceAllocate(credential: Slot.slices, SliceIndex(rawValue: 10))) },
    ErrorCase(call: "sliceFree", error: .noSuchSlice, why: "slice is another's") { w in
        try w.b.allocate(SliceIndex(rawValue: 2), credential: Slot.slices)
        return (w.a, .sliceFree(SliceIndex(rawValue: 2))) },
    ErrorCase(call: "sliceFree", error: .noSuchSlice, why: "index past the vector") { w in (w.a, .sliceFree(SliceIndex(rawValue: 1000))) },
    ErrorCase(call: "yield", error: .noSuchEnvironment, why: "no such target") { w in (w.a, .yield(to: EnvironmentID(rawValue: 999))) },
    ErrorCase(call: "yield", error: .busy, why: "caller is not running") { w in (w.a, .yield(to: w.b.environment)) },
]
+ credentialRows("environmentCreate") { w, s in .environmentCreate(credential: s, acl: w.ownACL(w.a), grants: [], quota: .none) }
+ credentialRows("environmentDestroy") { w, s in .environmentDestroy(credential: s, w.b.environment) }
+ credentialRows("frameAllocate") { w, s in .frameAllocate(credential: s, acl: w.ownACL(w.a)) }
+ credentialRows("frameFree") { w, s in .frameFree(credential: s, try w.frame(of: w.a)) }
+ credentialRows("frameSetACL") { w, s in .frameSetACL(credential: s, try w.frame(of: w.a), readOnly) }
+ credentialRows("frameMap") { w, s in .frameMap(credential: s, try w.frame(of: w.a), writable: false) }
+ credentialRows("frameRevoke") { w, s in .frameRevoke(credential: s, try w.frame(of: w.a), graceTicks: 1) }
+ credentialRows("regionCreate") { w, s in .regionCreate(credential: s, acl: readOnly, size: 8) }
+ credentialRows("regionRead") { w, s in .regionRead(credential: s, try w.region(of: w.a), offset: 0, length: 1) }
+ credentialRows("regionWrite") { w, s in .regionWrite(credential: s, try w.region(of: w.a), offset: 0, bytes: [1]) }
+ credentialRows("regionDestroy") { w, s in .regionDestroy(credential: s, try w.region(of: w.a)) }
+ credentialRows("ipcSend") { w, s in .ipcSend(credential: s, target: w.b.environment, message: [1]) }
+ credentialRows("predicateInstall") { w, s in .predicateInstall(credential: s, program: predicate("mov %r0, 1\nexit"), region: try w.region(of: w.a)) }
+ credentialRows("sliceAllocate") { w, s in .sliceAllocate(credential: s, SliceIndex(rawValue: 0)) }

@Suite struct CallErrors {
    static let table = errorCases + xnErrorCases + xnMoveErrorCases + xnLinkErrorCases

    @Test(arguments: table)
    func callFailsWithItsDocumentedErrorAndChangesNothing(_ c: ErrorCase) throws {
        let world = World(frames: c.frames, diskBlocks: c.diskBlocks)
        let (port, request) = try c.setup(world)
        let before = world.kernel.stateDigest()
        #expect(throws: c.error) { try port.perform(request) }
        #expect(world.kernel.stateDigest() == before, "the kernel's state changed")
        world.expectConsistent()
    }

    @Test func everyCallAndEveryErrorAppearsInTheTable() {
        // Both lists come from the types: a new call or error without a row fails here.
        #expect(Set(Self.table.map(\.call)) == Set(KernelCall.allCases.map { "\($0)" }))
        // badRequest comes from the wire (WireFormat tests), not from a call's meaning.
        // tainted is left for a writeback whose move unit would outgrow the move log: a
        // writeback now writes the new blocks below what it names first.
        #expect(Set(Self.table.map(\.error)).union([.badRequest, .tainted]) == Set(KernelError.allCases))
    }

    @Test func theDigestSeesAChangeTheExposedPageDoesNot() throws {
        // A region write changes no exposed byte, but it changes the kernel: the check
        // above could not have been fooled by a change it does not look at.
        let w = World()
        let r = try w.region(of: w.a)
        func page() -> [UInt8] {
            var raw = w.kernel.exposedState.raw
            for i in ExposedState.generationOffset..<ExposedState.clockOffset + 8 { raw[i] = 0 }
            return raw
        }
        let exposed = page(), digest = w.kernel.stateDigest()
        try w.a.write([1], to: r, offset: 0, credential: Slot.own)
        #expect(page() == exposed, "only the generation moved")
        #expect(w.kernel.stateDigest() != digest)
    }
}
