import Dispatch
import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes
import VeneerCore
import VeneerJSON
import VeneerService
import VeneerWire

/// A channel handler, placed between the HTTP/1.1 codec and Hummingbird's connection
/// loop, that answers the requests of ``DirectRoutes`` itself and passes every other
/// request on.
///
/// Order of responses on a keep-alive connection is kept:
/// - a request is answered here only while no request passed on is still waiting for
///   its response; after that, every request goes to the router, which answers them in
///   order;
/// - while a mount runs, the requests that arrive behind it are held, and reading from
///   the socket pauses; they are handled in order once its answer is written.
///
/// A quiesce (graceful shutdown) that arrives while a request answered here is being
/// read or carried out waits for its response, as Hummingbird's own handler does; so
/// does an error from below, such as a malformed request behind a mount. At
/// debug level every request goes to the router, which logs each one with its request
/// ID; so do requests with a `Connection` header, which the router's connection
/// handling must see.
public final class DirectResponseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPRequestPart
    public typealias InboundOut = HTTPRequestPart
    public typealias OutboundIn = HTTPResponsePart
    public typealias OutboundOut = HTTPResponsePart

    private enum State {
        case idle
        /// The head was read and answered here; the body (ignored) and end are to come.
        case answering(body: [UInt8])
        /// The head of a mount request was read; its body is being read.
        case readingMount(head: HTTPRequest, body: [UInt8])
        /// A mount request was read whole and is being carried out.
        case mounting
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
    /// Parts of requests that arrived while a mount was carried out.
    private var held = CircularBuffer<HTTPRequestPart>()
    /// A read from the socket was asked for while a mount was carried out.
    private var readPending = false
    /// An error from below (such as a malformed request) that arrived behind a mount: it
    /// goes on after the requests before it, so that an error answer cannot overtake
    /// the mount's answer.
    private var errorPending: (any Error)?

    public init(routes: DirectRoutes, serverName: String?, logger: Logger) {
        self.routes = routes
        self.serverName = serverName
        self.logger = logger
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .mounting = state {
            held.append(part)
            return
        }
        handle(part, context: context)
    }

    private func handle(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (part, state) {
        case (.head(let head), _):
            guard awaitingResponse == 0, logger.logLevel > .debug, head.headerFields[.connection] == nil else {
                pass(part, context: context)
                return
            }
            if let body = routes.answer(head) {
                state = .answering(body: body)
            } else if routes.takesMount(head) {
                state = .readingMount(head: head, body: [])
            } else {
                pass(part, context: context)
            }
        case (.body, .answering):
            // The router ignores the body of a GET as well.
            break
        case (.body(let chunk), .readingMount(let head, var body)):
            state = .idle
            guard body.count + chunk.readableBytes <= maxRequestBodyBytes else {
                // Too large: the router refuses it, with the status and body it gives.
                pass(.head(head), context: context)
                if !body.isEmpty { context.fireChannelRead(wrapInboundOut(.body(ByteBuffer(bytes: body)))) }
                context.fireChannelRead(wrapInboundOut(part))
                return
            }
            body.append(contentsOf: chunk.readableBytesView)
            state = .readingMount(head: head, body: body)
        case (.end, .answering(let body)):
            state = .idle
            write(status: .ok, body: body, context: context)
            deliverPendingQuiesce(context: context)
        case (.end, .readingMount(let head, let body)):
            state = .mounting
            startMount(contentType: head.headerFields[.contentType], body: body, context: context)
        case (.end, _):
            state = .idle
            context.fireChannelRead(wrapInboundOut(part))
        default:
            context.fireChannelRead(wrapInboundOut(part))
        }
    }

    private func pass(_ head: HTTPRequestPart, context: ChannelHandlerContext) {
        state = .passing
        awaitingResponse += 1
        context.fireChannelRead(wrapInboundOut(head))
    }

    /// Decodes the request here, then runs the mount on a thread that may block, as the
    /// router's route does, and writes its answer from the event loop. A request that
    /// does not decode is answered at once.
    private func startMount(contentType: String?, body: [UInt8], context: ChannelHandlerContext) {
        let request: MountRequest
        switch routes.decodeMount(contentType: contentType, body: body) {
        case .success(let decoded):
            request = decoded
        case .failure(let error):
            let (status, answer) = JSON.answer(error)
            finishMount(status: status, body: answer, context: context)
            return
        }
        let eventLoop = context.eventLoop
        let handler = NIOLoopBound((self, context), eventLoop: eventLoop)
        let routes = self.routes
        let logger = self.logger
        DispatchQueue.global(qos: .userInitiated).async {
            let (status, answer) = routes.mount(request, logger: logger)
            eventLoop.execute { handler.value.0.finishMount(status: status, body: answer, context: handler.value.1) }
        }
    }

    private func finishMount(status: HTTPResponse.Status, body: [UInt8], context: ChannelHandlerContext) {
        state = .idle
        write(status: status, body: body, context: context)
        if quiescePending {
            // The connection closes after this answer; what arrived behind it is dropped,
            // as requests still unread are.
            held.removeAll()
            deliverPendingQuiesce(context: context)
            return
        }
        let hadHeld = !held.isEmpty
        while !isMounting, let part = held.popFirst() {
            handle(part, context: context)
        }
        // Hummingbird's connection loop takes what it was given at the end of a read;
        // parts handed on here, outside one, need that signal too.
        if hadHeld {
            context.fireChannelReadComplete()
        }
        if !isMounting, let error = errorPending {
            errorPending = nil
            context.fireErrorCaught(error)
        }
        if !isMounting, readPending {
            readPending = false
            context.read()
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if isMounting {
            if errorPending == nil { errorPending = error }
            return
        }
        context.fireErrorCaught(error)
    }

    private var isMounting: Bool {
        if case .mounting = state { return true }
        return false
    }

    private func deliverPendingQuiesce(context: ChannelHandlerContext) {
        if quiescePending {
            quiescePending = false
            context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    public func read(context: ChannelHandlerContext) {
        if isMounting {
            readPending = true
        } else {
            context.read()
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), awaitingResponse > 0 {
            awaitingResponse -= 1
        }
        context.write(data, promise: promise)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            switch state {
            case .answering, .readingMount, .mounting:
                quiescePending = true
                return
            case .idle, .passing:
                break
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func write(status: HTTPResponse.Status, body: [UInt8], context: ChannelHandlerContext) {
        var fields: HTTPFields = [.contentType: "application/json", .contentLength: String(body.count)]
        if let serverName { fields[.server] = serverName }
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(buffer)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
