// The call set's wire encoding (layout in Calls.swift). Encoding never traps, whatever
// the request holds; decoding checks every field and refuses anything out of range with
// `badRequest`, so bytes from a hostile library OS never reach the kernel malformed.

extension WireWriter {
    public mutating func quota(_ q: Quota) {
        u32(q.environments); u32(q.frames); u32(q.regions); u32(q.slices); u32(q.messages); u64(q.blocks); u32(q.catalogueEntries)
    }
    public mutating func span(_ s: FrameSpan) { u32(s.frame.rawValue); u32(s.length) }
    public mutating func spans(_ s: [FrameSpan]) { u8(UInt8(truncatingIfNeeded: s.count)); for span in s { self.span(span) } }
    public mutating func changes(_ c: XNChanges) {
        count16(c.ranges.count)
        for r in c.ranges { u16(r.offset); u16(r.length) }
        bool(c.source != nil); u32(c.source?.rawValue ?? 0)
        data(c.bytes)
    }
    public mutating func operation(_ o: XNOperation) {
        switch o {
        case .write: u8(0)
        case .allocate(let block, let type, let frame): u8(1); u64(block); u32(type.rawValue); u32(frame.rawValue)
        case .free(let block): u8(2); u64(block)
        case .swap: u8(3)
        case .allocateMany(let blocks, let type, let frames):
            u8(4); count16(blocks.count); for b in blocks { u64(b) }; u32(type.rawValue)
            count16(frames.count); for f in frames { u32(f.rawValue) }
        case .freeMany(let blocks): u8(5); count16(blocks.count); for b in blocks { u64(b) }
        case .link(let block): u8(6); u64(block)
        }
    }
}

extension WireReader {
    public mutating func quota() throws(KernelError) -> Quota {
        Quota(environments: try u32(), frames: try u32(), regions: try u32(), slices: try u32(), messages: try u32(),
              blocks: try u64(), catalogueEntries: try u32())
    }
    public mutating func span() throws(KernelError) -> FrameSpan { FrameSpan(frame: FrameNumber(rawValue: try u32()), length: try u32()) }
    public mutating func spans() throws(KernelError) -> [FrameSpan] {
        let count = Int(try u8())
        guard count >= 1, count <= KernelLimits.udfFramesMax else { throw .badRequest }
        var result: [FrameSpan] = []
        for _ in 0..<count { result.append(try span()) }
        return result
    }
    public mutating func name() throws(KernelError) -> [UInt8] { try data(max: KernelLimits.xnNameBytesMax) }
    public mutating func changes() throws(KernelError) -> XNChanges {
        let count = Int(try u16())
        guard count <= KernelLimits.xnChangesMax else { throw .badRequest }
        var ranges: [XNChanges.Range] = []
        for _ in 0..<count { ranges.append(XNChanges.Range(offset: try u16(), length: try u16())) }
        let hasSource = try bool(), source = FrameNumber(rawValue: try u32())
        let bytes = try data(max: KernelLimits.xnInlineBytesMax)
        return XNChanges(ranges: ranges, bytes: bytes, source: hasSource ? source : nil)
    }
    public mutating func operation() throws(KernelError) -> XNOperation {
        switch try u8() {
        case 0: return .write
        case 1: return .allocate(try u64(), TypeID(rawValue: try u32()), frame: FrameNumber(rawValue: try u32()))
        case 2: return .free(try u64())
        case 3: return .swap
        case 4:
            let blocks = try batch { (r: inout WireReader) throws(KernelError) in try r.u64() }
            let type = TypeID(rawValue: try u32())
            return .allocateMany(blocks, type, frames: try batch { (r: inout WireReader) throws(KernelError) in FrameNumber(rawValue: try r.u32()) })
        case 5: return .freeMany(try batch { (r: inout WireReader) throws(KernelError) in try r.u64() })
        case 6: return .link(try u64())
        default: throw .badRequest
        }
    }
    /// A count, at most `KernelLimits.xnBatchMax`, then that many items.
    public mutating func batch<T>(_ item: (inout WireReader) throws(KernelError) -> T) throws(KernelError) -> [T] {
        let count = Int(try u16())
        guard count <= KernelLimits.xnBatchMax else { throw .badRequest }
        var result: [T] = []
        result.reserveCapacity(count)
        for _ in 0..<count { result.append(try item(&self)) }
        return result
    }
    public mutating func blocks() throws(KernelError) -> [BlockNumber] {
        let count = Int(try u16())
        guard count <= KernelLimits.xnWritebackBlocksMax else { throw .badRequest }
        var result: [BlockNumber] = []
        for _ in 0..<count { result.append(try u64()) }
        return result
    }
}

