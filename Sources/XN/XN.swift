// XN (DESIGN.md §5): the kernel's stable-storage multiplexer. It knows no file system:
// it learns what each metadata block points to by running the owning file system's `owns`
// UDF, asks its `acl` UDF whether a change is allowed, and lets a change through only when
// the pointers before and after differ exactly as the operation says. It orders writes so
// that a crash never leaves a pointer to uninitialized metadata or a reused block still
// pointed to, and rebuilds the free map from the roots after a crash.

import BPF
import XokABI

/// One mounted XN disk.
public final class XN<D: BlockDevice> {
    /// The device. Public so a trusted harness can cut its power in simulation.
    public var device: D
    public let geometry: XNLayout.Geometry
    var templates: [Template] = []
    var roots: [RootEntry] = []
    /// One bit per block: allocated (including freed blocks not yet reusable).
    var allocated: [Bool]
    /// Type and parent of every allocated block outside XN's own structures.
    var types: [BlockNumber: TypeID] = [:]
    var parents: [BlockNumber: BlockNumber] = [:]
    /// Freed blocks waiting for their old parent to be written without the pointer.
    var pendingFree: [BlockNumber: BlockNumber] = [:]
    /// The buffer cache registry.
    var cache: BlockTable<CacheEntry>
    /// Environments that died: their dirty blocks may be flushed by anyone.
    var dead: Set<EnvironmentID> = []
    /// Whether this mount recovered from an unclean shutdown.
    public private(set) var recovered = false
    /// Benchmark-only: skip the UDF checks on changes (never set outside `xok bench xn`).
    public var checksEnabled = true
    /// The acl UDF's context, laid out anew for each check (one allocation per mount).
    var aclScratch = [UInt8](repeating: 0, count: AclContext.bytes)

    /// Lays out a fresh XN disk on `device` and mounts it.
    /// - Throws: `deviceTooSmall`, `device`.
    public static func format(_ device: D) throws(XNError) -> XN {
        var device = device
        guard let geometry = XNLayout.Geometry(blockCount: device.blockCount) else { throw .deviceTooSmall }
        var writes: [(BlockNumber, [UInt8])] = [(0, Superblock(geometry: geometry, clean: true).encoded)]
        var bits = [Bool](repeating: false, count: Int(geometry.blockCount))
        for b in 0..<Int(geometry.dataStart) { bits[b] = true }
        writes += freeMapBlocks(bits, geometry)
        writes += catalogueBlocks([], geometry)
        writes.append((geometry.rootCatalogue, rootCatalogueBlock([])))
        do {
            try device.write(writes)
            try device.barrier()
        } catch { throw .device(error.message) }
        return try mount(device)
    }

    /// Mounts an XN disk: checks every structure's checksum, reloads and re-verifies the
    /// templates, walks the tree from the roots with the `owns` UDFs, and — after an
    /// unclean shutdown — rebuilds the free map from that walk.
    /// - Throws: `notXN` for a foreign image; `corruptImage` for a checksum, geometry,
    ///   template or tree that does not hold; `device`.
    public static func mount(_ device: D) throws(XNError) -> XN {
        var device = device
        let superblock = try Superblock(decoding: readBlock(&device, 0), deviceBlocks: device.blockCount)
        let xn = XN(device: device, geometry: superblock.geometry)
        xn.templates = try loadTemplates(&xn.device, superblock.geometry)
        xn.roots = try loadRoots(&xn.device, superblock.geometry, typeCount: xn.templates.count)
        let walk = xn.walk()
        if let first = walk.violations.first { throw .corruptImage(first) }
        let stored = try loadFreeMap(&xn.device, superblock.geometry)
        for b in 0..<Int(xn.geometry.blockCount) {
            let reachable = b < Int(xn.geometry.dataStart) || walk.types[BlockNumber(b)] != nil
            if superblock.clean && stored[b] != reachable {
                throw .corruptImage("free map says block \(b) is \(stored[b] ? "allocated" : "free"); the tree says \(reachable ? "reachable" : "unreachable")")
            }
            xn.allocated[b] = reachable
        }
        xn.types = walk.types
        xn.parents = walk.parents
        xn.recovered = !superblock.clean
        // From now on the disk is in use: a crash must be recovered from.
        try xn.writeSuperblock(clean: false)
        return xn
    }

    init(device: D, geometry: XNLayout.Geometry) {
        self.device = device
        self.geometry = geometry
        allocated = [Bool](repeating: false, count: Int(geometry.blockCount))
        cache = BlockTable(blocks: geometry.blockCount)
    }

    /// Writes back every dirty block (children before parents), persists the free map and
    /// marks the disk clean. Returns the device.
    /// - Throws: `device`.
    public func unmount() throws(XNError) -> D {
        try flushAll()
        do {
            try device.write(Self.freeMapBlocks(allocated, geometry))
            try device.barrier()
        } catch { throw .device(error.message) }
        try writeSuperblock(clean: true)
        return device
    }

    // MARK: Templates and roots

