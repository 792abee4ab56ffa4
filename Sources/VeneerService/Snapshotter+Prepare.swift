import Logging
import Synchronization
import VeneerCore
import VeneerFilter
import VeneerOS
import VeneerStore

extension Snapshotter {
    /// Prepare (`kind == .active`) or View (`kind == .view`) in `namespace`, on a parent
    /// of the same namespace.
    public func prepare(
        key: String, parent: String?, kind: SnapshotKind, labels: [String: String], in namespace: Namespace = .default
    ) async throws(VeneerError) -> (SnapshotInfo, [Mount]) {
        try Rules.validateKey(key)
        if let parent { try Rules.validateKey(parent, role: "parent") }
        try Rules.validateLabels(labels)
        if kind == .committed {
            throw .invalidArgument("kind must be active or view; committed snapshots come from commit")
        }
        // The chain's depth never changes while the parent exists, so checking it here,
        // before anything touches the disk, is enough.
        let maxDepth = self.maxDepth
        if let parent, let lowers = try await store.depth(parent, in: namespace), lowers > maxDepth {
            throw .failedPrecondition(
                "chain depth \(lowers) exceeds max_depth \(maxDepth): snapshot \(quoted(key)) would stack \(lowers) layers on \(quoted(parent)); flatten the image or raise max_depth (at most \(Self.kernelMaxDepth))")
        }
        // Build the directories under a staging name first, in parallel with other
        // requests; only the rename into place happens inside the store's transaction.
        // Both on one thread that may block, which also runs the transaction when no
        // other is running: one switch away from the caller's thread and one back.
        let parentRecord = parent.flatMap { store.record($0, in: namespace) }
        let staging = layout.staging + "/" + stagingName()
        let new = NewSnapshot(key: key, kind: kind, parent: parent, labels: labels, created: Self.now(), in: namespace)
        let record = try await blockingOperation { () throws(VeneerError) -> SnapshotRecord in
            try self.stageAndInsert(new, staging: staging, parentRecord: parentRecord)
        }
        // Renamed into place: nothing is left under the staging name.
        forgetStaging(staging)
        logger.info("created snapshot", metadata: ["namespace": "\(namespace)", "snapshot.key": "\(key)", "kind": "\(kind.rawValue)", "id": "\(record.id)"])
        let mounts = try await mounts(of: record)
        return (record.info, mounts)
    }

    /// Stages the directories of `new` at `staging` and inserts its row, which moves
    /// them into place; on any failure the staging directory goes again.
    private func stageAndInsert(
        _ new: NewSnapshot, staging: String, parentRecord: SnapshotRecord?
    ) throws(VeneerError) -> SnapshotRecord {
        let layout = self.layout
        let key = new.key
        do {
            try Self.stage(at: staging, kind: new.kind, parent: parentRecord, layout: layout)
        } catch {
            discardStaging(staging)
            // The parent was removed (or replaced) while its owner was being copied:
            // answer as if the request had come after that.
            if let parent = new.parent {
                let current = store.record(parent, in: new.namespace)
                if current?.id != parentRecord?.id {
                    try Lifecycle.checkPrepare(key: key, kind: new.kind, existing: nil, parent: (parent, current?.kind))
                    throw .failedPrecondition("parent snapshot \(quoted(parent)) changed while \(quoted(key)) was being prepared; retry")
                }
            }
            if let error = error as? SystemError {
                throw Self.mapped(error, doing: "cannot create the directories of snapshot \(quoted(key))")
            }
            throw .internal("cannot create the directories of snapshot \(quoted(key)): \(error)", cause: error)
        }
        do {
            return try store.insertBlocking(new) { id, parentInTransaction, batch in
                // The owner was copied from the parent looked up before staging; make sure
                // the key still names that parent.
                guard parentInTransaction?.id == parentRecord?.id else {
                    throw VeneerError.failedPrecondition(
                        "parent snapshot of \(quoted(key)) changed while it was being prepared; retry")
                }
                try Self.moveIntoPlace(staging: staging, id: id, layout: layout, batch: batch)
            }
        } catch {
            discardStaging(staging)
            throw error
        }
    }

    /// A staging name no other prepare uses; registered so cleanup leaves it alone.
    func stagingName(prefix: String = "pending") -> String {
        stagingNames.state.withLock { state in
            state.sequence += 1
            let name = "\(prefix)-\(SystemClock.monotonicNanoseconds())-\(state.sequence)"
            state.inFlight.insert(name)
            return name
        }
    }

    /// Removes what is left of a staging directory (nothing after a successful rename)
    /// and forgets its name.
    private func discardStaging(_ path: String) {
        _ = try? FileSystem.removeTree(path)
        forgetStaging(path)
    }

    func forgetStaging(_ path: String) {
        let name = String(path.split(separator: "/").last ?? "")
        _ = stagingNames.state.withLock { $0.inFlight.remove(name) }
    }

    /// Makes `<staging>/fs` (0755, owned like the parent's `fs` root) and, for an active
    /// snapshot, `<staging>/work`.
    private static func stage(at staging: String, kind: SnapshotKind, parent: SnapshotRecord?, layout: Layout) throws {
        try FileSystem.makeDirectory(staging, mode: 0o700)
        try FileSystem.makeDirectory(staging + "/fs", mode: 0o755)
        if let parent {
            let owner = try FileSystem.owner(layout.directories(parent.id).fs)
            try FileSystem.setOwner(staging + "/fs", owner)
        }
        if kind == .active {
            try FileSystem.makeDirectory(staging + "/work", mode: 0o700)
        }
    }

    /// Renames the staged directories to `snapshots/<id>`. Runs inside the store's
    /// transaction: if it throws, no row is written; if the transaction does not commit,
    /// the directory is removed again.
    ///
    /// The rename is not fsync'd: the new directories are empty when the prepare is
    /// answered, so if a power loss takes the rename back, ``recoverDirectories()``
    /// makes them again, empty, at the next start (and cleanup removes the staging
    /// directory). The row, which is fsync'd, is what makes the snapshot exist.
    private static func moveIntoPlace(staging: String, id: Int64, layout: Layout, batch: WriteBatch) throws {
        let final = layout.snapshotDirectory(id)
        do {
            // Ids of rolled-back inserts come round again: clear what such an attempt left.
            try FileSystem.removeTree(final)
            try FileSystem.rename(staging, to: final)
            batch.onRollback { _ = try? FileSystem.removeTree(final) }
        } catch {
            throw mapped(error, doing: "cannot move the directories of snapshot \(id) into place")
        }
    }
}
