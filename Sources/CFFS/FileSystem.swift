// The C-FFS library file system: files and directories on XN, through a `KernelPort`.
// It knows the format (Layout.swift) and the UNIX rules, checks them itself for clear
// errors, and leaves the final word to its UDFs in the kernel. Paths, descriptors and
// processes are ExOS's; this works on directory entries (`FileRef`).
//
// Grouping (the paper's second idea): a directory's file blocks are allocated next to
// each other, from a cursor that starts at the directory's own block, so the small files
// of a directory lie in one contiguous run of the disk.

import XokABI

/// Where a file's inode lives: a directory block and a slot in it. The root directory,
/// which has no entry, is `.root`.
public struct FileRef: Hashable, Sendable {
    public var block: BlockNumber
    public var slot: Int
    public init(block: BlockNumber, slot: Int) {
        self.block = block
        self.slot = slot
    }
    public static let root = FileRef(block: 0, slot: 0)
    public var isRoot: Bool { block == 0 }
}

/// What stat(2) reports.
public struct FileStatus: Equatable, Sendable {
    public var ino: UInt64
    public var mode: UInt32
    public var nlink: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    /// 512-byte units allocated, as st_blocks.
    public var blocks: UInt64
    public var atime: Int64, mtime: Int64, ctime: Int64
    public var isDirectory: Bool { mode & FileMode.typeMask == FileMode.directory }
    public var isRegular: Bool { mode & FileMode.typeMask == FileMode.regular }
    public var isSymlink: Bool { mode & FileMode.typeMask == FileMode.symlink }
}

/// One directory entry as readdir gives it.
public struct DirectoryEntry: Sendable {
    public var name: [UInt8]
    public var ref: FileRef
    public var inode: Inode
}

/// A mounted C-FFS, used by one client (one environment).
public final class CFFS<P: KernelPort> {
    public let cache: BlockCache<P>
    public var port: P { cache.port }
    public let identity: CFFSIdentity
    /// The XN root (the superblock) and the root directory's first block.
    public let superblock: BlockNumber
    public let rootDirectory: BlockNumber
    public let superType: TypeID, dirType: TypeID, indType: TypeID, inoType: TypeID
    /// The clock for times, in nanoseconds since the epoch.
    public var now: () -> Int64
    /// Where each directory's next file block goes (grouping).
    var cursor: [BlockNumber: BlockNumber] = [:]
    /// Directories whose modification and change times this client has moved and not yet
    /// written: the new time, the directory's first block (to know it is still the same
    /// directory) and the credential to write with.
    var pendingTimes: [FileRef: (time: Int64, first: BlockNumber, credential: CapabilitySlot)] = [:]
    /// Where the last read of each file ended, in blocks (a read starting there is
    /// sequential, and reads ahead).
    var readEnd: [FileRef: UInt64] = [:]
    /// Names this client has looked up or made, and where their entries are: a name cache,
    /// each hit checked against the slot it names. Its blind spot: a directory block
    /// another environment freed and reused in another directory, with the same name at
    /// the same slot, which takes the removal of the first directory between two lookups;
    /// the UDFs still check every access made through such a hit.
    var names: [NameKey: FileRef] = [:]
    /// See `Miss`.
    var lastMiss: Miss?

    init(cache: BlockCache<P>, identity: CFFSIdentity, superblock: BlockNumber, header: BlockHeader, superType: TypeID,
         now: @escaping () -> Int64) {
        self.cache = cache
        self.identity = identity
        self.superblock = superblock
        self.rootDirectory = header.next
        self.superType = superType
        self.dirType = header.dirType
        self.indType = header.indType
        self.inoType = header.inoType
        self.now = now
    }

    // MARK: Formatting and mounting

    /// Installs C-FFS's types (or finds them installed), creates the XN root `name`
    /// protected by the capability in `mountCapability`, and an empty root directory
    /// owned by the identity with `mode`. Needs `types` and `roots` slots passing the
    /// kernel's system ACLs for XN types and roots.
    public static func format(port: P, identity: CFFSIdentity, name: String = "cffs", types: CapabilitySlot, roots: CapabilitySlot,
                              mountCapability: CapabilitySlot, mode: UInt32 = 0o755, now: @escaping () -> Int64,
                              policy: CachePolicy = DefaultCachePolicy()) throws(Errno) -> CFFS {
        let cache = BlockCache(port: port, identity: identity, policy: policy)
        let superType = try install(CFFSUDFs.superName, CFFSUDFs.superblock, cache, types)
        let dirType = try install(CFFSUDFs.dirName, CFFSUDFs.directory, cache, types)
        let indType = try install(CFFSUDFs.indName, CFFSUDFs.indirect, cache, types, freedWhole: true)
        let inoType = try install(CFFSUDFs.inodeName, CFFSUDFs.inode, cache, types, shareable: true)
        let frame = try cache.spareFrame()
        let block: BlockNumber
        do { block = try port.createRoot(named: name, type: superType, protection: mountCapability, frame: frame, credential: roots) } catch {
            cache.spare.append(frame)
            throw error == .nameTaken ? .EEXIST : Errno(error)
        }
        cache.ownFrame[block] = frame
        cache.note(block, parent: nil, credential: identity.mountSlot)
        let time = now()
        var header = BlockHeader(magic: CFFSLayout.superMagic, dirType: dirType, indType: indType, inoType: inoType)
        header.level = CFFSLayout.version
        // The root directory is allocated in the change that initializes the superblock:
        // once initialized, only the superuser may change it.
        let root = try cache.allocate(under: block, type: dirType, near: block, credential: identity.mountSlot) { child in
            var h = header
            h.next = child
            return [(0, h.encoded)]
        }
        var rootHeader = BlockHeader(magic: CFFSLayout.dirMagic, dirType: dirType, indType: indType, inoType: inoType)
        rootHeader.uid = identity.uid
        rootHeader.gid = identity.gid
        rootHeader.mode = FileMode.directory | (mode & FileMode.permissionMask)
        rootHeader.mtime = time
        try cache.modify(root, .write, [(0, rootHeader.encoded)], credential: identity.userSlot)
        header.next = root
        let fs = CFFS(cache: cache, identity: identity, superblock: block, header: header, superType: superType, now: now)
        try fs.sync()
        return fs
    }

