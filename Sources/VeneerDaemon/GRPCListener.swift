import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOPosix
import ServiceLifecycle
import VeneerCore
import VeneerGRPC
import VeneerOS
import VeneerService

/// containerd's snapshots API on its Unix socket (HTTP/2, plaintext): the socket
/// systemd passed, or one bound here (mode 0660, like the API's). Runs until the
/// daemon's graceful shutdown, which lets RPCs in progress finish.
final class GRPCListener: Service, Sendable {
    /// Where the socket is, for status and logs.
    let path: String
    /// Whether this daemon bound the socket file, and so removes it when it stops.
    let ownsSocketFile: Bool
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    /// The one thread that serves the connections and runs the calls.
    private let loops: MultiThreadedEventLoopGroup
    private let executor: EventLoopTaskExecutor

    private init(
        path: String, ownsSocketFile: Bool, server: GRPCServer<HTTP2ServerTransport.Posix>,
        loops: MultiThreadedEventLoopGroup
    ) {
        self.path = path
        self.ownsSocketFile = ownsSocketFile
        self.server = server
        self.loops = loops
        self.executor = EventLoopTaskExecutor(loops.next())
    }

    /// The listener on `passed` (a socket systemd passed) or on a socket bound at
    /// `configured`; nil when there is neither (gRPC is disabled).
    static func open(
        passed: Int32?, configured: String?, snapshotter: Snapshotter, logger: Logger
    ) throws(StartupError) -> GRPCListener? {
        let descriptor: Int32
        let path: String
        if let passed {
            descriptor = passed
            path = UnixSocket.boundPath(passed) ?? configured ?? "(passed by systemd)"
        } else if let configured {
            do {
                descriptor = try UnixSocket.bindListening(path: configured, mode: 0o660)
            } catch {
                throw .unusablePath("cannot listen on the gRPC socket \(configured): \(error)")
            }
            path = configured
        } else {
            return nil
        }
        var config = HTTP2ServerTransport.Posix.Config.defaults
        // containerd's pings are answered before they reach the HTTP/2 handler, which
        // would take them for a flood (see PingAnswerer).
        config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(PingAnswerer(side: .server), position: .first)
            }
        }
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let transport = HTTP2ServerTransport.Posix(
            listeningSocketDescriptor: Int(descriptor), transportSecurity: .plaintext, config: config,
            eventLoopGroup: loops)
        let server = GRPCServer(
            transport: transport, services: [SnapshotsService(snapshotter: snapshotter)],
            interceptors: [RequestLogInterceptor(logger: logger)])
        return GRPCListener(path: path, ownsSocketFile: passed == nil, server: server, loops: loops)
    }

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withTaskExecutorPreference(executor) {
                try await server.serve()
            }
        } onGracefulShutdown: {
            self.server.beginGracefulShutdown()
        }
        try? await loops.shutdownGracefully()
    }

    /// Removes the socket file this daemon bound; one systemd passed stays.
    func removeSocketFile() {
        if ownsSocketFile { _ = try? FileSystem.removeTree(path) }
    }
}
