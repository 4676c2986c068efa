// C-FFS's UDFs, built with the BPF builder. They are where C-FFS's UNIX rules live: the
// kernel runs them on every change and access, so a library OS that skips C-FFS and calls
// the kernel with its own code still meets them.
//
// The `acl` UDFs map a credential to UNIX permission classes (CFFSNames): `[tag]` is the
// superuser; `[tag, 1, uid]` gets the owner bits when uid is the stamp's owner, `[tag, 2,
// gid, uid]` the group bits when gid is its group; any other C-FFS credential of those
// shapes gets the others bits; anything else gets nothing. A library OS picks, as access(2) does, the
// credential of the class that applies to its process. What each operation needs:
//
//   read of a block          a directory's: read or search on it; a file's: read on the
//                            file (a symbolic link's: nothing)
//   write of a data block    write on the file
//   a new or removed entry,  write and search on the directory; the name must be 1-120
//   a renamed one            bytes, no NUL or '/', not "." or "..", and unique in the block;
//                            a new entry's owner is the credential's uid
//   an entry's size, times   write on the file (or its owner); freeing its blocks, as
//   or blocks                unlink does: write on the directory too
//   mode                     the owner, or the superuser
//   uid or gid               the superuser
//   an entry moved to or     write and search on each directory; one whole entry, in
//   from another directory   an initialized block; the name brought in valid and unique
//                            (the edits a move makes to the entry it brings: as above)
//
// A block whose header is still zero (just allocated) may be initialized by whoever XN
// lets change it: XN lets only its allocator make the first change to a fresh block, and
// C-FFS's first change to every block it allocates writes its header.

import BPF
import XokABI

/// The bytecode of one type's three UDFs.
public struct TypeUDFs: Sendable {
    public var owns: [UInt8], acl: [UInt8], size: [UInt8]
}

/// C-FFS's three types and their UDFs.
public enum CFFSUDFs {
    public static let superName = "cffs.super"
    public static let dirName = "cffs.dir"
    public static let indName = "cffs.ind"
    public static let inodeName = "cffs.inode"

    public static var superblock: TypeUDFs { TypeUDFs(owns: ownsSuper, acl: aclSuper, size: oneBlock) }
    public static var directory: TypeUDFs { TypeUDFs(owns: ownsDirectory, acl: aclDirectory, size: oneBlock) }
    public static var indirect: TypeUDFs { TypeUDFs(owns: ownsIndirect, acl: aclIndirect, size: oneBlock) }
    public static var inode: TypeUDFs { TypeUDFs(owns: ownsInode, acl: aclInode, size: oneBlock) }

    static let after = Int16(AclContext.blockAfterOffset)
    static let credential = Int16(AclContext.credentialOffset)

    static func build(_ emit: (inout UDFBuilder) -> Void) -> [UInt8] {
        var u = UDFBuilder()
        emit(&u)
        // The programs are fixed: a failure here is a bug in this file, found by any test.
        do { return try u.b.build().bytes } catch { fatalError("C-FFS UDF does not assemble: \(error)") }
    }

    static var oneBlock: [UInt8] {
        build { u in
            u.b.mov(.r0, .immediate(Int32(CFFSLayout.blockBytes)))
            u.b.exit()
        }
    }

    // MARK: owns

    /// The superblock points to the root directory.
    static var ownsSuper: [UInt8] {
        build { u in
            let done = u.b.makeLabel()
            u.b.mov(.r0, 0)
            u.b.mov(.r9, .r3)
            u.b.load(.word, .r4, from: .r1, offset: Int16(CFFSLayout.dirType))
            u.b.load(.double, .r2, from: .r1, offset: Int16(CFFSLayout.next))
            u.b.branch(.eq, .r2, 0, to: done)
            u.emitPointer(.r2, type: .r4)
            u.b.bind(done)
            u.b.exit()
        }
    }

    /// A directory block points to its next block, each subdirectory's first block, each
    /// file's direct (data) and indirect blocks, and each link entry's inode block.
    static var ownsDirectory: [UInt8] {
        build { u in
            let loop = u.b.makeLabel(), next = u.b.makeLabel(), done = u.b.makeLabel(), file = u.b.makeLabel()
            u.b.mov(.r0, 0)
            u.b.mov(.r9, .r3)
            u.b.load(.word, .r4, from: .r1, offset: Int16(CFFSLayout.dirType))
            u.b.load(.word, .r5, from: .r1, offset: Int16(CFFSLayout.indType))
            u.b.load(.word, .r3, from: .r1, offset: Int16(CFFSLayout.inoType))
            u.emitIfNonzero(at: .r1, offset: Int16(CFFSLayout.next), type: .register(.r4))
            u.b.mov(.r6, .r1)
            u.b.add(.r6, .immediate(Int32(CFFSLayout.slotsStart)))
            u.b.mov(.r7, 0)
            u.b.bind(loop)
            u.b.branch(.ge, .r7, .immediate(Int32(CFFSLayout.slots)), to: done)
            u.b.load(.word, .r2, from: .r6, offset: Int16(CFFSLayout.eMode))
            u.b.alu(.and, .r2, .immediate(Int32(FileMode.typeMask)))
            u.b.branch(.eq, .r2, .immediate(Int32(FileMode.regular)), to: file)
            u.b.branch(.eq, .r2, .immediate(Int32(FileMode.symlink)), to: file)
            let notLink = u.b.makeLabel()
            u.b.branch(.ne, .r2, .immediate(Int32(FileMode.link)), to: notLink)
            u.emitIfNonzero(at: .r6, offset: Int16(CFFSLayout.eDirect), type: .register(.r3))
            u.b.jump(to: next)
            u.b.bind(notLink)
            u.b.branch(.ne, .r2, .immediate(Int32(FileMode.directory)), to: next)
            u.emitIfNonzero(at: .r6, offset: Int16(CFFSLayout.eDirect), type: .register(.r4))
            u.b.jump(to: next)
            u.b.bind(file)
            for k in 0..<CFFSLayout.directCount {
                u.emitIfNonzero(at: .r6, offset: Int16(CFFSLayout.eDirect + 8 * k), type: .immediate(0))
            }
            for k in 0..<CFFSLayout.indirectLevels {
                u.emitIfNonzero(at: .r6, offset: Int16(CFFSLayout.eIndirect + 8 * k), type: .register(.r5))
            }
            u.b.bind(next)
            u.b.add(.r6, .immediate(Int32(CFFSLayout.slotBytes)))
            u.b.add(.r7, 1)
            u.b.jump(to: loop)
            u.b.bind(done)
            u.b.exit()
        }
    }

    /// An inode block points to its file's direct (data) and indirect blocks.
    static var ownsInode: [UInt8] {
        build { u in
            let file = u.b.makeLabel(), done = u.b.makeLabel()
            u.b.mov(.r0, 0)
            u.b.mov(.r9, .r3)
            u.b.load(.word, .r5, from: .r1, offset: Int16(CFFSLayout.indType))
            u.b.load(.word, .r2, from: .r1, offset: Int16(CFFSLayout.slotsStart + CFFSLayout.eMode))
            u.b.alu(.and, .r2, .immediate(Int32(FileMode.typeMask)))
            u.b.branch(.eq, .r2, .immediate(Int32(FileMode.regular)), to: file)
            u.b.branch(.ne, .r2, .immediate(Int32(FileMode.symlink)), to: done)
            u.b.bind(file)
            for k in 0..<CFFSLayout.directCount {
                u.emitIfNonzero(at: .r1, offset: Int16(CFFSLayout.slotsStart + CFFSLayout.eDirect + 8 * k), type: .immediate(0))
            }
            for k in 0..<CFFSLayout.indirectLevels {
                u.emitIfNonzero(at: .r1, offset: Int16(CFFSLayout.slotsStart + CFFSLayout.eIndirect + 8 * k), type: .register(.r5))
            }
            u.b.bind(done)
            u.b.exit()
        }
    }

