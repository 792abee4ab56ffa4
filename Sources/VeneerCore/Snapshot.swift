/// What a snapshot is for. One key space holds all three kinds.
public enum SnapshotKind: String, Sendable, Codable, CaseIterable {
    /// Writable; the upper layer of an overlay, or a plain directory without parent.
    case active
    /// Read-only view of a committed chain.
    case view
    /// Immutable layer; the only kind that can be a parent.
    case committed
}

/// The public description of a snapshot, as the API returns it.
public struct SnapshotInfo: Sendable, Equatable, Codable {
    public var key: String
    public var kind: SnapshotKind
    public var parent: String?
    public var labels: [String: String]
    public var created: Timestamp
    public var updated: Timestamp

    public init(
        key: String, kind: SnapshotKind, parent: String?, labels: [String: String],
        created: Timestamp, updated: Timestamp
    ) {
        self.key = key
        self.kind = kind
        self.parent = parent
        self.labels = labels
        self.created = created
        self.updated = updated
    }
}

/// Disk usage of one snapshot's own layer.
public struct Usage: Sendable, Equatable, Codable {
    /// Bytes allocated on disk.
    public var size: Int64
    /// Number of distinct inodes (files, directories, links...).
    public var inodes: Int64

    public init(size: Int64, inodes: Int64) {
        self.size = size
        self.inodes = inodes
    }
}

/// One mount a client performs to obtain the snapshot's root file system.
public struct Mount: Sendable, Equatable, Codable {
    public var type: String
    public var source: String
    public var options: [String]

    public init(type: String, source: String, options: [String]) {
        self.type = type
        self.source = source
        self.options = options
    }
}

/// Number of snapshots of each kind.
public struct KindCounts: Sendable, Equatable, Codable {
    public var active: Int
    public var view: Int
    public var committed: Int
    public var total: Int { active + view + committed }

    public init(active: Int = 0, view: Int = 0, committed: Int = 0) {
        self.active = active
        self.view = view
        self.committed = committed
    }
}