    /// Mounts the C-FFS whose XN root is `name`.
    /// - Throws: `ENOENT` when there is no such root; `EINVAL` when it is not C-FFS's.
    public static func mount(port: P, identity: CFFSIdentity, name: String = "cffs", now: @escaping () -> Int64,
                             policy: CachePolicy = DefaultCachePolicy()) throws(Errno) -> CFFS {
        let cache = BlockCache(port: port, identity: identity, policy: policy)
        let root: XNRoot
        do { root = try port.root(named: name) } catch { throw error == .noSuchRoot ? .ENOENT : Errno(error) }
        guard let superType = try? port.type(named: CFFSUDFs.superName), root.type == superType else { throw .EINVAL }
        let bytes = try cache.read(root.block, parent: nil, credential: identity.mountSlot)
        let header = BlockHeader(bytes)
        guard header.magic == CFFSLayout.superMagic, header.level == CFFSLayout.version, header.next != 0 else { throw .EINVAL }
        return CFFS(cache: cache, identity: identity, superblock: root.block, header: header, superType: superType, now: now)
    }

    /// Installs one type, or finds it installed. Its UDFs travel in frames of the
    /// client's, freed afterwards.
    static func install(_ name: String, _ udfs: TypeUDFs, _ cache: BlockCache<P>, _ types: CapabilitySlot,
                        shareable: Bool = false, freedWhole: Bool = false) throws(Errno) -> TypeID {
        let port = cache.port
        if let existing = try? port.type(named: name) { return existing }
        var spans: [FrameSpan] = []
        defer {
            for span in spans {
                try? port.unmap(span.frame)
                try? port.free(span.frame, credential: cache.identity.userSlot)
            }
        }
        do {
            var programs: [[FrameSpan]] = []
            for code in [udfs.owns, udfs.acl, udfs.size] {
                var program: [FrameSpan] = []
                for start in stride(from: 0, to: code.count, by: KernelLimits.pageBytes) {
                    let piece = Array(code[start..<min(code.count, start + KernelLimits.pageBytes)])
                    let frame = try port.allocateFrame(credential: cache.identity.frameSlot, acl: cache.identity.frameACL)
                    spans.append(FrameSpan(frame: frame, length: UInt32(piece.count)))
                    program.append(spans.last!)
                    try port.map(frame, writable: true, credential: cache.identity.userSlot)
                    try port.store(piece, into: frame, offset: 0)
                }
                programs.append(program)
            }
            return try port.installType(named: name, owns: programs[0], acl: programs[1], size: programs[2], shareable: shareable,
                                        freedWhole: freedWhole, credential: types)
        } catch {
            throw Errno(error)
        }
    }

    // MARK: Reading entries

    /// The credential to act on something stamped `uid`/`gid`.
    func credential(_ uid: UInt32, _ gid: UInt32) -> CapabilitySlot { identity.credential(uid: uid, gid: gid) }

    /// Throws `EACCES` unless the identity has every bit of `bits` on `inode`.
    func require(_ bits: UInt32, on inode: Inode) throws(Errno) {
        guard identity.bits(uid: inode.uid, gid: inode.gid, mode: inode.mode) & bits == bits else { throw .EACCES }
    }

    /// Throws `EPERM` when `parent` is sticky (mode 01000) and the identity owns neither
    /// `entry` nor `parent` and is not the superuser: in such a directory (/tmp) only
    /// those may remove or rename an entry, as unlink(2) and rename(2) say. The directory's
    /// UDF refuses it too.
    func requireStickyRight(_ parent: Inode, _ entry: Inode) throws(Errno) {
        guard parent.mode & 0o1000 != 0, !identity.isSuperuser, identity.uid != entry.uid, identity.uid != parent.uid else { return }
        throw .EPERM
    }

    /// Reads a block already seen (its parent and credential noted).
    func block(_ block: BlockNumber) throws(Errno) -> [UInt8] {
        try cache.read(block, parent: nil, credential: cache.credentialOf[block] ?? identity.userSlot)
    }

    /// The inode at `ref` (for the root, made from its directory's header).
    public func inode(_ ref: FileRef) throws(Errno) -> Inode {
        if ref.isRoot {
            let header = BlockHeader(try cache.read(rootDirectory, parent: superblock, credential: identity.mountSlot,
                                                    count: CFFSLayout.headerBytes))
            var inode = Inode()
            inode.mode = header.mode
            inode.uid = header.uid
            inode.gid = header.gid
            inode.nlink = 2
            inode.mtime = pendingTimes[ref]?.time ?? header.mtime
            inode.ctime = inode.mtime
            inode.atime = header.mtime
            inode.size = UInt64(CFFSLayout.blockBytes)
            inode.ino = rootDirectory << 4 | 15
            inode.pointers[0] = rootDirectory
            return inode
        }
        guard ref.slot >= 0, ref.slot < CFFSLayout.slots else { throw .EINVAL }
        let bytes = try cache.read(ref.block, parent: nil, credential: cache.credentialOf[ref.block] ?? identity.userSlot,
                                   offset: CFFSLayout.slotOffset(ref.slot), count: CFFSLayout.slotBytes)
        // What the disk says is checked before anything is done with it (fsck names it).
        guard Inode.damage(in: bytes, at: 0) == nil else { throw .EIO }
        guard var inode = Inode(bytes, at: 0) else { throw .ENOENT }
        if let pending = pendingTimes[ref], inode.isDirectory, inode.pointers[0] == pending.first {
            inode.mtime = pending.time
            inode.ctime = pending.time
        }
        return inode
    }