    /// An indirect block points to data blocks (level 1) or to indirect blocks.
    static var ownsIndirect: [UInt8] {
        build { u in
            let loop = u.b.makeLabel(), done = u.b.makeLabel(), typed = u.b.makeLabel()
            u.b.mov(.r0, 0)
            u.b.mov(.r9, .r3)
            u.b.load(.word, .r5, from: .r1, offset: Int16(CFFSLayout.indType))
            u.b.load(.word, .r4, from: .r1, offset: Int16(CFFSLayout.level))
            u.b.branch(.gt, .r4, 1, to: typed)
            u.b.mov(.r5, 0)
            u.b.bind(typed)
            u.b.mov(.r6, .r1)
            u.b.add(.r6, .immediate(Int32(CFFSLayout.indPointersStart)))
            u.b.mov(.r7, 0)
            u.b.bind(loop)
            u.b.branch(.ge, .r7, .immediate(Int32(CFFSLayout.indPointers / 8)), to: done)
            for k in 0..<8 { u.emitIfNonzero(at: .r6, offset: Int16(8 * k), type: .register(.r5)) }
            u.b.add(.r6, 64)
            u.b.add(.r7, 1)
            u.b.jump(to: loop)
            u.b.bind(done)
            u.b.exit()
        }
    }

    // MARK: acl

    /// Anyone who may use the root reads the root directory through it; only the
    /// superuser changes it once it is initialized.
    static var aclSuper: [UInt8] {
        build { u in
            let changes = u.b.makeLabel(), notTraverse = u.b.makeLabel()
            u.loadOperation()
            // Passing through to the root directory: its own header guards it.
            u.b.branch(.ne, .r9, .immediate(Int32(AclContext.Operation.traverse.rawValue)), to: notTraverse)
            u.requireRights(.read)
            u.b.jump(to: u.allow)
            u.b.bind(notTraverse)
            u.b.branch(.ne, .r9, .immediate(Int32(AclContext.Operation.read.rawValue)), to: changes)
            u.requireRights(.read)
            u.b.branch(.eq, .r8, 0, to: u.deny)
            u.b.load(.double, .r2, from: .r1, offset: Int16(CFFSLayout.next))
            u.b.branch(.eq, .r2, .r8, to: u.allow)
            u.b.jump(to: u.deny)
            u.b.bind(changes)
            u.b.branch(.eq, .r9, .immediate(Int32(AclContext.Operation.writeData.rawValue)), to: u.deny)
            u.denyMoves()
            u.requireRights(.write)
            u.b.load(.word, .r2, from: .r1, offset: Int16(CFFSLayout.magic))
            u.b.branch(.eq, .r2, 0, to: u.allow)
            u.ifSuperuser(u.allow)
            u.b.jump(to: u.deny)
            u.finish()
        }
    }

    static var aclDirectory: [UInt8] {
        build { u in
            let changes = u.b.makeLabel(), scan = u.b.makeLabel(), loop = u.b.makeLabel(), nextSlot = u.b.makeLabel()
            let file = u.b.makeLabel(), matchDirectory = u.b.makeLabel(), matchFile = u.b.makeLabel()
            u.loadOperation()
            u.routeTraverseOfDirectory()
            u.routeAccess(to: changes)

            // Reads and data writes: find the entry that points to the target.
            u.b.branch(.eq, .r8, 0, to: u.deny)
            u.b.load(.double, .r2, from: .r1, offset: Int16(CFFSLayout.next))
            u.b.branch(.ne, .r2, .r8, to: scan)
            // The directory's own next block: as the directory.
            u.b.branch(.ne, .r9, .immediate(Int32(AclContext.Operation.read.rawValue)), to: u.deny)
            u.permission(of: .r1, header: true)
            u.b.emit(.branch(.set, .bits64, .r0, .immediate(5), offset: 0), to: u.allow)
            u.b.jump(to: u.deny)
            u.b.bind(scan)
            u.b.mov(.r6, .r1)
            u.b.add(.r6, .immediate(Int32(CFFSLayout.slotsStart)))
            u.b.mov(.r7, 0)
            u.b.bind(loop)
            u.b.branch(.ge, .r7, .immediate(Int32(CFFSLayout.slots)), to: u.deny)
            u.b.load(.word, .r2, from: .r6, offset: Int16(CFFSLayout.eMode))
            u.b.alu(.and, .r2, .immediate(Int32(FileMode.typeMask)))
            u.b.branch(.eq, .r2, .immediate(Int32(FileMode.regular)), to: file)
            u.b.branch(.eq, .r2, .immediate(Int32(FileMode.symlink)), to: file)
            let matchLink = u.b.makeLabel(), notLinkEntry = u.b.makeLabel()
            u.b.branch(.ne, .r2, .immediate(Int32(FileMode.link)), to: notLinkEntry)
            u.b.load(.double, .r3, from: .r6, offset: Int16(CFFSLayout.eDirect))
            u.b.branch(.eq, .r3, .r8, to: matchLink)
            u.b.jump(to: nextSlot)
            u.b.bind(notLinkEntry)
            u.b.branch(.ne, .r2, .immediate(Int32(FileMode.directory)), to: nextSlot)
            u.b.load(.double, .r3, from: .r6, offset: Int16(CFFSLayout.eDirect))
            u.b.branch(.eq, .r3, .r8, to: matchDirectory)
            u.b.jump(to: nextSlot)
            u.b.bind(file)
            for field in CFFSLayout.pointerFields {
                u.b.load(.double, .r3, from: .r6, offset: Int16(field))
                u.b.branch(.eq, .r3, .r8, to: matchFile)
            }
            u.b.bind(nextSlot)
            u.b.add(.r6, .immediate(Int32(CFFSLayout.slotBytes)))
            u.b.add(.r7, 1)
            u.b.jump(to: loop)

            // A link entry's inode block: read with read or search on this directory, as
            // an inode embedded here is.
            u.b.bind(matchLink)
            u.b.branch(.ne, .r9, .immediate(Int32(AclContext.Operation.read.rawValue)), to: u.deny)
            u.permission(of: .r1, header: true)
            u.b.emit(.branch(.set, .bits64, .r0, .immediate(5), offset: 0), to: u.allow)
            u.b.jump(to: u.deny)

            u.b.bind(matchDirectory)
            u.b.branch(.ne, .r9, .immediate(Int32(AclContext.Operation.read.rawValue)), to: u.deny)
            u.permission(of: .r6, header: false)
            u.b.emit(.branch(.set, .bits64, .r0, .immediate(5), offset: 0), to: u.allow)
            u.b.jump(to: u.deny)

            u.b.bind(matchFile)
            let notLink = u.b.makeLabel(), writing = u.b.makeLabel()
            u.b.branch(.ne, .r9, .immediate(Int32(AclContext.Operation.read.rawValue)), to: notLink)
            u.b.load(.word, .r2, from: .r6, offset: Int16(CFFSLayout.eMode))
            u.b.alu(.and, .r2, .immediate(Int32(FileMode.typeMask)))
            u.b.branch(.eq, .r2, .immediate(Int32(FileMode.symlink)), to: u.allow)
            u.b.bind(notLink)
            u.refuseOthersWritingASymbolicLink(entry: .r6)
            u.permission(of: .r6, header: false)
            u.b.branch(.ne, .r9, .immediate(Int32(AclContext.Operation.read.rawValue)), to: writing)
            u.b.emit(.branch(.set, .bits64, .r0, .immediate(4), offset: 0), to: u.allow)
            u.b.jump(to: u.deny)
            u.b.bind(writing)
            u.b.emit(.branch(.set, .bits64, .r0, .immediate(2), offset: 0), to: u.allow)
            u.b.jump(to: u.deny)

            // Changes. The operation is kept on the stack: the name check needs r9.
            u.b.bind(changes)
            u.b.store(.double, to: .r10, offset: -8, .register(.r9))
            u.requireRights(.write)
            u.checkLayout(.directory)
            u.checkMove()
            u.loadChangedRange()
            u.checkHeader(otherFieldsNeedDirectoryWrite: true)
            u.checkSlots()
            u.finish()
        }
    }

