import Foundation
import GRDB
import Synchronization
import VeneerCore
import VeneerJSON

/// Records of the mounts the daemon made.
extension SnapshotStore {
    static let selectMounts = """
        SELECT m.target, m.snapshot_id, s.key, m.readonly, m.mounts, m.mounted_at, m.mount_id, m.device, s.namespace
        FROM mounts m JOIN snapshots s ON s.id = m.snapshot_id
        """

    static func mountRecord(_ row: Row) throws -> MountRecord {
        let mountsText: String = row[4]
        let mounts: [Mount]
        do {
            mounts = try StrictJSON.decode([Mount].self, from: StrictJSON.parse(Array(mountsText.utf8)))
        } catch {
            let target: String = row[0]
            throw VeneerError.internal(
                "database holds mounts of \(quoted(target)) that are not a JSON list of mounts: \(error)", cause: error)
        }
        return MountRecord(
            target: row[0], snapshotID: row[1], namespace: try namespace(row[8]), key: row[2], readonly: row[3], mounts: mounts,
            mountedAt: Timestamp(nanosecondsSinceEpoch: row[5]), mountID: (row[6] as Int64?).map { UInt64(bitPattern: $0) },
            device: row[7])
    }

    /// Live mounts, of one snapshot or of every snapshot of `namespace` (of all
    /// namespaces when nil), ordered by target.
    public func mounts(key: String? = nil, in namespace: Namespace? = nil) async throws(VeneerError) -> [MountRecord] {
        index.withLock { index in
            index.mountsByTarget.values.filter { record in
                (namespace == nil || record.namespace == namespace) && (key == nil || record.key == key)
            }.sorted { $0.target < $1.target }
        }
    }

    public func mount(target: String) async throws(VeneerError) -> MountRecord? {
        index.withLock { $0.mountsByTarget[target] }
    }

    /// The record of the mount at `target`, if any; does not block.
    public func mountRecord(at target: String) -> MountRecord? {
        index.withLock { $0.mountsByTarget[target] }
    }

    /// Notes which kernel mount the record at `target` is, once it is attached. The
    /// record in memory has it at once; the row is written by the store's writer
    /// without anyone waiting (not fsync'd, like the record). Should that write be lost,
    /// start-up reconciliation finds the mount at its target again.
    public func identifyMount(target: String, mountID: UInt64, device: String) {
        let known = index.withLock { index -> Bool in
            guard var record = index.mountsByTarget[target] else { return false }
            record.mountID = mountID
            record.device = device
            index.mountsByTarget[target] = record
            return true
        }
        guard known else { return }
        _ = batcher.submit(durable: false, drainingHere: false) { db, _ in
            try db.cachedStatement(sql: "UPDATE mounts SET mount_id = ?, device = ? WHERE target = ?")
                .execute(arguments: [Int64(bitPattern: mountID), device, target])
        }
    }

    /// Moves the record at `from` to `to`: its mount was moved there (by `mount --move`
    /// or a rename of a directory above it). Blocking, not fsync'd.
    public func moveMount(from: String, to: String) throws(VeneerError) {
        try writeBlocking(durable: false) { db, batch in
            try db.cachedStatement(sql: "UPDATE mounts SET target = ? WHERE target = ?").execute(arguments: [to, from])
            batch.afterCommit {
                self.index.withLock { index in
                    guard var record = index.mountsByTarget.removeValue(forKey: from) else { return }
                    record.target = to
                    index.mountsByTarget[to] = record
                }
            }
        }
    }

    /// Refuses a target that is a mount target of the daemon's already (recorded, or
    /// being recorded), as ``recordMount(of:target:readonly:mounts:at:check:)`` would.
    public func refuseIfMountTarget(_ target: String) throws(VeneerError) {
        try index.withLock { index throws(VeneerError) in
            if let existing = index.mountsByTarget[target] ?? index.mountsBeingRecorded[target] {
                throw Self.targetTaken(target, by: existing)
            }
        }
    }

    static func targetTaken(_ target: String, by existing: MountRecord) -> VeneerError {
        .alreadyExists(
            "\(target) is already a mount target of snapshot \(quoted(existing.key)); unmount it first or choose another target")
    }

