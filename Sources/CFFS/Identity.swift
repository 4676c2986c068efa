// Who a C-FFS client acts as: a uid and groups, each held as a capability in the
// environment's list (CFFSNames), as its parent granted them. C-FFS picks, for each
// access, the credential of the class that applies — as access(2) does — and its UDFs
// check the same rule in the kernel.

import XokABI

/// The capability slots of a C-FFS client and the user and groups they stand for.
public struct CFFSIdentity: Sendable {
    public var uid: UInt32
    public var gid: UInt32
    /// Supplementary groups, with the slot holding each one's capability.
    public var groupSlots: [UInt32: CapabilitySlot]
    /// `[tag, 1, uid]` (or `[tag]` for uid 0) with read and write.
    public var userSlot: CapabilitySlot
    /// `[tag, 0]`, which the XN root's capability is: reading the superblock.
    public var mountSlot: CapabilitySlot
    /// One that passes the kernel's frame ACL.
    public var frameSlot: CapabilitySlot

    /// The ACL of the frames this client allocates: its own user capability.
    public let frameACL: AccessControlList

    /// - Throws: nothing in practice (a one-entry ACL of a three-component name is within
    ///   every limit); typed so no trap is needed.
    public init(uid: UInt32, gid: UInt32, userSlot: CapabilitySlot, groupSlots: [UInt32: CapabilitySlot] = [:],
                mountSlot: CapabilitySlot, frameSlot: CapabilitySlot) throws(KernelError) {
        let name = uid == 0 ? CFFSNames.superuser : CFFSNames.user(uid)
        frameACL = try AccessControlList([try Capability(name: name, rights: [.read, .write])])
        self.uid = uid
        self.gid = gid
        self.userSlot = userSlot
        self.groupSlots = groupSlots
        self.mountSlot = mountSlot
        self.frameSlot = frameSlot
    }

    public var isSuperuser: Bool { uid == 0 }
    public var groups: [UInt32] { ([gid] + groupSlots.keys.sorted()).reduce(into: []) { if !$0.contains($1) { $0.append($1) } } }

    /// The permission bits (rwx as 4/2/1) this client has on a file with `uid`, `gid`,
    /// `mode`, by UNIX's rule: the owner's bits if it owns it, else its group's if it
    /// is in the group, else the others'. The superuser has all.
    public func bits(uid: UInt32, gid: UInt32, mode: UInt32) -> UInt32 {
        if isSuperuser { return 7 }
        if uid == self.uid { return (mode >> 6) & 7 }
        if groupSlots[gid] != nil { return (mode >> 3) & 7 }
        return mode & 7
    }

    /// The credential whose class the UDFs will judge as `bits` does.
    public func credential(uid: UInt32, gid: UInt32) -> CapabilitySlot {
        if isSuperuser || uid == self.uid { return userSlot }
        return groupSlots[gid] ?? userSlot
    }
}