    /// Installs a type. Types are immutable once installed and persist.
    /// - Throws: `templateRejected` (verification or sanity check), `nameTaken`,
    ///   `catalogueFull`, `device`.
    public func installTemplate(name: String, owns: [UInt8], acl: [UInt8], size: [UInt8]) throws(XNError) -> TypeID {
        guard !templates.contains(where: { $0.name == name }) else { throw .nameTaken }
        guard templates.count < XNLayout.typesMax - 1 else { throw .catalogueFull }
        let template = try Template(id: TypeID(rawValue: UInt32(templates.count + 1)), name: name, owns: owns, acl: acl, size: size)
        let blocks = Self.catalogueBlocks(templates + [template], geometry)
        guard blocks.count <= Int(XNLayout.typeCatalogueBlocks) else { throw .catalogueFull }
        do {
            try device.write(blocks)
            try device.barrier()
        } catch { throw .device(error.message) }
        templates.append(template)
        return template.id
    }

    /// The installed type called `name`.
    public func type(named name: String) -> TypeID? { templates.first { $0.name == name }?.id }

    /// Creates a root: a fresh zeroed block of `type`, named `name`, that credentials
    /// dominating `capability` may use. The block is written before the catalogue that
    /// names it.
    /// - Throws: `unknownType`, `nameTaken`, `catalogueFull`, `noSpace`, `device`.
    public func createRoot(name: String, type: TypeID, capability: Capability, by environment: EnvironmentID) throws(XNError) -> BlockNumber {
        guard template(type) != nil else { throw .unknownType }
        guard !name.isEmpty, name.utf8.count <= XNLayout.nameBytesMax, !roots.contains(where: { $0.name == name }) else { throw .nameTaken }
        guard roots.count < XNLayout.rootsMax else { throw .catalogueFull }
        guard let block = firstFree(from: geometry.dataStart) else { throw .noSpace }
        let entry = RootEntry(name: name, block: block, type: type, capability: capability)
        do {
            try device.write([(block, [UInt8](repeating: 0, count: XNLayout.blockBytes))])
            try device.barrier()
            try device.write([(geometry.rootCatalogue, Self.rootCatalogueBlock(roots + [entry]))])
            try device.barrier()
        } catch { throw .device(error.message) }
        roots.append(entry)
        allocated[Int(block)] = true
        types[block] = type
        // Until its creator writes it back, only its creator may initialize it.
        cache[block] = CacheEntry(contents: [UInt8](repeating: 0, count: XNLayout.blockBytes), type: type, parent: nil,
                                  state: .valid, dirty: false, owner: environment,
                                  durability: .unwritten(allocator: environment), pointers: [])
        return block
    }

    /// The root called `name`.
    /// - Throws: `noSuchRoot`.
    public func root(named name: String) throws(XNError) -> RootEntry {
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
        block >= geometry.dataStart && block < geometry.blockCount && !allocated[Int(block)]
    }

    /// The first free block at or after `start` (the free map is exposed: file systems
    /// choose their own blocks, for locality).
    public func firstFree(from start: BlockNumber) -> BlockNumber? {
        var b = max(start, geometry.dataStart)
        while b < geometry.blockCount {
            if !allocated[Int(b)] { return b }
            b += 1
        }
        return nil
    }

    /// Free blocks now.
    public var freeBlockCount: Int { allocated.lazy.filter { !$0 }.count }

    /// Tells XN an environment died: its dirty blocks may now be written back by anyone.
    public func environmentDied(_ environment: EnvironmentID) { dead.insert(environment) }

    // MARK: On-disk structures

    static func readBlock(_ device: inout D, _ block: BlockNumber) throws(XNError) -> [UInt8] {
        do { return try device.read(block) } catch { throw .device(error.message) }
    }

    func writeSuperblock(clean: Bool) throws(XNError) {
        do {
            try device.write([(0, Superblock(geometry: geometry, clean: clean).encoded)])
            try device.barrier()
        } catch { throw .device(error.message) }
    }

