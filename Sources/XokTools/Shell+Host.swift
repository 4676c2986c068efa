// `import` and `export`: whole trees between this machine's file system and the image,
// keeping contents, modes, modification times and symbolic links. Hard links on the host
// come in as copies (embedded inodes have no second name: docs/cffs.md); device files,
// FIFOs and sockets are skipped with a warning.

#if canImport(Glibc)
import Glibc
#endif
import CFFS
import ExOS
import XokABI

extension Shell {
    private func hostError(_ command: String, _ path: String) -> ShellError {
        ShellError("\(command): \(path): \(String(cString: strerror(errno)))")
    }

    /// Progress for long copies: files and bytes so far.
    private final class Tally {
        var files = 0, bytes: UInt64 = 0
        /// Files with several names already copied, by inode (the host's device and inode,
        /// or the image's): later names become hard links to the first.
        var linked: [String: String] = [:]
        var text: String { "\(files) files, \(bytes >> 20) MiB" }
    }

    /// A host time in nanoseconds since the epoch, held to what Int64 can say (about the
    /// years 1678 to 2262; `touch -d` can set times far past either end).
    static func nanoseconds(_ t: timespec) -> Int64 {
        let (scaled, overflow) = Int64(t.tv_sec).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return t.tv_sec < 0 ? .min : .max }
        let (sum, past) = scaled.addingReportingOverflow(Int64(t.tv_nsec))
        return past ? .max : sum
    }

    /// A time in nanoseconds as a timespec (seconds rounded down, so the nanoseconds are
    /// never negative, as utimensat requires).
    static func timespecOf(_ nanoseconds: Int64) -> timespec {
        let remainder = nanoseconds % 1_000_000_000
        let seconds = nanoseconds / 1_000_000_000 - (remainder < 0 ? 1 : 0)
        return timespec(tv_sec: Int(seconds), tv_nsec: Int(remainder < 0 ? remainder + 1_000_000_000 : remainder))
    }

    func importTree(_ args: [String]) throws {
        guard args.count == 2 else { throw ShellError("import: usage: import HOSTPATH PATH") }
        var target = args[1]
        if let s = try? os.stat(target), s.isDirectory { target = Self.join(target, Self.baseName(args[0])) }
        let tally = Tally()
        try importOne(args[0], target, tally)
        progress?("import: \(tally.text), done")
    }

    private func importOne(_ host: String, _ path: String, _ tally: Tally) throws {
        var s = stat()
        guard lstat(host, &s) == 0 else { throw hostError("import", host) }
        let mode = UInt32(s.st_mode)
        let mtime = Self.nanoseconds(s.st_mtim), atime = Self.nanoseconds(s.st_atim)
        switch mode & UInt32(S_IFMT) {
        case UInt32(S_IFDIR):
            do { try ensureDirectory(path) } catch { throw ShellError("import: \(path): \(error)") }
            guard let dir = opendir(host) else { throw hostError("import", host) }
            var names: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(dir)
            for name in names.sorted() { try importOne(Self.join(host, name), Self.join(path, name), tally) }
            try os.chmod(path, mode & 0o7777)
            try os.utimes(path, access: atime, modification: mtime)
        case UInt32(S_IFLNK):
            var buffer = [UInt8](repeating: 0, count: 4097)
            let n = readlink(host, &buffer, 4096)
            guard n >= 0 else { throw hostError("import", host) }
            if (try? os.lstat(path)) != nil { try os.unlink(path) }
            try os.symlink(String(decoding: buffer[0..<n], as: UTF8.self), path)
            try os.lutimes(path, access: atime, modification: mtime)
        case UInt32(S_IFREG):
            if s.st_nlink > 1 {
                let key = "\(s.st_dev):\(s.st_ino)"
                if let first = tally.linked[key] {
                    if (try? os.lstat(path)) != nil { try os.unlink(path) }
                    try os.link(first, path)
                    tally.files += 1
                    return
                }
                tally.linked[key] = path
            }
            let input = open(host, O_RDONLY | O_CLOEXEC)
            guard input >= 0 else { throw hostError("import", host) }
            defer { close(input) }
            let creation = creationMode(for: mode)
            let output = try os.open(path, [.writeOnly, .create, .truncate], mode: creation.mode)
            defer { os.closeQuietly(output) }
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(input, $0.baseAddress, $0.count) }
                guard n >= 0 else { throw hostError("import", host) }
                if n == 0 { break }
                _ = try os.write(output, Array(buffer[0..<n]))
                tally.bytes += UInt64(n)
            }
            if creation.needsChmod { try os.fchmod(output, mode & 0o7777) }
            try os.futimes(output, access: atime, modification: mtime)
            tally.files += 1
            if tally.files % 200 == 0 { progress?("import: \(tally.text)") }
        default:
            standardError("import: \(host): not a regular file, directory or symbolic link; skipped")
        }
    }

    /// Makes directory `path`, or finds one there.
    func ensureDirectory(_ path: String) throws(Errno) {
        if let s = try? os.stat(path) {
            guard s.isDirectory else { throw .EEXIST }
            return
        }
        try os.mkdir(path, mode: 0o700)
    }

    func exportTree(_ args: [String]) throws {
        guard args.count == 2 else { throw ShellError("export: usage: export PATH HOSTPATH") }
        var target = args[1]
        var s = stat()
        if stat(target, &s) == 0, UInt32(s.st_mode) & UInt32(S_IFMT) == UInt32(S_IFDIR) { target = Self.join(target, Self.baseName(args[0])) }
        let tally = Tally()
        try exportOne(args[0], target, tally)
        progress?("export: \(tally.text), done")
    }

    private func exportOne(_ path: String, _ host: String, _ tally: Tally) throws {
        let s = try at(path) { () throws(Errno) in try os.lstat(path) }
        func times(_ flags: Int32) throws {
            var t = [Self.timespecOf(s.atime), Self.timespecOf(s.mtime)]
            guard utimensat(AT_FDCWD, host, &t, flags) == 0 else { throw hostError("export", host) }
        }
        if s.isDirectory {
            if Glibc.mkdir(host, 0o700) != 0 && errno != EEXIST { throw hostError("export", host) }
            for name in try os.list(path) { try exportOne(Self.join(path, name), Self.join(host, name), tally) }
            guard Glibc.chmod(host, mode_t(s.mode & 0o7777)) == 0 else { throw hostError("export", host) }
            try times(0)
        } else if s.isSymlink {
            unlink(host)
            guard Glibc.symlink(try os.readlink(path), host) == 0 else { throw hostError("export", host) }
            try times(AT_SYMLINK_NOFOLLOW)
        } else {
            if s.nlink > 1 {
                if let first = tally.linked["\(s.ino)"] {
                    unlink(host)
                    guard Glibc.link(first, host) == 0 else { throw hostError("export", host) }
                    tally.files += 1
                    return
                }
                tally.linked["\(s.ino)"] = host
            }
            let input = try os.open(path, .readOnly)
            defer { os.closeQuietly(input) }
            let output = open(host, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard output >= 0 else { throw hostError("export", host) }
            defer { close(output) }
            while true {
                let chunk = try os.read(input, count: 1 << 20)
                if chunk.isEmpty { break }
                var done = 0
                while done < chunk.count {
                    let n = chunk[done...].withUnsafeBytes { Glibc.write(output, $0.baseAddress, $0.count) }
                    guard n > 0 else { throw hostError("export", host) }
                    done += n
                }
                tally.bytes += UInt64(chunk.count)
            }
            guard fchmod(output, mode_t(s.mode & 0o7777)) == 0 else { throw hostError("export", host) }
            try times(0)
            tally.files += 1
            if tally.files % 200 == 0 { progress?("export: \(tally.text)") }
        }
    }
}
