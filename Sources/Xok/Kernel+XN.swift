// XN's calls (DESIGN.md §5): the kernel owns the disk and XN; a library file system
// reaches them only through these calls. The kernel takes the caller's identity from the
// port and its credential from its own capability list, checks the frames a call names
// against its own records, charges blocks and catalogue entries to the caller's quota, and
// hands XN only what it has checked. Block contents and UDFs travel in frames.

import XN
import XokABI

extension Kernel {
    /// Mounts `disk` (formatting it first when `format`), and gives init the disk's blocks
    /// and catalogue entries as quota. `checks: false` is for the benchmark alone.
    /// - Throws: what XN's mount or format throws.
    public func mountDisk(_ disk: H.Disk, format: Bool, checks: Bool = true) throws(XNError) {
        guard xn == nil else { throw .device("a disk is mounted already") }
        let mounted = format ? try XN.format(disk, memory: host.memory, checks: checks) : try XN.mount(disk, memory: host.memory, checks: checks)
        xn = mounted
        if environmentIndex(initEnvironment) != nil {
            self[initEnvironment].quota.blocks = mounted.geometry.blockCount
            self[initEnvironment].quota.catalogueEntries = UInt32(XNLayout.typesMax + mounted.geometry.rootsMax)
        }
        publish()
    }

    /// Writes every dirty block back and unmounts the disk, returning it. The cache's
    /// frames go back, zeroed, to the environments that gave them (or are freed), and the
    /// registry empties.
    /// - Throws: `device` when the disk fails.
    public func shutdown() throws(XNError) -> H.Disk? {
        guard let xn else { return nil }
        let disk = try xn.unmount()
        let cached = xn.cachedBlocks
        self.xn = nil
        for (number, record) in frames.enumerated() where record?.cached == true {
            let frame = FrameNumber(rawValue: UInt32(number))
            unbindAll(frame, telling: true)
            frames[number]!.cached = false
            host.memory.zero(frame)
            if record!.owner == nil { releaseFrame(frame) }
        }
        for block in cached {
            guard let frame = published.removeValue(forKey: block) else { continue }
            let at = layout.registry + Int(frame.rawValue) * ExposedState.registryEntryBytes
            for i in 0..<ExposedState.registryEntryBytes { exposed[at + i] = 0 }
        }
        for slot in 0..<layout.indexSlots { put32(0, layout.index + 4 * slot) }
        for offset in [ExposedState.diskBlocksOffset, ExposedState.diskFreeOffset] { put64(0, offset) }
        for offset in [ExposedState.cachedBlocksOffset, ExposedState.dirtyBlocksOffset] { put32(0, offset) }
        publish()
        return disk
    }

    /// Republishes what XN changed and takes back the frames that left its cache: each
    /// goes back, zeroed and unbound, to the environment it is charged to, or is freed.
    func applyXNEvents(_ xn: XN<H.Disk, H.Memory>) {
        let (changed, released) = xn.drainEvents()
        guard !changed.isEmpty || !released.isEmpty else { return }
        for r in released {
            let frame = r.frame
            guard frames[Int(frame.rawValue)] != nil else { continue }
            unbindAll(frame, telling: true)
            frames[Int(frame.rawValue)]!.cached = false
            host.memory.zero(frame)
            if let owner = frames[Int(frame.rawValue)]!.owner, environmentIndex(owner) != nil {
                continue
            }
            releaseFrame(frame)
        }
        publishRegistry(changed, xn)
    }

    /// The disk's XN.
    func mounted() throws(KernelError) -> XN<H.Disk, H.Memory> {
        guard let xn else { throw .noDisk }
        return xn
    }

    /// A frame `caller` owns and may give to the buffer cache: not cached already, bound
    /// by no one else, not being revoked. Its own binding is removed (it maps the block
    /// through `xnMap` afterwards).
    func checkGivableFrame(_ caller: EnvironmentID, _ frame: FrameNumber) throws(KernelError) {
        guard Int(frame.rawValue) < frames.count, let record = frames[Int(frame.rawValue)], record.owner == caller else { throw .noSuchFrame }
        guard !record.cached, record.revocationDeadline == nil, record.bindings.keys.allSatisfy({ $0 == caller }) else { throw .busy }
    }

    func giveToCache(_ caller: EnvironmentID, _ frame: FrameNumber) {
        unbindAll(frame, telling: false, askedBy: caller)
        frames[Int(frame.rawValue)]!.cached = true
    }

