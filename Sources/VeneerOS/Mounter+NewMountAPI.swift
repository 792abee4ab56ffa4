internal import CMount
internal import CVeneerOS
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// The new mount API (fsopen, fsconfig, fsmount, move_mount): overlays whose options
// do not fit one page.

extension Mounter {
    /// fsopen, one fsconfig per layer and option, the super block and fsmount: a
    /// descriptor of an overlay mounted nowhere yet.
    static func detachedOverlay(
        lowers: [String], upper: String?, work: String?, extra: [String], target: String, readOnly: Bool,
        operation: String, diagnose: () -> String?
    ) throws(SystemError) -> Int32 {
        let fsfd = veneer_fsopen("overlay", UInt32(VENEER_FSOPEN_CLOEXEC))
        if fsfd < 0 {
            throw SystemError(operation, target, errno: Glibc.errno, detail: "fsopen(overlay) failed")
        }
        defer { close(fsfd) }
        func fail(_ step: String) -> SystemError {
            let code = Glibc.errno
            let log = readContextLog(fsfd)
            return SystemError(operation, target, errno: code, detail: log ?? diagnose() ?? step)
        }
        let setString = UInt32(VENEER_FSCONFIG_SET_STRING)
        if veneer_fsconfig(fsfd, setString, "source", "overlay", 0) != 0 { throw fail("source") }
        for layer in lowers where veneer_fsconfig(fsfd, setString, "lowerdir+", layer, 0) != 0 {
            throw fail("lower layer \(layer)")
        }
        // upperdir and workdir values are unescaped by the kernel; lowerdir+ values are not.
        if let upper, veneer_fsconfig(fsfd, setString, "upperdir", escapeBackslashes(upper), 0) != 0 {
            throw fail("upper layer \(upper)")
        }
        if let work, veneer_fsconfig(fsfd, setString, "workdir", escapeBackslashes(work), 0) != 0 {
            throw fail("work directory \(work)")
        }
        for option in extra {
            let rc: Int32
            if let equals = option.firstIndex(of: "=") {
                let key = String(option[..<equals])
                let value = String(option[option.index(after: equals)...])
                rc = veneer_fsconfig(fsfd, setString, key, value, 0)
            } else {
                rc = veneer_fsconfig(fsfd, UInt32(VENEER_FSCONFIG_SET_FLAG), option, nil, 0)
            }
            if rc != 0 { throw fail("option \(option)") }
        }
        if veneer_fsconfig(fsfd, UInt32(VENEER_FSCONFIG_CMD_CREATE), nil, nil, 0) != 0 {
            throw fail("creating the overlay")
        }
        let attributes = readOnly ? UInt32(VENEER_MOUNT_ATTR_RDONLY) : 0
        let mountFD = veneer_fsmount(fsfd, UInt32(VENEER_FSMOUNT_CLOEXEC), attributes)
        if mountFD < 0 { throw fail("fsmount") }
        return mountFD
    }

    /// Moves the detached mount `mountFD` onto the opened target directory.
    static func attachDetached(_ mountFD: Int32, at target: MountTarget, operation: String) throws(SystemError) {
        let flags = UInt32(VENEER_MOVE_MOUNT_F_EMPTY_PATH | VENEER_MOVE_MOUNT_T_EMPTY_PATH)
        if veneer_move_mount(mountFD, "", target.directory, "", flags) != 0 {
            throw SystemError(operation, target.path, errno: Glibc.errno, detail: "move_mount failed")
        }
    }

    static func mountOverlayWithDescriptorPaths(
        lowers: [String], upper: String?, work: String?, extra: [String], target: MountTarget, readOnly: Bool,
        operation: String, diagnose: () -> String?
    ) throws(SystemError) {
        var descriptors: [Int32] = []
        defer { for fd in descriptors { close(fd) } }
        func openLayer(_ path: String, _ role: String) throws(SystemError) -> Int32 {
            let fd = open(path, Int32(VENEER_O_PATH) | O_DIRECTORY | O_CLOEXEC)
            if fd < 0 {
                throw SystemError(operation, target.path, errno: Glibc.errno, detail: "\(role) \(path)")
            }
            descriptors.append(fd)
            return fd
        }
        var lowerNames: [String] = []
        lowerNames.reserveCapacity(lowers.count)
        for layer in lowers { lowerNames.append(String(try openLayer(layer, "lower layer"))) }
        var upperName: String?
        var workName: String?
        if let upper { upperName = String(try openLayer(upper, "upper layer")) }
        if let work { workName = String(try openLayer(work, "work directory")) }
        let data = overlayOptions(lowers: lowerNames, upper: upperName, work: workName, extra: extra)
        let page = singleCallOptionLimit + optionsMargin
        if data.utf8.count >= page {
            throw SystemError(
                operation, target.path, errno: E2BIG,
                detail: "\(data.utf8.count) bytes of options do not fit in one mount(2) call even with descriptor paths")
        }
        let flags = readOnly ? UInt(MS_RDONLY) : 0
        if veneer_mount_in_directory("/proc/self/fd", "overlay", String(target.directory), "overlay", flags, data) != 0 {
            let code = Glibc.errno
            throw SystemError(operation, target.path, errno: code, detail: diagnose())
        }
    }

    /// Messages the kernel queued on a file-system context ("e overlayfs: …"), errors
    /// and warnings joined, or nil.
    static func readContextLog(_ fd: Int32) -> String? {
        let saved = Glibc.errno
        defer { Glibc.errno = saved }
        var messages: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while messages.count < 16 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            var text = String(decoding: buffer[..<n], as: UTF8.self)
            while text.hasSuffix("\n") { text.removeLast() }
            if text.hasPrefix("e ") || text.hasPrefix("w ") {
                messages.append(String(text.dropFirst(2)))
            }
        }
        return messages.isEmpty ? nil : messages.joined(separator: "; ")
    }

}
