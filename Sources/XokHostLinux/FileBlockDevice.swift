// The Linux block device (DESIGN.md §7): a disk image file or a block device path, read
// with pread and written with one pwrite per run of consecutive blocks (or, with O_DIRECT,
// a block at a time through an aligned buffer), with fdatasync as the write barrier.

#if canImport(Glibc)
import Glibc
#endif
import XN
import XokABI

/// Linux's O_DIRECT (0o40000 on x86-64), which Glibc's Swift overlay does not export.
let directFlag: Int32 = 0o40000

/// A disk image file or block device.
public final class FileBlockDevice: BlockDevice {
    public let path: String
    public let blockCount: UInt64
    private let fd: Int32
    private let direct: Bool
    /// One aligned block for O_DIRECT transfers.
    private let scratch: UnsafeMutableRawPointer

    private init(path: String, fd: Int32, blockCount: UInt64, direct: Bool) {
        self.path = path
        self.fd = fd
        self.blockCount = blockCount
        self.direct = direct
        scratch = UnsafeMutableRawPointer.allocate(byteCount: XNLayout.blockBytes, alignment: XNLayout.blockBytes)
    }

    deinit {
        close(fd)
        scratch.deallocate()
    }

    private static func failure(_ what: String, _ path: String) -> DeviceError {
        DeviceError("\(what) \(path): \(String(cString: strerror(errno)))")
    }

