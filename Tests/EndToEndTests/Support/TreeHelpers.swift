import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// File-tree helpers for end-to-end tests: writing and inspecting what mounts and
/// layer directories hold, with the libc calls Foundation does not offer.
enum Tree {
    /// A failed system call, with the path and errno.
    struct Failure: Error, CustomStringConvertible {
        var call: String
        var path: String
        var errno: Int32
        var description: String { "\(call) \(path): \(String(cString: strerror(errno))) (errno \(errno))" }
    }

    private static func check(_ result: Int32, _ call: String, _ path: String) throws {
        if result != 0 { throw Failure(call: call, path: path, errno: Glibc.errno) }
    }

    /// Writes `text` to `path` (created or truncated) and flushes it to disk.
    static func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        try write(path, bytes: Array(text.utf8), mode: mode)
    }

    /// Writes `bytes` to `path` (created or truncated) and flushes it to disk, so that
    /// the blocks are allocated when the call returns.
    static func write(_ path: String, bytes: [UInt8], mode: mode_t = 0o644) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        if fd < 0 { throw Failure(call: "open", path: path, errno: Glibc.errno) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if Glibc.errno == EINTR { continue }
                throw Failure(call: "write", path: path, errno: Glibc.errno)
            }
            offset += written
        }
        try check(fsync(fd), "fsync", path)
    }

    static func read(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8)
    }

    /// Whether anything (even a dangling symbolic link) is at `path`.
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws {
        try check(mkdir(path, mode), "mkdir", path)
    }

    /// Names in a directory, sorted.
    static func entries(_ path: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }

    /// `lstat(2)`.
    static func status(_ path: String) throws -> stat {
        var st = stat()
        try check(lstat(path, &st), "lstat", path)
        return st
    }

    /// Owner of `path` itself (not of what a symbolic link points to).
    static func setOwner(_ path: String, uid: uid_t, gid: gid_t) throws {
        try check(lchown(path, uid, gid), "lchown", path)
    }

    static func setMode(_ path: String, _ mode: mode_t) throws {
        try check(chmod(path, mode), "chmod", path)
    }

    /// Sets access and modification times of `path` itself to the same instant.
    static func setModificationTime(_ path: String, seconds: Int, nanoseconds: Int) throws {
        var times = [
            timespec(tv_sec: seconds, tv_nsec: nanoseconds),
            timespec(tv_sec: seconds, tv_nsec: nanoseconds),
        ]
        try check(utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW), "utimensat", path)
    }

    static func symlink(_ target: String, at path: String) throws {
        try check(Glibc.symlink(target, path), "symlink", path)
    }

    static func hardLink(_ existing: String, at path: String) throws {
        try check(link(existing, path), "link", path)
    }

    static func readLink(_ path: String) throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: path)
    }

    static func unlinkFile(_ path: String) throws {
        try check(unlink(path), "unlink", path)
    }

    static func removeTree(_ path: String) throws {
        try FileManager.default.removeItem(atPath: path)
    }

    /// The errno of a call that is expected to fail, or 0 when it succeeded.
    static func errnoOf(_ call: () -> Int32) -> Int32 {
        call() < 0 ? Glibc.errno : 0
    }

    /// Tries to create a file; returns 0 or the errno.
    static func createErrno(_ path: String) -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { return Glibc.errno }
        close(fd)
        return 0
    }

    /// Value of an extended attribute of `path` itself, or nil when it is not set.
    static func extendedAttribute(_ path: String, _ name: String) throws -> [UInt8]? {
        // lgetxattr(2) is not in the Glibc module; look it up in the C library.
        typealias LGetXattr = @convention(c) (
            UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?, Int
        ) -> Int
        guard let symbol = dlsym(nil, "lgetxattr") else {
            throw Failure(call: "dlsym lgetxattr", path: path, errno: ENOSYS)
        }
        let lgetxattr = unsafeBitCast(symbol, to: LGetXattr.self)
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { lgetxattr(path, name, $0.baseAddress, $0.count) }
        if count < 0 {
            if Glibc.errno == ENODATA { return nil }
            throw Failure(call: "lgetxattr \(name)", path: path, errno: Glibc.errno)
        }
        return Array(buffer.prefix(count))
    }

    static func isCharacterDevice(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFCHR }
    static func isDirectory(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFDIR }
    static func isSymlink(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFLNK }
    static func isRegular(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFREG }
    /// Permission bits with setuid, setgid and sticky.
    static func permissions(_ st: stat) -> mode_t { st.st_mode & 0o7777 }
}

