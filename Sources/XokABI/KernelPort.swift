// The exokernel boundary: the one way a library OS reaches the kernel. ExOS imports
// XokABI only, so the compiler keeps it on this side. A port carries calls as data
// (`KernelRequest` in, `KernelReply` out); the typed methods below are conveniences over
// that one primitive, so a port over a shared-memory ring (xokd) needs to implement only
// `perform` and `exposedState`.

/// A connection from one environment to the kernel.
public protocol KernelPort: AnyObject {
    /// The calling environment.
    var environment: EnvironmentID { get }
    /// Performs one call.
    /// - Throws: the call's `KernelError`; nothing changed.
    func perform(_ request: KernelRequest) throws(KernelError) -> KernelReply
    /// The exposed kernel state, read without a call (`ExposedState` gives its layout).
    func exposedState() -> ExposedState
    /// The registry entry of cached `block`, read from the exposed state without a call
    /// (and without a snapshot of the rest, where the port can read the pages in place).
    func registryEntry(of block: BlockNumber) -> ExposedState.RegistryEntry?
    /// Reads bytes of a frame bound into the environment. Not a call: an access through
    /// the binding, as a load instruction would make. Throws `notMapped` (a fault) when
    /// the frame is not bound or the range leaves the page.
    func load(_ frame: FrameNumber, offset: Int, count: Int) throws(KernelError) -> [UInt8]
    /// Writes bytes into a frame bound writable into the environment (a store); throws
    /// `notMapped` when it is not bound writable or the range leaves the page.
    func store(_ bytes: [UInt8], into frame: FrameNumber, offset: Int) throws(KernelError)
}

extension KernelPort {
    public func registryEntry(of block: BlockNumber) -> ExposedState.RegistryEntry? { exposedState().registry(block: block) }

    // Inlined into each call below, so that no call builds generic metadata at run time.
    @inline(__always)
    private func expect<T>(_ request: KernelRequest, _ extract: (KernelReply) -> T?) throws(KernelError) -> T {
        guard let value = extract(try perform(request)) else { throw .badRequest }
        return value
    }
    @inline(__always)
    private func done(_ request: KernelRequest) throws(KernelError) {
        guard case .done = try perform(request) else { throw .badRequest }
    }

    /// Derives a weaker capability into a free slot (needs nothing but the source).
    public func derive(_ source: CapabilitySlot, appending components: [UInt64] = [], rights: Rights) throws(KernelError) -> CapabilitySlot {
        try expect(.capabilityDerive(source: source, appending: components, rights: rights)) { if case .slot(let s) = $0 { s } else { nil } }
    }
    public func drop(_ slot: CapabilitySlot) throws(KernelError) { try done(.capabilityDrop(slot)) }

    /// A child with `quota` out of the caller's share (by default none: it may hold
    /// nothing of its own).
    public func createEnvironment(credential: CapabilitySlot, acl: AccessControlList, grants: [CapabilitySlot] = [],
                                  quota: Quota = .none) throws(KernelError) -> EnvironmentID {
        try expect(.environmentCreate(credential: credential, acl: acl, grants: grants, quota: quota)) { if case .environment(let e) = $0 { e } else { nil } }
    }
    public func destroy(_ environment: EnvironmentID, credential: CapabilitySlot) throws(KernelError) {
        try done(.environmentDestroy(credential: credential, environment))
    }
    public func setMessageACL(_ acl: AccessControlList) throws(KernelError) { try done(.environmentSetMessageACL(acl)) }

