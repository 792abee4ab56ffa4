internal import CMount
internal import CVeneerOS
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One mount to perform: a file system type, a source and options, as in
/// containerd's mount description (`bind` is a type here, as there).
public struct MountSpec: Sendable, Equatable {
    public var type: String
    public var source: String
    public var options: [String]
    /// For an overlay: the layers of its `lowerdir` option, already split (topmost
    /// first). When set, the option is not parsed again.
    public var lowerDirectories: [String]?

    public init(type: String, source: String, options: [String], lowerDirectories: [String]? = nil) {
        self.type = type
        self.source = source
        self.options = options
        self.lowerDirectories = lowerDirectories
    }
}

/// A mount made ready by ``Mounter/prepare(_:at:readOnly:)``; ``attach()`` makes it
/// visible at its target. Released without being attached, it leaves nothing behind.
/// Used from one thread.
public final class PreparedMount {
    public let target: MountTarget
    /// A descriptor of an overlay mounted nowhere yet (new mount API).
    private var detached: Int32?
    /// The whole mount, for the kinds that are made in one step.
    private var attachStep: (() throws(SystemError) -> Void)?

    init(target: MountTarget, detached: Int32?, attachStep: (() throws(SystemError) -> Void)?) {
        self.target = target
        self.detached = detached
        self.attachStep = attachStep
    }

    /// A bind mount to turn read-only once attached.
    var remountReadOnly = false

    /// Whether the costly part of the mount is done already: an overlay through the new
    /// mount API, whose super block exists and only needs moving onto the target.
    public var isDetached: Bool { detached != nil }

    /// Makes the mount visible on the opened target directory and returns which mount
    /// it is. When the target path no longer leads to the new mount (it was renamed or
    /// swapped meanwhile), the mount is taken down again and this throws. A second call
    /// does nothing and returns nil.
    @discardableResult
    public func attach() throws(SystemError) -> MountIdentity? {
        let operation: String
        if let fd = detached {
            detached = nil
            defer { close(fd) }
            operation = "mount overlay at"
            try Mounter.attachDetached(fd, at: target, operation: operation)
        } else if let step = attachStep {
            attachStep = nil
            operation = "mount at"
            try step()
        } else {
            return nil
        }
        do {
            let identity = try target.verifyMounted(operation: operation)
            if remountReadOnly { try target.remountReadOnly(identity, operation: operation) }
            return identity
        } catch {
            target.detachTop()
            throw error
        }
    }

    deinit {
        if let fd = detached { close(fd) }
    }
}

/// How an overlay was mounted.
public enum OverlayMountMethod: String, Sendable, Equatable, CaseIterable {
    /// One mount(2) through libmount with `lowerdir=a:b:...`: the options fit in a page.
    case libmount
    /// The new mount API: fsopen, one `fsconfig lowerdir+` per layer, fsmount, move_mount
    /// (Linux 6.8 and later). No length limit.
    case newMountAPI
    /// One mount(2) whose layer paths are short descriptor numbers resolved against
    /// `/proc/self/fd` (on a thread with a private working directory): for kernels
    /// without `lowerdir+`. About five bytes per layer, so 500 layers fit in a page.
    case descriptorPaths
}

/// libmount is not thread-safe: every call into it, in this module, holds this lock.
enum LibMount {
    static let lock = Mutex<Void>(())
}

/// Performs and removes mounts. Every call is blocking; callers run them off the
/// cooperative thread pool.
public enum Mounter {
    /// Bytes of a page left unused by overlay options given to mount(2), for the
    /// terminating NUL and anything libmount adds.
    static let optionsMargin = 128

    /// The most option bytes a single mount(2) call takes (one page less a margin).
    public static var singleCallOptionLimit: Int {
        let page = sysconf(Int32(_SC_PAGESIZE))
        return (page > 0 ? page : 4096) - optionsMargin
    }

    // MARK: - Mounting a description

    /// Mounts `spec` at `target` (an existing directory; no component of it may be a
    /// symbolic link) and returns which mount it made.
    ///
    /// - `bind`: a bind mount of `source` (recursive with the `rbind` option); read-only
    ///   when `readOnly` is set or the options say `ro`.
    /// - `overlay`: the `lowerdir`, `upperdir` and `workdir` options are taken apart and
    ///   mounted with ``mountOverlay(lowers:upper:work:extraOptions:at:readOnly:method:)``,
    ///   so that stacks too deep for one mount(2) call still mount.
    /// - anything else: mounted through libmount as given.
    @discardableResult
    public static func mount(_ spec: MountSpec, at target: String, readOnly: Bool = false) throws(SystemError) -> MountIdentity? {
        try prepare(spec, at: try openTarget(target, operation: "mount \(spec.type) at"), readOnly: readOnly).attach()
    }

