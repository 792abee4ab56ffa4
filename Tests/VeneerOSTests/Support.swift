import Foundation
import Testing
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Test set-up helpers that call libc directly, independent of the code under test.
enum Fixture {
    /// Writes `bytes` to a new file and fsyncs it, so that its blocks are allocated.
    static func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw TestFailure("open \(path): errno \(errno)") }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw TestFailure("write \(path): errno \(errno)") }
            offset += n
        }
        guard fsync(fd) == 0 else { throw TestFailure("fsync \(path): errno \(errno)") }
    }

    static func writeFile(_ path: String, _ text: String) throws {
        try writeFile(path, Array(text.utf8))
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TestFailure("cannot read \(path)")
        }
        return Array(data)
    }

    static func mkdir(_ path: String, mode: mode_t = 0o755) throws {
        guard Glibc.mkdir(path, mode) == 0 else { throw TestFailure("mkdir \(path): errno \(errno)") }
    }

    static func symlink(_ target: String, at path: String) throws {
        guard Glibc.symlink(target, path) == 0 else { throw TestFailure("symlink \(path): errno \(errno)") }
    }

    static func link(_ existing: String, at path: String) throws {
        guard Glibc.link(existing, path) == 0 else { throw TestFailure("link \(path): errno \(errno)") }
    }

    static func chmod(_ path: String, _ mode: mode_t) throws {
        guard Glibc.chmod(path, mode) == 0 else { throw TestFailure("chmod \(path): errno \(errno)") }
    }

    static func exists(_ path: String) -> Bool {
        var st = Glibc.stat()
        return lstat(path, &st) == 0
    }

    static func stat(_ path: String) throws -> Glibc.stat {
        var st = Glibc.stat()
        guard lstat(path, &st) == 0 else { throw TestFailure("lstat \(path): errno \(errno)") }
        return st
    }

    static func permissions(_ path: String) throws -> UInt32 {
        UInt32(try stat(path).st_mode & 0o7777)
    }

    /// A Unix stream socket bound to `path`, listening when asked. The caller closes it.
    static func boundSocket(_ path: String, listening: Bool) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            close(fd)
            throw TestFailure("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw TestFailure("bind \(path): errno \(errno)")
        }
        if listening {
            guard listen(fd, 4) == 0 else {
                close(fd)
                throw TestFailure("listen \(path): errno \(errno)")
            }
        }
        return fd
    }
}
