internal import CMount
internal import CVeneerOS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One line of `/proc/self/mountinfo`.
public struct MountEntry: Sendable, Equatable {
    /// The kernel's mount ID (unique while the mount exists).
    public var id: Int
    /// The mount ID of the mount this one is attached to.
    public var parentID: Int
    /// Where it is mounted (escapes such as `\040` decoded).
    public var target: String
    /// File system type, e.g. `overlay`, `ext4`.
    public var fsType: String
    /// Mount source, e.g. `overlay`, `/dev/vda`; empty when there is none.
    public var source: String
    /// Directory of the source file system shown at `target` (`/` unless a bind mount).
    public var root: String
    /// All options, per-mount and file-system ones, comma-separated.
    public var options: String
    /// The per-mount options alone (`ro`/`rw`, `nosuid`, `relatime`, ...).
    public var mountOptions: String
    /// The device of the mounted file system (`major:minor` in mountinfo).
    public var deviceMajor: UInt32
    public var deviceMinor: UInt32

    public init(
        id: Int, parentID: Int, target: String, fsType: String, source: String, root: String, options: String,
        mountOptions: String, deviceMajor: UInt32 = 0, deviceMinor: UInt32 = 0
    ) {
        self.deviceMajor = deviceMajor
        self.deviceMinor = deviceMinor
        self.id = id
        self.parentID = parentID
        self.target = target
        self.fsType = fsType
        self.source = source
        self.root = root
        self.options = options
        self.mountOptions = mountOptions
    }

    /// Whether the mount is read-only (per-mount `ro`).
    public var isReadOnly: Bool {
        mountOptions.split(separator: ",").contains("ro")
    }
}

extension MountEntry {
    /// Whether `path` is a whole value, or one `:`-separated element of a value, among
    /// the comma-separated options (`lowerdir=/a:/b,upperdir=/c`).
    public func optionsName(_ path: String) -> Bool {
        options.split(separator: ",").contains { option in
            guard let equals = option.firstIndex(of: "=") else { return false }
            return option[option.index(after: equals)...].split(separator: ":").contains { $0.utf8.elementsEqual(path.utf8) }
        }
    }
}

/// The calling process's mounts, read through libmount's table parser.
public enum MountTable {
    public static let mountInfoPath = "/proc/self/mountinfo"

    /// Every mount visible to this process, in the kernel's order (a mount stacked on
    /// another at the same target comes after it).
    public static func current() throws(SystemError) -> [MountEntry] {
        try read(mountInfoPath)
    }

    /// The mounts at `target`, bottom first (the last one is what a path lookup sees).
    public static func entries(at target: String) throws(SystemError) -> [MountEntry] {
        try current().filter { $0.target == target }
    }

    /// The mount `identity` in `entries`, if it still exists.
    public static func entry(of identity: MountIdentity, in entries: [MountEntry]) -> MountEntry? {
        entries.first { identity.matches($0) }
    }

    /// The mount on top at `target` in `entries` (the last mounted there).
    public static func topEntry(at target: String, in entries: [MountEntry]) -> MountEntry? {
        entries.last { $0.target == target }
    }

    /// Whether `path` (not following a final symbolic link) is the root of a mount,
    /// bind mounts of a directory of the same file system included.
    public static func isMountPoint(_ path: String) -> Bool {
        switch veneer_is_mount_root(path) {
        case 1: return true
        case 0: return false
        case -2:
            // The kernel predates STATX_ATTR_MOUNT_ROOT: look the path up in the table.
            guard let real = try? FileSystem.realPath(path), let entries = try? current() else { return false }
            return entries.contains { $0.target == real }
        default:
            return false
        }
    }

    /// Parses a mountinfo-format file.
    static func read(_ file: String) throws(SystemError) -> [MountEntry] {
        let result: Result<[MountEntry], SystemError> = LibMount.lock.withLock { _ in
            guard let table = mnt_new_table() else {
                return .failure(SystemError("read mount table", file, errno: ENOMEM))
            }
            defer { mnt_unref_table(table) }
            let rc = mnt_table_parse_file(table, file)
            if rc != 0 {
                let code: Int32 = rc < 0 && -rc < 4096 ? -rc : EINVAL
                return .failure(SystemError("read mount table", file, errno: code, detail: "libmount could not parse it"))
            }
            guard let iterator = mnt_new_iter(Int32(MNT_ITER_FORWARD)) else {
                return .failure(SystemError("read mount table", file, errno: ENOMEM))
            }
            defer { mnt_free_iter(iterator) }
            var entries: [MountEntry] = []
            var fs: OpaquePointer?
            while mnt_table_next_fs(table, iterator, &fs) == 0 {
                guard let fs else { continue }
                // glibc's encoding of dev_t.
                let device = UInt64(mnt_fs_get_devno(fs))
                let major = UInt32(truncatingIfNeeded: ((device >> 8) & 0xfff) | ((device >> 32) & ~UInt64(0xfff)))
                let minor = UInt32(truncatingIfNeeded: (device & 0xff) | ((device >> 12) & ~UInt64(0xff)))
                entries.append(
                    MountEntry(
                        id: Int(mnt_fs_get_id(fs)),
                        parentID: Int(mnt_fs_get_parent_id(fs)),
                        target: string(mnt_fs_get_target(fs)),
                        fsType: string(mnt_fs_get_fstype(fs)),
                        source: string(mnt_fs_get_source(fs)),
                        root: string(mnt_fs_get_root(fs)),
                        options: string(mnt_fs_get_options(fs)),
                        mountOptions: string(mnt_fs_get_vfs_options(fs)),
                        deviceMajor: major, deviceMinor: minor))
            }
            return .success(entries)
        }
        return try result.get()
    }

    private static func string(_ pointer: UnsafePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        return String(cString: pointer)
    }
}
