import Dispatch
import Foundation
import Synchronization
import Testing

@testable import VeneerService

/// The bridge from an asynchronous body to a blocking reader.
@Suite("BlockingSource: an async stream read by a blocking thread")
struct BlockingSourceTests {
    struct Broken: Error {}

    /// Reads `source` to its end on a thread of its own.
    static func readAll(_ source: BlockingSource) async throws -> [[UInt8]] {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result {
                    var chunks: [[UInt8]] = []
                    while true {
                        let chunk = try source.next()
                        if chunk.isEmpty { return chunks }
                        chunks.append(chunk)
                    }
                })
            }
        }
    }

    @Test("every chunk arrives in order, empty ones skipped, then the end, again and again")
    func inOrder() async throws {
        let source = BlockingSource(capacity: 2)
        let stream = AsyncStream<[UInt8]> { continuation in
            for i in 0..<100 { continuation.yield(i == 50 ? [] : [UInt8(i)]) }
            continuation.finish()
        }
        async let fed: Void = source.feed(stream) { $0 }
        let chunks = try await Self.readAll(source)
        await fed
        #expect(chunks == (0..<100).filter { $0 != 50 }.map { [UInt8($0)] })
        // The end is there for later calls too (it does not block).
        #expect(try source.next() == [])
    }

    @Test("the feeder keeps at most `capacity` chunks ahead of the reader")
    func backpressure() async throws {
        let source = BlockingSource(capacity: 3)
        let produced = Mutex(0)
        let stream = AsyncStream<[UInt8]> { continuation in
            for i in 0..<10 { continuation.yield([UInt8(i)]) }
            continuation.finish()
        }
        let counting = stream.map { chunk -> [UInt8] in
            produced.withLock { $0 += 1 }
            return chunk
        }
        async let fed: Void = source.feed(counting) { $0 }
        try await Task.sleep(for: .milliseconds(200))
        // Three queued and one waiting for room.
        #expect(produced.withLock { $0 } <= 4)
        let chunks = try await Self.readAll(source)
        await fed
        #expect(chunks.count == 10)
    }

    @Test("an error of the stream is the reader's next error")
    func failure() async throws {
        let source = BlockingSource()
        let stream = AsyncThrowingStream<[UInt8], any Error> { continuation in
            continuation.yield([1])
            continuation.finish(throwing: Broken())
        }
        async let fed: Void = source.feed(stream) { $0 }
        await #expect(throws: Broken.self) { () async throws in _ = try await Self.readAll(source) }
        await fed
    }

    @Test("a reader that is done stops a feeder that waits for room")
    func readerDone() async throws {
        let source = BlockingSource(capacity: 1)
        let stream = AsyncStream<[UInt8]> { continuation in
            for i in 0..<1000 { continuation.yield([UInt8(i % 256)]) }
            continuation.finish()
        }
        async let fed: Void = source.feed(stream) { $0 }
        let first = try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try source.next() }) }
        }
        #expect(first == [0])
        source.finishReading()
        await fed
    }
}
