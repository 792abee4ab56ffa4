internal import CVeneerOS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Which mount a mount is: the kernel's mount id (as `/proc/self/mountinfo` numbers
/// mounts) and the device of its file system. The kernel gives a freed mount id to the
/// next mount; together with the device it tells a mount from one made later at the
/// same place.
public struct MountIdentity: Sendable, Hashable, CustomStringConvertible {
    public var id: UInt64
    public var deviceMajor: UInt32
    public var deviceMinor: UInt32

    public init(id: UInt64, deviceMajor: UInt32, deviceMinor: UInt32) {
        self.id = id
        self.deviceMajor = deviceMajor
        self.deviceMinor = deviceMinor
    }

    /// `major:minor`, as mountinfo shows it.
    public var device: String { "\(deviceMajor):\(deviceMinor)" }

    /// Parses ``device``; nil when malformed.
    public init?(id: UInt64, device: String) {
        let parts = device.split(separator: ":")
        guard parts.count == 2, let major = UInt32(parts[0]), let minor = UInt32(parts[1]) else { return nil }
        self.init(id: id, deviceMajor: major, deviceMinor: minor)
    }

    public var description: String { "mount \(id) (device \(device))" }

    /// Whether the mount table line `entry` is this mount.
    public func matches(_ entry: MountEntry) -> Bool {
        UInt64(entry.id) == id && entry.deviceMajor == deviceMajor && entry.deviceMinor == deviceMinor
    }
}

/// What statx says of the mount holding a path: its identity and whether the path is
/// the mount's root.
struct MountFacts {
    var identity: MountIdentity
    /// nil when the kernel does not say.
    var isMountRoot: Bool?

    /// `path` relative to `directory` (`""` with `AT_EMPTY_PATH` for the descriptor
    /// itself), never following a final symbolic link.
    static func of(_ directory: Int32, _ path: String, empty: Bool = false) -> MountFacts? {
        var id: UInt64 = 0
        var major: UInt32 = 0
        var minor: UInt32 = 0
        var root: Int32 = 0
        let flags = AT_SYMLINK_NOFOLLOW | (empty ? Int32(VENEER_AT_EMPTY_PATH) : 0)
        guard veneer_statx_mount(directory, path, flags, &id, &major, &minor, &root) == 0 else { return nil }
        return MountFacts(
            identity: MountIdentity(id: id, deviceMajor: major, deviceMinor: minor),
            isMountRoot: root < 0 ? nil : root == 1)
    }
}

/// A mount target opened once: its parent directory and the target directory itself,
/// both reached without following any symbolic link. Mounts are made onto the opened
/// directory, never onto the path resolved again, so a target swapped for a link (or
/// another directory) after the checks cannot redirect a mount; and ``verifyMounted()``
/// confirms afterwards that the new mount is what the target path now leads to.
/// Used from one thread; the descriptors close when it is released.
public final class MountTarget {
    public let path: String
    /// `O_PATH` descriptor of the parent directory.
    let parent: Int32
    /// The last component of ``path``.
    let name: String
    /// `O_PATH` descriptor of the target directory (the root of whatever is mounted
    /// there already, if anything).
    let directory: Int32
    /// The mount that held the target directory when it was opened.
    let underlying: MountIdentity

