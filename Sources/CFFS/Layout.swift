// C-FFS's on-disk format (Ganger & Kaashoek, "Embedded Inodes and Explicit Grouping",
// USENIX 1997), laid over XN. Three metadata types, each an XN template whose UDFs C-FFS
// builds itself (UDFs.swift); data blocks are XN's untyped blocks. All integers are
// little-endian; a block is one page.
//
//  Every metadata block starts with the same 64-byte header:
//
//     0   magic u32        4  dirType u32     8  indType u32    12  level u32 (ind)
//     16  uid u32          20 gid u32         24 mode u32       28  inoType u32
//     32  next u64 (super: the root directory; dir: the directory's next block)
//     40  mtime i64 (the root directory's, which has no entry)      48..63 reserved
//
//  The type ids a block points with live in its header, written while the block is
//  still empty: XN compares a change's pointers as (block, type) pairs, so they cannot
//  change once the block points to anything. uid/gid/mode are the permissions its `acl`
//  UDF checks: a directory block carries its directory's, an indirect block its file's.
//
//  cffs.super  the XN root: `next` is the root directory's first block.
//  cffs.dir    a directory block: 15 slots of 256 bytes from byte 64, each empty (mode 0)
//              or an entry with the file's inode embedded in it:
//                 0 mode u32 (st_mode)   4 uid u32   8 gid u32   12 nlink u16
//                 14 name length u8      15 flags u8
//                 16 size u64   24 mtime i64   32 ctime i64   40 atime i64 (ns)
//                 48 ino u64
//                 56 direct[7] u64: a file's first 7 data blocks; a directory's first block
//                 112 indirect u64, 120 double indirect u64, 128 triple indirect u64
//                 136 name, up to 120 bytes
//              A hard link is a link entry: mode 0o170000, the creator's uid and gid,
//              the name, and in direct[0] the file's inode block.
//  cffs.inode  a hard-linked file's inode block (XN lets it have several parents): its
//              entry, as it was in its directory, in slot 0; the rest zero.
//  cffs.ind    an indirect block: `level` 1 points to data blocks, 2 and 3 to indirect
//              blocks of the level below; 504 pointers from byte 64.

import XokABI

/// Offsets and sizes of the format.
public enum CFFSLayout {
    public static let blockBytes = KernelLimits.pageBytes
    public static let superMagic: UInt32 = 0x5346_4643   // "CFFS"
    public static let dirMagic: UInt32 = 0x5249_4443     // "CDIR"
    public static let indMagic: UInt32 = 0x444e_4943     // "CIND"
    public static let inoMagic: UInt32 = 0x4f4e_4943     // "CINO"
    public static let version: UInt32 = 3

    // Header.
    public static let headerBytes = 64
    public static let magic = 0, dirType = 4, indType = 8, level = 12
    public static let uid = 16, gid = 20, mode = 24, inoType = 28
    public static let next = 32
    public static let headerMtime = 40

    // Directory slots.
    public static let slotsStart = 64
    public static let slotBytes = 256
    public static let slots = 15
    public static func slotOffset(_ slot: Int) -> Int { slotsStart + slot * slotBytes }

    // Entry fields, from the slot's start.
    public static let eMode = 0, eUID = 4, eGID = 8, eNlink = 12, eNameLength = 14, eFlags = 15
    public static let eSize = 16, eMtime = 24, eCtime = 32, eAtime = 40, eIno = 48
    public static let eDirect = 56
    public static let directCount = 7
    public static let eIndirect = 112
    public static let indirectLevels = 3
    public static let eName = 136
    public static let nameBytesMax = 120
    /// Offsets of every pointer field in an entry: the direct ones, then the indirect.
    public static let pointerFields: [Int] = (0..<directCount).map { eDirect + 8 * $0 } + (0..<indirectLevels).map { eIndirect + 8 * $0 }

    // Indirect blocks.
    public static let indPointersStart = 64
    public static let indPointers = (blockBytes - indPointersStart) / 8

    /// Blocks a file can address: direct, then one, two and three levels of indirection.
    public static let blocksMax: UInt64 = {
        let n = UInt64(indPointers)
        return UInt64(directCount) + n + n * n + n * n * n
    }()
    /// The largest size an entry may record (about 489 GiB): what its blocks can hold.
    /// The UDFs refuse a larger one, and every reader treats one as damage.
    public static let bytesMax: UInt64 = blocksMax * UInt64(blockBytes)
}

/// File types and permission bits, as in st_mode.
public enum FileMode {
    public static let typeMask: UInt32 = 0o170000
    public static let directory: UInt32 = 0o040000
    public static let regular: UInt32 = 0o100000
    public static let symlink: UInt32 = 0o120000
    /// A link entry's type: a name whose inode is in a block of its own (no file has it).
    public static let link: UInt32 = 0o170000
    public static let permissionMask: UInt32 = 0o7777
}

