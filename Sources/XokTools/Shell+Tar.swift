// tar in the shell: ustar archives, with pax extended headers where ustar's fields are
// too small (long names and link targets, sizes of 8 GiB and more). Extraction also reads
// GNU tar's long-name records, so archives from the host's tar come in too.

import CFFS
import ExOS
import XokABI

/// One archive member's header fields.
struct TarHeader {
    var name: String
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32
    var size: UInt64
    var mtime: Int64   // seconds
    var type: UInt8    // "0" file, "2" symlink, "5" directory, "1" hard link
    var link: String

    /// The 512-byte header block(s): a pax header first when ustar cannot hold it.
    func encoded() -> [UInt8] {
        var pax: [(String, String)] = []
        var (prefix, short) = ("", name)
        if !Self.fits(name) {
            if let split = Self.split(name) { (prefix, short) = split } else {
                pax.append(("path", name))
                short = String(decoding: Array(name.utf8).prefix(99), as: UTF8.self)
            }
        }
        if link.utf8.count > 100 { pax.append(("linkpath", link)) }
        if size >= 0o77777777777 { pax.append(("size", String(size))) }
        var result: [UInt8] = []
        if !pax.isEmpty {
            var records: [UInt8] = []
            for (key, value) in pax { records += Self.paxRecord(key, value) }
            var header = TarHeader(name: "PaxHeaders/" + String(short.suffix(80)), mode: 0o644, uid: 0, gid: 0,
                                   size: UInt64(records.count), mtime: mtime, type: UInt8(ascii: "x"), link: "")
            header.name = String(decoding: Array(header.name.utf8).prefix(99), as: UTF8.self)
            result += header.block(prefix: "", name: header.name)
            result += records
            result += [UInt8](repeating: 0, count: (512 - records.count % 512) % 512)
        }
        return result + block(prefix: prefix, name: short)
    }

