import Dispatch
import Synchronization

/// Hands the chunks of an asynchronous byte stream (a request's body) to a thread that
/// reads them blocking (a layer's reader), a few at a time: the stream is read only as
/// fast as the reader takes, so a layer of any size needs the memory of `capacity`
/// chunks.
///
/// The front end runs ``feed(_:)`` in a task of its own and passes ``next()`` to the
/// service as the layer's source; when the service is done, ``finishReading()`` stops
/// the feeding even if the stream has more.
public final class BlockingSource: Sendable {
    private struct State {
        var chunks: [[UInt8]] = []
        var ended = false
        var failure: (any Error)?
        var readerDone = false
        /// The feeder waiting for room.
        var waiting: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())
    /// Signalled once per chunk queued and once at the end (or failure).
    private let ready = DispatchSemaphore(value: 0)
    private let capacity: Int

    public init(capacity: Int = 8) {
        self.capacity = max(1, capacity)
    }

    /// Reads `stream` to its end (or until the reader is done), queueing its chunks;
    /// an error of the stream reaches the reader as the error of its next ``next()``.
    public func feed<Stream: AsyncSequence & Sendable>(_ stream: Stream, bytes: @Sendable (Stream.Element) -> [UInt8]) async
    where Stream.Element: Sendable {
        do {
            for try await element in stream {
                let chunk = bytes(element)
                if chunk.isEmpty { continue }
                guard await push(chunk) else { return }
            }
            end(nil)
        } catch {
            end(error)
        }
    }

    /// The next chunk, an empty array at the end; blocks until there is one.
    public func next() throws -> [UInt8] {
        ready.wait()
        let (chunk, waiting, failure) = state.withLock { state -> ([UInt8]?, CheckedContinuation<Void, Never>?, (any Error)?) in
            if !state.chunks.isEmpty {
                let chunk = state.chunks.removeFirst()
                let waiting = state.waiting
                state.waiting = nil
                return (chunk, waiting, nil)
            }
            return (nil, nil, state.failure)
        }
        waiting?.resume()
        if let chunk { return chunk }
        // The end stays signalled for any later call.
        ready.signal()
        if let failure { throw failure }
        return []
    }

    /// The reader needs no more: a waiting feeder stops.
    public func finishReading() {
        let waiting = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.readerDone = true
            state.chunks.removeAll()
            let waiting = state.waiting
            state.waiting = nil
            return waiting
        }
        waiting?.resume()
    }

    /// Queues `chunk`, waiting while the queue is full; false once the reader is done.
    private func push(_ chunk: [UInt8]) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (queued, resumeNow) = state.withLock { state -> (Bool, Bool) in
                if state.readerDone { return (false, true) }
                state.chunks.append(chunk)
                if state.chunks.count < capacity { return (true, true) }
                state.waiting = continuation
                return (true, false)
            }
            if queued { ready.signal() }
            if resumeNow { continuation.resume() }
        }
        return !state.withLock { $0.readerDone }
    }

    private func end(_ failure: (any Error)?) {
        let signal = state.withLock { state -> Bool in
            guard !state.ended else { return false }
            state.ended = true
            state.failure = failure
            return true
        }
        if signal { ready.signal() }
    }
}
