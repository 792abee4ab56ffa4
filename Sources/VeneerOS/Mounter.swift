internal import CMount
internal import CVeneerOS
import Synchronization
import VeneerCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A mount made ready by ``Mounter/prepare(_:lowerDirectories:at:readOnly:)``; ``attach()`` makes it
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

    /// Mounts `mount` at `target` (an existing directory; no component of it may be a
    /// symbolic link) and returns which mount it made.
    ///
    /// - `bind`: a bind mount of `source` (recursive with the `rbind` option); read-only
    ///   when `readOnly` is set or the options say `ro`.
    /// - `overlay`: the `lowerdir`, `upperdir` and `workdir` options are taken apart and
    ///   mounted with ``mountOverlay(lowers:upper:work:extraOptions:at:readOnly:method:)``,
    ///   so that stacks too deep for one mount(2) call still mount.
    /// - anything else: mounted through libmount as given.
    @discardableResult
    public static func mount(_ mount: Mount, at target: String, readOnly: Bool = false) throws(SystemError) -> MountIdentity? {
        try prepare(mount, at: try openTarget(target, operation: "mount \(mount.type) at"), readOnly: readOnly).attach()
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
    private static func mountPlain(_ spec: Mount, at target: MountTarget, readOnly: Bool) throws(SystemError) {
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
    public static func prepare(
        _ spec: Mount, lowerDirectories: [String]? = nil, at target: MountTarget, readOnly: Bool = false
    ) throws(SystemError) -> PreparedMount {
        let wantsReadOnly = readOnly || spec.options.contains("ro")
        guard let overlay = OverlayParts(spec, lowerDirectories: lowerDirectories) else {
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

        init?(_ spec: Mount, lowerDirectories: [String]?) {
            guard spec.type == "overlay" else { return nil }
            for option in spec.options {
                if option.utf8.starts(with: "lowerdir=".utf8) {
                    lowers = lowerDirectories ?? splitLowerDirs(String(decoding: option.utf8.dropFirst(9), as: UTF8.self))
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

    // MARK: - Overlay options

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
