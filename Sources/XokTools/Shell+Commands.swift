// The shell's file commands, each a few ExOS calls.

import CFFS
import ExOS
import XokABI

extension Shell {
    /// `dir/name`, without doubling the slash.
    static func join(_ dir: String, _ name: String) -> String { dir.hasSuffix("/") ? dir + name : dir + "/" + name }

    /// The last component of a path.
    static func baseName(_ path: String) -> String {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        return trimmed.split(separator: "/").last.map(String.init) ?? trimmed
    }

    // MARK: ls

    func ls(_ args: [String]) throws {
        let (flags, operands) = try options("ls", args, allowed: "lad1")
        let paths = operands.isEmpty ? ["."] : operands
        var failed = false
        var files: [String] = [], dirs: [String] = []
        for path in paths {
            do {
                let status = try os.lstat(path)
                if status.isDirectory && !flags.contains("d") { dirs.append(path) } else {
                    if status.isSymlink, !flags.contains("l"), !flags.contains("d"), let target = try? os.stat(path), target.isDirectory {
                        dirs.append(path)
                    } else {
                        files.append(path)
                    }
                }
            } catch {
                standardError("ls: \(path): \(error)")
                failed = true
            }
        }
        for path in files.sorted() { try listOne(path, name: path, long: flags.contains("l")) }
        for (i, dir) in dirs.enumerated() {
            if paths.count > 1 {
                if i > 0 || !files.isEmpty { print("") }
                print("\(dir):")
            }
            do {
                var names = try os.list(dir)
                if flags.contains("a") { names = [".", ".."] + names }
                for name in names {
                    try listOne(name == "." || name == ".." ? Self.join(dir, name) : Self.join(dir, name), name: name, long: flags.contains("l"))
                }
            } catch let error as Errno {
                standardError("ls: \(dir): \(error)")
                failed = true
            }
        }
        if failed { throw Silent() }
    }

    private func listOne(_ path: String, name: String, long: Bool) throws {
        guard long else { return print(name) }
        let s = try os.lstat(path)
        var line = "\(Self.modeString(s.mode)) \(s.nlink) \(s.uid) \(s.gid) \(s.size) \(Self.shortDate(s.mtime)) \(name)"
        if s.isSymlink { line += " -> " + (try os.readlink(path)) }
        print(line)
    }

    /// `-rwxr-xr-x` for a mode.
    static func modeString(_ mode: UInt32) -> String {
        let type: String
        switch mode & FileMode.typeMask {
        case FileMode.directory: type = "d"
        case FileMode.symlink: type = "l"
        default: type = "-"
        }
        let letters = Array("rwxrwxrwx")
        var bits = ""
        for i in 0..<9 { bits += mode & (1 << UInt32(8 - i)) != 0 ? String(letters[i]) : "-" }
        return type + bits
    }

    /// `Nov 26 06:11` (UTC).
    static func shortDate(_ nanoseconds: Int64) -> String {
        let (y, mo, d, h, mi, _) = civil(nanoseconds)
        _ = y
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return "\(months[mo - 1]) \(d < 10 ? " " : "")\(d) \(two(h)):\(two(mi))"
    }

    static func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

    /// Year, month, day, hour, minute, second (UTC) of a time in nanoseconds.
    static func civil(_ nanoseconds: Int64) -> (Int, Int, Int, Int, Int, Int) {
        // Floor division, without an intermediate that overflows at the ends of Int64 (a
        // damaged entry may hold any time).
        let seconds = nanoseconds / 1_000_000_000 - (nanoseconds % 1_000_000_000 < 0 ? 1 : 0)
        var days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let rest = Int(seconds - days * 86_400)
        // Days to civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let doe = days - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = Int(doy - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        let year = Int(yoe + era * 400) + (month <= 2 ? 1 : 0)
        return (year, month, day, rest / 3600, rest / 60 % 60, rest % 60)
    }

    // MARK: cat

    func cat(_ args: [String]) throws {
        try each("cat", args) { path in
            let fd = try os.open(path, .readOnly)
            defer { os.closeQuietly(fd) }
            if try os.fstat(fd).isDirectory { throw Errno.EISDIR }
            while true {
                let chunk = try os.read(fd, count: 1 << 16)
                if chunk.isEmpty { break }
                out(chunk)
            }
        }
    }

    // MARK: cp, mv, rm, mkdir, ln

