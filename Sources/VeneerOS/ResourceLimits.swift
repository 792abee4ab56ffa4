#if canImport(Glibc)
import Glibc
#endif

/// The process's own resource limits.
public enum ResourceLimits {
    /// Raises the soft limit on open descriptors to the hard limit (each client
    /// connection holds one), and returns the soft limit now in force; nil if it
    /// cannot be read.
    @discardableResult
    public static func raiseOpenFiles() -> UInt64? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 {
                return UInt64(raised.rlim_cur)
            }
        }
        return UInt64(limit.rlim_cur)
    }
}