extension KernelRequest {
    /// Which call this is.
    public var call: KernelCall {
        switch self {
        case .capabilityDerive: .capabilityDerive
        case .capabilityDrop: .capabilityDrop
        case .environmentCreate: .environmentCreate
        case .environmentDestroy: .environmentDestroy
        case .environmentSetMessageACL: .environmentSetMessageACL
        case .frameAllocate: .frameAllocate
        case .frameFree: .frameFree
        case .frameSetACL: .frameSetACL
        case .frameMap: .frameMap
        case .frameUnmap: .frameUnmap
        case .frameRevoke: .frameRevoke
        case .regionCreate: .regionCreate
        case .regionRead: .regionRead
        case .regionWrite: .regionWrite
        case .regionDestroy: .regionDestroy
        case .ipcSend: .ipcSend
        case .upcallNext: .upcallNext
        case .predicateInstall: .predicateInstall
        case .predicateRemove: .predicateRemove
        case .sliceAllocate: .sliceAllocate
        case .sliceFree: .sliceFree
        case .yield: .yield
        case .xnInstallType: .xnInstallType
        case .xnLookupType: .xnLookupType
        case .xnCreateRoot: .xnCreateRoot
        case .xnLookupRoot: .xnLookupRoot
        case .xnReadIn: .xnReadIn
        case .xnRead: .xnRead
        case .xnMap: .xnMap
        case .xnModify: .xnModify
        case .xnWriteData: .xnWriteData
        case .xnWriteback: .xnWriteback
        case .xnEvict: .xnEvict
        case .xnFindFree: .xnFindFree
        case .xnMapMany: .xnMapMany
        case .frameAllocateMany: .frameAllocateMany
        case .xnMove: .xnMove
        case .frameUnmapMany: .frameUnmapMany
        case .frameLoad: .frameLoad
        case .frameStore: .frameStore
        }
    }

    /// The request on the wire.
    public var encoded: [UInt8] {
        var w = WireWriter()
        encode(into: &w)
        return w.bytes
    }

