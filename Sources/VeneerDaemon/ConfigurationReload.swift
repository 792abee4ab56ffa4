import Logging
import Synchronization
import VeneerCore
import VeneerOS
import VeneerService
import VeneerWire

/// Reads the configuration file again and applies what can change while running: the
/// log level, `max_depth`, `overlay_options` and the connection settings. SIGHUP and
/// `POST /v1/reload` (which `veneerd reload`, the unit's `ExecReload=`, sends) both come
/// here, one reload at a time, each announced to systemd with RELOADING=1 and ended with
/// READY=1. A file that does not load or validate changes nothing: the reason is logged
/// at error priority, put in the service status, and thrown as `failed_precondition`.
final class ConfigurationReload: Sendable {
    let running: DaemonConfiguration
    let configFile: String?
    let overrides: DaemonConfiguration.Overrides
    let logLevel: LogLevelControl
    let connections: ConnectionPolicy
    let logger: Logger
    private let gate = AsyncGate()
    /// Why the last reload was rejected, until one succeeds: kept in the service status.
    private let rejection = Mutex<String?>(nil)

    init(
        running: DaemonConfiguration, configFile: String?, overrides: DaemonConfiguration.Overrides,
        logLevel: LogLevelControl, connections: ConnectionPolicy, logger: Logger
    ) {
        self.running = running
        self.configFile = configFile
        self.overrides = overrides
        self.logLevel = logLevel
        self.connections = connections
        self.logger = logger
    }

    /// The file that is read: the one named on the command line, else the default.
    var path: String { configFile ?? DaemonConfiguration.defaultConfigFile }

    /// What the service status adds to the summary line: the last rejection, if the
    /// file has not loaded since.
    var statusNote: String? { rejection.withLock { $0 } }

    /// Reloads; `trigger` (`SIGHUP`, `API`) is logged.
    func reload(_ snapshotter: Snapshotter, trigger: String) async throws(VeneerError) -> ReloadResponse {
        await gate.enter()
        Systemd.reloading()
        let result: Result<ReloadResponse, VeneerError>
        switch Result(catching: { () throws(StartupError) in
            try DaemonConfiguration.load(file: configFile, overrides: overrides)
        }) {
        case .success(let new):
            result = .success(apply(new, to: snapshotter, trigger: trigger))
            rejection.withLock { $0 = nil }
        case .failure(let error):
            logger.error(
                "reload rejected; keeping the running configuration",
                metadata: ["error": "\(error)", "trigger": "\(trigger)"])
            rejection.withLock { $0 = "reload rejected: \(error)" }
            result = .failure(
                .failedPrecondition(
                    "the configuration was not reloaded: \(error); the running configuration is kept; fix \(path) and reload again"
                ))
        }
        // The status shows the outcome before READY=1 ends the reload.
        if let line = await StatusReporter.line(snapshotter: snapshotter, note: statusNote) {
            Systemd.status(line)
        }
        Systemd.ready()
        await gate.leave()
        return try result.get()
    }

    private func apply(_ new: DaemonConfiguration, to snapshotter: Snapshotter, trigger: String) -> ReloadResponse {
        logLevel.current = new.logLevel
        snapshotter.apply(.init(maxDepth: new.maxDepth, overlayOptions: new.overlayOptions, maxLayerSize: new.layerSizeLimit))
        connections.settings = new.connectionSettings
        Daemon.checkOpenFileLimit(maxConnections: new.maxConnections, logger: logger)
        var restartRequired: [String] = []
        if new.root != running.root { restartRequired.append("root") }
        if new.socket != running.socket { restartRequired.append("socket") }
        if new.grpcSocket != running.grpcSocket { restartRequired.append("grpc_socket") }
        if !restartRequired.isEmpty {
            logger.warning(
                "changes of root, socket and grpc_socket take effect only after a restart",
                metadata: ["settings": "\(restartRequired.joined(separator: ","))"])
        }
        logger.notice(
            "configuration reloaded",
            metadata: [
                "trigger": "\(trigger)",
                "log_level": "\(new.logLevel.rawValue)", "max_depth": "\(new.maxDepth)",
                "overlay_options": "\(new.overlayOptions.joined(separator: ","))",
                "idle_timeout_s": "\(new.idleTimeout)", "read_timeout_s": "\(new.readTimeout)",
                "max_connections": "\(new.maxConnections)", "max_layer_size": "\(new.maxLayerSize)",
            ])
        return ReloadResponse(
            logLevel: new.logLevel.rawValue, maxDepth: new.maxDepth, overlayOptions: new.overlayOptions,
            idleTimeout: new.idleTimeout, readTimeout: new.readTimeout, maxConnections: new.maxConnections,
            maxLayerSize: new.maxLayerSize, restartRequired: restartRequired)
    }
}
