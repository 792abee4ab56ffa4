import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The test process's mount table, read from `/proc/self/mountinfo` independently of the
/// code under test.
public enum MountInfo {
    /// Mount points at or below `prefix`, deepest first.
    public static func targets(under prefix: String) -> [String] {
        // Read to the end: a plain String(contentsOfFile:) stops at procfs's first short
        // read, which comes before any line longer than its buffer (deep overlays).
        guard let text = FileText.read("/proc/self/mountinfo") else { return [] }
        var found: [String] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { continue }
            let target = unescape(fields[4])
            if target == prefix || target.hasPrefix(prefix + "/") { found.append(target) }
        }
        return found.sorted { $0.count > $1.count }
    }

    /// Detaches (`umount2(MNT_DETACH)`) every mount at or below `prefix`, deepest first,
    /// each as many times as it is stacked.
    public static func detachAll(under prefix: String) {
        for target in targets(under: prefix) {
            var stacked = 0
            while umount2(target, Int32(MNT_DETACH)) == 0 && stacked < 16 { stacked += 1 }
        }
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
