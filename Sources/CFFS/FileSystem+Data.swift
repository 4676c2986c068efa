// File contents: a file's blocks are its entry's seven direct pointers, then trees of
// indirect blocks one, two and three levels deep (504 pointers each), as FFS has them.
// Holes read as zeros and take no blocks.

import XokABI

extension CFFS {
    /// Where the pointer to file block `index` lives: the entry's field, then one field
    /// in each indirect block on the way down (digits, most significant first).
    struct BlockPath {
        /// Which entry pointer: 0-6 direct, 7-9 the indirect trees.
        var field: Int
        var digits: [Int]
    }

    static func path(of index: UInt64) -> BlockPath? {
        let direct = UInt64(CFFSLayout.directCount), fan = UInt64(CFFSLayout.indPointers)
        if index < direct { return BlockPath(field: Int(index), digits: []) }
        var rest = index - direct
        var span: UInt64 = fan
        for level in 1...CFFSLayout.indirectLevels {
            if rest < span {
                var digits = [Int](repeating: 0, count: level)
                var r = rest
                for k in stride(from: level - 1, through: 0, by: -1) {
                    digits[k] = Int(r % fan)
                    r /= fan
                }
                return BlockPath(field: CFFSLayout.directCount + level - 1, digits: digits)
            }
            rest -= span
            span *= fan
        }
        return nil
    }

    /// Where the pointer to file block `index` of the file at `ref` lives: the block
    /// holding it (the entry's, or an indirect block), its offset there, and its value (0
    /// for a hole). With `makePath`, missing indirect blocks on the way are made; without,
    /// nil when one is missing. `inode` is kept up to date with the entry.
    func locate(_ ref: FileRef, _ inode: inout Inode, _ index: UInt64, makePath: Bool)
        throws(Errno) -> (container: BlockNumber, field: Int, pointer: BlockNumber)? {
        guard let path = Self.path(of: index) else { throw .EFBIG }
        let credential = credential(inode.uid, inode.gid)
        var container = ref.block
        var field = CFFSLayout.slotOffset(ref.slot) + CFFSLayout.pointerFields[path.field]
        var pointer = inode.pointers[path.field]
        for (depth, slot) in path.digits.enumerated() {
            if pointer == 0 {
                guard makePath else { return nil }
                let level = path.digits.count - depth
                if container != ref.block { try layOutIfZero(container, level: level + 1, of: inode, credential: credential) }
                let offset = field
                pointer = try cache.allocate(under: container, type: indType, near: nextBlock(ref.block), credential: credential) { child in
                    [(offset, bytes64(child))]
                }
                cursor[ref.block] = pointer + 1
                if container == ref.block { inode.pointers[path.field] = pointer }
                try cache.modify(pointer, .write, [(0, indirectHeader(level: level, of: inode).encoded)], credential: credential)
            }
            cache.note(pointer, parent: container, credential: credential)
            let entry = CFFSLayout.indPointersStart + 8 * slot
            let next = try cache.read(pointer, parent: container, credential: credential, offset: entry, count: 8).le64(0)
            container = pointer
            field = entry
            pointer = next
        }
        return (container, field, pointer)
    }

    /// File block `index` of the file at `ref` and the block holding its pointer, or nil
    /// for a hole. With `allocate`, a hole is filled (zeroed; indirect blocks are made on
    /// the way); `inode` is kept up to date with the entry.
    func fileBlock(_ ref: FileRef, _ inode: inout Inode, _ index: UInt64, allocate: Bool) throws(Errno) -> (block: BlockNumber, parent: BlockNumber)? {
        guard let (container, field, pointer) = try locate(ref, &inode, index, makePath: allocate) else { return nil }
        let credential = credential(inode.uid, inode.gid)
        if pointer != 0 {
            cache.note(pointer, parent: container, credential: credential)
            return (pointer, container)
        }
        guard allocate else { return nil }
        if container != ref.block { try layOutIfZero(container, level: 1, of: inode, credential: credential) }
        let child = try cache.allocate(under: container, type: .data, near: nextBlock(ref.block), credential: credential) { child in
            [(field, bytes64(child))]
        }
        cursor[ref.block] = child + 1
        if container == ref.block, let direct = Self.path(of: index), direct.digits.isEmpty { inode.pointers[direct.field] = child }
        return (child, container)
    }