    func cp(_ args: [String]) throws {
        let (flags, operands) = try options("cp", args, allowed: "rRpaf")
        let recursive = flags.contains("r") || flags.contains("R") || flags.contains("a")
        let preserve = flags.contains("p") || flags.contains("a")
        try transfer("cp", operands) { source, target in
            let status = try os.lstat(source)
            if status.isDirectory && !recursive { throw ShellError("cp: -r not specified; omitting directory '\(source)'") }
            try copy(source, to: target, preserve: preserve, dereference: !recursive)
        }
    }

    func mv(_ args: [String]) throws {
        let (_, operands) = try options("mv", args, allowed: "f")
        try transfer("mv", operands) { source, target in try os.rename(source, target) }
    }

    /// cp's and mv's operands: SOURCE TARGET, or SOURCE... DIRECTORY.
    private func transfer(_ command: String, _ operands: [String], _ body: (String, String) throws -> Void) throws {
        guard operands.count >= 2 else {
            throw ShellError(operands.isEmpty ? "\(command): missing file operand" : "\(command): missing destination file operand after '\(operands[0])'")
        }
        let destination = operands.last!
        let sources = operands.dropLast()
        let intoDirectory = (try? os.stat(destination))?.isDirectory ?? false
        if sources.count > 1 && !intoDirectory { throw ShellError("\(command): target '\(destination)' is not a directory") }
        try forEach(command, sources) { source in
            let target = intoDirectory ? Self.join(destination, Self.baseName(source)) : destination
            if try isInside(target, source) {
                throw ShellError(command == "mv" ? "mv: cannot move '\(source)' to a subdirectory of itself, '\(target)'"
                                                 : "\(command): cannot copy a directory, '\(source)', into itself, '\(target)'")
            }
            try body(source, target)
        }
    }

    /// Whether `target` would lie inside directory `source`.
    private func isInside(_ target: String, _ source: String) throws -> Bool {
        guard (try? os.lstat(source))?.isDirectory == true else { return false }
        let parent = target.split(separator: "/").dropLast().joined(separator: "/")
        let dirPath = (target.hasPrefix("/") ? "/" : "") + parent
        guard let dir = try? os.stat(dirPath.isEmpty ? "." : dirPath), let src = try? os.stat(source) else { return false }
        if dir.ino == src.ino { return true }
        let fullTarget = absolute(target), fullSource = absolute(source)
        return fullTarget.hasPrefix(fullSource + "/")
    }

    private func absolute(_ path: String) -> String { path.hasPrefix("/") ? path : Self.join(os.getcwd(), path) }

    /// Copies a file, symbolic link or (recursively) directory.
    func copy(_ source: String, to target: String, preserve: Bool, dereference: Bool) throws {
        let status: FileStatus
        if dereference { status = try os.stat(source) } else { status = try os.lstat(source) }
        if status.isSymlink {
            try os.symlink(try os.readlink(source), target)
        } else if status.isDirectory {
            if (try? os.lstat(target))?.isDirectory != true { try os.mkdir(target, mode: 0o700) }
            for name in try os.list(source) {
                try copy(Self.join(source, name), to: Self.join(target, name), preserve: preserve, dereference: false)
            }
            try os.chmod(target, preserve ? status.mode : status.mode & ~currentUmask)
        } else {
            let input = try os.open(source, .readOnly)
            defer { os.closeQuietly(input) }
            let output = try os.open(target, [.writeOnly, .create, .truncate], mode: status.mode & 0o7777)
            defer { os.closeQuietly(output) }
            while true {
                let chunk = try os.read(input, count: 1 << 20)
                if chunk.isEmpty { break }
                _ = try os.write(output, chunk)
            }
            if preserve {
                try os.fchmod(output, status.mode)
                try os.futimes(output, access: status.atime, modification: status.mtime)
            }
            return
        }
        if preserve && !status.isSymlink { try os.utimes(target, access: status.atime, modification: status.mtime) }
    }

    /// The mode to create a file with that will have `mode` once written: `mode` itself
    /// when the umask leaves it whole and its owner may write (no chmod needed after the
    /// data); otherwise 0600, with `needsChmod`, as tar does for a read-only file.
    func creationMode(for mode: UInt32) -> (mode: UInt32, needsChmod: Bool) {
        let mode = mode & 0o7777
        if mode & 0o200 != 0, mode & 0o7000 == 0, mode & currentUmask == 0 { return (mode, false) }
        return (0o600, true)
    }

    private var currentUmask: UInt32 {
        let mask = os.umask(0)
        os.umask(mask)
        return mask
    }

