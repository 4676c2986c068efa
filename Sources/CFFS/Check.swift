// C-FFS's own fsck, on top of XN's: what only the file system knows. XN's check already
// proves every block reachable once and of a known type; this walks the same tree as
// C-FFS reads it and checks its rules: block headers, names (valid and unique in their
// directory), file types, link count fields, the owner and mode every block of a file or
// directory carries, and indirect levels. Blocks past a file's size are noted, not
// counted as violations: a crash can leave them, and C-FFS frees them before the file
// grows over them.

import XokABI

/// What C-FFS's check found.
public struct CFFSCheckReport: Sendable {
    public var directories = 0, files = 0, symlinks = 0
    /// Blocks of file data (allocated, not holes).
    public var dataBlocks = 0
    public var violations: [String] = []
    /// What a crash may leave and C-FFS clears itself: blocks past a file's end (freed
    /// before the file grows over them). Worth knowing; not wrong.
    public var notes: [String] = []
}

/// Checks a C-FFS image through `read`, which returns a block's bytes (or nil when it
/// cannot be read). Reads the disk only; changes nothing.
public struct CFFSCheck {
    let read: (BlockNumber) -> [UInt8]?
    var report = CFFSCheckReport()
    /// Directories still to walk: their first block, path and stamp.
    var pending: [(block: BlockNumber, path: String, stamp: Stamp, links: UInt16?)] = []
    /// A progress callback, given the directories walked so far.
    let progress: (Int) -> Void
    /// Every directory block walked: a damaged image could make directories loop.
    var visited: Set<BlockNumber> = []
    /// Inode blocks already checked (a file with several names is checked once).
    var inodeBlocks: Set<BlockNumber> = []

    struct Stamp: Equatable {
        var uid: UInt32, gid: UInt32, mode: UInt32
    }

    /// Checks the C-FFS whose superblock (XN root) is `superblock`.
    public static func check(superblock: BlockNumber, progress: @escaping (Int) -> Void = { _ in },
                             read: @escaping (BlockNumber) -> [UInt8]?) -> CFFSCheckReport {
        var check = CFFSCheck(read: read, progress: progress)
        check.run(superblock)
        return check.report
    }

    mutating func violation(_ text: String) { report.violations.append(text) }

    mutating func run(_ superblock: BlockNumber) {
        guard let bytes = read(superblock) else { return violation("the superblock (block \(superblock)) cannot be read") }
        let header = BlockHeader(bytes)
        guard header.magic == CFFSLayout.superMagic else { return violation("block \(superblock) is not a C-FFS superblock") }
        guard header.next != 0 else { return violation("the superblock names no root directory") }
        guard let root = read(header.next) else { return violation("the root directory (block \(header.next)) cannot be read") }
        let rootHeader = BlockHeader(root)
        pending.append((header.next, "/", Stamp(uid: rootHeader.uid, gid: rootHeader.gid, mode: rootHeader.mode), nil))
        while let (block, path, stamp, links) = pending.popLast() {
            directory(block, path, stamp)
            if let links, links != 2 {
                // C-FFS derives a directory's count from its entries; the field stays 2.
                violation("\(path): link count field \(links) (a directory's is derived from its entries; 2 expected)")
            }
            report.directories += 1
            if report.directories % 256 == 0 { progress(report.directories) }
        }
    }

