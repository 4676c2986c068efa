// XN (DESIGN.md §5): the kernel's stable-storage multiplexer. It knows no file system:
// it learns what each metadata block points to by running the owning file system's `owns`
// UDF, asks its `acl` UDF whether a change is allowed, and lets a change through only when
// the pointers before and after differ exactly as the operation says. It orders writes so
// that a crash never leaves a pointer to uninitialized metadata or a reused block still
// pointed to, and rebuilds the free map from the roots after a crash.
//
// XN is part of the kernel: the kernel takes every caller's identity and credential from
// its own tables and hands them here; XN never sees a request. Cached blocks live in
// frames (`FrameMemory`) that library OSes gave the kernel.

import BPF
import XokABI

/// One mounted XN disk.
public final class XN<D: BlockDevice, M: FrameMemory> {
    /// The device. Public so a trusted harness can cut its power in simulation.
    public var device: D
    public let memory: M
    public let geometry: XNLayout.Geometry
    var templates: [Template] = []
    var roots: [RootEntry] = []
    /// Allocated blocks (including freed blocks not yet reusable, and XN's own).
    var allocated: FreeMap
    /// Type and parent of every allocated block outside XN's own structures.
    var types: [BlockNumber: TypeID] = [:]
    var parents: [BlockNumber: BlockNumber] = [:]
    /// A shareable block's parents past the first, one per pointer (a block may name it
    /// more than once). `parents` holds the first; the count of both is the block's
    /// references (a file's link count).
    var sharers: [BlockNumber: [BlockNumber]] = [:]
    /// Parents whose dropped pointer to a still-shared block is not on disk yet. Once
    /// the block's last pointer goes, it is not reused before these are written.
    var drops: [BlockNumber: Set<BlockNumber>] = [:]
    /// Blocks a move not yet on disk took out of these parents, which may still hold them
    /// there.
    var movedFrom: [BlockNumber: Set<BlockNumber>] = [:]
    /// Freed blocks waiting for their old parent to be written without the pointer.
    var pendingFree: [BlockNumber: BlockNumber] = [:]
    /// Other parents a freed shareable block waits for, besides its `pendingFree` one.
    var freeWaits: [BlockNumber: Set<BlockNumber>] = [:]
    /// Blocks tied together by moves not yet on disk, each to its whole group (sorted):
    /// a group is written as one, through the move log.
    var moveGroups: [BlockNumber: [BlockNumber]] = [:]
    /// New metadata blocks no parent on disk points to yet (the parent that allocated
    /// them has not been written since). A move unit takes such a member's parent along:
    /// an entry moved into a directory block the disk cannot reach would be lost.
    var unlinked: Set<BlockNumber> = []
    /// The buffer cache registry.
    var cache: [BlockNumber: CacheEntry] = [:]
    /// The dirty blocks among them.
    var dirtySet: Set<BlockNumber> = []
    /// Blocks whose registry entry changed, and frames that left the cache, since the
    /// kernel last asked (`drainEvents`).
    var changed: Set<BlockNumber> = []
    var released: [ReleasedFrame] = []
    /// Whether this mount recovered from an unclean shutdown.
    public private(set) var recovered = false
    /// Whether the UDF checks run. Only the benchmark boots a kernel without them, to
    /// measure their cost; no call can change it.
    let checksEnabled: Bool
    /// The acl UDF's context, laid out anew for each check (one allocation per mount).
    var aclScratch = [UInt8](repeating: 0, count: AclContext.bytes)
    /// Whether the context's parent area holds zeros now (it is cleared only when a
    /// change filled it).
    var aclParentClear = true
    /// Paths remembered: which blocks let which credentials pass (XN+Paths.swift).
    var paths = PathMemory()
    /// Every capability the caller of the current call holds, besides the call's own
    /// credential: a path may be passed with any of them. The kernel sets it per call.
    public var pathCredentials: [Capability?] = []

