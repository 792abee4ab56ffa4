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

    public init(root: String) { self.root = root }

    public var database: String { root + "/metadata.db" }
    public var snapshots: String { root + "/snapshots" }
    public var staging: String { root + "/staging" }
    public var trash: String { root + "/trash" }

    public func snapshotDirectory(_ id: Int64) -> String { snapshots + "/\(id)" }
    public func directories(_ id: Int64) -> SnapshotDirectories {
        let base = snapshotDirectory(id)
        return SnapshotDirectories(fs: base + "/fs", work: base + "/work")
    }
}
