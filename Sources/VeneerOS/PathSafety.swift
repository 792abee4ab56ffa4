internal import CVeneerOS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a path cannot be used as a mount target.
public enum TargetProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not an absolute path (or empty).
    case notAbsolute(target: String)
    /// Has `.` or `..` components, repeated slashes, a trailing slash or a NUL byte.
    case notNormalized(target: String)
    /// `component` (the target or one of its parents) does not exist.
    case missing(target: String, component: String)
    /// `component` (the target or one of its parents) is not a directory.
    case notDirectory(target: String, component: String)
    /// `component` (the target or one of its parents) is a symbolic link.
    case symlinkComponent(target: String, component: String)
    /// The target is the state root or lies inside it.
    case insideRoot(target: String, root: String)
    /// The target is a parent of the state root: a mount there would hide it.
    case containsRoot(target: String, root: String)
    /// A system call failed while checking.
    case system(SystemError)

    public var description: String {
        switch self {
        case .notAbsolute(let target):
            return "target \(quoted(target)) is not an absolute path"
        case .notNormalized(let target):
            return "target \(quoted(target)) is not normalized (no \".\" or \"..\" components, repeated or trailing slashes)"
        case .missing(let target, let component):
            return component == target
                ? "target \(target) does not exist"
                : "target \(target) does not exist: \(component) is missing"
        case .notDirectory(let target, let component):
            return component == target
                ? "target \(target) is not a directory"
                : "target \(target) is not reachable: \(component) is not a directory"
        case .symlinkComponent(let target, let component):
            return component == target
                ? "target \(target) is a symbolic link"
                : "target \(target) has a symbolic link in its path: \(component)"
        case .insideRoot(let target, let root):
            return "target \(target) is inside the state root \(root)"
        case .containsRoot(let target, let root):
            return "target \(target) contains the state root \(root); a mount there would hide it"
        case .system(let error):
            return error.description
        }
    }

    private func quoted(_ text: String) -> String {
        "\"" + text + "\""
    }
}

/// Checks on paths handed in by clients.
public enum PathSafety {
    /// True for an absolute path without `.`/`..` components, repeated slashes, a
    /// trailing slash (except `/` itself) or NUL bytes.
    public static func isNormalizedAbsolute(_ path: String) -> Bool {
        // Bytes, not characters: a combining mark after a slash makes one character of
        // both, and a path is a string of bytes to the kernel.
        guard path.utf8.first == slash else { return false }
        if path.utf8.count == 1 { return true }
        if path.utf8.contains(0) || path.utf8.last == slash { return false }
        for component in path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst() {
            if component.isEmpty { return false }
            if component.elementsEqual(".".utf8) || component.elementsEqual("..".utf8) { return false }
        }
        return true
    }

    /// Component-wise containment of normalized absolute paths: `path` is `root` or
    /// below it (`/a/bc` is not inside `/a/b`).
    public static func isLexicallyInside(_ path: String, _ root: String) -> Bool {
        if root.utf8.elementsEqual("/".utf8) { return path.utf8.first == slash }
        let p = path.utf8
        let r = root.utf8
        guard p.starts(with: r) else { return false }
        let rest = p.dropFirst(r.count)
        return rest.isEmpty || rest.first == slash
    }

    static let slash = UInt8(ascii: "/")