    /// An inode block: its entry arrives whole by a move, from the directory that held it,
    /// and is then changed as an entry in a directory is, with no renames (the names are
    /// link entries). Nothing else in the block ever changes.
    static var aclInode: [UInt8] {
        build { u in
            let changes = u.b.makeLabel(), writing = u.b.makeLabel(), notMove = u.b.makeLabel(), done = u.b.makeLabel()
            u.loadOperation()
            // Its children are its file's: passing through to them needs what reaching the
            // file needed, which the directories above checked.
            u.b.branch(.eq, .r9, .immediate(Int32(AclContext.Operation.traverse.rawValue)), to: u.allow)
            u.routeAccess(to: changes)
            // Every child belongs to the file in slot 0: its stamp decides.
            u.b.branch(.eq, .r8, 0, to: u.deny)
            u.b.mov(.r6, .r1)
            u.b.add(.r6, .immediate(Int32(CFFSLayout.slotsStart)))
            u.b.branch(.ne, .r9, .immediate(Int32(AclContext.Operation.read.rawValue)), to: writing)
            u.b.load(.word, .r2, from: .r6, offset: Int16(CFFSLayout.eMode))
            u.b.alu(.and, .r2, .immediate(Int32(FileMode.typeMask)))
            u.b.branch(.eq, .r2, .immediate(Int32(FileMode.symlink)), to: u.allow)
            u.permission(of: .r6, header: false)
            u.b.emit(.branch(.set, .bits64, .r0, .immediate(4), offset: 0), to: u.allow)
            u.b.jump(to: u.deny)
            u.b.bind(writing)
            u.refuseOthersWritingASymbolicLink(entry: .r6)
            u.permission(of: .r6, header: false)
            u.b.emit(.branch(.set, .bits64, .r0, .immediate(2), offset: 0), to: u.allow)
            u.b.jump(to: u.deny)

            u.b.bind(changes)
            u.b.store(.double, to: .r10, offset: -8, .register(.r9))
            u.b.branch(.eq, .r9, .immediate(Int32(AclContext.Operation.moveOut.rawValue)), to: u.deny)
            u.b.branch(.eq, .r9, .immediate(Int32(AclContext.Operation.link.rawValue)), to: u.deny)
            u.requireRights(.write)
            u.checkLayout(.inode)
            // Only slot 0 changes.
            u.loadChangedRange()
            u.b.branch(.lt, .r6, .immediate(Int32(CFFSLayout.slotsStart)), to: u.deny)
            u.b.branch(.gt, .r7, .immediate(Int32(CFFSLayout.slotsStart + CFFSLayout.slotBytes)), to: u.deny)
            u.b.mov(.r8, .r1)
            u.b.add(.r8, .immediate(Int32(CFFSLayout.slotsStart)))
            // A move brings a whole file's entry (never a directory's), unedited.
            u.b.branch(.ne, .r9, .immediate(Int32(AclContext.Operation.moveIn.rawValue)), to: notMove)
            u.b.branch(.ne, .r6, .immediate(Int32(CFFSLayout.slotsStart)), to: u.deny)
            u.b.branch(.ne, .r7, .immediate(Int32(CFFSLayout.slotsStart + CFFSLayout.slotBytes)), to: u.deny)
            u.b.load(.word, .r2, from: .r8, offset: Int16(CFFSLayout.eMode))
            u.b.alu(.and, .r2, .immediate(Int32(FileMode.typeMask)))
            let fileType = u.b.makeLabel()
            u.b.branch(.eq, .r2, .immediate(Int32(FileMode.regular)), to: fileType)
            u.b.branch(.ne, .r2, .immediate(Int32(FileMode.symlink)), to: u.deny)
            u.b.bind(fileType)
            u.ifWordsChanged(.r8, from: 0, to: CFFSLayout.slotBytes, u.deny)
            u.b.jump(to: u.allow)
            // Otherwise the entry stays: no entry appears or goes but by the moves above.
            u.b.bind(notMove)
            u.b.load(.word, .r2, from: .r8, offset: Int16(CFFSLayout.eMode))
            u.b.branch(.eq, .r2, 0, to: u.deny)
            u.b.load(.word, .r2, from: .r8, offset: after + Int16(CFFSLayout.eMode))
            u.b.branch(.eq, .r2, 0, to: u.deny)
            u.b.mov(.r6, 0)
            u.checkExistingEntry(renames: false, next: done)
            u.b.bind(done)
            u.b.jump(to: u.allow)
            u.finish()
        }
    }

    static var aclIndirect: [UInt8] {
        build { u in
            let changes = u.b.makeLabel(), writing = u.b.makeLabel()
            u.loadOperation()
            // Its children are its file's, as an inode block's are.
            u.b.branch(.eq, .r9, .immediate(Int32(AclContext.Operation.traverse.rawValue)), to: u.allow)
            u.routeAccess(to: changes)
            // Every child of an indirect block belongs to the one file its header stamps,
            // and XN asks only about this block's own children: no need to find which.
            u.b.branch(.eq, .r8, 0, to: u.deny)
            u.permission(of: .r1, header: true)
            u.b.branch(.ne, .r9, .immediate(Int32(AclContext.Operation.read.rawValue)), to: writing)
            u.b.emit(.branch(.set, .bits64, .r0, .immediate(4), offset: 0), to: u.allow)
            u.b.jump(to: u.deny)
            u.b.bind(writing)
            u.b.emit(.branch(.set, .bits64, .r0, .immediate(2), offset: 0), to: u.allow)
            u.b.jump(to: u.deny)

            u.b.bind(changes)
            u.denyMoves()
            u.requireRights(.write)
            u.checkLayout(.indirect)
            u.loadChangedRange()
            u.checkHeader(otherFieldsNeedDirectoryWrite: false)
            // Anything outside uid, gid and mode (pointers, level): write on the file.
            let stampOnly = u.b.makeLabel()
            u.b.branch(.lt, .r6, .immediate(Int32(CFFSLayout.uid)), to: stampOnly)
            u.b.branch(.gt, .r7, .immediate(Int32(CFFSLayout.mode + 4)), to: stampOnly)
            u.b.jump(to: u.allow)
            u.b.bind(stampOnly)
            u.permission(of: .r1, header: true)
            u.b.emit(.branch(.set, .bits64, .r0, .immediate(2), offset: 0), to: u.allow)
            u.b.jump(to: u.deny)
            u.finish()
        }
    }
}

/// The builder with the pieces C-FFS's UDFs share. Register use: r1 the context
/// throughout, r9 the operation, r8 the target (or, for changes, the slot being
/// checked), r6 and r7 loop state; r0 and r2-r5 are scratch for the macros.
struct UDFBuilder {
    var b = ProgramBuilder()
    let allow: Label, deny: Label
    /// Program-local functions, emitted after the exits when used.
    let permissionFunction: Label, nameFunction: Label, stickyFunction: Label
    var usesPermission = false, usesName = false, usesSticky = false
    /// Where the context pointer is kept across calls (which clobber r1-r5).
    static let savedContext: Int16 = -16

    init() {
        allow = b.makeLabel()
        deny = b.makeLabel()
        permissionFunction = b.makeLabel()
        nameFunction = b.makeLabel()
        stickyFunction = b.makeLabel()
        b.store(.double, to: .r10, offset: Self.savedContext, .register(.r1))
    }

    /// The two exits, then the functions.
    mutating func finish() {
        b.bind(deny)
        b.mov(.r0, 0)
        b.exit()
        b.bind(allow)
        b.mov(.r0, 1)
        b.exit()
        if usesPermission { emitPermissionFunction() }
        if usesName { emitNameFunction() }
        if usesSticky { emitStickyFunction() }
    }

    /// Appends (`block`, `type`) to the owns output at r9, counting in r0.
    mutating func emitPointer(_ block: Register, type: Register) {
        b.store(.double, to: .r9, offset: 0, .register(block))
        b.store(.double, to: .r9, offset: 8, .register(type))
        b.add(.r9, 16)
        b.add(.r0, 1)
    }