    /// The bytes of a frame bound into `caller` (writable, when `forWriting`).
    /// - Throws: `notMapped`.
    func boundBytes(_ caller: EnvironmentID, _ frame: FrameNumber, forWriting: Bool = false) throws(KernelError) -> UnsafeMutableRawBufferPointer {
        guard let writable = self[caller].bindings[frame], writable || !forWriting else { throw .notMapped }
        return host.memory.bytes(of: frame)
    }

    /// The first `span.length` bytes of a frame bound into `caller`, at most `max`.
    func spanBytes(_ caller: EnvironmentID, _ span: FrameSpan, max: Int) throws(KernelError) -> [UInt8] {
        guard Int(span.length) <= max else { throw .invalidArgument }
        let bytes = try boundBytes(caller, span.frame)
        return Array(UnsafeRawBufferPointer(rebasing: bytes[0..<Int(span.length)]))
    }

    /// The bytes of `spans`, one after another: each at most a page, all at most `max`.
    func spanBytes(_ caller: EnvironmentID, _ spans: [FrameSpan], max: Int) throws(KernelError) -> [UInt8] {
        guard spans.count <= KernelLimits.udfFramesMax else { throw .invalidArgument }
        var result: [UInt8] = []
        for span in spans {
            guard Int(span.length) <= max - result.count else { throw .invalidArgument }
            result += try spanBytes(caller, span, max: KernelLimits.pageBytes)
        }
        return result
    }

    /// `changes` as XN's modifications, each range inside a block.
    /// - Throws: `invalidArgument` (a range past the block, inline bytes that do not
    ///   match the ranges, bytes both inline and in a frame); `notMapped` (the source).
    func modifications(_ caller: EnvironmentID, _ changes: XNChanges) throws(KernelError) -> [Modification] {
        guard changes.ranges.count <= KernelLimits.xnChangesMax else { throw .invalidArgument }
        var total = 0
        for r in changes.ranges {
            guard Int(r.offset) + Int(r.length) <= KernelLimits.pageBytes else { throw .invalidArgument }
            total += Int(r.length)
        }
        var result: [Modification] = []
        if let source = changes.source {
            guard changes.bytes.isEmpty else { throw .invalidArgument }
            let bytes = try boundBytes(caller, source)
            for r in changes.ranges {
                result.append(Modification(offset: Int(r.offset), bytes: Array(UnsafeRawBufferPointer(rebasing: bytes[Int(r.offset)..<Int(r.offset) + Int(r.length)]))))
            }
        } else {
            guard total == changes.bytes.count, total <= KernelLimits.xnInlineBytesMax else { throw .invalidArgument }
            var at = 0
            for r in changes.ranges {
                result.append(Modification(offset: Int(r.offset), bytes: Array(changes.bytes[at..<at + Int(r.length)])))
                at += Int(r.length)
            }
        }
        return result
    }

    /// An allocation: the frames must be the caller's to give (XN refuses a frame named
    /// twice), and the blocks are charged to it.
    private func allocate(_ block: BlockNumber, _ mods: [Modification], _ operation: XNOperation, frames: [FrameNumber],
                          credential: Capability, _ caller: EnvironmentID, _ xn: XN<H.Disk, H.Memory>) throws(KernelError) {
        for frame in frames { try checkGivableFrame(caller, frame) }
        let charged = Quota(blocks: UInt64(frames.count))
        try charge(caller, charged)
        do {
            try xn.modify(block, mods, operation: operation, credential: credential, by: caller)
        } catch {
            refund(caller, charged)
            throw error.kernelError
        }
        switch operation {
        case .allocate(let child, _, _): blockCharges.charge([child], to: caller)
        case .allocateMany(let children, _, _): blockCharges.charge(children, to: caller)
        default: break
        }
        // A batch's data blocks are their frames as the caller filled them: its bindings
        // stay, as an `xnMap` would have made them (XN counts the allocation as its change).
        if case .allocateMany(_, .data, _) = operation {
            for frame in frames { self.frames[Int(frame.rawValue)]!.cached = true }
        } else {
            for frame in frames { giveToCache(caller, frame) }
        }
    }

    /// Returns each freed block's charge to the environment it is charged to, or to the
    /// living ancestor that inherited it; a block from before the mount was charged to no
    /// one, and returns nothing.
    func refundBlocks(_ freed: [BlockNumber]) {
        for (environment, count) in blockCharges.release(freed) { refund(environment, Quota(blocks: UInt64(count))) }
    }

