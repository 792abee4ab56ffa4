import Dispatch
import GRDB
import Synchronization

/// What a write job can ask of the batch it runs in. Used only on the writer's queue.
public final class WriteBatch {
    private var preCommit: [String: () throws -> Void] = [:]
    private var preCommitOrder: [String] = []
    private var rollbackActions: [() -> Void] = []
    private var postCommitActions: [() -> Void] = []
    /// Set when a job failed; a job alone in its transaction then rolls it back.
    var failed = false
    /// Set when a failed job's changes could not be undone: the whole batch rolls back.
    var broken = false

    init() {}

    /// Runs `action` once per batch, before the transaction commits (for example one
    /// fsync of a directory that several jobs renamed into). A failure fails the batch.
    public func beforeCommit(once id: String, _ action: @escaping () throws -> Void) {
        if preCommit[id] == nil { preCommitOrder.append(id) }
        preCommit[id] = action
    }

    /// Undoes a side effect if this job's changes are not committed after all.
    public func onRollback(_ action: @escaping () -> Void) {
        rollbackActions.append(action)
    }

    /// Runs after the transaction committed, in commit order.
    public func afterCommit(_ action: @escaping () -> Void) {
        postCommitActions.append(action)
    }

    // MARK: - Used by the batcher

    struct Mark {
        var rollback: Int
        var postCommit: Int
        var preCommit: Int
    }

    func mark() -> Mark {
        Mark(rollback: rollbackActions.count, postCommit: postCommitActions.count, preCommit: preCommitOrder.count)
    }

    /// Undoes the side effects a failed job registered since `mark`.
    func rollBack(to mark: Mark) {
        for action in rollbackActions[mark.rollback...].reversed() { action() }
        rollbackActions.removeSubrange(mark.rollback...)
        postCommitActions.removeSubrange(mark.postCommit...)
        for id in preCommitOrder[mark.preCommit...] { preCommit[id] = nil }
        preCommitOrder.removeSubrange(mark.preCommit...)
    }

    func runPreCommit() throws {
        for id in preCommitOrder {
            try preCommit[id]?()
        }
    }

    func rollBackAll() {
        rollBack(to: Mark(rollback: 0, postCommit: 0, preCommit: 0))
    }

    func runPostCommit() {
        for action in postCommitActions { action() }
    }
}

/// Group commit: write jobs that arrive while a transaction is running are queued and
/// then run together in the next transaction, each in its own savepoint, so that many
/// concurrent clients share one WAL fsync. A job that fails rolls back its savepoint
/// only; the others still commit. If SQLite ends the transaction itself, or a savepoint
/// cannot be rolled back, the whole batch fails and its remaining jobs do not run.
///
/// A batch made only of jobs that do not need to survive a power loss (records of
/// mounts, which a power loss removes anyway) commits without waiting for the disk:
/// the change is in the operating system's cache, so it survives the daemon crashing,
/// and the next durable commit flushes it with its own.
final class WriteBatcher: Sendable {
    struct Job: Sendable {
        /// Whether the commit must be on disk before the job is answered.
        let durable: Bool
        /// Runs the job's body (in a savepoint when `shared` says other jobs share the
        /// transaction) and returns the completion to call once the batch's fate is
        /// known (nil when committed, else the commit error).
        let run: @Sendable (_ db: Database, _ batch: WriteBatch, _ shared: Bool) -> @Sendable ((any Error)?) -> Void
        /// Completes the job with `error` when its batch failed before running it.
        let abandon: @Sendable (_ error: any Error) -> Void
    }

    private struct State {
        var jobs: [Job] = []
        var draining = false
    }

    private let pool: DatabasePool
    private let queue = DispatchQueue(label: "veneer.store.writer", qos: .userInitiated)
    private let state = Mutex(State())
    /// The writer connection's synchronous mode (FULL when true, else NORMAL).
    private let synchronousFull = Mutex(true)
    /// Largest number of jobs in one transaction.
    private let maxBatch = 64

    init(pool: DatabasePool) {
        self.pool = pool
    }

