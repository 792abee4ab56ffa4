internal import CVeneerOS
import VeneerOS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The bare system calls, with no checks, locking or diagnosis: the baseline that the
/// benchmark compares the daemon's mounts against. Only the benchmark links it.
public enum BaselineMount {
    /// One mount(2) call with the options as given.
    public static func mount(type: String, source: String, target: String, options: String) throws(SystemError) {
        if veneer_mount(source, target, type, 0, options) != 0 {
            throw SystemError.last("mount", target)
        }
    }

    /// An overlay built with fsopen, one `fsconfig(lowerdir+)` per layer, fsmount and
    /// move_mount.
    public static func overlay(lowers: [String], upper: String?, work: String?, target: String) throws(SystemError) {
        let fsfd = veneer_fsopen("overlay", UInt32(VENEER_FSOPEN_CLOEXEC))
        if fsfd < 0 { throw SystemError.last("fsopen", target) }
        defer { close(fsfd) }
        let setString = UInt32(VENEER_FSCONFIG_SET_STRING)
        if veneer_fsconfig(fsfd, setString, "source", "overlay", 0) != 0 { throw SystemError.last("fsconfig source", target) }
        for layer in lowers where veneer_fsconfig(fsfd, setString, "lowerdir+", layer, 0) != 0 {
            throw SystemError.last("fsconfig lowerdir+", layer)
        }
        if let upper, veneer_fsconfig(fsfd, setString, "upperdir", upper, 0) != 0 {
            throw SystemError.last("fsconfig upperdir", upper)
        }
        if let work, veneer_fsconfig(fsfd, setString, "workdir", work, 0) != 0 {
            throw SystemError.last("fsconfig workdir", work)
        }
        if veneer_fsconfig(fsfd, UInt32(VENEER_FSCONFIG_CMD_CREATE), nil, nil, 0) != 0 {
            throw SystemError.last("fsconfig create", target)
        }
        let mountFD = veneer_fsmount(fsfd, UInt32(VENEER_FSMOUNT_CLOEXEC), 0)
        if mountFD < 0 { throw SystemError.last("fsmount", target) }
        defer { close(mountFD) }
        if veneer_move_mount(mountFD, "", AT_FDCWD, target, UInt32(VENEER_MOVE_MOUNT_F_EMPTY_PATH)) != 0 {
            throw SystemError.last("move_mount", target)
        }
    }

    public static func unmount(_ target: String) throws(SystemError) {
        if veneer_umount(target, 0) != 0 { throw SystemError.last("umount", target) }
    }
}
