// The protection fuzzer's oracle (ProtectionFuzz.swift): the C-FFS tree as the kernel
// holds it now, read straight from XN's cache (or the disk, for a block not cached),
// and UNIX's rules for one user over it.

import CFFS
import XN
import XokABI

/// The tree of one C-FFS, and what its hostile user (`bob`) may do to each part of it.
struct TreeView {
    enum Role { case superblock, directory, data, indirect, inode }

    struct Node {
        var path: String
        var inode: Inode
        /// The directory holding its entry (nil for the root), and for a hard-linked file
        /// every directory holding a link entry to it.
        var parents: [Int]
        var blocks: [BlockNumber] = []
        /// Where its entry is: a directory block and a slot (the root has none).
        var place: (block: BlockNumber, slot: Int)? = nil
    }

    let bob: CFFSIdentity
    private(set) var nodes: [Node] = []
    /// Each directory's entries by name, as node indexes, and the owner each entry itself
    /// names (a link entry names its creator, not the file's owner).
    private(set) var entries: [Int: [[UInt8]: Int]] = [:]
    private(set) var entryOwners: [Int: [[UInt8]: UInt32]] = [:]
    private(set) var roles: [BlockNumber: (node: Int, role: Role)] = [:]
    /// Each directory block's header stamp.
    private(set) var stamps: [BlockNumber: [UInt32]] = [:]
    /// Each metadata block's children, as its bytes name them (what `owns` says).
    private(set) var childBlocks: [BlockNumber: [BlockNumber]] = [:]
    /// Entries no UDF should have let in.
    private(set) var damaged: [String] = []
    /// Metadata blocks allocated but never laid out (their magic is still zero).
    private(set) var unlaid: [BlockNumber] = []
    private(set) var blocks: [BlockNumber] = []
    private(set) var metadataBlocks: [BlockNumber] = []
    /// A block's bytes as the kernel holds them now.
    let bytes: (BlockNumber) -> [UInt8]?

