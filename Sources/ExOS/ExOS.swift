// ExOS, the library operating system (DESIGN.md §6): what a UNIX process expects of its
// kernel — descriptors, paths, a current directory, a umask, users and groups — built in
// the application's own address space over C-FFS, reaching the kernel only through a
// `KernelPort`. Every call here is a library call; the kernel sees only XN's calls that
// C-FFS makes, and C-FFS's UDFs hold every process to UNIX's permissions.

import CFFS
import XokABI

/// open(2)'s flags, with Linux's values.
public struct OpenFlags: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let readOnly = OpenFlags([])
    public static let writeOnly = OpenFlags(rawValue: 0o1)
    public static let readWrite = OpenFlags(rawValue: 0o2)
    public static let create = OpenFlags(rawValue: 0o100)
    public static let exclusive = OpenFlags(rawValue: 0o200)
    public static let truncate = OpenFlags(rawValue: 0o1000)
    public static let append = OpenFlags(rawValue: 0o2000)
    public static let directory = OpenFlags(rawValue: 0o200000)
    public static let noFollow = OpenFlags(rawValue: 0o400000)

    var accessMode: Int32 { rawValue & 3 }
    var readable: Bool { accessMode == 0 || accessMode == 2 }
    var writable: Bool { accessMode == 1 || accessMode == 2 }
}

/// lseek(2)'s whence.
public enum Whence: Sendable {
    case set, current, end
}

/// An open file description.
final class OpenFile {
    /// Where the file's entry is (a rename to another directory moves it).
    var ref: FileRef
    let flags: OpenFlags
    var offset: UInt64 = 0
    /// For a directory opened to read its entries.
    var entries: [DirectoryEntry]?
    init(ref: FileRef, flags: OpenFlags) {
        self.ref = ref
        self.flags = flags
    }
}

/// A directory being read (opendir/readdir/closedir).
public struct DirectoryStream: Sendable {
    public let descriptor: Int32
}

/// One UNIX process's library OS over one mounted C-FFS.
public final class ExOS<P: KernelPort> {
    public let fs: CFFS<P>
    /// Descriptors open at once, as RLIMIT_NOFILE.
    public static var descriptorsMax: Int { 1024 }
    var descriptors: [OpenFile?] = []
    /// The current directory: the directories from the root down, with their names.
    var cwd: [(ref: FileRef, name: [UInt8])] = []
    var mask: UInt32 = 0o022

    public init(fs: CFFS<P>) { self.fs = fs }

    public var uid: UInt32 { fs.identity.uid }
    public var gid: UInt32 { fs.identity.gid }

    // MARK: Paths

    /// A path resolved: the directories walked from the root (the last is the parent),
    /// the last component's name, and what it names (nil: nothing yet). A path that ends
    /// in "." or ".." names a directory with no name of its own here (`name` empty).
    struct Resolved {
        var stack: [(ref: FileRef, name: [UInt8])]
        var parent: FileRef { stack.last?.ref ?? .root }
        var name: [UInt8]
        var ref: FileRef?
    }

    /// Symbolic links followed in one resolution at most (Linux's MAXSYMLINKS).
    static var symlinksMax: Int { 40 }

    static func components(_ path: [UInt8]) -> [[UInt8]] {
        path.split(separator: 0x2f, omittingEmptySubsequences: true).map(Array.init)
    }

