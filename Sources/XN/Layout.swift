// XN's structures on disk. Every one carries a CRC-32C in its last 4 bytes.
//
//     block 0            superblock
//     1 ...              free map: one bit per block (1 = allocated), 4088 bytes a block
//     then 128 blocks    type catalogue: one byte stream of templates
//     then 1 block       root catalogue
//     then ...           data: metadata and data blocks of the library file systems
//
// Superblock (little-endian): magic u64 "XNDISK01" at 0, version u32 at 8, block size u32
// at 12, block count u64 at 16, clean-shutdown flag u8 at 24, free map start u64 at 32 and
// blocks u64 at 40, type catalogue start u64 at 48 and blocks u64 at 56, root catalogue
// start u64 at 64, data start u64 at 72; CRC-32C of bytes 0..<4092 at 4092.

/// XN's geometry and on-disk constants.
public enum XNLayout {
    public static let blockBytes = 4096
    public static let magic: UInt64 = 0x3130_4b53_4944_4e58   // "XNDISK01"
    public static let version: UInt32 = 1
    /// Bytes of payload in a checksummed block.
    public static let payloadBytes = blockBytes - 4
    /// Bits of free map per block.
    public static let freeMapBitsPerBlock = 4088 * 8
    public static let typeCatalogueBlocks: UInt64 = 128
    /// Templates the catalogue holds; type 0 is reserved for untyped data blocks.
    public static let typesMax = 32
    /// Bytes of one UDF program (512 instructions: XN's UDFs are small).
    public static let udfBytesMax = 4096
    /// Bytes of a template or root name.
    public static let nameBytesMax = 31
    /// Root catalogue entries: 32 of 116 bytes fit one block.
    public static let rootsMax = 32
    /// Byte modifications in one change.
    public static let modificationsMax = 64
    /// The untyped data type.
    public static let dataType: UInt32 = 0

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
        public var rootCatalogue: UInt64
        public var dataStart: UInt64

        public init?(blockCount: UInt64) {
            self.blockCount = blockCount
            freeMapBlocks = (blockCount + UInt64(XNLayout.freeMapBitsPerBlock) - 1) / UInt64(XNLayout.freeMapBitsPerBlock)
            typeCatalogueStart = freeMapStart + freeMapBlocks
            rootCatalogue = typeCatalogueStart + XNLayout.typeCatalogueBlocks
            dataStart = rootCatalogue + 1
            guard dataStart < blockCount else { return nil }
        }
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
        b.put64(XNLayout.typeCatalogueBlocks, at: 56)
        b.put64(geometry.rootCatalogue, at: 64)
        b.put64(geometry.dataStart, at: 72)
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
              b.u64(at: 48) == g.typeCatalogueStart, b.u64(at: 56) == XNLayout.typeCatalogueBlocks,
              b.u64(at: 64) == g.rootCatalogue, b.u64(at: 72) == g.dataStart, b[24] <= 1 else {
            throw .corruptImage("superblock geometry is inconsistent")
        }
        geometry = g
        clean = b[24] == 1
    }
}

/// Fixed-size names, NUL-padded.
enum Name {
    static func encode(_ s: String, into b: inout [UInt8], at offset: Int) {
        for (i, c) in s.utf8.prefix(XNLayout.nameBytesMax).enumerated() { b[offset + i] = c }
    }
    static func decode(_ b: [UInt8], at offset: Int) -> String {
        let bytes = b[offset..<offset + XNLayout.nameBytesMax + 1].prefix { $0 != 0 }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A table indexed by block number: the buffer cache registry's storage, one slot per
/// block of the device, so lookups on the change path need no hashing.
struct BlockTable<Value> {
    private var slots: [Value?]
    private(set) var count = 0

    init(blocks: UInt64) { slots = Array(repeating: nil, count: Int(blocks)) }

    subscript(_ block: BlockNumber) -> Value? {
        get { block < UInt64(slots.count) ? slots[Int(block)] : nil }
        set {
            precondition(block < UInt64(slots.count), "a block of the device")
            let index = Int(block)
            count += (newValue != nil ? 1 : 0) - (slots[index] != nil ? 1 : 0)
            slots[index] = newValue
        }
    }

    /// The blocks with an entry, in block order.
    var keys: [BlockNumber] { slots.indices.compactMap { slots[$0] == nil ? nil : BlockNumber($0) } }
}