    init(xn: XN<SimulatedDisk, SimulatedMemory>, superblock: BlockNumber, bob: CFFSIdentity) {
        self.bob = bob
        let bytes = { (block: BlockNumber) -> [UInt8]? in
            if let entry = xn.registryEntry(block) { return xn.memory.copy(of: entry.frame) }
            var device = xn.device
            return try? device.read([block]).first
        }
        self.bytes = bytes
        roles[superblock] = (0, .superblock)
        var inodeNodes: [BlockNumber: Int] = [:]
        var visited: Set<BlockNumber> = []
        let first = bytes(superblock).map { $0.le64(CFFSLayout.next) } ?? 0
        childBlocks[superblock] = [first]
        var rootInode = Inode()
        if let header = bytes(first) {
            rootInode.mode = header.le32(CFFSLayout.mode)
            rootInode.uid = header.le32(CFFSLayout.uid)
            rootInode.gid = header.le32(CFFSLayout.gid)
        }
        rootInode.pointers[0] = first
        nodes.append(Node(path: "/", inode: rootInode, parents: []))
        var pending: [(node: Int, first: BlockNumber)] = [(0, first)]

        func fileBlocks(_ node: Int, _ inode: Inode) {
            for k in 0..<CFFSLayout.directCount where inode.pointers[k] != 0 {
                roles[inode.pointers[k]] = (node, .data)
                nodes[node].blocks.append(inode.pointers[k])
            }
            func indirect(_ block: BlockNumber, _ level: Int, _ depth: Int) {
                guard depth < 4, visited.insert(block).inserted else { return }
                roles[block] = (node, .indirect)
                nodes[node].blocks.append(block)
                guard let b = bytes(block) else { return }
                if b.le32(CFFSLayout.magic) == 0 { unlaid.append(block) }
                let childLevel = Int(b.le32(CFFSLayout.level))
                var children: [BlockNumber] = []
                for k in 0..<CFFSLayout.indPointers {
                    let child = b.le64(CFFSLayout.indPointersStart + 8 * k)
                    guard child != 0 else { continue }
                    children.append(child)
                    if childLevel > 1 { indirect(child, childLevel - 1, depth + 1) } else {
                        roles[child] = (node, .data)
                        nodes[node].blocks.append(child)
                    }
                }
                childBlocks[block] = children
                _ = level
            }
            for k in 0..<CFFSLayout.indirectLevels where inode.pointers[CFFSLayout.directCount + k] != 0 {
                indirect(inode.pointers[CFFSLayout.directCount + k], k + 1, 0)
            }
        }

        while let (directory, firstBlock) = pending.popLast() {
            var block = firstBlock
            var count = 0
            while block != 0, count < 4096, visited.insert(block).inserted, let b = bytes(block) {
                count += 1
                roles[block] = (directory, .directory)
                nodes[directory].blocks.append(block)
                guard b.le32(CFFSLayout.magic) == CFFSLayout.dirMagic else {   // never laid out
                    if b.le32(CFFSLayout.magic) == 0 { unlaid.append(block) }
                    break
                }
                stamps[block] = [b.le32(CFFSLayout.uid), b.le32(CFFSLayout.gid), b.le32(CFFSLayout.mode)]
                var children: [BlockNumber] = []
                if b.le64(CFFSLayout.next) != 0 { children.append(b.le64(CFFSLayout.next)) }
                for slot in 0..<CFFSLayout.slots {
                    let at = CFFSLayout.slotOffset(slot)
                    guard let inode = Inode(b, at: at) else { continue }
                    let path = (nodes[directory].path == "/" ? "/" : nodes[directory].path + "/") + String(decoding: inode.name, as: UTF8.self)
                    if let problem = Inode.damage(in: b, at: at) { damaged.append("\(path): \(problem)") }
                    entryOwners[directory, default: [:]][inode.name] = inode.uid
                    let index = nodes.count
                    defer { if nodes.count > index { nodes[index].place = (block, slot) } }
                    switch inode.type {
                    case FileMode.directory:
                        nodes.append(Node(path: path, inode: inode, parents: [directory]))
                        entries[directory, default: [:]][inode.name] = index
                        if inode.pointers[0] != 0 {
                            children.append(inode.pointers[0])
                            pending.append((index, inode.pointers[0]))
                        }
                    case FileMode.regular, FileMode.symlink:
                        nodes.append(Node(path: path, inode: inode, parents: [directory]))
                        entries[directory, default: [:]][inode.name] = index
                        children += inode.pointers.filter { $0 != 0 }
                        fileBlocks(index, inode)
                    case FileMode.link:
                        let inodeBlock = inode.pointers[0]
                        children.append(inodeBlock)
                        if let known = inodeNodes[inodeBlock] {
                            nodes[known].parents.append(directory)
                            entries[directory, default: [:]][inode.name] = known
                            continue
                        }
                        var file = Inode()
                        if let ib = bytes(inodeBlock), ib.le32(CFFSLayout.magic) == 0 { unlaid.append(inodeBlock) }
                        if let ib = bytes(inodeBlock), ib.le32(CFFSLayout.magic) == CFFSLayout.inoMagic,
                           let slot0 = Inode(ib, at: CFFSLayout.slotsStart) {
                            file = slot0
                            childBlocks[inodeBlock] = slot0.pointers.filter { $0 != 0 }
                        }
                        file.name = inode.name
                        inodeNodes[inodeBlock] = index
                        nodes.append(Node(path: path, inode: file, parents: [directory]))
                        entries[directory, default: [:]][inode.name] = index
                        roles[inodeBlock] = (index, .inode)
                        nodes[index].blocks.append(inodeBlock)
                        fileBlocks(index, file)
                    default:
                        break
                    }
                }
                childBlocks[block] = children
                block = b.le64(CFFSLayout.next)
            }
        }
        blocks = roles.keys.sorted()
        metadataBlocks = roles.filter { $0.value.role != .data }.keys.sorted()
    }

    // MARK: UNIX's rules, for bob

    func bits(_ node: Int) -> UInt32 {
        let inode = nodes[node].inode
        return bob.bits(uid: inode.uid, gid: inode.gid, mode: inode.mode)
    }

