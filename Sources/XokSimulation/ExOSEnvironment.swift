// How a trusted parent (init, in the shell, the tests and the simulation) starts an
// ExOS process: it derives the user's and groups' C-FFS capabilities (CFFSNames) and the
// kernel capabilities a file system needs, and creates a child environment holding them,
// with a quota out of its own share. Everything afterwards goes through the child's port.

import CFFS
import ExOS
import Xok
import XokABI

/// Slots of an ExOS environment made by `ExOSEnvironment.make`.
public enum ExOSSlot {
    /// The user: `[tag, 1, uid]`, or `[tag]` for uid 0.
    public static let user = CapabilitySlot(0)
    /// `[2]` write: frames.
    public static let frames = CapabilitySlot(1)
    /// `[tag, 0]`: the mount capability, which the XN root is protected by.
    public static let mount = CapabilitySlot(2)
    /// `[5]` and `[6]` write (XN types and roots), for a process allowed to format.
    public static let types = CapabilitySlot(3)
    public static let roots = CapabilitySlot(4)
    /// The groups, from here on, in the order given.
    public static let firstGroup = 5
}

public enum ExOSEnvironment {
    /// A new environment, child of init, acting as `uid` in groups `gid` and `groups`,
    /// and its C-FFS identity. With `admin`, it may install types and create roots. With
    /// `mayCreate`, the slot after its groups' holds the right to create environments
    /// (write and grant on the environments' system name), each out of its own quota. Its
    /// ancestors, and holders of `destroyer` (by default the user's own name), may
    /// destroy it.
    public static func make<H: Host>(_ kernel: Kernel<H>, uid: UInt32, gid: UInt32, groups: [UInt32] = [], quota: Quota,
                                     admin: Bool = false, mayCreate: Bool = false,
                                     destroyableBy destroyer: [UInt64]? = nil) throws(KernelError) -> (port: LocalPort<H>, identity: CFFSIdentity) {
        let root = LocalPort(kernel: kernel, environment: kernel.initEnvironment)
        let all = CapabilitySlot(0)
        var grants: [CapabilitySlot] = []
        defer { for slot in grants { try? root.drop(slot) } }
        let user = uid == 0 ? CFFSNames.superuser : CFFSNames.user(uid)
        grants.append(try root.derive(all, appending: user, rights: .all))
        grants.append(try root.derive(all, appending: [SystemACLs.framesName], rights: [.write, .grant]))
        grants.append(try root.derive(all, appending: CFFSNames.mount, rights: .all))
        let typesName = admin ? [SystemACLs.typesName] : [SystemACLs.typesName, 0]
        let rootsName = admin ? [SystemACLs.rootsName] : [SystemACLs.rootsName, 0]
        grants.append(try root.derive(all, appending: typesName, rights: admin ? [.write, .grant] : [.read, .grant]))
        grants.append(try root.derive(all, appending: rootsName, rights: admin ? [.write, .grant] : [.read, .grant]))
        var groupSlots: [UInt32: CapabilitySlot] = [:]
        for (i, group) in ([gid] + groups.filter { $0 != gid }).enumerated() {
            grants.append(try root.derive(all, appending: CFFSNames.group(group, member: uid), rights: .all))
            groupSlots[group] = CapabilitySlot(ExOSSlot.firstGroup + i)
        }
        if mayCreate { grants.append(try root.derive(all, appending: [SystemACLs.environmentsName], rights: [.write, .grant])) }
        let acl = try AccessControlList([try Capability(name: destroyer ?? user, rights: .write)])
        let id = try root.createEnvironment(credential: all, acl: acl, grants: grants, quota: quota)
        let identity = try CFFSIdentity(uid: uid, gid: gid, userSlot: ExOSSlot.user, groupSlots: groupSlots,
                                        mountSlot: ExOSSlot.mount, frameSlot: ExOSSlot.frames)
        return (LocalPort(kernel: kernel, environment: id), identity)
    }

    /// A share of what init has left: `1/parts` of its frames, blocks and catalogue
    /// entries.
    public static func share<H: Host>(of kernel: Kernel<H>, parts: Int = 2) -> Quota {
        LibraryEnvironment.share(of: kernel, parts: parts)
    }

    /// Formats C-FFS as root `name` from a new admin environment (uid 0), writes it back
    /// and returns that process.
    public static func format<H: Host>(_ kernel: Kernel<H>, name: String = "cffs", quota: Quota? = nil, mode: UInt32 = 0o755,
                                       now: @escaping () -> Int64) throws -> ExOS<LocalPort<H>> {
        let (port, identity) = try make(kernel, uid: 0, gid: 0, quota: quota ?? share(of: kernel), admin: true)
        let fs = try CFFS.format(port: port, identity: identity, name: name, types: ExOSSlot.types, roots: ExOSSlot.roots,
                                 mountCapability: ExOSSlot.mount, mode: mode, now: now)
        return ExOS(fs: fs)
    }

    /// Mounts C-FFS root `name` in a new environment acting as `uid`/`gid`.
    public static func mount<H: Host>(_ kernel: Kernel<H>, name: String = "cffs", uid: UInt32, gid: UInt32, groups: [UInt32] = [],
                                      quota: Quota? = nil, now: @escaping () -> Int64) throws -> ExOS<LocalPort<H>> {
        let (port, identity) = try make(kernel, uid: uid, gid: gid, groups: groups, quota: quota ?? share(of: kernel))
        return ExOS(fs: try CFFS.mount(port: port, identity: identity, name: name, now: now))
    }
}
