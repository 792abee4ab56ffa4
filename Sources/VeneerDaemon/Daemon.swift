import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals
import VeneerAPI
import VeneerCore
import VeneerOS
import VeneerService
import VeneerWire

/// The daemon: opens the state root, recovers, serves the HTTP API on its socket and
/// containerd's snapshots API (gRPC) on another, until SIGTERM or SIGINT, then finishes
/// in-flight requests and removes the sockets it bound. Under systemd it takes the
/// sockets from socket activation and reports its state (READY, STATUS, WATCHDOG,
/// RELOADING, STOPPING).
public struct Daemon: Sendable {
    public let configuration: DaemonConfiguration
    /// Where the configuration came from, to read it again on SIGHUP.
    let configFile: String?
    let overrides: DaemonConfiguration.Overrides
    let logLevel: LogLevelControl
    let logger: Logger
    /// The connection settings in force; reloads change them.
    let connections: ConnectionPolicy

    public init(
        configuration: DaemonConfiguration, configFile: String?, overrides: DaemonConfiguration.Overrides,
        logLevel: LogLevelControl, logger: Logger
    ) {
        self.configuration = configuration
        self.configFile = configFile
        self.overrides = overrides
        self.logLevel = logLevel
        self.logger = logger
        self.connections = ConnectionPolicy(configuration.connectionSettings)
    }

    /// What `prepare` found.
    public struct Prepared: Sendable {
        public let snapshotter: Snapshotter
        /// The listening sockets systemd passed, if the daemon was socket-activated.
        public let activated: Systemd.ActivatedSockets
    }

    /// Checks the state root and the socket, opens the store.
    public func prepare() throws(StartupError) -> Prepared {
        let root = configuration.root
        switch FileSystem.entryType(root) {
        case .missing, .directory:
            break
        default:
            throw .unusablePath("state root \(root) exists and is not a directory; point --root at a directory")
        }
        // Overlay upper and work directories cannot live on overlayfs (and the kernel
        // stacks at most two file systems), so a root there could never mount anything.
        // Checked on the nearest existing directory, before anything is created.
        var existing = root
        while FileSystem.entryType(existing) == .missing, let slash = existing.lastIndex(of: "/") {
            existing = slash == existing.startIndex ? "/" : String(existing[..<slash])
        }
        if let type = try? FileSystem.fileSystemType(existing), type == "overlay" {
            throw .unusablePath(
                "state root \(root) is on overlayfs, where the kernel refuses overlay upper directories; put the root on ext4, xfs or btrfs (--root)")
        }
        do {
            try FileSystem.makeDirectories(root, mode: 0o700)
        } catch {
            throw .unusablePath("cannot create the state root \(root): \(error)")
        }
        // One daemon per state root: a second one would clean up the first one's work
        // in progress. The lock lasts as long as the process.
        let lock = root + "/lock"
        do {
            _ = try FileSystem.lockExclusive(lock)
        } catch {
            if error.isLockHeld {
                throw .alreadyRunning("another veneerd is using the state root \(root) (it holds \(lock)); stop it or choose another --root")
            }
            throw .unusablePath("cannot lock the state root \(root): \(error)")
        }
        let activated: Systemd.ActivatedSockets
        do {
            activated = try Systemd.activatedSockets()
        } catch {
            throw .configuration("socket activation: \(error)")
        }
        if activated.api == nil {
            try Self.prepareSocketPath(configuration.socket, option: "--socket")
        }
        if activated.grpc == nil, let grpcSocket = configuration.grpcSocket {
            try Self.prepareSocketPath(grpcSocket, option: "--grpc-socket")
        }
        let snapshotter: Snapshotter
        do {
            snapshotter = try Snapshotter(
                root: root, maxDepth: configuration.maxDepth, overlayOptions: configuration.overlayOptions,
                maxLayerSize: configuration.layerSizeLimit, logger: logger)
        } catch {
            throw .unusablePath("state root \(root) is unusable: \(error.message)")
        }
        return Prepared(snapshotter: snapshotter, activated: activated)
    }

    /// Makes the socket's directory, and removes a socket file nobody listens on.
    private static func prepareSocketPath(_ socket: String, option: String) throws(StartupError) {
        let parent = String(socket[..<(socket.lastIndex(of: "/") ?? socket.startIndex)])
        if !parent.isEmpty {
            do {
                try FileSystem.makeDirectories(parent, mode: 0o755)
            } catch {
                throw .unusablePath("cannot create the socket directory \(parent): \(error)")
            }
        }
        switch FileSystem.entryType(socket) {
        case .missing:
            return
        case .other:
            if UnixSocket.isListening(socket) {
                throw .alreadyRunning(
                    "another process is listening on \(socket); stop it or choose another \(option)")
            }
            // A socket file left by a daemon that did not stop cleanly.
            do {
                try FileSystem.removeTree(socket)
            } catch {
                throw .unusablePath("cannot remove stale socket \(socket): \(error)")
            }
        default:
            throw .unusablePath("\(socket) exists and is not a socket; remove it or choose another \(option)")
        }
    }