    /// Opens `target` as ``MountTarget`` does, naming `operation` when it fails.
    public static func openTarget(_ target: String, operation: String) throws(SystemError) -> MountTarget {
        do {
            return try MountTarget(opening: target)
        } catch {
            var wrapped = error
            wrapped.operation = operation
            wrapped.path = target
            throw wrapped
        }
    }

    /// The one-step mount of a description that is not an overlay, onto the opened target.
    private static func mountPlain(_ spec: MountSpec, at target: MountTarget, readOnly: Bool) throws(SystemError) {
        var options = spec.options.filter { $0 != "ro" && $0 != "rw" }
        var type: String? = spec.type
        if spec.type == "bind" {
            type = nil
            if !options.contains("bind") && !options.contains("rbind") { options.insert("bind", at: 0) }
        }
        options.append(readOnly ? "ro" : "rw")
        try libmountMount(
            type: type, source: spec.source, target: target, options: options.joined(separator: ","),
            operation: "mount \(spec.type) at"
        ) { () -> String? in
            if FileSystem.entryType(spec.source) == .missing { return "source \(spec.source) does not exist" }
            return nil
        }
    }

    /// Does what `mount(_:at:readOnly:)` would do, up to the step that makes the mount
    /// visible: for an overlay mounted through the new mount API, the file-system
    /// context, every layer, the super block and a mount not attached anywhere
    /// (`fsmount`). ``PreparedMount/attach()`` then moves it onto `target`. Other mounts
    /// happen in one step, all of it in `attach()`. Nothing of a prepared mount shows in
    /// the mount table before `attach()`, and a prepared mount that is never attached
    /// disappears when it is released (or when the process ends).
    public static func prepare(_ spec: MountSpec, at target: MountTarget, readOnly: Bool = false) throws(SystemError) -> PreparedMount {
        let wantsReadOnly = readOnly || spec.options.contains("ro")
        guard let overlay = OverlayParts(spec) else {
            let bindReadOnly = spec.type == "bind" && wantsReadOnly
            let prepared = PreparedMount(target: target, detached: nil) { () throws(SystemError) in
                try mountPlain(spec, at: target, readOnly: wantsReadOnly && !bindReadOnly)
            }
            prepared.remountReadOnly = bindReadOnly
            return prepared
        }
        let extra = overlay.extra.filter { $0 != "ro" && $0 != "rw" }
        let readOnly = wantsReadOnly || overlay.extra.contains("ro")
        let method = chooseOverlayMethod(lowers: overlay.lowers, upper: overlay.upper, work: overlay.work, extra: extra)
        guard method == .newMountAPI, !overlay.lowers.isEmpty else {
            return PreparedMount(target: target, detached: nil) { () throws(SystemError) in
                try attachOverlay(
                    lowers: overlay.lowers, upper: overlay.upper, work: overlay.work, extra: extra,
                    at: target, readOnly: readOnly, method: method)
            }
        }
        let detached = try detachedOverlay(
            lowers: overlay.lowers, upper: overlay.upper, work: overlay.work, extra: extra, target: target.path,
            readOnly: readOnly, operation: "mount overlay at"
        ) { () -> String? in
            diagnoseLayers(lowers: overlay.lowers, upper: overlay.upper, work: overlay.work)
        }
        return PreparedMount(target: target, detached: detached, attachStep: nil)
    }

    /// The parts of an overlay description, or nil for another type.
    struct OverlayParts {
        var lowers: [String] = []
        var upper: String?
        var work: String?
        /// Options other than the layers and `ro`/`rw`.
        var extra: [String] = []

        init?(_ spec: MountSpec) {
            guard spec.type == "overlay" else { return nil }
            for option in spec.options {
                if option.utf8.starts(with: "lowerdir=".utf8) {
                    lowers = spec.lowerDirectories ?? splitLowerDirs(String(decoding: option.utf8.dropFirst(9), as: UTF8.self))
                } else if let value = option.valueAfter("upperdir=") {
                    upper = value
                } else if let value = option.valueAfter("workdir=") {
                    work = value
                } else if option != "ro" && option != "rw" {
                    extra.append(option)
                }
            }
        }
    }

    // MARK: - Overlay