    /// Appends the request's encoding to `p` (emptied first).
    public func encode(into p: inout WireWriter) {
        p.removeAll()
        p.u16(kernelCallVersion); p.u16(call.rawValue); p.u32(0)
        switch self {
        case .capabilityDerive(let source, let appending, let rights):
            p.u16(source.rawValue); p.count16(appending.count); for c in appending { p.u64(c) }; p.u8(rights.rawValue)
        case .capabilityDrop(let slot): p.u16(slot.rawValue)
        case .environmentCreate(let credential, let acl, let grants, let quota):
            p.u16(credential.rawValue); p.acl(acl); p.count16(grants.count); for g in grants { p.u16(g.rawValue) }; p.quota(quota)
        case .environmentDestroy(let credential, let env): p.u16(credential.rawValue); p.u32(env.rawValue)
        case .environmentSetMessageACL(let acl): p.acl(acl)
        case .frameAllocate(let credential, let acl): p.u16(credential.rawValue); p.acl(acl)
        case .frameFree(let credential, let frame): p.u16(credential.rawValue); p.u32(frame.rawValue)
        case .frameSetACL(let credential, let frame, let acl): p.u16(credential.rawValue); p.u32(frame.rawValue); p.acl(acl)
        case .frameMap(let credential, let frame, let writable): p.u16(credential.rawValue); p.u32(frame.rawValue); p.bool(writable)
        case .frameUnmap(let frame): p.u32(frame.rawValue)
        case .frameRevoke(let credential, let frame, let grace): p.u16(credential.rawValue); p.u32(frame.rawValue); p.u64(grace)
        case .regionCreate(let credential, let acl, let size): p.u16(credential.rawValue); p.acl(acl); p.u32(size)
        case .regionRead(let credential, let region, let offset, let length):
            p.u16(credential.rawValue); p.u32(region.rawValue); p.u32(offset); p.u32(length)
        case .regionWrite(let credential, let region, let offset, let bytes):
            p.u16(credential.rawValue); p.u32(region.rawValue); p.u32(offset); p.data(bytes)
        case .regionDestroy(let credential, let region): p.u16(credential.rawValue); p.u32(region.rawValue)
        case .ipcSend(let credential, let target, let message): p.u16(credential.rawValue); p.u32(target.rawValue); p.data(message)
        case .upcallNext, .predicateRemove: break
        case .predicateInstall(let credential, let program, let region):
            p.u16(credential.rawValue); p.data(program); p.bool(region != nil); p.u32(region?.rawValue ?? 0)
        case .sliceAllocate(let credential, let slice): p.u16(credential.rawValue); p.u32(slice.rawValue)
        case .sliceFree(let slice): p.u32(slice.rawValue)
        case .yield(let target): p.bool(target != nil); p.u32(target?.rawValue ?? 0)
        case .xnInstallType(let credential, let name, let owns, let acl, let size, let shareable, let freedWhole):
            p.u16(credential.rawValue); p.data(name); p.spans(owns); p.spans(acl); p.spans(size); p.u8((shareable ? 1 : 0) | (freedWhole ? 2 : 0))
        case .xnLookupType(let name), .xnLookupRoot(let name): p.data(name)
        case .xnCreateRoot(let credential, let name, let type, let protection, let frame):
            p.u16(credential.rawValue); p.data(name); p.u32(type.rawValue); p.u16(protection.rawValue); p.u32(frame.rawValue)
        case .xnReadIn(let credential, let block, let frame), .xnRead(let credential, let block, let frame):
            p.u16(credential.rawValue); p.u64(block); p.u32(frame.rawValue)
        case .xnMap(let credential, let block, let writable): p.u16(credential.rawValue); p.u64(block); p.bool(writable)
        case .xnModify(let credential, let block, let operation, let changes):
            p.u16(credential.rawValue); p.u64(block); p.operation(operation); p.changes(changes)
        case .xnWriteData(let credential, let block, let changes): p.u16(credential.rawValue); p.u64(block); p.changes(changes)
        case .xnWriteback(let blocks): p.count16(blocks.count); for b in blocks { p.u64(b) }
        case .xnEvict(let credential, let block): p.u16(credential.rawValue); p.u64(block)
        case .xnFindFree(let from): p.u64(from)
        case .xnMapMany(let credential, let blocks, let frames):
            p.u16(credential.rawValue); p.count16(blocks.count); for b in blocks { p.u64(b) }
            p.count16(frames.count); for f in frames { p.u32(f.rawValue) }
        case .frameAllocateMany(let credential, let acl, let count): p.u16(credential.rawValue); p.acl(acl); p.u16(count)
        case .xnMove(let credential, let source, let range, let destination, let at, let edits):
            p.u16(credential.rawValue); p.u64(source); p.u16(range.offset); p.u16(range.length); p.u64(destination); p.u16(at); p.changes(edits)
        case .frameUnmapMany(let frames): p.count16(frames.count); for f in frames { p.u32(f.rawValue) }
        case .frameLoad(let frame, let offset, let count): p.u32(frame.rawValue); p.u16(offset); p.u16(count)
        case .frameStore(let frame, let offset, let bytes): p.u32(frame.rawValue); p.u16(offset); p.data(bytes)
        }
        p.patch32(UInt32(truncatingIfNeeded: p.count - 8), at: 4)
    }

