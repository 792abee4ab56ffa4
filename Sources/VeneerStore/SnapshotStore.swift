import Foundation
import GRDB
import Synchronization
import VeneerCore
import VeneerJSON

/// One row of the snapshots table.
public struct SnapshotRecord: Sendable, Equatable {
    /// Allocated by the database, never reused; names the snapshot's directory.
    public var id: Int64
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

    public var info: SnapshotInfo {
        SnapshotInfo(key: key, kind: kind, parent: parentKey, labels: labels, created: created, updated: updated)
    }
}

/// A mount the daemon made, as recorded in the store.
public struct MountRecord: Sendable, Equatable {
    public var target: String
    public var snapshotID: Int64
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
    public var key: String
    public var kind: SnapshotKind
    public var parent: String?
    public var labels: [String: String]
    public var created: Timestamp

    public init(key: String, kind: SnapshotKind, parent: String?, labels: [String: String], created: Timestamp) {
        self.key = key
        self.kind = kind
        self.parent = parent
        self.labels = labels
        self.created = created
    }
}

/// Snapshot metadata in SQLite (WAL, synchronous=FULL): a write is durable when
/// its method returns. Checks and changes of one operation happen in one
/// transaction, so concurrent operations on the same keys are serialized.
///
/// Reads are served from an in-memory index of all rows, loaded at open and updated
/// after each transaction commits (in commit order, before the writer is answered),
/// so a client always reads what it wrote. Write transactions check their rules
/// against the database itself.
public final class SnapshotStore: Sendable {
    let pool: DatabasePool
    let batcher: WriteBatcher
    let index: Mutex<Index>
    public let path: String

    struct Index {
        var byKey: [String: SnapshotRecord] = [:]
        var keyByID: [Int64: String] = [:]
        /// Length of each snapshot's chain, itself included.
        var depthByID: [Int64: Int] = [:]
        var parentByID: [Int64: Int64] = [:]
        var mountsByTarget: [String: MountRecord] = [:]
        /// Records whose row is being written; they hold their target and count in the
        /// checks of later recordings, but are not listed.
        var mountsBeingRecorded: [String: MountRecord] = [:]

        mutating func insert(_ record: SnapshotRecord) {
            if let old = keyByID[record.id], old != record.key { byKey[old] = nil }
            byKey[record.key] = record
            keyByID[record.id] = record.key
            depthByID[record.id] = 1 + (record.parentID.flatMap { depthByID[$0] } ?? 0)
            parentByID[record.id] = record.parentID
        }

        mutating func remove(id: Int64) {
            if let key = keyByID.removeValue(forKey: id) { byKey[key] = nil }
            depthByID[id] = nil
            parentByID[id] = nil
        }
    }