    /// Mounts an overlay of `lowers` (topmost first) with an optional upper and work
    /// directory at `target`.
    ///
    /// Without `method`, libmount is used while `lowerdir=…` and the other options fit
    /// in ``singleCallOptionLimit`` and no path holds a character the option syntax
    /// reserves (`,` `:` `\` `"`); otherwise the new mount API when the kernel has
    /// `lowerdir+` (``probeNewMountAPI()``), otherwise ``OverlayMountMethod/descriptorPaths``.
    /// Returns the method used.
    @discardableResult
    public static func mountOverlay(
        lowers: [String], upper: String?, work: String?, extraOptions: [String] = [],
        at target: String, readOnly: Bool = false, method: OverlayMountMethod? = nil
    ) throws(SystemError) -> OverlayMountMethod {
        let readOnly = readOnly || extraOptions.contains("ro")
        let extra = extraOptions.filter { $0 != "ro" && $0 != "rw" }
        let chosen = method ?? chooseOverlayMethod(lowers: lowers, upper: upper, work: work, extra: extra)
        let opened = try openTarget(target, operation: "mount overlay at")
        let prepared = PreparedMount(target: opened, detached: nil) { () throws(SystemError) in
            try attachOverlay(
                lowers: lowers, upper: upper, work: work, extra: extra, at: opened, readOnly: readOnly, method: chosen)
        }
        try prepared.attach()
        return chosen
    }

    /// Mounts an overlay onto the opened target with the method given.
    private static func attachOverlay(
        lowers: [String], upper: String?, work: String?, extra: [String], at target: MountTarget, readOnly: Bool,
        method: OverlayMountMethod
    ) throws(SystemError) {
        let operation = "mount overlay at"
        if lowers.isEmpty {
            throw SystemError(operation, target.path, errno: EINVAL, detail: "an overlay needs at least one lower layer")
        }
        let diagnose = { () -> String? in
            diagnoseLayers(lowers: lowers, upper: upper, work: work)
                ?? kernelDiagnosis(lowers: lowers, upper: upper, work: work, extra: extra)
        }
        switch method {
        case .libmount:
            var options = overlayOptions(lowers: lowers, upper: upper, work: work, extra: extra)
            if readOnly { options += ",ro" }
            if options.utf8.count > singleCallOptionLimit {
                throw SystemError(
                    operation, target.path, errno: E2BIG,
                    detail: "\(options.utf8.count) bytes of options do not fit in one mount(2) call")
            }
            try libmountMount(
                type: "overlay", source: "overlay", target: target, options: options, operation: operation,
                diagnose: diagnose)
        case .newMountAPI:
            let mountFD = try detachedOverlay(
                lowers: lowers, upper: upper, work: work, extra: extra, target: target.path, readOnly: readOnly,
                operation: operation, diagnose: diagnose)
            defer { close(mountFD) }
            try attachDetached(mountFD, at: target, operation: operation)
        case .descriptorPaths:
            try mountOverlayWithDescriptorPaths(
                lowers: lowers, upper: upper, work: work, extra: extra, target: target, readOnly: readOnly,
                operation: operation, diagnose: diagnose)
        }
    }

    /// libmount while the options fit in one page and no path holds a reserved
    /// character, else the new mount API when the kernel has `lowerdir+`, else
    /// descriptor paths.
    static func chooseOverlayMethod(lowers: [String], upper: String?, work: String?, extra: [String]) -> OverlayMountMethod {
        let others = [upper, work].compactMap { $0 }
        let plain = lowers.allSatisfy(isPlainOptionValue) && others.allSatisfy(isPlainOptionValue)
        if plain && overlayOptionsLength(lowers: lowers, upper: upper, work: work, extra: extra) <= singleCallOptionLimit {
            return .libmount
        }
        return probeNewMountAPI() ? .newMountAPI : .descriptorPaths
    }

    private static let newMountAPIProbe = Mutex<Bool?>(nil)

    /// Whether the kernel builds an overlay from `fsconfig(…, "lowerdir+", …)` calls
    /// (Linux 6.8 and later). Probed once by creating, without mounting, an overlay
    /// super block of two empty temporary directories made under /tmp; later calls
    /// return the result.
    public static func probeNewMountAPI() -> Bool {
        probeNewMountAPI(scratch: "/tmp")
    }

    static func probeNewMountAPI(scratch: String) -> Bool {
        if let known = newMountAPIProbe.withLock({ $0 }) { return known }
        // Not remembered when the probe could not even be set up.
        guard let works = probeLowerDirPlus(scratch: scratch) else { return false }
        newMountAPIProbe.withLock { $0 = works }
        return works
    }

