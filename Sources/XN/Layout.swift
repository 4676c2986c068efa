// XN's structures on disk. Every one carries a CRC-32C in its last 4 bytes.
//
//     block 0            superblock
//     1 ...              free map: one bit per block (1 = allocated), 4088 bytes a block
//     then T blocks      type catalogue: one byte stream of templates
//     then R blocks      root catalogue
//     then 65 blocks     move log: a record, then the images of up to 64 blocks that
//                        must reach the disk together (docs/xn.md, "Moves")
//     then ...           data: metadata and data blocks of the library file systems
//
// The catalogues grow with the disk (T from 32 to 1024 blocks, R from 1 to 32), so a
// small simulated disk keeps most of its blocks for data and a real one holds many
// library file systems.
//
// Superblock (little-endian): magic u64 "XNDISK01" at 0, version u32 at 8, block size u32
// at 12, block count u64 at 16, clean-shutdown flag u8 at 24, free map start u64 at 32 and
// blocks u64 at 40, type catalogue start u64 at 48 and blocks u64 at 56, root catalogue
// start u64 at 64, data start u64 at 72, root catalogue blocks u64 at 80, move log start
// u64 at 88 and blocks u64 at 96; CRC-32C of bytes 0..<4092 at 4092.

import XokABI

/// XN's geometry and on-disk constants.
public enum XNLayout {
    /// One page: a cached block is a frame.
    public static let blockBytes = KernelLimits.pageBytes
    public static let magic: UInt64 = 0x3130_4b53_4944_4e58   // "XNDISK01"
    public static let version: UInt32 = 4
    /// Bytes of payload in a checksummed block.
    public static let payloadBytes = blockBytes - 4
    /// Bits of free map per block.
    public static let freeMapBitsPerBlock = 4088 * 8
    /// Templates the catalogue holds at most; type 0 is reserved for untyped data blocks.
    /// A few types per library file system, for a few hundred file systems.
    public static let typesMax = 1024
    /// Bytes of one UDF program.
    public static let udfBytesMax = KernelLimits.udfBytesMax
    /// Bytes of a template or root name.
    public static let nameBytesMax = KernelLimits.xnNameBytesMax
    /// Bytes of one root catalogue entry, and entries per catalogue block.
    public static let rootEntryBytes = 112
    public static let rootsPerBlock = (payloadBytes - 8) / rootEntryBytes
    /// Root catalogue entries at most (32 blocks of them).
    public static let rootsMax = 32 * rootsPerBlock
    /// Byte modifications in one change.
    public static let modificationsMax = 64
    /// Blocks one change allocates or frees at most.
    public static let batchMax = KernelLimits.xnBatchMax
    /// The untyped data type.
    public static let dataType: UInt32 = 0
    /// Blocks the move log holds: the most one unit of moves written together may span.
    public static let moveLogImages = 64
    /// Blocks a move may tie together at most (its group, and the parents of new blocks
    /// among them): a move past it waits for the group to be written (`moving`). The
    /// rest of the log is for what a unit takes along when it is written.
    public static let moveGroupMax = 16
    /// The move log record's magic, "XNMOVE01".
    public static let moveLogMagic: UInt64 = 0x3130_4556_4f4d_4e58

    /// A superblock for `geometry` (for tools that build images, such as fsck's tests).
    public static func superblock(for geometry: Geometry, clean: Bool) -> [UInt8] {
        Superblock(geometry: geometry, clean: clean).encoded
    }

    /// Recomputes the checksum of one of XN's structure blocks (for tools that build
    /// images, such as fsck's tests).
    public static func reseal(_ block: inout [UInt8]) {
        block.put32(CRC32C.checksum(block[0..<payloadBytes]), at: payloadBytes)
    }