    /// Writes the header of indirect block `block` (of `level`, in `inode`'s file) if it
    /// still reads as zeros: an allocator died between linking it in and laying it out.
    /// Its UDF takes no pointer into a block not laid out.
    func layOutIfZero(_ block: BlockNumber, level: Int, of inode: Inode, credential: CapabilitySlot) throws(Errno) {
        guard try cache.read(block, parent: nil, credential: credential, count: 4).le32(0) == 0 else { return }
        try cache.modify(block, .write, [(0, indirectHeader(level: level, of: inode).encoded)], credential: credential)
    }

    /// The header of an indirect block of `level` in `inode`'s file: the file's stamp,
    /// which is what the indirect UDF requires of its layout.
    func indirectHeader(level: Int, of inode: Inode) -> BlockHeader {
        var header = BlockHeader(magic: CFFSLayout.indMagic, dirType: dirType, indType: indType, inoType: inoType)
        header.level = UInt32(level)
        header.uid = inode.uid
        header.gid = inode.gid
        header.mode = inode.mode
        return header
    }

    /// Where a directory's next file block should go: after the last one it got, or
    /// after the directory's own block (grouping).
    func nextBlock(_ directoryBlock: BlockNumber) -> BlockNumber { cursor[directoryBlock] ?? directoryBlock + 1 }

    /// Reads up to `count` bytes from `offset` of the file at `ref`.
    public func read(_ ref: FileRef, at offset: UInt64, count: Int) throws(Errno) -> [UInt8] {
        var inode = try self.inode(ref)
        guard !inode.isDirectory else { throw .EISDIR }
        if !inode.isSymlink { try require(4, on: inode) }
        guard offset < inode.size, count > 0 else { return [] }
        let end = min(inode.size, offset.addingReportingOverflow(UInt64(count)).overflow ? .max : offset + UInt64(count))
        var result: [UInt8] = []
        result.reserveCapacity(Int(end - offset))
        let credential = inode.isSymlink ? identity.userSlot : credential(inode.uid, inode.gid)
        var position = offset
        let blockBytes = UInt64(CFFSLayout.blockBytes)
        try bringIn(ref, &inode, from: offset / blockBytes, through: (end - 1) / blockBytes, credential: credential)
        while position < end {
            let index = position / blockBytes
            let within = Int(position % blockBytes)
            let n = Int(min(end - position, blockBytes - UInt64(within)))
            if let (block, parent) = try fileBlock(ref, &inode, index, allocate: false) {
                result += try cache.read(block, parent: parent, credential: credential, offset: within, count: n)
                cache.noteData(block)
            } else {
                result += [UInt8](repeating: 0, count: n)
            }
            position += UInt64(n)
        }
        // Blocks read count against the cache's bound as blocks written do.
        try cache.writeBehindIfNeeded()
        return result
    }

    /// Maps, with as few calls as may be, the blocks a read of file blocks `first`
    /// through `last` needs, and more as the cache policy says:
    /// - read-ahead: when the file is being read sequentially, the next blocks of it;
    /// - the group: when a small file's first block is not mapped, the blocks of every
    ///   file in the same directory block that this client may read (C-FFS put them side
    ///   by side, so they come in with one I/O; the next files read find them mapped).
    func bringIn(_ ref: FileRef, _ inode: inout Inode, from first: UInt64, through last: UInt64, credential: CapabilitySlot) throws(Errno) {
        let sequential = readEnd[ref] == first
        if readEnd.count > 4096 { readEnd = [:] }
        readEnd[ref] = last + 1
        let blocksInFile = (inode.size + UInt64(CFFSLayout.blockBytes) - 1) / UInt64(CFFSLayout.blockBytes)
        let ahead = UInt64(max(0, cache.policy.readAhead(index: last, sequential: sequential)))
        let end = min(blocksInFile, last + 1 + ahead)
        var wanted: [BlockNumber] = []
        var index = first
        while index < end, wanted.count < KernelLimits.xnBatchMax * 4 {
            if let (container, _, pointer) = try locate(ref, &inode, index, makePath: false), pointer != 0 {
                cache.note(pointer, parent: container, credential: credential)
                if cache.mapped[pointer] == nil { wanted.append(pointer) }
            }
            index += 1
        }
        guard !wanted.isEmpty else { return }
        if first == 0, !ref.isRoot, inode.pointers[0] == wanted.first {
            try group(around: ref, wanted: &wanted, credential: credential)
        }
        cache.prefetch(wanted, credential: credential)
    }