    /// Appends the u64 at `base + offset` when it is nonzero, with `type`. Uses r8.
    mutating func emitIfNonzero(at base: Register, offset: Int16, type: Operand) {
        let skip = b.makeLabel()
        b.load(.double, .r8, from: base, offset: offset)
        b.branch(.eq, .r8, 0, to: skip)
        b.store(.double, to: .r9, offset: 0, .register(.r8))
        switch type {
        case .register(let r): b.store(.double, to: .r9, offset: 8, .register(r))
        case .immediate(let v): b.store(.double, to: .r9, offset: 8, .immediate(v))
        }
        b.add(.r9, 16)
        b.add(.r0, 1)
        b.bind(skip)
    }

    /// r9 = the operation, r8 = the target.
    mutating func loadOperation() {
        b.load(.word, .r9, from: .r1, offset: Int16(AclContext.operationOffset))
        b.load(.double, .r8, from: .r1, offset: Int16(AclContext.targetOffset))
    }

    /// Reads need the credential's read right and data writes its write right; anything
    /// else goes to `changes`.
    mutating func routeAccess(to changes: Label) {
        let reading = b.makeLabel(), checked = b.makeLabel()
        b.branch(.eq, .r9, .immediate(Int32(AclContext.Operation.read.rawValue)), to: reading)
        b.branch(.ne, .r9, .immediate(Int32(AclContext.Operation.writeData.rawValue)), to: changes)
        requireRights(.write)
        b.jump(to: checked)
        b.bind(reading)
        requireRights(.read)
        b.bind(checked)
    }

    /// Denies unless the credential carries `rights`.
    mutating func requireRights(_ rights: Rights) {
        b.load(.double, .r2, from: .r1, offset: CFFSUDFs.credential)
        b.alu(.and, .r2, .immediate(Int32(rights.rawValue)))
        b.branch(.ne, .r2, .immediate(Int32(rights.rawValue)), to: deny)
    }

    /// Jumps to `target` when the credential is the superuser's. Uses r2, r3.
    mutating func ifSuperuser(_ target: Label) {
        let no = b.makeLabel()
        b.load(.double, .r2, from: .r1, offset: CFFSUDFs.credential + 8)
        b.branch(.ne, .r2, 1, to: no)
        b.load(.double, .r3, from: .r1, offset: CFFSUDFs.credential + 16)
        b.branch(.eq, .r3, .immediate(Int32(CFFSNames.tag)), to: target)
        b.bind(no)
    }

    /// Jumps to `target` when the credential is the user whose uid is the u32 at
    /// `base + offset`. Uses r2, r3.
    mutating func ifOwner(uidAt base: Register, offset: Int16, _ target: Label) {
        let no = b.makeLabel()
        b.load(.double, .r2, from: .r1, offset: CFFSUDFs.credential + 8)
        b.branch(.ne, .r2, 3, to: no)
        b.load(.double, .r2, from: .r1, offset: CFFSUDFs.credential + 16)
        b.branch(.ne, .r2, .immediate(Int32(CFFSNames.tag)), to: no)
        b.load(.double, .r2, from: .r1, offset: CFFSUDFs.credential + 24)
        b.branch(.ne, .r2, .immediate(Int32(CFFSNames.userKind)), to: no)
        b.load(.double, .r2, from: .r1, offset: CFFSUDFs.credential + 32)
        b.load(.word, .r3, from: base, offset: offset)
        b.branch(.eq, .r2, .r3, to: target)
        b.bind(no)
    }

    /// r0 = the permission bits (rwx as 4/2/1; 7 for the superuser, 0 for a credential
    /// that is not C-FFS's) the credential has on the stamp at `base`: a block header's
    /// uid/gid/mode, or an entry's. Clobbers r2-r5; r1 is reloaded.
    mutating func permission(of base: Register, header: Bool) {
        b.load(.word, .r2, from: base, offset: Int16(header ? CFFSLayout.uid : CFFSLayout.eUID))
        b.load(.word, .r3, from: base, offset: Int16(header ? CFFSLayout.gid : CFFSLayout.eGID))
        b.load(.word, .r4, from: base, offset: Int16(header ? CFFSLayout.mode : CFFSLayout.eMode))
        b.load(.double, .r1, from: .r10, offset: Self.savedContext)
        b.call(permissionFunction)
        b.load(.double, .r1, from: .r10, offset: Self.savedContext)
        usesPermission = true
    }

    /// The permission function: r1 the context, r2 uid, r3 gid, r4 mode; r0 the bits.
    private mutating func emitPermissionFunction() {
        b.bind(permissionFunction)
        let done = b.makeLabel(), superuser = b.makeLabel(), user = b.makeLabel(), group = b.makeLabel()
        let take = b.makeLabel()
        b.mov(.r0, 0)
        b.load(.double, .r5, from: .r1, offset: CFFSUDFs.credential + 16)
        b.branch(.ne, .r5, .immediate(Int32(CFFSNames.tag)), to: done)
        b.load(.double, .r5, from: .r1, offset: CFFSUDFs.credential + 8)
        b.branch(.eq, .r5, 1, to: superuser)
        // [tag, 1, uid] or [tag, 2, gid, uid]; any other length is no C-FFS class.
        b.load(.double, .r0, from: .r1, offset: CFFSUDFs.credential + 24)
        b.add(.r0, 2)
        b.branch(.ne, .r0, .r5, to: done)
        b.mov(.r0, 0)
        b.load(.double, .r5, from: .r1, offset: CFFSUDFs.credential + 24)
        b.load(.double, .r1, from: .r1, offset: CFFSUDFs.credential + 32)
        b.branch(.eq, .r5, .immediate(Int32(CFFSNames.userKind)), to: user)
        b.branch(.eq, .r5, .immediate(Int32(CFFSNames.groupKind)), to: group)
        b.jump(to: done)
        b.bind(user)
        b.branch(.ne, .r1, .r2, to: take)
        b.alu(.rsh, .r4, 6)
        b.jump(to: take)
        b.bind(group)
        b.branch(.ne, .r1, .r3, to: take)
        b.alu(.rsh, .r4, 3)
        b.bind(take)
        b.alu(.and, .r4, 7)
        b.mov(.r0, .r4)
        b.exit()
        b.bind(superuser)
        b.mov(.r0, 7)
        b.bind(done)
        b.exit()
    }

    /// Denies unless the after slot at r8 names the credential's user as its owner (the
    /// superuser may name anyone). Uses r2, r3.
    mutating func requireCreator() {
        let ok = b.makeLabel(), group = b.makeLabel(), compare = b.makeLabel()
        ifSuperuser(ok)
        b.load(.double, .r2, from: .r1, offset: CFFSUDFs.credential + 16)
        b.branch(.ne, .r2, .immediate(Int32(CFFSNames.tag)), to: deny)
        b.load(.double, .r2, from: .r1, offset: CFFSUDFs.credential + 24)
        b.branch(.eq, .r2, .immediate(Int32(CFFSNames.groupKind)), to: group)
        b.branch(.ne, .r2, .immediate(Int32(CFFSNames.userKind)), to: deny)
        b.load(.double, .r2, from: .r1, offset: CFFSUDFs.credential + 8)
        b.branch(.ne, .r2, 3, to: deny)
        b.load(.double, .r2, from: .r1, offset: CFFSUDFs.credential + 32)
        b.jump(to: compare)
        b.bind(group)
        b.load(.double, .r2, from: .r1, offset: CFFSUDFs.credential + 8)
        b.branch(.ne, .r2, 4, to: deny)
        b.load(.double, .r2, from: .r1, offset: CFFSUDFs.credential + 40)
        b.bind(compare)
        b.load(.word, .r3, from: .r8, offset: CFFSUDFs.after + Int16(CFFSLayout.eUID))
        b.branch(.ne, .r2, .r3, to: deny)
        b.bind(ok)
    }

    /// Denies unless the credential may write and search the directory whose header is
    /// in the before block.
    mutating func requireDirectoryWrite() {
        permission(of: .r1, header: true)
        b.alu(.and, .r0, 3)
        b.branch(.ne, .r0, 3, to: deny)
    }