    /// Decodes a request.
    /// - Throws: `badRequest` for another version, an unknown call, a length that does not
    ///   match, or any field out of its range.
    public init(decoding bytes: [UInt8]) throws(KernelError) {
        self = try decodingInPlace(bytes) { (raw) throws(KernelError) in try KernelRequest(decoding: raw) }
    }

    /// Decodes a request from bytes lent in place (the caller has copied them where the
    /// sender cannot change them).
    public init(decoding bytes: UnsafeRawBufferPointer) throws(KernelError) {
        guard bytes.count <= KernelLimits.messageWireBytesMax else { throw .badRequest }
        var r = WireReader(bytes)
        guard try r.u16() == kernelCallVersion else { throw .badRequest }
        guard let call = KernelCall(rawValue: try r.u16()) else { throw .badRequest }
        guard Int(try r.u32()) == bytes.count - 8 else { throw .badRequest }
        switch call {
        case .capabilityDerive:
            let source = try r.slot(), appending = try r.components(), rights = Rights(rawValue: try r.u8())
            guard Rights.all.isSuperset(of: rights) else { throw .badRequest }
            self = .capabilityDerive(source: source, appending: appending, rights: rights)
        case .capabilityDrop: self = .capabilityDrop(try r.slot())
        case .environmentCreate: self = .environmentCreate(credential: try r.slot(), acl: try r.acl(), grants: try r.slots(), quota: try r.quota())
        case .environmentDestroy: self = .environmentDestroy(credential: try r.slot(), EnvironmentID(rawValue: try r.u32()))
        case .environmentSetMessageACL: self = .environmentSetMessageACL(try r.acl())
        case .frameAllocate: self = .frameAllocate(credential: try r.slot(), acl: try r.acl())
        case .frameFree: self = .frameFree(credential: try r.slot(), FrameNumber(rawValue: try r.u32()))
        case .frameSetACL: self = .frameSetACL(credential: try r.slot(), FrameNumber(rawValue: try r.u32()), try r.acl())
        case .frameMap: self = .frameMap(credential: try r.slot(), FrameNumber(rawValue: try r.u32()), writable: try r.bool())
        case .frameUnmap: self = .frameUnmap(FrameNumber(rawValue: try r.u32()))
        case .frameRevoke: self = .frameRevoke(credential: try r.slot(), FrameNumber(rawValue: try r.u32()), graceTicks: try r.u64())
        case .regionCreate: self = .regionCreate(credential: try r.slot(), acl: try r.acl(), size: try r.u32())
        case .regionRead: self = .regionRead(credential: try r.slot(), RegionID(rawValue: try r.u32()), offset: try r.u32(), length: try r.u32())
        case .regionWrite: self = .regionWrite(credential: try r.slot(), RegionID(rawValue: try r.u32()), offset: try r.u32(),
                                               bytes: try r.data(max: KernelLimits.regionBytesMax))
        case .regionDestroy: self = .regionDestroy(credential: try r.slot(), RegionID(rawValue: try r.u32()))
        case .ipcSend: self = .ipcSend(credential: try r.slot(), target: EnvironmentID(rawValue: try r.u32()),
                                       message: try r.data(max: KernelLimits.messageBytesMax))
        case .upcallNext: self = .upcallNext
        case .predicateInstall:
            let credential = try r.slot(), program = try r.data(max: KernelLimits.predicateBytesMax)
            let hasRegion = try r.bool(), region = RegionID(rawValue: try r.u32())
            self = .predicateInstall(credential: credential, program: program, region: hasRegion ? region : nil)
        case .predicateRemove: self = .predicateRemove
        case .sliceAllocate: self = .sliceAllocate(credential: try r.slot(), SliceIndex(rawValue: try r.u32()))
        case .sliceFree: self = .sliceFree(SliceIndex(rawValue: try r.u32()))
        case .yield:
            let hasTarget = try r.bool(), target = EnvironmentID(rawValue: try r.u32())
            self = .yield(to: hasTarget ? target : nil)
        case .xnInstallType:
            let (credential, name, owns, acl, size) = (try r.slot(), try r.name(), try r.spans(), try r.spans(), try r.spans())
            let flags = try r.u8()
            guard flags <= 3 else { throw .badRequest }
            self = .xnInstallType(credential: credential, name: name, owns: owns, acl: acl, size: size, shareable: flags & 1 != 0,
                                  freedWhole: flags & 2 != 0)
        case .xnLookupType: self = .xnLookupType(name: try r.name())
        case .xnCreateRoot:
            self = .xnCreateRoot(credential: try r.slot(), name: try r.name(), type: TypeID(rawValue: try r.u32()), protection: try r.slot(),
                                 frame: FrameNumber(rawValue: try r.u32()))
        case .xnLookupRoot: self = .xnLookupRoot(name: try r.name())
        case .xnReadIn: self = .xnReadIn(credential: try r.slot(), try r.u64(), frame: FrameNumber(rawValue: try r.u32()))
        case .xnRead: self = .xnRead(credential: try r.slot(), try r.u64(), into: FrameNumber(rawValue: try r.u32()))
        case .xnMap: self = .xnMap(credential: try r.slot(), try r.u64(), writable: try r.bool())
        case .xnModify: self = .xnModify(credential: try r.slot(), try r.u64(), try r.operation(), try r.changes())
        case .xnWriteData: self = .xnWriteData(credential: try r.slot(), try r.u64(), try r.changes())
        case .xnWriteback: self = .xnWriteback(try r.blocks())
        case .xnEvict: self = .xnEvict(credential: try r.slot(), try r.u64())
        case .xnFindFree: self = .xnFindFree(from: try r.u64())
        case .xnMapMany:
            let credential = try r.slot()
            let blocks = try r.batch { (r: inout WireReader) throws(KernelError) in try r.u64() }
            self = .xnMapMany(credential: credential, blocks: blocks,
                              frames: try r.batch { (r: inout WireReader) throws(KernelError) in FrameNumber(rawValue: try r.u32()) })
        case .frameAllocateMany: self = .frameAllocateMany(credential: try r.slot(), acl: try r.acl(), count: try r.u16())
        case .xnMove:
            let credential = try r.slot(), source = try r.u64(), range = XNChanges.Range(offset: try r.u16(), length: try r.u16())
            self = .xnMove(credential: credential, source: source, range: range, destination: try r.u64(), at: try r.u16(), edits: try r.changes())
        case .frameUnmapMany: self = .frameUnmapMany(try r.batch { (r: inout WireReader) throws(KernelError) in FrameNumber(rawValue: try r.u32()) })
        case .frameLoad: self = .frameLoad(FrameNumber(rawValue: try r.u32()), offset: try r.u16(), count: try r.u16())
        case .frameStore: self = .frameStore(FrameNumber(rawValue: try r.u32()), offset: try r.u16(), bytes: try r.data(max: KernelLimits.pageBytes))
        }
        guard r.atEnd else { throw .badRequest }
    }
}

