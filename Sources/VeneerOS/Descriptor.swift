internal import CVeneerOS
import VeneerCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An open file or directory, closed when the last reference goes. The operations on
/// names act on one entry of this directory: a name is one component (no `/`, not `.`
/// or `..`) and is never followed if it is a symbolic link, so a walk made of these
/// steps cannot leave the directory it started from. Files are created with
/// `O_EXCL | O_NOFOLLOW` and their attributes set through the descriptor.
///
/// For the extraction of layers, where every name comes from a client.
public final class Descriptor {
    public let raw: Int32

    private init(raw: Int32) {
        self.raw = raw
    }

    deinit {
        close(raw)
    }

    /// What `fstatat` says of an entry, without following a link.
    public struct Status: Sendable, Equatable {
        public enum FileType: Sendable, Equatable {
            case regular, directory, symlink, character, block, fifo, socket
        }

        public var type: FileType
        /// Permission bits with setuid, setgid and sticky (0o7777).
        public var permissions: UInt32
        public var uid: UInt32
        public var gid: UInt32
        public var size: Int64
        public var links: UInt64
        public var device: UInt64
        public var inode: UInt64
        public var deviceMajor: UInt32
        public var deviceMinor: UInt32
        public var modified: Timestamp

        init(_ st: stat) {
            switch st.st_mode & S_IFMT {
            case S_IFDIR: type = .directory
            case S_IFLNK: type = .symlink
            case S_IFCHR: type = .character
            case S_IFBLK: type = .block
            case S_IFIFO: type = .fifo
            case S_IFSOCK: type = .socket
            default: type = .regular
            }
            permissions = UInt32(st.st_mode) & 0o7777
            uid = st.st_uid
            gid = st.st_gid
            size = Int64(st.st_size)
            links = UInt64(st.st_nlink)
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
            let rdev = UInt64(st.st_rdev)
            deviceMajor = UInt32(truncatingIfNeeded: ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff))
            deviceMinor = UInt32(truncatingIfNeeded: ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff))
            modified = Timestamp(
                nanosecondsSinceEpoch: Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec))
        }
    }

    /// The directory at `path` (not followed if it is a link).
    public static func openDirectory(_ path: String) throws(SystemError) -> Descriptor {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw .last("open", path) }
        return Descriptor(raw: fd)
    }

    /// The directory `name` of this one; ELOOP or ENOTDIR when it is a link or no directory.
    public func openDirectory(_ name: [UInt8]) throws(SystemError) -> Descriptor {
        let fd = try at(name, "open") { openat(raw, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        return Descriptor(raw: fd)
    }

    /// The regular file `name`, for reading; ELOOP when it is a link.
    public func openFile(_ name: [UInt8]) throws(SystemError) -> Descriptor {
        let fd = try at(name, "open") { openat(raw, $0, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC) }
        return Descriptor(raw: fd)
    }

    /// A new regular file `name`; EEXIST when the name is taken, by anything.
    public func createFile(_ name: [UInt8], permissions: UInt32) throws(SystemError) -> Descriptor {
        let fd = try at(name, "create") {
            openat(raw, $0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, mode_t(permissions & 0o777))
        }
        return Descriptor(raw: fd)
    }

    /// The entry `name`, or nil when there is none.
    public func status(_ name: [UInt8]) throws(SystemError) -> Status? {
        var st = stat()
        do {
            _ = try at(name, "stat") { fstatat(raw, $0, &st, AT_SYMLINK_NOFOLLOW) }
        } catch where error.isNotFound {
            return nil
        }
        return Status(st)
    }

    /// This file's own status.
    public func status() throws(SystemError) -> Status {
        var st = stat()
        if fstat(raw, &st) != 0 { throw .last("stat", "fd \(raw)") }
        return Status(st)
    }

    /// The target of the symbolic link `name`.
    public func readLink(_ name: [UInt8]) throws(SystemError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = try at(name, "readlink") { path in
            buffer.withUnsafeMutableBytes { out -> Int in
                guard let base = out.baseAddress else { return -1 }
                return readlinkat(raw, path, base.assumingMemoryBound(to: CChar.self), out.count)
            }
        }
        return Array(buffer.prefix(count))
    }

    public func makeDirectory(_ name: [UInt8], permissions: UInt32) throws(SystemError) {
        _ = try at(name, "mkdir") { mkdirat(raw, $0, mode_t(permissions & 0o777)) }
    }

    public func makeSymlink(_ name: [UInt8], target: [UInt8]) throws(SystemError) {
        guard !target.isEmpty, !target.contains(0) else {
            throw SystemError("symlink", Self.shown(name), errno: EINVAL, detail: "empty target or a NUL byte in it")
        }
        let terminated = target + [0]
        _ = try at(name, "symlink") { path in
            Self.withCString(terminated) { symlinkat($0, raw, path) }
        }
    }

    /// A hard link `name` here to the entry `existing` of `directory` (never followed).
    public func makeHardLink(_ name: [UInt8], to existing: [UInt8], in directory: Descriptor) throws(SystemError) {
        let old = try Self.terminated(existing, "link")
        _ = try at(name, "link") { path in
            Self.withCString(old) { linkat(directory.raw, $0, raw, path, 0) }
        }
    }

    public enum NodeType: Sendable {
        case character, block, fifo, socket
    }

    /// A device node, fifo or socket `name`. Device numbers beyond Linux's (12-bit
    /// major, 20-bit minor) are EINVAL.
    public func makeNode(
        _ name: [UInt8], type: NodeType, permissions: UInt32, major: UInt32 = 0, minor: UInt32 = 0
    ) throws(SystemError) {
        guard major < 1 << 12, minor < 1 << 20 else {
            throw SystemError(
                "mknod", Self.shown(name), errno: EINVAL,
                detail: "device \(major):\(minor) is out of range (major below 4096, minor below 1048576)")
        }
        let kind: mode_t
        switch type {
        case .character: kind = S_IFCHR
        case .block: kind = S_IFBLK
        case .fifo: kind = S_IFIFO
        case .socket: kind = S_IFSOCK
        }
        let m = UInt64(major)
        let n = UInt64(minor)
        let device = dev_t(((m & 0xfff) << 8) | (n & 0xff) | ((n & 0xfff00) << 12))
        _ = try at(name, "mknod") { mknodat(raw, $0, kind | mode_t(permissions & 0o777), device) }
    }

    /// Removes the entry `name`: `directory` for an empty directory, else anything but one.
    public func remove(_ name: [UInt8], directory: Bool) throws(SystemError) {
        _ = try at(name, directory ? "rmdir" : "unlink") { unlinkat(raw, $0, directory ? AT_REMOVEDIR : 0) }
    }

    /// Moves the entry `name` to `path` (absolute, on the same file system; a name
    /// nothing else uses): one rename, whatever `name` is.
    public func move(_ name: [UInt8], to path: String) throws(SystemError) {
        _ = try at(name, "rename") { renameat(raw, $0, AT_FDCWD, path) }
    }

    /// Removes the entry `name` and, for a directory, everything in it, without
    /// following links and without leaving this directory's file system.
    public func removeTree(_ name: [UInt8]) throws(SystemError) {
        guard let status = try status(name) else { return }
        if status.type == .directory {
            let directory = try openDirectory(name)
            guard try directory.status().device == (try self.status().device) else {
                throw SystemError("remove", Self.shown(name), errno: EXDEV, detail: "another file system is mounted there")
            }
            for child in try directory.entries() {
                try directory.removeTree(child)
            }
            try remove(name, directory: true)
        } else {
            try remove(name, directory: false)
        }
    }

    /// The names in this directory, `.` and `..` left out.
    public func entries() throws(SystemError) -> [[UInt8]] {
        let copy = dup(raw)
        if copy < 0 { throw .last("dup", "fd \(raw)") }
        guard let stream = fdopendir(copy) else {
            close(copy)
            throw .last("fdopendir", "fd \(raw)")
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var names: [[UInt8]] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix { $0 != 0 })
            }
            if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            names.append(name)
        }
        return names
    }

    /// Writes all of `bytes` at `offset`.
    /// Reads from the current offset into `buffer`; 0 at the end.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        while true {
            let count = Glibc.read(raw, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno != EINTR { throw .last("read", "fd \(raw)") }
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let count = pwrite(raw, bytes.baseAddress?.advanced(by: done), bytes.count - done, off_t(offset) + off_t(done))
            if count < 0 {
                if errno == EINTR { continue }
                throw .last("write", "fd \(raw)")
            }
            done += count
        }
    }

    /// Sets the file's length (a sparse file's holes at its end).
    public func truncate(_ size: Int64) throws(SystemError) {
        if ftruncate(raw, off_t(size)) != 0 { throw .last("truncate", "fd \(raw)") }
    }

    public func setOwner(uid: UInt32, gid: UInt32) throws(SystemError) {
        if fchown(raw, uid, gid) != 0 { throw .last("chown", "fd \(raw)") }
    }

    /// Sets the permission bits, setuid, setgid and sticky included (after the owner:
    /// a change of owner clears setuid and setgid).
    public func setPermissions(_ permissions: UInt32) throws(SystemError) {
        if fchmod(raw, mode_t(permissions & 0o7777)) != 0 { throw .last("chmod", "fd \(raw)") }
    }

    /// Sets the modification time (and the access time to the same).
    public func setModified(_ time: Timestamp) throws(SystemError) {
        var times = Self.timespecs(time)
        if futimens(raw, &times) != 0 { throw .last("utimens", "fd \(raw)") }
    }

    /// The permission bits of the entry `name`, which must not be a symbolic link (for
    /// the entries that have no descriptor of their own: device nodes, fifos, sockets).
    public func setPermissions(_ name: [UInt8], _ permissions: UInt32) throws(SystemError) {
        guard let status = try status(name) else { throw SystemError("chmod", Self.shown(name), errno: ENOENT) }
        if status.type == .symlink { throw SystemError("chmod", Self.shown(name), errno: ELOOP) }
        _ = try at(name, "chmod") { fchmodat(raw, $0, mode_t(permissions & 0o7777), 0) }
    }

    /// The owner of the entry `name` itself (for a symbolic link, the link).
    public func setOwner(_ name: [UInt8], uid: UInt32, gid: UInt32) throws(SystemError) {
        _ = try at(name, "chown") { fchownat(raw, $0, uid, gid, AT_SYMLINK_NOFOLLOW) }
    }

    /// The modification time of the entry `name` itself (for a symbolic link, the link).
    public func setModified(_ name: [UInt8], _ time: Timestamp) throws(SystemError) {
        var times = Self.timespecs(time)
        _ = try at(name, "utimens") { utimensat(raw, $0, &times, AT_SYMLINK_NOFOLLOW) }
    }

    public func setExtendedAttribute(_ attribute: String, _ value: [UInt8]) throws(SystemError) {
        let result = value.withUnsafeBytes { fsetxattr(raw, attribute, $0.baseAddress, $0.count, 0) }
        if result != 0 { throw .last("setxattr \(attribute)", "fd \(raw)") }
    }

    /// The value of an extended attribute, or nil when the file has none of that name.
    public func extendedAttribute(_ attribute: String) throws(SystemError) -> [UInt8]? {
        let size = fgetxattr(raw, attribute, nil, 0)
        if size < 0 {
            if errno == ENODATA { return nil }
            throw .last("getxattr \(attribute)", "fd \(raw)")
        }
        var value = [UInt8](repeating: 0, count: size)
        let read = value.withUnsafeMutableBytes { fgetxattr(raw, attribute, $0.baseAddress, $0.count) }
        if read < 0 { throw .last("getxattr \(attribute)", "fd \(raw)") }
        return Array(value.prefix(read))
    }

    /// The value of an extended attribute of the entry `name` (not followed if it is a
    /// link), or nil when it has none of that name; the entry is not opened, so this
    /// works for fifos and devices too.
    public func extendedAttribute(_ attribute: String, of name: [UInt8]) throws(SystemError) -> [UInt8]? {
        let text = Array("/proc/self/fd/\(raw)/".utf8) + (try Self.terminated(name, "getxattr"))
        var value = [UInt8](repeating: 0, count: 4096)
        let read = Self.withCString(text) { path in
            value.withUnsafeMutableBytes { lgetxattr(path, attribute, $0.baseAddress, $0.count) }
        }
        if read < 0 {
            if errno == ENODATA || errno == ENOTSUP { return nil }
            throw .last("getxattr \(attribute)", Self.shown(name))
        }
        return Array(value.prefix(read))
    }

    /// The names of this file's extended attributes.
    public func extendedAttributeNames() throws(SystemError) -> [String] {
        let size = flistxattr(raw, nil, 0)
        if size < 0 { throw .last("listxattr", "fd \(raw)") }
        if size == 0 { return [] }
        var buffer = [CChar](repeating: 0, count: size)
        let read = flistxattr(raw, &buffer, buffer.count)
        if read < 0 { throw .last("listxattr", "fd \(raw)") }
        return buffer.prefix(read).split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    }

    /// Copies this file's content to `target` from the start (holes written as zeros).
    public func copyContent(to target: Descriptor) throws(SystemError) {
        var buffer = [UInt8](repeating: 0, count: 128 * 1024)
        var offset: Int64 = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(raw, $0.baseAddress, $0.count, off_t(offset)) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .last("read", "fd \(raw)")
            }
            if count == 0 { return }
            let written = buffer.withUnsafeBytes { bytes in
                Result { () throws(SystemError) in
                    try target.write(UnsafeRawBufferPointer(rebasing: bytes.prefix(count)), at: offset)
                }
            }
            try written.get()
            offset += Int64(count)
        }
    }

    /// Writes everything of the file system this file is on to its disk (syncfs).
    public func syncFileSystem() throws(SystemError) {
        if veneer_syncfs(raw) != 0 { throw .last("syncfs", "fd \(raw)") }
    }

    public func sync() throws(SystemError) {
        if fsync(raw) != 0 { throw .last("fsync", "fd \(raw)") }
    }

    private static func timespecs(_ time: Timestamp) -> [timespec] {
        let nanoseconds = time.nanosecondsSinceEpoch
        var seconds = nanoseconds / 1_000_000_000
        var fraction = nanoseconds % 1_000_000_000
        if fraction < 0 {
            seconds -= 1
            fraction += 1_000_000_000
        }
        let spec = timespec(tv_sec: time_t(seconds), tv_nsec: Int(fraction))
        return [spec, spec]
    }

    /// Runs `call` with `name` as a C string after checking it is one component.
    private func at<T: BinaryInteger>(
        _ name: [UInt8], _ operation: String, _ call: (UnsafePointer<CChar>) -> T
    ) throws(SystemError) -> T {
        let text = try Self.terminated(name, operation)
        let result = Self.withCString(text, call)
        if result < 0 { throw .last(operation, Self.shown(name)) }
        return result
    }

    /// Runs `call` with the NUL-terminated bytes `text` as a C string; -1 if there are none.
    private static func withCString<T: BinaryInteger>(_ text: [UInt8], _ call: (UnsafePointer<CChar>) -> T) -> T {
        text.withUnsafeBytes { bytes -> T in
            guard let base = bytes.baseAddress else { return -1 }
            return call(base.assumingMemoryBound(to: CChar.self))
        }
    }

    /// `name` with its NUL, refused (EINVAL) unless it is one component.
    private static func terminated(_ name: [UInt8], _ operation: String) throws(SystemError) -> [UInt8] {
        if name.isEmpty || name.contains(0) || name.contains(UInt8(ascii: "/"))
            || name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")]
        {
            throw SystemError(operation, shown(name), errno: EINVAL, detail: "not a single name")
        }
        return name + [0]
    }

    static func shown(_ name: [UInt8]) -> String {
        String(decoding: name, as: UTF8.self)
    }
}