    // MARK: Rules added for a hostile co-user (docs/cffs.md, "Protection")

    /// Passing through a directory block (operation `traverse`, r8 the child; XN asks
    /// with the block itself as the child before any change to it): to the directory's own
    /// next block, read or search on it (listing a directory needs only read); into the
    /// block itself, search; to anything else, search. The owner may always pass to the
    /// directory's own blocks (chmod must reach every header). A block not laid out yet
    /// may be entered (its layout has rules of its own) but not passed through: it has no
    /// stamp to say who may, so whatever a damaged one still points to stays out of reach.
    mutating func routeTraverseOfDirectory() {
        let notTraverse = b.makeLabel(), search = b.makeLabel(), own = b.makeLabel()
        b.branch(.ne, .r9, .immediate(Int32(AclContext.Operation.traverse.rawValue)), to: notTraverse)
        requireRights(.read)
        let laidOut = b.makeLabel()
        b.load(.word, .r2, from: .r1, offset: Int16(CFFSLayout.magic))
        b.branch(.ne, .r2, 0, to: laidOut)
        b.load(.double, .r2, from: .r1, offset: Int16(AclContext.blockNumberOffset))
        b.branch(.eq, .r2, .r8, to: allow)
        b.jump(to: deny)
        b.bind(laidOut)
        permission(of: .r1, header: true)
        b.load(.double, .r2, from: .r1, offset: Int16(AclContext.blockNumberOffset))
        b.branch(.eq, .r2, .r8, to: own)
        b.load(.double, .r2, from: .r1, offset: Int16(CFFSLayout.next))
        b.branch(.ne, .r2, .r8, to: search)
        b.emit(.branch(.set, .bits64, .r0, .immediate(4), offset: 0), to: allow)
        b.bind(own)
        ifOwner(uidAt: .r1, offset: Int16(CFFSLayout.uid), allow)
        b.bind(search)
        b.emit(.branch(.set, .bits64, .r0, .immediate(1), offset: 0), to: allow)
        b.jump(to: deny)
        b.bind(notTraverse)
    }

    /// For a data write (r9 not `read`) through the entry at `entry`: a symbolic link's
    /// block is written by its owner or the superuser alone. Uses r2, r3.
    mutating func refuseOthersWritingASymbolicLink(entry: Register) {
        let fine = b.makeLabel()
        b.branch(.eq, .r9, .immediate(Int32(AclContext.Operation.read.rawValue)), to: fine)
        b.load(.word, .r2, from: entry, offset: Int16(CFFSLayout.eMode))
        b.alu(.and, .r2, .immediate(Int32(FileMode.typeMask)))
        b.branch(.ne, .r2, .immediate(Int32(FileMode.symlink)), to: fine)
        ifSuperuser(fine)
        ifOwner(uidAt: entry, offset: Int16(CFFSLayout.eUID), fine)
        b.jump(to: deny)
        b.bind(fine)
    }

    enum BlockKind { case directory, indirect, inode }

    /// A block whose magic is still zero (just allocated, or left so by an allocator that
    /// died) gets its first contents here, and they must be what its parent says it is:
    /// a header alone (no entries, no pointers: those come by the rules of later
    /// changes), the parent's type ids, and the stamp of the file or directory the parent
    /// says the block belongs to, laid out by one who may write that. After that, every
    /// change keeps the block's magic. Uses r2-r8; ends in allow or deny for a layout.
    mutating func checkLayout(_ kind: BlockKind) {
        let magic: UInt32 = switch kind {
        case .directory: CFFSLayout.dirMagic
        case .indirect: CFFSLayout.indMagic
        case .inode: CFFSLayout.inoMagic
        }
        let laidOut = b.makeLabel(), whoMay = b.makeLabel()
        let after = CFFSUDFs.after, parent = Int16(AclContext.parentOffset)
        b.load(.word, .r2, from: .r1, offset: Int16(CFFSLayout.magic))
        b.branch(.ne, .r2, 0, to: laidOut)
        loadChangedRange()
        b.branch(.gt, .r7, .immediate(Int32(CFFSLayout.headerBytes)), to: deny)
        b.load(.word, .r2, from: .r1, offset: after + Int16(CFFSLayout.magic))
        b.branch(.ne, .r2, .immediate(Int32(bitPattern: magic)), to: deny)
        b.load(.double, .r2, from: .r1, offset: Int16(AclContext.parentNumberOffset))
        b.branch(.eq, .r2, 0, to: deny)
        for field in [CFFSLayout.dirType, CFFSLayout.indType, CFFSLayout.inoType] {
            b.load(.word, .r2, from: .r1, offset: after + Int16(field))
            b.load(.word, .r3, from: .r1, offset: parent + Int16(field))
            b.branch(.ne, .r2, .r3, to: deny)
        }
        b.load(.double, .r2, from: .r1, offset: after + Int16(CFFSLayout.next))
        b.branch(.ne, .r2, 0, to: deny)
        b.load(.double, .r7, from: .r1, offset: Int16(AclContext.blockNumberOffset))
        b.load(.word, .r2, from: .r1, offset: parent + Int16(CFFSLayout.magic))
        switch kind {
        case .directory:
            let rootDirectory = b.makeLabel(), scan = b.makeLabel(), loop = b.makeLabel(), nextSlot = b.makeLabel(), found = b.makeLabel()
            b.branch(.eq, .r2, .immediate(Int32(CFFSLayout.superMagic)), to: rootDirectory)
            b.branch(.ne, .r2, .immediate(Int32(CFFSLayout.dirMagic)), to: deny)
            // The directory's next block carries its header's stamp; a subdirectory's first
            // block, its entry's.
            b.mov(.r8, .r1)
            b.add(.r8, .immediate(Int32(AclContext.parentOffset)))
            b.load(.double, .r3, from: .r8, offset: Int16(CFFSLayout.next))
            b.branch(.ne, .r3, .r7, to: scan)
            requireSameStamp(as: .r8, entry: false)
            b.jump(to: whoMay)
            b.bind(scan)
            b.add(.r8, .immediate(Int32(CFFSLayout.slotsStart)))
            b.mov(.r6, 0)
            b.bind(loop)
            b.branch(.ge, .r6, .immediate(Int32(CFFSLayout.slots)), to: deny)
            b.load(.word, .r2, from: .r8, offset: Int16(CFFSLayout.eMode))
            b.alu(.and, .r2, .immediate(Int32(FileMode.typeMask)))
            b.branch(.ne, .r2, .immediate(Int32(FileMode.directory)), to: nextSlot)
            b.load(.double, .r3, from: .r8, offset: Int16(CFFSLayout.eDirect))
            b.branch(.eq, .r3, .r7, to: found)
            b.bind(nextSlot)
            b.add(.r8, .immediate(Int32(CFFSLayout.slotBytes)))
            b.add(.r6, 1)
            b.jump(to: loop)
            b.bind(found)
            requireSameStamp(as: .r8, entry: true)
            b.jump(to: whoMay)
            // The root directory: the superuser's.
            b.bind(rootDirectory)
            ifSuperuser(allow)
            b.jump(to: deny)
        case .indirect:
            let fromIndirect = b.makeLabel(), fromInode = b.makeLabel(), loop = b.makeLabel(), nextSlot = b.makeLabel()
            let levels = (0..<CFFSLayout.indirectLevels).map { _ in b.makeLabel() }, stamp = b.makeLabel()
            b.mov(.r8, .r1)
            b.add(.r8, .immediate(Int32(AclContext.parentOffset + CFFSLayout.slotsStart)))
            b.mov(.r6, 0)
            b.branch(.eq, .r2, .immediate(Int32(CFFSLayout.indMagic)), to: fromIndirect)
            b.branch(.eq, .r2, .immediate(Int32(CFFSLayout.inoMagic)), to: fromInode)
            b.branch(.ne, .r2, .immediate(Int32(CFFSLayout.dirMagic)), to: deny)
            b.jump(to: loop)
            // An inode block holds its file in slot 0 alone: one turn of the loop.
            b.bind(fromInode)
            b.mov(.r6, .immediate(Int32(CFFSLayout.slots - 1)))
            // A file's entry whose indirect pointer of level k is this block.
            b.bind(loop)
            b.branch(.ge, .r6, .immediate(Int32(CFFSLayout.slots)), to: deny)
            b.load(.word, .r2, from: .r8, offset: Int16(CFFSLayout.eMode))
            b.alu(.and, .r2, .immediate(Int32(FileMode.typeMask)))
            let isFile = b.makeLabel()
            b.branch(.eq, .r2, .immediate(Int32(FileMode.regular)), to: isFile)
            b.branch(.ne, .r2, .immediate(Int32(FileMode.symlink)), to: nextSlot)
            b.bind(isFile)
            for (k, level) in levels.enumerated() {
                b.load(.double, .r3, from: .r8, offset: Int16(CFFSLayout.eIndirect + 8 * k))
                b.branch(.eq, .r3, .r7, to: level)
            }
            b.bind(nextSlot)
            b.add(.r8, .immediate(Int32(CFFSLayout.slotBytes)))
            b.add(.r6, 1)
            b.jump(to: loop)
            for (k, level) in levels.enumerated() {
                b.bind(level)
                b.mov(.r3, .immediate(Int32(k + 1)))
                b.jump(to: stamp)
            }
            b.bind(stamp)
            b.load(.word, .r2, from: .r1, offset: after + Int16(CFFSLayout.level))
            b.branch(.ne, .r2, .r3, to: deny)
            requireSameStamp(as: .r8, entry: true)
            b.jump(to: whoMay)
            // Under an indirect block: one level down, the same file's stamp.
            b.bind(fromIndirect)
            b.load(.word, .r2, from: .r1, offset: parent + Int16(CFFSLayout.level))
            b.branch(.lt, .r2, 2, to: deny)
            b.alu(.sub, .r2, 1)
            b.load(.word, .r3, from: .r1, offset: after + Int16(CFFSLayout.level))
            b.branch(.ne, .r2, .r3, to: deny)
            b.mov(.r8, .r1)
            b.add(.r8, .immediate(Int32(AclContext.parentOffset)))
            requireSameStamp(as: .r8, entry: false)
        case .inode:
            // Under a link entry of a directory, by one who may write and search it; its
            // header stamps nothing (slot 0's entry does, once a move brings it).
            b.branch(.ne, .r2, .immediate(Int32(CFFSLayout.dirMagic)), to: deny)
            b.load(.double, .r2, from: .r1, offset: after + Int16(CFFSLayout.uid))
            b.branch(.ne, .r2, 0, to: deny)
            b.load(.double, .r2, from: .r1, offset: after + Int16(CFFSLayout.level))
            b.branch(.ne, .r2, 0, to: deny)
            b.load(.word, .r2, from: .r1, offset: after + Int16(CFFSLayout.mode))
            b.branch(.ne, .r2, 0, to: deny)
            b.mov(.r8, .r1)
            b.add(.r8, .immediate(Int32(AclContext.parentOffset)))
            permission(of: .r8, header: true)
            b.alu(.and, .r0, 3)
            b.branch(.eq, .r0, 3, to: allow)
            b.jump(to: deny)
        }
        // Laid out by one who may write what the stamp guards.
        b.bind(whoMay)
        b.mov(.r8, .r1)
        b.add(.r8, .immediate(Int32(AclContext.blockAfterOffset)))
        permission(of: .r8, header: true)
        b.emit(.branch(.set, .bits64, .r0, .immediate(2), offset: 0), to: allow)
        b.jump(to: deny)
        b.bind(laidOut)
        b.load(.word, .r2, from: .r1, offset: after + Int16(CFFSLayout.magic))
        b.branch(.ne, .r2, .immediate(Int32(bitPattern: magic)), to: deny)
    }

