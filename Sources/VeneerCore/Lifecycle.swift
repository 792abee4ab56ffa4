/// The containerd snapshotter rules for each operation, checked against the
/// facts the store looked up inside the operation's transaction.
public enum Lifecycle {
    /// Prepare (active) or View.
    /// - Parameters:
    ///   - existing: kind of the snapshot already holding `key`, if any.
    ///   - parent: the requested parent key and the kind found for it (nil when missing).
    public static func checkPrepare(
        key: String, kind: SnapshotKind, existing: SnapshotKind?, parent: (key: String, kind: SnapshotKind?)?
    ) throws(VeneerError) {
        if kind == .committed {
            throw .invalidArgument(
                "cannot create snapshot \(quoted(key)) as committed; prepare an active snapshot and commit it")
        }
        if let existing {
            throw .alreadyExists("snapshot \(quoted(key)) already exists (\(existing.rawValue)); pick another key or remove it first")
        }
        if let parent {
            guard let parentKind = parent.kind else {
                throw .notFound("parent snapshot \(quoted(parent.key)) of \(quoted(key)) does not exist; commit it first or check the key")
            }
            if parentKind != .committed {
                throw .invalidArgument(
                    "parent snapshot \(quoted(parent.key)) is \(parentKind.rawValue), not committed; only committed snapshots can be parents")
            }
        }
    }

    /// Commit the active snapshot `key` under `name`.
    public static func checkCommit(name: String, nameTaken: SnapshotKind?, key: String, kind: SnapshotKind?) throws(VeneerError) {
        if let nameTaken {
            throw .alreadyExists("snapshot \(quoted(name)) already exists (\(nameTaken.rawValue)); commit under another name")
        }
        guard let kind else {
            throw .notFound("snapshot \(quoted(key)) does not exist; nothing to commit")
        }
        if kind != .active {
            throw .failedPrecondition(
                "snapshot \(quoted(key)) is \(kind.rawValue); only active snapshots can be committed")
        }
    }

    /// Remove `key`, which has `childCount` dependants, some of them named in `someChildren`.
    public static func checkRemove(
        key: String, kind: SnapshotKind?, childCount: Int, someChildren: [String]
    ) throws(VeneerError) {
        guard kind != nil else {
            throw .notFound("snapshot \(quoted(key)) does not exist")
        }
        if childCount > 0 {
            let shown = someChildren.prefix(3).map(quoted).joined(separator: ", ")
            let more = childCount > 3 ? " and \(childCount - 3) more" : ""
            throw .failedPrecondition(
                "snapshot \(quoted(key)) has \(childCount) child snapshot(s) (\(shown)\(more)); remove them first")
        }
    }

    public static func notFound(_ key: String) -> VeneerError {
        .notFound("snapshot \(quoted(key)) does not exist")
    }
}