    /// Resolves `path`, following symbolic links on the way and, with `followLast`, the
    /// last one too.
    func resolve(_ path: String, followLast: Bool) throws(Errno) -> Resolved {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty else { throw .ENOENT }
        guard bytes.count < 4096, !bytes.contains(0) else { throw bytes.contains(0) ? .EINVAL : .ENAMETOOLONG }
        var pending = Self.components(bytes)
        var stack = bytes.first == 0x2f ? [] : cwd
        let trailingSlash = bytes.last == 0x2f
        var links = 0
        // The inode of the directory at the top of `stack`, when this walk just read it.
        var directory: Inode?
        while !pending.isEmpty {
            let name = pending.removeFirst()
            guard name.count <= 255 else { throw .ENAMETOOLONG }
            if name == [0x2e] {
                if pending.isEmpty { return try dotResult(stack) }
                continue
            }
            if name == [0x2e, 0x2e] {
                _ = stack.popLast()
                directory = nil
                if pending.isEmpty { return try dotResult(stack) }
                continue
            }
            let dir = stack.last?.ref ?? .root
            let last = pending.isEmpty
            guard let (ref, inode) = try fs.find(name, in: dir, directory: directory) else {
                if last { return Resolved(stack: stack, name: name, ref: nil) }
                throw .ENOENT
            }
            directory = nil
            if inode.isSymlink && (!last || followLast || trailingSlash) {
                links += 1
                guard links <= Self.symlinksMax else { throw .ELOOP }
                let target = try fs.read(ref, at: 0, count: Self.linkBytes(inode))
                guard !target.isEmpty else { throw .ENOENT }
                if target.first == 0x2f { stack = [] }
                pending = Self.components(target) + pending
                if pending.isEmpty { return try dotResult(stack) }
                continue
            }
            if last {
                if trailingSlash && !inode.isDirectory { throw .ENOTDIR }
                return Resolved(stack: stack, name: name, ref: ref)
            }
            guard inode.isDirectory else { throw .ENOTDIR }
            stack.append((ref, name))
            directory = inode
        }
        return try dotResult(stack)
    }

    /// The result for a path that ends at a directory reached by "." or "..".
    private func dotResult(_ stack: [(ref: FileRef, name: [UInt8])]) throws(Errno) -> Resolved {
        var parents = stack
        guard let last = parents.popLast() else { return Resolved(stack: [], name: [], ref: .root) }
        return Resolved(stack: parents, name: [], ref: last.ref)
    }

    /// Bytes of a symbolic link's target to read: its size as stored, which a corrupt or
    /// hostile entry may set to anything, bounded by the one block a target may fill.
    static func linkBytes(_ inode: Inode) -> Int { Int(min(inode.size, UInt64(CFFSLayout.blockBytes))) }

    /// The existing file `path` names.
    func existing(_ path: String, follow: Bool = true) throws(Errno) -> FileRef {
        guard let ref = try resolve(path, followLast: follow).ref else { throw .ENOENT }
        return ref
    }

    /// The parent directory and new name for creating `path`; EEXIST when it exists.
    func creating(_ path: String) throws(Errno) -> (dir: FileRef, name: [UInt8]) {
        let r = try resolve(path, followLast: false)
        guard r.ref == nil, !r.name.isEmpty else { throw .EEXIST }
        return (r.parent, r.name)
    }

    // MARK: Descriptors

    func install(_ file: OpenFile) throws(Errno) -> Int32 {
        if let free = descriptors.firstIndex(where: { $0 == nil }) {
            descriptors[free] = file
            return Int32(free)
        }
        guard descriptors.count < Self.descriptorsMax else { throw .EMFILE }
        descriptors.append(file)
        return Int32(descriptors.count - 1)
    }

    func file(_ fd: Int32) throws(Errno) -> OpenFile {
        guard fd >= 0, Int(fd) < descriptors.count, let file = descriptors[Int(fd)] else { throw .EBADF }
        return file
    }

    /// open(2).
    public func open(_ path: String, _ flags: OpenFlags, mode: UInt32 = 0o666) throws(Errno) -> Int32 {
        let r = try resolve(path, followLast: !flags.contains(.noFollow))
        let ref: FileRef
        if let existing = r.ref {
            if flags.contains(.create) && flags.contains(.exclusive) { throw .EEXIST }
            ref = existing
        } else {
            guard flags.contains(.create) else { throw .ENOENT }
            guard !r.name.isEmpty else { throw .EISDIR }
            let created = try fs.create(r.name, in: r.parent, mode: FileMode.regular | (mode & ~mask & FileMode.permissionMask))
            return try install(OpenFile(ref: created, flags: flags))
        }
        let inode = try fs.inode(ref)
        if inode.isSymlink { throw .ELOOP }
        if inode.isDirectory {
            guard !flags.writable, !flags.contains(.truncate) else { throw .EISDIR }
        } else if flags.contains(.directory) {
            throw .ENOTDIR
        }
        let bits = fs.identity.bits(uid: inode.uid, gid: inode.gid, mode: inode.mode)
        if flags.readable && bits & 4 == 0 { throw .EACCES }
        if (flags.writable || flags.contains(.truncate)) && bits & 2 == 0 { throw .EACCES }
        if flags.contains(.truncate) && flags.writable && inode.isRegular && inode.size > 0 { try fs.truncate(ref, to: 0) }
        return try install(OpenFile(ref: ref, flags: flags))
    }