    /// The blocks of directory `inode` (whose entry is in `holder`, or the superblock for
    /// the root), first to last, each noted as read through the one before.
    func directoryBlocks(_ inode: Inode, in holder: FileRef) throws(Errno) -> [BlockNumber] {
        var blocks: [BlockNumber] = []
        try walkDirectory(inode, in: holder) { block, _ throws(Errno) in
            blocks.append(block)
            return true
        }
        return blocks
    }

    /// Reads directory `inode`'s blocks in order, each whole and once, handing each to
    /// `visit` until it returns false.
    func walkDirectory(_ inode: Inode, in holder: FileRef, _ visit: (BlockNumber, [UInt8]) throws(Errno) -> Bool) throws(Errno) {
        var block = inode.pointers[0]
        var parent = holder.isRoot ? superblock : holder.block
        // The root directory's first block is read through the superblock, whose UDF
        // lets anyone holding the mount capability read it; every other directory block
        // through a directory's UDF, with the class of the directory's own permissions.
        var credential = holder.isRoot ? identity.mountSlot : self.credential(inode.uid, inode.gid)
        var count = 0
        while block != 0 {
            count += 1
            guard count < 1 << 20 else { throw .EIO }
            var bytes = try cache.read(block, parent: parent, credential: credential)
            if bytes.le32(CFFSLayout.magic) == 0, bytes.allSatisfy({ $0 == 0 }) {
                // Never laid out: whoever allocated the block died between linking it in
                // and writing its header, and XN wrote back what it left. An empty block
                // of this directory; laid out now by whoever may write the directory, read
                // as the empty end of it by anyone else. Any other failure is the walk's.
                do { bytes = try layOut(block, of: inode, under: parent, credential: self.credential(inode.uid, inode.gid)) } catch .EACCES {
                    return
                }
            }
            guard bytes.le32(CFFSLayout.magic) == CFFSLayout.dirMagic else { throw .EIO }
            guard try visit(block, bytes) else { return }
            // Later blocks are read with the directory's own class.
            parent = block
            block = bytes.le64(CFFSLayout.next)
            credential = self.credential(inode.uid, inode.gid)
        }
    }

    /// The entries of directory `dir`.
    public func entries(_ dir: FileRef) throws(Errno) -> [DirectoryEntry] {
        let inode = try self.inode(dir)
        guard inode.isDirectory else { throw .ENOTDIR }
        try require(4, on: inode)
        var result: [DirectoryEntry] = []
        try walkDirectory(inode, in: dir) { block, bytes throws(Errno) in
            for slot in 0..<CFFSLayout.slots {
                guard Inode.damage(in: bytes, at: CFFSLayout.slotOffset(slot)) == nil else { throw .EIO }
                if let entry = Inode(bytes, at: CFFSLayout.slotOffset(slot)) {
                    let (ref, file) = try resolve(FileRef(block: block, slot: slot), entry, in: inode)
                    result.append(DirectoryEntry(name: entry.name, ref: ref, inode: file))
                }
            }
            return true
        }
        return result
    }

    /// One pass over a directory's blocks: the entry called `name`, the first free slot
    /// (when `free`), and the last block.
    func scan(_ inode: Inode, in dir: FileRef, for name: [UInt8], free: Bool)
        throws(Errno) -> (found: FileRef?, free: FileRef?, last: BlockNumber) {
        var found: FileRef?, place: FileRef?, last: BlockNumber = 0
        try walkDirectory(inode, in: dir) { block, bytes throws(Errno) in
            last = block
            for slot in 0..<CFFSLayout.slots {
                let at = CFFSLayout.slotOffset(slot)
                guard bytes.le32(at) != 0 else {
                    if place == nil { place = FileRef(block: block, slot: slot) }
                    continue
                }
                guard Int(bytes[at + CFFSLayout.eNameLength]) == name.count else { continue }
                if bytes[at + CFFSLayout.eName..<at + CFFSLayout.eName + name.count].elementsEqual(name) {
                    found = FileRef(block: block, slot: slot)
                    return false
                }
            }
            return true
        }
        return (found, free ? place : nil, last)
    }

    /// The file called `name` in directory `dir`, or nil. Needs search permission.
    public func lookup(_ name: [UInt8], in dir: FileRef) throws(Errno) -> FileRef? {
        try find(name, in: dir)?.ref
    }

    /// The file called `name` in directory `dir` and its inode, or nil: for a hard link,
    /// the file in its inode block. `directory` is `dir`'s inode when the caller has just
    /// read it (a path walk does). Needs search permission.
    public func find(_ name: [UInt8], in dir: FileRef, directory: Inode? = nil) throws(Errno) -> (ref: FileRef, inode: Inode)? {
        let inode: Inode
        if let directory { inode = directory } else { inode = try self.inode(dir) }
        guard let (place, entry) = try entry(name, in: dir, directory: inode) else { return nil }
        return try resolve(place, entry, in: inode)
    }

