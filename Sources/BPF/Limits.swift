// Every bound of the downloaded-code engine, in one place, each with the reason for its
// value. The relations between them are checked at the bottom of the file.

/// The engine's limits. Each is a hard bound: input beyond it is refused with an error.
public enum Limits {
    /// Instruction slots in one program (a wide `lddw` takes two). Linux allows 4096 to an
    /// unprivileged loader; XN's UDFs and packet filters are far smaller, and the verifier's
    /// work and memory grow with this number.
    public static let programSlotsMax = 4096

    /// Bytes of stack each call frame gets at r10, as in eBPF (RFC 9669 §2.1 "512 bytes").
    public static let stackBytes = 512

    /// Program-local calls may nest this deep below the entry function. Linux allows
    /// 8 frames in all; so do we: the entry frame and 7 callees.
    public static let callDepthMax = 7

    /// Frames of stack memory an interpreter reserves: the entry frame and one per call level.
    public static let stackFramesMax = callDepthMax + 1

    /// Work the verifier may do on one program, counted in instructions analysed (a loop
    /// body is analysed a few times until its state settles; a function once per call
    /// site). Linux's bound is 10^6; a program needing more is refused as too complex.
    public static let verifierStepsMax = 1_000_000

    /// How often the verifier revisits a loop head with plain joins before it widens the
    /// ranges there to the program's own constants, which bounds the fixpoint iteration.
    public static let verifierJoinsBeforeWidening = 3

    /// Bytes in one metadata block: XN's block size, and the context of `udfOwns`/`udfSize`.
    public static let metadataBlockBytes = 4096

    /// Entries an `owns` UDF may report: a 4 KiB block holds at most 512 8-byte pointers.
    public static let ownsEntriesMax = metadataBlockBytes / 8

    /// Bytes of one `owns` entry in the output area: block number and type, 8 bytes each.
    public static let ownsEntryBytes = 16

    /// Largest frame a packet filter sees: a 9000-byte jumbo payload plus Ethernet and VLAN
    /// headers, rounded up.
    public static let frameBytesMax = 9216

    /// Largest window a wakeup predicate reads: the kernel's whole exposed state (a
    /// header, the environment table and a buffer-cache registry entry per frame, tens of
    /// MiB on a large machine) and a region after it. The window's real length is in r2.
    public static let wakeupWindowBytesMax = 1 << 30

    /// Instruction budgets of the system's kinds (how many instructions one run may execute).
    /// A UDF scan of a 4 KiB block of 8-byte words runs about 512 × 8 instructions.
    public static let udfBudget = 65_536
    /// Packet filters run per frame on the receive path: a tighter budget.
    public static let packetFilterBudget = 16_384
    /// The conformance suite's programs are short; `prime` loops longest (a few thousand).
    public static let conformanceBudget = 1 << 24

    /// Instructions a wakeup predicate may execute on its longest path, calls included. The
    /// kernel reruns every sleeping predicate whenever the state it reads changes, charged
    /// to no one; 4096 instructions (a few microseconds) keeps a full table of them cheap,
    /// and is as many as a loop-free program of `programSlotsMax` slots without calls runs.
    public static let predicateInstructionsMax = 4096

    /// The most instructions any kind may let one run execute (budgets and proved bounds
    /// alike): keeps the interpreter's budget arithmetic far from overflow.
    public static let instructionsPerRunMax = 1 << 48

    /// Bytes of conformance-kind input memory the plugin accepts.
    public static let conformanceMemoryBytesMax = 1 << 20

    /// Constants a compiled program may hold beside its registers (one per distinct
    /// immediate; at most one per instruction slot).
    public static let constantsMax = programSlotsMax

    /// Checked relations between the limits (evaluated when the verifier first runs).
    static let relationsHold: Bool = {
        precondition(stackBytes % 8 == 0, "stack must hold whole 8-byte slots")
        precondition(stackFramesMax == callDepthMax + 1)
        precondition(ownsEntriesMax * 8 == metadataBlockBytes)
        precondition(programSlotsMax <= Int(Int16.max) + 1, "16-bit jump offsets reach every slot")
        precondition(udfBudget >= metadataBlockBytes, "a UDF can at least touch every word of its block")
        precondition(constantsMax + 16 <= Int(UInt16.max), "register-file indices fit 16 bits")
        precondition(predicateInstructionsMax >= programSlotsMax, "any loop-free program without calls fits the bound")
        precondition(conformanceBudget <= instructionsPerRunMax && udfBudget <= instructionsPerRunMax)
        return true
    }()
}