    /// creat(2).
    public func create(_ path: String, mode: UInt32 = 0o666) throws(Errno) -> Int32 {
        try open(path, [.writeOnly, .create, .truncate], mode: mode)
    }

    /// close(2).
    public func close(_ fd: Int32) throws(Errno) {
        _ = try file(fd)
        descriptors[Int(fd)] = nil
    }

    /// close(2) where nothing can be done about a failure (a cleanup path).
    public func closeQuietly(_ fd: Int32) {
        if fd >= 0, Int(fd) < descriptors.count { descriptors[Int(fd)] = nil }
    }

    /// read(2): up to `count` bytes from the descriptor's offset.
    public func read(_ fd: Int32, count: Int) throws(Errno) -> [UInt8] {
        let f = try file(fd)
        let bytes = try pread(fd, count: count, at: f.offset)
        f.offset += UInt64(bytes.count)
        return bytes
    }

    /// write(2) at the descriptor's offset (its end, with O_APPEND).
    public func write(_ fd: Int32, _ bytes: [UInt8]) throws(Errno) -> Int {
        let f = try file(fd)
        guard f.flags.writable else { throw .EBADF }
        if f.flags.contains(.append) { f.offset = try fs.inode(f.ref).size }
        let n = try fs.write(f.ref, at: f.offset, bytes)
        f.offset += UInt64(n)
        return n
    }

    /// pread(2).
    public func pread(_ fd: Int32, count: Int, at offset: UInt64) throws(Errno) -> [UInt8] {
        let f = try file(fd)
        guard f.flags.readable else { throw .EBADF }
        guard count >= 0 else { throw .EINVAL }
        if f.entries != nil { throw .EISDIR }
        return try fs.read(f.ref, at: offset, count: count)
    }

    /// pwrite(2).
    public func pwrite(_ fd: Int32, _ bytes: [UInt8], at offset: UInt64) throws(Errno) -> Int {
        let f = try file(fd)
        guard f.flags.writable else { throw .EBADF }
        return try fs.write(f.ref, at: offset, bytes)
    }

    /// lseek(2). Returns the new offset.
    public func lseek(_ fd: Int32, _ offset: Int64, _ whence: Whence) throws(Errno) -> UInt64 {
        let f = try file(fd)
        let base: Int64
        switch whence {
        case .set: base = 0
        case .current: base = Int64(clamping: f.offset)
        case .end: base = Int64(clamping: try fs.inode(f.ref).size)
        }
        let (target, overflow) = base.addingReportingOverflow(offset)
        guard !overflow, target >= 0 else { throw .EINVAL }
        f.offset = UInt64(target)
        return f.offset
    }

    /// fstat(2).
    public func fstat(_ fd: Int32) throws(Errno) -> FileStatus { try fs.status(try file(fd).ref) }

    /// ftruncate(2).
    public func ftruncate(_ fd: Int32, _ size: UInt64) throws(Errno) {
        let f = try file(fd)
        guard f.flags.writable else { throw .EINVAL }
        try fs.truncate(f.ref, to: size)
    }

    /// fsync(2): everything this process changed is on disk when it returns. (XN orders
    /// writes by dependency; C-FFS writes all its changed blocks, children first.)
    public func fsync(_ fd: Int32) throws(Errno) {
        _ = try file(fd)
        try fs.sync()
    }

    /// sync(2).
    public func sync() throws(Errno) { try fs.sync() }

    // MARK: Paths