    public init(path: String) throws(VeneerError) {
        self.path = path
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(10)
        config.label = "veneer"
        do {
            pool = try DatabasePool(path: path, configuration: config)
            try pool.writeWithoutTransaction { db in
                // Durable commits: WAL is fsync'd at every commit.
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
            try Self.migrator.migrate(pool)
            batcher = WriteBatcher(pool: pool)
            let records = try pool.read { db in
                try Row.fetchAll(db, sql: Self.selectColumns + " ORDER BY s.id").map(Self.record)
            }
            var loaded = Index()
            // Ids grow, so parents come before their children.
            for record in records { loaded.insert(record) }
            for mount in try pool.read({ db in try Row.fetchAll(db, sql: Self.selectMounts).map(Self.mountRecord) }) {
                loaded.mountsByTarget[mount.target] = mount
            }
            index = Mutex(loaded)
        } catch {
            throw .unavailable("cannot open the metadata database \(path): \(error); check the state root's permissions and free space")
        }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE snapshots (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        key TEXT NOT NULL UNIQUE,
                        kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
                        parent_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
                        labels TEXT NOT NULL,
                        created INTEGER NOT NULL,
                        updated INTEGER NOT NULL,
                        size INTEGER,
                        inodes INTEGER
                    );
                    CREATE INDEX snapshots_parent ON snapshots(parent_id);
                    """)
        }
        migrator.registerMigration("v2-mounts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE mounts (
                        target TEXT PRIMARY KEY,
                        snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE RESTRICT,
                        readonly INTEGER NOT NULL,
                        mounts TEXT NOT NULL,
                        mounted_at INTEGER NOT NULL
                    );
                    CREATE INDEX mounts_snapshot ON mounts(snapshot_id);
                    """)
        }
        migrator.registerMigration("v3-mount-identity") { db in
            try db.execute(
                sql: """
                    ALTER TABLE mounts ADD COLUMN mount_id INTEGER;
                    ALTER TABLE mounts ADD COLUMN device TEXT;
                    """)
        }
        return migrator
    }

    /// Targets where the snapshot `id` is mounted, for refusing commit and remove.
    private static func mountTargets(_ db: Database, snapshotID: Int64) throws -> [String] {
        try String.fetchAll(
            db.cachedStatement(sql: "SELECT target FROM mounts WHERE snapshot_id = ? ORDER BY target"),
            arguments: [snapshotID])
    }

    private static func refuseIfMounted(_ db: Database, _ record: SnapshotRecord, doing what: String) throws {
        let targets = try mountTargets(db, snapshotID: record.id)
        if !targets.isEmpty {
            throw VeneerError.failedPrecondition(
                "snapshot \(quoted(record.key)) is mounted at \(targets.joined(separator: ", ")); unmount it before \(what)")
        }
    }

    private static let selectColumns = """
        SELECT s.id, s.key, s.kind, s.parent_id, p.key AS parent_key, s.labels, s.created, s.updated, s.size, s.inodes
        FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id
        """

    private static func record(_ row: Row) throws -> SnapshotRecord {
        let kindText: String = row[2]
        guard let kind = SnapshotKind(rawValue: kindText) else {
            throw VeneerError.internal("database holds unknown snapshot kind \(kindText)")
        }
        let labelsText: String = row[5]
        let labels: [String: String]
        do {
            labels = try StrictJSON.stringMap(Array(labelsText.utf8))
        } catch {
            throw VeneerError.internal("database holds labels that are not a JSON object of strings: \(error)", cause: error)
        }
        let size: Int64? = row[8]
        let inodes: Int64? = row[9]
        return SnapshotRecord(
            id: row[0], key: row[1], kind: kind, parentID: row[3], parentKey: row[4], labels: labels,
            created: Timestamp(nanosecondsSinceEpoch: row[6]),
            updated: Timestamp(nanosecondsSinceEpoch: row[7]),
            usage: size.flatMap { s in inodes.map { Usage(size: s, inodes: $0) } })
    }

    private static func encodeLabels(_ labels: [String: String]) -> String {
        String(decoding: JSONWriter.stringMap(labels), as: UTF8.self)
    }

    private static func fetch(_ db: Database, key: String) throws -> SnapshotRecord? {
        try Row.fetchOne(db.cachedStatement(sql: selectColumns + " WHERE s.key = ?"), arguments: [key]).map(record)
    }

    private static func fetchKind(_ db: Database, key: String) throws -> (id: Int64, kind: SnapshotKind)? {
        guard let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT id, kind FROM snapshots WHERE key = ?"), arguments: [key])
        else { return nil }
        let kindText: String = row[1]
        guard let kind = SnapshotKind(rawValue: kindText) else {
            throw VeneerError.internal("database holds unknown snapshot kind \(kindText)")
        }
        return (row[0], kind)
    }

    // MARK: - Reads

    public func get(_ key: String) async throws(VeneerError) -> SnapshotRecord? {
        record(key)
    }

    /// ``get(_:)`` without suspending: the in-memory index only.
    public func record(_ key: String) -> SnapshotRecord? {
        index.withLock { $0.byKey[key] }
    }

    /// Ids of the ancestors of snapshot `id`, nearest first (the snapshot itself not
    /// included): what an overlay's lower layers are made of.
    public func ancestorIDs(of id: Int64) -> [Int64] {
        index.withLock { index in
            var ids: [Int64] = []
            ids.reserveCapacity((index.depthByID[id] ?? 1) - 1)
            var next = index.parentByID[id]
            while let parent = next {
                ids.append(parent)
                next = index.parentByID[parent]
            }
            return ids
        }
    }

    /// Every snapshot, oldest first.
    public func list() async throws(VeneerError) -> [SnapshotRecord] {
        let records = index.withLock { Array($0.byKey.values) }
        // Sort positions rather than the (large) records themselves.
        return records.indices.sorted { records[$0].id < records[$1].id }.map { records[$0] }
    }

    public func counts() async throws(VeneerError) -> KindCounts {
        index.withLock { index in
            var counts = KindCounts()
            for record in index.byKey.values {
                switch record.kind {
                case .active: counts.active += 1
                case .view: counts.view += 1
                case .committed: counts.committed += 1
                }
            }
            return counts
        }
    }

    /// Length of the chain of `key` (itself included), or nil when it does not exist.
    public func depth(_ key: String) async throws(VeneerError) -> Int? {
        index.withLock { index in index.byKey[key].flatMap { index.depthByID[$0.id] } }
    }

    /// Longest chain of committed snapshots present.
    public func deepestChain() async throws(VeneerError) -> Int {
        index.withLock { index in
            var deepest = 0
            for record in index.byKey.values where record.kind == .committed {
                deepest = max(deepest, index.depthByID[record.id] ?? 0)
            }
            return deepest
        }
    }

    public func allIDs() async throws(VeneerError) -> Set<Int64> {
        index.withLock { Set($0.keyByID.keys) }
    }

    /// A query that proves the database answers (used by health checks).
    public func ping() async throws(VeneerError) {
        _ = try await read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    // MARK: - Writes

    /// Inserts a new snapshot after checking the rules. `beforeCommit` runs inside
    /// the transaction with the new id and the parent's record; when it throws,
    /// nothing is written.
    public func create(
        _ new: NewSnapshot,
        beforeCommit: @escaping @Sendable (_ id: Int64, _ parent: SnapshotRecord?, _ batch: WriteBatch) throws -> Void
    ) async throws(VeneerError) -> SnapshotRecord {
        try await write { db, batch in
            let existing = try Self.fetchKind(db, key: new.key)
            var parent: SnapshotRecord?
            if let parentKey = new.parent {
                parent = try Self.fetch(db, key: parentKey)
            }
            try Lifecycle.checkCreate(
                key: new.key, kind: new.kind, existing: existing?.kind,
                parent: new.parent.map { ($0, parent?.kind) })
            try db.cachedStatement(
                sql: """
                    INSERT INTO snapshots (key, kind, parent_id, labels, created, updated)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """
            ).execute(
                arguments: [
                    new.key, new.kind.rawValue, parent?.id, Self.encodeLabels(new.labels),
                    new.created.nanosecondsSinceEpoch, new.created.nanosecondsSinceEpoch,
                ])
            let id = db.lastInsertedRowID
            try beforeCommit(id, parent, batch)
            let record = SnapshotRecord(
                id: id, key: new.key, kind: new.kind, parentID: parent?.id, parentKey: parent?.key,
                labels: new.labels, created: new.created, updated: new.created, usage: nil)
            batch.afterCommit { self.index.withLock { $0.insert(record) } }
            return record
        }
    }

    /// Turns the active snapshot `key` into the committed snapshot `name`.
    /// `expectedID` guards against the key having been replaced since the caller
    /// measured its usage.
    public func commit(
        key: String, name: String, labels: [String: String], usage: Usage, at time: Timestamp, expectedID: Int64
    ) async throws(VeneerError) -> SnapshotRecord {
        try await write { db, batch in
            let nameTaken = try Self.fetchKind(db, key: name)
            let current = try Self.fetch(db, key: key)
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
    public func remove(_ key: String, check: @escaping @Sendable (SnapshotRecord) throws -> Void = { _ in })
        async throws(VeneerError) -> SnapshotRecord
    {
        try await write { db, batch in
            let record = try Self.fetch(db, key: key)
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
        _ key: String, at time: Timestamp,
        transform: @escaping @Sendable ([String: String]) throws -> [String: String]
    ) async throws(VeneerError) -> SnapshotRecord {
        try await write { db, batch in
            guard var record = try Self.fetch(db, key: key) else { throw Lifecycle.notFound(key) }
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
    /// so that directories can be matched against rows without racing a create.
    public func withWritesPaused<T: Sendable>(
        _ body: @escaping @Sendable (_ ids: Set<Int64>) throws -> T
    ) async throws(VeneerError) -> T {
        try await write { db, _ in
            try body(Set(try Int64.fetchAll(db, sql: "SELECT id FROM snapshots")))
        }
    }

    // MARK: - Plumbing

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(VeneerError) -> T {
        do {
            return try await pool.read(body)
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Runs `body` in the next group-committed transaction. `durable` writes are on
    /// disk when this returns; the others only need to survive the daemon crashing.
    func write<T: Sendable>(
        durable: Bool = true, _ body: @escaping @Sendable (Database, WriteBatch) throws -> T
    ) async throws(VeneerError) -> T {
        do {
            return try await batcher.submit(durable: durable, body)
        } catch {
            throw Self.mapped(error)
        }
    }

    /// ``write(durable:_:)`` for a thread that may block.
    func writeBlocking<T: Sendable>(
        durable: Bool, _ body: @escaping @Sendable (Database, WriteBatch) throws -> T
    ) throws(VeneerError) -> T {
        do {
            return try batcher.submitBlocking(durable: durable, body)
        } catch {
            throw Self.mapped(error)
        }
    }

    static func mapped(_ error: any Error) -> VeneerError {
        if let error = error as? VeneerError { return error }
        if let error = error as? DatabaseError {
            switch error.resultCode {
            case .SQLITE_FULL:
                return .resourceExhausted("the metadata database is out of space: \(error.message ?? "disk full"); free space on the state root")
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                return .unavailable("the metadata database is busy; retry")
            case .SQLITE_CONSTRAINT:
                return .failedPrecondition("the change conflicts with stored snapshots: \(error.message ?? "constraint failed"); retry")
            default:
                return .internal("metadata database error: \(error)", cause: error)
            }
        }
        return .internal("unexpected error: \(error)", cause: error)
    }
}