    /// Lays out a fresh XN disk on `device` and mounts it.
    /// - Throws: `deviceTooSmall`, `device`.
    public static func format(_ device: D, memory: M, checks: Bool = true) throws(XNError) -> XN {
        var device = device
        guard let geometry = XNLayout.Geometry(blockCount: device.blockCount) else { throw .deviceTooSmall }
        var bits = FreeMap(blockCount: geometry.blockCount)
        for b in 0..<geometry.dataStart { bits[b] = true }
        var writes: [(BlockNumber, [UInt8])] = [(0, Superblock(geometry: geometry, clean: true).encoded)]
        writes += XNStructures<D>.catalogueBlocks([], geometry)
        writes += XNStructures<D>.rootCatalogueBlocks([], geometry)
        writes.append((geometry.moveLogStart, [UInt8](repeating: 0, count: XNLayout.blockBytes)))
        do {
            try XNStructures<D>.writeFreeMap(bits, geometry, to: &device)
            try device.write(writes)
            try device.barrier()
        } catch { throw .device(error.message) }
        return try mount(device, memory: memory, checks: checks)
    }

    /// Mounts an XN disk: finishes a move its log holds, checks every structure's
    /// checksum, reloads and re-verifies the templates, walks the tree from the roots with
    /// the `owns` UDFs, and — after an unclean shutdown — rebuilds the free map from that
    /// walk.
    /// - Throws: `notXN` for a foreign image; `corruptImage` for a checksum, geometry,
    ///   name, template or tree that does not hold; `device`.
    public static func mount(_ device: D, memory: M, checks: Bool = true) throws(XNError) -> XN {
        var device = device
        guard device.blockCount > 0 else { throw .notXN("shorter than one 4 KiB block") }
        let superblock = try Superblock(decoding: XNStructures<D>.readBlock(&device, 0), deviceBlocks: device.blockCount)
        let xn = XN(device: device, memory: memory, geometry: superblock.geometry, checks: checks)
        // A move whose record reached the disk is finished before anything reads the tree.
        try XNStructures<D>.replayMoveLog(&xn.device, superblock.geometry)
        xn.templates = try XNStructures<D>.loadTemplates(&xn.device, superblock.geometry)
        xn.roots = try XNStructures<D>.loadRoots(&xn.device, superblock.geometry, typeCount: xn.templates.count)
        let walk = xn.walk()
        if let first = walk.violations.first { throw .corruptImage(first) }
        if superblock.clean {
            let stored = try XNStructures<D>.loadFreeMap(&xn.device, superblock.geometry)
            if let mismatch = XNStructures<D>.freeMapMismatches(stored, walk: walk, superblock.geometry).first { throw .corruptImage(mismatch) }
        }
        for b in 0..<xn.geometry.dataStart { xn.allocated[b] = true }
        for b in walk.types.keys { xn.allocated[b] = true }
        xn.types = walk.types
        xn.parents = walk.parents
        xn.sharers = walk.sharers
        xn.recovered = !superblock.clean
        // From now on the disk is in use: a crash must be recovered from.
        try xn.writeSuperblock(clean: false)
        return xn
    }

    init(device: D, memory: M, geometry: XNLayout.Geometry, checks: Bool) {
        self.device = device
        self.memory = memory
        self.geometry = geometry
        checksEnabled = checks
        allocated = FreeMap(blockCount: geometry.blockCount)
    }

    /// Writes back every dirty block (children before parents), persists the free map and
    /// marks the disk clean. Returns the device.
    /// - Throws: `device`.
    public func unmount() throws(XNError) -> D {
        try flushAll()
        do {
            try XNStructures<D>.writeFreeMap(allocated, geometry, to: &device)
            try device.barrier()
        } catch { throw .device(error.message) }
        try writeSuperblock(clean: true)
        return device
    }

    // MARK: Templates and roots

