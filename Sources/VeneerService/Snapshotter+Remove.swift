import Logging
import Synchronization
import VeneerCore
import VeneerFilter
import VeneerOS
import VeneerStore

extension Snapshotter {
    /// Removes the snapshot `key` of `namespace`. Its directory is deleted before this
    /// returns, or, with `deferringDeletion`, only moved into the trash (one rename,
    /// however large the layer), which the next cleanup empties: for callers that hold
    /// a lock across the call, as containerd's garbage collector does before it asks
    /// for a cleanup.
    public func remove(
        key: String, in namespace: Namespace = .default, deferringDeletion: Bool = false
    ) async throws(VeneerError) {
        try Rules.validateKey(key)
        // The checks, the transaction (run here when no other is running) and the
        // deletion, on one thread that may block.
        try await blockingOperation { () throws(VeneerError) in
            try self.removeBlocking(key: key, in: namespace, deferringDeletion: deferringDeletion)
        }
    }

    private func removeBlocking(key: String, in namespace: Namespace, deferringDeletion: Bool) throws(VeneerError) {
        let current = store.record(key, in: namespace)
        if let current {
            try claimShared(current, doing: "remove it")
        }
        defer { if let current { releaseClaim(current) } }
        if let current {
            try refuseIfSomethingIsMountedInside(current)
        }
        let record = try store.removeBlocking(key, in: namespace)
        let dir = layout.snapshotDirectory(record.id)
        if deferringDeletion {
            let trash = layout.trash + "/removed-\(record.id)"
            do {
                try FileSystem.rename(dir, to: trash)
                logger.info(
                    "removed snapshot; its directory waits in the trash for the next cleanup",
                    metadata: ["namespace": "\(namespace)", "snapshot.key": "\(key)", "id": "\(record.id)"])
                return
            } catch where error.isNotFound {
                // A cleanup that ran between the row's removal and the rename found the
                // directory orphaned and deleted it already.
                logger.info("removed snapshot", metadata: ["namespace": "\(namespace)", "snapshot.key": "\(key)", "id": "\(record.id)"])
                return
            } catch {
                // Deleted here instead; a directory left without its row is cleanup's anyway.
                logger.warning("cannot move the directory of a removed snapshot to the trash; deleting it now",
                    metadata: ["path": "\(dir)", "error": "\(error)"])
            }
        }
        do {
            let kept = try FileSystem.removeTree(dir)
            if !kept.isEmpty {
                logger.warning(
                    "kept what is mounted inside a removed snapshot; unmount it, then clean up",
                    metadata: ["path": "\(dir)", "mount_points": "\(kept.joined(separator: ", "))"])
            }
        } catch {
            // The row is gone, so the directory is an orphan that cleanup reclaims.
            logger.warning("cannot remove directory of removed snapshot; cleanup will retry",
                metadata: ["path": "\(dir)", "error": "\(error)"])
        }
        logger.info("removed snapshot", metadata: ["namespace": "\(namespace)", "snapshot.key": "\(key)", "id": "\(record.id)"])
    }

    /// Refuses to remove a snapshot while anything is mounted inside its directories
    /// (by someone else: the daemon's own mounts are refused by the store): deleting
    /// them would delete through that mount.
    func refuseIfSomethingIsMountedInside(_ record: SnapshotRecord) throws(VeneerError) {
        let dir = stateRoot.path + "/snapshots/\(record.id)"
        let inside: [String]
        do {
            inside = try MountTable.current().map(\.target).filter { PathSafety.isLexicallyInside($0, dir) }
        } catch {
            throw .internal("cannot read the mount table: \(error)", cause: error)
        }
        if !inside.isEmpty {
            throw .failedPrecondition(
                "snapshot \(quoted(record.key)) has something mounted inside its directory at \(inside.sorted().joined(separator: ", ")); unmount it before removing the snapshot")
        }
    }

    /// A measurement of `record`'s layer failed: not found when the snapshot was
    /// removed meanwhile (its directory went with it), else the failure.
    func measurementFailed(_ error: any Error, record: SnapshotRecord) -> VeneerError {
        let key = record.key
        if let current = store.record(key, in: record.namespace), current.id == record.id {
            if let error = error as? SystemError {
                return Self.mapped(error, doing: "cannot measure snapshot \(quoted(key))")
            }
            return .internal("cannot measure snapshot \(quoted(key)): \(error)", cause: error)
        }
        return Lifecycle.notFound(key)
    }
}