    private func block(prefix: String, name: String) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 512)
        Self.put(name, into: &b, at: 0, width: 100)
        Self.octal(UInt64(mode & 0o7777), into: &b, at: 100, width: 8)
        Self.octal(UInt64(uid), into: &b, at: 108, width: 8)
        Self.octal(UInt64(gid), into: &b, at: 116, width: 8)
        Self.octal(size, into: &b, at: 124, width: 12)
        Self.octal(UInt64(max(0, mtime)), into: &b, at: 136, width: 12)
        b[156] = type
        Self.put(link, into: &b, at: 157, width: 100)
        Self.put("ustar", into: &b, at: 257, width: 6)
        Self.put("00", into: &b, at: 263, width: 2)
        Self.put(prefix, into: &b, at: 345, width: 155)
        for i in 148..<156 { b[i] = 0x20 }
        var sum: UInt32 = 0
        for byte in b { sum += UInt32(byte) }
        Self.octal(UInt64(sum), into: &b, at: 148, width: 7)
        b[154] = 0
        b[155] = 0x20
        return b
    }

    /// `s`'s bytes at `at`, cut to `width`.
    private static func put(_ s: String, into b: inout [UInt8], at: Int, width: Int) {
        var i = at
        for c in s.utf8.prefix(width) {
            b[i] = c
            i += 1
        }
    }

    /// `v` in octal, zero-padded to `width - 1` digits (all 7s when it does not fit).
    private static func octal(_ v: UInt64, into b: inout [UInt8], at: Int, width: Int) {
        var digits = String(v, radix: 8)
        if digits.count > width - 1 { digits = String(repeating: "7", count: width - 1) }
        put(String(repeating: "0", count: width - 1 - digits.count) + digits, into: &b, at: at, width: width - 1)
    }

    static func fits(_ name: String) -> Bool { name.utf8.count <= 100 }

    /// ustar's prefix/name split at a slash, when one works.
    static func split(_ name: String) -> (String, String)? {
        let bytes = Array(name.utf8)
        guard bytes.count <= 256 else { return nil }
        for i in stride(from: min(bytes.count - 1, 155), through: 1, by: -1) where bytes[i] == 0x2f {
            if bytes.count - i - 1 <= 100 && bytes.count - i - 1 > 0 {
                return (String(decoding: bytes[..<i], as: UTF8.self), String(decoding: bytes[(i + 1)...], as: UTF8.self))
            }
        }
        return nil
    }

    /// "LEN key=value\n", LEN counting itself.
    static func paxRecord(_ key: String, _ value: String) -> [UInt8] {
        let body = " \(key)=\(value)\n".utf8.count
        var length = body + String(body).count
        if String(length).count != String(body).count { length = body + String(length).count }
        return Array("\(length) \(key)=\(value)\n".utf8)
    }

    /// Parses a header block; nil for an all-zero block (the end).
    /// - Throws: a checksum or number that does not hold.
    static func decode(_ b: [UInt8]) throws -> TarHeader? {
        guard b.contains(where: { $0 != 0 }) else { return nil }
        var sum: UInt32 = 0
        for (i, c) in b.enumerated() { sum += (148..<156).contains(i) ? 0x20 : UInt32(c) }
        guard let stored = number(b, 148, 8), stored == UInt64(sum) else { throw ShellError("tar: this does not look like a tar archive (bad header checksum)") }
        func text(_ at: Int, _ width: Int) -> String {
            let slice = b[at..<at + width]
            return String(decoding: slice.prefix { $0 != 0 }, as: UTF8.self)
        }
        var name = text(0, 100)
        if b[257..<262].elementsEqual(Array("ustar".utf8)) {
            let prefix = text(345, 155)
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        return TarHeader(name: name, mode: UInt32(truncatingIfNeeded: number(b, 100, 8) ?? 0o644),
                         uid: UInt32(truncatingIfNeeded: number(b, 108, 8) ?? 0), gid: UInt32(truncatingIfNeeded: number(b, 116, 8) ?? 0),
                         size: number(b, 124, 12) ?? 0, mtime: Int64(truncatingIfNeeded: number(b, 136, 12) ?? 0),
                         type: b[156], link: text(157, 100))
    }

    /// An octal field (or GNU's base-256 form).
    static func number(_ b: [UInt8], _ at: Int, _ width: Int) -> UInt64? {
        if b[at] & 0x80 != 0 {
            var v: UInt64 = 0
            for i in at + 1..<at + width { v = v << 8 | UInt64(b[i]) }
            return v
        }
        var v: UInt64 = 0
        var any = false
        for c in b[at..<at + width] {
            if c == 0 || c == 0x20 { if any { break } else { continue } }
            guard c >= 0x30 && c <= 0x37 else { return nil }
            let (m, o) = v.multipliedReportingOverflow(by: 8)
            guard !o else { return nil }
            v = m + UInt64(c - 0x30)
            any = true
        }
        return v
    }

    /// The records of a pax extended header.
    static func paxRecords(_ data: [UInt8]) -> [String: String] {
        var result: [String: String] = [:]
        var i = 0
        while i < data.count {
            var j = i
            while j < data.count && data[j] != 0x20 { j += 1 }
            guard let length = Int(String(decoding: data[i..<j], as: UTF8.self)), length > j - i + 1, length <= data.count - i else { break }
            let record = data[(j + 1)..<(i + length - 1)]
            if let eq = record.firstIndex(of: 0x3d) {
                result[String(decoding: record[..<eq], as: UTF8.self)] = String(decoding: record[(eq + 1)...], as: UTF8.self)
            }
            i += length
        }
        return result
    }
}