    /// Installs a type; a `shareable` one's blocks may have several parents (hard links);
    /// a `freedWhole` one's block is freed with everything below it.
    /// Types are immutable once installed and persist.
    /// - Throws: `badName`, `templateRejected` (verification or sanity check),
    ///   `nameTaken`, `catalogueFull`, `device`.
    public func installTemplate(name: [UInt8], owns: [UInt8], acl: [UInt8], size: [UInt8],
                                shareable: Bool = false, freedWhole: Bool = false) throws(XNError) -> TypeID {
        guard Name.isValid(name) else { throw .badName }
        guard !templates.contains(where: { $0.name == name }) else { throw .nameTaken }
        guard templates.count < XNLayout.typesMax - 1 else { throw .catalogueFull }
        let template = try Template(id: TypeID(rawValue: UInt32(templates.count + 1)), name: name, owns: owns, acl: acl, size: size,
                                    shareable: shareable, freedWhole: freedWhole)
        let blocks = XNStructures<D>.catalogueBlocks(templates + [template], geometry)
        guard blocks.count <= Int(geometry.typeCatalogueBlocks) else { throw .catalogueFull }
        do {
            try device.write(blocks)
            try device.barrier()
        } catch { throw .device(error.message) }
        templates.append(template)
        return template.id
    }

    /// The installed type called `name`.
    public func type(named name: [UInt8]) -> TypeID? { templates.first { $0.name == name }?.id }

    /// Creates a root: a fresh zeroed block of `type`, named `name`, that credentials
    /// dominating `capability` may use, cached in `frame`. The block is written before the
    /// catalogue that names it.
    /// - Throws: `badName`, `unknownType`, `nameTaken`, `catalogueFull`, `noSpace`, `device`.
    public func createRoot(name: [UInt8], type: TypeID, capability: Capability, frame: FrameNumber,
                           by environment: EnvironmentID) throws(XNError) -> BlockNumber {
        guard Name.isValid(name) else { throw .badName }
        guard template(type) != nil else { throw .unknownType }
        guard !roots.contains(where: { $0.name == name }) else { throw .nameTaken }
        guard roots.count < geometry.rootsMax else { throw .catalogueFull }
        guard let block = firstFree(from: geometry.dataStart) else { throw .noSpace }
        let entry = RootEntry(name: name, block: block, type: type, capability: capability)
        do {
            try device.write([(block, [UInt8](repeating: 0, count: XNLayout.blockBytes))])
            try device.barrier()
            try device.write(XNStructures<D>.rootCatalogueBlocks(roots + [entry], geometry))
            try device.barrier()
        } catch { throw .device(error.message) }
        roots.append(entry)
        allocated[block] = true
        types[block] = type
        memory.zero(frame)
        cache[block] = CacheEntry(frame: frame, type: type, parent: nil, state: .valid, dirty: false, owner: environment,
                                  writers: [], durability: .durable, pointers: [])
        changed.insert(block)
        return block
    }

    /// The root called `name`.
    /// - Throws: `noSuchRoot`.
    public func root(named name: [UInt8]) throws(XNError) -> RootEntry {
        guard let entry = roots.first(where: { $0.name == name }) else { throw .noSuchRoot }
        return entry
    }

    /// Every root, in creation order.
    public var rootEntries: [RootEntry] { roots }

    func template(_ type: TypeID) -> Template? {
        type == .data || Int(type.rawValue) > templates.count ? nil : templates[Int(type.rawValue) - 1]
    }

    // MARK: The free map

    /// Whether `block` is free to allocate now.
    public func isFree(_ block: BlockNumber) -> Bool {
        block >= geometry.dataStart && block < geometry.blockCount && !allocated[block]
    }

    /// The first free block at or after `start` (the free map is exposed: file systems
    /// choose their own blocks, for locality).
    public func firstFree(from start: BlockNumber) -> BlockNumber? {
        allocated.firstClear(from: max(start, geometry.dataStart))
    }

    /// Blocks cached, and dirty blocks among them.
    public var cachedCount: Int { cache.count }
    public var dirtyCount: Int { dirtySet.count }

    /// Free blocks now.
    public var freeBlockCount: UInt64 { geometry.blockCount - allocated.allocatedCount }

    // MARK: On-disk structures