    /// Takes the image for this process alone (an advisory lock, held while the descriptor
    /// is open): a second kernel on the same image, such as a shell started beside an
    /// `xokd` serving it, would corrupt it. Closes `fd` when the lock is held elsewhere.
    private static func lockExclusively(_ fd: Int32, _ path: String) throws(DeviceError) {
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            let failure = failure("cannot lock", path)
            close(fd)
            throw busy ? DeviceError("\(path) is in use by another kernel (an xokd serving it, or another xok)") : failure
        }
    }

    /// Creates (or truncates) an image file of `blocks` blocks.
    public static func create(path: String, blocks: UInt64, direct: Bool = false) throws(DeviceError) -> FileBlockDevice {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC | (direct ? directFlag : 0), 0o644)
        guard fd >= 0 else { throw failure("cannot create", path) }
        // Locked before it is emptied: an image in use is refused, not truncated.
        try lockExclusively(fd, path)
        guard ftruncate(fd, 0) == 0, ftruncate(fd, off_t(blocks * UInt64(XNLayout.blockBytes))) == 0 else {
            close(fd)
            throw failure("cannot size", path)
        }
        return FileBlockDevice(path: path, fd: fd, blockCount: blocks, direct: direct)
    }

    /// Opens an existing image file or block device (its size, rounded down to blocks);
    /// read-write only when no other process has it open read-write.
    public static func open(path: String, readOnly: Bool = false, direct: Bool = false) throws(DeviceError) -> FileBlockDevice {
        let fd = Glibc.open(path, (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? directFlag : 0))
        guard fd >= 0 else { throw failure("cannot open", path) }
        if !readOnly { try lockExclusively(fd, path) }
        let size = lseek(fd, 0, SEEK_END)
        guard size >= 0 else {
            close(fd)
            throw failure("cannot size", path)
        }
        return FileBlockDevice(path: path, fd: fd, blockCount: UInt64(size) / UInt64(XNLayout.blockBytes), direct: direct)
    }

    public func read(_ blocks: [BlockNumber]) throws(DeviceError) -> [[UInt8]] {
        for block in blocks where block >= blockCount { throw DeviceError("block \(block) is past the end of \(path)") }
        if !direct { return try readRuns(blocks) }
        var result: [[UInt8]] = []
        result.reserveCapacity(blocks.count)
        for block in blocks {
            var bytes = [UInt8](repeating: 0, count: XNLayout.blockBytes)
            let offset = off_t(block * UInt64(XNLayout.blockBytes))
            let n: Int
            if direct {
                n = pread(fd, scratch, XNLayout.blockBytes, offset)
                if n == XNLayout.blockBytes { bytes.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: scratch, count: n)) } }
            } else {
                n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, XNLayout.blockBytes, offset) }
            }
            guard n == XNLayout.blockBytes else { throw Self.failure("short read of block \(block) from", path) }
            result.append(bytes)
        }
        return result
    }

    /// Reads through the page cache, a run of consecutive blocks with one `pread`.
    private func readRuns(_ blocks: [BlockNumber]) throws(DeviceError) -> [[UInt8]] {
        var result: [[UInt8]] = []
        result.reserveCapacity(blocks.count)
        var i = 0
        while i < blocks.count {
            var n = 1
            while i + n < blocks.count, n < Self.runMax, blocks[i + n] == blocks[i] + UInt64(n) { n += 1 }
            let bytes = n * XNLayout.blockBytes
            var run = [UInt8](repeating: 0, count: bytes)
            let offset = off_t(blocks[i] * UInt64(XNLayout.blockBytes))
            let got = run.withUnsafeMutableBytes { pread(fd, $0.baseAddress, bytes, offset) }
            guard got == bytes else { throw Self.failure("short read of blocks \(blocks[i])-\(blocks[i] + UInt64(n) - 1) from", path) }
            for k in 0..<n { result.append(Array(run[k * XNLayout.blockBytes..<(k + 1) * XNLayout.blockBytes])) }
            i += n
        }
        return result
    }

    public func write(_ writes: [(BlockNumber, [UInt8])]) throws(DeviceError) {
        for (block, bytes) in writes {
            guard block < blockCount, bytes.count == XNLayout.blockBytes else { throw DeviceError("bad write of block \(block) to \(path)") }
        }
        if direct {
            for (block, bytes) in writes {
                bytes.withUnsafeBytes { scratch.copyMemory(from: $0.baseAddress!, byteCount: XNLayout.blockBytes) }
                guard pwrite(fd, scratch, XNLayout.blockBytes, off_t(block * UInt64(XNLayout.blockBytes))) == XNLayout.blockBytes else {
                    throw Self.failure("short write of block \(block) to", path)
                }
            }
            return
        }
        // Runs of consecutive blocks go out in one write each (XN hands them in block
        // order; grouping puts a directory's files side by side).
        var start = 0
        while start < writes.count {
            var end = start + 1
            while end < writes.count, end - start < Self.runMax, writes[end].0 == writes[end - 1].0 &+ 1 { end += 1 }
            try writeRun(writes[start..<end])
            start = end
        }
    }

    /// Writes runs of consecutive blocks with one `pwritev` each, straight from the
    /// caller's pages (O_DIRECT: a block at a time through the aligned buffer).
    public func write(_ blocks: [BlockNumber], from source: (Int) -> UnsafeRawBufferPointer) throws(DeviceError) {
        for (i, block) in blocks.enumerated() {
            guard block < blockCount, source(i).count == XNLayout.blockBytes, source(i).baseAddress != nil else {
                throw DeviceError("bad write of block \(block) to \(path)")
            }
        }
        if direct {
            for (i, block) in blocks.enumerated() {
                scratch.copyMemory(from: source(i).baseAddress!, byteCount: XNLayout.blockBytes)
                guard pwrite(fd, scratch, XNLayout.blockBytes, off_t(block * UInt64(XNLayout.blockBytes))) == XNLayout.blockBytes else {
                    throw Self.failure("short write of block \(block) to", path)
                }
            }
            return
        }
        var vectors = [iovec](repeating: iovec(), count: min(blocks.count, Self.runMax))
        var start = 0
        while start < blocks.count {
            var end = start + 1
            while end < blocks.count, end - start < Self.runMax, blocks[end] == blocks[end - 1] &+ 1 { end += 1 }
            for i in start..<end {
                vectors[i - start] = iovec(iov_base: UnsafeMutableRawPointer(mutating: source(i).baseAddress), iov_len: XNLayout.blockBytes)
            }
            try writeVectors(&vectors, count: end - start, at: blocks[start])
            start = end
        }
    }

    /// One `pwritev` of `count` vectors of a block each, from block `first` on, going on
    /// after a short write.
    private func writeVectors(_ vectors: inout [iovec], count: Int, at first: BlockNumber) throws(DeviceError) {
        var done = 0, index = 0
        let total = count * XNLayout.blockBytes
        while done < total {
            let n = vectors.withUnsafeBufferPointer { v in
                pwritev(fd, v.baseAddress! + index, Int32(count - index), off_t(first * UInt64(XNLayout.blockBytes)) + off_t(done))
            }
            guard n > 0 else { throw Self.failure("short write of blocks from \(first) to", path) }
            done += n
            // Skip the vectors written whole; trim the one written in part.
            var left = n
            while index < count, left >= vectors[index].iov_len {
                left -= vectors[index].iov_len
                index += 1
            }
            if left > 0 {
                vectors[index].iov_base = vectors[index].iov_base.map { $0 + left }
                vectors[index].iov_len -= left
            }
        }
    }

    /// Blocks gathered into one write at most (4 MiB; also Linux's IOV_MAX vectors).
    static let runMax = 1024

    /// Writes consecutive blocks gathered into one buffer with one pwrite (going on after
    /// a short write).
    private func writeRun(_ run: ArraySlice<(BlockNumber, [UInt8])>) throws(DeviceError) {
        let first = run[run.startIndex].0
        let total = run.count * XNLayout.blockBytes
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: XNLayout.blockBytes)
        defer { buffer.deallocate() }
        for (i, (_, bytes)) in run.enumerated() {
            bytes.withUnsafeBytes { buffer.advanced(by: i * XNLayout.blockBytes).copyMemory(from: $0.baseAddress!, byteCount: XNLayout.blockBytes) }
        }
        var done = 0
        while done < total {
            let n = pwrite(fd, buffer.advanced(by: done), total - done, off_t(first * UInt64(XNLayout.blockBytes)) + off_t(done))
            guard n > 0 else { throw Self.failure("short write of blocks from \(first) to", path) }
            done += n
        }
    }

    public func barrier() throws(DeviceError) {
        guard fdatasync(fd) == 0 else { throw Self.failure("fdatasync failed on", path) }
    }
}
