import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes
import VeneerCore
import VeneerSnapshotter

/// The hottest read of the API, answered from memory on the connection's event loop
/// instead of going through the router and an async task per request: a successful
/// `GET /v1/snapshots/{key}`.
///
/// Only the success is answered here. Any other form of the request (a query string, an
/// undecodable or invalid key, a missing snapshot, extra path segments) goes to the
/// router, so every route keeps one definition of its errors and the router stays the
/// contract's reference.
public struct DirectRoutes: Sendable {
    let snapshotter: Snapshotter

    static let snapshotsPrefix = Array("/v1/snapshots/".utf8)

    public init(snapshotter: Snapshotter) {
        self.snapshotter = snapshotter
    }

    /// The body of a `200 OK` answer to `request`, or nil when the router must answer it.
    public func answer(_ request: HTTPRequest) -> [UInt8]? {
        guard request.method == .get, let path = request.path else { return nil }
        let bytes = path.utf8
        guard bytes.starts(with: Self.snapshotsPrefix) else { return nil }
        let segment = path.utf8.dropFirst(Self.snapshotsPrefix.count)
        guard !segment.isEmpty,
            !segment.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") })
        else { return nil }
        guard let key = try? PathSegment.decode(Substring(segment)),
            let info = snapshotter.lookup(key: key)
        else { return nil }
        return JSONWriter.info(info)
    }
}

/// A channel handler, placed between the HTTP/1.1 codec and Hummingbird's connection
/// loop, that writes the answers of ``DirectRoutes`` itself and passes every other
/// request on.
///
/// Order of responses on a keep-alive connection is kept: a request is answered here
/// only while no request passed on is still waiting for its response; after that,
/// every request goes to the router, which answers them in order. A quiesce (graceful
/// shutdown) that arrives while a request answered here is still being read waits for
/// its response, as Hummingbird's own handler does. At debug level every request goes
/// to the router, which logs each one with its request ID.
public final class DirectResponseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPRequestPart
    public typealias InboundOut = HTTPRequestPart
    public typealias OutboundIn = HTTPResponsePart
    public typealias OutboundOut = HTTPResponsePart

    private enum State {
        case idle
        /// The head was read and answered here; the body (ignored) and end are to come.
        case answering(body: [UInt8])
        /// The request was passed on.
        case passing
    }

    private let routes: DirectRoutes
    private let serverName: String?
    private let logger: Logger
    private var state = State.idle
    /// Requests passed on whose response has not ended yet.
    private var awaitingResponse = 0
    private var quiescePending = false

    public init(routes: DirectRoutes, serverName: String?, logger: Logger) {
        self.routes = routes
        self.serverName = serverName
        self.logger = logger
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (part, state) {
        case (.head(let head), _):
            if awaitingResponse == 0, logger.logLevel > .debug, head.headerFields[.connection] == nil,
                let body = routes.answer(head)
            {
                state = .answering(body: body)
            } else {
                state = .passing
                awaitingResponse += 1
                context.fireChannelRead(data)
            }
        case (.body, .answering):
            // The router ignores the body of a GET as well.
            break
        case (.end, .answering(let body)):
            state = .idle
            writeAnswer(body, context: context)
            if quiescePending {
                quiescePending = false
                context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            }
        case (.end, _):
            state = .idle
            context.fireChannelRead(data)
        default:
            context.fireChannelRead(data)
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), awaitingResponse > 0 {
            awaitingResponse -= 1
        }
        context.write(data, promise: promise)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, case .answering = state {
            quiescePending = true
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func writeAnswer(_ body: [UInt8], context: ChannelHandlerContext) {
        var fields: HTTPFields = [.contentType: "application/json", .contentLength: String(body.count)]
        if let serverName { fields[.server] = serverName }
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .ok, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(buffer)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