    func writeSuperblock(clean: Bool) throws(XNError) {
        do {
            try device.write([(0, Superblock(geometry: geometry, clean: clean).encoded)])
            try device.barrier()
        } catch { throw .device(error.message) }
    }

}

/// XN's structure blocks end in a CRC-32C of the rest.
enum Seal {
    /// A block holding `payload`, zero-padded and sealed.
    static func sealed(_ payload: ArraySlice<UInt8>) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: XNLayout.blockBytes)
        b.replaceSubrange(0..<payload.count, with: payload)
        b.put32(CRC32C.checksum(b[0..<XNLayout.payloadBytes]), at: XNLayout.payloadBytes)
        return b
    }

    static func isSealed(_ b: [UInt8]) -> Bool { b.u32(at: XNLayout.payloadBytes) == CRC32C.checksum(b[0..<XNLayout.payloadBytes]) }
}

/// XN's on-disk structures, read and written whole (mount, fsck, mkfs).
enum XNStructures<D: BlockDevice> {
    static func readBlock(_ device: inout D, _ block: BlockNumber) throws(XNError) -> [UInt8] {
        do { return try device.read(block) } catch { throw .device(error.message) }
    }


    /// Writes the free map, a few hundred blocks at a time.
    static func writeFreeMap(_ bits: FreeMap, _ g: XNLayout.Geometry, to device: inout D) throws(DeviceError) {
        var batch: [(BlockNumber, [UInt8])] = []
        for i in 0..<g.freeMapBlocks {
            var payload = [UInt8](repeating: 0, count: XNLayout.payloadBytes)
            let first = i * UInt64(XNLayout.freeMapBitsPerBlock)
            var b = first
            let end = min(g.blockCount, first + UInt64(XNLayout.freeMapBitsPerBlock))
            while b < end {
                guard let next = bits.firstSet(from: b, before: end) else { break }
                let bit = Int(next - first)
                payload[bit / 8] |= 1 << UInt8(bit % 8)
                b = next + 1
            }
            batch.append((g.freeMapStart + i, Seal.sealed(payload[...])))
            if batch.count == 256 {
                try device.write(batch)
                batch = []
            }
        }
        try device.write(batch)
    }

    static func loadFreeMap(_ device: inout D, _ g: XNLayout.Geometry) throws(XNError) -> FreeMap {
        var bits = FreeMap(blockCount: g.blockCount)
        for i in 0..<g.freeMapBlocks {
            let block = try XNStructures<D>.readBlock(&device, g.freeMapStart + i)
            guard Seal.isSealed(block) else { throw .corruptImage("free map block \(i) checksum mismatch") }
            for byte in 0..<XNLayout.freeMapBitsPerBlock / 8 where block[byte] != 0 {
                for bit in 0..<8 where block[byte] & (1 << UInt8(bit)) != 0 {
                    let b = i * UInt64(XNLayout.freeMapBitsPerBlock) + UInt64(byte * 8 + bit)
                    guard b < g.blockCount else { throw .corruptImage("free map block \(i) marks block \(b), past the disk") }
                    bits[b] = true
                }
            }
        }
        return bits
    }

    /// How a stored free map disagrees with the tree: it must mark exactly XN's own blocks
    /// and the blocks reachable from the roots.
    static func freeMapMismatches(_ stored: FreeMap, walk: Walk, _ g: XNLayout.Geometry) -> [String] {
        var found: [String] = []
        if let hole = stored.firstClear(from: 0), hole < g.dataStart {
            found.append("block \(hole) holds XN's own structures but the free map says free")
        }
        for b in walk.types.keys.sorted() where !stored[b] { found.append("block \(b) is reachable but the free map says free") }
        let expected = g.dataStart + UInt64(walk.types.count)
        if stored.allocatedCount != expected || !found.isEmpty {
            for b in stored.allocatedBlocks where b >= g.dataStart && walk.types[b] == nil {
                found.append("block \(b) is allocated but not reachable from any root")
            }
        }
        return found
    }

