// The Xok kernel core: it protects resources and manages none of them (DESIGN.md §3).
// Every call names its credential; every object carries an ACL; every resource is
// counted against the environment that holds it, out of a quota its creator gave it, and
// returned when it dies. All state is kept in arrays or iterated in sorted order, so a
// run is a function of its inputs.

import BPF
import XN
import XokABI

/// The kernel. Generic over the machine it runs on.
public final class Kernel<H: Host> {
    /// The machine. Public so a trusted harness (the simulation, `xokd`) can drive it.
    public let host: H
    /// Who may create environments, frames, regions, slices, types and roots.
    public let systemACLs: SystemACLs

    var environments: [EnvironmentRecord?] = Array(repeating: nil, count: KernelLimits.environmentsMax)
    /// The generation each table entry last handed out.
    var environmentGenerations = [UInt32](repeating: 0, count: KernelLimits.environmentsMax)
    /// The table entries in use.
    var liveIndices: Set<Int> = []
    var liveCount: Int { liveIndices.count }
    var frames: [FrameRecord?]
    /// Free frame numbers, handed out last-freed first.
    var freeFrames: [UInt32]
    /// Frames under revocation.
    var revoking: Set<UInt32> = []
    /// Live regions by table index (an id's low bits).
    var regions: [Int: RegionRecord] = [:]
    var regionGenerations = [UInt32](repeating: 0, count: KernelLimits.regionsMax)
    var sliceVector: [EnvironmentID?] = Array(repeating: nil, count: KernelLimits.slices) { didSet { slicesChanged = true } }
    /// Whether the exposed slice vector needs writing again.
    var slicesChanged = true
    /// XN, once a disk is mounted.
    public internal(set) var xn: XN<H.Disk, H.Memory>?
    /// The slice being run, and the environment running in it (after a directed yield,
    /// not always the slice's owner).
    public internal(set) var currentSlice: SliceIndex?
    public internal(set) var running: EnvironmentID?
    /// The exposed state's layout, its pages, and a predicate's region after them.
    let layout: ExposedState.Layout
    let exposed: UnsafeMutableRawBufferPointer
    var generation: UInt64 = 0
    /// See `noteFrameChanges`.
    var frameChanges: UInt64 = 0
    /// Whether a binding was removed from an environment that did not ask for it (a frame
    /// XN let go, a revocation forced) since the last `publish`, which then moves the
    /// frame-change count.
    var bindingTaken = false
    /// The frame the exposed registry shows each cached block in.
    var published: [BlockNumber: FrameNumber] = [:]
    /// Environment table entries to republish.
    var staleEnvironmentEntries: Set<Int> = []
    /// Who each block allocated since the mount is charged to, and each environment's
    /// charged blocks: a block's charge goes back to whoever was charged, however and by
    /// whomever it is freed (Kernel+XN.swift). An environment's go to its parent when it
    /// dies.
    var blockCharges = BlockCharges()
    /// Bumped whenever a region's bytes change, so predicates that read regions rerun.
    var regionVersion: UInt64 = 0
    /// The exposed-state generation and region version predicates were last run against.
    var predicatesEvaluatedAt: (UInt64, UInt64) = (.max, .max)

    /// The first environment, holding the root capability in slot 0 and the whole machine
    /// as its quota.
    public private(set) var initEnvironment = EnvironmentID(rawValue: 0)

    /// Boots a kernel on `host` with one environment, `init`, whose slot 0 holds
    /// `Capability.root`. A disk is mounted afterwards with `mountDisk`.
    public init(host: H, systemACLs: SystemACLs = .standard) {
        precondition(SharedSizes.violations.isEmpty, "sizes the modules share disagree: \(SharedSizes.violations)")
        self.host = host
        self.systemACLs = systemACLs
        // A host with more frames than the kernel can expose lends it only the first ones.
        let frameCount = min(max(0, host.frameCount), KernelLimits.framesMax)
        frames = Array(repeating: nil, count: frameCount)
        freeFrames = (0..<UInt32(frameCount)).reversed()
        layout = ExposedState.Layout(frames: frameCount)
        exposed = host.exposedPages(shared: layout.totalBytes, scratch: KernelLimits.predicateRegionBytes)
        let machine = Quota(environments: UInt32(KernelLimits.environmentsMax - 1), frames: UInt32(frameCount),
                            regions: UInt32(KernelLimits.regionsMax), slices: UInt32(KernelLimits.slices),
                            messages: UInt32(KernelLimits.environmentsMax * KernelLimits.messagesPerSender), blocks: 0,
                            catalogueEntries: 0)
        let rootACL: AccessControlList
        do { rootACL = try AccessControlList([.root]) } catch { fatalError("one entry fits an ACL") }
        initEnvironment = makeEnvironment(parent: nil, acl: rootACL, capabilities: [.root], quota: machine)!
        publishLayout()
        publish()
    }

    deinit { host.releaseExposedPages(exposed) }

