// Every XN call × every error it returns. Each row builds a volume, makes one call that
// must fail with exactly that error, and checks nothing changed: the disk reads the same,
// and the block the call named has the same cached contents and dirtiness.

import BPF
import Testing
import XN
import XokABI
import XokSimulation

struct XNErrorCase: CustomTestStringConvertible, Sendable {
    var call: String
    var error: XNError
    var why: String
    /// Sets up, and returns the block whose cache entry must not change and the call.
    var make: @Sendable (Volume) throws -> (BlockNumber?, () throws(XNError) -> Void)
    var testDescription: String { "\(call) → \(error): \(why)" }
}

/// A template whose `owns` runs out of budget when the block's first byte is nonzero.
let spinningOwns: [UInt8] = try! Assembler.assemble("""
    ldxb %r5, [%r1]
    mov %r0, 0
    jeq %r5, 0, +2
    add %r5, 1
    ja -2
    exit
    """).bytes
let allowAll: [UInt8] = try! Assembler.assemble("mov %r0, 1\nexit").bytes
let zeroSize: [UInt8] = try! Assembler.assemble("mov %r0, 0\nexit").bytes

func slot(_ n: Int) -> Int { TreeFormat.entriesStart + n * TreeFormat.entryBytes }

/// Raises a tree node's high-water mark over every slot, so an entry written by hand counts.
let everySlot = treeFormat.highWater(TreeFormat.entries)

