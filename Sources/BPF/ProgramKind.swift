// Program kinds: the contract each kind of downloaded code is verified and run under
// (DESIGN.md §4). A kind fixes the registers at entry, the memory a program may touch
// (context, stack, output area), its helpers, and how long it may run.
// docs/bpf.md describes each kind's context layout.

/// The helpers the engine offers, each callable only from the kinds that list it.
/// Arguments are in r1-r5; the result is in r0; r1-r5 are clobbered.
public enum Helper: Int32, CaseIterable, Sendable {
    /// The conformance suite's helper 5: returns r1, and when r1 is 0 ends the program at
    /// once with result 0.
    case unwind = 5
    /// The kernel clock in ticks, as exposed to wakeup predicates. Not deterministic.
    case clockTicks = 16

    /// Number of argument registers (from r1) the helper reads; all must hold numbers.
    public var argumentCount: Int {
        switch self {
        case .unwind: 1
        case .clockTicks: 0
        }
    }

    /// Whether the result depends only on the arguments.
    public var isDeterministic: Bool {
        switch self {
        case .unwind: true
        case .clockTicks: false
        }
    }

    public var name: String {
        switch self {
        case .unwind: "unwind"
        case .clockTicks: "clockTicks"
        }
    }
}

/// What r1 and r2 hold when a program starts.
public enum ContextSize: Hashable, Sendable {
    /// r1 points to exactly this many bytes; r2 holds the same number.
    case fixed(Int)
    /// r1 points to between 0 and `max` bytes; r2 holds the actual length, and the program
    /// must compare r2 (or a copy) before reading at a known offset.
    case variable(max: Int)

    /// The smallest and largest context length.
    public var bounds: (min: Int, max: Int) {
        switch self {
        case .fixed(let n): (n, n)
        case .variable(let max): (0, max)
        }
    }
}

/// How a kind's programs are bounded: every run of every kind ends after a number of
/// instructions the kind's contract states, so no program can make the kernel work
/// without limit on its behalf.
public enum Termination: Hashable, Sendable {
    /// Loops are allowed; a run that would execute more than this many instructions stops
    /// with `ExecutionError.budgetExhausted`, at the same point on every run.
    case budget(Int)
    /// No backward jumps, and the verifier proves that no path, counting every call at
    /// its worst, executes more than this many instructions. The interpreter charges the
    /// same bound as a budget too, so a verifier bug cannot make it run longer.
    case provedBound(Int)

    /// Instructions one run may execute, whichever way it is bounded.
    public var instructionsMax: Int {
        switch self {
        case .budget(let n), .provedBound(let n): n
        }
    }

    /// Whether programs may jump backward.
    public var allowsLoops: Bool {
        if case .budget = self { return true }
        return false
    }
}

/// The contract of one kind of downloaded code.
public struct ProgramKind: Hashable, Sendable {
    /// A short name (`udfOwns`, `packetFilter`, …) used by the CLI and in messages.
    public var name: String
    /// Size of the context r1 points to; r2 holds its length.
    public var context: ContextSize
    /// Whether the program may write its context (only the conformance kind may).
    public var contextWritable: Bool
    /// Bytes of the output area r3 points to (zeroed before each run), or 0 for none.
    public var outputBytes: Int
    /// Helpers the program may call.
    public var helpers: [Helper]
    /// How its runs are bounded.
    public var termination: Termination
    /// Whether results must depend on the input alone (UDFs): non-deterministic helpers
    /// are refused.
    public var deterministic: Bool
    /// Whether registers r3-r9 and the stack start zeroed and count as written (as the
    /// conformance suite's runtimes do). Otherwise reading them before writing is refused.
    public var startsZeroed: Bool

    public init(name: String, context: ContextSize, contextWritable: Bool = false, outputBytes: Int = 0,
                helpers: [Helper] = [], termination: Termination, deterministic: Bool, startsZeroed: Bool = false) {
        precondition(!deterministic || helpers.allSatisfy { $0.isDeterministic }, "a deterministic kind lists only deterministic helpers")
        precondition(context.bounds.max >= 0 && outputBytes >= 0)
        precondition(termination.instructionsMax > 0 && termination.instructionsMax <= Limits.instructionsPerRunMax)
        self.name = name
        self.context = context
        self.contextWritable = contextWritable
        self.outputBytes = outputBytes
        self.helpers = helpers
        self.termination = termination
        self.deterministic = deterministic
        self.startsZeroed = startsZeroed
    }

    /// XN's `owns` UDF: reads one metadata block (r1, read-only; r2 = 4096) and writes the
    /// (block, type) pairs it points to into the output area (r3): `ownsEntriesMax` entries
    /// of two little-endian 64-bit words. Returns in r0 how many entries it wrote.
    public static let udfOwns = ProgramKind(
        name: "udfOwns", context: .fixed(Limits.metadataBlockBytes),
        outputBytes: Limits.ownsEntriesMax * Limits.ownsEntryBytes,
        termination: .budget(Limits.udfBudget), deterministic: true)

    /// XN's `acl` UDF: reads the `AclContext` (r1, read-only; r2 = its size): the block
    /// before and after a proposed change, the changed byte range and the credential.
    /// Returns 1 to allow the change, 0 to deny it.
    public static let udfAcl = ProgramKind(
        name: "udfAcl", context: .fixed(AclContext.bytes),
        termination: .budget(Limits.udfBudget), deterministic: true)