    func rm(_ args: [String]) throws {
        let (flags, operands) = try options("rm", args, allowed: "rRfd")
        let recursive = flags.contains("r") || flags.contains("R"), force = flags.contains("f")
        if operands.isEmpty && !force { throw ShellError("rm: missing operand") }
        try forEach("rm", operands) { path in
            do {
                let status = try os.lstat(path)
                if status.isDirectory {
                    guard recursive else { throw ShellError("rm: cannot remove '\(path)': Is a directory") }
                    try removeTree(path)
                } else {
                    try os.unlink(path)
                }
            } catch let e as Errno where e == .ENOENT && force {}
        }
    }

    /// Removes a tree, deepest first.
    /// rm -r of `path`; `isDirectory` is what the listing that found it said (rm, like
    /// GNU's, takes the type from the directory entry instead of a stat of each file).
    func removeTree(_ path: String, isDirectory known: Bool? = nil) throws {
        let isDirectory: Bool
        if let known { isDirectory = known } else { isDirectory = try os.lstat(path).isDirectory }
        guard isDirectory else { return try os.unlink(path) }
        for child in try children(of: path) { try removeTree(Self.join(path, child.name), isDirectory: child.isDirectory) }
        try os.rmdir(path)
    }

    /// A directory's entries, by name, with whether each is a directory (readdir's d_type).
    func children(of path: String) throws -> [(name: String, isDirectory: Bool)] {
        let stream = try os.opendir(path)
        defer { try? os.closedir(stream) }
        var found: [(name: String, isDirectory: Bool)] = []
        while let entry = try os.readdir(stream) { found.append((String(decoding: entry.name, as: UTF8.self), entry.inode.isDirectory)) }
        return found.sorted { $0.name < $1.name }
    }

    func mkdir(_ args: [String]) throws {
        var args = args
        var mode: UInt32 = 0o777
        if let m = args.firstIndex(of: "-m") {
            guard m + 1 < args.count, let parsed = UInt32(args[m + 1], radix: 8) else { throw ShellError("mkdir: invalid mode") }
            mode = parsed
            args.removeSubrange(m...m + 1)
        }
        let (flags, operands) = try options("mkdir", args, allowed: "p")
        let chosen = mode
        try each("mkdir", operands) { path in
            guard flags.contains("p") else { return try os.mkdir(path, mode: chosen) }
            var prefix = path.hasPrefix("/") ? "/" : ""
            for component in path.split(separator: "/") {
                prefix = prefix.isEmpty || prefix == "/" ? prefix + component : prefix + "/" + component
                do { try os.mkdir(prefix, mode: chosen) } catch let e as Errno where e == .EEXIST {
                    guard try os.stat(prefix).isDirectory else { throw Errno.ENOTDIR }
                }
            }
        }
    }

    func ln(_ args: [String]) throws {
        let (flags, operands) = try options("ln", args, allowed: "sf")
        guard operands.count == 2 else { throw ShellError("ln: usage: ln [-s] TARGET LINK") }
        var link = operands[1]
        if let s = try? os.stat(link), s.isDirectory { link = Self.join(link, Self.baseName(operands[0])) }
        if flags.contains("f") { try? os.unlink(link) }
        do {
            if flags.contains("s") { try os.symlink(operands[0], link) } else { try os.link(operands[0], link) }
        } catch {
            throw ShellError(flags.contains("s") ? "ln: failed to create symbolic link '\(link)': \(error)"
                                                 : "ln: failed to create hard link '\(link)' => '\(operands[0])': \(error)")
        }
    }

    // MARK: stat, chmod

    func statCommand(_ args: [String]) throws {
        try each("stat", args) { path in
            let s = try os.lstat(path)
            let kind = s.isDirectory ? "directory" : s.isSymlink ? "symbolic link" : s.size == 0 ? "regular empty file" : "regular file"
            var name = path
            if s.isSymlink { name += " -> " + (try os.readlink(path)) }
            print("  File: \(name)")
            print("  Size: \(s.size)\tBlocks: \(s.blocks)\tIO Block: 4096\t\(kind)")
            print("Device: xok\tInode: \(s.ino)\tLinks: \(s.nlink)")
            print("Access: (0\(String(s.mode & 0o7777, radix: 8))/\(Self.modeString(s.mode)))  Uid: (\(s.uid))   Gid: (\(s.gid))")
            print("Access: \(Self.longDate(s.atime))")
            print("Modify: \(Self.longDate(s.mtime))")
            print("Change: \(Self.longDate(s.ctime))")
        }
    }

    /// `2026-11-26 06:11:20.123456789 +0000`.
    static func longDate(_ nanoseconds: Int64) -> String {
        let (y, mo, d, h, mi, s) = civil(nanoseconds)
        var fraction = String(((nanoseconds % 1_000_000_000) + 1_000_000_000) % 1_000_000_000)
        while fraction.count < 9 { fraction = "0" + fraction }
        return "\(y)-\(two(mo))-\(two(d)) \(two(h)):\(two(mi)):\(two(s)).\(fraction) +0000"
    }

