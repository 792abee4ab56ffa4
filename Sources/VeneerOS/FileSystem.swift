internal import CVeneerOS
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// File-system operations used by the snapshotter. Every call is blocking;
/// callers run them off the cooperative thread pool.
public enum FileSystem {
    public struct Owner: Sendable, Equatable {
        public var uid: UInt32
        public var gid: UInt32
        public init(uid: UInt32, gid: UInt32) {
            self.uid = uid
            self.gid = gid
        }
    }

    public enum EntryType: Sendable, Equatable {
        case missing, directory, regular, symlink, other
    }

    public static func makeDirectory(_ path: String, mode: UInt32 = 0o755) throws(SystemError) {
        if mkdir(path, mode_t(mode)) != 0 {
            throw .last("mkdir", path)
        }
        // mkdir applies the umask; set the mode exactly.
        if chmod(path, mode_t(mode)) != 0 {
            throw .last("chmod", path)
        }
    }

    /// Creates the directory and its missing parents; an existing directory is fine.
    public static func makeDirectories(_ path: String, mode: UInt32 = 0o755) throws(SystemError) {
        if isDirectoryFollowingLinks(path) { return }
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, mode_t(mode)) != 0 && Glibc.errno != EEXIST {
                throw .last("mkdir", prefix)
            }
        }
        guard isDirectoryFollowingLinks(path) else {
            throw SystemError("mkdir", path, errno: ENOTDIR)
        }
    }

    /// True for a directory or a symbolic link to one.
    public static func isDirectoryFollowingLinks(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }

    public static func rename(_ from: String, to: String) throws(SystemError) {
        if Glibc.rename(from, to) != 0 {
            throw .last("rename", "\(from) -> \(to)")
        }
    }

    /// Swaps two paths in one step (renameat2 RENAME_EXCHANGE); neither may be missing.
    public static func exchange(_ a: String, _ b: String) throws(SystemError) {
        if veneer_rename_exchange(a, b) != 0 { throw .last("exchange", a + " and " + b) }
    }

    /// Makes the entries of a directory (creations, renames, removals) durable.
    public static func syncDirectory(_ path: String) throws(SystemError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw .last("open", path) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw .last("fsync", path) }
    }

    public static func entryType(_ path: String) -> EntryType {
        var st = stat()
        if lstat(path, &st) != 0 { return .missing }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .regular
        case S_IFLNK: return .symlink
        default: return .other
        }
    }

    public static func owner(_ path: String) throws(SystemError) -> Owner {
        var st = stat()
        if lstat(path, &st) != 0 { throw .last("stat", path) }
        return Owner(uid: st.st_uid, gid: st.st_gid)
    }

    public static func setOwner(_ path: String, _ owner: Owner) throws(SystemError) {
        if lchown(path, owner.uid, owner.gid) != 0 { throw .last("chown", path) }
    }

    public static func setMode(_ path: String, _ mode: UInt32) throws(SystemError) {
        if chmod(path, mode_t(mode)) != 0 { throw .last("chmod", path) }
    }

    public static func mode(_ path: String) throws(SystemError) -> UInt32 {
        var st = stat()
        if lstat(path, &st) != 0 { throw .last("stat", path) }
        return UInt32(st.st_mode & 0o7777)
    }

    /// Names in a directory, without `.` and `..`.
    public static func listDirectory(_ path: String) throws(SystemError) -> [String] {
        guard let dir = opendir(path) else { throw .last("opendir", path) }
        defer { closedir(dir) }
        return names(in: dir)
    }

    /// The names left in an open directory stream, without `.` and `..`.
    private static func names(in dir: OpaquePointer) -> [String] {
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { ptr in
                ptr.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Removes a file or a directory tree without following symbolic links and
    /// without crossing into another mount: a directory that is the root of a mount
    /// (another file system, or a bind mount of this one) is left in place with what
    /// holds it, and returned. A missing path is not an error; everything else that
    /// cannot be removed is.
    @discardableResult
    public static func removeTree(_ path: String) throws(SystemError) -> [String] {
        var st = stat()
        if lstat(path, &st) != 0 {
            if Glibc.errno == ENOENT { return [] }
            throw .last("stat", path)
        }
        if st.st_mode & S_IFMT != S_IFDIR {
            if unlink(path) != 0 && Glibc.errno != ENOENT { throw .last("unlink", path) }
            return []
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw .last("open", path) }
        guard let mount = MountFacts.of(fd, "", empty: true), mount.isMountRoot != true else {
            // The path itself is a mount point (or the kernel cannot tell): remove nothing.
            close(fd)
            return [path]
        }
        var kept: [String] = []
        try removeContents(of: fd, path: path, mount: mount.identity.id, kept: &kept)
        if kept.isEmpty, rmdir(path) != 0 && Glibc.errno != ENOENT { throw .last("rmdir", path) }
        return kept
    }

    /// A directory stream over `fd`, which it then owns; on failure `fd` is closed.
    private static func directoryStream(_ fd: Int32, path: String) throws(SystemError) -> OpaquePointer {
        guard let dir = fdopendir(fd) else {
            let error = SystemError.last("fdopendir", path)
            close(fd)
            throw error
        }
        return dir
    }

    /// Empties the directory open at `fd` (in the mount `mount`) and closes `fd`;
    /// mount points found below are added to `kept` and left alone.
    private static func removeContents(of fd: Int32, path: String, mount: UInt64, kept: inout [String]) throws(SystemError) {
        let dir = try directoryStream(fd, path: path)
        defer { closedir(dir) }
        for name in names(in: dir) {
            let child = path + "/" + name
            var st = stat()
            if fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 {
                if Glibc.errno == ENOENT { continue }
                throw .last("stat", child)
            }
            if st.st_mode & S_IFMT == S_IFDIR {
                let childFD = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if childFD < 0 {
                    // Removed by someone else meanwhile: nothing left to do for it.
                    if Glibc.errno == ENOENT { continue }
                    throw .last("open", child)
                }
                // Opening a mount point enters the mount on it.
                guard let facts = MountFacts.of(childFD, "", empty: true), facts.identity.id == mount else {
                    close(childFD)
                    kept.append(child)
                    continue
                }
                let before = kept.count
                try removeContents(of: childFD, path: child, mount: mount, kept: &kept)
                if kept.count == before, unlinkat(fd, name, AT_REMOVEDIR) != 0 && Glibc.errno != ENOENT {
                    throw .last("rmdir", child)
                }
            } else if unlinkat(fd, name, 0) != 0 && Glibc.errno != ENOENT {
                throw .last("unlink", child)
            }
        }
    }

    public struct DiskUsage: Sendable, Equatable {
        /// Bytes allocated (st_blocks × 512), each inode counted once.
        public var bytes: Int64
        /// Distinct inodes, the top directory included.
        public var inodes: Int64
        public init(bytes: Int64 = 0, inodes: Int64 = 0) {
            self.bytes = bytes
            self.inodes = inodes
        }
    }

    /// Walks a tree without following links and counts allocated bytes and distinct
    /// inodes (hard links once). A missing path counts as empty.
    public static func diskUsage(_ path: String) throws(SystemError) -> DiskUsage {
        var st = stat()
        if lstat(path, &st) != 0 {
            if Glibc.errno == ENOENT { return DiskUsage() }
            throw .last("stat", path)
        }
        var seen = Set<InodeID>()
        var usage = DiskUsage()
        seen.insert(InodeID(dev: st.st_dev, ino: st.st_ino))
        usage.bytes += Int64(st.st_blocks) * 512
        usage.inodes += 1
        if st.st_mode & S_IFMT == S_IFDIR {
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd < 0 { throw .last("open", path) }
            guard let mount = MountFacts.of(fd, "", empty: true) else {
                close(fd)
                return usage
            }
            try addUsage(of: fd, path: path, mount: mount.identity.id, seen: &seen, usage: &usage)
        }
        return usage
    }

    private struct InodeID: Hashable {
        var dev: UInt
        var ino: UInt
    }

    /// Adds what the directory open at `fd` holds, without entering other mounts.
    private static func addUsage(
        of fd: Int32, path: String, mount: UInt64, seen: inout Set<InodeID>, usage: inout DiskUsage
    ) throws(SystemError) {
        let dir = try directoryStream(fd, path: path)
        defer { closedir(dir) }
        for name in names(in: dir) {
            var st = stat()
            if fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 {
                if Glibc.errno == ENOENT { continue }
                throw .last("stat", path + "/" + name)
            }
            guard seen.insert(InodeID(dev: UInt(st.st_dev), ino: UInt(st.st_ino))).inserted else { continue }
            usage.bytes += Int64(st.st_blocks) * 512
            usage.inodes += 1
            if st.st_mode & S_IFMT == S_IFDIR {
                let childFD = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if childFD < 0 {
                    if Glibc.errno == ENOENT { continue }
                    throw .last("open", path + "/" + name)
                }
                guard MountFacts.of(childFD, "", empty: true)?.identity.id == mount else {
                    close(childFD)
                    continue
                }
                try addUsage(of: childFD, path: path + "/" + name, mount: mount, seen: &seen, usage: &usage)
            }
        }
    }

    /// Name of the file system type holding `path` (for example `ext4`, `overlay`, `tmpfs`).
    public static func fileSystemType(_ path: String) throws(SystemError) -> String {
        var type: Int64 = 0
        var blockSize: Int64 = 0
        var available: Int64 = 0
        if veneer_statfs(path, &type, &blockSize, &available) != 0 { throw .last("statfs", path) }
        let magic = UInt64(bitPattern: type)
        switch magic {
        case 0xEF53: return "ext4"
        case 0x5846_5342: return "xfs"
        case 0x9123_683E: return "btrfs"
        case 0x0102_1994: return "tmpfs"
        case 0x794C_7630: return "overlay"
        case 0x2FC1_2FC1: return "zfs"
        case 0x6573_5546: return "fuse"
        case 0x6969: return "nfs"
        case 0xF2F5_2010: return "f2fs"
        default: return "0x" + String(magic, radix: 16)
        }
    }

    /// Bytes available to unprivileged users on the file system holding `path`.
    public static func availableBytes(_ path: String) throws(SystemError) -> Int64 {
        var type: Int64 = 0
        var blockSize: Int64 = 0
        var available: Int64 = 0
        if veneer_statfs(path, &type, &blockSize, &available) != 0 { throw .last("statfs", path) }
        return available * blockSize
    }

    /// Resolves `.`/`..` and links; fails if the path does not exist.
    public static func realPath(_ path: String) throws(SystemError) -> String {
        guard let resolved = realpath(path, nil) else { throw .last("realpath", path) }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

extension FileSystem {
    /// Takes an exclusive, non-blocking lock (flock) on `path`, creating the file if
    /// needed, and returns its descriptor; the lock lasts until the descriptor is closed
    /// or the process ends. Fails with EWOULDBLOCK when another process holds it.
    public static func lockExclusive(_ path: String) throws(SystemError) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 { throw .last("open", path) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let error = SystemError.last("flock", path)
            close(fd)
            throw error
        }
        return fd
    }
}

extension SystemError {
    /// EWOULDBLOCK: a lock is held elsewhere.
    public var isLockHeld: Bool { errno == EWOULDBLOCK }
}
