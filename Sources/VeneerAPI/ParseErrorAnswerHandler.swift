import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import VeneerCore

/// Gives the answer to a request that is not valid HTTP/1.1 (a malformed chunk size, a
/// `Transfer-Encoding` other than `chunked`, a bad header) the API's JSON error body.
///
/// Such an error comes from the HTTP/1.1 decoder below this handler, whether it is in a
/// request's head or in the middle of its body. Hummingbird's connection loop answers it,
/// after any response still due on the connection, with a `400` without a body and closes
/// the connection. This handler sees the error go by, and turns that answer into a `400`
/// `invalid_argument` with `{"error": {...}}`, naming the fault, as every other refusal
/// has. It changes no other response.
public final class ParseErrorAnswerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPRequestPart
    public typealias InboundOut = HTTPRequestPart
    public typealias OutboundIn = HTTPResponsePart
    public typealias OutboundOut = HTTPResponsePart

    private let serverName: String?
    /// The decoder's error, until its answer goes by.
    private var parseError: HTTPParserError?

    public init(serverName: String?) {
        self.serverName = serverName
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if parseError == nil, let error = error as? HTTPParserError {
            parseError = error
        }
        context.fireErrorCaught(error)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard let error = parseError, case .head(let head) = unwrapOutboundIn(data), head.status == .badRequest,
            head.headerFields[.contentLength] == "0"
        else {
            context.write(data, promise: promise)
            return
        }
        parseError = nil
        let body = JSON.errorBody(Self.error(for: error))
        var fields = head.headerFields
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(body.count)
        if let serverName { fields[.server] = serverName }
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .badRequest, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(buffer)), promise: promise)
    }

    /// The refusal of a request the decoder could not read.
    static func error(for error: HTTPParserError) -> VeneerError {
        .invalidArgument(
            "the request is not valid HTTP/1.1: \(String(reflecting: error)); send a well-formed request (a body as Content-Length bytes or as chunks with hexadecimal sizes, Transfer-Encoding: chunked only); the connection is closed")
    }
}
