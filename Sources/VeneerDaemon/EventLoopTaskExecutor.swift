import NIOCore

/// A task executor that runs its jobs on one event loop.
///
/// The HTTP connections and the gRPC server run under a preference for the executor of
/// the loop that serves their sockets: a request's task, the reads of its body and the
/// writes of its response then stay on one thread, where each would otherwise wake a
/// thread of the global pool and then the loop again. What blocks (file-system work,
/// the database's commits) leaves the loop as it does anywhere else.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