    /// Whether bob may reach `node`: search on every directory above it (on some path,
    /// for a file with several names).
    func reachable(_ node: Int, depth: Int = 0) -> Bool {
        guard depth < 256 else { return false }
        if nodes[node].parents.isEmpty { return true }
        return nodes[node].parents.contains { bits($0) & 1 != 0 && reachable($0, depth: depth + 1) }
    }

    func mayRead(_ block: BlockNumber) -> Bool {
        guard let (node, role) = roles[block] else { return false }
        switch role {
        case .superblock: return true
        case .directory: return node == 0 || (reachable(node) && bits(node) & 5 != 0)
        case .inode: return reachable(node)
        case .data, .indirect: return reachable(node) && (nodes[node].inode.isSymlink || bits(node) & 4 != 0)
        }
    }

    func mayWrite(_ block: BlockNumber) -> Bool {
        guard let (node, role) = roles[block], role == .data else { return false }
        if nodes[node].inode.isSymlink { return false }
        return reachable(node) && bits(node) & 2 != 0
    }

    func mayWriteFile(_ node: Int) -> Bool { reachable(node) && bits(node) & 2 != 0 }

    /// Whether bob may add or remove names in directory `node`.
    func mayChangeEntries(_ directory: Int) -> Bool { reachable(directory) && bits(directory) & 3 == 3 }

    func mayRemove(_ node: Int, from directory: Int) -> Bool {
        guard mayChangeEntries(directory) else { return false }
        let dir = nodes[directory].inode
        return dir.mode & 0o1000 == 0 || dir.uid == bob.uid || nodes[node].inode.uid == bob.uid
    }

    /// Whether bob could have changed the file at `path` in any way.
    func couldTouch(_ path: String) -> Bool {
        guard let node = nodes.firstIndex(where: { $0.path == path }) else { return true }
        if mayWriteFile(node) { return true }
        return nodes[node].parents.contains { mayRemove(node, from: $0) }
    }

    // MARK: Comparing

    /// What changed between this tree and `after` that bob had no right to change.
    func changesBeyondRights(to after: TreeView) -> [String] {
        var problems: [String] = []
        var movable: [[UInt64]] = []
        var arrived: [(String, [UInt64])] = []
        func body(_ inode: Inode) -> [UInt64] { [UInt64(inode.mode), UInt64(inode.uid), UInt64(inode.gid), inode.size] + inode.pointers }
        let afterDirectories = Dictionary(after.nodes.indices.filter { after.nodes[$0].inode.isDirectory || $0 == 0 }
            .map { (after.nodes[$0].inode.pointers[0], $0) }, uniquingKeysWith: { a, _ in a })
        for problem in after.damaged where !damaged.contains(problem) { problems.append("an entry no UDF should let in: \(problem)") }
        for directory in nodes.indices where directory == 0 || nodes[directory].inode.isDirectory {
            let dir = nodes[directory]
            let twin = afterDirectories[dir.inode.pointers[0]]
            let afterEntries = twin.flatMap { after.entries[$0] } ?? [:]
            for (name, node) in entries[directory] ?? [:] {
                let old = nodes[node].inode
                let path = nodes[node].path
                if let n = afterEntries[name], after.nodes[n].inode.type == old.type,
                   after.nodes[n].inode.uid == old.uid || !mayRemove(node, from: directory) {
                    let new = after.nodes[n].inode
                    if new.uid != old.uid || new.gid != old.gid { problems.append("\(path): owner \(old.uid):\(old.gid) became \(new.uid):\(new.gid)") }
                    if new.mode != old.mode && old.uid != bob.uid { problems.append("\(path): mode \(old.mode) became \(new.mode)") }
                    if old.uid != bob.uid && !mayWriteFile(node) && (new.size != old.size || new.pointers != old.pointers || new.mtime != old.mtime) {
                        problems.append("\(path): size, blocks or times changed")
                    }
                } else {
                    if !mayRemove(node, from: directory) { problems.append("\(path): gone from a directory bob may not change") }
                    movable.append(body(old))
                }
            }
            guard let twin else { continue }
            for (name, n) in after.entries[twin] ?? [:] {
                if let old = entries[directory]?[name], nodes[old].inode.type == after.nodes[n].inode.type,
                   nodes[old].inode.uid == after.nodes[n].inode.uid { continue }
                let new = after.nodes[n].inode
                let path = dir.path + "/" + String(decoding: name, as: UTF8.self)
                if !mayChangeEntries(directory) { problems.append("\(path): new in a directory bob may not change") }
                if after.entryOwners[twin]?[name] != bob.uid { arrived.append((path, body(new))) }
            }
            // The directory's stamp, on every block it has now.
            if dir.inode.uid != bob.uid, let stamp = dir.blocks.first.flatMap({ stamps[$0] }) {
                for block in after.nodes[twin].blocks where after.stamps[block] != nil && after.stamps[block] != stamp {
                    problems.append("\(dir.path): block \(block) carries stamp \(after.stamps[block]!), not \(stamp)")
                }
            }
        }
        for (path, arriving) in arrived {
            if let i = movable.firstIndex(of: arriving) { movable.remove(at: i) } else {
                problems.append("\(path): appeared claiming an owner other than bob")
            }
        }
        return problems
    }

