import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A fresh directory under /tmp for one test, removed with everything in it when the
/// test calls ``remove()`` or releases it. Whatever is still mounted at or below it is
/// detached first, deepest first, and the removal itself never leaves the directory's
/// own file system, so it cannot reach into a mount that detaching missed (a bind mount
/// of a real directory, a leftover overlay).
public final class TemporaryDirectory: Sendable {
    public let path: String
    private let removed = Mutex(false)

    /// `/tmp/<prefix>.XXXXXX`. Keep the prefix short where paths go into overlay
    /// options or socket addresses.
    public init(prefix: String = "vn") throws {
        path = try Self.make(prefix: prefix)
    }

    /// Creates `/tmp/<prefix>.XXXXXX` and returns its path, for callers that manage
    /// the directory's life themselves.
    public static func make(prefix: String) throws -> String {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard let base = buffer.baseAddress else { return false }
            return mkdtemp(base) != nil
        }
        guard made else { throw TestFailure("mkdtemp /tmp/\(prefix).XXXXXX: errno \(errno)") }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `path/relative`.
    public func callAsFunction(_ relative: String) -> String { path + "/" + relative }

    /// Detaches the mounts below the directory and deletes it; later calls do nothing.
    public func remove() {
        let first = removed.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        guard first else { return }
        let mounted = MountInfo.detachAll(under: path)
        Self.removeTree(path, keeping: mounted, device: nil)
        // Names that are not valid UTF-8 are not reached by the walk above; with nothing
        // mounted below, Foundation's removal is safe for them.
        if mounted.isEmpty, FileManager.default.fileExists(atPath: path) {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// Deletes `path` and what it holds, depth first, without following symbolic links:
    /// a mount point still in the table (`keeping`) or anything on another file system
    /// stays, with the directories above it.
    static func removeTree(_ path: String, keeping mounted: Set<String>, device: UInt64?) {
        var st = stat()
        guard lstat(path, &st) == 0, !mounted.contains(path) else { return }
        let own = device ?? UInt64(st.st_dev)
        guard UInt64(st.st_dev) == own else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
                removeTree(path + "/" + name, keeping: mounted, device: own)
            }
            _ = rmdir(path)
        } else {
            _ = unlink(path)
        }
    }

    deinit { remove() }
}

/// A failure of test set-up, with what went wrong.
public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