    /// Adds to `wanted` the direct blocks of the other regular files in `ref`'s directory
    /// block that this client may read with the same credential.
    private func group(around ref: FileRef, wanted: inout [BlockNumber], credential: CapabilitySlot) throws(Errno) {
        let bytes = try block(ref.block)
        for slot in 0..<CFFSLayout.slots where slot != ref.slot {
            guard let other = Inode(bytes, at: CFFSLayout.slotOffset(slot)), other.isRegular,
                  self.credential(other.uid, other.gid) == credential,
                  identity.bits(uid: other.uid, gid: other.gid, mode: other.mode) & 4 != 0 else { continue }
            let blocks = (other.size + UInt64(CFFSLayout.blockBytes) - 1) / UInt64(CFFSLayout.blockBytes)
            for k in 0..<Int(min(blocks, UInt64(CFFSLayout.directCount))) where other.pointers[k] != 0 && cache.mapped[other.pointers[k]] == nil {
                cache.note(other.pointers[k], parent: ref.block, credential: credential)
                wanted.append(other.pointers[k])
            }
        }
    }

    /// Writes `bytes` at `offset` of the file at `ref`, growing it as needed. Returns
    /// the count written. Blocks already there are written in place; new ones are filled
    /// first and allocated in runs, one call a run (the entry's size and times go with
    /// the last run when its pointers are in the entry too).
    public func write(_ ref: FileRef, at offset: UInt64, _ bytes: [UInt8]) throws(Errno) -> Int {
        var inode = try self.inode(ref)
        guard !inode.isDirectory else { throw .EISDIR }
        try require(2, on: inode)
        let blockBytes = UInt64(CFFSLayout.blockBytes)
        let (end, overflow) = offset.addingReportingOverflow(UInt64(bytes.count))
        guard !overflow, end <= CFFSLayout.blocksMax * blockBytes else { throw .EFBIG }
        let credential = credential(inode.uid, inode.gid)
        if end > inode.size { try clearPastEnd(ref, &inode, credential: credential) }
        let time = UInt64(bitPattern: now())
        let sizeChange = (offset: CFFSLayout.slotOffset(ref.slot) + CFFSLayout.eSize,
                          bytes: bytes64(max(inode.size, end)) + bytes64(time) + bytes64(time))
        var run = NewBlocks()
        var position = offset
        var taken = 0
        do throws(Errno) {
            while position < end {
                let index = position / blockBytes
                let within = Int(position % blockBytes)
                let n = Int(min(end - position, blockBytes - UInt64(within)))
                guard let (container, field, pointer) = try locate(ref, &inode, index, makePath: true) else { throw Errno.EIO }
                if pointer != 0 {
                    try cache.store(Array(bytes[taken..<taken + n]), into: pointer, at: within, parent: container, credential: credential)
                } else {
                    if run.container != container || run.fields.count == KernelLimits.xnBatchMax {
                        _ = try allocate(&run, ref, &inode, credential: credential, also: [])
                    }
                    run.container = container
                    run.fields.append(field)
                    run.indexes.append(index)
                    run.frames.append(try cache.filledFrame(bytes[taken..<taken + n], at: within))
                }
                position += UInt64(n)
                taken += n
            }
            let last = run.container == ref.block ? [sizeChange] : []
            if !(try allocate(&run, ref, &inode, credential: credential, also: last)) || last.isEmpty {
                try cache.modify(ref.block, .write, [sizeChange], credential: credential)
            }
        } catch {
            // Frames filled for blocks not yet allocated go back to the pool.
            cache.spareBound += run.frames
            throw error
        }
        try cache.writeBehindIfNeeded()
        return bytes.count
    }

    /// New file blocks waiting to be allocated together: where their pointers go, which
    /// file blocks they are, and the frames holding their bytes.
    struct NewBlocks {
        var container: BlockNumber = 0
        var fields: [Int] = []
        var indexes: [UInt64] = []
        var frames: [FrameNumber] = []
    }

    /// Allocates `run` (if it holds any blocks) with one change to its container, plus
    /// `also`; empties it.
    /// Returns whether there was a run (and so `also` was applied).
    private func allocate(_ run: inout NewBlocks, _ ref: FileRef, _ inode: inout Inode, credential: CapabilitySlot,
                          also: [(offset: Int, bytes: [UInt8])]) throws(Errno) -> Bool {
        guard !run.frames.isEmpty else { return false }
        // The run leaves `run` first: `allocateData` takes its frames back itself if it fails.
        let taken = run
        run = NewBlocks()
        let blocks = try cache.allocateData(under: taken.container, near: nextBlock(ref.block), frames: taken.frames, credential: credential) { blocks in
            zip(taken.fields, blocks).map { (offset: $0, bytes: bytes64($1)) } + also
        }
        if let last = blocks.last { cursor[ref.block] = last + 1 }
        if taken.container == ref.block {
            for (index, block) in zip(taken.indexes, blocks) { inode.pointers[Int(index)] = block }
        }
        return true
    }