    /// Checks one directory's blocks and entries.
    mutating func directory(_ first: BlockNumber, _ path: String, _ stamp: Stamp) {
        var names = Set<[UInt8]>()
        var block = first
        var seen = Set<BlockNumber>()
        while block != 0 {
            guard seen.insert(block).inserted else {
                violation("\(path): its blocks form a loop at block \(block)")
                break
            }
            guard visited.insert(block).inserted else {
                violation("\(path): block \(block) belongs to another directory too")
                break
            }
            guard let bytes = read(block) else {
                violation("\(path): block \(block) cannot be read")
                break
            }
            if bytes.allSatisfy({ $0 == 0 }) {
                // Its allocator died before writing the header (XN writes back what a dead
                // environment left); C-FFS lays it out at its first use.
                report.notes.append("\(path): block \(block) was never laid out: an empty directory block")
                break
            }
            let header = BlockHeader(bytes)
            if header.magic != CFFSLayout.dirMagic { violation("\(path): block \(block) is not a directory block") }
            if Stamp(uid: header.uid, gid: header.gid, mode: header.mode) != stamp {
                violation("\(path): block \(block) carries owner \(header.uid):\(header.gid) mode \(octal(header.mode)), "
                          + "the directory is \(stamp.uid):\(stamp.gid) \(octal(stamp.mode))")
            }
            for slot in 0..<CFFSLayout.slots {
                guard let inode = Inode(bytes, at: CFFSLayout.slotOffset(slot)) else { continue }
                let name = String(decoding: inode.name, as: UTF8.self)
                let child = path == "/" ? "/" + name : path + "/" + name
                let length = Int(bytes[CFFSLayout.slotOffset(slot) + CFFSLayout.eNameLength])
                if length == 0 || length > CFFSLayout.nameBytesMax || inode.name.contains(0) || inode.name.contains(0x2f)
                    || inode.name == [0x2e] || inode.name == [0x2e, 0x2e] {
                    violation("\(path): slot \(slot) of block \(block) has an invalid name")
                }
                if !names.insert(inode.name).inserted { violation("\(child): the name appears twice in its directory") }
                self.entry(inode, child, block: block, slot: slot)
            }
            block = header.next
        }
    }

    /// Checks one entry (a directory is queued for its own walk).
    mutating func entry(_ inode: Inode, _ path: String, block: BlockNumber, slot: Int) {
        let stamp = Stamp(uid: inode.uid, gid: inode.gid, mode: inode.mode)
        switch inode.type {
        case FileMode.directory:
            let first = inode.pointers[0]
            if first == 0 {
                violation("\(path): a directory without a block")
                return
            }
            if inode.pointers.dropFirst().contains(where: { $0 != 0 }) { violation("\(path): a directory with file block pointers") }
            pending.append((first, path, stamp, inode.nlink))
        case FileMode.regular, FileMode.symlink:
            if inode.type == FileMode.symlink {
                report.symlinks += 1
                if inode.size == 0 || inode.size > UInt64(CFFSLayout.blockBytes) {
                    violation("\(path): a symbolic link of \(inode.size) bytes (1 to \(CFFSLayout.blockBytes) expected)")
                }
            } else {
                report.files += 1
                if inode.size > CFFSLayout.bytesMax {
                    violation("\(path): a size of \(inode.size) bytes, past the \(CFFSLayout.bytesMax) a file can hold")
                }
            }
            if inode.nlink != 1 { violation("\(path): link count field \(inode.nlink) (a file's names are counted, not stored; 1 expected)") }
            fileBlocks(inode, path, stamp)
        case FileMode.link:
            linked(inode, path)
        default:
            violation("\(path): slot \(slot) of block \(block) has unknown file type \(octal(inode.type))")
        }
    }

    /// Checks a link entry and, the first time it is reached, the inode block it names:
    /// a C-FFS inode block holding one file (never a directory) in slot 0 and nothing
    /// else. XN counts the names (its parents) and has checked each is reached only from
    /// link entries of one type.
    mutating func linked(_ link: Inode, _ path: String) {
        let block = link.pointers[0]
        if block == 0 || link.pointers.dropFirst().contains(where: { $0 != 0 }) || link.size != 0 {
            violation("\(path): a link entry must name one inode block and nothing else")
        }
        guard block != 0 else { return }
        guard inodeBlocks.insert(block).inserted else { return }
        guard let bytes = read(block) else { return violation("\(path): inode block \(block) cannot be read") }
        if BlockHeader(bytes).magic != CFFSLayout.inoMagic { return violation("\(path): block \(block) is not an inode block") }
        if bytes[CFFSLayout.slotsStart + CFFSLayout.slotBytes..<CFFSLayout.blockBytes].contains(where: { $0 != 0 }) {
            violation("\(path): inode block \(block) holds more than its file")
        }
        guard let inode = Inode(bytes, at: CFFSLayout.slotsStart), inode.isRegular || inode.isSymlink else {
            return violation("\(path): inode block \(block) holds no file")
        }
        entry(inode, path, block: block, slot: 0)
    }