    /// Ids of every snapshot; used to find directories that belong to no row.
    /// Starts recording a mount of `snapshot` at `target`, to be waited for with
    /// ``PendingMountRecord/wait()`` before the mount is made visible.
    ///
    /// The rules are checked at once against the records in memory, those being written
    /// included: a target that has a record is refused with `already_exists`, and
    /// `check` sees the snapshot's other mounts and throws to refuse (for example a
    /// second writable mount); it runs while the in-memory index is locked, so it must
    /// be quick. The target is then reserved, so that the checks of every
    /// later recording see this one, and the row is written on the writer's thread while
    /// the caller goes on preparing the mount. The row is inserted by one statement that
    /// copies the snapshot's id from its row only while the id, key and kind are those
    /// the mount was planned with: a remove or commit that reaches the database first
    /// makes the record fail (`not_found`, or `failed_precondition` when the key now
    /// names another snapshot), and one that comes later finds the row and refuses.
    ///
    /// Records of mounts are not fsync'd: they survive the daemon crashing (the write is
    /// in the operating system's cache), and what they describe does not survive a power
    /// loss or a kernel crash, after which start-up reconciliation drops any record left.
    public func recordMount(
        of snapshot: SnapshotRecord, target: String, readonly: Bool, mounts: [Mount], at time: Timestamp,
        check: (_ siblings: [MountRecord]) throws(VeneerError) -> Void
    ) throws(VeneerError) -> PendingMountRecord {
        let key = snapshot.key
        let namespace = snapshot.namespace
        let record = MountRecord(
            target: target, snapshotID: snapshot.id, namespace: namespace, key: key, readonly: readonly, mounts: mounts, mountedAt: time)
        try index.withLock { index throws(VeneerError) in
            if let existing = index.mountsByTarget[target] ?? index.mountsBeingRecorded[target] {
                throw Self.targetTaken(target, by: existing)
            }
            var siblings = index.mountsByTarget.values.filter { $0.snapshotID == snapshot.id }
            siblings += index.mountsBeingRecorded.values.filter { $0.snapshotID == snapshot.id }
            try check(siblings)
            index.mountsBeingRecorded[target] = record
        }
        let outcome = batcher.submit(durable: false, drainingHere: false) { db, batch -> RecordedMount in
            // Encoded here, on the writer's thread, while the caller prepares the mount.
            let mountsJSON = JSONWriter.mountArray(mounts)
            try db.cachedStatement(
                sql: """
                    INSERT INTO mounts (target, snapshot_id, readonly, mounts, mounted_at)
                    SELECT ?, id, ?, ?, ? FROM snapshots WHERE id = ? AND namespace = ? AND key = ? AND kind = ?
                    """
            ).execute(
                arguments: [
                    target, readonly, String(decoding: mountsJSON, as: UTF8.self), time.nanosecondsSinceEpoch,
                    snapshot.id, namespace.name, key, snapshot.kind.rawValue,
                ])
            guard db.changesCount == 1 else { throw MountRecordRefused() }
            batch.afterCommit {
                self.index.withLock { index in
                    index.mountsBeingRecorded[target] = nil
                    index.mountsByTarget[target] = record
                }
            }
            return RecordedMount(record: record, mountsJSON: mountsJSON)
        }
        return PendingMountRecord(store: self, target: target, name: snapshot.name, outcome: outcome)
    }

    /// Ends a recording that failed: frees its target and says why.
    func recordingFailed(target: String, name: SnapshotName, error: any Error) -> VeneerError {
        index.withLock { $0.mountsBeingRecorded[target] = nil }
        guard error is MountRecordRefused else { return Self.mapped(error) }
        if record(name.key, in: name.namespace) == nil { return Lifecycle.notFound(name.key) }
        return .failedPrecondition("snapshot \(quoted(name.key)) changed while it was being mounted; retry")
    }

    /// Forgets the mounts at `targets`; returns how many were recorded. Not fsync'd and
    /// blocking.
    @discardableResult
    public func removeMounts(_ targets: [String]) throws(VeneerError) -> Int {
        try writeBlocking(durable: false) { db, batch in
            var removed = 0
            let statement = try db.cachedStatement(sql: "DELETE FROM mounts WHERE target = ?")
            for target in targets {
                try statement.execute(arguments: [target])
                removed += db.changesCount
            }
            batch.afterCommit {
                self.index.withLock { index in
                    for target in targets { index.mountsByTarget[target] = nil }
                }
            }
            return removed
        }
    }
}

/// A mount record whose row is being written; see
/// ``SnapshotStore/recordMount(of:target:readonly:mounts:at:check:)``.
public final class PendingMountRecord: Sendable {
    private let store: SnapshotStore
    private let target: String
    private let name: SnapshotName
    private let outcome: WriteOutcome<RecordedMount>

    init(store: SnapshotStore, target: String, name: SnapshotName, outcome: WriteOutcome<RecordedMount>) {
        self.store = store
        self.target = target
        self.name = name
        self.outcome = outcome
    }

    /// Blocks until the row is committed and returns the record, or throws why it was
    /// not written (its target is free again then). Call it once, from a thread that may
    /// block.
    public func wait() throws(VeneerError) -> RecordedMount {
        do {
            return try outcome.wait()
        } catch {
            throw store.recordingFailed(target: target, name: name, error: error)
        }
    }
}

/// A mount record as committed, with the JSON of its mounts as the row holds it (an
/// answer that shows the mounts can reuse it).
public struct RecordedMount: Sendable {
    public let record: MountRecord
    public let mountsJSON: [UInt8]
}

/// The snapshot of a mount record no longer has the id, key and kind it was planned with.
private struct MountRecordRefused: Error {}
