// The kernel's call set as data: every request and reply has a fixed, versioned binary
// layout, because the same calls will travel over a shared-memory ring to `xokd`. The
// in-process port encodes and decodes every call too, so that layout is always exercised.
//
// A request on the wire (all integers little-endian):
//
//     0        2        4                 8
//     +--------+--------+-----------------+---------------------------+
//     |version | call   | payload bytes   | payload (the call's fields)|
//     +--------+--------+-----------------+---------------------------+
//
// A reply has the same header with the call field replaced by a status: 0 for success
// (then the payload is the result), or a `KernelError` code (no payload).
// Field encodings: integers at their width; a capability is component count (u8), rights
// (u8), then the components (u64 each); an ACL or a list is a u16 count then the items;
// bytes are a u32 count then the bytes; an optional is a u8 flag then the value.

/// The wire format's version; a request of another version is refused (`badRequest`).
public let kernelCallVersion: UInt16 = 1

/// A kernel call. Every call that touches a protected object names its credential.
public enum KernelRequest: Hashable, Sendable {
    /// A new capability in a free slot: `source`'s name extended, rights a subset.
    case capabilityDerive(source: CapabilitySlot, appending: [UInt64], rights: Rights)
    /// Empties a slot.
    case capabilityDrop(CapabilitySlot)
    /// A child environment protected by `acl`, holding copies of the `grants` slots
    /// (each needs the grant right). Needs write on the kernel's environment ACL.
    case environmentCreate(credential: CapabilitySlot, acl: AccessControlList, grants: [CapabilitySlot])
    /// Destroys an environment and reclaims all it holds. Needs write on its ACL.
    case environmentDestroy(credential: CapabilitySlot, EnvironmentID)
    /// Who may send the caller messages.
    case environmentSetMessageACL(AccessControlList)
    /// A free frame, protected by `acl`. Needs write on the kernel's frame ACL.
    case frameAllocate(credential: CapabilitySlot, acl: AccessControlList)
    /// Returns a frame no one else has mapped. Needs write on its ACL.
    case frameFree(credential: CapabilitySlot, FrameNumber)
    /// Replaces a frame's ACL. Needs write on its ACL.
    case frameSetACL(credential: CapabilitySlot, FrameNumber, AccessControlList)
    /// Binds a frame into the caller: read-only, or read-write. Needs read (and write).
    case frameMap(credential: CapabilitySlot, FrameNumber, writable: Bool)
    /// Removes the caller's binding of a frame.
    case frameUnmap(FrameNumber)
    /// Asks every other holder to unmap a frame within `graceTicks`, then forces it.
    /// Needs write on its ACL.
    case frameRevoke(credential: CapabilitySlot, FrameNumber, graceTicks: UInt64)
    /// A zeroed software region of `size` bytes protected by `acl`. Needs write on the
    /// kernel's region ACL.
    case regionCreate(credential: CapabilitySlot, acl: AccessControlList, size: UInt32)
    /// `length` bytes at `offset`. Needs read on its ACL.
    case regionRead(credential: CapabilitySlot, RegionID, offset: UInt32, length: UInt32)
    /// Writes bytes at `offset`. Needs write on its ACL.
    case regionWrite(credential: CapabilitySlot, RegionID, offset: UInt32, bytes: [UInt8])
    /// Destroys a region. Needs write on its ACL.
    case regionDestroy(credential: CapabilitySlot, RegionID)
    /// Queues a message for `target`. Needs write on the target's message ACL.
    case ipcSend(credential: CapabilitySlot, target: EnvironmentID, message: [UInt8])
    /// The next upcall waiting for the caller, if any (notices before messages).
    case upcallNext
    /// Sleeps the caller until `program` (a verified `wakeupPredicate`) returns nonzero.
    /// It reads the exposed state and, when `region` is given, that region (needs read).
    case predicateInstall(credential: CapabilitySlot, program: [UInt8], region: RegionID?)
    /// Removes the caller's predicate and wakes it.
    case predicateRemove
    /// Takes a free slice. Needs write on the kernel's slice ACL.
    case sliceAllocate(credential: CapabilitySlot, SliceIndex)
    /// Returns one of the caller's slices.
    case sliceFree(SliceIndex)
    /// Gives the rest of the current slice to `target` (directed yield), or ends it.
    case yield(to: EnvironmentID?)
}

/// What a call returns.
public enum KernelReply: Hashable, Sendable {
    case done
    case slot(CapabilitySlot)
    case environment(EnvironmentID)
    case frame(FrameNumber)
    case region(RegionID)
    case bytes([UInt8])
    case upcall(Upcall?)
}