    func dispatchXN(_ request: KernelRequest, from caller: EnvironmentID) throws(KernelError) -> KernelReply {
        let xn = try mounted()
        // A path may be passed with any capability the caller holds (XN+Paths.swift).
        xn.pathCredentials = self[caller].capabilities
        defer { xn.pathCredentials = [] }
        do {
            switch request {
            case .xnInstallType(let credential, let name, let owns, let acl, let size, let shareable, let freedWhole):
                try authorize(caller, credential, systemACLs.types, .write)
                let codes = [try spanBytes(caller, owns, max: KernelLimits.udfBytesMax), try spanBytes(caller, acl, max: KernelLimits.udfBytesMax),
                             try spanBytes(caller, size, max: KernelLimits.udfBytesMax)]
                try charge(caller, Quota(catalogueEntries: 1))
                do {
                    return .type(try xn.installTemplate(name: name, owns: codes[0], acl: codes[1], size: codes[2], shareable: shareable, freedWhole: freedWhole))
                } catch {
                    refund(caller, Quota(catalogueEntries: 1))
                    throw error
                }
            case .xnLookupType(let name):
                guard let type = xn.type(named: name) else { throw KernelError.noSuchType }
                return .type(type)
            case .xnCreateRoot(let credential, let name, let type, let protection, let frame):
                try authorize(caller, credential, systemACLs.roots, .write)
                let capability = try capability(caller, protection)
                try checkGivableFrame(caller, frame)
                try charge(caller, Quota(blocks: 1, catalogueEntries: 1))
                do {
                    let block = try xn.createRoot(name: name, type: type, capability: capability, frame: frame, by: caller)
                    blockCharges.charge([block], to: caller)
                    giveToCache(caller, frame)
                    return .block(block)
                } catch {
                    refund(caller, Quota(blocks: 1, catalogueEntries: 1))
                    throw error
                }
            case .xnLookupRoot(let name):
                let root = try xn.root(named: name)
                return .root(XNRoot(block: root.block, type: root.type, capability: root.capability))
            case .xnReadIn(let credential, let block, let frame):
                let c = try capability(caller, credential)
                try checkGivableFrame(caller, frame)
                if let cached = xn.registryEntry(block) {
                    try xn.authorizeAccess(block, credential: c, .read)
                    return .frame(cached.frame)
                }
                let holder = try xn.readIn(block, frame: frame, credential: c, by: caller)
                giveToCache(caller, frame)
                return .frame(holder)
            case .xnRead(let credential, let block, let into):
                let c = try capability(caller, credential)
                let target = try boundBytes(caller, into, forWriting: true)
                try xn.authorizeAccess(block, credential: c, .read)
                guard let entry = xn.registryEntry(block) else { throw KernelError.notCached }
                target.copyMemory(from: UnsafeRawBufferPointer(host.memory.bytes(of: entry.frame)))
                return .done
            case .xnMap(let credential, let block, let writable):
                let c = try capability(caller, credential)
                if self[caller].bindings.count >= KernelLimits.bindingsMax { throw KernelError.limitExceeded }
                let frame = try xn.mappableFrame(block, writable: writable, credential: c, by: caller)
                try bind(frame, into: caller, writable: writable)
                return .frame(frame)
            case .xnModify(let credential, let block, let operation, let changes):
                let c = try capability(caller, credential)
                let mods = try modifications(caller, changes)
                switch operation {
                case .write, .swap, .link: try xn.modify(block, mods, operation: operation, credential: c, by: caller)
                case .free, .freeMany:
                    // A shared block's name going frees nothing; its last name, the whole file.
                    let freed = try xn.modify(block, mods, operation: operation, credential: c, by: caller)
                    refundBlocks(freed)
                case .allocate(_, _, let frame):
                    try allocate(block, mods, operation, frames: [frame], credential: c, caller, xn)
                case .allocateMany(_, _, let frames):
                    try allocate(block, mods, operation, frames: frames, credential: c, caller, xn)
                }
                return .done
            case .xnMove(let credential, let source, let range, let destination, let at, let edits):
                let c = try capability(caller, credential)
                try xn.move(from: source, offset: Int(range.offset), count: Int(range.length), to: destination, at: Int(at),
                            edits: try modifications(caller, edits), credential: c, by: caller)
                return .done
            case .xnWriteData(let credential, let block, let changes):
                let c = try capability(caller, credential)
                try xn.writeData(block, try modifications(caller, changes), credential: c, by: caller)
                return .done
            case .xnWriteback(let blocks):
                guard blocks.count <= KernelLimits.xnWritebackBlocksMax else { throw KernelError.invalidArgument }
                try xn.writeback(blocks, by: caller)
                return .done
            case .xnEvict(let credential, let block):
                try xn.evict(block, credential: try capability(caller, credential), by: caller)
                return .done
            case .xnMapMany(let credential, let blocks, let given):
                let c = try capability(caller, credential)
                guard self[caller].bindings.count + blocks.count <= KernelLimits.bindingsMax else { throw KernelError.limitExceeded }
                for frame in given { try checkGivableFrame(caller, frame) }
                let holders = try xn.readIn(blocks, frames: given, credential: c, by: caller)
                for (frame, holder) in zip(given, holders) where frame == holder { giveToCache(caller, frame) }
                // A block the caller has mapped already keeps its mapping (a writable one
                // stays writable).
                for holder in holders where self[caller].bindings[holder] == nil { try bind(holder, into: caller, writable: false) }
                return .frames(holders)
            case .xnFindFree(let from):
                guard let block = xn.firstFree(from: from) else { throw KernelError.exhausted }
                return .block(block)
            default:
                throw KernelError.badRequest
            }
        } catch let error as KernelError {
            throw error
        } catch let error as XNError {
            throw error.kernelError
        } catch {
            throw .badRequest
        }
    }
}

