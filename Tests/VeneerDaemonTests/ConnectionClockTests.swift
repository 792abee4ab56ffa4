import HTTPTypes
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing
import VeneerTestSupport

@testable import VeneerDaemon

/// Stands in for the HTTP codec: `h`, `b` and `e` become a request's head, a piece of
/// body and its end; any other byte is part of a head still incomplete, which forms no
/// part, as with the real decoder.
private final class LetterDecoder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTPRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        for byte in unwrapInboundIn(data).readableBytesView {
            switch byte {
            case UInt8(ascii: "h"):
                let head = HTTPRequest(method: .get, scheme: nil, authority: "localhost", path: "/v1/status")
                context.fireChannelRead(wrapInboundOut(.head(head)))
            case UInt8(ascii: "b"):
                context.fireChannelRead(wrapInboundOut(.body(ByteBuffer(string: "x"))))
            case UInt8(ascii: "e"):
                context.fireChannelRead(wrapInboundOut(.end(nil)))
            default:
                break
            }
        }
    }
}

/// A connection with the daemon's timers: idle 60 s, read 10 s. Time only moves when a
/// test advances the embedded loop.
private struct Connection {
    let channel: EmbeddedChannel
    let loop: EmbeddedEventLoop

    init() throws {
        loop = EmbeddedEventLoop()
        channel = EmbeddedChannel(loop: loop)
        let clock = ConnectionClock(
            timeouts: .init(idle: 60, read: 10), serverName: "veneerd", logger: TestLoggers.quiet())
        try channel.pipeline.syncOperations.addHandlers([
            ConnectionBytesHandler(clock: clock), LetterDecoder(), ConnectionRequestsHandler(),
        ])
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/none")).wait()
    }

    func send(_ letters: String) throws {
        try channel.writeInbound(ByteBuffer(string: letters))
        while try channel.readInbound(as: HTTPRequestPart.self) != nil {}
    }

    func answer() throws {
        let head = HTTPResponse(status: .ok)
        try channel.writeOutbound(HTTPResponsePart.head(head))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        while try channel.readOutbound(as: HTTPResponsePart.self) != nil {}
    }

    func advance(_ seconds: Int64) {
        loop.advanceTime(by: .seconds(seconds))
    }

    var isOpen: Bool { channel.isActive }

    /// Advances to one second short of `seconds` and expects the connection open, then
    /// to one second past and expects it closed.
    func expectClosesAfter(_ seconds: Int64, sourceLocation: SourceLocation = #_sourceLocation) {
        advance(seconds - 1)
        #expect(isOpen, sourceLocation: sourceLocation)
        advance(2)
        #expect(!isOpen, sourceLocation: sourceLocation)
    }

    /// The raw bytes written below the codec (a `408`), as text.
    func rawAnswer() throws -> String? {
        try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }
    }
}

@Suite("Connection timers")
struct ConnectionClockTests {
    @Test("a connection with no request is closed after the idle timeout, without an answer")
    func idleBeforeFirstRequest() throws {
        let connection = try Connection()
        connection.expectClosesAfter(60)
        #expect(try connection.rawAnswer() == nil)
    }

    @Test("the idle timeout counts from the last answer on a keep-alive connection")
    func idleBetweenRequests() throws {
        let connection = try Connection()
        for _ in 0..<5 {
            connection.advance(50)
            try connection.send("he")
            try connection.answer()
        }
        #expect(connection.isOpen, "each answer restarts the idle timeout; 250 s in all")
        connection.expectClosesAfter(60)
    }

    @Test("no timer runs while an answer is owed, however long the work takes")
    func answerOwed() throws {
        let connection = try Connection()
        try connection.send("hbe")
        connection.advance(3_600)
        #expect(connection.isOpen)
        try connection.answer()
        connection.expectClosesAfter(60)
    }

    @Test("pipelined requests: the connection waits until every one is answered")
    func pipelined() throws {
        let connection = try Connection()
        try connection.send("hehe")
        try connection.answer()
        connection.advance(600)
        #expect(connection.isOpen, "the second answer is still owed")
        try connection.answer()
        connection.advance(61)
        #expect(!connection.isOpen)
    }

    @Test("a head still incomplete after the read timeout is answered 408 and closed, however it dribbles in")
    func lateHead() throws {
        let connection = try Connection()
        connection.advance(30)
        try connection.send("G")
        for _ in 0..<4 {
            connection.advance(2)
            try connection.send("E")
        }
        #expect(connection.isOpen)
        connection.advance(3)
        #expect(!connection.isOpen, "10 s after the head's first byte")
        let answer = try #require(try connection.rawAnswer())
        #expect(answer.hasPrefix("HTTP/1.1 408 "))
        #expect(answer.contains("Connection: close\r\n"))
        #expect(answer.contains(#""code":"request_timeout""#))
        #expect(answer.contains("read_timeout"))
    }

    @Test("a body that keeps coming is not cut; one that stalls for the read timeout is, without an answer")
    func stalledBody() throws {
        let connection = try Connection()
        try connection.send("h")
        for _ in 0..<10 {
            connection.advance(9)
            try connection.send("b")
        }
        #expect(connection.isOpen, "90 s of body, never a 10 s gap")
        connection.expectClosesAfter(10)
        #expect(try connection.rawAnswer() == nil, "the router may be answering already")
    }

    @Test("after a request is answered, the next one's head gets its own read timeout")
    func headTimerPerRequest() throws {
        let connection = try Connection()
        try connection.send("he")
        try connection.answer()
        connection.advance(40)
        try connection.send("P")
        connection.expectClosesAfter(10)
    }
}

@Suite("Connection limit")
struct ConnectionPolicyTests {
    @Test("connections past max_connections are refused until one closes; a new limit applies at once")
    func admission() {
        let policy = ConnectionPolicy(.init(timeouts: .init(idle: 60, read: 10), maxConnections: 2))
        let logger = TestLoggers.quiet()
        #expect(policy.admit(logger: logger) != nil)
        #expect(policy.admit(logger: logger) != nil)
        #expect(policy.admit(logger: logger) == nil)
        #expect(policy.openConnections == 2)
        policy.release()
        #expect(policy.admit(logger: logger)?.maxConnections == 2)
        policy.settings.maxConnections = 3
        #expect(policy.admit(logger: logger)?.maxConnections == 3)
        #expect(policy.admit(logger: logger) == nil)
        policy.settings.maxConnections = 1
        policy.release()
        #expect(policy.admit(logger: logger) == nil, "two open, limit one")
    }

    @Test("the refusal of a connection over the limit is a 503 with the JSON error body")
    func overCapacityAnswer() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            OverCapacityHandler(limit: 7, readTimeout: 10, serverName: "veneerd"))
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/none")).wait()
        try channel.writeInbound(ByteBuffer(string: "GET /v1/status HTTP/1.1\r\n\r\n"))
        let answer = String(buffer: try #require(try channel.readOutbound(as: ByteBuffer.self)))
        #expect(answer.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(answer.contains(#""code":"unavailable""#))
        #expect(answer.contains("7 connections"))
        #expect(!channel.isActive)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil, "the request goes no further")
    }
}