    /// Runs `body` in the next batch and returns its value once the batch committed.
    func submit<T: Sendable>(
        durable: Bool = true, _ body: @escaping @Sendable (Database, WriteBatch) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = Self.job(durable: durable, body) { continuation.resume(with: $0) }
            if enqueue(job) {
                queue.async { self.drain() }
            }
        }
    }

    /// Like ``submit(durable:_:)``, for a thread that may block (never one of the
    /// cooperative pool): when no batch is running, this thread runs the batch itself,
    /// which spares two thread switches.
    func submitBlocking<T: Sendable>(
        durable: Bool = true, _ body: @escaping @Sendable (Database, WriteBatch) throws -> T
    ) throws -> T {
        try submit(durable: durable, drainingHere: true, body).wait()
    }

    /// Queues `body` and returns; ``WriteOutcome/wait()`` gives its value once the
    /// batch committed. When no batch is running, `drainingHere` runs the batch on this
    /// thread before returning (only for a thread that may block); otherwise the
    /// writer's own thread runs it while the caller does other work.
    func submit<T: Sendable>(
        durable: Bool, drainingHere: Bool, _ body: @escaping @Sendable (Database, WriteBatch) throws -> T
    ) -> WriteOutcome<T> {
        let outcome = WriteOutcome<T>()
        if enqueue(Self.job(durable: durable, body) { outcome.set($0) }) {
            if drainingHere { drain(onCallersThread: true) } else { queue.async { self.drain() } }
        }
        return outcome
    }

    /// Queues `job`; true when the caller must start draining.
    private func enqueue(_ job: Job) -> Bool {
        state.withLock { state -> Bool in
            state.jobs.append(job)
            if state.draining { return false }
            state.draining = true
            return true
        }
    }

    /// Wraps `body` in a savepoint; `complete` receives its value, or its error, or the
    /// error of the batch's commit.
    private static func job<T: Sendable>(
        durable: Bool, _ body: @escaping @Sendable (Database, WriteBatch) throws -> T,
        complete: @escaping @Sendable (Result<T, any Error>) -> Void
    ) -> Job {
        Job(durable: durable, run: { db, batch, shared in
            let mark = batch.mark()
            let result: Result<T, any Error>
            do {
                var value: T?
                if shared {
                    // A savepoint of cached statements (GRDB's inSavepoint prepares them
                    // again each time).
                    try db.cachedStatement(sql: "SAVEPOINT job").execute()
                    do {
                        value = try body(db, batch)
                    } catch {
                        // SQLite may have ended the whole transaction itself (it does after
                        // some errors); then, or if the job's changes cannot be undone,
                        // nothing of the batch commits and no later job of it runs.
                        do {
                            guard db.isInsideTransaction else { throw DatabaseError(message: "the transaction ended") }
                            try db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT job").execute()
                            try db.cachedStatement(sql: "RELEASE SAVEPOINT job").execute()
                        } catch {
                            batch.broken = true
                        }
                        throw error
                    }
                    try db.cachedStatement(sql: "RELEASE SAVEPOINT job").execute()
                } else {
                    // Alone in its transaction: a failure rolls the whole transaction back.
                    value = try body(db, batch)
                }
                if let value {
                    result = .success(value)
                } else {
                    result = .failure(DatabaseError(message: "write job produced no value"))
                }
            } catch {
                batch.rollBack(to: mark)
                batch.failed = true
                result = .failure(error)
            }
            return { commitError in
                if let commitError, case .success = result {
                    complete(.failure(commitError))
                } else {
                    complete(result)
                }
            }
        }, abandon: { error in complete(.failure(error)) })
    }

    /// Runs batches until no job is left. A caller's thread (`onCallersThread`) runs
    /// one batch only, the one that holds its own job (queued first, when nothing was
    /// draining), and leaves later jobs to the writer's thread, so that it does not wait
    /// for the work of others.
    private func drain(onCallersThread: Bool = false) {
        var batchesRun = 0
        while true {
            let jobs = state.withLock { state -> [Job]? in
                if state.jobs.isEmpty {
                    state.draining = false
                    return []
                }
                // Still draining: the writer's thread takes over.
                if onCallersThread && batchesRun > 0 { return nil }
                let taken = Array(state.jobs.prefix(maxBatch))
                state.jobs.removeFirst(taken.count)
                return taken
            }
            guard let jobs else {
                queue.async { self.drain() }
                return
            }
            if jobs.isEmpty { return }
            batchesRun += 1
            let batch = WriteBatch()
            var completions: [@Sendable ((any Error)?) -> Void] = []
            var failure: (any Error)?
            let durable = jobs.contains { $0.durable }
            do {
                try pool.writeWithoutTransaction { db in
                    // WAL with synchronous=NORMAL: the commit is written to the WAL
                    // but not fsync'd. The mode is switched before the batch that needs
                    // the other one; if switching fails, the batch fails.
                    if durable != synchronousFull.withLock({ $0 }) {
                        try db.execute(sql: durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
                        synchronousFull.withLock { $0 = durable }
                    }
                    // BEGIN, COMMIT and ROLLBACK as cached statements: GRDB's
                    // inTransaction prepares them again for every transaction.
                    try db.cachedStatement(sql: "BEGIN IMMEDIATE").execute()
                    do {
                        let shared = jobs.count > 1
                        // Outside a transaction a job's changes would commit on their own.
                        for job in jobs where !batch.broken {
                            completions.append(job.run(db, batch, shared))
                        }
                        if !shared, batch.failed {
                            try db.cachedStatement(sql: "ROLLBACK").execute()
                            return
                        }
                        if batch.broken {
                            throw DatabaseError(message: "a failed write could not be undone; nothing of its batch was committed")
                        }
                        try batch.runPreCommit()
                        try db.cachedStatement(sql: "COMMIT").execute()
                    } catch {
                        // SQLite has already rolled back after some errors.
                        if db.isInsideTransaction {
                            try? db.cachedStatement(sql: "ROLLBACK").execute()
                        }
                        throw error
                    }
                }
            } catch {
                failure = error
                batch.rollBackAll()
            }
            if failure == nil {
                batch.runPostCommit()
            }
            for completion in completions {
                completion(failure)
            }
            // Jobs the failed batch never got to (BEGIN failed, or the batch broke) fail with it.
            if let failure {
                for job in jobs.dropFirst(completions.count) {
                    job.abandon(failure)
                }
            }
        }
    }
}

/// The result of a job submitted from a blocking thread, and the wait for it.
final class WriteOutcome<T: Sendable>: Sendable {
    private let result = Mutex<Result<T, any Error>?>(nil)
    private let done = DispatchSemaphore(value: 0)

    func set(_ value: Result<T, any Error>) {
        result.withLock { $0 = value }
        done.signal()
    }

    func wait() throws -> T {
        done.wait()
        guard let value = result.withLock({ $0 }) else {
            throw DatabaseError(message: "write job finished without a result")
        }
        return try value.get()
    }
}