/// What the daemon's mounts say about the directories of a snapshot.
enum MountPaths {
    /// The value of `name=` among the options of `mount`.
    static func option(_ name: String, in mount: Mount) -> String? {
        let prefix = name + "="
        return mount.options.first { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }

    /// The directory that takes the writes of an active snapshot: the bind source,
    /// or the overlay's upper directory.
    static func writableDirectory(_ mounts: [Mount]) throws -> String {
        guard mounts.count == 1, let mount = mounts.first else {
            throw VeneerError.internal("expected one mount, got \(mounts)")
        }
        if mount.type == "bind" { return mount.source }
        if let upper = option("upperdir", in: mount) { return upper }
        throw VeneerError.internal("mount \(mount) has no writable directory")
    }

    /// The lower directories of an overlay mount, nearest first (none for a bind mount).
    static func lowerDirectories(_ mounts: [Mount]) -> [String] {
        mounts.flatMap { mount in
            option("lowerdir", in: mount).map { $0.split(separator: ":").map(String.init) } ?? []
        }
    }

    /// Every host path the mounts refer to.
    static func referencedPaths(_ mounts: [Mount]) -> [String] {
        var paths: [String] = []
        for mount in mounts {
            if mount.type == "bind" { paths.append(mount.source) }
            for name in ["upperdir", "workdir"] {
                if let path = option(name, in: mount) { paths.append(path) }
            }
        }
        return paths + lowerDirectories(mounts)
    }
}

/// Mounting overlays whose options do not fit in one page, as containerd's mount
/// package does: the layer paths are made relative to their common directory and
/// mount(8) runs there.
enum LongMounts {
    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    static func mount(_ mounts: [Mount], at target: String) throws {
        for mount in mounts {
            let joined = mount.options.joined(separator: ",")
            guard mount.type == "overlay", joined.utf8.count >= pageSize else {
                try Mounts.mount([mount], at: target)
                continue
            }
            let (directory, options) = try compacted(mount.options)
            let result = try ProcessRun.run(
                "/bin/mount", ["-t", mount.type, mount.source, "-o", options.joined(separator: ","), target],
                in: directory)
            guard result.status == 0 else {
                throw VeneerError.internal("mount -t overlay at \(target) (in \(directory)) failed: \(result.stderr)")
            }
        }
    }

    /// The common directory of the layer paths and the options relative to it.
    static func compacted(_ options: [String]) throws -> (String, [String]) {
        let names = ["lowerdir", "upperdir", "workdir"]
        func split(_ option: String) -> (String, [String])? {
            for name in names where option.hasPrefix(name + "=") {
                return (name, option.dropFirst(name.count + 1).split(separator: ":").map(String.init))
            }
            return nil
        }
        let paths = options.compactMap(split).flatMap(\.1)
        guard var common = paths.first?.split(separator: "/", omittingEmptySubsequences: true).dropLast() else {
            throw VeneerError.internal("no layer paths in \(options)")
        }
        for path in paths {
            let parts = path.split(separator: "/", omittingEmptySubsequences: true)
            var n = 0
            while n < common.count, n < parts.count - 1, common[common.startIndex + n] == parts[n] { n += 1 }
            common = common.prefix(n)
        }
        let directory = "/" + common.joined(separator: "/")
        let prefix = directory == "/" ? "/" : directory + "/"
        let rewritten = options.map { option -> String in
            guard let (name, values) = split(option) else { return option }
            return name + "=" + values.map { String($0.dropFirst(prefix.count)) }.joined(separator: ":")
        }
        return (directory, rewritten)
    }
}

/// Like `withMounted`, for mounts whose options may exceed a page.
func withLongMounted<T>(
    _ daemon: Daemon, _ key: String, _ body: (String) async throws -> T
) async throws -> T {
    try await withMounted(daemon, key, using: LongMounts.mount, body)
}

/// What is on disk under a daemon's state root.
enum StateRoot {
    static func snapshotDirectories(_ daemon: Daemon) throws -> [String] {
        try Tree.entries(daemon.root + "/snapshots")
    }

    static func stagingEntries(_ daemon: Daemon) throws -> [String] {
        try Tree.entries(daemon.root + "/staging")
    }

    static func trashEntries(_ daemon: Daemon) throws -> [String] {
        try Tree.entries(daemon.root + "/trash")
    }

    /// Ids of the rows in the metadata database, read with the sqlite3 tool; nil when
    /// the tool is not installed.
    static func databaseIDs(_ daemon: Daemon) throws -> Set<String>? {
        let tool = "/usr/bin/sqlite3"
        guard FileManager.default.isExecutableFile(atPath: tool) else { return nil }
        let result = try ProcessRun.run(tool, ["-readonly", daemon.root + "/metadata.db", "SELECT id FROM snapshots"])
        guard result.status == 0 else {
            throw VeneerError.internal("sqlite3 failed: \(result.stderr)")
        }
        return Set(result.stdout.split(separator: "\n").map(String.init))
    }
}

/// The code of the `VeneerError` that `body` throws, or nil when it succeeds.
func errorCode<T>(_ body: () async throws -> T) async -> VeneerError.Code? {
    do {
        _ = try await body()
        return nil
    } catch let error as VeneerError {
        return error.code
    } catch {
        Issue.record("unexpected error type: \(error)")
        return .internal
    }
}