    /// XN's `size` UDF: reads one metadata block (r1, read-only; r2 = 4096) and returns in
    /// r0 the byte size of the data it describes.
    public static let udfSize = ProgramKind(
        name: "udfSize", context: .fixed(Limits.metadataBlockBytes),
        termination: .budget(Limits.udfBudget), deterministic: true)

    /// A wakeup predicate: reads a window of exposed kernel state (r1, read-only; r2 = its
    /// length, which the program compares before reading at a known offset, as a packet
    /// filter does) and returns nonzero to wake its environment. No loops, and at most
    /// `Limits.predicateInstructionsMax` instructions on any path: the kernel evaluates
    /// predicates whenever the state they read changes, so each must be short.
    public static let wakeupPredicate = ProgramKind(
        name: "wakeupPredicate", context: .variable(max: Limits.wakeupWindowBytesMax),
        helpers: [.clockTicks], termination: .provedBound(Limits.predicateInstructionsMax), deterministic: false)

    /// A packet filter: reads one frame (r1, read-only; r2 = its length, at most
    /// `frameBytesMax`) and returns the number of bytes to accept, 0 to reject.
    public static let packetFilter = ProgramKind(
        name: "packetFilter", context: .variable(max: Limits.frameBytesMax),
        termination: .budget(Limits.packetFilterBudget), deterministic: true)

    /// The conformance suite's runtime: r1 points to `memoryBytes` of writable input, r2
    /// holds that length, every other register and the stack start zeroed, and helper 5
    /// (`unwind`) is offered.
    public static func conformance(memoryBytes: Int) -> ProgramKind {
        ProgramKind(name: "conformance", context: .fixed(memoryBytes), contextWritable: true,
                    helpers: [.unwind], termination: .budget(Limits.conformanceBudget),
                    deterministic: true, startsZeroed: true)
    }

    /// The system's kinds by name (the conformance kind with no input memory).
    public static let all: [ProgramKind] = [.udfOwns, .udfAcl, .udfSize, .wakeupPredicate, .packetFilter, .conformance(memoryBytes: 0)]

    /// The kind called `name`, if any (`conformance` gets `memoryBytes` of input).
    public static func named(_ name: String, memoryBytes: Int = 0) -> ProgramKind? {
        if name == "conformance" { return .conformance(memoryBytes: memoryBytes) }
        return all.first { $0.name == name }
    }
}

/// The context of an `acl` UDF, laid out by the kernel (XN) before each run:
///
///     offset 0      +--------------------------------+
///                   | block before the change (4096) |
///     offset 4096   +--------------------------------+
///                   | block after the change  (4096) |
///     offset 8192   +--------------------------------+
///                   | change: first byte u32, byte count u32, operation u32,
///                   |         reserved u32, target block u64
///     offset 8216   +--------------------------------+
///                   | credential: rights u64, component count u64,
///                   |             components (8 × u64)
///     offset 8296   +--------------------------------+
///                   | this block's number u64, its parent's number u64
///     offset 8312   +--------------------------------+
///                   | the parent block as cached (4096)  |
///     offset 12408  +--------------------------------+
///
/// All integers little-endian. The operation is one of `AclContext.Operation`; the target
/// is the block allocated, freed or linked, the data block written, or the child passed
/// through. For a change (every operation but `read`, `writeData` and `traverse`) the
/// parent's bytes are the block's parent as it is now, so a UDF can hold a block's first
/// contents to what its parent says of it; for a root, and for the three accesses, the
/// parent's number is 0 and its bytes are zeros.
public enum AclContext {
    public static let blockBeforeOffset = 0
    public static let blockAfterOffset = Limits.metadataBlockBytes
    public static let changeOffset = 2 * Limits.metadataBlockBytes
    public static let operationOffset = changeOffset + 8
    public static let targetOffset = changeOffset + 16
    public static let credentialOffset = changeOffset + 24
    /// Name components a credential carries at most.
    public static let credentialComponentsMax = 8
    /// This block's number, then its parent's (0 for none).
    public static let blockNumberOffset = credentialOffset + 16 + 8 * credentialComponentsMax
    public static let parentNumberOffset = blockNumberOffset + 8
    /// The parent block's bytes, for a change.
    public static let parentOffset = parentNumberOffset + 8
    /// The context's size.
    public static let bytes = parentOffset + Limits.metadataBlockBytes

    /// What the change does.
    public enum Operation: UInt32, Sendable {
        /// Bytes change; pointers stay.
        case write = 0
        /// A pointer to a newly allocated block (the target) appears.
        case allocate = 1
        /// The pointer to the target disappears; the target is freed.
        case free = 2
        /// Pointers move within the block.
        case swap = 3
        /// The target, a data block this block points to, is written (before and after
        /// are this block, unchanged).
        case writeData = 4
        /// The target, a block this block points to, is read (before and after are this
        /// block, unchanged).
        case read = 5
        /// The changed range leaves this block for another (the target): the after
        /// block has the range zeroed, and the pointers in it go with the bytes.
        case moveOut = 6
        /// Bytes arrive from another block (the target) into the changed range, which was
        /// zero. The before block shows them already there, exactly as they left the
        /// other block; the after block adds the mover's edits within the range.
        case moveIn = 7
        /// A pointer to the target, an existing block of a shareable type, appears: one
        /// more name for it (a hard link). The target keeps its other parents.
        case link = 8
        /// The credential passes through this block to the target, one of its children,
        /// on the way to reach the target or a block below it (before and after are this
        /// block, unchanged). XN asks every block above the one a call names, so a file
        /// system can require a right of each step of a path, as UNIX's search bit does.
        case traverse = 9
    }
}