    /// The entry called `name` in directory `dir` (`directory` its inode) and where it is:
    /// an embedded inode, or a link entry. Needs search permission.
    func entry(_ name: [UInt8], in dir: FileRef, directory inode: Inode) throws(Errno) -> (place: FileRef, entry: Inode)? {
        guard inode.isDirectory else { throw .ENOTDIR }
        try require(1, on: inode)
        let key = NameKey(directory: inode.pointers[0], name: name)
        if let ref = names[key] {
            // Checked against the slot it names: the entry there must still be called so
            // (another environment may have renamed or removed it since).
            if let entry = try? self.inode(ref), entry.name == name { return (ref, entry) }
            names[key] = nil
        }
        let (found, place, last) = try scan(inode, in: dir, for: name, free: true)
        guard let found else {
            lastMiss = Miss(key: key, place: place, last: last, changes: cache.changes)
            return nil
        }
        remember(key, found)
        return (found, try self.inode(found))
    }

    /// The file an entry at `place` of a directory (`directory` its inode) names: itself,
    /// or for a link entry, slot 0 of the inode block, read through that directory.
    func resolve(_ place: FileRef, _ entry: Inode, in directory: Inode) throws(Errno) -> (ref: FileRef, inode: Inode) {
        guard entry.isLink else { return (place, entry) }
        let block = entry.pointers[0]
        guard block != 0 else { throw .EIO }
        let bytes = try cache.read(block, parent: place.block, credential: credential(directory.uid, directory.gid))
        // A link another client is still making has no entry yet.
        guard bytes.le32(CFFSLayout.magic) == CFFSLayout.inoMagic, let file = Inode(bytes, at: CFFSLayout.slotsStart) else { throw .ENOENT }
        guard Inode.damage(in: bytes, at: CFFSLayout.slotsStart) == nil else { throw .EIO }
        return (FileRef(block: block, slot: 0), file)
    }

    /// The last name `find` looked for and did not find, with the directory's first free
    /// slot and last block: opening a new file looks the name up, then creates it, and the
    /// create need not scan the directory a second time.
    struct Miss {
        var key: NameKey
        var place: FileRef?
        var last: BlockNumber
        /// The cache's count of changes then: any change since makes the miss stale.
        var changes: Int
    }

    /// `scan(free: true)` for a create, or what the lookup just before it found, when it
    /// was for the same name, this client has changed nothing since, and the free slot it
    /// found is still free. (Another environment may add the same name in another block
    /// meanwhile, as it may between any scan and the change after it.)
    func scanForCreate(_ parent: Inode, in dir: FileRef, _ name: [UInt8])
        throws(Errno) -> (found: FileRef?, free: FileRef?, last: BlockNumber) {
        let miss = lastMiss
        lastMiss = nil
        // A full directory grows at its last block, which another environment may have
        // grown since: that case scans again.
        if let miss, let place = miss.place, miss.key == NameKey(directory: parent.pointers[0], name: name),
           miss.changes == cache.changes, (try? inode(place)) == nil {
            return (nil, place, miss.last)
        }
        return try scan(parent, in: dir, for: name, free: true)
    }

    /// A name found in a directory: the directory's first block and the name.
    struct NameKey: Hashable {
        var directory: BlockNumber
        var name: [UInt8]
    }

    /// Notes where a name is, forgetting everything once the table is full.
    func remember(_ key: NameKey, _ ref: FileRef) {
        if names.count >= Self.namesMax { names = [:] }
        names[key] = ref
    }

    static var namesMax: Int { 1 << 16 }

    /// stat(2) of `ref`.
    public func status(_ ref: FileRef) throws(Errno) -> FileStatus {
        let inode = try self.inode(ref)
        var nlink = UInt32(inode.nlink)
        var blocks: UInt64 = 0
        if inode.isDirectory {
            // The link count is derived, not stored: a subdirectory's entry and its
            // parent's count live in different blocks, which a crash could leave
            // disagreeing. One walk counts both it and the blocks (stat needs no read
            // permission on the directory; the kernel lets search do this much).
            nlink = 2
            try walkDirectory(inode, in: ref) { _, bytes throws(Errno) in
                blocks += 1
                for slot in 0..<CFFSLayout.slots where bytes.le32(CFFSLayout.slotOffset(slot)) & FileMode.typeMask == FileMode.directory {
                    nlink += 1
                }
                return true
            }
        } else {
            blocks = try allocatedBlocks(ref, inode)
            if ref.slot == 0, try cache.read(ref.block, parent: nil, credential: cache.credentialOf[ref.block] ?? identity.userSlot,
                                             count: 4).le32(0) == CFFSLayout.inoMagic {
                // A hard-linked file: its names are the pointers XN counts to its block.
                nlink = UInt32(port.registryEntry(of: ref.block)?.references ?? 1)
            }
        }
        let size = inode.isDirectory ? blocks * UInt64(CFFSLayout.blockBytes) : inode.size
        // The inode number is the entry's place (the stored field keeps the place it was
        // made in, which a move to another directory leaves behind).
        let ino = ref.isRoot ? inode.ino : ref.block << 4 | UInt64(ref.slot)
        return FileStatus(ino: ino, mode: inode.mode, nlink: nlink, uid: inode.uid, gid: inode.gid, size: size,
                          blocks: blocks * UInt64(CFFSLayout.blockBytes / 512), atime: inode.atime, mtime: inode.mtime,
                          ctime: inode.ctime)
    }

    // MARK: Creating and removing

