import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes
import VeneerAPI

/// How long a connection may keep the daemon waiting.
public struct ConnectionTimeouts: Sendable, Equatable {
    /// Longest a connection may stay open with no request in progress and no answer
    /// owed: between requests on a keep-alive connection, and before the first one.
    public var idle: Int
    /// Longest the head of a request may take to arrive, from its first byte; and, once
    /// the head is in, the longest gap between two reads of its body.
    public var read: Int
}

/// The timers of one connection. Two handlers feed it: ``ConnectionBytesHandler``, first
/// in the pipeline, sees the bytes as they arrive (a head that is still incomplete forms
/// no HTTP part yet); ``ConnectionRequestsHandler``, right after the HTTP codec, sees where
/// requests begin and end and where answers end. Both run on the connection's event loop.
///
/// - While an answer is owed (a complete request not yet answered) no timer runs, however
///   long the work takes.
/// - A head must be complete within `read` seconds of its first byte, else the connection
///   is answered `408` and closed. A body must keep coming: a gap of `read` seconds
///   between reads closes the connection (the router may be answering already, so no
///   answer is written).
/// - Otherwise the connection is idle, and is closed `idle` seconds after its last answer
///   (or after it was accepted).
final class ConnectionClock {
    enum Phase {
        /// No request in progress.
        case between
        /// Bytes of a head arrived, the head is not complete; since when.
        case head(since: NIODeadline)
        /// The head is in, the body is not complete; last read.
        case body(lastRead: NIODeadline)
    }

    enum Expiry { case idle, head, body }

    let timeouts: ConnectionTimeouts
    let serverName: String?
    let logger: Logger
    private var phase = Phase.between
    private var completed = 0
    private var answered = 0
    private var lastAnswer = NIODeadline.uptimeNanoseconds(0)
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private var context: ChannelHandlerContext?

    init(timeouts: ConnectionTimeouts, serverName: String?, logger: Logger) {
        self.timeouts = timeouts
        self.serverName = serverName
        self.logger = logger
    }

    func attach(_ context: ChannelHandlerContext) {
        self.context = context
        lastAnswer = context.eventLoop.now
        arm()
    }

    func detach() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        context = nil
    }

    /// The event loop's clock (which a test's loop may advance by hand).
    private var now: NIODeadline { context?.eventLoop.now ?? .now() }

    func bytesArrived() {
        switch phase {
        case .between: phase = .head(since: now)
        case .head: break
        case .body: phase = .body(lastRead: now)
        }
        arm()
    }

    func requestHead() {
        phase = .body(lastRead: now)
        arm()
    }

    func requestEnd() {
        phase = .between
        completed += 1
        arm()
    }

    func answerEnd() {
        answered += 1
        lastAnswer = now
        arm()
    }

    /// When the connection expires, and why; nil while an answer is owed.
    private var deadline: (NIODeadline, Expiry)? {
        if answered < completed { return nil }
        switch phase {
        case .between: return (lastAnswer + .seconds(Int64(timeouts.idle)), .idle)
        case .head(let since): return (since + .seconds(Int64(timeouts.read)), .head)
        case .body(let lastRead): return (lastRead + .seconds(Int64(timeouts.read)), .body)
        }
    }

    /// Keeps one timer, no later than the deadline. A timer that fires early (the deadline
    /// moved later since it was set) is set again; so a stream of reads costs no timer
    /// churn.
    private func arm() {
        guard let context else { return }
        guard let (deadline, _) = deadline else {
            timer?.cancel()
            timer = nil
            timerDeadline = nil
            return
        }
        if let timerDeadline, timerDeadline <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            timer = nil
            timerDeadline = nil
            fire()
        }
    }

    private func fire() {
        guard let context, let (deadline, expiry) = deadline else { return }
        if context.eventLoop.now < deadline {
            arm()
            return
        }
        switch expiry {
        case .idle:
            logger.debug("closing an idle connection", metadata: ["idle_timeout_s": "\(timeouts.idle)"])
        case .head:
            logger.debug("closing a connection whose request head is late", metadata: ["read_timeout_s": "\(timeouts.read)"])
            let answer = ConnectionAnswers.requestTimeout(seconds: timeouts.read, serverName: serverName)
            var buffer = context.channel.allocator.buffer(capacity: answer.count)
            buffer.writeBytes(answer)
            context.writeAndFlush(NIOAny(buffer), promise: nil)
        case .body:
            logger.debug("closing a connection whose request body stalled", metadata: ["read_timeout_s": "\(timeouts.read)"])
        }
        detach()
        context.close(promise: nil)
    }
}

/// First in the pipeline: tells the clock that bytes arrived, and owns it.
final class ConnectionBytesHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let clock: ConnectionClock

    init(clock: ConnectionClock) {
        self.clock = clock
    }

    func handlerAdded(context: ChannelHandlerContext) {
        clock.attach(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        clock.detach()
    }

    func channelInactive(context: ChannelHandlerContext) {
        clock.detach()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if unwrapInboundIn(data).readableBytes > 0 {
            clock.bytesArrived()
        }
        context.fireChannelRead(data)
    }
}

/// Right after the HTTP codec: tells the clock where requests begin and end and where
/// answers end. It finds the clock in the connection's ``ConnectionBytesHandler``; on a
/// connection without one it only passes parts on.
final class ConnectionRequestsHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var clock: ConnectionClock?

    init() {}

    func handlerAdded(context: ChannelHandlerContext) {
        clock = try? context.pipeline.syncOperations.handler(type: ConnectionBytesHandler.self).clock
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: clock?.requestHead()
        case .body: break
        case .end: clock?.requestEnd()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            clock?.answerEnd()
        }
        context.write(data, promise: promise)
    }
}
