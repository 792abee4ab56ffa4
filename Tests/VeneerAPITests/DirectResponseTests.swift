import HTTPTypes
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing
import VeneerAPI
import VeneerCore
import VeneerJSON
import VeneerService
import VeneerTestSupport

/// Records the inbound events that reach the end of the pipeline (where Hummingbird's
/// connection loop would be).
private final class EventRecorder: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPRequestPart
    var quiesceEvents = 0
    /// Heads passed on ("passed PATH") and, with an ``AnswerRecorder`` in front, heads
    /// written ("answered STATUS"), in the order they happened.
    var order: [String] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) { order.append("passed \(head.path ?? "")") }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { quiesceEvents += 1 }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        order.append("error")
    }
}

/// Notes, in the recorder's order, each response head written towards the client.
private final class AnswerRecorder: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = HTTPResponsePart
    let recorder: EventRecorder

    init(_ recorder: EventRecorder) { self.recorder = recorder }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .head(let head) = unwrapOutboundIn(data) { recorder.order.append("answered \(head.status.code)") }
        context.write(data, promise: promise)
    }
}

/// Discards messages but keeps its level, which the handler under test reads.
private struct SilentLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {}
}

private let infoLogger = Logger(label: "veneer.api.test.direct") { _ in SilentLogHandler() }
/// `infoLogger` at debug level.
private let debugLogger = {
    var logger = infoLogger
    logger.logLevel = .debug
    return logger
}()

