// A disk with XN and two tree file systems (different layouts, different owners).

import Testing
import XN
import XokABI
import XokSimulation

typealias Disk = SimulatedDisk
let envA = EnvironmentID(rawValue: 1), envB = EnvironmentID(rawValue: 2)
let treeFormat = TreeFormat(name: "tree", ownerOffset: 0)
let listFormat = TreeFormat(name: "list", ownerOffset: 8)

/// XN on a fresh simulated disk, with `a` (tree format, owner 1, root "a") and `b` (list
/// format, owner 2, root "b"); both roots written back.
final class Volume {
    var xn: XN<Disk>
    let a: TreeClient<Disk>
    let b: TreeClient<Disk>
    var rootA: BlockNumber
    var rootB: BlockNumber

    init(blocks: UInt64 = 1024, seed: UInt64 = 1) throws {
        xn = try XN.format(Disk(blockCount: blocks, seed: seed))
        a = TreeClient(environment: envA, ownerID: 1, format: treeFormat, type: try treeFormat.install(on: xn))
        b = TreeClient(environment: envB, ownerID: 2, format: listFormat, type: try listFormat.install(on: xn))
        rootA = try a.createRoot(xn, name: "a")
        rootB = try b.createRoot(xn, name: "b")
        try xn.writeback([rootA], by: envA)
        try xn.writeback([rootB], by: envB)
    }

    /// Unmounts and mounts again.
    func remount() throws {
        xn = try XN.mount(try xn.unmount())
    }

    /// fsck of the current device (without unmounting).
    var check: CheckReport { XN.check(xn.device) }
}