    /// Where each structure lives on a device of `blocks` blocks.
    public struct Geometry: Equatable, Sendable {
        public var blockCount: UInt64
        public var freeMapStart: UInt64 = 1
        public var freeMapBlocks: UInt64
        public var typeCatalogueStart: UInt64
        public var typeCatalogueBlocks: UInt64
        public var rootCatalogue: UInt64
        public var rootCatalogueBlocks: UInt64
        public var moveLogStart: UInt64
        public var moveLogBlocks: UInt64 = UInt64(1 + XNLayout.moveLogImages)
        public var dataStart: UInt64

        public init?(blockCount: UInt64) {
            self.blockCount = blockCount
            freeMapBlocks = blockCount / UInt64(XNLayout.freeMapBitsPerBlock) + 1
            typeCatalogueBlocks = min(1024, max(32, blockCount / 64))
            rootCatalogueBlocks = min(32, max(1, blockCount / 2048))
            typeCatalogueStart = freeMapStart + freeMapBlocks
            rootCatalogue = typeCatalogueStart + typeCatalogueBlocks
            moveLogStart = rootCatalogue + rootCatalogueBlocks
            dataStart = moveLogStart + moveLogBlocks
            guard dataStart < blockCount else { return nil }
        }

        /// Roots this disk's catalogue holds.
        public var rootsMax: Int { Int(rootCatalogueBlocks) * XNLayout.rootsPerBlock }
    }
}

/// The superblock.
struct Superblock: Equatable {
    var geometry: XNLayout.Geometry
    var clean: Bool

    init(geometry: XNLayout.Geometry, clean: Bool) {
        self.geometry = geometry
        self.clean = clean
    }

    var encoded: [UInt8] {
        var b = [UInt8](repeating: 0, count: XNLayout.blockBytes)
        b.put64(XNLayout.magic, at: 0)
        b.put32(XNLayout.version, at: 8)
        b.put32(UInt32(XNLayout.blockBytes), at: 12)
        b.put64(geometry.blockCount, at: 16)
        b[24] = clean ? 1 : 0
        b.put64(geometry.freeMapStart, at: 32)
        b.put64(geometry.freeMapBlocks, at: 40)
        b.put64(geometry.typeCatalogueStart, at: 48)
        b.put64(geometry.typeCatalogueBlocks, at: 56)
        b.put64(geometry.rootCatalogue, at: 64)
        b.put64(geometry.dataStart, at: 72)
        b.put64(geometry.rootCatalogueBlocks, at: 80)
        b.put64(geometry.moveLogStart, at: 88)
        b.put64(geometry.moveLogBlocks, at: 96)
        b.put32(CRC32C.checksum(b[0..<XNLayout.payloadBytes]), at: XNLayout.payloadBytes)
        return b
    }

    /// - Throws: `notXN` for another magic or version; `corruptImage` for a bad checksum or
    ///   a geometry that does not match the device.
    init(decoding b: [UInt8], deviceBlocks: UInt64) throws(XNError) {
        guard b.u64(at: 0) == XNLayout.magic else { throw .notXN("no XN magic in block 0") }
        guard b.u32(at: 8) == XNLayout.version else { throw .notXN("layout version \(b.u32(at: 8)), expected \(XNLayout.version)") }
        guard b.u32(at: XNLayout.payloadBytes) == CRC32C.checksum(b[0..<XNLayout.payloadBytes]) else {
            throw .corruptImage("superblock checksum mismatch")
        }
        let count = b.u64(at: 16)
        guard count <= deviceBlocks, let g = XNLayout.Geometry(blockCount: count) else {
            throw .corruptImage("superblock says \(count) blocks; the device has \(deviceBlocks)")
        }
        guard b.u32(at: 12) == UInt32(XNLayout.blockBytes), b.u64(at: 32) == g.freeMapStart, b.u64(at: 40) == g.freeMapBlocks,
              b.u64(at: 48) == g.typeCatalogueStart, b.u64(at: 56) == g.typeCatalogueBlocks,
              b.u64(at: 64) == g.rootCatalogue, b.u64(at: 72) == g.dataStart, b.u64(at: 80) == g.rootCatalogueBlocks,
              b.u64(at: 88) == g.moveLogStart, b.u64(at: 96) == g.moveLogBlocks, b[24] <= 1 else {
            throw .corruptImage("superblock geometry is inconsistent")
        }
        geometry = g
        clean = b[24] == 1
    }
}