    /// The type catalogue as one stream (length u32, count u32, then per template: name,
    /// flags u32 (bit 0: shareable, bit 1: freed whole), then owns, acl and size as a u32 length and the
    /// bytes), cut into sealed blocks.
    static func catalogueBlocks(_ templates: [Template], _ g: XNLayout.Geometry) -> [(BlockNumber, [UInt8])] {
        var stream = [UInt8](repeating: 0, count: 8)
        for t in templates {
            var name = [UInt8](repeating: 0, count: XNLayout.nameBytesMax + 1)
            Name.encode(t.name, into: &name, at: 0)
            stream += name + [(t.shareable ? 1 : 0) | (t.freedWhole ? 2 : 0), 0, 0, 0]
            for code in [t.ownsCode, t.aclCode, t.sizeCode] {
                var length = [UInt8](repeating: 0, count: 4)
                length.put32(UInt32(code.count), at: 0)
                stream += length + code
            }
        }
        stream.put32(UInt32(stream.count), at: 0)
        stream.put32(UInt32(templates.count), at: 4)
        var blocks: [(BlockNumber, [UInt8])] = []
        var offset = 0
        repeat {
            let end = min(offset + XNLayout.payloadBytes, stream.count)
            blocks.append((g.typeCatalogueStart + BlockNumber(blocks.count), Seal.sealed(stream[offset..<end])))
            offset = end
        } while offset < stream.count
        return blocks
    }

    static func loadTemplates(_ device: inout D, _ g: XNLayout.Geometry) throws(XNError) -> [Template] {
        var stream: [UInt8] = []
        var length = 8
        var i: UInt64 = 0
        while stream.count < length {
            guard i < g.typeCatalogueBlocks else { throw .corruptImage("type catalogue runs past its blocks") }
            let block = try XNStructures<D>.readBlock(&device, g.typeCatalogueStart + i)
            guard Seal.isSealed(block) else { throw .corruptImage("type catalogue block \(i) checksum mismatch") }
            stream += block[0..<XNLayout.payloadBytes]
            if i == 0 { length = Int(stream.u32(at: 0)) }
            i += 1
        }
        let count = Int(stream.u32(at: 4))
        guard length >= 8, count < XNLayout.typesMax else { throw .corruptImage("type catalogue header is inconsistent") }
        var templates: [Template] = []
        var at = 8
        for n in 0..<count {
            guard at + XNLayout.nameBytesMax + 1 <= length else { throw .corruptImage("type catalogue is truncated") }
            guard let name = Name.decode(stream, at: at) else { throw .corruptImage("type \(n + 1) has a malformed name") }
            guard !templates.contains(where: { $0.name == name }) else {
                throw .corruptImage("two types are named '\(String(decoding: name, as: UTF8.self))'")
            }
            at += XNLayout.nameBytesMax + 1
            guard at + 4 <= length else { throw .corruptImage("type catalogue is truncated") }
            let flags = stream.u32(at: at)
            guard flags <= 3 else { throw .corruptImage("type \(n + 1) has unknown flags \(flags)") }
            at += 4
            var codes: [[UInt8]] = []
            for _ in 0..<3 {
                guard at + 4 <= length else { throw .corruptImage("type catalogue is truncated") }
                let size = Int(stream.u32(at: at))
                at += 4
                guard size <= XNLayout.udfBytesMax, at + size <= length else { throw .corruptImage("type catalogue is truncated") }
                codes.append(Array(stream[at..<at + size]))
                at += size
            }
            do {
                templates.append(try Template(id: TypeID(rawValue: UInt32(n + 1)), name: name, owns: codes[0], acl: codes[1], size: codes[2],
                                              shareable: flags & 1 != 0, freedWhole: flags & 2 != 0))
            } catch {
                throw .corruptImage("stored template '\(String(decoding: name, as: UTF8.self))' no longer verifies: \(error)")
            }
        }
        return templates
    }