extension XNError {
    /// The kernel error a call reports for it.
    public var kernelError: KernelError {
        switch self {
        case .notXN, .corruptImage, .device, .deviceTooSmall: .ioError
        case .templateRejected: .programRejected
        case .unknownType: .noSuchType
        case .catalogueFull, .noSpace: .exhausted
        case .nameTaken: .nameTaken
        case .noSuchRoot: .noSuchRoot
        case .notMetadata, .notData: .noSuchBlock
        case .badModification, .badName: .invalidArgument
        case .aclDenied, .notOwner: .permissionDenied
        case .udfFailed: .udfFailed
        case .invalidPointer: .invalidPointer
        case .pointerInvented: .pointerInvented
        case .pointerLost: .pointerLost
        case .notFree: .notFree
        case .notEmpty: .notEmpty
        case .notAChild: .notAChild
        case .tainted: .tainted
        case .notCached: .notCached
        case .dirty, .moving: .busy
        case .cycle, .destinationInUse, .notShareable: .invalidArgument
        }
    }
}

/// Which environment each block is charged to, both ways round, so that a free refunds
/// whoever was charged and a death hands an environment's charges to its parent, each in
/// time that grows with the blocks concerned only.
struct BlockCharges {
    private var owner: [BlockNumber: EnvironmentID] = [:]
    private var held: [EnvironmentID: Set<BlockNumber>] = [:]

    mutating func charge(_ blocks: [BlockNumber], to environment: EnvironmentID) {
        for block in blocks {
            owner[block] = environment
            held[environment, default: []].insert(block)
        }
    }

    /// Forgets `blocks`' charges; how many each environment had among them.
    mutating func release(_ blocks: [BlockNumber]) -> [(EnvironmentID, Int)] {
        var counts: [EnvironmentID: Int] = [:]
        for block in blocks {
            guard let environment = owner.removeValue(forKey: block) else { continue }
            held[environment]?.remove(block)
            if held[environment]?.isEmpty == true { held[environment] = nil }
            counts[environment, default: 0] += 1
        }
        return counts.sorted { $0.key.rawValue < $1.key.rawValue }.map { ($0.key, $0.value) }
    }

    /// `environment` died: its charges are `heir`'s.
    mutating func bequeath(_ environment: EnvironmentID, to heir: EnvironmentID) {
        guard let blocks = held.removeValue(forKey: environment) else { return }
        for block in blocks { owner[block] = heir }
        held[heir, default: []].formUnion(blocks)
    }

    /// The environment `block` is charged to, if any.
    func chargedTo(_ block: BlockNumber) -> EnvironmentID? { owner[block] }
    /// How many blocks `environment` is charged for.
    func count(of environment: EnvironmentID) -> Int { held[environment]?.count ?? 0 }
}