    /// Denies unless the after header's uid, gid and mode are the stamp at `base` (an
    /// entry's, or a header's). Uses r2, r3.
    mutating func requireSameStamp(as base: Register, entry: Bool) {
        let fields = entry ? [CFFSLayout.eUID, CFFSLayout.eGID, CFFSLayout.eMode] : [CFFSLayout.uid, CFFSLayout.gid, CFFSLayout.mode]
        for (from, to) in zip(fields, [CFFSLayout.uid, CFFSLayout.gid, CFFSLayout.mode]) {
            b.load(.word, .r2, from: base, offset: Int16(from))
            b.load(.word, .r3, from: .r1, offset: CFFSUDFs.after + Int16(to))
            b.branch(.ne, .r2, .r3, to: deny)
        }
    }

    /// Denies unless the after entry at r8 has a size the layout can hold: a symbolic
    /// link's at most a block, any other at most `CFFSLayout.bytesMax`. Uses r2, r3.
    mutating func requireSizeInBounds() {
        let link = b.makeLabel(), ok = b.makeLabel()
        b.load(.double, .r2, from: .r8, offset: CFFSUDFs.after + Int16(CFFSLayout.eSize))
        b.load(.word, .r3, from: .r8, offset: CFFSUDFs.after + Int16(CFFSLayout.eMode))
        b.alu(.and, .r3, .immediate(Int32(FileMode.typeMask)))
        b.branch(.eq, .r3, .immediate(Int32(FileMode.symlink)), to: link)
        b.loadImmediate(.r3, CFFSLayout.bytesMax)
        b.branch(.gt, .r2, .r3, to: deny)
        b.jump(to: ok)
        b.bind(link)
        b.branch(.gt, .r2, .immediate(Int32(CFFSLayout.blockBytes)), to: deny)
        b.bind(ok)
    }

    /// In a sticky directory (mode 01000 in the before header), denies unless the
    /// credential is the superuser's, or its uid owns the entry at r8 (before block) or
    /// the directory, as unlink(2) and rename(2) require. Clobbers r2-r5; r1 is reloaded.
    mutating func requireStickyRight() {
        b.mov(.r2, .r8)
        b.load(.double, .r1, from: .r10, offset: Self.savedContext)
        b.call(stickyFunction)
        b.load(.double, .r1, from: .r10, offset: Self.savedContext)
        b.branch(.eq, .r0, 0, to: deny)
        usesSticky = true
    }

    /// The sticky function: r1 the context, r2 the entry's address; r0 1 when allowed.
    /// (r6 is its own: a local call keeps the caller's r6-r9.)
    private mutating func emitStickyFunction() {
        let yes = b.makeLabel(), no = b.makeLabel(), group = b.makeLabel(), compare = b.makeLabel()
        b.bind(stickyFunction)
        b.mov(.r6, .r2)
        b.load(.word, .r3, from: .r1, offset: Int16(CFFSLayout.mode))
        b.alu(.and, .r3, .immediate(0o1000))
        b.branch(.eq, .r3, 0, to: yes)
        ifSuperuser(yes)
        // The credential's uid: [tag, 1, uid] or [tag, 2, gid, uid].
        b.load(.double, .r3, from: .r1, offset: CFFSUDFs.credential + 16)
        b.branch(.ne, .r3, .immediate(Int32(CFFSNames.tag)), to: no)
        b.load(.double, .r3, from: .r1, offset: CFFSUDFs.credential + 24)
        b.load(.double, .r4, from: .r1, offset: CFFSUDFs.credential + 8)
        b.branch(.eq, .r3, .immediate(Int32(CFFSNames.groupKind)), to: group)
        b.branch(.ne, .r3, .immediate(Int32(CFFSNames.userKind)), to: no)
        b.branch(.ne, .r4, 3, to: no)
        b.load(.double, .r5, from: .r1, offset: CFFSUDFs.credential + 32)
        b.jump(to: compare)
        b.bind(group)
        b.branch(.ne, .r4, 4, to: no)
        b.load(.double, .r5, from: .r1, offset: CFFSUDFs.credential + 40)
        b.bind(compare)
        b.load(.word, .r3, from: .r6, offset: Int16(CFFSLayout.eUID))
        b.branch(.eq, .r5, .r3, to: yes)
        b.load(.word, .r3, from: .r1, offset: Int16(CFFSLayout.uid))
        b.branch(.eq, .r5, .r3, to: yes)
        b.bind(no)
        b.mov(.r0, 0)
        b.exit()
        b.bind(yes)
        b.mov(.r0, 1)
        b.exit()
    }

