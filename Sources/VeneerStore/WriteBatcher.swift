import Dispatch
import GRDB
import Synchronization

/// What a write job can ask of the batch it runs in. Used only on the writer's queue.
public final class WriteBatch {
    private var preCommit: [String: () throws -> Void] = [:]
    private var preCommitOrder: [String] = []
    private var rollbackActions: [() -> Void] = []
    private var postCommitActions: [() -> Void] = []

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
/// concurrent clients share one WAL fsync (and one fsync of each directory they touched).
/// A job that fails rolls back its savepoint only; the others still commit.
final class WriteBatcher: Sendable {
    struct Job: Sendable {
        /// Runs the job's body in a savepoint and returns the completion to call once
        /// the batch's fate is known (nil when committed, else the commit error).
        let run: @Sendable (Database, WriteBatch) -> @Sendable ((any Error)?) -> Void
    }

    private struct State {
        var jobs: [Job] = []
        var draining = false
    }

    private let pool: DatabasePool
    private let queue = DispatchQueue(label: "veneer.store.writer", qos: .userInitiated)
    private let state = Mutex(State())
    /// Largest number of jobs in one transaction.
    private let maxBatch = 64

    init(pool: DatabasePool) {
        self.pool = pool
    }

    func submit<T: Sendable>(_ body: @escaping @Sendable (Database, WriteBatch) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = Job { db, batch in
                let mark = batch.mark()
                let result: Result<T, any Error>
                do {
                    var value: T?
                    try db.inSavepoint {
                        value = try body(db, batch)
                        return .commit
                    }
                    if let value {
                        result = .success(value)
                    } else {
                        result = .failure(DatabaseError(message: "write job produced no value"))
                    }
                } catch {
                    batch.rollBack(to: mark)
                    result = .failure(error)
                }
                return { commitError in
                    if let commitError, case .success = result {
                        continuation.resume(throwing: commitError)
                    } else {
                        continuation.resume(with: result)
                    }
                }
            }
            let start = state.withLock { state -> Bool in
                state.jobs.append(job)
                if state.draining { return false }
                state.draining = true
                return true
            }
            if start {
                queue.async { self.drain() }
            }
        }
    }

    private func drain() {
        while true {
            let jobs = state.withLock { state -> [Job] in
                if state.jobs.isEmpty {
                    state.draining = false
                    return []
                }
                let taken = Array(state.jobs.prefix(maxBatch))
                state.jobs.removeFirst(taken.count)
                return taken
            }
            if jobs.isEmpty { return }
            let batch = WriteBatch()
            var completions: [@Sendable ((any Error)?) -> Void] = []
            var failure: (any Error)?
            do {
                try pool.writeWithoutTransaction { db in
                    try db.inTransaction(.immediate) {
                        for job in jobs {
                            completions.append(job.run(db, batch))
                        }
                        try batch.runPreCommit()
                        return .commit
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
        }
    }
}