    /// Checks a file's blocks: none past its size, indirect blocks of the right level and
    /// stamp.
    mutating func fileBlocks(_ inode: Inode, _ path: String, _ stamp: Stamp) {
        let bytes = UInt64(CFFSLayout.blockBytes)
        let (blocksForSize, _) = inode.size.addingReportingOverflow(bytes - 1)
        let needed = blocksForSize / bytes
        for k in 0..<CFFSLayout.directCount where inode.pointers[k] != 0 {
            report.dataBlocks += 1
            if UInt64(k) >= needed { report.notes.append("\(path): direct block \(k) lies past the file's size (\(inode.size) bytes)") }
        }
        // The first index each indirect level covers.
        var start = UInt64(CFFSLayout.directCount)
        var span: UInt64 = 1
        for level in 1...CFFSLayout.indirectLevels {
            span = span.multipliedReportingOverflow(by: UInt64(CFFSLayout.indPointers)).partialValue
            let pointer = inode.pointers[CFFSLayout.directCount + level - 1]
            if pointer != 0 { indirect(pointer, level: level, first: start, span: span, needed: needed, path, stamp) }
            start = start.addingReportingOverflow(span).partialValue
        }
    }

    /// An indirect block at `level` covering data indexes `first ..< first + span`.
    mutating func indirect(_ block: BlockNumber, level: Int, first: UInt64, span: UInt64, needed: UInt64, _ path: String, _ stamp: Stamp) {
        guard let bytes = read(block) else { return violation("\(path): indirect block \(block) cannot be read") }
        let header = BlockHeader(bytes)
        if bytes[..<CFFSLayout.indPointersStart].allSatisfy({ $0 == 0 }) {
            // Its allocator died before writing the header; its pointers, if its file's
            // writers added some since (the UDF lets them), are checked below as any are.
            report.notes.append("\(path): indirect block \(block) was never laid out")
        } else {
            if header.magic != CFFSLayout.indMagic { violation("\(path): block \(block) is not an indirect block") }
            if header.level != UInt32(level) { violation("\(path): indirect block \(block) says level \(header.level), it is at level \(level)") }
            if Stamp(uid: header.uid, gid: header.gid, mode: header.mode) != stamp {
                violation("\(path): indirect block \(block) carries owner \(header.uid):\(header.gid) mode \(octal(header.mode)), "
                          + "the file is \(stamp.uid):\(stamp.gid) \(octal(stamp.mode))")
            }
        }
        if first >= needed { report.notes.append("\(path): indirect block \(block) lies past the file's size") }
        let each = span / UInt64(CFFSLayout.indPointers)
        for i in 0..<CFFSLayout.indPointers {
            let pointer = bytes.le64(CFFSLayout.indPointersStart + 8 * i)
            guard pointer != 0 else { continue }
            let index = first.addingReportingOverflow(UInt64(i).multipliedReportingOverflow(by: each).partialValue).partialValue
            if level == 1 {
                report.dataBlocks += 1
                if index >= needed { report.notes.append("\(path): data block \(pointer) (index \(index)) lies past the file's size") }
            } else {
                indirect(pointer, level: level - 1, first: index, span: each, needed: needed, path, stamp)
            }
        }
    }

    func octal(_ v: UInt32) -> String { "0" + String(v, radix: 8) }
}
