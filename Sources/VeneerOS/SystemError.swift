#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call: which operation, on which path, and the errno.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var errno: Int32
    /// What the kernel or a library said beyond the errno (for example which layer
    /// of an overlay could not be resolved), or nil.
    public var detail: String?

    public init(_ operation: String, _ path: String, errno: Int32, detail: String? = nil) {
        self.operation = operation
        self.path = path
        self.errno = errno
        self.detail = detail
    }

    /// Builds the error from the calling thread's current errno.
    public static func last(_ operation: String, _ path: String) -> SystemError {
        SystemError(operation, path, errno: Glibc.errno)
    }

    public var reason: String {
        guard let text = strerror(errno) else { return "errno \(errno)" }
        return String(cString: text)
    }

    public var description: String {
        let base = "\(operation) \(path): \(reason) (errno \(errno))"
        guard let detail, !detail.isEmpty else { return base }
        return base + ": " + detail
    }

    public var isNotFound: Bool { errno == ENOENT }
    public var isNoSpace: Bool { errno == ENOSPC || errno == EDQUOT }
    /// A path that vanished or changed shape (missing, not a directory, a link).
    public var isPathProblem: Bool { errno == ENOENT || errno == ENOTDIR || errno == ELOOP }
    /// EBUSY: the target is in use.
    public var isBusy: Bool { errno == EBUSY }
    /// EINVAL from umount: the path is not a mount point.
    public var isNotMounted: Bool { errno == EINVAL }
    public var exists: Bool { errno == EEXIST }
    /// ENOTEMPTY, for callers that compare ``errno`` without libc.
    public static let notEmpty = ENOTEMPTY
    /// An errno that says what was asked cannot be made (a name taken or too long, a
    /// link where a directory was needed, a link to a directory, too many links, an
    /// argument out of range): the fault of the input, not of the system.
    public var isRefusal: Bool {
        [EEXIST, ELOOP, ENOTDIR, EINVAL, EPERM, EISDIR, ENAMETOOLONG, EXDEV, EMLINK].contains(errno)
    }
}