    /// Checks a name: 1-120 bytes, no NUL or '/', not "." or "..".
    static func validate(_ name: [UInt8]) throws(Errno) {
        guard !name.isEmpty else { throw .ENOENT }
        guard name.count <= CFFSLayout.nameBytesMax else { throw .ENAMETOOLONG }
        guard !name.contains(0), !name.contains(0x2f), name != [0x2e], name != [0x2e, 0x2e] else { throw .EINVAL }
    }

    /// Creates `name` in `dir`: a regular file, a directory or a symbolic link (`target`),
    /// by `mode`'s type bits.
    public func create(_ name: [UInt8], in dir: FileRef, mode: UInt32, target: [UInt8] = []) throws(Errno) -> FileRef {
        try Self.validate(name)
        let parent = try inode(dir)
        guard parent.isDirectory else { throw .ENOTDIR }
        try require(3, on: parent)
        let type = mode & FileMode.typeMask
        guard type == FileMode.regular || type == FileMode.directory || type == FileMode.symlink else { throw .EINVAL }
        guard type != FileMode.symlink || (!target.isEmpty && target.count <= CFFSLayout.blockBytes) else { throw .ENAMETOOLONG }
        let (existing, place, last) = try scanForCreate(parent, in: dir, name)
        guard existing == nil else { throw .EEXIST }
        let credential = credential(parent.uid, parent.gid)
        let ref: FileRef
        if let place { ref = place } else { ref = FileRef(block: try appendBlock(to: parent, last: last), slot: 0) }
        let time = now()
        var inode = Inode()
        inode.mode = mode
        inode.uid = identity.uid
        inode.gid = identity.gid
        inode.nlink = type == FileMode.directory ? 2 : 1
        inode.mtime = time
        inode.ctime = time
        inode.atime = time
        inode.ino = ref.block << 4 | UInt64(ref.slot)
        inode.name = name
        let at = CFFSLayout.slotOffset(ref.slot)
        if type == FileMode.directory {
            let child = try cache.allocate(under: ref.block, type: dirType, near: ref.block, credential: credential) { child in
                var i = inode
                i.pointers[0] = child
                return [(at, i.encoded)]
            }
            var header = BlockHeader(magic: CFFSLayout.dirMagic, dirType: dirType, indType: indType, inoType: inoType)
            header.uid = inode.uid
            header.gid = inode.gid
            header.mode = inode.mode
            try cache.modify(child, .write, [(0, header.encoded)], credential: self.credential(inode.uid, inode.gid))
        } else {
            try cache.modify(ref.block, .write, [(at, inode.encoded)], credential: credential)
            if type == FileMode.symlink { _ = try write(ref, at: 0, target) }
        }
        try touch(dir, parent)
        remember(NameKey(directory: parent.pointers[0], name: name), ref)
        return ref
    }

    /// Writes the header of directory `inode`'s block `block`, which reads as zeros, and
    /// returns the block as it is then.
    /// - Throws: `EACCES` unless the directory's mode lets this process write it (the
    ///   directory's UDF lets any writer change a block whose magic is still zero, so the
    ///   mode is this library's to respect).
    private func layOut(_ block: BlockNumber, of inode: Inode, under parent: BlockNumber, credential: CapabilitySlot) throws(Errno) -> [UInt8] {
        try require(2, on: inode)
        var header = BlockHeader(magic: CFFSLayout.dirMagic, dirType: dirType, indType: indType, inoType: inoType)
        header.uid = inode.uid
        header.gid = inode.gid
        header.mode = inode.mode
        try cache.modify(block, .write, [(0, header.encoded)], credential: credential)
        return try cache.read(block, parent: parent, credential: credential)
    }

    /// Adds a block to the end of a directory. Returns it.
    func appendBlock(to directory: Inode, last: BlockNumber) throws(Errno) -> BlockNumber {
        let credential = credential(directory.uid, directory.gid)
        let block = try cache.allocate(under: last, type: dirType, near: last, credential: credential) { child in
            [(CFFSLayout.next, bytes64(child))]
        }
        var header = BlockHeader(magic: CFFSLayout.dirMagic, dirType: dirType, indType: indType, inoType: inoType)
        header.uid = directory.uid
        header.gid = directory.gid
        header.mode = directory.mode
        try cache.modify(block, .write, [(0, header.encoded)], credential: credential)
        return block
    }

    /// Sets a directory's modification and change times (the root's are in its header).
    /// They are written lazily, as a UNIX kernel keeps an inode's times in memory: with
    /// the next sync, or once many are waiting. Until then `inode` shows them, and a crash
    /// may lose them (never anything else).
    func touch(_ dir: FileRef, _ inode: Inode) throws(Errno) {
        pendingTimes[dir] = (now(), inode.pointers[0], credential(inode.uid, inode.gid))
        if pendingTimes.count >= Self.pendingTimesMax { try writeTimes() }
    }

    static var pendingTimesMax: Int { 4096 }

