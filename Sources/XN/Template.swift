// Templates (DESIGN.md §5): a library file system describes each of its metadata block
// types with three untrusted deterministic functions — `owns` (what the block points to),
// `acl` (whether a change or access is allowed) and `size` — verified by the BPF engine
// before installation. Installed templates are immutable and persist on disk.

import BPF
import XokABI

/// A pointer a metadata block holds: the block and the type it has there.
public struct Pointer: Hashable, Comparable, Sendable {
    public var block: BlockNumber
    public var type: TypeID
    public init(block: BlockNumber, type: TypeID) {
        self.block = block
        self.type = type
    }
    public static func < (a: Self, b: Self) -> Bool { (a.block, a.type.rawValue) < (b.block, b.type.rawValue) }
}

/// An installed type: its name, its three verified UDFs, and whether its blocks may have
/// several parents.
public final class Template {
    public let id: TypeID
    public let name: [UInt8]
    /// Whether a block of this type may be pointed to from several places (a file system's
    /// hard-linked inode). Fixed at install. Every other block has exactly one parent, and
    /// fsck calls a block reachable twice a violation: that is what catches a freed block
    /// reused too early, so the exception is kept to the types that ask for it.
    public let shareable: Bool
    /// Whether freeing the pointer to a block of this type frees the block and everything
    /// below it in the same change, as the last pointer to a shareable block does (a
    /// file's indirect blocks: whoever may remove the file's name may free its blocks,
    /// without the right to change the file). Fixed at install. Any other block must be
    /// empty to be freed.
    public let freedWhole: Bool
    public let ownsCode: [UInt8], aclCode: [UInt8], sizeCode: [UInt8]
    private let owns: Interpreter, acl: Interpreter, size: Interpreter
    private var output: [UInt8]

    /// Verifies the three programs and runs the sanity checks: `owns` of an all-zero block
    /// names nothing, and `size` of it is at most a block.
    /// - Throws: `templateRejected` naming the UDF and the reason.
    init(id: TypeID, name: [UInt8], owns ownsCode: [UInt8], acl aclCode: [UInt8], size sizeCode: [UInt8],
         shareable: Bool, freedWhole: Bool = false) throws(XNError) {
        guard Name.isValid(name) else { throw .badName }
        func verify(_ code: [UInt8], _ kind: ProgramKind, _ what: String) throws(XNError) -> Interpreter {
            guard code.count <= XNLayout.udfBytesMax else { throw .templateRejected("\(what) is over \(XNLayout.udfBytesMax) bytes") }
            do { return Interpreter(try Verifier.verify(bytes: code, kind: kind)) } catch {
                throw .templateRejected("\(what): \(error)")
            }
        }
        self.id = id
        self.name = name
        self.shareable = shareable
        self.freedWhole = freedWhole
        self.ownsCode = ownsCode
        self.aclCode = aclCode
        self.sizeCode = sizeCode
        owns = try verify(ownsCode, .udfOwns, "owns")
        acl = try verify(aclCode, .udfAcl, "acl")
        size = try verify(sizeCode, .udfSize, "size")
        output = [UInt8](repeating: 0, count: ProgramKind.udfOwns.outputBytes)
        let zero = [UInt8](repeating: 0, count: XNLayout.blockBytes)
        let none: [Pointer]
        do { none = try pointers(in: zero) } catch { throw .templateRejected("owns of an all-zero block: \(error)") }
        guard none.isEmpty else { throw .templateRejected("owns of an all-zero block names \(none.count) blocks") }
        let zeroSize: UInt64
        do { zeroSize = try byteSize(of: zero) } catch { throw .templateRejected("size of an all-zero block: \(error)") }
        guard zeroSize <= UInt64(XNLayout.blockBytes) else { throw .templateRejected("size of an all-zero block is \(zeroSize)") }
    }

    /// What `block` points to, by the `owns` UDF, sorted.
    /// - Throws: `udfFailed` when the UDF runs out of budget, faults, or reports more
    ///   entries than fit the output area.
    public func pointers(in block: [UInt8]) throws(XNError) -> [Pointer] {
        precondition(block.count == XNLayout.blockBytes)
        let interpreter = owns
        var result: Result<UInt64, ExecutionError> = .success(0)
        // The verifier proved `owns` never writes its context, so the block is not copied.
        block.withUnsafeBytes { c in
            output.withUnsafeMutableBytes { o in
                do throws(ExecutionError) { result = .success(try interpreter.run(context: UnsafeMutableRawBufferPointer(mutating: c), output: o)) } catch { result = .failure(error) }
            }
        }
        let count: UInt64
        switch result {
        case .success(let n): count = n
        case .failure(let error): throw .udfFailed("owns: \(error)")
        }
        guard count <= UInt64(Limits.ownsEntriesMax) else { throw .udfFailed("owns reported \(count) entries") }
        var pointers: [Pointer] = []
        pointers.reserveCapacity(Int(count))
        for i in 0..<Int(count) {
            let type = output.u64(at: 16 * i + 8)
            guard type <= UInt64(UInt32.max) else { throw .udfFailed("owns reported type \(type)") }
            pointers.append(Pointer(block: output.u64(at: 16 * i), type: TypeID(rawValue: UInt32(type))))
        }
        // Usually already in block order (file systems fill slots in allocation order).
        for i in pointers.indices.dropFirst() where pointers[i] < pointers[i - 1] { return pointers.sorted() }
        return pointers
    }

    /// Whether the `acl` UDF allows the change described by `context` (an `AclContext`).
    public func allows(_ context: inout [UInt8]) throws(XNError) -> Bool {
        let interpreter = acl
        var result: Result<UInt64, ExecutionError> = .success(0)
        context.withUnsafeMutableBytes { c in
            do throws(ExecutionError) { result = .success(try interpreter.run(context: c)) } catch { result = .failure(error) }
        }
        switch result {
        case .success(let r): return r != 0
        case .failure(let error): throw .udfFailed("acl: \(error)")
        }
    }

    /// The byte size the `size` UDF reports for `block`.
    public func byteSize(of block: [UInt8]) throws(XNError) -> UInt64 {
        var block = block
        let interpreter = size
        var result: Result<UInt64, ExecutionError> = .success(0)
        block.withUnsafeMutableBytes { c in
            do throws(ExecutionError) { result = .success(try interpreter.run(context: c)) } catch { result = .failure(error) }
        }
        switch result {
        case .success(let r): return r
        case .failure(let error): throw .udfFailed("size: \(error)")
        }
    }
}

/// A named entry point into one library file system's tree.
public struct RootEntry: Hashable, Sendable {
    /// 1 to 31 bytes of UTF-8, no NUL.
    public var name: [UInt8]
    public var block: BlockNumber
    public var type: TypeID
    /// Who may use the root: a credential must dominate it.
    public var capability: Capability
}
