// Every bound of the kernel interface, in one place, each with its reason. A request
// beyond a bound is refused (`invalidArgument` or `limitExceeded`), never a crash.

/// The kernel's limits, shared by the kernel and library OSes.
public enum KernelLimits {
    /// Components in a capability's name: `uid/<n>/file/<n>` needs four; eight leaves room
    /// and matches the credential XN hands its acl UDFs.
    public static let nameComponentsMax = 8
    /// Entries in one access-control list: a resource protected by more principals than
    /// this should name a group.
    public static let aclEntriesMax = 8
    /// Capability slots per environment (Xok's capability list).
    public static let capabilitySlots = 32
    /// Environments the machine holds at once: the exposed environment table's size.
    public static let environmentsMax = 64
    /// Children one environment may have alive at once, so none can fill the table.
    public static let childrenMax = 16
    /// Frames one environment may own, and bindings it may hold.
    public static let framesPerEnvironment = 256
    /// Software regions one environment may own.
    public static let regionsPerEnvironment = 16
    /// Bytes in one software region (pipes and shared tables, not bulk data).
    public static let regionBytesMax = 64 * 1024
    /// Bytes in one IPC message: enough for a signal or a small request; bulk data goes
    /// through frames or regions.
    public static let messageBytesMax = 256
    /// Messages waiting for one environment; a sender to a full queue gets `queueFull`.
    public static let messageQueueDepth = 16
    /// Slices in the slice vector (each a fixed share of the CPU).
    public static let slices = 16
    /// Slices one environment may own.
    public static let slicesPerEnvironment = 4
    /// Bytes of a wakeup predicate program (Limits.programSlotsMax in BPF is the other bound).
    public static let predicateBytesMax = 4096 * 8
    /// Bytes of the exposed kernel state a wakeup predicate sees (the first half of its
    /// 4096-byte window); the second half is a region the environment may read.
    public static let exposedStateBytes = 2048
    /// Bytes of a region a wakeup predicate sees.
    public static let predicateRegionBytes = 2048
    /// Ticks a revoked frame's holders have at most to give it back.
    public static let revocationGraceMax: UInt64 = 1_000_000
    /// Bytes of a request or reply on the wire.
    public static let messageWireBytesMax = regionBytesMax + 64
}