    /// Writes the directory times waiting: one change a block. A directory removed or
    /// replaced since (its entry no longer leads to the same first block) is passed over.
    func writeTimes() throws(Errno) {
        let waiting = pendingTimes
        pendingTimes = [:]
        var byBlock: [BlockNumber: [(FileRef, Int64, CapabilitySlot)]] = [:]
        for (dir, pending) in waiting {
            if dir.isRoot {
                try cache.modify(rootDirectory, .write, [(CFFSLayout.headerMtime, bytes64(UInt64(bitPattern: pending.time)))],
                                 credential: pending.credential)
                continue
            }
            guard let current = try? inode(dir), current.isDirectory, current.pointers[0] == pending.first else { continue }
            byBlock[dir.block, default: []].append((dir, pending.time, pending.credential))
        }
        for (block, directories) in byBlock.sorted(by: { $0.key < $1.key }) {
            // Entries of different owners in one block: one change for each credential.
            var byCredential: [CapabilitySlot: [(offset: Int, bytes: [UInt8])]] = [:]
            for (dir, time, credential) in directories {
                let stamp = bytes64(UInt64(bitPattern: time))
                byCredential[credential, default: []].append((CFFSLayout.slotOffset(dir.slot) + CFFSLayout.eMtime, stamp + stamp))
            }
            for (credential, changes) in byCredential {
                // A directory made read-only since keeps its old times: the change that
                // moved them was allowed, but writing them now is not.
                do { try cache.modify(block, .write, changes, credential: credential) } catch .EACCES {}
            }
        }
    }

    /// Removes entry `name` from `dir`: a file with its blocks, or an empty directory
    /// (`directory` says which is expected, as unlink and rmdir do).
    public func remove(_ name: [UInt8], in dir: FileRef, directory: Bool) throws(Errno) {
        guard name != [0x2e], name != [0x2e, 0x2e] else { throw directory ? .EINVAL : .EISDIR }
        let parent = try inode(dir)
        guard let (ref, inode) = try entry(name, in: dir, directory: parent) else { throw .ENOENT }
        try require(3, on: parent)
        try requireStickyRight(parent, inode)
        let credential = credential(parent.uid, parent.gid)
        let at = CFFSLayout.slotOffset(ref.slot)
        let empty = [UInt8](repeating: 0, count: CFFSLayout.slotBytes)
        if inode.isDirectory {
            guard directory else { throw .EISDIR }
            guard try entries(ref).isEmpty else { throw .ENOTEMPTY }
            let blocks = try directoryBlocks(inode, in: ref)
            for i in stride(from: blocks.count - 1, to: 0, by: -1) {
                try cache.free(blocks[i], from: blocks[i - 1], [(CFFSLayout.next, bytes64(0))], credential: self.credential(inode.uid, inode.gid))
            }
            try cache.free(blocks[0], from: ref.block, [(at, empty)], credential: credential)
            pendingTimes[ref] = nil
        } else if inode.isLink {
            guard !directory else { throw .ENOTDIR }
            // One name goes; with the last, XN frees the inode block and the file's blocks.
            let file = FileRef(block: inode.pointers[0], slot: 0)
            try cache.drop(file.block, from: ref.block, [(at, empty)], credential: credential)
            if port.registryEntry(of: file.block) == nil {
                cache.forget(below: file.block)
                readEnd[file] = nil
                cursor[file.block] = nil
            }
        } else {
            guard !directory else { throw .ENOTDIR }
            try prune(ref, inode, keep: 0, credential: credential, entryChanges: [(at, empty)])
        }
        cursor[ref.block] = nil
        names[NameKey(directory: parent.pointers[0], name: name)] = nil
        try touch(dir, parent)
    }

    /// link(2): `newName` in directory `target` becomes another name for the file called
    /// `name` in directory `dir` (not a directory). Returns where the file is now.
    ///
    /// A file's first link moves its inode out of its directory into an inode block of its
    /// own (`cffs.inode`, which XN lets have several parents), leaving a link entry in its
    /// place, and the new name is another link entry. The new name is made first, with
    /// the inode block; the move and the old name's link entry follow, and XN writes the
    /// three blocks as one. That rewrites the file's directory, so it needs write
    /// permission there as well as in `target`.
    public func link(_ name: [UInt8], in dir: FileRef, to newName: [UInt8], in target: FileRef) throws(Errno) -> FileRef {
        do { return try linkOnce(name, in: dir, to: newName, in: target) } catch .EBUSY {
            // The move would tie too much together: write back, then once more (nothing of
            // the first try reached the disk: it was undone before the writeback).
            try cache.writeBack()
            return try linkOnce(name, in: dir, to: newName, in: target)
        }
    }