    public func allocateFrame(credential: CapabilitySlot, acl: AccessControlList) throws(KernelError) -> FrameNumber {
        try expect(.frameAllocate(credential: credential, acl: acl)) { if case .frame(let f) = $0 { f } else { nil } }
    }
    public func free(_ frame: FrameNumber, credential: CapabilitySlot) throws(KernelError) { try done(.frameFree(credential: credential, frame)) }
    public func setACL(_ acl: AccessControlList, of frame: FrameNumber, credential: CapabilitySlot) throws(KernelError) {
        try done(.frameSetACL(credential: credential, frame, acl))
    }
    public func map(_ frame: FrameNumber, writable: Bool, credential: CapabilitySlot) throws(KernelError) {
        try done(.frameMap(credential: credential, frame, writable: writable))
    }
    public func unmap(_ frame: FrameNumber) throws(KernelError) { try done(.frameUnmap(frame)) }
    public func revoke(_ frame: FrameNumber, graceTicks: UInt64, credential: CapabilitySlot) throws(KernelError) {
        try done(.frameRevoke(credential: credential, frame, graceTicks: graceTicks))
    }

    public func createRegion(size: Int, acl: AccessControlList, credential: CapabilitySlot) throws(KernelError) -> RegionID {
        guard let size = UInt32(exactly: size) else { throw .invalidArgument }
        return try expect(.regionCreate(credential: credential, acl: acl, size: size)) { if case .region(let r) = $0 { r } else { nil } }
    }
    public func read(_ region: RegionID, offset: Int, length: Int, credential: CapabilitySlot) throws(KernelError) -> [UInt8] {
        guard let offset = UInt32(exactly: offset), let length = UInt32(exactly: length) else { throw .outOfBounds }
        return try expect(.regionRead(credential: credential, region, offset: offset, length: length)) { if case .bytes(let b) = $0 { b } else { nil } }
    }
    public func write(_ bytes: [UInt8], to region: RegionID, offset: Int, credential: CapabilitySlot) throws(KernelError) {
        guard let offset = UInt32(exactly: offset) else { throw .outOfBounds }
        try done(.regionWrite(credential: credential, region, offset: offset, bytes: bytes))
    }
    public func destroy(_ region: RegionID, credential: CapabilitySlot) throws(KernelError) { try done(.regionDestroy(credential: credential, region)) }

    public func send(_ message: [UInt8], to target: EnvironmentID, credential: CapabilitySlot) throws(KernelError) {
        try done(.ipcSend(credential: credential, target: target, message: message))
    }
    /// The next upcall waiting, or nil.
    public func nextUpcall() throws(KernelError) -> Upcall? {
        try expect(.upcallNext) { if case .upcall(let u) = $0 { .some(u) } else { nil } }
    }

    public func sleep(until program: [UInt8], region: RegionID? = nil, credential: CapabilitySlot) throws(KernelError) {
        try done(.predicateInstall(credential: credential, program: program, region: region))
    }
    public func removePredicate() throws(KernelError) { try done(.predicateRemove) }

    public func allocate(_ slice: SliceIndex, credential: CapabilitySlot) throws(KernelError) { try done(.sliceAllocate(credential: credential, slice)) }
    public func free(_ slice: SliceIndex) throws(KernelError) { try done(.sliceFree(slice)) }
    public func yield(to target: EnvironmentID? = nil) throws(KernelError) { try done(.yield(to: target)) }

    // MARK: XN

