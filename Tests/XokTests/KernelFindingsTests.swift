// The outside attack on the kernel and XN of issue 8, finding by finding, through the
// ports a malicious library OS would use. Each of these succeeded, or trapped the kernel's
// process, before XN moved inside the kernel; each is now refused and changes nothing.

@testable import Xok
import Testing
import TreeFS
import TreeFSUDFs
import XN
import XokABI
import XokSimulation

@Suite struct KernelFindings {
    /// A world whose a and b each run a tree file system with a written-back root.
    func trees(_ w: World) throws -> (a: Tree, rootA: BlockNumber, b: Tree, rootB: BlockNumber) {
        let t = try w.trees()
        return (t.a, t.rootA, t.b, t.rootB)
    }

    @Test func anotherEnvironmentsRootCannotBeChangedOrGrownUnder() throws {
        let w = World()
        let t = try trees(w)
        let before = w.kernel.stateDigest()
        // b rewrites a's root, and allocates under it: the root's capability guards both.
        #expect(throws: KernelError.permissionDenied) {
            try w.b.modify(t.rootA, .write, .inline([(300, [0xee])]), credential: Slot.own)
        }
        let frame = try w.frame(of: w.b)
        let afterFrame = w.kernel.stateDigest()
        #expect(throws: KernelError.permissionDenied) {
            try w.b.modify(t.rootA, .allocate(400, .data, frame: frame), .inline([(entry(5), Tree.entry(400, .data))]), credential: Slot.own)
        }
        #expect(w.kernel.stateDigest() == afterFrame)
        #expect(before != afterFrame, "only b's frame was added")
        w.expectConsistent()
    }

    @Test func aFreshRootCannotBeTakenOverAfterARemount() throws {
        // a creates a root and writes it back unstamped; after a clean shutdown and a new
        // boot, b tries to stamp it as its own.
        let w = World()
        let a = try w.tree(w.a)
        let root = try w.a.createRoot(named: "fresh", type: a.type, protection: Slot.own, frame: try w.frame(of: w.a), credential: Slot.roots)
        try w.a.writeback([root])
        let disk = try #require(try w.kernel.shutdown())
        let kernel = Kernel(host: SimulatedHost(frameCount: 300))
        try kernel.mountDisk(disk, format: false)
        let newA = try LibraryEnvironment.treeClient(kernel, ownerID: 101, format: TreeFormat(name: "tree", ownerOffset: 0))
        let b = try LibraryEnvironment.treeClient(kernel, ownerID: 102, format: TreeFormat(name: "tree", ownerOffset: 0))
        _ = try newA.contents(root)                      // cached by its owner
        #expect(throws: KernelError.permissionDenied) { _ = try b.contents(root) }
        #expect(throws: KernelError.permissionDenied) { try b.port.modify(root, .write, .inline([b.stamp]), credential: b.slots.own) }
        // Its owner still may.
        try newA.port.modify(root, .write, .inline([newA.stamp]), credential: newA.slots.own)
        #expect(kernel.checkInvariants() == [])
    }

    @Test func namesThatWouldCollideOnceStoredAreRefused() throws {
        let w = World()
        let a = try w.tree(w.a)
        // A name too long for the field does not even decode.
        #expect(throws: KernelError.badRequest) {
            _ = try w.a.createRoot(named: String(repeating: "x", count: 32), type: a.type, protection: Slot.own, frame: try w.frame(of: w.a), credential: Slot.roots)
        }
        for name in ["tree\0evil", "home\0", "\0", "\u{0}x"] {
            #expect(throws: KernelError.invalidArgument) {
                _ = try w.b.perform(try installRequest(w, w.b, name: Array(name.utf8), owns: TreeFormat(name: "t", ownerOffset: 0).owns))
            }
            #expect(throws: KernelError.invalidArgument) {
                _ = try w.a.createRoot(named: name, type: a.type, protection: Slot.own, frame: try w.frame(of: w.a), credential: Slot.roots)
            }
        }
        w.expectConsistent()
    }

    @Test func theRegistryShowsNamesAndStateNeverContents() throws {
        let w = World()
        let t = try w.trees()
        let secret = Array("the contents b must never see".utf8)
        try t.a.write(secret, at: 1000, of: t.file)
        let view = w.b.exposedState()
        #expect(view.registry(block: t.file)?.dirty == true)
        #expect(!view.raw.indices.dropLast(secret.count).contains { view.raw[$0..<$0 + secret.count].elementsEqual(secret) })
        // Nor can b get at them any other way.
        #expect(throws: KernelError.permissionDenied) { try w.b.read(t.file, into: try bytesFrame(w, w.b, []), credential: Slot.own) }
        #expect(throws: KernelError.permissionDenied) { _ = try w.b.map(t.file, writable: false, credential: Slot.own) }
        let frame = try #require(view.registry(block: t.file)?.frame)
        #expect(throws: KernelError.permissionDenied) { try w.b.map(frame, writable: false, credential: Slot.own) }
        #expect(throws: KernelError.notMapped) { _ = try w.b.load(frame, offset: 1000, count: 4) }
    }

    @Test func oneEnvironmentCannotTakeEveryBlockOrCatalogueEntry() throws {
        let w = World()
        let t = try w.trees()
        // a allocates until its quota stops it; b still allocates.
        var parent = t.dir, n = 0, refused: KernelError?
        while refused == nil {
            do {
                if n == 200 { parent = try t.a.add(under: t.rootA, type: t.a.type); n = 0 }
                let child = try t.a.add(under: parent, type: .data)
                try w.a.writeback([child])
                try w.a.evict(child, credential: Slot.own)
                n += 1
            } catch { refused = error }
        }
        #expect(refused == .limitExceeded)
        #expect(w.kernel.quota(of: w.a.environment)!.used.blocks == w.childQuota.blocks)
        _ = try t.b.add(under: t.rootB, type: .data)
        // Catalogue entries: a's quota of them ends its types and roots; b goes on.
        var entries = 0
        while (try? w.tree(w.a, format: TreeFormat(name: "a\(entries)", ownerOffset: 0))) != nil { entries += 1 }
        #expect(w.kernel.quota(of: w.a.environment)!.used.catalogueEntries == w.childQuota.catalogueEntries)
        _ = try w.tree(w.b, format: TreeFormat(name: "b-own", ownerOffset: 0))
        w.expectConsistent()
    }

    @Test func aCoWriterDoesNotLockTheOwnerOutOfItsWriteback() throws {
        // b may write a's directory (a's acl lets a [101]-named credential change it, and
        // init gives b one); b's change must not keep a from writing its own block back.
        let w = World()
        let t = try w.trees()
        let root = w.root
        let shared = try root.derive(CapabilitySlot(0), appending: [101], rights: [.read, .write, .grant])
        let coWriter = LocalPort(kernel: w.kernel, environment: try root.createEnvironment(
            credential: CapabilitySlot(0), acl: acl(.root), grants: [shared], quota: Quota(frames: 4)))
        try coWriter.modify(t.dir, .write, .inline([(3000, [7])]), credential: CapabilitySlot(0))
        try w.a.writeback([t.dir])
        #expect(w.kernel.exposedState.registry(block: t.dir)?.dirty == false)
        // And the co-writer may write back the change it made.
        try coWriter.modify(t.dir, .write, .inline([(3001, [8])]), credential: CapabilitySlot(0))
        try coWriter.writeback([t.dir])
        w.expectConsistent()
    }

    @Test func aSubtreeCannotFillTheEnvironmentTableAndItsAncestorReclaimsIt() throws {
        // a, with the grant right, builds descendants that create more, each with an ACL
        // nobody satisfies. They stop at a's quota of descendants; init, an ancestor, then
        // destroys a's whole subtree in one call.
        let w = World()
        let nobody = acl(capability([999_999], .write))
        let grant = try w.a.derive(Slot.environments, rights: [.write, .grant])
        var frontier = [w.a]
        var made = 0, stoppedBy: KernelError?
        outer: while !frontier.isEmpty {
            let parent = frontier.removeFirst()
            for _ in 0..<16 {
                do {
                    let left = w.kernel.quota(of: parent.environment)!
                    let share = (left.quota.environments - left.used.environments) / 2
                    let child = try parent.createEnvironment(credential: parent === w.a ? grant : CapabilitySlot(0), acl: nobody,
                                                             grants: [parent === w.a ? grant : CapabilitySlot(0)],
                                                             quota: Quota(environments: share))
                    made += 1
                    frontier.append(w.port(child))
                } catch {
                    stoppedBy = error
                    if parent === w.a { break outer }
                    break
                }
            }
        }
        #expect(stoppedBy == .limitExceeded)
        #expect(made <= Int(w.childQuota.environments))
        // Others still get environments.
        _ = try w.b.createEnvironment(credential: Slot.environments, acl: nobody)
        // The descendants' ACLs name nobody, but init is their ancestor.
        let descendants = w.kernel.environmentIDs.filter { w.kernel.isAncestor(w.a.environment, of: $0) }
        #expect(descendants.count == made)
        try w.root.destroy(w.a.environment, credential: CapabilitySlot(0))
        #expect(w.kernel.environmentIDs.allSatisfy { !descendants.contains($0) && $0 != w.a.environment })
        #expect(w.kernel.quota(of: w.root.environment)!.used.environments == 1 + w.childQuota.environments,
                "only b's reservation is left")
        w.expectConsistent()
    }

    @Test(arguments: ["frames", "regions", "slices", "messages", "blocks", "catalogueEntries"])
    func aSubtreeTakesNoMoreThanItsShareOf(_ resource: String) throws {
        // a gives a child everything it has; the child and a grandchild together still
        // get no more than a's quota of `resource`, and b is untouched.
        let w = World()
        let t = try w.trees()
        let bBefore = w.kernel.quota(of: w.b.environment)!
        let grants = try [Slot.frames, Slot.regions, Slot.slices, Slot.environments, Slot.own, Slot.types, Slot.roots].map {
            try w.a.derive($0, rights: $0 == Slot.own ? .all : [.write, .grant])
        }
        let left = try #require(w.kernel.quota(of: w.a.environment).flatMap { $0.quota.subtracting($0.used) })
        var give = left
        give.environments -= 1
        let child = w.port(try w.a.createEnvironment(credential: Slot.environments, acl: w.ownACL(w.a), grants: grants, quota: give))
        // The child's own slots: 0 frames, 1 regions, 2 slices, 3 environments, 4 own, 5 types, 6 roots.
        var taken: UInt64 = 0
        func take() throws(KernelError) {
            switch resource {
            case "frames": _ = try child.allocateFrame(credential: CapabilitySlot(0), acl: w.ownACL(w.a))
            case "regions": _ = try child.createRegion(size: 8, acl: w.ownACL(w.a), credential: CapabilitySlot(1))
            case "slices": try child.allocate(SliceIndex(rawValue: UInt32(10 + taken)), credential: CapabilitySlot(2))
            case "messages": try child.send([1], to: w.a.environment, credential: CapabilitySlot(4))
            case "blocks":
                let f = try child.allocateFrame(credential: CapabilitySlot(0), acl: w.ownACL(w.a))
                let b = try child.firstFreeBlock(from: 0)
                try child.modify(t.dir, .allocate(b, .data, frame: f),
                                 .inline([(entry(Int(1 + taken)), Tree.entry(b, .data)), t.a.format.highWater(TreeFormat.entries)]), credential: CapabilitySlot(4))
            default:
                let f = try child.allocateFrame(credential: CapabilitySlot(0), acl: w.ownACL(w.a))
                _ = try child.createRoot(named: "c\(taken)", type: t.a.type, protection: CapabilitySlot(4), frame: f, credential: CapabilitySlot(6))
            }
            taken += 1
        }
        if resource == "messages" { try w.a.setMessageACL(w.ownACL(w.a)) }
        var stop: KernelError?
        while stop == nil && taken < 10_000 {
            do { try take() } catch { stop = error }
        }
        #expect(stop == .limitExceeded || (resource == "messages" && stop == .queueFull))
        let limit: UInt64 = switch resource {
        case "frames": UInt64(left.frames)
        case "regions": UInt64(left.regions)
        case "slices": UInt64(left.slices)
        case "messages": UInt64(min(left.messages, UInt32(KernelLimits.messagesPerSender)))
        case "blocks": min(left.blocks, UInt64(left.frames))
        default: min(UInt64(left.catalogueEntries), UInt64(left.frames))
        }
        #expect(taken <= limit)
        #expect(w.kernel.quota(of: w.b.environment)! == bBefore)
        w.expectConsistent()
    }

    @Test func aFullQueueIsOneSendersShareNotEveryones() throws {
        let w = World()
        try w.b.setMessageACL(acl(capability([101], .write), capability([0], .write), .root))
        for _ in 0..<KernelLimits.messagesPerSender { try w.a.send([1], to: w.b.environment, credential: Slot.own) }
        #expect(throws: KernelError.queueFull) { try w.a.send([1], to: w.b.environment, credential: Slot.own) }
        // Another permitted sender still gets in.
        try w.root.send([2], to: w.b.environment, credential: CapabilitySlot(0))
        #expect(try w.upcalls(w.b).last == .message(from: w.root.environment, [2]))
        w.expectConsistent()
    }

    @Test func idsNeverTrapWhenTheirGenerationWrapsAndNoIdIsZero() throws {
        // An environment entry and a region entry at the last generation: the next use
        // wraps to generation 1, never traps, never hands out id 0, never repeats a live id.
        let w = World()
        let index = (0..<KernelLimits.environmentsMax).first { w.kernel.environments[$0] == nil }!
        w.kernel.environmentGenerations[index] = UInt32.max >> EnvironmentID.indexBits
        let wrapped = try w.a.createEnvironment(credential: Slot.environments, acl: w.ownACL(w.a))
        #expect(wrapped.index == index && wrapped.generation == 1 && wrapped.rawValue != 0)
        try w.a.destroy(wrapped, credential: Slot.own)
        let next = try w.a.createEnvironment(credential: Slot.environments, acl: w.ownACL(w.a))
        #expect(next != wrapped && next.generation == 2)
        let slot = (0..<KernelLimits.regionsMax).first { w.kernel.regions[$0] == nil }!
        w.kernel.regionGenerations[slot] = UInt32.max >> RegionID.indexBits
        let region = try w.region(of: w.a)
        #expect(region.index == slot && region.generation == 1)
        // A stale id names nothing.
        try w.a.destroy(region, credential: Slot.own)
        #expect(throws: KernelError.noSuchRegion) { try w.a.read(region, offset: 0, length: 1, credential: Slot.own) }
        w.expectConsistent()
    }

    @Test func listsTooLongForTheirCountFieldAreRefusedNotTrapped() async {
        // More than 65,535 name components or grants used to trap the encoder (a `UInt16(_:)`
        // narrowing) in the kernel's own process. Now they encode without trapping and the
        // kernel refuses them.
        await #expect(processExitsWith: .success) {
            let kernel = Kernel(host: SimulatedHost(frameCount: 8))
            let port = LocalPort(kernel: kernel, environment: kernel.initEnvironment)
            let long = KernelRequest.capabilityDerive(source: CapabilitySlot(0), appending: Array(repeating: 1, count: 70_000), rights: .read)
            let grants = KernelRequest.environmentCreate(credential: CapabilitySlot(0), acl: try! AccessControlList([]),
                                                         grants: Array(repeating: CapabilitySlot(0), count: 65_537), quota: .none)
            for request in [long, grants] {
                do { _ = try port.perform(request) } catch let e as KernelError { precondition(e == .badRequest || e == .invalidArgument) } catch {
                    fatalError("\(error)")
                }
            }
        }
    }

    @Test func readingARootWhoseCapabilityLacksReadIsRefusedNotTrapped() async throws {
        // A root protected by a write-only capability made `XN.read` trap (a `try!`).
        await #expect(processExitsWith: .success) {
            let kernel = Kernel(host: SimulatedHost(frameCount: 64))
            try! kernel.mountDisk(SimulatedDisk(blockCount: 256, seed: 1), format: true)
            let a = try! LibraryEnvironment.treeClient(kernel, ownerID: 1, format: TreeFormat(name: "tree", ownerOffset: 0))
            let writeOnly = try! a.port.derive(LibrarySlot.own, rights: .write)
            let frame = try! a.newFrame()
            let root = try! a.port.createRoot(named: "w", type: a.type, protection: writeOnly, frame: frame, credential: LibrarySlot.roots)
            do {
                _ = try a.contents(root)
                precondition(false, "read a root its capability does not let anyone read")
            } catch let e as KernelError { precondition(e == .permissionDenied) } catch { fatalError("\(error)") }
        }
    }
}