    private func linkOnce(_ name: [UInt8], in dir: FileRef, to newName: [UInt8], in target: FileRef) throws(Errno) -> FileRef {
        try Self.validate(newName)
        let sourceParent = try inode(dir), targetParent = try inode(target)
        guard targetParent.isDirectory else { throw .ENOTDIR }
        guard let (place, entry) = try self.entry(name, in: dir, directory: sourceParent) else { throw .ENOENT }
        guard !entry.isDirectory else { throw .EPERM }
        try require(3, on: targetParent)
        // A first link rewrites the file's directory too.
        if !entry.isLink { try require(3, on: sourceParent) }
        let (existing, free, last) = try scan(targetParent, in: target, for: newName, free: true)
        guard existing == nil else { throw .EEXIST }
        let targetCredential = credential(targetParent.uid, targetParent.gid)
        let landing: FileRef
        if let free { landing = free } else { landing = FileRef(block: try appendBlock(to: targetParent, last: last), slot: 0) }
        var link = Inode()
        link.mode = FileMode.link
        link.uid = identity.uid
        link.gid = identity.gid
        link.name = newName
        let at = CFFSLayout.slotOffset(landing.slot)
        if entry.isLink {
            link.pointers[0] = entry.pointers[0]
            try cache.modify(landing.block, .link(entry.pointers[0]), [(at, link.encoded)], credential: targetCredential)
            remember(NameKey(directory: targetParent.pointers[0], name: newName), landing)
            try touch(target, targetParent)
            let (file, inode) = try resolve(place, entry, in: sourceParent)
            noteChange(file, inode)
            return file
        }
        let block = try cache.allocate(under: landing.block, type: inoType, near: place.block, credential: targetCredential) { child in
            var l = link
            l.pointers[0] = child
            return [(at, l.encoded)]
        }
        try cache.modify(block, .write, [(0, BlockHeader(magic: CFFSLayout.inoMagic, dirType: dirType, indType: indType, inoType: inoType).encoded)],
                         credential: targetCredential)
        let file = FileRef(block: block, slot: 0)
        let sourceCredential = credential(sourceParent.uid, sourceParent.gid)
        let from = CFFSLayout.slotOffset(place.slot)
        do {
            // No writeback between here and the old name's link entry: the disk must never
            // hold the new name with its inode block still empty.
            try cache.move(from: place.block, offset: from, count: CFFSLayout.slotBytes, to: block, at: CFFSLayout.slotsStart,
                           edits: [], moved: entry.pointers.filter { $0 != 0 }, credential: sourceCredential, writingBackWhenBusy: false)
        } catch {
            // Nothing moved: the new name goes again.
            try? cache.drop(block, from: landing.block, [(at, [UInt8](repeating: 0, count: CFFSLayout.slotBytes))], credential: targetCredential)
            cache.forget(below: block)
            throw error == .permissionDenied ? .EACCES : error == .busy ? .EBUSY : Errno(error)
        }
        var old = link
        old.name = name
        old.pointers[0] = block
        try cache.modify(place.block, .link(block), [(from, old.encoded)], credential: sourceCredential)
        if let times = pendingTimes.removeValue(forKey: place) { pendingTimes[file] = times }
        readEnd[place] = nil
        remember(NameKey(directory: targetParent.pointers[0], name: newName), landing)
        try touch(target, targetParent)
        noteChange(file, entry)
        return file
    }

    /// A new name changes a file's change time, as link(2) does — where the linker may
    /// change it (the file's owner, or one who may write it: its UDF allows no one else).
    private func noteChange(_ file: FileRef, _ inode: Inode) {
        let at = CFFSLayout.slotOffset(file.slot) + CFFSLayout.eCtime
        try? cache.modify(file.block, .write, [(at, bytes64(UInt64(bitPattern: now())))], credential: credential(inode.uid, inode.gid))
    }

    /// Renames `from` to `to` within directory `dir`, replacing `to` if it exists (a
    /// file by a file, an empty directory by a directory). The name changes in place, in
    /// one change of one block, so a crash leaves the old name or the new, never both.
    public func rename(_ from: [UInt8], to: [UInt8], in dir: FileRef) throws(Errno) {
        try Self.validate(to)
        let parent = try inode(dir)
        guard let (source, moving) = try entry(from, in: dir, directory: parent) else { throw .ENOENT }
        try require(3, on: parent)
        try requireStickyRight(parent, moving)
        if let (existing, target) = try entry(to, in: dir, directory: parent) {
            if existing == source { return }
            // Two names of one file: rename(2) does nothing.
            if moving.isLink, target.isLink, moving.pointers[0] == target.pointers[0] { return }
            if target.isDirectory != moving.isDirectory { throw target.isDirectory ? .EISDIR : .ENOTDIR }
            try remove(to, in: dir, directory: target.isDirectory)
        }
        var name = [UInt8](repeating: 0, count: CFFSLayout.nameBytesMax)
        name.replaceSubrange(0..<to.count, with: to)
        let at = CFFSLayout.slotOffset(source.slot)
        var changes = [(offset: at + CFFSLayout.eNameLength, bytes: [UInt8(to.count)]), (at + CFFSLayout.eName, name)]
        // A link entry has no times of its own (its file's are in the inode block).
        if !moving.isLink { changes.append((at + CFFSLayout.eCtime, bytes64(UInt64(bitPattern: now())))) }
        try cache.modify(source.block, .write, changes, credential: credential(parent.uid, parent.gid))
        names[NameKey(directory: parent.pointers[0], name: from)] = nil
        remember(NameKey(directory: parent.pointers[0], name: to), source)
        try touch(dir, parent)
    }