@Suite("Requests answered on the event loop")
struct DirectResponseTests {
    /// A snapshotter on a fresh root holding the active snapshot "a/b c" and the
    /// handler under test in an embedded channel.
    private func withChannel(
        logger: Logger = infoLogger,
        _ body: (EmbeddedChannel, Snapshotter, EventRecorder) async throws -> Void
    ) async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try Snapshotter(root: tmp.root, logger: quietLogger)
        _ = try await snapshotter.prepare(key: "a/b c", parent: nil, kind: .active, labels: ["x": "1"])
        let recorder = EventRecorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            DirectResponseHandler(routes: DirectRoutes(snapshotter: snapshotter), serverName: "veneerd", logger: logger))
        try channel.pipeline.syncOperations.addHandler(recorder)
        try await body(channel, snapshotter, recorder)
        _ = try? channel.finish()
    }

    private func get(_ path: String, headers: HTTPFields = [:]) -> HTTPRequestPart {
        .head(HTTPRequest(method: .get, scheme: nil, authority: "localhost", path: path, headerFields: headers))
    }

    /// The parts passed on to the router so far.
    private func passed(_ channel: EmbeddedChannel) throws -> [HTTPRequestPart] {
        var parts: [HTTPRequestPart] = []
        while let part = try channel.readInbound(as: HTTPRequestPart.self) { parts.append(part) }
        return parts
    }

    @Test("a stat of an existing snapshot is answered with the router's headers and body")
    func answersStat() async throws {
        try await withChannel { channel, snapshotter, _ in
            try channel.writeInbound(get("/v1/snapshots/a%2Fb%20c"))
            // Nothing is written before the request has ended.
            #expect(try writtenParts(channel).isEmpty)
            try channel.writeInbound(HTTPRequestPart.end(nil))
            let (head, body) = try #require(try writtenResponse(channel))
            #expect(head.status == .ok)
            #expect(head.headerFields[.contentType] == "application/json")
            #expect(head.headerFields[.server] == "veneerd")
            let info = try await snapshotter.stat(key: "a/b c")
            #expect(Array(body.readableBytesView) == JSONWriter.info(info))
            #expect(head.headerFields[.contentLength] == String(body.readableBytes))
            #expect(try passed(channel).isEmpty)
        }
    }

    @Test(
        "requests the router must answer are passed on untouched",
        arguments: [
            "/v1/snapshots/missing", "/v1/snapshots/a%2Fb%20c?x=1", "/v1/snapshots/a%2Fb%20c/mounts",
            "/v1/snapshots/", "/v1/snapshots/%ZZ", "/v1/snapshots", "/v1/status", "/v1/snapshots/a%2Fb%20c/",
            // Empty segments: the router answers 404 for these, so they must reach it.
            "//v1/snapshots/a%2Fb%20c", "/v1/snapshots//a%2Fb%20c", "/v1//snapshots/a%2Fb%20c",
        ])
    func passesOthers(path: String) async throws {
        try await withChannel { channel, _, _ in
            try channel.writeInbound(get(path))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            #expect(try writtenParts(channel).isEmpty)
            let parts = try passed(channel)
            #expect(parts.count == 2)
            if case .head(let head) = parts.first { #expect(head.path == path) } else { Issue.record("no head passed on") }
        }
    }

    @Test("other methods, Connection headers and debug logging go to the router")
    func passesOtherForms() async throws {
        try await withChannel { channel, _, _ in
            let delete = HTTPRequest(method: .delete, scheme: nil, authority: "localhost", path: "/v1/snapshots/a%2Fb%20c")
            try channel.writeInbound(HTTPRequestPart.head(delete))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            #expect(try passed(channel).count == 2)
            try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .noContent)))
            try channel.writeOutbound(HTTPResponsePart.end(nil))
            _ = try writtenParts(channel)

            try channel.writeInbound(get("/v1/snapshots/a%2Fb%20c", headers: [.connection: "close"]))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            #expect(try passed(channel).count == 2)
        }
        try await withChannel(logger: debugLogger) { channel, _, _ in
            try channel.writeInbound(get("/v1/snapshots/a%2Fb%20c"))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            #expect(try passed(channel).count == 2)
            #expect(try writtenParts(channel).isEmpty)
        }
    }

    @Test("while a request passed on waits for its response, later ones are passed on too")
    func keepsResponseOrder() async throws {
        try await withChannel { channel, _, _ in
            let post = HTTPRequest(method: .post, scheme: nil, authority: "localhost", path: "/v1/snapshots")
            try channel.writeInbound(HTTPRequestPart.head(post))
            try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: #"{"key":"k"}"#)))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            // A pipelined stat behind it must not overtake its response.
            try channel.writeInbound(get("/v1/snapshots/a%2Fb%20c"))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            #expect(try writtenParts(channel).isEmpty)
            #expect(try passed(channel).count == 5)

            // The router answers both, in order; afterwards stats are answered directly again.
            for status in [HTTPResponse.Status.created, .ok] {
                try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: status)))
                try channel.writeOutbound(HTTPResponsePart.end(nil))
            }
            #expect(try writtenParts(channel).count == 4)
            try channel.writeInbound(get("/v1/snapshots/a%2Fb%20c"))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            #expect(try passed(channel).isEmpty)
            #expect(try writtenParts(channel).count == 3)
        }
    }

    @Test("a quiesce that arrives while a request is being read waits for its response")
    func defersQuiesce() async throws {
        try await withChannel { channel, _, recorder in
            try channel.writeInbound(get("/v1/snapshots/a%2Fb%20c"))
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            #expect(recorder.quiesceEvents == 0)
            try channel.writeInbound(HTTPRequestPart.end(nil))
            #expect(try writtenParts(channel).count == 3)
            #expect(recorder.quiesceEvents == 1)

            // When idle, a quiesce goes straight on.
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            #expect(recorder.quiesceEvents == 2)
        }
    }

    @Test("the body of a GET answered directly is ignored, as the router ignores it")
    func ignoresBody() async throws {
        try await withChannel { channel, _, _ in
            try channel.writeInbound(get("/v1/snapshots/a%2Fb%20c", headers: [.contentLength: "3"]))
            try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "abc")))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            #expect(try passed(channel).isEmpty)
            #expect(try writtenParts(channel).count == 3)
        }
    }

    // MARK: - Mounts

    /// A mount of a snapshot that does not exist: refused only after the target checks,
    /// which run off the loop.
    private func mountOfUnknownSnapshot() -> [HTTPRequestPart] {
        [post("/v1/mounts"), .body(ByteBuffer(string: #"{"key":"nope","target":"/usr"}"#)), .end(nil)]
    }

    private func post(_ path: String, headers: HTTPFields = [.contentType: "application/json"]) -> HTTPRequestPart {
        .head(HTTPRequest(method: .post, scheme: nil, authority: "localhost", path: path, headerFields: headers))
    }

    @Test("mount requests with a query, Expect or Connection header, or at debug level go to the router")
    func passesMountForms() async throws {
        let forms: [(String, HTTPFields)] = [
            ("/v1/mounts?x=1", [.contentType: "application/json"]),
            ("/v1/mounts", [.contentType: "application/json", .expect: "100-continue"]),
            ("/v1/mounts", [.contentType: "application/json", .connection: "keep-alive"]),
        ]
        for (path, headers) in forms {
            try await withChannel { channel, _, _ in
                try channel.writeInbound(post(path, headers: headers))
                try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: #"{"key":"a/b c","target":"/usr"}"#)))
                try channel.writeInbound(HTTPRequestPart.end(nil))
                #expect(try passed(channel).count == 3, "\(path) \(headers)")
                #expect(try writtenParts(channel).isEmpty)
            }
        }
        try await withChannel(logger: debugLogger) { channel, _, _ in
            try channel.writeInbound(post("/v1/mounts"))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            #expect(try passed(channel).count == 2)
        }
    }

    @Test("a mount body over 1 MiB is passed on whole, for the router to refuse")
    func passesLargeMountBody() async throws {
        try await withChannel { channel, _, _ in
            let chunk = String(repeating: " ", count: 600 * 1024)
            try channel.writeInbound(post("/v1/mounts"))
            try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: chunk)))
            #expect(try passed(channel).isEmpty)
            try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: chunk)))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            let parts = try passed(channel)
            #expect(parts.count == 4)
            var length = 0
            for part in parts { if case .body(let buffer) = part { length += buffer.readableBytes } }
            #expect(length == 2 * chunk.utf8.count)
            #expect(try writtenParts(channel).isEmpty)
        }
    }

    /// The handler under test in a thread-safe testing channel, where a mount's task can
    /// finish from another thread.
    private func withAsyncChannel(
        _ body: (NIOAsyncTestingChannel, EventRecorder) async throws -> Void
    ) async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try Snapshotter(root: tmp.root, logger: quietLogger)
        _ = try await snapshotter.prepare(key: "a/b c", parent: nil, kind: .active, labels: [:])
        let recorder = EventRecorder()
        let channel = NIOAsyncTestingChannel()
        try await channel.testingEventLoop.executeInContext {
            try channel.pipeline.syncOperations.addHandler(AnswerRecorder(recorder))
            try channel.pipeline.syncOperations.addHandler(
                DirectResponseHandler(routes: DirectRoutes(snapshotter: snapshotter), serverName: "veneerd", logger: infoLogger))
            try channel.pipeline.syncOperations.addHandler(recorder)
        }
        try await body(channel, recorder)
        _ = try? await channel.finish()
    }

    /// Runs the loop until `count` response parts were written (or ten seconds pass).
    private func responseParts(_ channel: NIOAsyncTestingChannel, count: Int) async throws -> [HTTPResponsePart] {
        var parts: [HTTPResponsePart] = []
        for _ in 0..<5000 {
            await channel.testingEventLoop.run()
            while let part = try await channel.readOutbound(as: HTTPResponsePart.self) { parts.append(part) }
            if parts.count >= count { break }
            try await Task.sleep(for: .milliseconds(2))
        }
        return parts
    }

    private func statuses(_ parts: [HTTPResponsePart]) -> [HTTPResponse.Status] {
        parts.compactMap { if case .head(let head) = $0 { head.status } else { nil } }
    }

    @Test("requests that arrive while a mount runs are answered after it, in order")
    func holdsRequestsBehindMount() async throws {
        try await withAsyncChannel { channel, recorder in
            // The loop cannot write the mount's answer before all these parts were read.
            let requests: [HTTPRequestPart] = mountOfUnknownSnapshot() + [
                get("/v1/snapshots/a%2Fb%20c"), .end(nil), get("/v1/status"), .end(nil),
            ]
            try await channel.testingEventLoop.executeInContext {
                for part in requests { channel.pipeline.fireChannelRead(part) }
            }
            let parts = try await responseParts(channel, count: 6)
            #expect(statuses(parts) == [.notFound, .ok])
            if parts.count > 1, case .body(let body) = parts[1] {
                #expect(String(buffer: body).contains(#""code":"not_found""#))
            } else {
                Issue.record("no body in \(parts)")
            }
            // The request the router answers is passed on only after the mount's answer.
            let order = try await channel.testingEventLoop.executeInContext { recorder.order }
            #expect(order == ["answered 404", "answered 200", "passed /v1/status"])
        }
    }

    @Test("a quiesce that arrives while a mount runs waits for its answer")
    func defersQuiesceDuringMount() async throws {
        try await withAsyncChannel { channel, recorder in
            let requests = mountOfUnknownSnapshot()
            let quiesced = try await channel.testingEventLoop.executeInContext {
                for part in requests { channel.pipeline.fireChannelRead(part) }
                channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                return recorder.quiesceEvents
            }
            #expect(quiesced == 0)
            let parts = try await responseParts(channel, count: 3)
            #expect(statuses(parts) == [.notFound])
            await channel.testingEventLoop.run()
            #expect(recorder.quiesceEvents == 1)
        }
    }

    @Test("an error from below that arrives while a mount runs goes on after its answer")
    func defersErrorDuringMount() async throws {
        struct Malformed: Error {}
        try await withAsyncChannel { channel, recorder in
            let requests = mountOfUnknownSnapshot()
            let before = try await channel.testingEventLoop.executeInContext {
                for part in requests { channel.pipeline.fireChannelRead(part) }
                channel.pipeline.fireErrorCaught(Malformed())
                return recorder.order
            }
            #expect(before.isEmpty)
            let parts = try await responseParts(channel, count: 3)
            #expect(statuses(parts) == [.notFound])
            await channel.testingEventLoop.run()
            let order = try await channel.testingEventLoop.executeInContext { recorder.order }
            #expect(order == ["answered 404", "error"])
        }
    }
}