/// An upcall: how the kernel tells an environment something (Xok's upcalls), delivered in
/// order through `upcallNext`.
public enum Upcall: Hashable, Sendable {
    /// A slice of the caller's begins (prologue).
    case sliceStart(SliceIndex)
    /// The caller's slice ends (epilogue).
    case sliceEnd(SliceIndex)
    /// Another environment asks for a frame back before `deadline` (the abort protocol's
    /// visible phase).
    case revocationRequested(FrameNumber, deadline: UInt64)
    /// The kernel removed the caller's binding of a frame: revocation was forced, or the
    /// frame's owner died.
    case frameRevoked(FrameNumber)
    /// The caller's wakeup predicate became true.
    case wakeup
    /// A message.
    case message(from: EnvironmentID, [UInt8])
}

// MARK: - Wire encoding

/// Appends little-endian fields.
public struct WireWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { for i in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: v >> UInt16(8 * i))) } }
    public mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(8 * i))) } }
    public mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(8 * i))) } }
    public mutating func bool(_ v: Bool) { u8(v ? 1 : 0) }
    public mutating func data(_ v: [UInt8]) { u32(UInt32(v.count)); bytes += v }
    public mutating func capability(_ c: Capability) {
        u8(UInt8(c.name.count))
        u8(c.rights.rawValue)
        for component in c.name { u64(component) }
    }
    public mutating func acl(_ a: AccessControlList) {
        u16(UInt16(a.entries.count))
        for entry in a.entries { capability(entry) }
    }
}

/// Reads little-endian fields; every read is bounds-checked and throws `badRequest`.
public struct WireReader {
    private let bytes: [UInt8]
    private var position: Int

    public init(_ bytes: [UInt8], from position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    public var atEnd: Bool { position == bytes.count }

    private mutating func take(_ n: Int) throws(KernelError) -> ArraySlice<UInt8> {
        guard n >= 0, bytes.count - position >= n else { throw .badRequest }
        defer { position += n }
        return bytes[position..<position + n]
    }
    private mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) throws(KernelError) -> T {
        var v: T = 0
        for (i, b) in try take(MemoryLayout<T>.size).enumerated() { v |= T(b) << T(8 * i) }
        return v
    }
    public mutating func u8() throws(KernelError) -> UInt8 { try integer(UInt8.self) }
    public mutating func u16() throws(KernelError) -> UInt16 { try integer(UInt16.self) }
    public mutating func u32() throws(KernelError) -> UInt32 { try integer(UInt32.self) }
    public mutating func u64() throws(KernelError) -> UInt64 { try integer(UInt64.self) }
    public mutating func bool() throws(KernelError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        default: throw .badRequest
        }
    }
    public mutating func data(max: Int) throws(KernelError) -> [UInt8] {
        let n = Int(try u32())
        guard n <= max else { throw .badRequest }
        return Array(try take(n))
    }
    public mutating func capability() throws(KernelError) -> Capability {
        let count = Int(try u8())
        let rights = Rights(rawValue: try u8())
        guard count <= KernelLimits.nameComponentsMax, Rights.all.isSuperset(of: rights) else { throw .badRequest }
        var name: [UInt64] = []
        for _ in 0..<count { name.append(try u64()) }
        return try Capability(name: name, rights: rights)
    }
    public mutating func acl() throws(KernelError) -> AccessControlList {
        let count = Int(try u16())
        guard count <= KernelLimits.aclEntriesMax else { throw .badRequest }
        var entries: [Capability] = []
        for _ in 0..<count { entries.append(try capability()) }
        return try AccessControlList(entries)
    }
    public mutating func slot() throws(KernelError) -> CapabilitySlot { CapabilitySlot(rawValue: try u16()) }
    public mutating func slots() throws(KernelError) -> [CapabilitySlot] {
        let count = Int(try u16())
        guard count <= KernelLimits.capabilitySlots else { throw .badRequest }
        var result: [CapabilitySlot] = []
        for _ in 0..<count { result.append(try slot()) }
        return result
    }
    public mutating func components() throws(KernelError) -> [UInt64] {
        let count = Int(try u16())
        guard count <= KernelLimits.nameComponentsMax else { throw .badRequest }
        var result: [UInt64] = []
        for _ in 0..<count { result.append(try u64()) }
        return result
    }
}

extension KernelRequest {
    /// The call's code on the wire.
    var code: UInt16 {
        switch self {
        case .capabilityDerive: 1
        case .capabilityDrop: 2
        case .environmentCreate: 3
        case .environmentDestroy: 4
        case .environmentSetMessageACL: 5
        case .frameAllocate: 6
        case .frameFree: 7
        case .frameSetACL: 8
        case .frameMap: 9
        case .frameUnmap: 10
        case .frameRevoke: 11
        case .regionCreate: 12
        case .regionRead: 13
        case .regionWrite: 14
        case .regionDestroy: 15
        case .ipcSend: 16
        case .upcallNext: 17
        case .predicateInstall: 18
        case .predicateRemove: 19
        case .sliceAllocate: 20
        case .sliceFree: 21
        case .yield: 22
        }
    }

