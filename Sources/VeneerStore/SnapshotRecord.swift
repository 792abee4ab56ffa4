import VeneerCore

/// One row of the snapshots table.
public struct SnapshotRecord: Sendable, Equatable {
    /// Allocated by the database, never reused; names the snapshot's directory.
    public var id: Int64
    public var namespace: Namespace
    public var key: String
    public var kind: SnapshotKind
    public var parentID: Int64?
    /// Key of the parent, filled in by queries that join it.
    public var parentKey: String?
    public var labels: [String: String]
    public var created: Timestamp
    public var updated: Timestamp
    /// Usage of a committed snapshot's layer, computed once at commit.
    public var usage: Usage?

    /// The snapshot's name in the store: its namespace and key.
    public var name: SnapshotName { SnapshotName(namespace, key) }

    public var info: SnapshotInfo {
        SnapshotInfo(key: key, kind: kind, parent: parentKey, labels: labels, created: created, updated: updated)
    }
}

/// A snapshot's name in the store: keys are unique within their namespace.
public struct SnapshotName: Sendable, Hashable {
    public var namespace: Namespace
    public var key: String

    public init(_ namespace: Namespace, _ key: String) {
        self.namespace = namespace
        self.key = key
    }
}

/// A mount the daemon made, as recorded in the store.
public struct MountRecord: Sendable, Equatable {
    public var target: String
    public var snapshotID: Int64
    public var namespace: Namespace
    public var key: String
    public var readonly: Bool
    public var mounts: [Mount]
    public var mountedAt: Timestamp
    /// Which kernel mount it is (its mount id and `major:minor` device), once made;
    /// nil in a record written before the mount was attached.
    public var mountID: UInt64? = nil
    public var device: String? = nil

    public var live: LiveMount {
        LiveMount(key: key, target: target, readonly: readonly, mounts: mounts, mountedAt: mountedAt)
    }
}

/// What a new snapshot needs besides its id.
public struct NewSnapshot: Sendable {
    public var namespace: Namespace
    public var key: String
    public var kind: SnapshotKind
    public var parent: String?
    public var labels: [String: String]
    public var created: Timestamp

    public init(
        key: String, kind: SnapshotKind, parent: String?, labels: [String: String], created: Timestamp,
        in namespace: Namespace = .default
    ) {
        self.namespace = namespace
        self.key = key
        self.kind = kind
        self.parent = parent
        self.labels = labels
        self.created = created
    }
}