extension KernelReply {
    /// A reply on the wire: success with its payload, or an error code.
    public static func encode(_ result: Result<KernelReply, KernelError>) -> [UInt8] {
        var w = WireWriter()
        encode(result, into: &w)
        return w.bytes
    }

    /// Writes the encoding of `result` into `p` (emptied first).
    public static func encode(_ result: Result<KernelReply, KernelError>, into p: inout WireWriter) {
        p.removeAll()
        let status: UInt16 = if case .failure(let error) = result { error.rawValue } else { 0 }
        p.u16(kernelCallVersion); p.u16(status); p.u32(0)
        switch result {
        case .failure: break
        case .success(let reply):
            switch reply {
            case .done: p.u8(0)
            case .slot(let s): p.u8(1); p.u16(s.rawValue)
            case .environment(let e): p.u8(2); p.u32(e.rawValue)
            case .frame(let f): p.u8(3); p.u32(f.rawValue)
            case .region(let r): p.u8(4); p.u32(r.rawValue)
            case .bytes(let b): p.u8(5); p.data(b)
            case .upcall(nil): p.u8(6); p.u8(0)
            case .upcall(let u?):
                p.u8(6)
                switch u {
                case .sliceStart(let s): p.u8(1); p.u32(s.rawValue)
                case .sliceEnd(let s): p.u8(2); p.u32(s.rawValue)
                case .revocationRequested(let f, let deadline): p.u8(3); p.u32(f.rawValue); p.u64(deadline)
                case .frameRevoked(let f): p.u8(4); p.u32(f.rawValue)
                case .wakeup: p.u8(5)
                case .message(let from, let bytes): p.u8(6); p.u32(from.rawValue); p.data(bytes)
                }
            case .type(let t): p.u8(7); p.u32(t.rawValue)
            case .block(let b): p.u8(8); p.u64(b)
            case .root(let root): p.u8(9); p.u64(root.block); p.u32(root.type.rawValue); p.capability(root.capability)
            case .frames(let frames): p.u8(10); p.count16(frames.count); for f in frames { p.u32(f.rawValue) }
            }
        }
        p.patch32(UInt32(truncatingIfNeeded: p.count - 8), at: 4)
    }

