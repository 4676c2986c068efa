// The Xok kernel core: it protects resources and manages none of them (DESIGN.md §3).
// Every call names its credential; every object carries an ACL; every resource is
// counted against the environment that holds it and returned when it dies. All state is
// kept in arrays or iterated in sorted order, so a run is a function of its inputs.

import BPF
import XokABI

/// The kernel. Generic over the machine it runs on.
public final class Kernel<H: Host> {
    /// The machine. Public so a trusted harness (the simulation, `xokd`) can drive it.
    public var host: H
    /// Who may create environments, frames, regions and slices.
    public let systemACLs: SystemACLs

    var environments: [EnvironmentRecord?] = Array(repeating: nil, count: KernelLimits.environmentsMax)
    var frames: [FrameRecord?]
    var regions: [RegionID: RegionRecord] = [:]
    var sliceVector: [EnvironmentID?] = Array(repeating: nil, count: KernelLimits.slices)
    var nextEnvironment: UInt32 = 1
    var nextRegion: UInt32 = 1
    /// The slice being run, and the environment running in it (after a directed yield,
    /// not always the slice's owner).
    public internal(set) var currentSlice: SliceIndex?
    public internal(set) var running: EnvironmentID?
    var exposed: [UInt8] = Array(repeating: 0, count: ExposedState.bytes)
    var generation: UInt64 = 0
    /// The exposed-state generation and region versions predicates were last run against.
    var predicatesEvaluatedAt: UInt64 = .max

    /// The first environment, holding the root capability in slot 0.
    public private(set) var initEnvironment = EnvironmentID(rawValue: 0)

    /// Boots a kernel on `host` with one environment, `init`, whose slot 0 holds
    /// `Capability.root`.
    public init(host: H, systemACLs: SystemACLs = .standard) {
        self.host = host
        self.systemACLs = systemACLs
        frames = Array(repeating: nil, count: host.frameCount)
        initEnvironment = makeEnvironment(parent: nil, acl: try! AccessControlList([.root]), capabilities: [.root])!
        publish()
    }

    /// Handles one call from `caller`.
    /// - Throws: the call's `KernelError` (docs/kernel-interface.md lists them per call);
    ///   when it throws, nothing changed.
    public func handle(_ request: KernelRequest, from caller: EnvironmentID) throws(KernelError) -> KernelReply {
        guard environmentIndex(caller) != nil else { throw .noSuchEnvironment }
        let reply = try dispatch(request, from: caller)
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
        case .environmentCreate(let credential, let acl, let grants):
            return .environment(try createEnvironment(caller, credential, acl: acl, grants: grants))
        case .environmentDestroy(let credential, let target):
            try destroyEnvironment(caller, credential, target)
            return .done
        case .environmentSetMessageACL(let acl):
            self[caller].messageACL = acl
            return .done
        case .frameAllocate(let credential, let acl):
            return .frame(try allocateFrame(caller, credential, acl: acl))
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
            return .done
        case .yield(let target):
            try yield(caller, to: target)
            return .done
        }
    }

    /// The exposed state as environments read it.
    public var exposedState: ExposedState { ExposedState(raw: exposed) }
}

/// Who may create each kind of object: the kernel's own ACLs. A credential needs write on
/// the relevant one.
public struct SystemACLs: Sendable {
    public var environments: AccessControlList
    public var frames: AccessControlList
    public var regions: AccessControlList
    public var slices: AccessControlList

    /// The names `[1]` (environments), `[2]` (frames), `[3]` (regions) and `[4]` (slices),
    /// each with write: a capability named `[2]` or any prefix of it (the root) may
    /// allocate frames.
    public static let standard = SystemACLs(
        environments: try! AccessControlList([Capability(name: [SystemACLs.environmentsName], rights: .write)]),
        frames: try! AccessControlList([Capability(name: [SystemACLs.framesName], rights: .write)]),
        regions: try! AccessControlList([Capability(name: [SystemACLs.regionsName], rights: .write)]),
        slices: try! AccessControlList([Capability(name: [SystemACLs.slicesName], rights: .write)]))

    public static let environmentsName: UInt64 = 1
    public static let framesName: UInt64 = 2
    public static let regionsName: UInt64 = 3
    public static let slicesName: UInt64 = 4

    public init(environments: AccessControlList, frames: AccessControlList, regions: AccessControlList, slices: AccessControlList) {
        self.environments = environments
        self.frames = frames
        self.regions = regions
        self.slices = slices
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

    public func perform(_ request: KernelRequest) throws(KernelError) -> KernelReply {
        let result: Result<KernelReply, KernelError>
        do {
            let decoded = try KernelRequest(decoding: request.encoded)
            result = .success(try kernel.handle(decoded, from: environment))
        } catch {
            result = .failure(error)
        }
        return try KernelReply(decoding: KernelReply.encode(result))
    }

    /// Sends raw bytes as a request (what a hostile library OS can do over a ring).
    public func perform(raw bytes: [UInt8]) throws(KernelError) -> KernelReply {
        let result: Result<KernelReply, KernelError>
        do { result = .success(try kernel.handle(try KernelRequest(decoding: bytes), from: environment)) } catch { result = .failure(error) }
        return try KernelReply(decoding: KernelReply.encode(result))
    }

    public func exposedState() -> ExposedState { kernel.exposedState }
}
