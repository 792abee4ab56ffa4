#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The terminal a process writes to, if any.
public enum Terminal {
    /// Whether descriptor `fd` (such as 2, standard error) is a terminal.
    public static func isTerminal(_ fd: Int32) -> Bool {
        isatty(fd) == 1
    }
}