extension Shell {
    func tar(_ args: [String]) throws {
        // "tar cf a.tar x" and "tar -c -f a.tar x" both.
        var words = args
        if let first = words.first, !first.hasPrefix("-"), first.allSatisfy({ "cxtvfzC".contains($0) }) { words[0] = "-" + first }
        var create = false, extract = false, list = false, verbose = false
        var archive: String?, directory: String?
        var operands: [String] = []
        var i = 0
        while i < words.count {
            let w = words[i]
            if w.hasPrefix("-") && w.count > 1 {
                var takesF = false, takesC = false
                for c in w.dropFirst() {
                    switch c {
                    case "c": create = true
                    case "x": extract = true
                    case "t": list = true
                    case "v": verbose = true
                    case "f": takesF = true
                    case "C": takesC = true
                    default: throw ShellError("tar: invalid option -- '\(c)'")
                    }
                }
                if takesF {
                    i += 1
                    guard i < words.count else { throw ShellError("tar: option requires an argument -- 'f'") }
                    archive = words[i]
                }
                if takesC {
                    i += 1
                    guard i < words.count else { throw ShellError("tar: option requires an argument -- 'C'") }
                    directory = words[i]
                }
            } else {
                operands.append(w)
            }
            i += 1
        }
        guard [create, extract, list].filter({ $0 }).count == 1 else { throw ShellError("tar: exactly one of -c, -x, -t is needed") }
        guard let archive else { throw ShellError("tar: an archive is needed (-f ARCHIVE)") }
        let base = directory ?? "."
        if create {
            guard !operands.isEmpty else { throw ShellError("tar: cowardly refusing to create an empty archive") }
            try createArchive(archive, operands, base: base, verbose: verbose)
        } else {
            try readArchive(archive, into: base, extract: extract, verbose: verbose || list)
        }
    }

    /// Writes members for `paths` (relative to `base`) into `archive`.
    private func createArchive(_ archive: String, _ paths: [String], base: String, verbose: Bool) throws {
        let fd = try at(archive) { () throws(Errno) in try os.open(archive, [.writeOnly, .create, .truncate], mode: 0o644) }
        let writer = ArchiveWriter(os: os, fd: fd)
        do {
            for path in paths {
                var name = path
                while name.hasPrefix("/") { name.removeFirst() }
                if name.isEmpty { name = "." }
                try addMember(path, as: name, base: base, verbose: verbose, to: writer)
            }
            writer.buffer += [UInt8](repeating: 0, count: 1024)
            try writer.flush(force: true)
            try os.close(fd)
        } catch {
            try? os.close(fd)
            throw error
        }
    }

    /// Appends `path` (and, for a directory, everything under it) as member `name`.
    private func addMember(_ path: String, as name: String, base: String, verbose: Bool, to writer: ArchiveWriter<P>) throws {
        let full = path.hasPrefix("/") ? path : Self.join(base, path)
        let s = try at(full) { () throws(Errno) in try os.lstat(full) }
        var header = TarHeader(name: name, mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, size: 0, mtime: s.mtime / 1_000_000_000,
                               type: UInt8(ascii: "0"), link: "")
        if s.isDirectory {
            header.type = UInt8(ascii: "5")
            header.name = name.hasSuffix("/") ? name : name + "/"
        } else if s.isSymlink {
            header.type = UInt8(ascii: "2")
            header.link = try os.readlink(full)
        } else if s.nlink > 1, let first = writer.linked[s.ino] {
            header.type = UInt8(ascii: "1")
            header.link = first
        } else {
            if s.nlink > 1 { writer.linked[s.ino] = name }
            header.size = s.size
        }
        if verbose { print(header.name) }
        writer.buffer += header.encoded()
        if header.type == UInt8(ascii: "0") {
            let input = try os.open(full, .readOnly)
            var left = s.size
            while left > 0 {
                let chunk: [UInt8]
                do { chunk = try os.read(input, count: Int(min(left, 1 << 20))) } catch {
                    try? os.close(input)
                    throw error
                }
                if chunk.isEmpty {
                    try? os.close(input)
                    throw ShellError("tar: \(full): file shrank while being read")
                }
                writer.buffer += chunk
                left -= UInt64(chunk.count)
                try writer.flush(force: false)
            }
            try os.close(input)
            writer.buffer += [UInt8](repeating: 0, count: Int((512 - s.size % 512) % 512))
        }
        try writer.flush(force: false)
        writer.members += 1
        if writer.members % 500 == 0 { progress?("tar: \(writer.members) members") }
        if s.isDirectory {
            let stem = name.hasSuffix("/") ? String(name.dropLast()) : name
            for child in try os.list(full) {
                try addMember(Self.join(path, child), as: Self.join(stem, child), base: base, verbose: verbose, to: writer)
            }
        }
    }

