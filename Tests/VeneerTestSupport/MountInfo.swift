import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The test process's mount table, read from `/proc/self/mountinfo` independently of the
/// code under test.
public enum MountInfo {
    /// Mount points at or below `prefix`, deepest first; `mountinfo` names another
    /// process's table (`/proc/<pid>/mountinfo`).
    public static func targets(under prefix: String, mountinfo: String = "/proc/self/mountinfo") -> [String] {
        entries(mountinfo).map(\.target)
            .filter { $0 == prefix || $0.hasPrefix(prefix + "/") }
            .sorted { $0.count > $1.count }
    }

    /// The first mount point of a file system type, e.g. `cgroup2`.
    public static func firstTarget(ofType type: String, mountinfo: String = "/proc/self/mountinfo") -> String? {
        entries(mountinfo).first { $0.type == type }?.target
    }

    /// Each mount's point and file system type.
    private static func entries(_ file: String) -> [(target: String, type: String)] {
        // Read to the end: a plain String(contentsOfFile:) stops at procfs's first short
        // read, which comes before any line longer than its buffer (deep overlays).
        guard let text = FileText.read(file) else { return [] }
        var found: [(target: String, type: String)] = []
        for line in text.split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            guard halves.count >= 2 else { continue }
            let fields = halves[0].split(separator: " ")
            guard fields.count > 4, let type = halves[1].split(separator: " ").first else { continue }
            found.append((unescape(fields[4]), String(type)))
        }
        return found
    }

    /// Detaches (`umount2(MNT_DETACH)`) every mount at or below `prefix`, deepest first,
    /// each as many times as it is stacked; returns the mount points it could not detach.
    @discardableResult
    public static func detachAll(under prefix: String) -> Set<String> {
        var left: Set<String> = []
        var seen: Set<String> = []
        // A stacked mount point is listed once per mount; the loop below takes them all.
        for target in targets(under: prefix) where seen.insert(target).inserted {
            var stacked = 0
            while umount2(target, Int32(MNT_DETACH)) == 0 && stacked < 16 { stacked += 1 }
            if stacked == 0 { left.insert(target) }
        }
        return left
    }

    /// A mountinfo field with its octal escapes (`\040` for a space) decoded.
    public static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count,
                let value = UInt8(String(decoding: utf8[(i + 1)...(i + 3)], as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                i += 4
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
