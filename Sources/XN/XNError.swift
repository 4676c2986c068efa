// Why XN refused a call. Nothing on disk or in the cache changed when a call throws.

/// XN's one error type.
public enum XNError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The image is not an XN disk (wrong magic or version): never touched.
    case notXN(String)
    /// An XN structure on the image fails its checksum or its geometry, or the tree does
    /// not hold together: refused, never repaired by guessing.
    case corruptImage(String)
    /// The device failed.
    case device(String)
    /// The device is too small for XN's structures and one block of data.
    case deviceTooSmall
    /// A template's UDF failed verification or its sanity checks.
    case templateRejected(String)
    /// The type is not in the catalogue (or is the data type where metadata is needed).
    case unknownType
    /// The type catalogue or the root catalogue is full, or a name is taken or too long.
    case catalogueFull
    case nameTaken
    case noSuchRoot
    /// The block is not an allocated metadata block (or not a data block, for data calls).
    case notMetadata
    case notData
    /// A byte modification reaches past the block, or there are too many of them.
    case badModification
    /// The type's `acl` UDF denied the change.
    case aclDenied
    /// A UDF failed at run time (its budget ran out, or a checked access was out of
    /// bounds): the change is refused.
    case udfFailed(String)
    /// After the change, `owns` names a block outside the data area or of an unknown type,
    /// or names one block twice.
    case invalidPointer
    /// `owns` after the change has a pointer the operation does not account for.
    case pointerInvented
    /// `owns` after the change lacks a pointer the operation does not account for.
    case pointerLost
    /// The block to allocate is not free (allocated, or freed but not yet reusable).
    case notFree
    /// The block to free still points to blocks of its own.
    case notEmpty
    /// The block to free is not one this block points to (freed already, or never its).
    case notAChild
    /// A fresh block may be initialized only by the environment that allocated it; a
    /// dirty block may be written back only by the environment that dirtied it (unless it
    /// died).
    case notOwner
    /// The parent points to new metadata not yet durable: writing it would persist a
    /// pointer to uninitialized data.
    case tainted
    /// No free block left.
    case noSpace
    /// A type or root name is empty, too long, holds a NUL or is not UTF-8.
    case badName
    /// The block is not in the buffer cache (read it in first), or its parent is not.
    case notCached
    /// The block is dirty or not yet on disk: it cannot leave the cache.
    case dirty
    /// A move would make a block its own ancestor.
    case cycle
    /// The bytes a move lands on are not all zero.
    case destinationInUse
    /// The block is in a move not yet on disk (it cannot be freed until the move is
    /// written), or a move would tie more blocks together than the move log holds: write
    /// the blocks back first.
    case moving
    /// A link names a block that may not have several parents: its type is not
    /// shareable, it is a root, or it is being freed.
    case notShareable

    public var description: String {
        switch self {
        case .notXN(let why): "not an XN image: \(why)"
        case .corruptImage(let why): "corrupt image: \(why)"
        case .device(let why): "device error: \(why)"
        case .deviceTooSmall: "device too small for XN"
        case .templateRejected(let why): "template rejected: \(why)"
        case .unknownType: "unknown type"
        case .catalogueFull: "catalogue full"
        case .nameTaken: "name taken"
        case .noSuchRoot: "no such root"
        case .notMetadata: "not an allocated metadata block"
        case .notData: "not an allocated data block"
        case .badModification: "modification out of the block"
        case .aclDenied: "acl UDF denied the change"
        case .udfFailed(let why): "UDF failed: \(why)"
        case .invalidPointer: "owns names an invalid pointer"
        case .pointerInvented: "the change invents a pointer"
        case .pointerLost: "the change loses a pointer"
        case .notFree: "block not free"
        case .notEmpty: "block still points to others"
        case .notAChild: "not a block this one points to"
        case .notOwner: "not the block's owner"
        case .tainted: "block points to uninitialized metadata"
        case .noSpace: "no free block"
        case .badName: "a name must be 1 to \(XNLayout.nameBytesMax) bytes of UTF-8 without NUL"
        case .notCached: "block not cached"
        case .dirty: "block dirty or not yet on disk"
        case .cycle: "the move would make a block its own ancestor"
        case .destinationInUse: "the bytes a move lands on are in use"
        case .moving: "block in a move not yet on disk"
        case .notShareable: "block's type does not allow several parents"
        }
    }
}