    private static func probeLowerDirPlus(scratch: String) -> Bool? {
        guard let dir = try? ScratchDirectory(in: scratch) else { return nil }
        defer { dir.remove() }
        let a = dir.path + "/a"
        let b = dir.path + "/b"
        guard mkdir(a, 0o755) == 0, mkdir(b, 0o755) == 0 else { return nil }
        let fsfd = veneer_fsopen("overlay", UInt32(VENEER_FSOPEN_CLOEXEC))
        if fsfd < 0 { return false }
        defer { close(fsfd) }
        for layer in [a, b] where veneer_fsconfig(fsfd, UInt32(VENEER_FSCONFIG_SET_STRING), "lowerdir+", layer, 0) != 0 {
            return false
        }
        return veneer_fsconfig(fsfd, UInt32(VENEER_FSCONFIG_CMD_CREATE), nil, nil, 0) == 0
    }

    // MARK: - Unmounting

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

    // MARK: - Implementation

    /// Whether `path` can stand in a `lowerdir=a:b` option as it is: none of the bytes
    /// `,` `:` `\` `"` that the option syntax reserves.
    static func isPlainOptionValue(_ path: String) -> Bool {
        let check = { (bytes: UnsafeBufferPointer<UInt8>) -> Bool in
            for byte in bytes where byte == 0x2C || byte == 0x3A || byte == 0x5C || byte == 0x22 { return false }
            return true
        }
        if let plain = path.utf8.withContiguousStorageIfAvailable(check) { return plain }
        var copy = path
        return copy.withUTF8(check)
    }

    /// The length in bytes of ``overlayOptions(lowers:upper:work:extra:)``, without
    /// building it.
    static func overlayOptionsLength(lowers: [String], upper: String?, work: String?, extra: [String]) -> Int {
        var length = "lowerdir=".utf8.count + max(lowers.count - 1, 0)
        for layer in lowers { length += layer.utf8.count }
        if let upper { length += ",upperdir=".utf8.count + upper.utf8.count }
        if let work { length += ",workdir=".utf8.count + work.utf8.count }
        for option in extra { length += 1 + option.utf8.count }
        return length
    }

    /// `lowerdir=…,upperdir=…,workdir=…[,extra…]`, layer paths as given.
    static func overlayOptions(lowers: [String], upper: String?, work: String?, extra: [String]) -> String {
        var options = ["lowerdir=" + lowers.joined(separator: ":")]
        if let upper { options.append("upperdir=" + upper) }
        if let work { options.append("workdir=" + work) }
        return (options + extra).joined(separator: ",")
    }

    /// One libmount context: helpers, mtab/utab, canonicalization and fstab all off.
    /// The mount is made on the opened target directory (through its descriptor path),
    /// never on the target's path resolved again.
    static func libmountMount(
        type: String?, source: String, target: MountTarget, options: String, operation: String,
        diagnose: () -> String?
    ) throws(SystemError) {
        let mountPath = target.descriptorPath
        let failure: (code: Int32, detail: String?)? = LibMount.lock.withLock { _ in
            guard let cxt = mnt_new_context() else { return (ENOMEM, "cannot allocate a libmount context") }
            defer { mnt_free_context(cxt) }
            var rc = mnt_context_disable_helpers(cxt, 1)
            if rc == 0 { rc = mnt_context_disable_mtab(cxt, 1) }
            if rc == 0 { rc = mnt_context_disable_canonicalize(cxt, 1) }
            if rc == 0 { rc = mnt_context_set_optsmode(cxt, Int32(MNT_OMODE_IGNORE | MNT_OMODE_NOTAB)) }
            if rc == 0, let type { rc = mnt_context_set_fstype(cxt, type) }
            if rc == 0 { rc = mnt_context_set_source(cxt, source) }
            if rc == 0 { rc = mnt_context_set_target(cxt, mountPath) }
            if rc == 0 { rc = mnt_context_set_options(cxt, options) }
            if rc != 0 { return (rc < 0 && -rc < 4096 ? -rc : EINVAL, "libmount rejected the mount description") }
            rc = mnt_context_mount(cxt)
            if rc == 0 { return nil }
            if mnt_context_syscall_called(cxt) == 1 {
                let code = mnt_context_get_syscall_errno(cxt)
                if code != 0 { return (code, nil) }
            }
            var buffer = [CChar](repeating: 0, count: 1024)
            _ = mnt_context_get_excode(cxt, rc, &buffer, buffer.count)
            let message = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let code: Int32 = rc > 0 && rc < 4096 ? rc : (rc < 0 && -rc < 4096 ? -rc : EINVAL)
            return (code, message.isEmpty ? nil : message)
        }
        guard let failure else { return }
        throw SystemError(operation, target.path, errno: failure.code, detail: failure.detail ?? diagnose())
    }

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