    /// Only directory entries move: a block of another type takes part in no move.
    mutating func denyMoves() {
        b.branch(.eq, .r9, .immediate(Int32(AclContext.Operation.moveOut.rawValue)), to: deny)
        b.branch(.eq, .r9, .immediate(Int32(AclContext.Operation.moveIn.rawValue)), to: deny)
    }

    /// A move (r9 the operation) takes or brings one whole entry, in an initialized
    /// directory block, by one who may write and search the directory; an entry brought
    /// in must have a valid name no other entry of the block has. (XN guarantees that the
    /// entry arrives as it left: the before block shows it landed; the after block's
    /// edits to it are checked below as any change to an entry is.) Anything else goes on.
    mutating func checkMove() {
        let move = b.makeLabel(), notMove = b.makeLabel()
        b.branch(.eq, .r9, .immediate(Int32(AclContext.Operation.moveOut.rawValue)), to: move)
        b.branch(.ne, .r9, .immediate(Int32(AclContext.Operation.moveIn.rawValue)), to: notMove)
        b.bind(move)
        b.load(.word, .r2, from: .r1, offset: Int16(CFFSLayout.magic))
        b.branch(.ne, .r2, .immediate(Int32(bitPattern: CFFSLayout.dirMagic)), to: deny)
        loadChangedRange()
        b.branch(.lt, .r6, .immediate(Int32(CFFSLayout.slotsStart)), to: deny)
        b.mov(.r2, .r7)
        b.alu(.sub, .r2, .r6)
        b.branch(.ne, .r2, .immediate(Int32(CFFSLayout.slotBytes)), to: deny)
        b.mov(.r2, .r6)
        b.alu(.sub, .r2, .immediate(Int32(CFFSLayout.slotsStart)))
        b.alu(.and, .r2, .immediate(Int32(CFFSLayout.slotBytes - 1)))
        b.branch(.ne, .r2, 0, to: deny)
        requireDirectoryWrite()
        b.load(.double, .r2, from: .r10, offset: -8)
        b.branch(.ne, .r2, .immediate(Int32(AclContext.Operation.moveIn.rawValue)), to: notMove)
        // The entry brought in: r8 its address, r6 its slot.
        b.mov(.r8, .r1)
        b.add(.r8, .r6)
        b.alu(.sub, .r6, .immediate(Int32(CFFSLayout.slotsStart)))
        b.alu(.rsh, .r6, 8)
        checkName()
        b.bind(notMove)
    }

    /// r6 = the first changed byte, r7 = one past the last.
    mutating func loadChangedRange() {
        b.load(.word, .r6, from: .r1, offset: Int16(AclContext.changeOffset))
        b.load(.word, .r7, from: .r1, offset: Int16(AclContext.changeOffset + 4))
        b.add(.r7, .r6)
    }

    /// Jumps to `differs` when the `size` bytes at `offset` from `base` differ between the
    /// before and after blocks. Uses r2, r3.
    mutating func ifChanged(_ base: Register, _ offset: Int, _ size: AccessSize, _ differs: Label) {
        b.load(size, .r2, from: base, offset: Int16(offset))
        b.load(size, .r3, from: base, offset: Int16(offset + AclContext.blockAfterOffset))
        b.branch(.ne, .r2, .r3, to: differs)
    }

    /// Jumps to `differs` when any 8-byte word from `start` to `end` past `base` differs
    /// between the before and after blocks. Uses r2-r4.
    mutating func ifWordsChanged(_ base: Register, from start: Int, to end: Int, _ differs: Label) {
        let loop = b.makeLabel(), same = b.makeLabel()
        b.mov(.r4, .immediate(Int32(start)))
        b.bind(loop)
        b.branch(.ge, .r4, .immediate(Int32(end)), to: same)
        b.mov(.r2, .register(base))
        b.add(.r2, .r4)
        b.load(.double, .r3, from: .r2, offset: CFFSUDFs.after)
        b.load(.double, .r2, from: .r2, offset: 0)
        b.branch(.ne, .r2, .r3, to: differs)
        b.add(.r4, 8)
        b.jump(to: loop)
        b.bind(same)
    }

    /// The rules of a stamp (a header's or an entry's uid, gid and mode at `base`): uid
    /// and gid (adjacent) change only by the superuser, mode by the superuser or the
    /// owner. Uses r2, r3.
    mutating func checkStamp(_ base: Register, uid: Int, mode: Int) {
        let ownership = b.makeLabel(), ownershipOK = b.makeLabel(), modeChanged = b.makeLabel(), modeOK = b.makeLabel()
        ifChanged(base, uid, .double, ownership)   // uid and gid together
        b.jump(to: ownershipOK)
        b.bind(ownership)
        ifSuperuser(ownershipOK)
        b.jump(to: deny)
        b.bind(ownershipOK)
        ifChanged(base, mode, .word, modeChanged)
        b.jump(to: modeOK)
        b.bind(modeChanged)
        ifSuperuser(modeOK)
        ifOwner(uidAt: base, offset: Int16(uid), modeOK)
        b.jump(to: deny)
        b.bind(modeOK)
    }

    /// The header's rules, when the change reaches it: uid and gid are the superuser's,
    /// mode the owner's; for a directory, anything else there (its next block, times)
    /// needs write on the directory.
    mutating func checkHeader(otherFieldsNeedDirectoryWrite: Bool) {
        let past = b.makeLabel()
        b.branch(.ge, .r6, .immediate(Int32(CFFSLayout.headerBytes)), to: past)
        checkStamp(.r1, uid: CFFSLayout.uid, mode: CFFSLayout.mode)
        if otherFieldsNeedDirectoryWrite {
            let others = b.makeLabel()
            for (offset, size) in [(0, AccessSize.double), (8, .double), (28, .word), (32, .double), (40, .double), (48, .double), (56, .double)] {
                ifChanged(.r1, offset, size, others)
            }
            b.jump(to: past)
            b.bind(others)
            requireDirectoryWrite()
        }
        b.bind(past)
    }

    /// Checks every slot the change reaches (r6..<r7, bytes): r6 and r7 become slot
    /// indexes, r8 each slot's address in the before block.
    mutating func checkSlots() {
        let clampedFirst = b.makeLabel(), clampedEnd = b.makeLabel(), loop = b.makeLabel(), next = b.makeLabel()
        let create = b.makeLabel(), remove = b.makeLabel(), existing = b.makeLabel()
        // first slot = max(first - 64, 0) / 256; end slot = min(ceil((end - 64) / 256), 15).
        b.branch(.ge, .r6, .immediate(Int32(CFFSLayout.slotsStart)), to: clampedFirst)
        b.mov(.r6, .immediate(Int32(CFFSLayout.slotsStart)))
        b.bind(clampedFirst)
        b.alu(.sub, .r6, .immediate(Int32(CFFSLayout.slotsStart)))
        b.alu(.rsh, .r6, 8)
        b.branch(.le, .r7, .immediate(Int32(CFFSLayout.slotsStart)), to: allow)
        b.alu(.sub, .r7, .immediate(Int32(CFFSLayout.slotsStart - CFFSLayout.slotBytes + 1)))
        b.alu(.rsh, .r7, 8)
        b.branch(.le, .r7, .immediate(Int32(CFFSLayout.slots)), to: clampedEnd)
        b.mov(.r7, .immediate(Int32(CFFSLayout.slots)))
        b.bind(clampedEnd)

        b.bind(loop)
        b.branch(.ge, .r6, .r7, to: allow)
        b.mov(.r2, .r6)
        b.alu(.lsh, .r2, 8)
        b.mov(.r8, .r1)
        b.add(.r8, .r2)
        b.add(.r8, .immediate(Int32(CFFSLayout.slotsStart)))
        b.load(.word, .r4, from: .r8, offset: Int16(CFFSLayout.eMode))
        b.load(.word, .r5, from: .r8, offset: CFFSUDFs.after + Int16(CFFSLayout.eMode))
        b.branch(.eq, .r4, 0, to: create)
        b.branch(.eq, .r5, 0, to: remove)
        b.jump(to: existing)

        b.bind(create)
        b.branch(.eq, .r5, 0, to: next)
        requireDirectoryWrite()
        requireCreator()
        requireSizeInBounds()
        checkName()
        b.jump(to: next)

        b.bind(remove)
        requireDirectoryWrite()
        requireStickyRight()
        b.jump(to: next)

        b.bind(existing)
        checkExistingEntry(renames: true, next: next)

        b.bind(next)
        b.add(.r6, 1)
        b.jump(to: loop)
    }