    /// The root catalogue: per block, count u32 then 112-byte entries (name 32, block u64,
    /// type u32, rights u8, component count u8, 2 bytes padding, 8 components u64).
    static func rootCatalogueBlocks(_ roots: [RootEntry], _ g: XNLayout.Geometry) -> [(BlockNumber, [UInt8])] {
        (0..<Int(g.rootCatalogueBlocks)).map { n in
            var payload = [UInt8](repeating: 0, count: XNLayout.payloadBytes)
            let here = roots.dropFirst(n * XNLayout.rootsPerBlock).prefix(XNLayout.rootsPerBlock)
            payload.put32(UInt32(here.count), at: 0)
            for (i, root) in here.enumerated() {
                let at = 8 + XNLayout.rootEntryBytes * i
                Name.encode(root.name, into: &payload, at: at)
                payload.put64(root.block, at: at + 32)
                payload.put32(root.type.rawValue, at: at + 40)
                payload[at + 44] = root.capability.rights.rawValue
                payload[at + 45] = UInt8(root.capability.name.count)
                for (j, c) in root.capability.name.enumerated() { payload.put64(c, at: at + 48 + 8 * j) }
            }
            return (g.rootCatalogue + UInt64(n), Seal.sealed(payload[...]))
        }
    }

    static func loadRoots(_ device: inout D, _ g: XNLayout.Geometry, typeCount: Int) throws(XNError) -> [RootEntry] {
        var roots: [RootEntry] = []
        for n in 0..<g.rootCatalogueBlocks {
            let block = try XNStructures<D>.readBlock(&device, g.rootCatalogue + n)
            guard Seal.isSealed(block) else { throw .corruptImage("root catalogue block \(n) checksum mismatch") }
            let count = Int(block.u32(at: 0))
            guard count <= XNLayout.rootsPerBlock else { throw .corruptImage("root catalogue block \(n) claims \(count) roots") }
            guard count == 0 || roots.count == Int(n) * XNLayout.rootsPerBlock else { throw .corruptImage("root catalogue has a gap before block \(n)") }
            for i in 0..<count {
                let at = 8 + XNLayout.rootEntryBytes * i
                let index = roots.count
                let components = Int(block[at + 45])
                guard components <= KernelLimits.nameComponentsMax, Rights.all.rawValue | block[at + 44] == Rights.all.rawValue,
                      let capability = try? Capability(name: (0..<components).map { block.u64(at: at + 48 + 8 * $0) },
                                                       rights: Rights(rawValue: block[at + 44])) else {
                    throw .corruptImage("root \(index) has a malformed capability")
                }
                guard let name = Name.decode(block, at: at) else { throw .corruptImage("root \(index) has a malformed name") }
                let printable = String(decoding: name, as: UTF8.self)
                guard !roots.contains(where: { $0.name == name }) else { throw .corruptImage("two roots are named '\(printable)'") }
                let entry = RootEntry(name: name, block: block.u64(at: at + 32), type: TypeID(rawValue: block.u32(at: at + 40)), capability: capability)
                guard entry.block >= g.dataStart, entry.block < g.blockCount else { throw .corruptImage("root '\(printable)' points outside the data area") }
                guard entry.type != .data, Int(entry.type.rawValue) <= typeCount else { throw .corruptImage("root '\(printable)' has unknown type \(entry.type.rawValue)") }
                roots.append(entry)
            }
        }
        return roots
    }
}

extension FreeMap {
    /// The first allocated block in `start..<end`: a word at a time, a chunk with
    /// nothing allocated at a stroke.
    func firstSet(from start: BlockNumber, before end: BlockNumber) -> BlockNumber? {
        var b = start
        while b < end {
            guard let words = chunk(b >> 16) else {
                b = (b | 0xffff) + 1
                continue
            }
            let bit = Int(b & 0xffff)
            let word = words[bit >> 6] & ~((1 << UInt64(bit & 63)) - 1)
            if word != 0 {
                let found = (b & ~63) + UInt64(word.trailingZeroBitCount)
                return found < end ? found : nil
            }
            b = (b | 63) + 1
        }
        return nil
    }
}