    /// Renames `from` in directory `dir` to `to` in directory `target`, replacing `to` if
    /// it exists, as `rename` does within one directory. Returns where the entry is now.
    ///
    /// The entry, inode and all, moves from one directory block to the other in one kernel
    /// call (`xnMove`), which XN writes to disk as one: after a crash the old name or the
    /// new one is there, never neither nor both. An entry replaced at the target is
    /// removed first, so a crash between the two can leave the target name gone and the
    /// file still under its old name. The file's place is its identity in C-FFS (the
    /// paper's inode number changes too): a descriptor another client holds on it finds it
    /// gone.
    @discardableResult
    public func rename(_ from: [UInt8], in dir: FileRef, to: [UInt8], in target: FileRef) throws(Errno) -> FileRef {
        guard dir != target else {
            try rename(from, to: to, in: dir)
            guard let ref = try lookup(to, in: dir) else { throw .ENOENT }
            return ref
        }
        try Self.validate(to)
        let sourceParent = try inode(dir), targetParent = try inode(target)
        guard targetParent.isDirectory else { throw .ENOTDIR }
        guard let (source, moving) = try entry(from, in: dir, directory: sourceParent) else { throw .ENOENT }
        try require(3, on: sourceParent)
        try require(3, on: targetParent)
        try requireStickyRight(sourceParent, moving)
        if let (_, replaced) = try entry(to, in: target, directory: targetParent) {
            if moving.isLink, replaced.isLink, moving.pointers[0] == replaced.pointers[0] { return FileRef(block: moving.pointers[0], slot: 0) }
            if replaced.isDirectory != moving.isDirectory { throw replaced.isDirectory ? .EISDIR : .ENOTDIR }
            try remove(to, in: target, directory: replaced.isDirectory)
        }
        let (_, place, last) = try scan(targetParent, in: target, for: to, free: true)
        let landing: FileRef
        if let place { landing = place } else { landing = FileRef(block: try appendBlock(to: targetParent, last: last), slot: 0) }
        var name = [UInt8](repeating: 0, count: CFFSLayout.nameBytesMax)
        name.replaceSubrange(0..<to.count, with: to)
        let at = CFFSLayout.slotOffset(landing.slot)
        let edits = [(at + CFFSLayout.eNameLength, [UInt8(to.count)]), (at + CFFSLayout.eName, name)]
        let moved = moving.isDirectory ? [moving.pointers[0]] : moving.pointers.filter { $0 != 0 }
        // One credential must pass both directories' UDFs: the class of the one, else the
        // class of the other.
        let first = credential(sourceParent.uid, sourceParent.gid), second = credential(targetParent.uid, targetParent.gid)
        let classes = first == second ? [first] : [first, second]
        var refusal = KernelError.permissionDenied
        var done = false
        for credential in classes where !done {
            do {
                try cache.move(from: source.block, offset: CFFSLayout.slotOffset(source.slot), count: CFFSLayout.slotBytes,
                               to: landing.block, at: at, edits: edits, moved: moved, credential: credential)
                done = true
            } catch .permissionDenied {
                continue
            } catch {
                refusal = error
                break
            }
        }
        guard done else { throw refusal == .invalidArgument ? .EINVAL : Errno(refusal) }
        names[NameKey(directory: sourceParent.pointers[0], name: from)] = nil
        remember(NameKey(directory: targetParent.pointers[0], name: to), landing)
        lastMiss = nil
        try touch(dir, sourceParent)
        try touch(target, targetParent)
        // A link entry moved; its file stays in its inode block.
        if moving.isLink { return FileRef(block: moving.pointers[0], slot: 0) }
        readEnd[source] = nil
        if let times = pendingTimes.removeValue(forKey: source) { pendingTimes[landing] = times }
        return landing
    }

    // MARK: Attributes

    /// chmod(2): the owner or the superuser. A directory's blocks and a file's indirect
    /// blocks carry the permissions too (their UDFs check them), and change with it.
    public func setMode(_ ref: FileRef, _ mode: UInt32) throws(Errno) {
        var inode = try self.inode(ref)
        guard identity.isSuperuser || identity.uid == inode.uid else { throw .EPERM }
        inode.mode = inode.type | (mode & FileMode.permissionMask)
        try restamp(ref, inode)
    }

    /// chown(2): the superuser's alone (the UDFs allow no one else).
    public func setOwner(_ ref: FileRef, uid: UInt32?, gid: UInt32?) throws(Errno) {
        var inode = try self.inode(ref)
        let newUID = uid ?? inode.uid, newGID = gid ?? inode.gid
        guard newUID != inode.uid || newGID != inode.gid else { return }
        guard identity.isSuperuser else { throw .EPERM }
        inode.uid = newUID
        inode.gid = newGID
        try restamp(ref, inode)
    }

    /// Writes `inode`'s uid, gid and mode to its entry and to every block that carries
    /// them. The blocks first: while they change, the entry still names the old owner.
    func restamp(_ ref: FileRef, _ inode: Inode) throws(Errno) {
        let stamp = bytes32(inode.uid) + bytes32(inode.gid) + bytes32(inode.mode)
        let credential = identity.userSlot
        if inode.isDirectory {
            for block in try directoryBlocks(inode, in: ref) {
                try cache.modify(block, .write, [(CFFSLayout.uid, stamp)], credential: credential)
            }
        } else if inode.isRegular {
            for block in try indirectBlocks(ref, inode) {
                try cache.modify(block, .write, [(CFFSLayout.uid, stamp)], credential: credential)
            }
        }
        if ref.isRoot { return }
        let at = CFFSLayout.slotOffset(ref.slot)
        try cache.modify(ref.block, .write, [(at, bytes32(inode.mode) + bytes32(inode.uid) + bytes32(inode.gid)),
                                             (at + CFFSLayout.eCtime, bytes64(UInt64(bitPattern: now())))], credential: credential)
    }

    /// utimes(2): the owner, or anyone who may write the file.
    public func setTimes(_ ref: FileRef, access: Int64, modification: Int64) throws(Errno) {
        let inode = try self.inode(ref)
        guard identity.isSuperuser || identity.uid == inode.uid
            || identity.bits(uid: inode.uid, gid: inode.gid, mode: inode.mode) & 2 != 0 else { throw .EPERM }
        if ref.isRoot {
            try cache.modify(rootDirectory, .write, [(CFFSLayout.headerMtime, bytes64(UInt64(bitPattern: modification)))],
                             credential: identity.userSlot)
            return
        }
        let at = CFFSLayout.slotOffset(ref.slot)
        try cache.modify(ref.block, .write, [(at + CFFSLayout.eMtime, bytes64(UInt64(bitPattern: modification)) + bytes64(UInt64(bitPattern: now()))
                                                + bytes64(UInt64(bitPattern: access)))],
                         credential: credential(inode.uid, inode.gid))
    }

    /// Writes every block this client changed to disk.
    public func sync() throws(Errno) {
        try writeTimes()
        try cache.writeBack()
    }
}
