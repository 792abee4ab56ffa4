import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Serves a Hummingbird responder over HTTP/1.1 on a stream socket that is already
/// bound and listening: the one systemd passes with socket activation, or one the
/// daemon bound itself. Unlike `Application` it never binds and never unlinks the
/// socket's path; the path belongs to whoever bound it.
///
/// Graceful shutdown (through ServiceLifecycle): the listening descriptor is closed
/// at once, so nothing new is accepted (under socket activation systemd keeps its own
/// descriptor of the socket and new connections wait in the kernel's queue for the
/// next instance); every accepted connection is told to quiesce, so idle keep-alive
/// connections close and busy ones close after the response in flight; `run()`
/// returns when the last connection is gone.
public struct ListeningSocketServer<Responder: HTTPResponder>: Service, CustomStringConvertible
where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
    /// The listening socket. The server owns it from `run()` on and closes it.
    public let descriptor: Int32
    public let responder: Responder
    /// Value of the `Server` response header, if any.
    public let serverName: String?
    public let http: HTTP1Channel.Configuration
    public let eventLoopGroup: any EventLoopGroup
    /// Timeouts and the connection limit; see ``ConnectionClock`` and ``OverCapacityHandler``.
    public let policy: ConnectionPolicy
    public let logger: Logger
    let onServerRunning: @Sendable () async -> Void

    public init(
        descriptor: Int32,
        responder: Responder,
        serverName: String? = nil,
        http: HTTP1Channel.Configuration = .init(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        policy: ConnectionPolicy,
        logger: Logger,
        onServerRunning: @escaping @Sendable () async -> Void = {}
    ) {
        self.descriptor = descriptor
        self.policy = policy
        self.responder = responder
        self.serverName = serverName
        self.http = http
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.onServerRunning = onServerRunning
    }

    public var description: String { "ListeningSocketServer(fd \(descriptor))" }

    public func run() async throws {
        let logger = self.logger
        let policy = self.policy
        let serverName = self.serverName
        var http = self.http
        let additional = http.additionalChannelHandlers
        // Right after the codec, so it sees every request part and every answer, those
        // the additional handlers give included.
        http.additionalChannelHandlers = { [ConnectionRequestsHandler()] + additional() }
        let channelSetup = HTTP1Channel(responder: Self.respond(with: responder, serverName: serverName, logger: logger),
                                        configuration: http)
        // The descriptor must be listening already: NIO only registers it and calls
        // listen(2) again, with this queue length (the kernel caps it at somaxconn, 4096
        // by default, as systemd's Backlog= does). NIO's default of 128 would turn a burst
        // of clients away with EAGAIN before the connection limit is even reached.
        let server = try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(ChannelOptions.backlog, value: 4096)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .bind(descriptor, serverBackPressureStrategy: nil) { channel in
                Self.admit(channel, policy: policy, serverName: serverName, logger: logger)
                return channelSetup.setup(channel: channel, logger: logger)
            }
        let connections = Connections()
        let listener = server.channel
        try await withGracefulShutdownHandler {
            await onServerRunning()
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        connections.add(connection.channel)
                        // The connection's task runs on its channel's event loop: reading a
                        // request, answering it and writing the response stay on one thread.
                        let executor = EventLoopTaskExecutor(connection.channel.eventLoop)
                        group.addTask(executorPreference: executor) {
                            await channelSetup.handle(value: connection, logger: logger)
                            connections.remove(connection.channel)
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            logger.debug("closing the listening socket and quiescing connections")
            listener.close(promise: nil)
            connections.quiesce()
        }
    }

    /// Puts the first handler in a new connection's pipeline: the one that keeps its
    /// timers, or, over the connection limit, the one that refuses it. Runs on the
    /// connection's event loop. A connection whose pipeline cannot be set up is closed
    /// (a failed set-up alone would leave its descriptor open).
    static func admit(_ channel: any Channel, policy: ConnectionPolicy, serverName: String?, logger: Logger) {
        let first: any ChannelHandler
        if let settings = policy.admit(logger: logger) {
            channel.closeFuture.whenComplete { _ in policy.release() }
            first = ConnectionBytesHandler(
                clock: ConnectionClock(timeouts: settings.timeouts, serverName: serverName, logger: logger))
        } else {
            let settings = policy.settings
            first = OverCapacityHandler(
                limit: settings.maxConnections, readTimeout: settings.timeouts.read, serverName: serverName)
        }
        do {
            try channel.pipeline.syncOperations.addHandler(first, position: .first)
        } catch {
            logger.error("cannot set up a connection; closing it", metadata: ["error": "\(error)"])
            channel.close(promise: nil)
        }
    }

    /// The per-request work `Application` does: a request context with a request ID
    /// in its logger, errors the router did not turn into responses become 500.
    static func respond(
        with responder: Responder, serverName: String?, logger: Logger
    ) -> HTTPChannelHandler.Responder {
        { request, writer, channel in
            var requestLogger = logger
            // A request ID only matters where per-request lines are logged (debug); skipping
            // it otherwise saves a metadata copy on every request.
            if logger.logLevel <= .debug {
                requestLogger[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
            }
            let context = Responder.Context(source: .init(channel: channel, logger: requestLogger))
            var response: Response
            do {
                response = try await responder.respond(to: request, context: context)
            } catch let error as HTTPParserError {
                // The connection answers 400 and closes.
                throw error
            } catch {
                requestLogger.debug("unhandled error", metadata: ["error": "\(error)"])
                response = Response(status: .internalServerError)
            }
            if let serverName {
                response.headers[.server] = serverName
            }
            do {
                try await writer.write(response: response.head, body: response.body)
            } catch is HTTPParserError {
                // Never let a body's parse error reach the connection, which would answer a second time.
                throw ResponseWriteFailed()
            }
        }
    }
}

struct ResponseWriteFailed: Error {}

/// The open connections, so that shutdown can tell each one to quiesce. A connection
/// accepted after shutdown began is told at once.
final class Connections: Sendable {
    private struct State {
        var quiescing = false
        var open: [ObjectIdentifier: any Channel] = [:]
    }

    private let state = Mutex(State())

    func add(_ channel: any Channel) {
        let quiesceNow = state.withLock { state -> Bool in
            if state.quiescing { return true }
            state.open[ObjectIdentifier(channel)] = channel
            return false
        }
        if quiesceNow { Self.quiesce(channel) }
    }

    func remove(_ channel: any Channel) {
        _ = state.withLock { $0.open.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func quiesce() {
        let open = state.withLock { state -> [any Channel] in
            state.quiescing = true
            return Array(state.open.values)
        }
        for channel in open { Self.quiesce(channel) }
    }

    private static func quiesce(_ channel: any Channel) {
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }
}