    private static func mountOverlayWithDescriptorPaths(
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
    private static func readContextLog(_ fd: Int32) -> String? {
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

    /// Replays an overlay description that mount(2) refused through the new mount API,
    /// without mounting, to collect the kernel's own words about it; nil when there are
    /// none or the replay succeeds.
    private static func kernelDiagnosis(lowers: [String], upper: String?, work: String?, extra: [String]) -> String? {
        let fsfd = veneer_fsopen("overlay", UInt32(VENEER_FSOPEN_CLOEXEC))
        if fsfd < 0 { return nil }
        defer { close(fsfd) }
        let setString = UInt32(VENEER_FSCONFIG_SET_STRING)
        var steps: [(key: String, value: String?)] = []
        if probeNewMountAPI() {
            steps += lowers.map { (key: "lowerdir+", value: $0) }
        } else {
            let escaped = lowers.map { escapeBackslashes($0).replacingAll(":", with: "\\:") }
            steps.append((key: "lowerdir", value: escaped.joined(separator: ":")))
        }
        if let upper { steps.append((key: "upperdir", value: escapeBackslashes(upper))) }
        if let work { steps.append((key: "workdir", value: escapeBackslashes(work))) }
        for option in extra {
            if let equals = option.firstIndex(of: "=") {
                steps.append((key: String(option[..<equals]), value: String(option[option.index(after: equals)...])))
            } else {
                steps.append((key: option, value: nil))
            }
        }
        for step in steps {
            let rc =
                step.value.map { veneer_fsconfig(fsfd, setString, step.key, $0, 0) }
                ?? veneer_fsconfig(fsfd, UInt32(VENEER_FSCONFIG_SET_FLAG), step.key, nil, 0)
            if rc != 0 { return readContextLog(fsfd) }
        }
        if veneer_fsconfig(fsfd, UInt32(VENEER_FSCONFIG_CMD_CREATE), nil, nil, 0) != 0 {
            return readContextLog(fsfd)
        }
        return nil
    }

    /// Names the first layer that does not exist or is not a directory.
    private static func diagnoseLayers(lowers: [String], upper: String?, work: String?) -> String? {
        var roles = lowers.map { (role: "lower layer", path: $0) }
        if let upper { roles.append((role: "upper layer", path: upper)) }
        if let work { roles.append((role: "work directory", path: work)) }
        for (role, path) in roles {
            var st = stat()
            if stat(path, &st) != 0 {
                let code = Glibc.errno
                return "\(role) \(path): \(SystemError("", path, errno: code).reason)"
            }
            if st.st_mode & S_IFMT != S_IFDIR { return "\(role) \(path) is not a directory" }
        }
        return nil
    }

    private static func escapeBackslashes(_ path: String) -> String {
        path.contains("\\") ? path.replacingAll("\\", with: "\\\\") : path
    }

    /// Splits a `lowerdir` value at colons not escaped with a backslash, removing the escapes.
    static func splitLowerDirs(_ value: String) -> [String] {
        if !value.utf8.contains(UInt8(ascii: "\\")) {
            // No escapes (the usual case): split the bytes; a 500-layer value stays cheap.
            return value.utf8.split(separator: UInt8(ascii: ":")).map { String(decoding: $0, as: UTF8.self) }
        }
        var result: [String] = []
        var current = ""
        var escaped = false
        for character in value {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == ":" {
                result.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        result.append(current)
        return result.filter { !$0.isEmpty }
    }
}

/// A directory made with mkdtemp, removed with its contents by ``remove()``.
struct ScratchDirectory {
    let path: String

    init(in parent: String) throws(SystemError) {
        var template = Array((parent + "/.veneer-probe-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard let base = buffer.baseAddress else { return false }
            return mkdtemp(base) != nil
        }
        if !made { throw .last("mkdtemp", parent) }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func remove() {
        _ = try? FileSystem.removeTree(path)
    }
}

extension String {
    fileprivate func valueAfter(_ prefix: String) -> String? {
        guard utf8.starts(with: prefix.utf8) else { return nil }
        return String(decoding: utf8.dropFirst(prefix.utf8.count), as: UTF8.self)
    }

    fileprivate func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self {
            if character == target { result += replacement } else { result.append(character) }
        }
        return result
    }
}