    /// Handles one call from `caller`.
    /// - Throws: the call's `KernelError` (docs/kernel-interface.md lists them per call);
    ///   when it throws, nothing changed, except that a writeback may have written some of
    ///   the new blocks below those it names before it failed.
    public func handle(_ request: KernelRequest, from caller: EnvironmentID) throws(KernelError) -> KernelReply {
        guard environmentIndex(caller) != nil else { throw .noSuchEnvironment }
        let reply: KernelReply
        do { reply = try dispatch(request, from: caller) } catch {
            // What a failed writeback did write is shown at once.
            if case .xnWriteback = request, xn?.hasEvents == true { publish() }
            throw error
        }
        // After the change (a refused call changes nothing): a reader that saw the old
        // count before loading a page drops that page at its next look. A store into a
        // frame bound to the caller alone, or a call that changes frames for its caller
        // alone, changes nothing any other environment can hold a copy of, so the count
        // stays (the caller's own port updates or drops its copies), unless the call also
        // took someone else's binding (`publish` sees to that).
        if !request.leavesFramesAlone && request.framesChangedForCallerAlone == nil && !isPrivateStore(request, by: caller)
            && !changesBlockOfCallerAlone(request, by: caller) {
            noteFrameChanges()
        }
        publish()
        return reply
    }

    private func dispatch(_ request: KernelRequest, from caller: EnvironmentID) throws(KernelError) -> KernelReply {
        switch request {
        case .capabilityDerive(let source, let appending, let rights):
            return .slot(try deriveCapability(caller, source, appending: appending, rights: rights))
        case .capabilityDrop(let slot):
            _ = try capability(caller, slot)
            self[caller].capabilities[Int(slot.rawValue)] = nil
            return .done
        case .environmentCreate(let credential, let acl, let grants, let quota):
            return .environment(try createEnvironment(caller, credential, acl: acl, grants: grants, quota: quota))
        case .environmentDestroy(let credential, let target):
            try destroyEnvironment(caller, credential, target)
            return .done
        case .environmentSetMessageACL(let acl):
            self[caller].messageACL = acl
            return .done
        case .frameAllocate(let credential, let acl):
            return .frame(try allocateFrame(caller, credential, acl: acl))
        case .frameAllocateMany(let credential, let acl, let count):
            return .frames(try allocateFrames(caller, credential, acl: acl, count: Int(count)))
        case .frameFree(let credential, let frame):
            try freeFrame(caller, credential, frame)
            return .done
        case .frameSetACL(let credential, let frame, let acl):
            try frameRecord(frame, caller, credential, needs: .write)
            frames[Int(frame.rawValue)]!.acl = acl
            return .done
        case .frameMap(let credential, let frame, let writable):
            try mapFrame(caller, credential, frame, writable: writable)
            return .done
        case .frameUnmap(let frame):
            try unmapFrame(caller, frame)
            return .done
        case .frameUnmapMany(let frames):
            try unmapFrames(caller, frames)
            return .done
        case .frameRevoke(let credential, let frame, let grace):
            try revokeFrame(caller, credential, frame, graceTicks: grace)
            return .done
        case .regionCreate(let credential, let acl, let size):
            return .region(try createRegion(caller, credential, acl: acl, size: size))
        case .regionRead(let credential, let region, let offset, let length):
            return .bytes(try readRegion(caller, credential, region, offset: offset, length: length))
        case .regionWrite(let credential, let region, let offset, let bytes):
            try writeRegion(caller, credential, region, offset: offset, bytes: bytes)
            return .done
        case .regionDestroy(let credential, let region):
            try regionRecord(region, caller, credential, needs: .write)
            removeRegion(region)
            return .done
        case .ipcSend(let credential, let target, let message):
            try send(caller, credential, to: target, message: message)
            return .done
        case .upcallNext:
            return .upcall(nextUpcall(caller))
        case .frameLoad(let frame, let offset, let count):
            return .bytes(try load(frame, offset: Int(offset), count: Int(count), by: caller))
        case .frameStore(let frame, let offset, let bytes):
            try store(bytes, into: frame, offset: Int(offset), by: caller)
            return .done
        case .predicateInstall(let credential, let program, let region):
            try installPredicate(caller, credential, program: program, region: region)
            return .done
        case .predicateRemove:
            if self[caller].predicate != nil {
                self[caller].predicate = nil
                self[caller].wakeupPending = true
            }
            return .done
        case .sliceAllocate(let credential, let slice):
            try allocateSlice(caller, credential, slice)
            return .done
        case .sliceFree(let slice):
            guard Int(slice.rawValue) < KernelLimits.slices, sliceVector[Int(slice.rawValue)] == caller else { throw .noSuchSlice }
            sliceVector[Int(slice.rawValue)] = nil
            refund(caller, Quota(slices: 1))
            return .done
        case .yield(let target):
            try yield(caller, to: target)
            return .done
        case .xnInstallType, .xnLookupType, .xnCreateRoot, .xnLookupRoot, .xnReadIn, .xnRead, .xnMap, .xnModify, .xnWriteData,
             .xnWriteback, .xnEvict, .xnFindFree, .xnMapMany, .xnMove:
            return try dispatchXN(request, from: caller)
        }
    }