/// How C-FFS names users and groups in capabilities (the names its UDFs check):
/// `[tag]` is the superuser, `[tag, 1, uid]` a user, `[tag, 2, gid]` a group, and
/// `[tag, 0]` the mount capability that protects the XN root.
public enum CFFSNames {
    /// Under 2^31, so a UDF compares it as an immediate.
    public static let tag: UInt64 = 0x4346_4653
    public static let userKind: UInt64 = 1
    public static let groupKind: UInt64 = 2
    public static let mountKind: UInt64 = 0
    public static var superuser: [UInt64] { [tag] }
    public static func user(_ uid: UInt32) -> [UInt64] { [tag, userKind, UInt64(uid)] }
    /// Membership of `uid` in group `gid`. The uid is part of the name so that a file
    /// created through the group's permission still names its real owner, which the
    /// directory's acl checks.
    public static func group(_ gid: UInt32, member uid: UInt32) -> [UInt64] { [tag, groupKind, UInt64(gid), UInt64(uid)] }
    public static var mount: [UInt64] { [tag, mountKind] }
}

/// An inode embedded in a directory entry, with the entry's name.
public struct Inode: Equatable, Sendable {
    public var mode: UInt32 = 0
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var nlink: UInt16 = 1
    public var flags: UInt8 = 0
    public var size: UInt64 = 0
    public var mtime: Int64 = 0
    public var ctime: Int64 = 0
    public var atime: Int64 = 0
    public var ino: UInt64 = 0
    /// The direct blocks, then the indirect ones (0: none).
    public var pointers = [BlockNumber](repeating: 0, count: CFFSLayout.directCount + CFFSLayout.indirectLevels)
    public var name: [UInt8] = []

    public init() {}

    public var type: UInt32 { mode & FileMode.typeMask }
    public var isDirectory: Bool { type == FileMode.directory }
    public var isRegular: Bool { type == FileMode.regular }
    public var isSymlink: Bool { type == FileMode.symlink }
    /// A link entry: the file is in inode block `pointers[0]`.
    public var isLink: Bool { type == FileMode.link }

    /// Decodes the slot at `offset` of a directory block; nil for an empty slot.
    public init?(_ block: [UInt8], at offset: Int) {
        let mode = block.le32(offset + CFFSLayout.eMode)
        guard mode != 0 else { return nil }
        self.mode = mode
        uid = block.le32(offset + CFFSLayout.eUID)
        gid = block.le32(offset + CFFSLayout.eGID)
        nlink = UInt16(truncatingIfNeeded: block.le32(offset + CFFSLayout.eNlink))
        flags = block[offset + CFFSLayout.eFlags]
        size = block.le64(offset + CFFSLayout.eSize)
        mtime = Int64(bitPattern: block.le64(offset + CFFSLayout.eMtime))
        ctime = Int64(bitPattern: block.le64(offset + CFFSLayout.eCtime))
        atime = Int64(bitPattern: block.le64(offset + CFFSLayout.eAtime))
        ino = block.le64(offset + CFFSLayout.eIno)
        pointers = CFFSLayout.pointerFields.map { block.le64(offset + $0) }
        let length = min(Int(block[offset + CFFSLayout.eNameLength]), CFFSLayout.nameBytesMax)
        name = Array(block[offset + CFFSLayout.eName..<offset + CFFSLayout.eName + length])
    }

    /// What is wrong with the entry in the slot at `offset` of a directory or inode block,
    /// as a reader must never trust it: a name that no UDF lets in (empty, longer than
    /// 120 bytes, holding NUL or '/', "." or ".."), a type C-FFS does not make, or a size
    /// past what the layout holds. nil for a sound entry (or an empty slot).
    public static func damage(in block: [UInt8], at offset: Int) -> String? {
        let mode = block.le32(offset + CFFSLayout.eMode)
        guard mode != 0 else { return nil }
        let length = Int(block[offset + CFFSLayout.eNameLength])
        guard length >= 1, length <= CFFSLayout.nameBytesMax else { return "a name of \(length) bytes" }
        let name = block[offset + CFFSLayout.eName..<offset + CFFSLayout.eName + length]
        if name.contains(0) || name.contains(0x2f) || name.elementsEqual([0x2e]) || name.elementsEqual([0x2e, 0x2e]) {
            return "an invalid name"
        }
        let size = block.le64(offset + CFFSLayout.eSize)
        switch mode & FileMode.typeMask {
        case FileMode.regular, FileMode.directory, FileMode.link:
            if size > CFFSLayout.bytesMax { return "a size of \(size) bytes, past what a file can hold" }
        case FileMode.symlink:
            if size > UInt64(CFFSLayout.blockBytes) { return "a symbolic link of \(size) bytes" }
        default:
            return "an unknown file type"
        }
        return nil
    }

