internal import CVeneerOS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the running kernel's overlayfs offers, probed once at start-up.
public struct OverlayFeatures: Sendable, Equatable {
    /// The kernel's limit on overlay lower layers (OVL_MAX_STACK).
    public static let maxLowerLayers = 500

    /// overlayfs is available (listed in /proc/filesystems once probed).
    public var available: Bool
    /// fsopen/fsconfig with one `lowerdir+` per layer works (Linux 6.8 and later).
    public var newMountAPI: Bool
    /// Module default of `index` (`/sys/module/overlay/parameters/index`).
    public var index: Bool
    /// Module default of `metacopy`.
    public var metacopy: Bool
    /// Module default of `redirect_dir`.
    public var redirectDir: Bool
    /// Module default of `xino=auto` (`xino_auto`).
    public var xinoAuto: Bool
    /// The `userxattr` mount option is accepted (Linux 5.11 and later).
    public var userxattr: Bool

    public init(
        available: Bool, newMountAPI: Bool, index: Bool, metacopy: Bool, redirectDir: Bool, xinoAuto: Bool,
        userxattr: Bool
    ) {
        self.available = available
        self.newMountAPI = newMountAPI
        self.index = index
        self.metacopy = metacopy
        self.redirectDir = redirectDir
        self.xinoAuto = xinoAuto
        self.userxattr = userxattr
    }

    /// Probes the kernel. Creates (without mounting) overlay super blocks on empty
    /// temporary directories made under `scratch`, which must not be on overlayfs.
    public static func probe(scratch: String = "/tmp") -> OverlayFeatures {
        // Probing first loads the overlay module, so that its parameters exist below.
        let newAPI = Mounter.probeNewMountAPI(scratch: scratch)
        let userxattr = probeOption("userxattr", scratch: scratch)
        return OverlayFeatures(
            available: fileSystemRegistered("overlay"),
            newMountAPI: newAPI,
            index: moduleParameter("index") == "Y",
            metacopy: moduleParameter("metacopy") == "Y",
            redirectDir: moduleParameter("redirect_dir") == "Y",
            xinoAuto: moduleParameter("xino_auto") == "Y",
            userxattr: userxattr)
    }

    /// The value of `/sys/module/overlay/parameters/NAME`, trimmed, or nil.
    public static func moduleParameter(_ name: String) -> String? {
        let path = "/sys/module/overlay/parameters/" + name
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { return nil }
        var text = String(decoding: buffer[..<n], as: UTF8.self)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return text
    }

    /// Whether readdir on the file system holding `root` reports entry types (d_type),
    /// which overlayfs needs in its upper and work directories. Checked on a file in a
    /// temporary directory made under `root` and removed afterwards.
    public static func dTypeSupported(root: String) throws(SystemError) -> Bool {
        let scratch = try ScratchDirectory(in: root)
        defer { scratch.remove() }
        let file = scratch.path + "/f"
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd < 0 { throw .last("create", file) }
        close(fd)
        guard let dir = opendir(scratch.path) else { throw .last("opendir", scratch.path) }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let isFile = withUnsafePointer(to: entry.pointee.d_name) { ptr in
                ptr.withMemoryRebound(to: CChar.self, capacity: 256) { strcmp($0, "f") == 0 }
            }
            if isFile { return entry.pointee.d_type != UInt8(DT_UNKNOWN) }
        }
        throw SystemError("readdir", scratch.path, errno: ENOENT, detail: "the file just created is not listed")
    }

    /// Creates (without mounting) an overlay of two empty lower directories with the
    /// flag `option` set, and tells whether the kernel accepted it.
    static func probeOption(_ option: String, scratch: String) -> Bool {
        guard let dir = try? ScratchDirectory(in: scratch) else { return false }
        defer { dir.remove() }
        let a = dir.path + "/a"
        let b = dir.path + "/b"
        guard mkdir(a, 0o755) == 0, mkdir(b, 0o755) == 0 else { return false }
        let fsfd = veneer_fsopen("overlay", UInt32(VENEER_FSOPEN_CLOEXEC))
        if fsfd < 0 { return false }
        defer { close(fsfd) }
        let setString = UInt32(VENEER_FSCONFIG_SET_STRING)
        guard veneer_fsconfig(fsfd, setString, "lowerdir", a + ":" + b, 0) == 0,
            veneer_fsconfig(fsfd, UInt32(VENEER_FSCONFIG_SET_FLAG), option, nil, 0) == 0
        else { return false }
        return veneer_fsconfig(fsfd, UInt32(VENEER_FSCONFIG_CMD_CREATE), nil, nil, 0) == 0
    }

    /// Whether `/proc/filesystems` lists `type`.
    static func fileSystemRegistered(_ type: String) -> Bool {
        guard let file = fopen("/proc/filesystems", "re") else { return false }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.split(whereSeparator: { $0 == "\t" || $0 == " " || $0 == "\n" }).last.map(String.init) == type {
                return true
            }
        }
        return false
    }
}