    /// The exposed state as environments read it: a copy of its pages.
    public var exposedState: ExposedState { ExposedState(raw: Array(UnsafeRawBufferPointer(rebasing: exposed[0..<layout.totalBytes]))) }

    /// The exposed state's pages as they are, for reads that need a few bytes of them.
    var liveExposedState: LiveExposedState { LiveExposedState(pages: UnsafeRawBufferPointer(rebasing: exposed[0..<layout.totalBytes])) }
}

/// The kernel's exposed pages read in place. Only between calls, in the kernel's own
/// process: the pages change under a call.
struct LiveExposedState: ExposedBytes {
    let pages: UnsafeRawBufferPointer
    func u8(at offset: Int) -> UInt8 { offset >= 0 && offset < pages.count ? pages[offset] : 0 }
    func u32(at offset: Int) -> UInt32 {
        guard offset >= 0, offset <= pages.count - 4 else { return 0 }
        return UInt32(littleEndian: pages.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    func u64(at offset: Int) -> UInt64 {
        guard offset >= 0, offset <= pages.count - 8 else { return 0 }
        return UInt64(littleEndian: pages.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}

/// Who may create each kind of object: the kernel's own ACLs. A credential needs write on
/// the relevant one.
public struct SystemACLs: Sendable {
    public var environments: AccessControlList
    public var frames: AccessControlList
    public var regions: AccessControlList
    public var slices: AccessControlList
    /// Who may install XN types, and create XN roots.
    public var types: AccessControlList
    public var roots: AccessControlList

    /// The names `[1]` (environments), `[2]` (frames), `[3]` (regions), `[4]` (slices),
    /// `[5]` (XN types) and `[6]` (XN roots), each with write: a capability named `[2]`
    /// or any prefix of it (the root) may allocate frames.
    public static let standard: SystemACLs = {
        func writers(_ name: UInt64) -> AccessControlList {
            do { return try AccessControlList([try Capability(name: [name], rights: .write)]) } catch { fatalError("one short name fits") }
        }
        return SystemACLs(environments: writers(environmentsName), frames: writers(framesName), regions: writers(regionsName),
                          slices: writers(slicesName), types: writers(typesName), roots: writers(rootsName))
    }()

    public static let environmentsName: UInt64 = 1
    public static let framesName: UInt64 = 2
    public static let regionsName: UInt64 = 3
    public static let slicesName: UInt64 = 4
    public static let typesName: UInt64 = 5
    public static let rootsName: UInt64 = 6

    public init(environments: AccessControlList, frames: AccessControlList, regions: AccessControlList, slices: AccessControlList,
                types: AccessControlList, roots: AccessControlList) {
        self.environments = environments
        self.frames = frames
        self.regions = regions
        self.slices = slices
        self.types = types
        self.roots = roots
    }
}

/// An in-process port: one environment's connection to a kernel in the same process.
/// Every call still crosses the wire format, as it will over xokd's ring.
public final class LocalPort<H: Host>: KernelPort {
    public let kernel: Kernel<H>
    public let environment: EnvironmentID

    public init(kernel: Kernel<H>, environment: EnvironmentID) {
        self.kernel = kernel
        self.environment = environment
    }

    /// The request and reply as encoded, reused call after call.
    private var request = WireWriter(), reply = WireWriter()

    public func perform(_ request: KernelRequest) throws(KernelError) -> KernelReply {
        request.encode(into: &self.request)
        let result: Result<KernelReply, KernelError> = self.request.withUnsafeBytes { bytes in
            do throws(KernelError) { return .success(try kernel.handle(try KernelRequest(decoding: bytes), from: environment)) } catch { return .failure(error) }
        }
        KernelReply.encode(result, into: &reply)
        return try reply.withUnsafeBytes { (bytes) throws(KernelError) in try KernelReply(decoding: bytes) }
    }

    /// Sends raw bytes as a request (what a hostile library OS can do over a ring).
    public func perform(raw bytes: [UInt8]) throws(KernelError) -> KernelReply {
        let result: Result<KernelReply, KernelError>
        do { result = .success(try kernel.handle(try KernelRequest(decoding: bytes), from: environment)) } catch { result = .failure(error) }
        return try KernelReply(decoding: KernelReply.encode(result))
    }

    public func exposedState() -> ExposedState { kernel.exposedState }

    /// One registry entry, read in place (the snapshot `exposedState` copies megabytes).
    public func registryEntry(of block: BlockNumber) -> ExposedState.RegistryEntry? { kernel.liveExposedState.registry(block: block) }

    public func load(_ frame: FrameNumber, offset: Int, count: Int) throws(KernelError) -> [UInt8] {
        try kernel.load(frame, offset: offset, count: count, by: environment)
    }

    public func store(_ bytes: [UInt8], into frame: FrameNumber, offset: Int) throws(KernelError) {
        try kernel.store(bytes, into: frame, offset: offset, by: environment)
    }
}