    /// Opens `path`, an absolute, normalized path other than `/`.
    public init(opening path: String) throws(SystemError) {
        guard path.utf8.first == UInt8(ascii: "/"), path.utf8.count > 1, let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else {
            throw SystemError("open", path, errno: EINVAL, detail: "a mount target is an absolute path other than /")
        }
        let parentPath = slash == path.utf8.startIndex ? "/" : String(decoding: path.utf8[..<slash], as: UTF8.self)
        let name = String(decoding: path.utf8[path.utf8.index(after: slash)...], as: UTF8.self)
        let parent = try PathSafety.openDirectoryWithoutSymlinks(parentPath)
        let directory = openat(parent, name, Int32(VENEER_O_PATH) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if directory < 0 {
            var code = Glibc.errno
            // O_NOFOLLOW with O_DIRECTORY refuses a final symbolic link as "not a directory".
            var st = stat()
            if code == ENOTDIR, fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0, st.st_mode & S_IFMT == S_IFLNK {
                code = ELOOP
            }
            close(parent)
            throw SystemError("open", path, errno: code, detail: code == ELOOP ? "the target is a symbolic link" : nil)
        }
        guard let facts = MountFacts.of(directory, "", empty: true) else {
            let code = Glibc.errno
            close(directory)
            close(parent)
            throw SystemError("statx", path, errno: code == 0 ? ENOSYS : code, detail: "the kernel does not report mount ids")
        }
        self.path = path
        self.parent = parent
        self.name = name
        self.directory = directory
        self.underlying = facts.identity
    }

    deinit {
        close(directory)
        close(parent)
    }

    /// A path that mount(2) resolves to the opened directory, whatever its name now.
    var descriptorPath: String { "/proc/self/fd/\(directory)" }

    /// Where the opened directory is now, as the kernel names it.
    public func currentPath() -> String? {
        Self.readLink("/proc/self/fd/\(directory)")
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = buffer.withUnsafeMutableBufferPointer { pointer in
            pointer.baseAddress.map { base in
                base.withMemoryRebound(to: CChar.self, capacity: pointer.count) { readlink(path, $0, pointer.count - 1) }
            } ?? -1
        }
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }

    /// The mount the target path leads to now: the mount on top at `name` in the opened
    /// parent, provided the parent is still at the target's parent path and the mount is
    /// a new one on the opened directory. Throws when a mount just made is not there,
    /// because the target was renamed, swapped or covered meanwhile.
    func verifyMounted(operation: String) throws(SystemError) -> MountIdentity {
        waitForRenamesInParent()
        let parentPath = path.utf8.lastIndex(of: UInt8(ascii: "/")).map { slash in
            slash == path.utf8.startIndex ? "/" : String(decoding: path.utf8[..<slash], as: UTF8.self)
        }
        guard let facts = MountFacts.of(parent, name), facts.isMountRoot != false, facts.identity.id != underlying.id,
            let parentNow = Self.readLink("/proc/self/fd/\(parent)"), parentNow == parentPath
        else {
            throw SystemError(
                operation, path, errno: ENOENT, detail: "the target was renamed or replaced while it was being mounted")
        }
        return facts.identity
    }

    /// Waits until no rename in the parent directory is under way. A rename checks that
    /// it moves no mount point before it moves anything, so one that checked before the
    /// new mount was attached could still move the target away after a look at it.
    /// Renames hold the directory's lock throughout; a lookup of a name that is in no
    /// cache needs that lock too, so it returns only once such a rename is done, and
    /// every later rename sees the mount point and fails.
    private func waitForRenamesInParent() {
        var st = stat()
        _ = fstatat(parent, ".veneer-barrier-\(UInt64.random(in: 0...UInt64.max))", &st, AT_SYMLINK_NOFOLLOW)
    }

    /// Makes the mount just verified at the target (`identity`) read-only: a bind
    /// mount, which mount(2) makes writable and only a remount of that mount, through
    /// a descriptor of its root, turns read-only.
    func remountReadOnly(_ identity: MountIdentity, operation: String) throws(SystemError) {
        let root = openat(parent, name, Int32(VENEER_O_PATH) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if root < 0 { throw .last(operation, path) }
        defer { close(root) }
        guard MountFacts.of(root, "", empty: true)?.identity == identity else {
            throw SystemError(operation, path, errno: ENOENT, detail: "the target was replaced while it was being mounted")
        }
        let flags = UInt(MS_REMOUNT) | UInt(MS_BIND) | UInt(MS_RDONLY)
        if veneer_mount("none", "/proc/self/fd/\(root)", nil, flags, nil) != 0 {
            throw SystemError(operation, path, errno: Glibc.errno, detail: "cannot make the bind mount read-only")
        }
    }

    /// Removes the mount on top of the opened directory: a mount just made there that
    /// ``verifyMounted(operation:)`` did not find at the target.
    func detachTop() {
        _ = veneer_umount(descriptorPath, Int32(MNT_DETACH))
    }
}
