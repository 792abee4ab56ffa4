import Foundation
import GRDB
import Synchronization
import VeneerCore
import VeneerJSON

extension SnapshotStore {
    /// Inserts a new snapshot after checking the rules; its parent is looked up in its
    /// own namespace. `beforeCommit` runs inside the transaction with the new id and the
    /// parent's record; when it throws, nothing is written.
    public func insert(
        _ new: NewSnapshot,
        beforeCommit: @escaping @Sendable (_ id: Int64, _ parent: SnapshotRecord?, _ batch: WriteBatch) throws -> Void
    ) async throws(VeneerError) -> SnapshotRecord {
        try await write(insertion(new, beforeCommit: beforeCommit))
    }

    /// ``insert(_:beforeCommit:)`` for a thread that may block (never one of the
    /// cooperative pool): when no batch is running, the batch runs on this thread.
    public func insertBlocking(
        _ new: NewSnapshot,
        beforeCommit: @escaping @Sendable (_ id: Int64, _ parent: SnapshotRecord?, _ batch: WriteBatch) throws -> Void
    ) throws(VeneerError) -> SnapshotRecord {
        try writeBlocking(durable: true, insertion(new, beforeCommit: beforeCommit))
    }

    private func insertion(
        _ new: NewSnapshot,
        beforeCommit: @escaping @Sendable (_ id: Int64, _ parent: SnapshotRecord?, _ batch: WriteBatch) throws -> Void
    ) -> @Sendable (Database, WriteBatch) throws -> SnapshotRecord {
        { db, batch in
            let existing = try Self.fetchKind(db, SnapshotName(new.namespace, new.key))
            var parent: SnapshotRecord?
            if let parentKey = new.parent {
                parent = try Self.fetch(db, SnapshotName(new.namespace, parentKey))
            }
            try Lifecycle.checkPrepare(
                key: new.key, kind: new.kind, existing: existing?.kind,
                parent: new.parent.map { ($0, parent?.kind) })
            try db.cachedStatement(
                sql: """
                    INSERT INTO snapshots (namespace, key, kind, parent_id, labels, created, updated)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(
                arguments: [
                    new.namespace.name, new.key, new.kind.rawValue, parent?.id, Self.encodeLabels(new.labels),
                    new.created.nanosecondsSinceEpoch, new.created.nanosecondsSinceEpoch,
                ])
            let id = db.lastInsertedRowID
            try beforeCommit(id, parent, batch)
            let record = SnapshotRecord(
                id: id, namespace: new.namespace, key: new.key, kind: new.kind, parentID: parent?.id, parentKey: parent?.key,
                labels: new.labels, created: new.created, updated: new.created, usage: nil)
            batch.afterCommit { self.index.withLock { $0.insert(record) } }
            return record
        }
    }

    /// Turns the active snapshot `key` into the committed snapshot `name`, in the same
    /// namespace. `expectedID` guards against the key having been replaced since the
    /// caller measured its usage.
    public func commit(
        key: String, name: String, labels: [String: String], usage: Usage, at time: Timestamp, expectedID: Int64,
        in namespace: Namespace = .default
    ) async throws(VeneerError) -> SnapshotRecord {
        try await write(
            committing(key: key, name: name, labels: labels, usage: usage, at: time, expectedID: expectedID, in: namespace))
    }

    /// ``commit(key:name:labels:usage:at:expectedID:in:)`` for a thread that may block.
    public func commitBlocking(
        key: String, name: String, labels: [String: String], usage: Usage, at time: Timestamp, expectedID: Int64,
        in namespace: Namespace = .default
    ) throws(VeneerError) -> SnapshotRecord {
        try writeBlocking(
            durable: true,
            committing(key: key, name: name, labels: labels, usage: usage, at: time, expectedID: expectedID, in: namespace))
    }

    private func committing(
        key: String, name: String, labels: [String: String], usage: Usage, at time: Timestamp, expectedID: Int64,
        in namespace: Namespace
    ) -> @Sendable (Database, WriteBatch) throws -> SnapshotRecord {
        { db, batch in
            let nameTaken = try Self.fetchKind(db, SnapshotName(namespace, name))
            let current = try Self.fetch(db, SnapshotName(namespace, key))
            try Lifecycle.checkCommit(name: name, nameTaken: nameTaken?.kind, key: key, kind: current?.kind)
            guard var record = current, record.id == expectedID else {
                throw VeneerError.failedPrecondition(
                    "snapshot \(quoted(key)) changed while it was being committed; retry the commit")
            }
            try Self.refuseIfMounted(db, record, doing: "committing it")
            try db.cachedStatement(
                sql: """
                    UPDATE snapshots SET key = ?, kind = 'committed', labels = ?, created = ?, updated = ?,
                        size = ?, inodes = ? WHERE id = ?
                    """
            ).execute(
                arguments: [
                    name, Self.encodeLabels(labels), time.nanosecondsSinceEpoch, time.nanosecondsSinceEpoch,
                    usage.size, usage.inodes, record.id,
                ])
            record.key = name
            record.kind = .committed
            record.labels = labels
            record.created = time
            record.updated = time
            record.usage = usage
            let committed = record
            batch.afterCommit { self.index.withLock { $0.insert(committed) } }
            return record
        }
    }

    /// Deletes the row of `key` after checking it has no children; returns what was deleted.
    public func remove(
        _ key: String, in namespace: Namespace = .default,
        check: @escaping @Sendable (SnapshotRecord) throws -> Void = { _ in }
    ) async throws(VeneerError) -> SnapshotRecord {
        try await write(removal(key, in: namespace, check: check))
    }

    /// ``remove(_:in:check:)`` for a thread that may block.
    public func removeBlocking(
        _ key: String, in namespace: Namespace = .default,
        check: @escaping @Sendable (SnapshotRecord) throws -> Void = { _ in }
    ) throws(VeneerError) -> SnapshotRecord {
        try writeBlocking(durable: true, removal(key, in: namespace, check: check))
    }

    private func removal(
        _ key: String, in namespace: Namespace, check: @escaping @Sendable (SnapshotRecord) throws -> Void
    ) -> @Sendable (Database, WriteBatch) throws -> SnapshotRecord {
        { db, batch in
            let record = try Self.fetch(db, SnapshotName(namespace, key))
            var children: [String] = []
            var childCount = 0
            if let record {
                children = try String.fetchAll(
                    db.cachedStatement(sql: "SELECT key FROM snapshots WHERE parent_id = ? ORDER BY id LIMIT 3"),
                    arguments: [record.id])
                childCount = children.count < 3 ? children.count : try Int.fetchOne(
                    db.cachedStatement(sql: "SELECT COUNT(*) FROM snapshots WHERE parent_id = ?"),
                    arguments: [record.id]) ?? children.count
            }
            try Lifecycle.checkRemove(key: key, kind: record?.kind, childCount: childCount, someChildren: children)
            guard let record else { throw Lifecycle.notFound(key) }
            try Self.refuseIfMounted(db, record, doing: "removing it")
            try check(record)
            try db.cachedStatement(sql: "DELETE FROM snapshots WHERE id = ?").execute(arguments: [record.id])
            batch.afterCommit { self.index.withLock { $0.remove(id: record.id) } }
            return record
        }
    }

    /// Replaces the labels of `key` with `transform(current)` and bumps `updated`.
    public func updateLabels(
        _ key: String, in namespace: Namespace = .default, at time: Timestamp,
        transform: @escaping @Sendable ([String: String]) throws -> [String: String]
    ) async throws(VeneerError) -> SnapshotRecord {
        try await write { db, batch in
            guard var record = try Self.fetch(db, SnapshotName(namespace, key)) else { throw Lifecycle.notFound(key) }
            let labels = try transform(record.labels)
            try db.cachedStatement(
                sql: "UPDATE snapshots SET labels = ?, updated = ? WHERE id = ?"
            ).execute(
                arguments: [Self.encodeLabels(labels), time.nanosecondsSinceEpoch, record.id])
            record.labels = labels
            record.updated = time
            let updated = record
            batch.afterCommit { self.index.withLock { $0.insert(updated) } }
            return record
        }
    }

    /// Runs `body` with the ids of all snapshots while no other write can happen,
    /// so that directories can be matched against rows without racing a prepare.
    public func withWritesPaused<T: Sendable>(
        _ body: @escaping @Sendable (_ ids: Set<Int64>) throws -> T
    ) async throws(VeneerError) -> T {
        try await write { db, _ in
            try body(Set(try Int64.fetchAll(db, sql: "SELECT id FROM snapshots")))
        }
    }
}