    func chmod(_ args: [String]) throws {
        let (flags, operands) = try options("chmod", args, allowed: "R")
        guard operands.count >= 2 else { throw ShellError("chmod: missing operand") }
        try each("chmod", Array(operands.dropFirst())) { path in
            try changeMode(path, operands[0], recursive: flags.contains("R"))
        }
    }

    private func changeMode(_ path: String, _ spec: String, recursive: Bool) throws {
        let s = try os.stat(path)
        try os.chmod(path, try Self.mode(spec, from: s.mode))
        guard recursive && s.isDirectory else { return }
        for name in try os.list(path) where !(try os.lstat(Self.join(path, name))).isSymlink {
            try changeMode(Self.join(path, name), spec, recursive: true)
        }
    }

    /// A mode from chmod's octal or symbolic (`u+x,go-w,a=r`) form.
    static func mode(_ spec: String, from old: UInt32) throws -> UInt32 {
        if let octal = UInt32(spec, radix: 8) {
            guard octal <= 0o7777 else { throw ShellError("chmod: invalid mode: '\(spec)'") }
            return octal
        }
        var mode = old & 0o7777
        for clause in spec.split(separator: ",") {
            var who: UInt32 = 0
            var rest = Substring(clause)
            while let c = rest.first, "ugoa".contains(c) {
                who |= c == "u" ? 0o4700 : c == "g" ? 0o2070 : c == "o" ? 0o0007 : 0o6777
                rest = rest.dropFirst()
            }
            if who == 0 { who = 0o6777 }
            guard let op = rest.first, "+-=".contains(op) else { throw ShellError("chmod: invalid mode: '\(spec)'") }
            rest = rest.dropFirst()
            var bits: UInt32 = 0
            for c in rest {
                switch c {
                case "r": bits |= 0o444
                case "w": bits |= 0o222
                case "x": bits |= 0o111
                case "X": if old & FileMode.typeMask == FileMode.directory || old & 0o111 != 0 { bits |= 0o111 }
                case "s": bits |= 0o6000
                case "t": bits |= 0o1000
                default: throw ShellError("chmod: invalid mode: '\(spec)'")
                }
            }
            bits &= who
            switch op {
            case "+": mode |= bits
            case "-": mode &= ~bits
            default: mode = (mode & ~who) | bits
            }
        }
        return mode
    }

    // MARK: df, du

    func df(_ args: [String]) throws {
        let state = os.fs.port.exposedState()
        let total = state.diskBlocks, free = min(state.diskFreeBlocks, state.diskBlocks)
        let used = total - free
        print("Filesystem      1K-blocks       Used  Available Use% Mounted on")
        let percent = total == 0 ? 0 : (used * 100 + total - 1) / total
        print("cffs \(pad(total * 4, 18)) \(pad(used * 4, 10)) \(pad(free * 4, 10)) \(pad(percent, 3))% /")
    }

    private func pad(_ n: UInt64, _ width: Int) -> String {
        let s = String(n)
        return String(repeating: " ", count: max(0, width - s.count)) + s
    }

    func du(_ args: [String]) throws {
        let (flags, operands) = try options("du", args, allowed: "sk")
        let paths = operands.isEmpty ? ["."] : operands
        try each("du", paths) { path in
            let total = try usage(path, print: !flags.contains("s"))
            print("\(total)\t\(path)")
        }
    }

    /// KiB used under `path`; prints each directory below it when `print`.
    private func usage(_ path: String, print: Bool) throws -> UInt64 {
        let s = try os.lstat(path)
        var total = s.blocks / 2
        if s.isDirectory {
            for name in try os.list(path) {
                let child = Self.join(path, name)
                let n = try usage(child, print: print)
                if print, (try os.lstat(child)).isDirectory { self.print("\(n)\t\(child)") }
                total += n
            }
        }
        return total
    }

    // MARK: cksum, diff

    func cksum(_ args: [String]) throws {
        try each("cksum", args) { path in
            let fd = try os.open(path, .readOnly)
            defer { os.closeQuietly(fd) }
            var crc = POSIXChecksum()
            while true {
                let chunk = try os.read(fd, count: 1 << 16)
                if chunk.isEmpty { break }
                crc.update(chunk)
            }
            print("\(crc.value) \(crc.length) \(path)")
        }
    }