    /// The request on the wire.
    public var encoded: [UInt8] {
        var p = WireWriter()
        switch self {
        case .capabilityDerive(let source, let appending, let rights):
            p.u16(source.rawValue); p.u16(UInt16(appending.count)); for c in appending { p.u64(c) }; p.u8(rights.rawValue)
        case .capabilityDrop(let slot): p.u16(slot.rawValue)
        case .environmentCreate(let credential, let acl, let grants):
            p.u16(credential.rawValue); p.acl(acl); p.u16(UInt16(grants.count)); for g in grants { p.u16(g.rawValue) }
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
        }
        var w = WireWriter()
        w.u16(kernelCallVersion); w.u16(code); w.u32(UInt32(p.bytes.count))
        return w.bytes + p.bytes
    }

    /// Decodes a request.
    /// - Throws: `badRequest` for another version, an unknown call, a length that does not
    ///   match, or any field out of its range.
    public init(decoding bytes: [UInt8]) throws(KernelError) {
        guard bytes.count <= KernelLimits.messageWireBytesMax else { throw .badRequest }
        var r = WireReader(bytes)
        guard try r.u16() == kernelCallVersion else { throw .badRequest }
        let code = try r.u16()
        guard Int(try r.u32()) == bytes.count - 8 else { throw .badRequest }
        switch code {
        case 1:
            let source = try r.slot(), appending = try r.components(), rights = Rights(rawValue: try r.u8())
            guard Rights.all.isSuperset(of: rights) else { throw .badRequest }
            self = .capabilityDerive(source: source, appending: appending, rights: rights)
        case 2: self = .capabilityDrop(try r.slot())
        case 3: self = .environmentCreate(credential: try r.slot(), acl: try r.acl(), grants: try r.slots())
        case 4: self = .environmentDestroy(credential: try r.slot(), EnvironmentID(rawValue: try r.u32()))
        case 5: self = .environmentSetMessageACL(try r.acl())
        case 6: self = .frameAllocate(credential: try r.slot(), acl: try r.acl())
        case 7: self = .frameFree(credential: try r.slot(), FrameNumber(rawValue: try r.u32()))
        case 8: self = .frameSetACL(credential: try r.slot(), FrameNumber(rawValue: try r.u32()), try r.acl())
        case 9: self = .frameMap(credential: try r.slot(), FrameNumber(rawValue: try r.u32()), writable: try r.bool())
        case 10: self = .frameUnmap(FrameNumber(rawValue: try r.u32()))
        case 11: self = .frameRevoke(credential: try r.slot(), FrameNumber(rawValue: try r.u32()), graceTicks: try r.u64())
        case 12: self = .regionCreate(credential: try r.slot(), acl: try r.acl(), size: try r.u32())
        case 13: self = .regionRead(credential: try r.slot(), RegionID(rawValue: try r.u32()), offset: try r.u32(), length: try r.u32())
        case 14: self = .regionWrite(credential: try r.slot(), RegionID(rawValue: try r.u32()), offset: try r.u32(),
                                     bytes: try r.data(max: KernelLimits.regionBytesMax))
        case 15: self = .regionDestroy(credential: try r.slot(), RegionID(rawValue: try r.u32()))
        case 16: self = .ipcSend(credential: try r.slot(), target: EnvironmentID(rawValue: try r.u32()),
                                 message: try r.data(max: KernelLimits.messageBytesMax))
        case 17: self = .upcallNext
        case 18:
            let credential = try r.slot(), program = try r.data(max: KernelLimits.predicateBytesMax)
            let hasRegion = try r.bool(), region = RegionID(rawValue: try r.u32())
            self = .predicateInstall(credential: credential, program: program, region: hasRegion ? region : nil)
        case 19: self = .predicateRemove
        case 20: self = .sliceAllocate(credential: try r.slot(), SliceIndex(rawValue: try r.u32()))
        case 21: self = .sliceFree(SliceIndex(rawValue: try r.u32()))
        case 22:
            let hasTarget = try r.bool(), target = EnvironmentID(rawValue: try r.u32())
            self = .yield(to: hasTarget ? target : nil)
        default: throw .badRequest
        }
        guard r.atEnd else { throw .badRequest }
    }
}

extension KernelReply {
    /// A reply on the wire: success with its payload, or an error code.
    public static func encode(_ result: Result<KernelReply, KernelError>) -> [UInt8] {
        var p = WireWriter()
        var status: UInt16 = 0
        switch result {
        case .failure(let error): status = error.rawValue
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
            }
        }
        var w = WireWriter()
        w.u16(kernelCallVersion); w.u16(status); w.u32(UInt32(p.bytes.count))
        return w.bytes + p.bytes
    }

    /// Decodes a reply: the result, or the error the kernel returned.
    /// - Throws: the kernel's `KernelError`, or `badRequest` when the bytes do not decode.
    public init(decoding bytes: [UInt8]) throws(KernelError) {
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
        default: throw .badRequest
        }
        guard r.atEnd else { throw .badRequest }
    }
}