    /// Reads `archive`: lists its members, and with `extract` makes them under `base`.
    private func readArchive(_ archive: String, into base: String, extract: Bool, verbose: Bool) throws {
        let fd = try at(archive) { () throws(Errno) in try os.open(archive, .readOnly) }
        defer { os.closeQuietly(fd) }
        let reader = ArchiveReader(os: os, fd: fd)
        var directories: [(path: String, mode: UInt32, mtime: Int64)] = []
        var members = 0
        while let member = try reader.nextMember() {
            if verbose { print(member.name) }
            members += 1
            if members % 500 == 0 { progress?("tar: \(members) members") }
            if let directory = try place(member, from: reader, under: base, extract: extract) { directories.append(directory) }
        }
        // Directories last, deepest first: their modes may forbid writing, and extracting
        // into them changed their times.
        for (path, mode, mtime) in directories.reversed() {
            try os.chmod(path, mode)
            try os.utimes(path, access: mtime, modification: mtime)
        }
    }

    /// Extracts `member` under `base` (or, without `extract`, skips its data). Returns a
    /// directory made, whose mode and time are set at the end.
    private func place(_ member: TarMember, from reader: ArchiveReader<P>, under base: String,
                       extract: Bool) throws -> (path: String, mode: UInt32, mtime: Int64)? {
        let header = member.header
        // Names stay inside the target: no leading '/', no "..".
        let components = member.name.split(separator: "/")
        let unsafe = components.contains("..")
        if !extract || unsafe || components.isEmpty {
            if unsafe { standardError("tar: \(member.name): member name contains '..'; skipped") }
            try reader.skip(member.isFile ? member.paddedSize : member.headerPadded)
            return nil
        }
        let target = Self.join(base, components.joined(separator: "/"))
        switch header.type {
        case UInt8(ascii: "5"):
            do { try ensureDirectory(target) } catch { throw ShellError("tar: \(target): \(error)") }
            return (target, header.mode & 0o7777, member.mtime)
        case UInt8(ascii: "2"):
            try? os.unlink(target)
            try os.symlink(member.link, target)
            try os.lutimes(target, access: member.mtime, modification: member.mtime)
        case UInt8(ascii: "1"):
            let source = member.link.split(separator: "/")
            guard !source.isEmpty, !source.contains("..") else {
                standardError("tar: \(member.name): hard link to '\(member.link)' leaves the archive; skipped")
                return nil
            }
            if let existing = try? os.lstat(target), !existing.isDirectory { try os.unlink(target) }
            do { try os.link(Self.join(base, source.joined(separator: "/")), target) } catch {
                throw ShellError("tar: \(target): cannot hard link to '\(member.link)': \(error)")
            }
        default:
            guard member.isFile else {
                standardError("tar: \(member.name): unsupported member type '\(Character(UnicodeScalar(header.type)))'; skipped")
                try reader.skip(member.headerPadded)
                return nil
            }
            // As GNU tar: create it; only when the name is taken, remove what is there
            // (not a directory) and create it again.
            let creation = creationMode(for: header.mode)
            var output: Int32
            do { output = try os.open(target, [.writeOnly, .create, .exclusive], mode: creation.mode) } catch {
                guard error == .EEXIST else { throw error }
                if try !os.lstat(target).isDirectory { try os.unlink(target) }
                output = try os.open(target, [.writeOnly, .create, .truncate], mode: creation.mode)
            }
            defer { os.closeQuietly(output) }
            var left = member.size
            while left > 0 {
                let n = Int(min(left, 1 << 20))
                _ = try os.write(output, try reader.take(n))
                left -= UInt64(n)
            }
            try reader.skip(member.paddedSize - Int(member.size))
            if creation.needsChmod { try os.fchmod(output, header.mode & 0o7777) }
            try os.futimes(output, access: member.mtime, modification: member.mtime)
        }
        return nil
    }
}

