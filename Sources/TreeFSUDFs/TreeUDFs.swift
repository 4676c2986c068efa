// The tree file system's UDFs, built with the BPF builder: kept apart from the file
// system itself, which imports only `XokABI`, as a library file system would ship its
// UDFs' bytecode.

import BPF
import TreeFS
import XokABI

extension TreeFormat {
    /// The three UDFs, as bytecode for `install`.
    public var udfs: TreeUDFs { TreeUDFs(owns: owns, acl: acl, size: size) }

    /// `owns`: every nonzero entry below the high-water mark, as (block, type). Unrolled
    /// five entries a turn (so the mark counts in fives), r9 walking the output area.
    public var owns: [UInt8] {
        let perTurn = 5
        var b = ProgramBuilder()
        let loop = b.makeLabel(), done = b.makeLabel(), clamped = b.makeLabel()
        b.mov(.r0, 0)
        b.mov(.r9, .r3)
        // r2: the byte offset where the scan stops, 16 + 16 × min(mark, 255).
        b.load(.word, .r2, from: .r1, offset: Int16(highWaterOffset))
        b.branch(.le, .r2, .immediate(Int32(Self.entries)), to: clamped)
        b.mov(.r2, .immediate(Int32(Self.entries)))
        b.bind(clamped)
        b.alu(.lsh, .r2, 4)
        b.add(.r2, .immediate(Int32(Self.entriesStart)))
        b.mov(.r6, .immediate(Int32(Self.entriesStart)))
        b.bind(loop)
        b.branch(.ge, .r6, .r2, to: done)
        b.mov(.r4, .r1)
        b.add(.r4, .r6)
        for k in 0..<perTurn {
            let skip = b.makeLabel()
            b.load(.double, .r5, from: .r4, offset: Int16(k * Self.entryBytes))
            b.branch(.eq, .r5, 0, to: skip)
            b.load(.double, .r7, from: .r4, offset: Int16(k * Self.entryBytes + 8))
            b.store(.double, to: .r9, offset: 0, .r5)
            b.store(.double, to: .r9, offset: 8, .r7)
            b.add(.r9, .immediate(Int32(Self.entryBytes)))
            b.add(.r0, 1)
            b.bind(skip)
        }
        b.add(.r6, .immediate(Int32(perTurn * Self.entryBytes)))
        b.branch(.lt, .r6, .immediate(Int32(KernelLimits.pageBytes)), to: loop)
        b.bind(done)
        b.exit()
        return try! b.build().bytes
    }

    /// `acl`: a block stamped with an owner may be read (read right) or changed (write
    /// right) only by a credential whose first name component is that owner, and the stamp
    /// may not change; a fresh block (owner 0) may only be stamped by its new owner.
    public var acl: [UInt8] {
        let credential = Int16(AclContext.credentialOffset)
        let owner = Int16(ownerOffset), ownerAfter = Int16(AclContext.blockAfterOffset + ownerOffset)
        var b = ProgramBuilder()
        let deny = b.makeLabel(), allow = b.makeLabel(), owned = b.makeLabel(), reading = b.makeLabel()
        b.load(.word, .r2, from: .r1, offset: Int16(AclContext.operationOffset))
        // A tree node guards itself: passing through one to reach another needs nothing.
        b.branch(.eq, .r2, .immediate(Int32(AclContext.Operation.traverse.rawValue)), to: allow)
        b.load(.double, .r3, from: .r1, offset: credential + 8)
        b.branch(.eq, .r3, 0, to: deny)
        b.load(.double, .r4, from: .r1, offset: credential + 16)
        b.load(.double, .r5, from: .r1, offset: credential)
        b.load(.double, .r6, from: .r1, offset: owner)
        b.branch(.ne, .r6, 0, to: owned)
        b.load(.double, .r7, from: .r1, offset: ownerAfter)
        b.branch(.ne, .r7, .r4, to: deny)
        b.emit(.branch(.set, .bits64, .r5, .immediate(Int32(Rights.write.rawValue)), offset: 0), to: allow)
        b.jump(to: deny)
        b.bind(owned)
        b.branch(.ne, .r6, .r4, to: deny)
        b.branch(.eq, .r2, .immediate(Int32(AclContext.Operation.read.rawValue)), to: reading)
        b.load(.double, .r7, from: .r1, offset: ownerAfter)
        b.branch(.ne, .r7, .r6, to: deny)
        b.emit(.branch(.set, .bits64, .r5, .immediate(Int32(Rights.write.rawValue)), offset: 0), to: allow)
        b.jump(to: deny)
        b.bind(reading)
        b.emit(.branch(.set, .bits64, .r5, .immediate(Int32(Rights.read.rawValue)), offset: 0), to: allow)
        b.bind(deny)
        b.mov(.r0, 0)
        b.exit()
        b.bind(allow)
        b.mov(.r0, 1)
        b.exit()
        return try! b.build().bytes
    }

    /// `size`: a node is one block.
    public var size: [UInt8] {
        var b = ProgramBuilder()
        b.mov(.r0, .immediate(Int32(KernelLimits.pageBytes)))
        b.exit()
        return try! b.build().bytes
    }

}
