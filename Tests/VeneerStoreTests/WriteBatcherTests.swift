import Dispatch
import GRDB
import Synchronization
import Testing
import VeneerTestSupport
@testable import VeneerStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@Suite("WriteBatcher")
struct WriteBatcherTests {
    /// A batcher on a fresh database with one table of names.
    private func batcher(_ tmp: TemporaryDirectory) throws -> WriteBatcher {
        let pool = try DatabasePool(path: tmp.database)
        try pool.write { db in try db.execute(sql: "CREATE TABLE names (name TEXT PRIMARY KEY)") }
        return WriteBatcher(pool: pool)
    }

    private func names(_ tmp: TemporaryDirectory) throws -> Set<String> {
        Set(try DatabaseQueue(path: tmp.database).read { db in try String.fetchAll(db, sql: "SELECT name FROM names") })
    }

    /// A job that stores `name` and answers it.
    private static func inserting(_ name: String) -> @Sendable (Database, WriteBatch) throws -> String {
        { db, _ in
            try db.execute(sql: "INSERT INTO names VALUES (?)", arguments: [name])
            return name
        }
    }

    /// Queues `jobs` behind a job that holds the writer, so that they run as one batch.
    private func asOneBatch(
        _ batcher: WriteBatcher, _ jobs: [@Sendable (Database, WriteBatch) throws -> String]
    ) -> [Result<String, any Error>] {
        let holding = DispatchSemaphore(value: 0)
        let hold = batcher.submit(durable: true, drainingHere: false) { _, _ -> String in
            holding.signal()
            usleep(100_000)
            return "hold"
        }
        holding.wait()
        let outcomes = jobs.map { batcher.submit(durable: true, drainingHere: false, $0) }
        _ = try? hold.wait()
        return outcomes.map { outcome in Result { try outcome.wait() } }
    }

    private struct Refused: Error {}

    /// Runs as one batch: the insertion of `a`, a job that executes `sql` and then
    /// fails, and the insertion of `c`.
    private func failingBetweenTwoInserts(_ batcher: WriteBatcher, executing sql: String) -> [Result<String, any Error>] {
        asOneBatch(batcher, [
            Self.inserting("a"),
            { db, _ in
                try db.execute(sql: sql)
                throw Refused()
            },
            Self.inserting("c"),
        ])
    }

    @Test func aJobThatEndsTheTransactionFailsItsWholeBatchAndNothingCommits() throws {
        let tmp = try TemporaryDirectory()
        let batcher = try batcher(tmp)
        // What SQLite does by itself after some errors (a full disk, I/O errors).
        let results = failingBetweenTwoInserts(batcher, executing: "ROLLBACK")
        // Whatever each job is told, the database agrees with it.
        let stored = try names(tmp)
        for (name, result) in zip(["a", "b", "c"], results) {
            if case .success = result {
                #expect(stored.contains(name), "\(name) reported written but is not stored")
            } else {
                #expect(!stored.contains(name), "\(name) reported failed but is stored")
            }
        }
        #expect(results.allSatisfy { if case .failure = $0 { true } else { false } })
        // The batcher still works.
        #expect(try batcher.submitBlocking(Self.inserting("d")) == "d")
        #expect(try names(tmp) == ["d"])
    }

    @Test func aFailedJobInASharedBatchRollsBackToItsSavepointOnly() throws {
        let tmp = try TemporaryDirectory()
        let batcher = try batcher(tmp)
        let results = failingBetweenTwoInserts(batcher, executing: "INSERT INTO names VALUES ('b')")
        #expect(try names(tmp) == ["a", "c"])
        #expect(results.map { (try? $0.get()) ?? "failed" } == ["a", "failed", "c"])
    }

    @Test func jobsOfABatchWhoseTransactionCannotBeginFailInsteadOfWaiting() throws {
        let tmp = try TemporaryDirectory()
        let batcher = try batcher(tmp)
        // Another connection holds the write lock; this pool does not wait for it.
        let other = try DatabaseQueue(path: tmp.database)
        try other.writeWithoutTransaction { db in
            try db.execute(sql: "BEGIN IMMEDIATE")
            #expect(throws: DatabaseError.self) {
                try batcher.submitBlocking { db, _ -> String in
                    try db.execute(sql: "INSERT INTO names VALUES ('a')")
                    return "a"
                }
            }
            try db.execute(sql: "ROLLBACK")
        }
        #expect(try batcher.submitBlocking { db, _ -> String in
            try db.execute(sql: "INSERT INTO names VALUES ('b')")
            return "b"
        } == "b")
        #expect(try names(tmp) == ["b"])
    }

    @Test func aCallerDrainingHereRunsOnlyTheBatchOfItsOwnJobAndLeavesLaterJobsToTheWriter() throws {
        let tmp = try TemporaryDirectory()
        let batcher = try batcher(tmp)
        let threads = Mutex<(first: pthread_t?, later: pthread_t?)>((nil, nil))
        let later = Mutex<WriteOutcome<String>?>(nil)
        let first = batcher.submit(durable: true, drainingHere: true) { db, batch -> String in
            threads.withLock { $0.first = pthread_self() }
            // Queued while this batch runs, so it belongs to the next one.
            later.withLock {
                $0 = batcher.submit(durable: true, drainingHere: false) { db, batch -> String in
                    threads.withLock { $0.later = pthread_self() }
                    return try Self.inserting("b")(db, batch)
                }
            }
            return try Self.inserting("a")(db, batch)
        }
        // The caller's own job committed before submit returned.
        #expect(try names(tmp).contains("a"))
        #expect(try first.wait() == "a")
        let laterOutcome = try #require(later.withLock { $0 })
        #expect(try laterOutcome.wait() == "b")
        #expect(try names(tmp) == ["a", "b"])
        let (firstThread, laterThread) = threads.withLock { ($0.first, $0.later) }
        #expect(firstThread == pthread_self())
        #expect(laterThread != nil && laterThread != pthread_self())
    }
}
