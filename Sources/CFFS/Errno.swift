// The errors of C-FFS and ExOS: POSIX's errno values, so a shell or a program built on
// ExOS reports them as a UNIX system would (`No such file or directory`).

import XokABI

/// A POSIX error number.
public struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    public let code: Int32
    public init(_ code: Int32) { self.code = code }

    public static let EPERM = Errno(1), ENOENT = Errno(2), EIO = Errno(5), EBADF = Errno(9)
    public static let ENOMEM = Errno(12), EACCES = Errno(13), EBUSY = Errno(16), EEXIST = Errno(17), EXDEV = Errno(18)
    public static let ENOTDIR = Errno(20), EISDIR = Errno(21), EINVAL = Errno(22), ENFILE = Errno(23), EMFILE = Errno(24)
    public static let EFBIG = Errno(27), ENOSPC = Errno(28), ESPIPE = Errno(29), EROFS = Errno(30), EMLINK = Errno(31)
    public static let ERANGE = Errno(34), ENAMETOOLONG = Errno(36), ENOTEMPTY = Errno(39), ELOOP = Errno(40)
    public static let ENOTSUP = Errno(95), EDQUOT = Errno(122)

    /// strerror(3)'s text, as glibc words it.
    public var description: String {
        switch code {
        case 1: "Operation not permitted"
        case 2: "No such file or directory"
        case 5: "Input/output error"
        case 9: "Bad file descriptor"
        case 12: "Cannot allocate memory"
        case 13: "Permission denied"
        case 16: "Device or resource busy"
        case 17: "File exists"
        case 18: "Invalid cross-device link"
        case 20: "Not a directory"
        case 21: "Is a directory"
        case 22: "Invalid argument"
        case 23: "Too many open files in system"
        case 24: "Too many open files"
        case 27: "File too large"
        case 28: "No space left on device"
        case 29: "Illegal seek"
        case 30: "Read-only file system"
        case 31: "Too many links"
        case 34: "Numerical result out of range"
        case 36: "File name too long"
        case 39: "Directory not empty"
        case 40: "Too many levels of symbolic links"
        case 95: "Operation not supported"
        case 122: "Disk quota exceeded"
        default: "Unknown error \(code)"
        }
    }

    /// What a kernel refusal means to a file system's caller.
    public init(_ error: KernelError) {
        switch error {
        case .permissionDenied, .emptySlot, .slotOutOfRange: self = .EACCES
        case .exhausted: self = .ENOSPC
        case .limitExceeded: self = .EDQUOT
        case .notEmpty: self = .ENOTEMPTY
        default: self = .EIO
        }
    }
}
