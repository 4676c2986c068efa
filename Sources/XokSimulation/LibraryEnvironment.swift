// How a trusted harness (a test, the simulation, the CLI's benchmarks) starts a library
// file system's environment: init derives the capabilities it needs and creates a child
// holding them, with a quota out of init's share. Everything afterwards goes through the
// child's port.

import TreeFS
import TreeFSUDFs
import Xok
import XokABI

/// Slots of a library environment made by `LibraryEnvironment.make`.
public enum LibrarySlot {
    /// `[ownerID]`, every right: its own files.
    public static let own = CapabilitySlot(0)
    /// `[2]` write: frames; `[6]` write: XN roots; `[5]` write: XN types.
    public static let frames = CapabilitySlot(1)
    public static let roots = CapabilitySlot(2)
    public static let types = CapabilitySlot(3)
    /// The tree client's view of them.
    public static let tree = TreeSlots(own: own, frames: frames, roots: roots)
}

public enum LibraryEnvironment {
    /// A `1/parts` share of what init has left: frames, disk blocks and catalogue
    /// entries, and a few regions, a slice and some messages.
    public static func share<H: Host>(of kernel: Kernel<H>, parts: Int = 4) -> Quota {
        guard let (quota, used) = kernel.quota(of: kernel.initEnvironment), let left = quota.subtracting(used) else { return .none }
        let n = UInt32(max(1, parts))
        return Quota(environments: 0, frames: left.frames / n, regions: min(4, left.regions / n), slices: min(1, left.slices / n),
                     messages: min(16, left.messages / n), blocks: left.blocks / UInt64(n), catalogueEntries: min(8, left.catalogueEntries / n))
    }

    /// A new environment, child of init, protected by `[ownerID]`, holding the slots of
    /// `LibrarySlot`.
    public static func make<H: Host>(_ kernel: Kernel<H>, ownerID: UInt64, quota: Quota) throws(KernelError) -> LocalPort<H> {
        let root = LocalPort(kernel: kernel, environment: kernel.initEnvironment)
        var grants: [CapabilitySlot] = []
        defer { for slot in grants { try? root.drop(slot) } }
        grants.append(try root.derive(CapabilitySlot(0), appending: [ownerID], rights: .all))
        for name in [SystemACLs.framesName, SystemACLs.rootsName, SystemACLs.typesName] {
            grants.append(try root.derive(CapabilitySlot(0), appending: [name], rights: [.write, .grant]))
        }
        let acl = try AccessControlList([try Capability(name: [ownerID], rights: .write)])
        let id = try root.createEnvironment(credential: CapabilitySlot(0), acl: acl, grants: grants, quota: quota)
        return LocalPort(kernel: kernel, environment: id)
    }

    /// A tree client in a new environment, its format installed.
    /// Its quota is `quota`, or a quarter of what init has left.
    public static func treeClient<H: Host>(_ kernel: Kernel<H>, ownerID: UInt64, format: TreeFormat,
                                           quota: Quota? = nil) throws(KernelError) -> TreeClient<LocalPort<H>> {
        let port = try make(kernel, ownerID: ownerID, quota: quota ?? share(of: kernel))
        let frameACL = try AccessControlList([try Capability(name: [ownerID], rights: .all)])
        let type = try format.install(through: port, udfs: format.udfs, slots: LibrarySlot.tree, types: LibrarySlot.types, frameACL: frameACL)
        return TreeClient(port: port, ownerID: ownerID, format: format, type: type, slots: LibrarySlot.tree)
    }
}
