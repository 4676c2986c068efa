// A small world for kernel tests: a kernel with a simulated disk, init (holding the root
// capability) and two children, `a` and `b`, each holding one capability per system ACL
// and a weak one, with a quota of `World.childQuota`.

import BPF
import Testing
import TreeFS
import TreeFSUDFs
import Xok
import XokABI
import XokSimulation

/// Slots every child starts with.
enum Slot {
    static let frames = CapabilitySlot(0)       // [2] write: may allocate frames
    static let regions = CapabilitySlot(1)      // [3] write: may create regions
    static let environments = CapabilitySlot(2) // [1] write: may create environments
    static let slices = CapabilitySlot(3)       // [4] write: may take slices
    static let weak = CapabilitySlot(4)         // [9] read only: passes nothing by default
    static let own = CapabilitySlot(5)          // [100 + n] all rights: the child's own name
    static let types = CapabilitySlot(6)        // [5] write: may install XN types
    static let roots = CapabilitySlot(7)        // [6] write: may create XN roots
    static let empty = CapabilitySlot(10)
    static let outOfRange = CapabilitySlot(KernelLimits.capabilitySlots)
}

func capability(_ name: [UInt64], _ rights: Rights) -> Capability { try! Capability(name: name, rights: rights) }
func acl(_ entries: Capability...) -> AccessControlList { try! AccessControlList(entries) }

/// A kernel with init and two children.
final class World {
    let kernel: Kernel<SimulatedHost>
    let root: LocalPort<SimulatedHost>
    let a: LocalPort<SimulatedHost>
    let b: LocalPort<SimulatedHost>

    /// What each child may hold: a third of the frames, at most 100.
    let childQuota: Quota

    /// 300 frames: a third for each child, a third for init; a 512-block disk.
    init(frames: Int = 300, diskBlocks: UInt64 = 512) {
        let kernel = Kernel(host: SimulatedHost(frameCount: frames))
        if diskBlocks > 0 { try! kernel.mountDisk(SimulatedDisk(blockCount: diskBlocks, seed: 1), format: true) }
        let childQuota = Quota(environments: 16, frames: UInt32(min(frames / 3, 100)), regions: 16, slices: 4, messages: 64,
                               blocks: diskBlocks > 0 ? 40 : 0, catalogueEntries: diskBlocks > 0 ? 4 : 0)
        self.childQuota = childQuota
        let root = LocalPort(kernel: kernel, environment: kernel.initEnvironment)
        self.kernel = kernel
        self.root = root
        func child(_ n: UInt64) -> LocalPort<SimulatedHost> {
            // init derives each capability (with grant, so it can pass them on) and
            // creates the child with them.
            let grants = try! [[SystemACLs.framesName], [SystemACLs.regionsName], [SystemACLs.environmentsName],
                               [SystemACLs.slicesName], [9]].map { name in
                try root.derive(CapabilitySlot(0), appending: name, rights: name == [9] ? [.read, .grant] : [.write, .grant])
            } + [try! root.derive(CapabilitySlot(0), appending: [100 + n], rights: .all)]
              + [SystemACLs.typesName, SystemACLs.rootsName].map { try! root.derive(CapabilitySlot(0), appending: [$0], rights: [.write, .grant]) }
            let id = try! root.createEnvironment(credential: CapabilitySlot(0), acl: acl(capability([100 + n], .write)), grants: grants,
                                                 quota: childQuota)
            for slot in grants { try! root.drop(slot) }
            return LocalPort(kernel: kernel, environment: id)
        }
        let a = child(1), b = child(2)
        self.a = a
        self.b = b
    }

    /// An ACL that the child's own capability passes with every right.
    func ownACL(_ port: LocalPort<SimulatedHost>) -> AccessControlList {
        acl(capability([100 + (port === a ? 1 : 2)], .all))
    }

    func port(_ id: EnvironmentID) -> LocalPort<SimulatedHost> { LocalPort(kernel: kernel, environment: id) }

    /// A frame owned by `port`, protected by its own name.
    func frame(of port: LocalPort<SimulatedHost>) throws -> FrameNumber {
        try port.allocateFrame(credential: Slot.frames, acl: ownACL(port))
    }

    /// A frame `a` owns (all rights) that `b` may map read-only, and has mapped.
    func frameSharedWithB() throws -> FrameNumber {
        let f = try frame(of: a)
        try a.setACL(acl(capability([101], .all), capability([102], .read)), of: f, credential: Slot.own)
        try b.map(f, writable: false, credential: Slot.own)
        return f
    }

    /// A region owned by `port`, protected by its own name.
    func region(of port: LocalPort<SimulatedHost>, size: Int = 64) throws -> RegionID {
        try port.createRegion(size: size, acl: ownACL(port), credential: Slot.regions)
    }

    /// Every upcall waiting for `port`.
    func upcalls(_ port: LocalPort<SimulatedHost>) throws -> [Upcall] {
        var all: [Upcall] = []
        while let u = try port.nextUpcall() { all.append(u) }
        return all
    }

    func expectConsistent(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(kernel.checkInvariants() == [], sourceLocation: sourceLocation)
    }

    /// A tree file system for `port`, its format installed, named by the child's own
    /// capability.
    func tree(_ port: LocalPort<SimulatedHost>, format: TreeFormat = TreeFormat(name: "tree", ownerOffset: 0)) throws -> TreeClient<LocalPort<SimulatedHost>> {
        let owner: UInt64 = port === a ? 101 : 102
        let slots = TreeSlots(own: Slot.own, frames: Slot.frames, roots: Slot.roots)
        let type = try format.install(through: port, udfs: format.udfs, slots: slots, types: Slot.types, frameACL: ownACL(port))
        return TreeClient(port: port, ownerID: owner, format: format, type: type, slots: slots)
    }
}

/// A wakeup predicate program from assembly.
func predicate(_ text: String) -> [UInt8] { try! Assembler.assemble(text).bytes }