    static func sealed(_ payload: ArraySlice<UInt8>) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: XNLayout.blockBytes)
        b.replaceSubrange(0..<payload.count, with: payload)
        b.put32(CRC32C.checksum(b[0..<XNLayout.payloadBytes]), at: XNLayout.payloadBytes)
        return b
    }

    static func isSealed(_ b: [UInt8]) -> Bool { b.u32(at: XNLayout.payloadBytes) == CRC32C.checksum(b[0..<XNLayout.payloadBytes]) }

    static func freeMapBlocks(_ bits: [Bool], _ g: XNLayout.Geometry) -> [(BlockNumber, [UInt8])] {
        (0..<Int(g.freeMapBlocks)).map { i in
            var payload = [UInt8](repeating: 0, count: XNLayout.payloadBytes)
            for bit in 0..<XNLayout.freeMapBitsPerBlock {
                let b = i * XNLayout.freeMapBitsPerBlock + bit
                if b < bits.count && bits[b] { payload[bit / 8] |= 1 << UInt8(bit % 8) }
            }
            return (g.freeMapStart + BlockNumber(i), sealed(payload[...]))
        }
    }

    static func loadFreeMap(_ device: inout D, _ g: XNLayout.Geometry) throws(XNError) -> [Bool] {
        var bits = [Bool](repeating: false, count: Int(g.blockCount))
        for i in 0..<Int(g.freeMapBlocks) {
            let block = try readBlock(&device, g.freeMapStart + BlockNumber(i))
            guard isSealed(block) else { throw .corruptImage("free map block \(i) checksum mismatch") }
            for bit in 0..<XNLayout.freeMapBitsPerBlock {
                let b = i * XNLayout.freeMapBitsPerBlock + bit
                if b < bits.count { bits[b] = block[bit / 8] & (1 << UInt8(bit % 8)) != 0 }
            }
        }
        return bits
    }

    /// The type catalogue as one stream (length u32, count u32, then per template: name,
    /// then owns, acl and size as a u32 length and the bytes), cut into sealed blocks.
    static func catalogueBlocks(_ templates: [Template], _ g: XNLayout.Geometry) -> [(BlockNumber, [UInt8])] {
        var stream = [UInt8](repeating: 0, count: 8)
        for t in templates {
            var name = [UInt8](repeating: 0, count: XNLayout.nameBytesMax + 1)
            Name.encode(t.name, into: &name, at: 0)
            stream += name
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
            blocks.append((g.typeCatalogueStart + BlockNumber(blocks.count), sealed(stream[offset..<end])))
            offset = end
        } while offset < stream.count
        return blocks
    }

    static func loadTemplates(_ device: inout D, _ g: XNLayout.Geometry) throws(XNError) -> [Template] {
        var stream: [UInt8] = []
        var length = 8
        var i: UInt64 = 0
        while stream.count < length {
            guard i < XNLayout.typeCatalogueBlocks else { throw .corruptImage("type catalogue runs past its blocks") }
            let block = try readBlock(&device, g.typeCatalogueStart + i)
            guard isSealed(block) else { throw .corruptImage("type catalogue block \(i) checksum mismatch") }
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
            let name = Name.decode(stream, at: at)
            at += XNLayout.nameBytesMax + 1
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
                templates.append(try Template(id: TypeID(rawValue: UInt32(n + 1)), name: name, owns: codes[0], acl: codes[1], size: codes[2]))
            } catch {
                throw .corruptImage("stored template '\(name)' no longer verifies: \(error)")
            }
        }
        return templates
    }

    /// The root catalogue: count u32, then 112-byte entries (name 32, block u64, type u32,
    /// rights u8, component count u8, 2 bytes padding, 8 components u64).
    static func rootCatalogueBlock(_ roots: [RootEntry]) -> [UInt8] {
        var payload = [UInt8](repeating: 0, count: XNLayout.payloadBytes)
        payload.put32(UInt32(roots.count), at: 0)
        for (i, root) in roots.enumerated() {
            let at = 8 + 112 * i
            Name.encode(root.name, into: &payload, at: at)
            payload.put64(root.block, at: at + 32)
            payload.put32(root.type.rawValue, at: at + 40)
            payload[at + 44] = root.capability.rights.rawValue
            payload[at + 45] = UInt8(root.capability.name.count)
            for (j, c) in root.capability.name.enumerated() { payload.put64(c, at: at + 48 + 8 * j) }
        }
        return sealed(payload[...])
    }

    static func loadRoots(_ device: inout D, _ g: XNLayout.Geometry, typeCount: Int) throws(XNError) -> [RootEntry] {
        let block = try readBlock(&device, g.rootCatalogue)
        guard isSealed(block) else { throw .corruptImage("root catalogue checksum mismatch") }
        let count = Int(block.u32(at: 0))
        guard count <= XNLayout.rootsMax else { throw .corruptImage("root catalogue claims \(count) roots") }
        var roots: [RootEntry] = []
        for i in 0..<count {
            let at = 8 + 112 * i
            let components = Int(block[at + 45])
            guard components <= KernelLimits.nameComponentsMax, Rights.all.rawValue | block[at + 44] == Rights.all.rawValue else {
                throw .corruptImage("root \(i) has a malformed capability")
            }
            let capability = try! Capability(name: (0..<components).map { block.u64(at: at + 48 + 8 * $0) },
                                             rights: Rights(rawValue: block[at + 44]))
            let entry = RootEntry(name: Name.decode(block, at: at), block: block.u64(at: at + 32),
                                  type: TypeID(rawValue: block.u32(at: at + 40)), capability: capability)
            guard entry.block >= g.dataStart, entry.block < g.blockCount else { throw .corruptImage("root '\(entry.name)' points outside the data area") }
            guard entry.type != .data, Int(entry.type.rawValue) <= typeCount else { throw .corruptImage("root '\(entry.name)' has unknown type \(entry.type.rawValue)") }
            roots.append(entry)
        }
        return roots
    }
}