    /// truncate(2): frees the blocks past `size` and zeroes the tail of the last one.
    public func truncate(_ ref: FileRef, to size: UInt64) throws(Errno) {
        var inode = try self.inode(ref)
        guard !inode.isDirectory else { throw .EISDIR }
        try require(2, on: inode)
        let blockBytes = UInt64(CFFSLayout.blockBytes)
        guard size <= CFFSLayout.blocksMax * blockBytes else { throw .EFBIG }
        let credential = credential(inode.uid, inode.gid)
        if size > inode.size { try clearPastEnd(ref, &inode, credential: credential) }
        if size < inode.size {
            try prune(ref, inode, keep: (size + blockBytes - 1) / blockBytes, credential: credential)
            inode = try self.inode(ref)
            if size % blockBytes != 0, let (block, parent) = try fileBlock(ref, &inode, size / blockBytes, allocate: false) {
                let within = Int(size % blockBytes)
                try cache.store([UInt8](repeating: 0, count: CFFSLayout.blockBytes - within), into: block, at: within, parent: parent,
                                credential: credential)
            }
        }
        let time = now()
        let at = CFFSLayout.slotOffset(ref.slot)
        try cache.modify(ref.block, .write, [(at + CFFSLayout.eSize, bytes64(size) + bytes64(UInt64(bitPattern: time)) + bytes64(UInt64(bitPattern: time)))],
                         credential: credential)
    }

    /// Before a file grows: frees any block past its end and zeroes the rest of its last
    /// block, so the new range reads as zeros. (A crash can leave either behind: the size
    /// and the pointers or bytes past it live in different blocks, written separately.)
    func clearPastEnd(_ ref: FileRef, _ inode: inout Inode, credential: CapabilitySlot) throws(Errno) {
        let blockBytes = UInt64(CFFSLayout.blockBytes)
        let keep = inode.size / blockBytes + (inode.size % blockBytes == 0 ? 0 : 1)
        try prune(ref, inode, keep: keep, credential: credential)
        inode = try self.inode(ref)
        if inode.size % blockBytes != 0, let (block, parent) = try fileBlock(ref, &inode, inode.size / blockBytes, allocate: false) {
            let within = Int(inode.size % blockBytes)
            let tail = try cache.read(block, parent: parent, credential: credential, offset: within, count: CFFSLayout.blockBytes - within)
            if tail.contains(where: { $0 != 0 }) {
                try cache.store([UInt8](repeating: 0, count: tail.count), into: block, at: within, parent: parent, credential: credential)
            }
        }
    }

    /// Frees every file block from index `keep` on, and the indirect blocks left empty,
    /// in batches: one change for each indirect block, and one for the entry, which
    /// carries `entryChanges` too (unlink clears the whole entry with it).
    func prune(_ ref: FileRef, _ inode: Inode, keep: UInt64, credential: CapabilitySlot,
               entryChanges: [(offset: Int, bytes: [UInt8])] = []) throws(Errno) {
        let at = CFFSLayout.slotOffset(ref.slot)
        let fileCredential = self.credential(inode.uid, inode.gid)
        var gone: [BlockNumber] = []
        var fields: [BlockNumber: Int] = [:]
        var base = UInt64(CFFSLayout.directCount)
        var span = UInt64(CFFSLayout.indPointers)
        // Nothing kept: each indirect tree goes whole with its pointer (XN frees an
        // indirect block with what is below it), in the one change to the entry. That
        // needs only what freeing the entry's pointers needs: write on the directory, for
        // an unlink.
        let whole = keep == 0
        let below = whole ? try blocksBelowIndirect(ref, inode) : []
        for level in 1...CFFSLayout.indirectLevels {
            let field = CFFSLayout.directCount + level - 1
            let pointer = inode.pointers[field]
            var goes = false
            if pointer != 0 { goes = try whole ? true : pruneTree(pointer, parent: ref.block, level: level, base: base, keep: keep, credential: fileCredential) }
            if goes {
                gone.append(pointer)
                fields[pointer] = at + CFFSLayout.pointerFields[field]
            }
            base += span
            span *= UInt64(CFFSLayout.indPointers)
        }
        for index in 0..<CFFSLayout.directCount where UInt64(index) >= keep && inode.pointers[index] != 0 {
            gone.append(inode.pointers[index])
            fields[inode.pointers[index]] = at + CFFSLayout.pointerFields[index]
        }
        if gone.isEmpty {
            if !entryChanges.isEmpty { try cache.modify(ref.block, .write, entryChanges, credential: credential) }
            return
        }
        // An entry has ten pointers: one batch.
        try cache.free(gone, from: ref.block, credential: credential) { batch in
            batch.map { (offset: fields[$0] ?? 0, bytes: bytes64(0)) } + entryChanges
        }
        cache.forget(below)
    }