/// A member as the archive describes it, after pax and GNU long-name records.
struct TarMember {
    var header: TarHeader
    var name: String
    var link: String
    var size: UInt64
    /// Nanoseconds.
    var mtime: Int64

    var isFile: Bool { header.type == UInt8(ascii: "0") || header.type == 0 || header.type == UInt8(ascii: "7") }
    /// The data's size rounded up to whole blocks, as `size` says.
    var paddedSize: Int { Int((size + 511) / 512 * 512) }
    /// The same, as the header's own size field says.
    var headerPadded: Int { Int((header.size + 511) / 512 * 512) }
}

/// An archive being read, in 1 MiB reads. (A class, not variables captured by a local
/// function: Swift 6.3's AllocBoxToStack pass takes minutes on the latter in a function
/// this size.)
final class ArchiveReader<P: KernelPort> {
    let os: ExOS<P>
    let fd: Int32
    var pending: [UInt8] = []
    var position = 0
    init(os: ExOS<P>, fd: Int32) {
        self.os = os
        self.fd = fd
    }

    /// The next member, or nil at the archive's end.
    func nextMember() throws -> TarMember? {
        var overrides: [String: String] = [:]
        var longName: String?, longLink: String?
        while true {
            guard let header = try TarHeader.decode(try take(512)) else { return nil }
            guard header.size <= UInt64(Int.max / 2) else { throw ShellError("tar: a member's size is out of range") }
            let padded = Int((header.size + 511) / 512 * 512)
            switch header.type {
            case UInt8(ascii: "x"), UInt8(ascii: "g"):
                let data = try take(padded)
                if header.type == UInt8(ascii: "x") { overrides = TarHeader.paxRecords(Array(data.prefix(Int(header.size)))) }
                continue
            case UInt8(ascii: "L"), UInt8(ascii: "K"):
                let data = Array(try take(padded).prefix(Int(header.size)))
                let text = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
                if header.type == UInt8(ascii: "L") { longName = text } else { longLink = text }
                continue
            default:
                break
            }
            var name = overrides["path"] ?? longName ?? header.name
            while name.hasPrefix("/") { name.removeFirst() }
            let size = overrides["size"].flatMap { UInt64($0) } ?? header.size
            guard size <= UInt64(Int.max / 2) else { throw ShellError("tar: \(name): size out of range") }
            let seconds = overrides["mtime"].flatMap { Double($0) } ?? Double(header.mtime)
            let mtime = seconds.isFinite && abs(seconds) < 9e9 ? Int64(seconds * 1e9) : 0
            return TarMember(header: header, name: name, link: overrides["linkpath"] ?? longLink ?? header.link, size: size, mtime: mtime)
        }
    }

    /// Skips `n` bytes.
    func skip(_ n: Int) throws {
        var left = n
        while left > 0 {
            let step = min(left, 1 << 20)
            _ = try take(step)
            left -= step
        }
    }

    /// The next `n` bytes.
    func take(_ n: Int) throws -> [UInt8] {
        while pending.count - position < n {
            let chunk = try os.read(fd, count: 1 << 20)
            if chunk.isEmpty { throw ShellError("tar: unexpected end of archive") }
            pending.removeSubrange(0..<position)
            position = 0
            pending += chunk
        }
        let result = Array(pending[position..<position + n])
        position += n
        return result
    }
}

/// An archive being written: bytes gathered into 1 MiB writes.
final class ArchiveWriter<P: KernelPort> {
    let os: ExOS<P>
    let fd: Int32
    var buffer: [UInt8] = []
    var members = 0
    /// Files with several names already archived, by inode number: a later name becomes
    /// a hard link member.
    var linked: [UInt64: String] = [:]
    init(os: ExOS<P>, fd: Int32) {
        self.os = os
        self.fd = fd
        buffer.reserveCapacity(1 << 21)
    }
    func flush(force: Bool) throws {
        if buffer.count >= 1 << 20 || (force && !buffer.isEmpty) {
            _ = try os.write(fd, buffer)
            buffer.removeAll(keepingCapacity: true)
        }
    }
}
