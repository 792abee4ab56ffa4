internal import CMount
internal import CVeneerOS
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// Why a mount failed, in words: the kernel's own message where it gives one, else
// what is wrong with the layers.

extension Mounter {
    /// Replays an overlay description that mount(2) refused through the new mount API,
    /// without mounting, to collect the kernel's own words about it; nil when there are
    /// none or the replay succeeds.
    static func kernelDiagnosis(lowers: [String], upper: String?, work: String?, extra: [String]) -> String? {
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
    static func diagnoseLayers(lowers: [String], upper: String?, work: String?) -> String? {
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

    static func escapeBackslashes(_ path: String) -> String {
        path.contains("\\") ? path.replacingAll("\\", with: "\\\\") : path
    }

}

extension String {
    func valueAfter(_ prefix: String) -> String? {
        guard utf8.starts(with: prefix.utf8) else { return nil }
        return String(decoding: utf8.dropFirst(prefix.utf8.count), as: UTF8.self)
    }

    func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self {
            if character == target { result += replacement } else { result.append(character) }
        }
        return result
    }
}