    /// The rules for a change to the entry at r8 (before block) that is there before and
    /// after: its type stays; its stamp by `checkStamp`; a new name (when `renames`, else
    /// denied) needs write on the directory; size, times and blocks need write on the file
    /// or its ownership, or for freeing blocks, as unlink does, write on the directory; a
    /// link entry changes nothing but its name. Jumps to `next` when allowed.
    mutating func checkExistingEntry(renames: Bool, next: Label) {
        b.load(.word, .r4, from: .r8, offset: Int16(CFFSLayout.eMode))
        b.load(.word, .r5, from: .r8, offset: CFFSUDFs.after + Int16(CFFSLayout.eMode))
        // The file's type never changes.
        b.alu(.xor, .r4, .r5)
        b.alu(.and, .r4, .immediate(Int32(FileMode.typeMask)))
        b.branch(.ne, .r4, 0, to: deny)
        checkStamp(.r8, uid: CFFSLayout.eUID, mode: CFFSLayout.eMode)
        // A new name: write on the directory, and a valid, unique name.
        let renamed = b.makeLabel(), nameOK = b.makeLabel()
        ifChanged(.r8, CFFSLayout.eNameLength, .byte, renamed)
        ifWordsChanged(.r8, from: CFFSLayout.eName, to: CFFSLayout.slotBytes, renamed)
        b.jump(to: nameOK)
        b.bind(renamed)
        if renames {
            requireDirectoryWrite()
            requireStickyRight()
            checkName()
        } else {
            b.jump(to: deny)
        }
        b.bind(nameOK)
        // Size, times, blocks, link count: write on the file, or its owner (utimes).
        let contents = b.makeLabel()
        ifChanged(.r8, CFFSLayout.eNlink, .half, contents)
        ifChanged(.r8, CFFSLayout.eFlags, .byte, contents)
        ifWordsChanged(.r8, from: CFFSLayout.eSize, to: CFFSLayout.eName, contents)
        b.jump(to: next)
        b.bind(contents)
        // A link entry keeps its inode block for good.
        b.load(.word, .r2, from: .r8, offset: Int16(CFFSLayout.eMode))
        b.alu(.and, .r2, .immediate(Int32(FileMode.typeMask)))
        b.branch(.eq, .r2, .immediate(Int32(FileMode.link)), to: deny)
        // No size past what the layout can address (a reader trusts none, but no writer
        // may leave one either).
        requireSizeInBounds()
        ifOwner(uidAt: .r8, offset: Int16(CFFSLayout.eUID), next)
        // Anyone else needs write on the file, whatever the operation: freeing a file's
        // blocks while its entry stays is truncating it (unlink frees them in the change
        // that clears the entry, which the directory's rules allow). A symbolic link's
        // contents are its owner's alone: its mode, 0777, grants nothing.
        ifSuperuser(next)
        b.load(.word, .r2, from: .r8, offset: Int16(CFFSLayout.eMode))
        b.alu(.and, .r2, .immediate(Int32(FileMode.typeMask)))
        b.branch(.eq, .r2, .immediate(Int32(FileMode.symlink)), to: deny)
        permission(of: .r8, header: false)
        b.emit(.branch(.set, .bits64, .r0, .immediate(2), offset: 0), to: next)
        b.jump(to: deny)
    }

    /// Denies unless the after slot at r8 (index r6) has a valid name no other slot of the
    /// after block has. Clobbers r2-r5; r1 is reloaded.
    mutating func checkName() {
        b.mov(.r2, .r8)
        b.mov(.r3, .r6)
        b.load(.double, .r1, from: .r10, offset: Self.savedContext)
        b.call(nameFunction)
        b.load(.double, .r1, from: .r10, offset: Self.savedContext)
        b.branch(.eq, .r0, 0, to: deny)
        usesName = true
    }

    /// The name function: r1 the context, r2 the slot's address in the before block, r3
    /// its index; r0 1 when the after slot's name is valid and unique in the after block.
    private mutating func emitNameFunction() {
        let after = CFFSUDFs.after
        let name = Int16(CFFSLayout.eName)
        let bad = b.makeLabel()
        b.bind(nameFunction)
        b.mov(.r8, .r2)
        b.mov(.r6, .r3)
        let bytes = b.makeLabel(), bytesDone = b.makeLabel(), notDot = b.makeLabel()
        b.load(.byte, .r5, from: .r8, offset: after + Int16(CFFSLayout.eNameLength))
        b.branch(.eq, .r5, 0, to: bad)
        b.branch(.gt, .r5, .immediate(Int32(CFFSLayout.nameBytesMax)), to: bad)
        // No NUL or '/'.
        b.mov(.r3, 0)
        b.bind(bytes)
        b.branch(.ge, .r3, .r5, to: bytesDone)
        b.mov(.r2, .r8)
        b.add(.r2, .r3)
        b.load(.byte, .r0, from: .r2, offset: after + name)
        b.branch(.eq, .r0, 0, to: bad)
        b.branch(.eq, .r0, 0x2f, to: bad)
        b.add(.r3, 1)
        b.jump(to: bytes)
        b.bind(bytesDone)
        // Not "." or "..".
        b.load(.byte, .r0, from: .r8, offset: after + name)
        b.branch(.ne, .r0, 0x2e, to: notDot)
        b.branch(.eq, .r5, 1, to: bad)
        b.branch(.ne, .r5, 2, to: notDot)
        b.load(.byte, .r0, from: .r8, offset: after + name + 1)
        b.branch(.eq, .r0, 0x2e, to: bad)
        b.bind(notDot)
        // Unique: compare with every other used slot of the after block.
        let others = b.makeLabel(), skip = b.makeLabel(), compare = b.makeLabel(), done = b.makeLabel()
        b.mov(.r9, 0)
        b.mov(.r4, .r1)
        b.add(.r4, .immediate(Int32(CFFSLayout.slotsStart)))
        b.bind(others)
        b.branch(.ge, .r9, .immediate(Int32(CFFSLayout.slots)), to: done)
        b.branch(.eq, .r9, .r6, to: skip)
        b.load(.word, .r0, from: .r4, offset: after + Int16(CFFSLayout.eMode))
        b.branch(.eq, .r0, 0, to: skip)
        b.load(.byte, .r0, from: .r4, offset: after + Int16(CFFSLayout.eNameLength))
        b.branch(.ne, .r0, .r5, to: skip)
        b.mov(.r3, 0)
        b.bind(compare)
        b.branch(.ge, .r3, .r5, to: bad)
        b.mov(.r2, .r8)
        b.add(.r2, .r3)
        b.load(.byte, .r0, from: .r2, offset: after + name)
        b.mov(.r2, .r4)
        b.add(.r2, .r3)
        b.load(.byte, .r2, from: .r2, offset: after + name)
        b.branch(.ne, .r0, .r2, to: skip)
        b.add(.r3, 1)
        b.jump(to: compare)
        b.bind(skip)
        b.add(.r9, 1)
        b.add(.r4, .immediate(Int32(CFFSLayout.slotBytes)))
        b.jump(to: others)
        b.bind(done)
        b.mov(.r0, 1)
        b.exit()
        b.bind(bad)
        b.mov(.r0, 0)
        b.exit()
    }
}
