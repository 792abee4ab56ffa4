// sd-daemon.h includes <sys/socket.h>; with whole-module optimization the socket
// declarations are then attributed to CSystemd, so this file imports it as well.
internal import CSystemd
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum UnixSocket {
    /// Longest socket path the kernel accepts (sun_path less the terminating NUL).
    public static let maxPathBytes = 107

    /// True when something accepts connections on the socket at `path`.
    public static func isListening(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count <= maxPathBytes else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let len = socklen_t(MemoryLayout<sockaddr_un>.size)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, len) }
        }
        return rc == 0
    }

    /// The path the Unix socket `fd` is bound to, or nil when it has none (or is not one).
    public static func boundPath(_ fd: Int32) -> String? {
        var addr = sockaddr_un()
        var len = socklen_t(MemoryLayout<sockaddr_un>.size)
        let rc = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard rc == 0, addr.sun_family == sa_family_t(AF_UNIX) else { return nil }
        let bytes = withUnsafeBytes(of: &addr.sun_path) { raw in
            Array(raw.prefix(max(0, Int(len) - MemoryLayout<sa_family_t>.size)).prefix { $0 != 0 })
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }
}

extension UnixSocket {
    /// Creates a listening stream socket at `path` with `mode`. The mode is set before
    /// listen(2), so no client can connect while the socket is still open to others.
    public static func bindListening(path: String, mode: UInt32, backlog: Int32 = 256) throws(SystemError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw .last("socket", path) }
        try UnixSocket.withAddress(of: path, socket: fd, operation: "bind") { bind(fd, $0, $1) }
        if chmod(path, mode_t(mode)) != 0 || listen(fd, backlog) != 0 {
            let error = SystemError.last("listen", path)
            close(fd)
            unlink(path)
            throw error
        }
        return fd
    }
}

extension UnixSocket {
    /// Calls `call` (bind or connect) with the address of `path`; when the path is too
    /// long or the call fails, closes `fd` and throws.
    static func withAddress(
        of path: String, socket fd: Int32, operation: String,
        _ call: (UnsafePointer<sockaddr>, socklen_t) -> Int32
    ) throws(SystemError) {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count <= maxPathBytes else {
            close(fd)
            throw SystemError(operation, path, errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let len = socklen_t(MemoryLayout<sockaddr_un>.size)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call($0, len) }
        }
        if rc != 0 {
            let error = SystemError.last(operation, path)
            close(fd)
            throw error
        }
    }
}

/// A blocking stream connection to a Unix socket, for tools that want the least
/// overhead per request (the benchmark's HTTP client).
public final class UnixStreamConnection {
    private var fd: Int32

    public init(path: String) throws(SystemError) {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw .last("socket", path) }
        try UnixSocket.withAddress(of: path, socket: fd, operation: "connect") { connect(fd, $0, $1) }
    }

    deinit { close(fd) }

    /// Makes a read that waits longer than `seconds` fail with EAGAIN instead of blocking.
    public func setReadTimeout(seconds: Int) throws(SystemError) {
        var value = timeval(tv_sec: seconds, tv_usec: 0)
        if setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size)) != 0 {
            throw .last("setsockopt", "socket")
        }
    }

    public func writeAll(_ bytes: [UInt8]) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw .last("write", "socket")
            }
            offset += n
        }
    }

    /// Reads what is available (at least one byte); an empty result means end of stream.
    public func read(into buffer: inout [UInt8], max: Int = 65536) throws(SystemError) {
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: max))
        while true {
            let n = buffer[start...].withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, max) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                buffer.removeLast(max)
                throw .last("read", "socket")
            }
            buffer.removeLast(max - n)
            return
        }
    }
}
