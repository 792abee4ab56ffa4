import Foundation
import GRDB
import Synchronization
import VeneerCore
import VeneerJSON

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
