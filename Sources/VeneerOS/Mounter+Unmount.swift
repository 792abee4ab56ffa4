internal import CMount
internal import CVeneerOS
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension Mounter {
    /// Unmounts the file system mounted at `target` (the topmost one if several are
    /// stacked there). `lazy` detaches it now and lets the kernel finish once it is no
    /// longer busy. A final symbolic link at `target` is not followed.
    public static func unmount(_ target: String, lazy: Bool = false) throws(SystemError) {
        let flags = Int32(UMOUNT_NOFOLLOW) | (lazy ? Int32(MNT_DETACH) : 0)
        if veneer_umount(target, flags) == 0 { return }
        let code = Glibc.errno
        let detail: String?
        switch code {
        case EINVAL: detail = "not a mount point"
        case EBUSY: detail = "target is busy (open files, working directories or mounts beneath it); a lazy unmount detaches it anyway"
        default: detail = nil
        }
        throw SystemError(lazy ? "unmount (lazy)" : "unmount", target, errno: code, detail: detail)
    }

    /// Unmounts the mount `expected` at `target`, and only that one: the parent of
    /// `target` is opened without following links, the mount on top at the last
    /// component is checked to be `expected`, and that component is unmounted through
    /// the opened parent (a mount point cannot be renamed, so the name still holds it).
    /// Returns false, unmounting nothing, when `target` does not lead to `expected`
    /// (the mount was moved, replaced, covered by another, or is gone).
    public static func unmount(_ target: String, expected: MountIdentity, lazy: Bool = false) throws(SystemError) -> Bool {
        guard target.utf8.first == UInt8(ascii: "/"), target.utf8.count > 1, let slash = target.utf8.lastIndex(of: UInt8(ascii: "/")) else {
            return false
        }
        let parentPath = slash == target.utf8.startIndex ? "/" : String(decoding: target.utf8[..<slash], as: UTF8.self)
        let name = String(decoding: target.utf8[target.utf8.index(after: slash)...], as: UTF8.self)
        let parent: Int32
        do {
            parent = try PathSafety.openDirectoryWithoutSymlinks(parentPath)
        } catch where error.isPathProblem {
            return false
        }
        defer { close(parent) }
        guard let facts = MountFacts.of(parent, name), facts.isMountRoot != false, facts.identity == expected else {
            return false
        }
        let flags = Int32(UMOUNT_NOFOLLOW) | (lazy ? Int32(MNT_DETACH) : 0)
        if veneer_umount("/proc/self/fd/\(parent)/\(name)", flags) == 0 { return true }
        let code = Glibc.errno
        if code == EINVAL || code == ENOENT { return false }
        let detail = code == EBUSY
            ? "target is busy (open files, working directories or mounts beneath it); a lazy unmount detaches it anyway"
            : nil
        throw SystemError(lazy ? "unmount (lazy)" : "unmount", target, errno: code, detail: detail)
    }
}