    /// Returns false when the files or trees differ.
    func diff(_ args: [String]) throws -> Bool {
        let (flags, operands) = try options("diff", args, allowed: "rq")
        guard operands.count == 2 else { throw ShellError("diff: usage: diff [-r] A B") }
        return try compare(operands[0], operands[1], recursive: flags.contains("r"))
    }

    private func compare(_ a: String, _ b: String, recursive: Bool) throws -> Bool {
        let sa = try at(a) { () throws(Errno) in try os.lstat(a) }, sb = try at(b) { () throws(Errno) in try os.lstat(b) }
        if sa.isDirectory && sb.isDirectory {
            guard recursive else {
                print("Common subdirectories: \(a) and \(b)")
                return true
            }
            let na = Set(try os.list(a)), nb = Set(try os.list(b))
            var same = true
            for name in na.union(nb).sorted() {
                if !nb.contains(name) {
                    print("Only in \(a): \(name)")
                    same = false
                } else if !na.contains(name) {
                    print("Only in \(b): \(name)")
                    same = false
                } else if !(try compare(Self.join(a, name), Self.join(b, name), recursive: true)) {
                    same = false
                }
            }
            return same
        }
        if sa.isSymlink || sb.isSymlink {
            if sa.isSymlink && sb.isSymlink {
                if try os.readlink(a) == os.readlink(b) { return true }
                print("Symbolic links \(a) and \(b) differ")
            } else {
                print("File \(a) is a \(Self.kind(sa)) while file \(b) is a \(Self.kind(sb))")
            }
            return false
        }
        if sa.isDirectory != sb.isDirectory {
            print("File \(a) is a \(Self.kind(sa)) while file \(b) is a \(Self.kind(sb))")
            return false
        }
        if sa.size == sb.size, try sameContents(a, b) { return true }
        print("Files \(a) and \(b) differ")
        return false
    }

    static func kind(_ s: FileStatus) -> String { s.isDirectory ? "directory" : s.isSymlink ? "symbolic link" : "regular file" }

    private func sameContents(_ a: String, _ b: String) throws -> Bool {
        let fa = try os.open(a, .readOnly)
        defer { os.closeQuietly(fa) }
        let fb = try os.open(b, .readOnly)
        defer { os.closeQuietly(fb) }
        while true {
            let x = try os.read(fa, count: 1 << 16), y = try os.read(fb, count: 1 << 16)
            if x != y { return false }
            if x.isEmpty { return true }
        }
    }
}

/// cksum(1)'s CRC: CRC-32 with polynomial 0x04C11DB7, most significant bit first, over
/// the bytes and then the length, complemented.
public struct POSIXChecksum {
    /// Eight tables of 256: table k gives a byte's CRC followed by k zero bytes, so eight
    /// bytes are folded in at a time (slicing-by-8).
    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i) << 24
            for _ in 0..<8 { c = c & 0x8000_0000 != 0 ? (c << 1) ^ 0x04C1_1DB7 : c << 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 {
                let previous = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (previous << 8) ^ t[Int(previous >> 24)]
            }
        }
        return t
    }()
    var crc: UInt32 = 0
    public private(set) var length: UInt64 = 0

    public init() {}

    public mutating func update(_ bytes: [UInt8]) {
        var c = crc
        Self.tables.withUnsafeBufferPointer { t in
            bytes.withUnsafeBufferPointer { b in
                var i = 0
                while i + 8 <= b.count {
                    let one = c ^ (UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3]))
                    let two = UInt32(b[i + 4]) << 24 | UInt32(b[i + 5]) << 16 | UInt32(b[i + 6]) << 8 | UInt32(b[i + 7])
                    c = t[7 * 256 + Int(one >> 24)] ^ t[6 * 256 + Int((one >> 16) & 0xff)] ^ t[5 * 256 + Int((one >> 8) & 0xff)]
                        ^ t[4 * 256 + Int(one & 0xff)] ^ t[3 * 256 + Int(two >> 24)] ^ t[2 * 256 + Int((two >> 16) & 0xff)]
                        ^ t[256 + Int((two >> 8) & 0xff)] ^ t[Int(two & 0xff)]
                    i += 8
                }
                while i < b.count {
                    c = (c << 8) ^ t[Int((c >> 24) ^ UInt32(b[i]))]
                    i += 1
                }
            }
        }
        crc = c
        length += UInt64(bytes.count)
    }

    public var value: UInt32 {
        var c = crc
        var n = length
        while n > 0 {
            c = (c << 8) ^ Self.tables[Int((c >> 24) ^ UInt32(n & 0xff))]
            n >>= 8
        }
        return ~c
    }
}
