import VeneerCore

/// Where things live under the state root.
///
///     <root>/metadata.db          SQLite database (WAL)
///     <root>/snapshots/<id>/fs    a snapshot's own layer
///     <root>/snapshots/<id>/work  overlay work directory of an active snapshot
///     <root>/staging/pending-<n>  a snapshot being created
///     <root>/trash/<name>         orphans waiting to be deleted
public struct Layout: Sendable {
    public let root: String
    /// The bytes of `<root>/snapshots/`.
    private let snapshotsPrefix: [UInt8]

    public init(root: String) {
        self.root = root
        snapshotsPrefix = Array((root + "/snapshots/").utf8)
    }

    public var database: String { root + "/metadata.db" }
    public var snapshots: String { root + "/snapshots" }
    public var staging: String { root + "/staging" }
    public var trash: String { root + "/trash" }

    public func snapshotDirectory(_ id: Int64) -> String { snapshots + "/\(id)" }

    /// `<root>/snapshots/<id>/fs`, written straight into one allocation: a 500-layer
    /// overlay needs 500 of them for each plan of its mounts.
    public func fsDirectory(_ id: Int64) -> String {
        var digits = 1
        var rest = id.magnitude / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        let sign = id < 0 ? 1 : 0
        let suffix: StaticString = "/fs"
        let count = snapshotsPrefix.count + sign + digits + suffix.utf8CodeUnitCount
        return String(unsafeUninitializedCapacity: count) { buffer in
            var at = buffer.initialize(from: snapshotsPrefix).1
            if sign == 1 {
                buffer[at] = UInt8(ascii: "-")
                at += 1
            }
            var value = id.magnitude
            for position in stride(from: at + digits - 1, through: at, by: -1) {
                buffer[position] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
            at += digits
            suffix.withUTF8Buffer { tail in
                for byte in tail {
                    buffer[at] = byte
                    at += 1
                }
            }
            return at
        }
    }

    public func directories(_ id: Int64) -> SnapshotDirectories {
        let base = snapshotDirectory(id)
        return SnapshotDirectories(fs: base + "/fs", work: base + "/work")
    }
}
