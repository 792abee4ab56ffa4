import Dispatch
import Synchronization

/// Hands the chunks a blocking thread writes (a layer being exported) to an asynchronous
/// reader (a response's body), at most `capacity` ahead: the writer waits while the
/// reader is behind, so a layer of any size needs the memory of a few chunks.
///
/// The writer calls ``put(_:)`` and, once done, ``finish(_:)``; the reader calls
/// ``next()`` until it gives nil, or ``cancel()`` when it stops early (a client gone),
/// which makes the writer's next ``put(_:)`` throw.
public final class BlockingSink: Sendable {
    private struct State {
        var chunks: [[UInt8]] = []
        var ended = false
        var failure: (any Error)?
        var cancelled = false
        var waiting: CheckedContinuation<Void, Never>?
    }

    /// The reader stopped reading.
    public struct Cancelled: Error {}

    private let state = Mutex(State())
    /// Room for chunks: taken by the writer per chunk, given back by the reader.
    private let room: DispatchSemaphore

    public init(capacity: Int = 8) {
        room = DispatchSemaphore(value: max(1, capacity))
    }

    /// Queues `chunk`, blocking while `capacity` chunks wait; throws once the reader
    /// has cancelled.
    public func put(_ chunk: [UInt8]) throws {
        room.wait()
        let waiting = try state.withLock { state throws -> CheckedContinuation<Void, Never>? in
            if state.cancelled {
                // The room goes on to the next put, which throws too.
                room.signal()
                throw Cancelled()
            }
            state.chunks.append(chunk)
            defer { state.waiting = nil }
            return state.waiting
        }
        waiting?.resume()
    }

    /// Ends the stream: the reader sees `failure` as the error of its next ``next()``
    /// once the queued chunks are read, or the end.
    public func finish(_ failure: (any Error)? = nil) {
        let waiting = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.ended = true
            state.failure = failure
            defer { state.waiting = nil }
            return state.waiting
        }
        waiting?.resume()
    }

    /// The next chunk; nil at the end.
    public func next() async throws -> [UInt8]? {
        while true {
            enum Step { case chunk([UInt8]), end, failure(any Error), wait }
            let step = state.withLock { state -> Step in
                if !state.chunks.isEmpty { return .chunk(state.chunks.removeFirst()) }
                if state.ended { return state.failure.map { .failure($0) } ?? .end }
                return .wait
            }
            switch step {
            case .chunk(let chunk):
                room.signal()
                return chunk
            case .end:
                return nil
            case .failure(let error):
                throw error
            case .wait:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        if !state.chunks.isEmpty || state.ended { return true }
                        state.waiting = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    /// The reader stops: a writer waiting for room, or putting next, gets ``Cancelled``.
    public func cancel() {
        state.withLock { state in
            state.cancelled = true
            state.chunks.removeAll()
        }
        room.signal()
    }
}
