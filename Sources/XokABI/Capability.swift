// Capabilities and access-control lists (DESIGN.md §3). A capability is a hierarchical
// name and rights; `a` dominates `b` when `a`'s name is a prefix of `b`'s and `a`'s rights
// include `b`'s. A resource carries an ACL of capabilities; a credential passes when it
// dominates an entry that grants the needed right.

/// What a capability allows.
public struct Rights: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let read = Rights(rawValue: 1 << 0)
    public static let write = Rights(rawValue: 1 << 1)
    /// Pass the capability on: to a child environment, or in a derivation given away.
    public static let grant = Rights(rawValue: 1 << 2)
    public static let all: Rights = [.read, .write, .grant]
}

/// A capability: a name of up to `KernelLimits.nameComponentsMax` components, and rights.
public struct Capability: Hashable, Sendable {
    public private(set) var name: [UInt64]
    public private(set) var rights: Rights

    /// - Throws: `invalidArgument` for a name longer than the limit.
    public init(name: [UInt64], rights: Rights) throws(KernelError) {
        guard name.count <= KernelLimits.nameComponentsMax else { throw .invalidArgument }
        self.name = name
        self.rights = rights
    }

    /// The capability that dominates every other: the empty name with every right.
    public static let root = try! Capability(name: [], rights: .all)

    /// Whether this capability dominates `other`: its name is a prefix of `other`'s and its
    /// rights include `other`'s.
    public func dominates(_ other: Capability) -> Bool {
        name.count <= other.name.count && Array(other.name.prefix(name.count)) == name && rights.isSuperset(of: other.rights)
    }

    /// A weaker capability: the name extended by `components`, rights a subset of these.
    /// - Throws: `permissionDenied` when `rights` asks for one this capability lacks;
    ///   `invalidArgument` when the name would grow past the limit.
    public func derived(appending components: [UInt64] = [], rights: Rights) throws(KernelError) -> Capability {
        guard self.rights.isSuperset(of: rights) else { throw .permissionDenied }
        return try Capability(name: name + components, rights: rights)
    }
}

/// An access-control list: at most `KernelLimits.aclEntriesMax` capabilities.
public struct AccessControlList: Hashable, Sendable {
    public private(set) var entries: [Capability]

    /// - Throws: `invalidArgument` for more entries than the limit.
    public init(_ entries: [Capability]) throws(KernelError) {
        guard entries.count <= KernelLimits.aclEntriesMax else { throw .invalidArgument }
        self.entries = entries
    }

    /// Whether `credential` dominates an entry that grants every right in `needed`.
    public func permits(_ credential: Capability, _ needed: Rights) -> Bool {
        entries.contains { $0.rights.isSuperset(of: needed) && credential.dominates($0) }
    }
}

/// The index of a capability in the calling environment's capability list: how every
/// call names its credential.
public struct CapabilitySlot: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ value: Int) { rawValue = UInt16(truncatingIfNeeded: value) }
}