    /// stat(2).
    public func stat(_ path: String) throws(Errno) -> FileStatus { try fs.status(try existing(path)) }
    /// lstat(2).
    public func lstat(_ path: String) throws(Errno) -> FileStatus { try fs.status(try existing(path, follow: false)) }

    /// truncate(2).
    public func truncate(_ path: String, _ size: UInt64) throws(Errno) { try fs.truncate(try existing(path), to: size) }

    /// mkdir(2).
    public func mkdir(_ path: String, mode: UInt32 = 0o777) throws(Errno) {
        let (dir, name) = try creating(path)
        _ = try fs.create(name, in: dir, mode: FileMode.directory | (mode & ~mask & FileMode.permissionMask))
    }

    /// rmdir(2).
    public func rmdir(_ path: String) throws(Errno) {
        let r = try resolve(path, followLast: false)
        guard r.ref != nil else { throw .ENOENT }
        guard !r.name.isEmpty else { throw r.ref == .root ? .EBUSY : .EINVAL }
        try fs.remove(r.name, in: r.parent, directory: true)
    }

    /// unlink(2).
    public func unlink(_ path: String) throws(Errno) {
        let r = try resolve(path, followLast: false)
        guard r.ref != nil else { throw .ENOENT }
        guard !r.name.isEmpty else { throw .EISDIR }
        try fs.remove(r.name, in: r.parent, directory: false)
    }

    /// rename(2). Within one directory the new name replaces the old in one block change;
    /// between directories the entry moves from one directory block to the other in one
    /// kernel call, which reaches the disk as one (docs/cffs.md). Either way a crash leaves
    /// the old name or the new. This process's descriptors and current directory follow
    /// the file to its new place.
    public func rename(_ from: String, _ to: String) throws(Errno) {
        let source = try resolve(from, followLast: false)
        guard let moving = source.ref else { throw .ENOENT }
        guard !source.name.isEmpty else { throw .EBUSY }
        let target = try resolve(to, followLast: false)
        guard !target.name.isEmpty else { throw .EBUSY }
        if let t = target.ref, t == moving { return }
        // A directory cannot go under itself (the kernel refuses it too).
        if target.stack.contains(where: { $0.ref == moving }) { throw .EINVAL }
        let landing = try fs.rename(source.name, in: source.parent, to: target.name, in: target.parent)
        guard landing != moving else { return }
        for f in descriptors { if let f, f.ref == moving { f.ref = landing } }
        if let i = cwd.firstIndex(where: { $0.ref == moving }) {
            cwd = target.stack + [(landing, target.name)] + cwd[(i + 1)...]
        }
    }

    /// link(2), not following a symbolic link at `existingPath`, as Linux does. The
    /// file's first link moves its inode out of its directory (docs/cffs.md): this
    /// process's descriptors follow it.
    public func link(_ existingPath: String, _ newPath: String) throws(Errno) {
        let source = try resolve(existingPath, followLast: false)
        guard let old = source.ref else { throw .ENOENT }
        guard !source.name.isEmpty else { throw .EPERM }
        let (dir, name) = try creating(newPath)
        let place = try fs.link(source.name, in: source.parent, to: name, in: dir)
        guard place != old else { return }
        for f in descriptors { if let f, f.ref == old { f.ref = place } }
    }

    /// symlink(2).
    public func symlink(_ target: String, _ path: String) throws(Errno) {
        let (dir, name) = try creating(path)
        let bytes = Array(target.utf8)
        guard !bytes.isEmpty else { throw .ENOENT }
        guard bytes.count < 4096 else { throw .ENAMETOOLONG }
        _ = try fs.create(name, in: dir, mode: FileMode.symlink | 0o777, target: bytes)
    }

    /// readlink(2).
    public func readlink(_ path: String) throws(Errno) -> String {
        let ref = try existing(path, follow: false)
        let inode = try fs.inode(ref)
        guard inode.isSymlink else { throw .EINVAL }
        return String(decoding: try fs.read(ref, at: 0, count: Self.linkBytes(inode)), as: UTF8.self)
    }