/// Fixed-size names, NUL-padded on disk. A name is 1 to `nameBytesMax` bytes of UTF-8
/// with no NUL, so what is stored reads back as the same name.
enum Name {
    /// Whether `bytes` may name a type or a root.
    static func isValid(_ bytes: [UInt8]) -> Bool {
        !bytes.isEmpty && bytes.count <= XNLayout.nameBytesMax && !bytes.contains(0)
            && String(validating: bytes, as: UTF8.self) != nil
    }
    static func encode(_ name: [UInt8], into b: inout [UInt8], at offset: Int) {
        for (i, c) in name.prefix(XNLayout.nameBytesMax).enumerated() { b[offset + i] = c }
    }
    /// The stored name, or nil when the field is not a valid name (bytes after a NUL,
    /// or not UTF-8).
    static func decode(_ b: [UInt8], at offset: Int) -> [UInt8]? {
        let field = Array(b[offset..<offset + XNLayout.nameBytesMax + 1])
        let name = Array(field.prefix { $0 != 0 })
        guard field[name.count...].allSatisfy({ $0 == 0 }), isValid(name) else { return nil }
        return name
    }
}

/// The free map in memory: one bit per block, kept in chunks of 64 Ki blocks, where a
/// chunk with nothing allocated takes no memory. Memory and time follow what is
/// allocated, not what the superblock claims.
struct FreeMap {
    static let chunkBits = 1 << 16
    private var chunks: [Int: [UInt64]] = [:]
    let blockCount: UInt64
    /// Blocks marked allocated.
    private(set) var allocatedCount: UInt64 = 0

    init(blockCount: UInt64) { self.blockCount = blockCount }

    subscript(_ block: BlockNumber) -> Bool {
        get {
            guard block < blockCount, let chunk = chunks[Int(block >> 16)] else { return false }
            let bit = Int(block & 0xffff)
            return chunk[bit >> 6] & (1 << UInt64(bit & 63)) != 0
        }
        set {
            guard block < blockCount, self[block] != newValue else { return }
            let key = Int(block >> 16), bit = Int(block & 0xffff)
            var chunk = chunks[key] ?? [UInt64](repeating: 0, count: Self.chunkBits / 64)
            chunk[bit >> 6] ^= 1 << UInt64(bit & 63)
            if newValue { allocatedCount += 1 } else { allocatedCount -= 1 }
            chunks[key] = chunk.allSatisfy { $0 == 0 } ? nil : chunk
        }
    }

    /// The first block at or after `start` that is not allocated.
    func firstClear(from start: BlockNumber) -> BlockNumber? {
        var b = start
        while b < blockCount {
            guard let chunk = chunks[Int(b >> 16)] else { return b }
            let bit = Int(b & 0xffff)
            let word = chunk[bit >> 6] | ((1 << UInt64(bit & 63)) - 1)
            if word != .max {
                let found = (b & ~63) + UInt64((~word).trailingZeroBitCount)
                return found < blockCount ? found : nil
            }
            b = (b | 63) + 1
        }
        return nil
    }

    /// The bits of chunk `key` (blocks `key << 16` onward), nil when none is allocated.
    func chunk(_ key: UInt64) -> [UInt64]? { chunks[Int(key)] }

    /// Every allocated block, in order.
    var allocatedBlocks: [BlockNumber] {
        var result: [BlockNumber] = []
        for key in chunks.keys.sorted() {
            for (w, word) in chunks[key]!.enumerated() where word != 0 {
                for bit in 0..<64 where word & (1 << UInt64(bit)) != 0 { result.append(UInt64(key) << 16 | UInt64(w * 64 + bit)) }
            }
        }
        return result
    }
}