    /// Every block below the file's indirect blocks (data and indirect), as far as they
    /// can be read.
    func blocksBelowIndirect(_ ref: FileRef, _ inode: Inode) throws(Errno) -> [BlockNumber] {
        var result: [BlockNumber] = []
        let credential = credential(inode.uid, inode.gid)
        func walk(_ block: BlockNumber, _ parent: BlockNumber, _ level: Int) throws(Errno) {
            let bytes = try cache.read(block, parent: parent, credential: credential)
            for k in 0..<CFFSLayout.indPointers {
                let child = bytes.le64(CFFSLayout.indPointersStart + 8 * k)
                guard child != 0 else { continue }
                result.append(child)
                if level > 1 { try walk(child, block, level - 1) }
            }
        }
        for level in 1...CFFSLayout.indirectLevels {
            let pointer = inode.pointers[CFFSLayout.directCount + level - 1]
            if pointer != 0 { try walk(pointer, ref.block, level) }
        }
        return result
    }

    /// Prunes the indirect tree at `block` (level `level`, covering file blocks from
    /// `base`): frees, with one change to it, its children that hold nothing kept.
    /// Returns whether `block` itself holds nothing kept, for its parent to free.
    private func pruneTree(_ block: BlockNumber, parent: BlockNumber, level: Int, base: UInt64, keep: UInt64,
                           credential: CapabilitySlot) throws(Errno) -> Bool {
        var childSpan: UInt64 = 1
        for _ in 1..<level { childSpan *= UInt64(CFFSLayout.indPointers) }
        if base + childSpan * UInt64(CFFSLayout.indPointers) <= keep { return false }
        let bytes = try cache.read(block, parent: parent, credential: credential)
        var gone: [BlockNumber] = []
        var entries: [BlockNumber: Int] = [:]
        for digit in stride(from: CFFSLayout.indPointers - 1, through: 0, by: -1) {
            let childBase = base + UInt64(digit) * childSpan
            if childBase + childSpan <= keep { break }
            let entry = CFFSLayout.indPointersStart + 8 * digit
            let child = bytes.le64(entry)
            guard child != 0 else { continue }
            let empty = level == 1 ? true : try pruneTree(child, parent: block, level: level - 1, base: childBase, keep: keep, credential: credential)
            if empty {
                gone.append(child)
                entries[child] = entry
            }
        }
        if !gone.isEmpty {
            try cache.free(gone, from: block, credential: credential) { batch in batch.map { (offset: entries[$0] ?? 0, bytes: bytes64(0)) } }
        }
        return base >= keep
    }

    /// Every indirect block of a file.
    func indirectBlocks(_ ref: FileRef, _ inode: Inode) throws(Errno) -> [BlockNumber] {
        var result: [BlockNumber] = []
        let credential = credential(inode.uid, inode.gid)
        func walk(_ block: BlockNumber, _ parent: BlockNumber, _ level: Int) throws(Errno) {
            result.append(block)
            guard level > 1 else { return }
            let bytes = try cache.read(block, parent: parent, credential: credential)
            for k in 0..<CFFSLayout.indPointers {
                let child = bytes.le64(CFFSLayout.indPointersStart + 8 * k)
                if child != 0 { try walk(child, block, level - 1) }
            }
        }
        for level in 1...CFFSLayout.indirectLevels {
            let pointer = inode.pointers[CFFSLayout.directCount + level - 1]
            if pointer != 0 { try walk(pointer, ref.block, level) }
        }
        return result
    }

    /// Blocks a file holds, its indirect blocks included.
    func allocatedBlocks(_ ref: FileRef, _ inode: Inode) throws(Errno) -> UInt64 {
        var count = UInt64(inode.pointers.prefix(CFFSLayout.directCount).filter { $0 != 0 }.count)
        let credential = credential(inode.uid, inode.gid)
        for block in try indirectBlocks(ref, inode) {
            count += 1
            let bytes = try cache.read(block, parent: nil, credential: credential)
            if bytes.le32(CFFSLayout.level) == 1 {
                for k in 0..<CFFSLayout.indPointers where bytes.le64(CFFSLayout.indPointersStart + 8 * k) != 0 { count += 1 }
            }
        }
        return count
    }
}