    /// chmod(2).
    public func chmod(_ path: String, _ mode: UInt32) throws(Errno) { try fs.setMode(try existing(path), mode) }
    /// chown(2); nil leaves one unchanged, as -1 does.
    public func chown(_ path: String, uid: UInt32?, gid: UInt32?) throws(Errno) { try fs.setOwner(try existing(path), uid: uid, gid: gid) }
    /// lchown(2).
    public func lchown(_ path: String, uid: UInt32?, gid: UInt32?) throws(Errno) {
        try fs.setOwner(try existing(path, follow: false), uid: uid, gid: gid)
    }
    /// utimes(2), in nanoseconds since the epoch.
    public func utimes(_ path: String, access: Int64, modification: Int64) throws(Errno) {
        try fs.setTimes(try existing(path), access: access, modification: modification)
    }
    /// futimens(2): an open file's times, without resolving its path again.
    public func futimes(_ fd: Int32, access: Int64, modification: Int64) throws(Errno) {
        try fs.setTimes(try file(fd).ref, access: access, modification: modification)
    }
    /// fchmod(2).
    public func fchmod(_ fd: Int32, _ mode: UInt32) throws(Errno) { try fs.setMode(try file(fd).ref, mode) }
    /// lutimes(3): a symbolic link's own times.
    public func lutimes(_ path: String, access: Int64, modification: Int64) throws(Errno) {
        try fs.setTimes(try existing(path, follow: false), access: access, modification: modification)
    }

    /// chdir(2).
    public func chdir(_ path: String) throws(Errno) {
        let r = try resolve(path, followLast: true)
        guard let ref = r.ref else { throw .ENOENT }
        let inode = try fs.inode(ref)
        guard inode.isDirectory else { throw .ENOTDIR }
        guard fs.identity.bits(uid: inode.uid, gid: inode.gid, mode: inode.mode) & 1 != 0 else { throw .EACCES }
        if ref == .root {
            cwd = []
        } else if r.name.isEmpty {
            // Reached by "." or "..": its name is the one its parent gives it.
            cwd = r.stack + [(ref, try name(of: ref, in: r.parent))]
        } else {
            cwd = r.stack + [(ref, r.name)]
        }
    }

    private func name(of ref: FileRef, in dir: FileRef) throws(Errno) -> [UInt8] {
        for entry in try fs.entries(dir) where entry.ref == ref { return entry.name }
        throw .ENOENT
    }

    /// getcwd(3).
    public func getcwd() -> String {
        cwd.isEmpty ? "/" : cwd.map { "/" + String(decoding: $0.name, as: UTF8.self) }.joined()
    }

    /// umask(2): sets the mask and returns the old one.
    @discardableResult
    public func umask(_ new: UInt32) -> UInt32 {
        let old = mask
        mask = new & 0o777
        return old
    }

    // MARK: Directories

    /// opendir(3).
    public func opendir(_ path: String) throws(Errno) -> DirectoryStream {
        let ref = try existing(path)
        let inode = try fs.inode(ref)
        guard inode.isDirectory else { throw .ENOTDIR }
        let file = OpenFile(ref: ref, flags: [.readOnly, .directory])
        file.entries = try fs.entries(ref)
        return DirectoryStream(descriptor: try install(file))
    }

    /// readdir(3): the next entry, or nil at the end. "." and ".." are not listed.
    public func readdir(_ stream: DirectoryStream) throws(Errno) -> DirectoryEntry? {
        let f = try file(stream.descriptor)
        guard let entries = f.entries else { throw .ENOTDIR }
        guard f.offset < UInt64(entries.count) else { return nil }
        f.offset += 1
        return entries[Int(f.offset - 1)]
    }

    /// closedir(3).
    public func closedir(_ stream: DirectoryStream) throws(Errno) { try close(stream.descriptor) }

    /// The names in directory `path`, sorted.
    public func list(_ path: String) throws(Errno) -> [String] {
        let stream = try opendir(path)
        defer { try? closedir(stream) }
        var names: [String] = []
        while let entry = try readdir(stream) { names.append(String(decoding: entry.name, as: UTF8.self)) }
        return names.sorted()
    }
}