    public func installType(named name: String, owns: [FrameSpan], acl: [FrameSpan], size: [FrameSpan], shareable: Bool = false, freedWhole: Bool = false,
                            credential: CapabilitySlot) throws(KernelError) -> TypeID {
        try expect(.xnInstallType(credential: credential, name: Array(name.utf8), owns: owns, acl: acl, size: size, shareable: shareable,
                                  freedWhole: freedWhole)) {
            if case .type(let t) = $0 { t } else { nil }
        }
    }
    public func type(named name: String) throws(KernelError) -> TypeID {
        try expect(.xnLookupType(name: Array(name.utf8))) { if case .type(let t) = $0 { t } else { nil } }
    }
    public func createRoot(named name: String, type: TypeID, protection: CapabilitySlot, frame: FrameNumber, credential: CapabilitySlot) throws(KernelError) -> BlockNumber {
        try expect(.xnCreateRoot(credential: credential, name: Array(name.utf8), type: type, protection: protection, frame: frame)) { if case .block(let b) = $0 { b } else { nil } }
    }
    public func root(named name: String) throws(KernelError) -> XNRoot {
        try expect(.xnLookupRoot(name: Array(name.utf8))) { if case .root(let r) = $0 { r } else { nil } }
    }
    /// Brings `block` into the cache in `frame`, or finds it there; the frame holding it.
    public func readIn(_ block: BlockNumber, frame: FrameNumber, credential: CapabilitySlot) throws(KernelError) -> FrameNumber {
        try expect(.xnReadIn(credential: credential, block, frame: frame)) { if case .frame(let f) = $0 { f } else { nil } }
    }
    public func read(_ block: BlockNumber, into frame: FrameNumber, credential: CapabilitySlot) throws(KernelError) {
        try done(.xnRead(credential: credential, block, into: frame))
    }
    public func map(_ block: BlockNumber, writable: Bool, credential: CapabilitySlot) throws(KernelError) -> FrameNumber {
        try expect(.xnMap(credential: credential, block, writable: writable)) { if case .frame(let f) = $0 { f } else { nil } }
    }
    /// Reads in what is not cached of `blocks` (into `frames`) and maps each read-only;
    /// the frame holding each block, in order.
    /// `count` new frames, each bound writable here.
    public func allocateFrames(_ count: Int, credential: CapabilitySlot, acl: AccessControlList) throws(KernelError) -> [FrameNumber] {
        let frames = try expect(.frameAllocateMany(credential: credential, acl: acl, count: UInt16(clamping: count))) {
            if case .frames(let f) = $0 { f } else { nil }
        }
        guard frames.count == count else { throw .badRequest }
        return frames
    }
    public func map(_ blocks: [BlockNumber], frames: [FrameNumber], credential: CapabilitySlot) throws(KernelError) -> [FrameNumber] {
        let holders = try expect(.xnMapMany(credential: credential, blocks: blocks, frames: frames)) {
            if case .frames(let f) = $0 { f } else { nil }
        }
        guard holders.count == blocks.count else { throw .badRequest }
        return holders
    }
    public func modify(_ block: BlockNumber, _ operation: XNOperation, _ changes: XNChanges, credential: CapabilitySlot) throws(KernelError) {
        try done(.xnModify(credential: credential, block, operation, changes))
    }
    /// Moves `count` bytes at `offset` of `source` to `at` of `destination`, then puts
    /// `edits` there (`xnMove`).
    public func move(from source: BlockNumber, offset: Int, count: Int, to destination: BlockNumber, at: Int, edits: XNChanges,
                     credential: CapabilitySlot) throws(KernelError) {
        let range = XNChanges.Range(offset: UInt16(clamping: offset < 0 ? Int.max : offset), length: UInt16(clamping: count < 0 ? Int.max : count))
        try done(.xnMove(credential: credential, source: source, range: range, destination: destination,
                         at: UInt16(clamping: at < 0 ? Int.max : at), edits: edits))
    }
    /// Unbinds each of `frames` here (`frameUnmapMany`).
    public func unmap(_ frames: [FrameNumber]) throws(KernelError) { try done(.frameUnmapMany(frames)) }
    public func writeData(_ block: BlockNumber, _ changes: XNChanges, credential: CapabilitySlot) throws(KernelError) {
        try done(.xnWriteData(credential: credential, block, changes))
    }
    public func writeback(_ blocks: [BlockNumber]) throws(KernelError) { try done(.xnWriteback(blocks)) }
    public func evict(_ block: BlockNumber, credential: CapabilitySlot) throws(KernelError) { try done(.xnEvict(credential: credential, block)) }
    public func firstFreeBlock(from start: BlockNumber) throws(KernelError) -> BlockNumber {
        try expect(.xnFindFree(from: start)) { if case .block(let b) = $0 { b } else { nil } }
    }
}
