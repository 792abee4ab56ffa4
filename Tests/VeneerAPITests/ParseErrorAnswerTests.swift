import Foundation
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import Testing
import VeneerAPI
import VeneerCore
import VeneerWire

/// Takes the errors that reach the end of the pipeline, as Hummingbird's connection
/// loop would, so that the embedded channel does not rethrow them.
private final class ErrorSink: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPRequestPart
    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}

@Suite("Answers to requests that are not valid HTTP/1.1")
struct ParseErrorAnswerTests {
    private func withChannel(_ body: (EmbeddedChannel) throws -> Void) throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ParseErrorAnswerHandler(serverName: "veneerd"))
        try channel.pipeline.syncOperations.addHandler(ErrorSink())
        defer { _ = try? channel.finish() }
        try body(channel)
    }

    /// The answer Hummingbird's connection loop writes to a parse error.
    private func writeBareBadRequest(_ channel: EmbeddedChannel) throws {
        let head = HTTPResponse(status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"])
        try channel.writeOutbound(HTTPResponsePart.head(head))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
    }

    @Test("after a parse error, the bare 400 gets the JSON error body naming the fault")
    func bareAnswerGetsTheBody() throws {
        try withChannel { channel in
            channel.pipeline.fireErrorCaught(HTTPParserError.invalidChunkSize)
            try writeBareBadRequest(channel)
            let (head, body) = try #require(try writtenResponse(channel))
            #expect(head.status == .badRequest)
            #expect(head.headerFields[.connection] == "close")
            #expect(head.headerFields[.contentType] == "application/json")
            #expect(head.headerFields[.server] == "veneerd")
            #expect(head.headerFields[.contentLength] == String(body.readableBytes))
            let answer = try JSONDecoder().decode(ErrorResponse.self, from: Data(body.readableBytesView))
            #expect(answer.error.code == "invalid_argument")
            #expect(answer.error.message.contains("not valid HTTP/1.1"), "\(answer.error.message)")
            #expect(answer.error.message.contains("chunk size"), "\(answer.error.message)")
        }
    }

    @Test("without a parse error, or for other answers, nothing is changed")
    func otherAnswersAreUntouched() throws {
        try withChannel { channel in
            // A bare 400 with no parse error before it.
            try writeBareBadRequest(channel)
            var parts = try writtenParts(channel)
            #expect(parts.count == 2)
            if case .head(let head) = parts.first { #expect(head.headerFields[.contentType] == nil) }
            // After a parse error, an answer that is not the bare 400 (one still due to
            // an earlier request) goes by as it is, and the bare one after it is changed.
            channel.pipeline.fireErrorCaught(HTTPParserError.invalidChunkSize)
            let earlier = HTTPResponse(status: .ok, headerFields: [.contentLength: "2"])
            try channel.writeOutbound(HTTPResponsePart.head(earlier))
            try channel.writeOutbound(HTTPResponsePart.body(ByteBuffer(string: "{}")))
            try channel.writeOutbound(HTTPResponsePart.end(nil))
            try writeBareBadRequest(channel)
            parts = try writtenParts(channel)
            #expect(parts.count == 6)
            if case .head(let head) = parts.first { #expect(head.status == .ok && head.headerFields[.contentLength] == "2") }
            if parts.count == 6, case .head(let head) = parts[3] {
                #expect(head.status == .badRequest && head.headerFields[.contentType] == "application/json")
            }
            // Other errors are not parse errors.
            struct Other: Error {}
            channel.pipeline.fireErrorCaught(Other())
            try writeBareBadRequest(channel)
            parts = try writtenParts(channel)
            #expect(parts.count == 2)
        }
    }
}