let xnErrorCases: [XNErrorCase] = [
    XNErrorCase(call: "installTemplate", error: .templateRejected("owns: rejected at instruction 0"), why: "owns reads past the block") { v in
        let bad = try Assembler.assemble("ldxb %r0, [%r1+4096]\nexit").bytes
        return (nil, { () throws(XNError) in _ = try v.xn.installTemplate(name: "bad", owns: bad, acl: allowAll, size: zeroSize) }) },
    XNErrorCase(call: "installTemplate", error: .nameTaken, why: "name in use") { v in
        (nil, { () throws(XNError) in _ = try v.xn.installTemplate(name: "tree", owns: treeFormat.owns, acl: allowAll, size: zeroSize) }) },
    XNErrorCase(call: "installTemplate", error: .catalogueFull, why: "31 types installed") { v in
        for i in 0..<(XNLayout.typesMax - 3) { _ = try v.xn.installTemplate(name: "t\(i)", owns: treeFormat.owns, acl: allowAll, size: zeroSize) }
        return (nil, { () throws(XNError) in _ = try v.xn.installTemplate(name: "one more", owns: treeFormat.owns, acl: allowAll, size: zeroSize) }) },
    XNErrorCase(call: "createRoot", error: .unknownType, why: "type never installed") { v in
        (nil, { () throws(XNError) in _ = try v.xn.createRoot(name: "x", type: TypeID(rawValue: 9), capability: v.a.credential, by: envA) }) },
    XNErrorCase(call: "createRoot", error: .unknownType, why: "the data type") { v in
        (nil, { () throws(XNError) in _ = try v.xn.createRoot(name: "x", type: .data, capability: v.a.credential, by: envA) }) },
    XNErrorCase(call: "createRoot", error: .nameTaken, why: "name in use") { v in
        (nil, { () throws(XNError) in _ = try v.xn.createRoot(name: "a", type: v.a.type, capability: v.a.credential, by: envA) }) },
    XNErrorCase(call: "createRoot", error: .catalogueFull, why: "32 roots") { v in
        for i in 2..<XNLayout.rootsMax { _ = try v.xn.createRoot(name: "r\(i)", type: v.a.type, capability: v.a.credential, by: envA) }
        return (nil, { () throws(XNError) in _ = try v.xn.createRoot(name: "x", type: v.a.type, capability: v.a.credential, by: envA) }) },
    XNErrorCase(call: "createRoot", error: .noSpace, why: "disk full") { v in
        var parent = v.rootA, children = 0
        while let b = v.xn.firstFree(from: 0) {
            if children == 250 {
                parent = try v.a.add(v.xn, under: v.rootA, type: v.a.type)
                children = 0
                continue
            }
            _ = try v.a.add(v.xn, under: parent, type: .data, hint: b)
            children += 1
        }
        return (nil, { () throws(XNError) in _ = try v.xn.createRoot(name: "x", type: v.a.type, capability: v.a.credential, by: envA) }) },
    XNErrorCase(call: "root", error: .noSuchRoot, why: "never created") { v in
        (nil, { () throws(XNError) in _ = try v.xn.root(named: "nope") }) },
    XNErrorCase(call: "modify", error: .notMetadata, why: "a free block") { v in
        let free = v.xn.firstFree(from: 0)!
        return (nil, { () throws(XNError) in try v.xn.modify(free, [], operation: .write, credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .notMetadata, why: "a data block") { v in
        let data = try v.a.add(v.xn, under: v.rootA, type: .data)
        return (data, { () throws(XNError) in try v.xn.modify(data, [], operation: .write, credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .notOwner, why: "another environment initializes a fresh block") { v in
        let child = v.xn.firstFree(from: 0)!
        try v.xn.modify(v.rootA, [Modification(offset: slot(0), bytes: TreeClient<Disk>.entry(child, v.a.type)), treeFormat.highWater(1)],
                        operation: .allocate(child, v.a.type), credential: v.a.credential, by: envA)
        return (child, { () throws(XNError) in try v.xn.modify(child, [v.a.stamp], operation: .write, credential: v.a.credential, by: envB) }) },
    XNErrorCase(call: "modify", error: .badModification, why: "past the block's end") { v in
        (v.rootA, { () throws(XNError) in try v.xn.modify(v.rootA, [Modification(offset: 4090, bytes: [1, 2, 3, 4, 5, 6, 7])], operation: .write, credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .badModification, why: "negative offset") { v in
        (v.rootA, { () throws(XNError) in try v.xn.modify(v.rootA, [Modification(offset: -1, bytes: [1])], operation: .write, credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .aclDenied, why: "another file system's block") { v in
        (v.rootA, { () throws(XNError) in try v.xn.modify(v.rootA, [Modification(offset: 100, bytes: [1])], operation: .write, credential: v.b.credential, by: envB) }) },
    XNErrorCase(call: "modify", error: .aclDenied, why: "changing the owner stamp") { v in
        (v.rootA, { () throws(XNError) in try v.xn.modify(v.rootA, [Modification(offset: 0, bytes: [9])], operation: .write, credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .udfFailed("owns: ran out of its budget of 65536 instructions"), why: "owns never ends on this content") { v in
        let spin = try v.xn.installTemplate(name: "spin", owns: spinningOwns, acl: allowAll, size: zeroSize)
        let root = try v.xn.createRoot(name: "spin", type: spin, capability: v.a.credential, by: envA)
        return (root, { () throws(XNError) in try v.xn.modify(root, [Modification(offset: 0, bytes: [1])], operation: .write, credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .invalidPointer, why: "a pointer into XN's own structures") { v in
        (v.rootA, { () throws(XNError) in try v.xn.modify(v.rootA, [Modification(offset: slot(3), bytes: TreeClient<Disk>.entry(1, .data)), everySlot], operation: .write, credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .invalidPointer, why: "a pointer of an unknown type") { v in
        let free = v.xn.firstFree(from: 0)!
        return (v.rootA, { () throws(XNError) in try v.xn.modify(v.rootA, [Modification(offset: slot(3), bytes: TreeClient<Disk>.entry(free, TypeID(rawValue: 30))), everySlot], operation: .write, credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .pointerInvented, why: "a write adds a pointer") { v in
        let free = v.xn.firstFree(from: 0)!
        return (v.rootA, { () throws(XNError) in try v.xn.modify(v.rootA, [Modification(offset: slot(3), bytes: TreeClient<Disk>.entry(free, .data)), everySlot], operation: .write, credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .pointerLost, why: "a write drops a pointer") { v in
        _ = try v.a.add(v.xn, under: v.rootA, type: .data)
        return (v.rootA, { () throws(XNError) in try v.xn.modify(v.rootA, [Modification(offset: slot(0), bytes: [UInt8](repeating: 0, count: 16))], operation: .write, credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .pointerInvented, why: "an allocation adds two pointers") { v in
        let one = v.xn.firstFree(from: 0)!, two = v.xn.firstFree(from: one + 1)!
        return (v.rootA, { () throws(XNError) in
            try v.xn.modify(v.rootA, [Modification(offset: slot(0), bytes: TreeClient<Disk>.entry(one, .data)), Modification(offset: slot(1), bytes: TreeClient<Disk>.entry(two, .data)), everySlot],
                            operation: .allocate(one, .data), credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .pointerLost, why: "an allocation that adds nothing") { v in
        let one = v.xn.firstFree(from: 0)!
        return (v.rootA, { () throws(XNError) in try v.xn.modify(v.rootA, [], operation: .allocate(one, .data), credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .notFree, why: "allocating another's block") { v in
        (v.rootA, { () throws(XNError) in try v.xn.modify(v.rootA, [Modification(offset: slot(0), bytes: TreeClient<Disk>.entry(v.rootB, v.b.type))], operation: .allocate(v.rootB, v.b.type), credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .unknownType, why: "allocating an unknown type") { v in
        let one = v.xn.firstFree(from: 0)!
        return (v.rootA, { () throws(XNError) in try v.xn.modify(v.rootA, [Modification(offset: slot(0), bytes: TreeClient<Disk>.entry(one, TypeID(rawValue: 20)))], operation: .allocate(one, TypeID(rawValue: 20)), credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .notAChild, why: "freeing a block it does not point to") { v in
        (v.rootA, { () throws(XNError) in try v.xn.modify(v.rootA, [], operation: .free(v.rootB), credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "modify", error: .notEmpty, why: "freeing a node that still has children") { v in
        let dir = try v.a.add(v.xn, under: v.rootA, type: v.a.type)
        _ = try v.a.add(v.xn, under: dir, type: .data)
        return (v.rootA, { () throws(XNError) in try v.a.remove(v.xn, dir, from: v.rootA) }) },
    XNErrorCase(call: "writeData", error: .notData, why: "a metadata block") { v in
        (v.rootA, { () throws(XNError) in try v.xn.writeData(v.rootA, offset: 0, bytes: [1], credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "writeData", error: .badModification, why: "past the block's end") { v in
        let data = try v.a.add(v.xn, under: v.rootA, type: .data)
        return (data, { () throws(XNError) in try v.xn.writeData(data, offset: 4095, bytes: [1, 2], credential: v.a.credential, by: envA) }) },
    XNErrorCase(call: "writeData", error: .aclDenied, why: "another file system's data") { v in
        let data = try v.a.add(v.xn, under: v.rootA, type: .data)
        return (data, { () throws(XNError) in try v.xn.writeData(data, offset: 0, bytes: [1], credential: v.b.credential, by: envB) }) },
    XNErrorCase(call: "writeData", error: .notOwner, why: "a fresh data block written by another environment with the owner's name") { v in
        let data = try v.a.add(v.xn, under: v.rootA, type: .data)
        return (data, { () throws(XNError) in try v.xn.writeData(data, offset: 0, bytes: [1], credential: v.a.credential, by: envB) }) },
    XNErrorCase(call: "read", error: .notMetadata, why: "a free block") { v in
        let free = v.xn.firstFree(from: 0)!
        return (nil, { () throws(XNError) in _ = try v.xn.read(free, credential: v.a.credential) }) },
    XNErrorCase(call: "read", error: .aclDenied, why: "another file system's root") { v in
        (v.rootA, { () throws(XNError) in _ = try v.xn.read(v.rootA, credential: v.b.credential) }) },
    XNErrorCase(call: "read", error: .aclDenied, why: "another file system's block") { v in
        let dir = try v.a.add(v.xn, under: v.rootA, type: v.a.type)
        return (dir, { () throws(XNError) in _ = try v.xn.read(dir, credential: v.b.credential) }) },
    XNErrorCase(call: "writeback", error: .notOwner, why: "another environment's dirty block") { v in
        try v.xn.modify(v.rootA, [Modification(offset: 200, bytes: [1])], operation: .write, credential: v.a.credential, by: envA)
        return (v.rootA, { () throws(XNError) in try v.xn.writeback([v.rootA], by: envB) }) },
    XNErrorCase(call: "writeback", error: .tainted, why: "a parent of unwritten metadata") { v in
        _ = try v.a.add(v.xn, under: v.rootA, type: v.a.type)
        return (v.rootA, { () throws(XNError) in try v.xn.writeback([v.rootA], by: envA) }) },
]

@Suite struct XNCallErrors {
    @Test(arguments: xnErrorCases)
    func callFailsWithItsErrorAndChangesNothing(_ c: XNErrorCase) throws {
        let v = try Volume(blocks: 700)
        let (block, call) = try c.make(v)
        let disk = v.xn.device.snapshot
        let entry = block.flatMap { v.xn.registryEntry($0) }
        do {
            try call()
            Issue.record("no error")
        } catch {
            switch (error, c.error) {
            case (.templateRejected(let got), .templateRejected(let want)), (.udfFailed(let got), .udfFailed(let want)):
                #expect(got.hasPrefix(want), "\(got)")
            default:
                #expect(error == c.error)
            }
        }
        #expect(v.xn.device.snapshot == disk, "the disk changed")
        if let block {
            #expect(v.xn.registryEntry(block)?.contents == entry?.contents)
            #expect(v.xn.registryEntry(block)?.dirty == entry?.dirty)
        }
    }

    @Test func everyCallAndErrorIsCovered() {
        #expect(Set(xnErrorCases.map(\.call)) == ["installTemplate", "createRoot", "root", "modify", "writeData", "read", "writeback"])
        func name(_ e: XNError) -> Substring { "\(e)".split(separator: ":")[0] }
        // Every error but those of mount and format (notXN, corruptImage, deviceTooSmall,
        // device), which the attack and fsck suites cover.
        let calls: [XNError] = [.templateRejected(""), .unknownType, .catalogueFull, .nameTaken, .noSuchRoot, .notMetadata, .notData,
                                .badModification, .aclDenied, .udfFailed(""), .invalidPointer, .pointerInvented, .pointerLost,
                                .notFree, .notEmpty, .notAChild, .notOwner, .tainted, .noSpace]
        #expect(Set(xnErrorCases.map { name($0.error) }) == Set(calls.map(name)))
    }
}
