// Every bound of the kernel interface, in one place, each with its reason. A request
// beyond a bound is refused (`invalidArgument`, `limitExceeded` or `exhausted`), never a
// crash. Sizes that another module shares (XN's block size, the BPF engine's credential
// layout) are defined here once; `relationsHold` checks how they relate.

/// The kernel's limits, shared by the kernel and library OSes.
public enum KernelLimits {
    /// Bytes in a frame and in a disk block: one page, so a cached block is a frame.
    public static let pageBytes = 4096
    /// Components in a capability's name: `uid/<n>/file/<n>` needs four; eight leaves room
    /// and matches the credential XN hands its acl UDFs (`AclContext.credentialComponentsMax`).
    public static let nameComponentsMax = 8
    /// Entries in one access-control list: a resource protected by more principals than
    /// this should name a group.
    public static let aclEntriesMax = 8
    /// Capability slots per environment (Xok's capability list).
    public static let capabilitySlots = 32
    /// Frames a kernel manages at most (16 GiB): its exposed registry, one entry a frame,
    /// must fit a wakeup predicate's window.
    public static let framesMax = 1 << 22
    /// Environments the machine holds at once: the exposed environment table's size. A
    /// thousand processes, each its own library OS, is a busy UNIX machine.
    public static let environmentsMax = 1024
    /// Frames one environment may have bound at once, its own and others'. Under `xokd`
    /// each binding may be a mapping, and Linux allows 65,530 of those per process.
    public static let bindingsMax = 60_000
    /// Software regions the machine holds at once (each at most `regionBytesMax`).
    public static let regionsMax = 4096
    /// Bytes in one software region (pipes and shared tables, not bulk data).
    public static let regionBytesMax = 64 * 1024
    /// Bytes in one IPC message: enough for a signal or a small request; bulk data goes
    /// through frames or regions.
    public static let messageBytesMax = 256
    /// Messages one sender may have waiting in one receiver's queue: each sender has a
    /// share of its own, so no sender can fill a receiver's queue for the others. The
    /// messages a sender has waiting everywhere also count against its quota.
    public static let messagesPerSender = 16
    /// Slices in the slice vector (each a fixed share of the CPU).
    public static let slices = 64
    /// Bytes of a wakeup predicate program (Limits.programSlotsMax in BPF is the other bound).
    public static let predicateBytesMax = 4096 * 8
    /// Bytes of a region a wakeup predicate sees, after the exposed state in its window.
    public static let predicateRegionBytes = 4096
    /// Ticks a revoked frame's holders have at most to give it back.
    public static let revocationGraceMax: UInt64 = 1_000_000
    /// Bytes of a request or reply on the wire: a region write is the largest. Bulk bytes
    /// (block contents, templates) travel in frames, never in a call.
    public static let messageWireBytesMax = regionBytesMax + 64

    // MARK: XN

    /// Bytes of a type or root name (UTF-8, no NUL).
    public static let xnNameBytesMax = 31
    /// Byte ranges in one metadata change or data write.
    public static let xnChangesMax = 64
    /// Bytes a change may carry inside the call; more must come from a frame.
    public static let xnInlineBytesMax = 1024
    /// Blocks in one writeback call.
    public static let xnWritebackBlocksMax = 256
    /// Blocks one `allocateMany` or `freeMany` names at most (256 KiB of file data).
    public static let xnBatchMax = 64
    /// Frames one UDF program travels in when a type is installed (its bytes are theirs,
    /// one after another).
    public static let udfFramesMax = 4
    /// Bytes of one UDF program (2,048 instructions). C-FFS's directory `acl`, which holds
    /// UNIX's rules for entries, names, moves, sticky directories and a new block's
    /// layout against its parent, is 616.
    public static let udfBytesMax = udfFramesMax * pageBytes

    /// Checked relations between the limits; the kernel evaluates this at boot.
    public static let relationsHold: Bool = {
        precondition(udfBytesMax <= udfFramesMax * pageBytes, "a UDF travels in its frames")
        precondition(xnInlineBytesMax <= pageBytes && xnChangesMax * 4 + xnInlineBytesMax + 64 <= messageWireBytesMax,
                     "an XN change fits a call message")
        precondition(xnWritebackBlocksMax * 8 + 64 <= messageWireBytesMax, "a writeback list fits a call message")
        precondition(environmentsMax <= Int(EnvironmentID.indexMask) + 1, "an environment id's index names every table entry")
        precondition(regionsMax <= Int(RegionID.indexMask) + 1, "a region id's index names every table entry")
        precondition(capabilitySlots <= Int(UInt16.max), "slots are 16-bit on the wire")
        return true
    }()
}

/// What an environment's whole subtree may hold at once: the environment itself, its
/// children, their children. A creator gives each child a quota out of its own unused
/// share and gets it back when the child dies, so no subtree can take more than its
/// ancestors gave it, and no descendant can starve a sibling of its ancestor.
public struct Quota: Hashable, Sendable {
    /// Descendants alive at once (the environment itself not counted).
    public var environments: UInt32
    /// Frames owned, including frames given to the buffer cache.
    public var frames: UInt32
    public var regions: UInt32
    public var slices: UInt32
    /// Messages waiting, sent by it, in other environments' queues.
    public var messages: UInt32
    /// Disk blocks allocated through XN (and not freed by it).
    public var blocks: UInt64
    /// XN catalogue entries: types installed and roots created.
    public var catalogueEntries: UInt32

    public init(environments: UInt32 = 0, frames: UInt32 = 0, regions: UInt32 = 0, slices: UInt32 = 0,
                messages: UInt32 = 0, blocks: UInt64 = 0, catalogueEntries: UInt32 = 0) {
        self.environments = environments
        self.frames = frames
        self.regions = regions
        self.slices = slices
        self.messages = messages
        self.blocks = blocks
        self.catalogueEntries = catalogueEntries
    }

    /// Nothing at all.
    public static let none = Quota()

    /// Whether every part of `other` fits within this one.
    public func covers(_ other: Quota) -> Bool {
        environments >= other.environments && frames >= other.frames && regions >= other.regions && slices >= other.slices
            && messages >= other.messages && blocks >= other.blocks && catalogueEntries >= other.catalogueEntries
    }

    /// Part-by-part sum, or nil when a part would overflow.
    public func adding(_ other: Quota) -> Quota? {
        let e = environments.addingReportingOverflow(other.environments), f = frames.addingReportingOverflow(other.frames)
        let r = regions.addingReportingOverflow(other.regions), s = slices.addingReportingOverflow(other.slices)
        let m = messages.addingReportingOverflow(other.messages), b = blocks.addingReportingOverflow(other.blocks)
        let c = catalogueEntries.addingReportingOverflow(other.catalogueEntries)
        guard !e.overflow, !f.overflow, !r.overflow, !s.overflow, !m.overflow, !b.overflow, !c.overflow else { return nil }
        return Quota(environments: e.partialValue, frames: f.partialValue, regions: r.partialValue, slices: s.partialValue,
                     messages: m.partialValue, blocks: b.partialValue, catalogueEntries: c.partialValue)
    }

    /// Part-by-part difference, or nil when `other` does not fit.
    public func subtracting(_ other: Quota) -> Quota? {
        guard covers(other) else { return nil }
        return Quota(environments: environments - other.environments, frames: frames - other.frames, regions: regions - other.regions,
                     slices: slices - other.slices, messages: messages - other.messages, blocks: blocks - other.blocks,
                     catalogueEntries: catalogueEntries - other.catalogueEntries)
    }
}