    /// A digest of each data block of every file bob may not write, with its file's path.
    func protectedHashes() -> [BlockNumber: (path: String, digest: UInt64)] {
        var result: [BlockNumber: (path: String, digest: UInt64)] = [:]
        for (block, (node, role)) in roles where role == .data && !mayWriteFile(node) && nodes[node].inode.uid != bob.uid {
            result[block] = (nodes[node].path, Self.digest(bytes(block) ?? []))
        }
        return result
    }

    /// The protected data blocks (`hashes`, taken on an earlier tree) still in the same
    /// file whose bytes changed.
    func dataChanged(since hashes: [BlockNumber: (path: String, digest: UInt64)]) -> [String] {
        var problems: [String] = []
        for (block, (path, digest)) in hashes.sorted(by: { $0.key < $1.key }) {
            guard let (node, role) = roles[block], role == .data, nodes[node].path == path else { continue }
            if Self.digest(bytes(block) ?? []) != digest { problems.append("\(path): data block \(block) changed") }
        }
        return problems
    }

    static func digest(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return h
    }

    // MARK: For the generator

    func randomEntry(_ rng: inout SeededRandom) -> Inode? {
        guard nodes.count > 1 else { return nil }
        return nodes[1 + Int(rng.next() % UInt64(nodes.count - 1))].inode
    }

    func children(of block: BlockNumber) -> [BlockNumber] { childBlocks[block] ?? [] }

    /// A node at random (not the root).
    func randomNode(_ rng: inout SeededRandom) -> Node? {
        guard nodes.count > 1 else { return nil }
        return nodes[1 + Int(rng.next() % UInt64(nodes.count - 1))]
    }

    /// A directory block at random, and whether it is the last of its directory.
    func randomDirectoryBlock(_ rng: inout SeededRandom) -> (block: BlockNumber, last: Bool)? {
        let directories = nodes.filter { $0.inode.isDirectory || $0.path == "/" }
        guard !directories.isEmpty else { return nil }
        let d = directories[Int(rng.next() % UInt64(directories.count))]
        let laidOut = d.blocks.filter { stamps[$0] != nil }
        guard let block = laidOut.randomElementSeeded(&rng) else { return nil }
        return (block, block == laidOut.last)
    }

    /// A directory header's stamp seen in the tree, at random.
    func randomStamp(_ rng: inout SeededRandom) -> [UInt32]? {
        guard !stamps.isEmpty else { return nil }
        let all = stamps.keys.sorted()
        return stamps[all[Int(rng.next() % UInt64(all.count))]]
    }

    /// Offsets of the 8-byte fields of `block` that hold `child`.
    func fieldsPointing(to child: BlockNumber, in block: BlockNumber) -> [Int] {
        guard let b = bytes(block) else { return [] }
        return stride(from: 0, to: CFFSLayout.blockBytes, by: 8).filter { b.le64($0) == child }
    }
}

extension Array {
    func randomElementSeeded(_ rng: inout SeededRandom) -> Element? { isEmpty ? nil : self[Int(rng.next() % UInt64(count))] }
}