    /// Decodes a reply: the result, or the error the kernel returned.
    /// - Throws: the kernel's `KernelError`, or `badRequest` when the bytes do not decode.
    public init(decoding bytes: [UInt8]) throws(KernelError) {
        self = try decodingInPlace(bytes) { (raw) throws(KernelError) in try KernelReply(decoding: raw) }
    }

    /// Decodes a reply from bytes lent in place.
    public init(decoding bytes: UnsafeRawBufferPointer) throws(KernelError) {
        var r = WireReader(bytes)
        guard try r.u16() == kernelCallVersion else { throw .badRequest }
        let status = try r.u16()
        guard Int(try r.u32()) == bytes.count - 8 else { throw .badRequest }
        if status != 0 { throw KernelError(rawValue: status) ?? .badRequest }
        switch try r.u8() {
        case 0: self = .done
        case 1: self = .slot(try r.slot())
        case 2: self = .environment(EnvironmentID(rawValue: try r.u32()))
        case 3: self = .frame(FrameNumber(rawValue: try r.u32()))
        case 4: self = .region(RegionID(rawValue: try r.u32()))
        case 5: self = .bytes(try r.data(max: KernelLimits.regionBytesMax))
        case 6:
            switch try r.u8() {
            case 0: self = .upcall(nil)
            case 1: self = .upcall(.sliceStart(SliceIndex(rawValue: try r.u32())))
            case 2: self = .upcall(.sliceEnd(SliceIndex(rawValue: try r.u32())))
            case 3: self = .upcall(.revocationRequested(FrameNumber(rawValue: try r.u32()), deadline: try r.u64()))
            case 4: self = .upcall(.frameRevoked(FrameNumber(rawValue: try r.u32())))
            case 5: self = .upcall(.wakeup)
            case 6: self = .upcall(.message(from: EnvironmentID(rawValue: try r.u32()), try r.data(max: KernelLimits.messageBytesMax)))
            default: throw .badRequest
            }
        case 7: self = .type(TypeID(rawValue: try r.u32()))
        case 8: self = .block(try r.u64())
        case 9: self = .root(XNRoot(block: try r.u64(), type: TypeID(rawValue: try r.u32()), capability: try r.capability()))
        case 10: self = .frames(try r.batch { (r: inout WireReader) throws(KernelError) in FrameNumber(rawValue: try r.u32()) })
        default: throw .badRequest
        }
        guard r.atEnd else { throw .badRequest }
    }
}

/// `body` over `bytes` in place, its error kept typed.
private func decodingInPlace<T>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(KernelError) -> T) throws(KernelError) -> T {
    let result = bytes.withUnsafeBytes { raw -> Result<T, KernelError> in
        do throws(KernelError) { return .success(try body(raw)) } catch { return .failure(error) }
    }
    return try result.get()
}