    /// The slot's 256 bytes.
    public var encoded: [UInt8] {
        var b = [UInt8](repeating: 0, count: CFFSLayout.slotBytes)
        b.put32(mode, at: CFFSLayout.eMode)
        b.put32(uid, at: CFFSLayout.eUID)
        b.put32(gid, at: CFFSLayout.eGID)
        b[CFFSLayout.eNlink] = UInt8(truncatingIfNeeded: nlink)
        b[CFFSLayout.eNlink + 1] = UInt8(truncatingIfNeeded: nlink >> 8)
        b[CFFSLayout.eNameLength] = UInt8(truncatingIfNeeded: min(name.count, CFFSLayout.nameBytesMax))
        b[CFFSLayout.eFlags] = flags
        b.put64(size, at: CFFSLayout.eSize)
        b.put64(UInt64(bitPattern: mtime), at: CFFSLayout.eMtime)
        b.put64(UInt64(bitPattern: ctime), at: CFFSLayout.eCtime)
        b.put64(UInt64(bitPattern: atime), at: CFFSLayout.eAtime)
        b.put64(ino, at: CFFSLayout.eIno)
        for (i, field) in CFFSLayout.pointerFields.enumerated() { b.put64(pointers[i], at: field) }
        for (i, byte) in name.prefix(CFFSLayout.nameBytesMax).enumerated() { b[CFFSLayout.eName + i] = byte }
        return b
    }
}

/// The header every C-FFS metadata block starts with.
public struct BlockHeader: Equatable, Sendable {
    public var magic: UInt32
    public var dirType: TypeID
    public var indType: TypeID
    public var inoType = TypeID(rawValue: 0)
    public var level: UInt32 = 0
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var mode: UInt32 = 0
    public var next: BlockNumber = 0
    public var mtime: Int64 = 0

    public init(magic: UInt32, dirType: TypeID, indType: TypeID, inoType: TypeID) {
        self.magic = magic
        self.dirType = dirType
        self.indType = indType
        self.inoType = inoType
    }

    public init(_ block: [UInt8]) {
        magic = block.le32(CFFSLayout.magic)
        dirType = TypeID(rawValue: block.le32(CFFSLayout.dirType))
        indType = TypeID(rawValue: block.le32(CFFSLayout.indType))
        level = block.le32(CFFSLayout.level)
        uid = block.le32(CFFSLayout.uid)
        gid = block.le32(CFFSLayout.gid)
        mode = block.le32(CFFSLayout.mode)
        inoType = TypeID(rawValue: block.le32(CFFSLayout.inoType))
        next = block.le64(CFFSLayout.next)
        mtime = Int64(bitPattern: block.le64(CFFSLayout.headerMtime))
    }

    /// The header's 64 bytes.
    public var encoded: [UInt8] {
        var b = [UInt8](repeating: 0, count: CFFSLayout.headerBytes)
        b.put32(magic, at: CFFSLayout.magic)
        b.put32(dirType.rawValue, at: CFFSLayout.dirType)
        b.put32(indType.rawValue, at: CFFSLayout.indType)
        b.put32(level, at: CFFSLayout.level)
        b.put32(uid, at: CFFSLayout.uid)
        b.put32(gid, at: CFFSLayout.gid)
        b.put32(mode, at: CFFSLayout.mode)
        b.put32(inoType.rawValue, at: CFFSLayout.inoType)
        b.put64(next, at: CFFSLayout.next)
        b.put64(UInt64(bitPattern: mtime), at: CFFSLayout.headerMtime)
        return b
    }
}

extension Array where Element == UInt8 {
    /// The little-endian u32 at `offset` (the format's integers).
    public func le32(_ offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16 | UInt32(self[offset + 3]) << 24
    }
    /// The little-endian u64 at `offset`.
    public func le64(_ offset: Int) -> UInt64 { UInt64(le32(offset)) | UInt64(le32(offset + 4)) << 32 }
    mutating func put32(_ value: UInt32, at offset: Int) {
        for i in 0..<4 { self[offset + i] = UInt8(truncatingIfNeeded: value >> UInt32(8 * i)) }
    }
    mutating func put64(_ value: UInt64, at offset: Int) {
        for i in 0..<8 { self[offset + i] = UInt8(truncatingIfNeeded: value >> UInt64(8 * i)) }
    }
}

/// Little-endian bytes of a value, for changes.
func bytes32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> UInt32(8 * $0)) } }
func bytes64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * $0)) } }
