// The one error every kernel call throws (DESIGN.md §3). Small and closed: a library OS
// can handle every case. The raw value is the code on the wire.

/// Why a kernel call was refused. Nothing changed when a call throws.
public enum KernelError: UInt16, Error, CaseIterable, Sendable {
    /// The credential slot is past the end of the caller's capability list.
    case slotOutOfRange = 1
    /// The credential slot holds no capability.
    case emptySlot = 2
    /// The credential dominates no entry of the object's ACL with the right the call needs
    /// (or a derivation asked for rights the source lacks).
    case permissionDenied = 3
    /// The environment does not exist (or has died).
    case noSuchEnvironment = 4
    /// The frame number is not a frame, or the frame is free.
    case noSuchFrame = 5
    /// The region does not exist.
    case noSuchRegion = 6
    /// The slice index is past the slice vector, or the slice is not the caller's.
    case noSuchSlice = 7
    /// The caller already holds as many of this resource as its limit allows.
    case limitExceeded = 8
    /// The machine has none of this resource left.
    case exhausted = 9
    /// An argument is malformed: a name or ACL too long, a size out of range.
    case invalidArgument = 10
    /// A region access reaches past the region's end.
    case outOfBounds = 11
    /// The target's message queue is full; the message was not sent.
    case queueFull = 12
    /// The object is in use: a frame mapped by others or being revoked, a slice owned.
    case busy = 13
    /// The caller has no binding of that frame to remove.
    case notMapped = 14
    /// The wakeup predicate failed verification.
    case programRejected = 15
    /// The request's bytes do not decode (wrong version, truncated, bad field).
    case badRequest = 16
    // XN's calls.
    /// The block is not allocated, or not of the kind the call needs (metadata, data).
    case noSuchBlock = 17
    /// No installed type has that number or name.
    case noSuchType = 18
    /// No root has that name.
    case noSuchRoot = 19
    /// A type or root of that name exists.
    case nameTaken = 20
    /// A UDF failed while running (its budget ran out, or a checked access was out of
    /// bounds): the change is refused.
    case udfFailed = 21
    /// After the change, `owns` names a pointer the operation does not account for.
    case pointerInvented = 22
    /// After the change, `owns` lacks a pointer the operation does not account for.
    case pointerLost = 23
    /// After the change, `owns` names a block outside the data area, of an unknown type,
    /// or one block twice.
    case invalidPointer = 24
    /// The block to allocate is not free (or freed but not yet reusable).
    case notFree = 25
    /// The block to free still points to blocks of its own.
    case notEmpty = 26
    /// The block to free is not one this block points to.
    case notAChild = 27
    /// The block points to new metadata not yet on disk: writing it would persist a
    /// pointer to uninitialized data.
    case tainted = 28
    /// The block is not in the buffer cache (read it in first), or its parent is not.
    case notCached = 29
    /// The disk failed; the call changed nothing it had not already made durable.
    case ioError = 30
    /// The kernel has no disk.
    case noDisk = 31
}

extension KernelError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .slotOutOfRange: "credential slot out of range"
        case .emptySlot: "credential slot is empty"
        case .permissionDenied: "permission denied"
        case .noSuchEnvironment: "no such environment"
        case .noSuchFrame: "no such frame"
        case .noSuchRegion: "no such region"
        case .noSuchSlice: "no such slice"
        case .limitExceeded: "limit exceeded"
        case .exhausted: "resource exhausted"
        case .invalidArgument: "invalid argument"
        case .outOfBounds: "out of bounds"
        case .queueFull: "queue full"
        case .busy: "busy"
        case .notMapped: "not mapped"
        case .programRejected: "program rejected"
        case .badRequest: "bad request"
        case .noSuchBlock: "no such block"
        case .noSuchType: "no such type"
        case .noSuchRoot: "no such root"
        case .nameTaken: "name taken"
        case .udfFailed: "UDF failed"
        case .pointerInvented: "the change invents a pointer"
        case .pointerLost: "the change loses a pointer"
        case .invalidPointer: "owns names an invalid pointer"
        case .notFree: "block not free"
        case .notEmpty: "block still points to others"
        case .notAChild: "not a block this one points to"
        case .tainted: "block points to uninitialized metadata"
        case .notCached: "block not cached"
        case .ioError: "I/O error"
        case .noDisk: "no disk"
        }
    }
}
