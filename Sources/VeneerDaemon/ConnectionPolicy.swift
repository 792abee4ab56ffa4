import Logging
import NIOCore
import Synchronization
import VeneerAPI

/// The connection settings in force, which a reload may change (new values apply to
/// connections accepted afterwards), and the count of open connections.
public final class ConnectionPolicy: Sendable {
    public struct Settings: Sendable, Equatable {
        public var timeouts: ConnectionTimeouts
        /// Most connections served at once; one more is answered `503` and closed.
        public var maxConnections: Int
    }

    private struct State {
        var settings: Settings
        var open = 0
        var refusedSinceWarning = 0
        var lastWarning: ContinuousClock.Instant?
    }

    private let state: Mutex<State>
    /// Least time between two warnings about refused connections.
    static let warningInterval = Duration.seconds(10)

    public init(_ settings: Settings) {
        state = Mutex(State(settings: settings))
    }

    public var settings: Settings {
        get { state.withLock { $0.settings } }
        set { state.withLock { $0.settings = newValue } }
    }

    public var openConnections: Int { state.withLock { $0.open } }

    /// Counts a new connection in if there is room: the settings it runs with, or nil
    /// when it must be refused. The caller calls `release()` when an admitted one closes.
    func admit(logger: Logger) -> Settings? {
        let (admitted, warning) = state.withLock { state -> (Settings?, (refused: Int, limit: Int)?) in
            if state.open < state.settings.maxConnections {
                state.open += 1
                return (state.settings, nil)
            }
            state.refusedSinceWarning += 1
            let now = ContinuousClock.now
            if let last = state.lastWarning, now - last < Self.warningInterval { return (nil, nil) }
            state.lastWarning = now
            defer { state.refusedSinceWarning = 0 }
            return (nil, (state.refusedSinceWarning, state.settings.maxConnections))
        }
        if let warning {
            logger.warning(
                "refusing connections: the connection limit is reached",
                metadata: ["max_connections": "\(warning.limit)", "refused": "\(warning.refused)"])
        }
        return admitted
    }

    func release() {
        state.withLock { $0.open -= 1 }
    }
}

/// First in the pipeline of a connection over the limit: nothing reaches the HTTP codec.
/// It waits for the client's first bytes (an answer written before the client wrote could
/// make its write fail before it reads the answer), answers `503`, and closes. A client
/// that sends nothing is closed after the read timeout.
final class OverCapacityHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    let answer: [UInt8]
    let readTimeout: Int
    private var answered = false
    private var timer: Scheduled<Void>?

    init(limit: Int, readTimeout: Int, serverName: String?) {
        answer = ConnectionAnswers.overCapacity(limit: limit, serverName: serverName)
        self.readTimeout = readTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(Int64(readTimeout))) {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        answered = true
        timer?.cancel()
        var buffer = context.channel.allocator.buffer(capacity: answer.count)
        buffer.writeBytes(answer)
        context.writeAndFlush(NIOAny(buffer)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {}
}