    /// The components of an absolute path, split at its slash bytes.
    static func components(of path: String) -> [String] {
        path.utf8.split(separator: slash).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether `path` is `root` or inside it, after resolving `root` (and `path`, when
    /// it exists) with realpath.
    public static func isInside(_ path: String, root: String) throws(SystemError) -> Bool {
        let realRoot = try FileSystem.realPath(root)
        let realTarget = (try? FileSystem.realPath(path)) ?? path
        return isLexicallyInside(realTarget, realRoot)
    }

    /// Validates a mount target: absolute and normalized, an existing directory reached
    /// without symbolic links, and, when `root` is given, neither inside the state root
    /// (also through another path to the same directory, like a bind mount of it) nor
    /// one of its parents.
    public static func validateMountTarget(_ path: String, root: String? = nil) throws(TargetProblem) {
        guard let root else {
            try checkTargetPath(path)
            try checkDirectoryWithoutSymlinks(path)
            return
        }
        let stateRoot: StateRoot
        do {
            stateRoot = try StateRoot(root)
        } catch {
            throw .system(error)
        }
        try validateMountTarget(path, root: stateRoot)
    }

    /// The state root as the target checks compare against it: its path with links
    /// resolved, its device and inode, and the mount that holds it. Found once by a
    /// long-running caller, whose root does not move while it runs.
    public struct StateRoot: Sendable {
        public let path: String
        let device: dev_t
        let inode: ino_t
        let mountID: UInt64?

        public init(_ root: String) throws(SystemError) {
            path = try FileSystem.realPath(root)
            var st = stat()
            if stat(path, &st) != 0 { throw .last("stat", path) }
            device = st.st_dev
            inode = st.st_ino
            var id: UInt64 = 0
            mountID = veneer_mount_id(path, &id) == 0 ? id : nil
        }

        /// Where `below`, a path inside the state root such as `/snapshots/4/fs`, is
        /// within the file system that holds the root (what mountinfo shows as the root
        /// of a bind mount of it), with that file system's device. Nil when the root's
        /// mount is not among `entries`.
        public func fileSystemLocation(
            of below: String, in entries: [MountEntry]
        ) -> (deviceMajor: UInt32, deviceMinor: UInt32, path: String)? {
            guard let mountID, let mount = entries.first(where: { UInt64($0.id) == mountID }),
                let rootInFS = PathSafety.fileSystemPath(path, in: mount)
            else { return nil }
            return (mount.deviceMajor, mount.deviceMinor, (rootInFS == "/" ? "" : rootInFS) + below)
        }
    }

    private static func checkTargetPath(_ path: String) throws(TargetProblem) {
        if path.utf8.first != slash { throw .notAbsolute(target: path) }
        if !isNormalizedAbsolute(path) { throw .notNormalized(target: path) }
    }

    /// ``validateMountTarget(_:root:)`` against a state root found beforehand.
    public static func validateMountTarget(_ path: String, root: StateRoot) throws(TargetProblem) {
        _ = try openMountTarget(path, root: root)
    }

    /// Opens a mount target and checks it: absolute and normalized, an existing
    /// directory reached without symbolic links, neither inside the state root (also
    /// through another path to the same directory, like a bind mount of the root or of
    /// a directory inside it, the target itself included) nor one of its parents. The
    /// checks after the opening are made on the opened directory, which is where the
    /// mount will be made.
    public static func openMountTarget(_ path: String, root: StateRoot) throws(TargetProblem) -> MountTarget {
        try checkTargetPath(path)
        let realRoot = root.path
        if isLexicallyInside(path, realRoot) { throw .insideRoot(target: path, root: realRoot) }
        if isLexicallyInside(realRoot, path) { throw .containsRoot(target: path, root: realRoot) }
        let target: MountTarget
        do {
            target = try MountTarget(opening: path)
        } catch {
            // Name the component at fault.
            try checkDirectoryWithoutSymlinks(path)
            throw .system(error)
        }
        // Where the opened directory is now (the same path unless it was just renamed).
        let now = target.currentPath() ?? path
        if now != path {
            if isLexicallyInside(now, realRoot) { throw .insideRoot(target: path, root: realRoot) }
            if isLexicallyInside(realRoot, now) { throw .containsRoot(target: path, root: realRoot) }
        }
        var st = stat()
        guard fstat(target.directory, &st) == 0 else { throw .system(.last("stat", path)) }
        if st.st_dev == root.device && st.st_ino == root.inode { throw .insideRoot(target: path, root: realRoot) }
        // Within the root's own mount, where a directory is in the file system follows
        // from its path, so the lexical checks are enough. In another mount of the same
        // file system (a bind mount), compare where both are within the file system.
        guard st.st_dev == root.device, root.mountID != target.underlying.id else { return target }
        guard let entries = try? MountTable.current(),
            let targetMount = entries.first(where: { UInt64($0.id) == target.underlying.id }),
            let targetInFS = fileSystemPath(now, in: targetMount),
            let rootInFS = entries.first(where: { UInt64($0.id) == root.mountID }).flatMap({ fileSystemPath(realRoot, in: $0) })
                ?? fileSystemPath(realRoot, entries: entries)
        else {
            throw .system(SystemError("read mount table", MountTable.mountInfoPath, errno: EIO, detail: "cannot tell where \(path) is"))
        }
        if isLexicallyInside(targetInFS, rootInFS) { throw .insideRoot(target: path, root: realRoot) }
        return target
    }

    /// Where `path` is within its file system: the root of the mount that holds it
    /// (the last mounted on the longest matching mount point) joined with the rest of
    /// the path. For `/mnt/alias/x` with `<fs>/data` bind-mounted at `/mnt/alias`, that
    /// is `/data/x`.
    static func fileSystemPath(_ path: String, entries: [MountEntry]) -> String? {
        var best: MountEntry?
        for entry in entries where isLexicallyInside(path, entry.target) {
            if let current = best, entry.target.utf8.count < current.target.utf8.count { continue }
            best = entry
        }
        guard let mount = best else { return nil }
        return fileSystemPath(path, in: mount)
    }

    /// Where `path`, inside `mount`, is within the mount's file system.
    static func fileSystemPath(_ path: String, in mount: MountEntry) -> String? {
        guard isLexicallyInside(path, mount.target) else { return nil }
        let rest = mount.target == "/" ? path : String(decoding: path.utf8.dropFirst(mount.target.utf8.count), as: UTF8.self)
        let base = mount.root == "/" ? "" : mount.root
        let joined = base + rest
        return joined.isEmpty ? "/" : joined
    }

    /// `/a`, `/a/b`, `/a/b/c` for `/a/b/c`; `/` for `/`.
    static func prefixes(of path: String) -> [String] {
        if path == "/" { return ["/"] }
        var result: [String] = []
        var current = ""
        for component in components(of: path) {
            current += "/" + component
            result.append(current)
        }
        return result
    }

    /// Fails unless `path` is an existing directory reached without symbolic links,
    /// naming the component at fault.
    private static func checkDirectoryWithoutSymlinks(_ path: String) throws(TargetProblem) {
        let fd = veneer_openat2(
            AT_FDCWD, path, UInt64(VENEER_O_PATH) | UInt64(O_DIRECTORY) | UInt64(O_CLOEXEC), 0,
            UInt64(VENEER_RESOLVE_NO_SYMLINKS))
        if fd >= 0 {
            close(fd)
            return
        }
        let code = Glibc.errno
        // Name the component at fault (and check at all where openat2 is missing).
        for prefix in prefixes(of: path) {
            var st = stat()
            if lstat(prefix, &st) != 0 {
                let failure = Glibc.errno
                if failure == ENOENT { throw .missing(target: path, component: prefix) }
                if failure == ENOTDIR { throw .notDirectory(target: path, component: prefix) }
                throw .system(SystemError("stat", prefix, errno: failure))
            }
            switch st.st_mode & S_IFMT {
            case S_IFLNK: throw .symlinkComponent(target: path, component: prefix)
            case S_IFDIR: continue
            default: throw .notDirectory(target: path, component: prefix)
            }
        }
        switch code {
        case ENOSYS, EPERM, E2BIG, EINVAL:
            return  // no openat2 here (or filtered): the walk above found nothing wrong
        case ELOOP: throw .symlinkComponent(target: path, component: path)
        case ENOENT: throw .missing(target: path, component: path)
        case ENOTDIR: throw .notDirectory(target: path, component: path)
        default: throw .system(SystemError("open", path, errno: code))
        }
    }

    /// Opens `path` as an `O_PATH` directory descriptor without following symbolic
    /// links in any component (openat2 RESOLVE_NO_SYMLINKS, or a walk one component at
    /// a time with O_NOFOLLOW where openat2 is missing). The caller closes it.
    static func openDirectoryWithoutSymlinks(_ path: String) throws(SystemError) -> Int32 {
        let flags = Int32(VENEER_O_PATH) | O_DIRECTORY | O_CLOEXEC
        let fd = veneer_openat2(AT_FDCWD, path, UInt64(UInt32(bitPattern: flags)), 0, UInt64(VENEER_RESOLVE_NO_SYMLINKS))
        if fd >= 0 { return fd }
        let code = Glibc.errno
        switch code {
        case ENOSYS, EPERM, E2BIG:
            return try openDirectoryByWalking(path)
        case ELOOP:
            throw SystemError("open", path, errno: ELOOP, detail: "a component of the path is a symbolic link")
        default:
            throw SystemError("open", path, errno: code)
        }
    }

    private static func openDirectoryByWalking(_ path: String) throws(SystemError) -> Int32 {
        guard path.utf8.first == slash else { throw SystemError("open", path, errno: EINVAL, detail: "not an absolute path") }
        let flags = Int32(VENEER_O_PATH) | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW
        var current = open("/", flags)
        if current < 0 { throw .last("open", "/") }
        for component in components(of: path) {
            var st = stat()
            if fstatat(current, String(component), &st, AT_SYMLINK_NOFOLLOW) == 0, st.st_mode & S_IFMT == S_IFLNK {
                close(current)
                throw SystemError("open", path, errno: ELOOP, detail: "a component of the path is a symbolic link")
            }
            let next = openat(current, String(component), flags)
            let code = Glibc.errno
            close(current)
            if next < 0 { throw SystemError("open", path, errno: code) }
            current = next
        }
        return current
    }
}
