import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import VeneerAPI
import VeneerCore
import VeneerOS
import VeneerSnapshotter

/// The daemon: opens the state root, recovers, serves the API on the socket until
/// SIGTERM or SIGINT, then finishes in-flight requests and removes the socket.
public struct Daemon: Sendable {
    public let configuration: DaemonConfiguration
    let logger: Logger

    public init(configuration: DaemonConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Checks the state root and the socket path, opens the store and recovers.
    public func prepare() throws(StartupError) -> Snapshotter {
        let root = configuration.root
        switch FileSystem.entryType(root) {
        case .missing, .directory:
            break
        default:
            throw .unusablePath("state root \(root) exists and is not a directory; point --root at a directory")
        }
        do {
            try FileSystem.makeDirectories(root, mode: 0o700)
        } catch {
            throw .unusablePath("cannot create the state root \(root): \(error)")
        }
        // Overlay upper and work directories cannot live on overlayfs (and the kernel
        // stacks at most two file systems), so a root there could never mount anything.
        if let type = try? FileSystem.fileSystemType(root), type == "overlay" {
            throw .unusablePath(
                "state root \(root) is on overlayfs, where the kernel refuses overlay upper directories; put the root on ext4, xfs or btrfs (--root)")
        }
        let snapshotter: Snapshotter
        do {
            snapshotter = try Snapshotter(
                root: root, maxDepth: configuration.maxDepth, overlayOptions: configuration.overlayOptions,
                logger: logger)
        } catch {
            throw .unusablePath("state root \(root) is unusable: \(error.message)")
        }
        try prepareSocketPath()
        return snapshotter
    }

    private func prepareSocketPath() throws(StartupError) {
        let socket = configuration.socket
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
                    "another process is listening on \(socket); stop it or choose another --socket")
            }
            // A socket file left by a daemon that did not stop cleanly.
            do {
                try FileSystem.removeTree(socket)
            } catch {
                throw .unusablePath("cannot remove stale socket \(socket): \(error)")
            }
        default:
            throw .unusablePath("\(socket) exists and is not a socket; remove it or choose another --socket")
        }
    }

    static func probeOverlay(root: String) -> OverlayFeatureReport {
        let features = OverlayFeatures.probe(scratch: root)
        return OverlayFeatureReport(
            newMountAPI: features.newMountAPI, index: features.index, metacopy: features.metacopy,
            redirectDir: features.redirectDir, userxattr: features.userxattr,
            dType: (try? OverlayFeatures.dTypeSupported(root: root)) ?? false)
    }

    /// Serves until a shutdown signal. Cleanup of leftovers runs before the socket opens.
    public func run(snapshotter: Snapshotter) async throws {
        let report = try await snapshotter.cleanup()
        if report.removed > 0 {
            logger.notice(
                "startup recovery removed leftovers",
                metadata: ["removed": "\(report.removed)", "reclaimed_bytes": "\(report.reclaimedBytes)"])
        }
        let gone = try await snapshotter.reconcileMounts()
        if !gone.isEmpty {
            logger.notice("startup reconciliation dropped records of mounts that are gone", metadata: ["count": "\(gone.count)"])
        }
        let socket = configuration.socket
        let root = configuration.root
        let facts = ServerFacts(
            root: root, rootFilesystem: (try? FileSystem.fileSystemType(root)) ?? "unknown", socket: socket,
            overlay: Self.probeOverlay(root: root), startedAt: SystemClock.monotonicNanoseconds())
        let router = API.router(snapshotter: snapshotter, facts: facts)
        let logger = self.logger
        let app = Application(
            router: router,
            configuration: .init(address: .unixDomainSocket(path: socket), serverName: "veneerd"),
            onServerRunning: { _ in
                do {
                    try FileSystem.setMode(socket, 0o660)
                } catch {
                    logger.error("cannot set the socket's mode", metadata: ["error": "\(error)"])
                }
                logger.info("veneerd \(Veneer.version) serving", metadata: ["socket": "\(socket)", "root": "\(facts.root)"])
            },
            logger: logger
        )
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: app)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        defer {
            try? FileSystem.removeTree(socket)
            logger.info("veneerd stopped")
        }
        try await group.run()
    }
}