    static func probeOverlay(root: String) -> OverlayFeatureReport {
        // The kernel takes at most 256 bytes per fsconfig value, so the probes run in a
        // short scratch directory; d_type is a property of the root's own file system.
        let scratch = FileSystem.entryType("/tmp") == .directory ? "/tmp" : root
        let features = OverlayFeatures.probe(scratch: scratch)
        return OverlayFeatureReport(
            newMountAPI: features.newMountAPI, index: features.index, metacopy: features.metacopy,
            redirectDir: features.redirectDir, userxattr: features.userxattr,
            dType: (try? OverlayFeatures.dTypeSupported(root: root)) ?? false)
    }

    /// Recovers, then serves until a shutdown signal.
    public func run(_ prepared: Prepared) async throws {
        let snapshotter = prepared.snapshotter
        // Trap SIGHUP before anything else: a reload that arrives early must not meet
        // the signal's default action, which ends the process.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let logger = self.logger
        try await withExtendedStartTimeout {
            let repaired = try await snapshotter.recoverDirectories()
            if !repaired.isEmpty {
                logger.notice("startup recovery made again the directories of snapshots", metadata: ["count": "\(repaired.count)"])
            }
            let report = try await snapshotter.cleanup()
            if report.removed > 0 {
                logger.notice(
                    "startup recovery removed leftovers",
                    metadata: ["removed": "\(report.removed)", "reclaimed_bytes": "\(report.reclaimedBytes)"])
            }
            let gone = try await snapshotter.liveMounts.reconcile()
            if !gone.isEmpty {
                logger.notice(
                    "startup reconciliation dropped records of mounts that are gone", metadata: ["count": "\(gone.count)"])
            }
        }
        let socket = configuration.socket
        let root = configuration.root
        let descriptor: Int32
        if let passed = prepared.activated.api {
            descriptor = passed
        } else {
            do {
                descriptor = try UnixSocket.bindListening(path: socket, mode: 0o660)
            } catch {
                throw StartupError.unusablePath("cannot listen on \(socket): \(error)")
            }
        }
        let activated = prepared.activated.api != nil
        // Bound (or taken over) before READY=1 too: containerd may connect at once.
        let grpc: GRPCListener?
        do {
            grpc = try GRPCListener.open(
                passed: prepared.activated.grpc, configured: configuration.grpcSocket, snapshotter: snapshotter,
                logger: logger)
        } catch {
            if !activated { _ = try? FileSystem.removeTree(socket) }
            throw error
        }
        let facts = ServerFacts(
            root: root, rootFilesystem: (try? FileSystem.fileSystemType(root)) ?? "unknown", socket: socket,
            grpcSocket: grpc?.path, overlay: Self.probeOverlay(root: root))
        Self.checkOpenFileLimit(maxConnections: configuration.maxConnections, logger: logger)
        let reloads = ConfigurationReload(
            running: configuration, configFile: configFile, overrides: overrides, logLevel: logLevel,
            connections: connections, logger: logger)
        let router = API.router(
            snapshotter: snapshotter, facts: facts,
            reload: { () throws(VeneerError) in try await reloads.reload(snapshotter, trigger: "API") })
        let server = ListeningSocketServer(
            descriptor: descriptor, responder: router.buildResponder(),
            serverName: "veneerd",
            http: .init(additionalChannelHandlers: [
                ParseErrorAnswerHandler(serverName: "veneerd"),
                DirectResponseHandler(routes: DirectRoutes(snapshotter: snapshotter), serverName: "veneerd", logger: logger)
            ]),
            policy: connections,
            logger: logger,
            onServerRunning: {
                if let line = try? await snapshotter.status().summary {
                    Systemd.status(line)
                }
                Systemd.ready()
                logger.info(
                    "veneerd \(Veneer.version) serving",
                    metadata: [
                        "socket": "\(socket)", "grpc_socket": "\(grpc?.path ?? "off")", "root": "\(root)",
                        "activated": "\(activated)",
                    ])
            })
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: server)]
        if let grpc { services.append(.init(service: grpc)) }
        let group = ServiceGroup(
            configuration: .init(
                services: services + [
                    .init(
                        service: WatchdogPinger(snapshotter: snapshotter, socket: socket, logger: logger),
                        successTerminationBehavior: .ignore),
                    .init(
                        service: StatusReporter(snapshotter: snapshotter, note: { reloads.statusNote }),
                        successTerminationBehavior: .ignore),
                    .init(
                        service: Reloader(signals: hangups) { _ = try? await reloads.reload(snapshotter, trigger: "SIGHUP") },
                        successTerminationBehavior: .ignore),
                    .init(service: StoppingNotifier(logger: logger), successTerminationBehavior: .ignore),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        defer {
            // A socket belongs to systemd when it was passed to us.
            if !activated { _ = try? FileSystem.removeTree(socket) }
            grpc?.removeSocketFile()
            logger.info("veneerd stopped")
        }
        try await group.run()
    }

    /// Descriptors the daemon needs besides its connections: the store, the listening
    /// socket, tree walks, mount work.
    static let descriptorReserve: UInt64 = 256

    /// Raises the open-file limit as far as allowed, and warns when the connection limit
    /// does not fit under it: past it, accepting fails instead of answering 503.
    static func checkOpenFileLimit(maxConnections: Int, logger: Logger) {
        guard let limit = ResourceLimits.raiseOpenFiles() else { return }
        if UInt64(maxConnections) + Self.descriptorReserve > limit {
            logger.warning(
                "max_connections does not fit under the open-file limit; lower max_connections or raise LimitNOFILE",
                metadata: ["max_connections": "\(maxConnections)", "open_file_limit": "\(limit)"])
        }
    }
}
