internal import CMount
internal import CVeneerOS
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// Overlays: the method for a stack (one mount(2) call, the new mount API with
// `lowerdir+`, or layer paths through descriptors) and the probe of what the kernel offers.

extension Mounter {
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
    static func attachOverlay(
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

    static func probeLowerDirPlus(scratch: String) -> Bool? {
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
