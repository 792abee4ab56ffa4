import ArgumentParser
import Foundation
import Logging
import VeneerDaemon
import VeneerOS

@main
struct Veneerd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "veneerd",
        abstract: "Veneer snapshotter daemon: layer snapshots over an HTTP/JSON API on a Unix socket.",
        subcommands: [Serve.self, ReloadCommand.self],
        defaultSubcommand: Serve.self)
}

/// Runs the daemon: `veneerd [serve] [options]`.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon (the default when no command is named).")

    @Option(help: "State root (default \(DaemonConfiguration.defaultRoot)).")
    var root: String?

    @Option(help: "API socket path (default \(DaemonConfiguration.defaultSocket)).")
    var socket: String?

    @Option(
        help: "containerd's gRPC socket path (default grpc.sock beside the API socket; \"\" serves no gRPC).")
    var grpcSocket: String?

    @Option(help: "Configuration file in TOML (default \(DaemonConfiguration.defaultConfigFile), optional).")
    var config: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?

    @Option(help: "Seconds a connection may stay idle before it is closed (default 60).")
    var idleTimeout: Int?

    @Option(help: "Seconds a request's head may take to arrive, and the longest gap in its body (default 10).")
    var readTimeout: Int?

    @Option(help: "Most client connections served at once (default 1024).")
    var maxConnections: Int?

    func run() async throws {
        let overrides = DaemonConfiguration.Overrides(
            root: root, socket: socket, grpcSocket: grpcSocket, logLevel: logLevel, idleTimeout: idleTimeout, readTimeout: readTimeout,
            maxConnections: maxConnections)
        let configuration: DaemonConfiguration
        do {
            configuration = try DaemonConfiguration.load(file: config, overrides: overrides)
        } catch {
            FileHandle.standardError.write(Data("veneerd: \(error)\n".utf8))
            Systemd.status("cannot start: \(error)")
            throw ExitCode(error.exitStatus)
        }
        let control = LogLevelControl(configuration.logLevel)
        let destination = DaemonLogHandler.defaultDestination
        LoggingSystem.bootstrap { label in
            DaemonLogHandler(label: label, control: control, destination: destination)
        }
        let logger = Logger(label: "veneerd")
        let daemon = Daemon(
            configuration: configuration, configFile: config, overrides: overrides, logLevel: control, logger: logger)
        do {
            try await daemon.run(try daemon.prepare())
        } catch let error as StartupError {
            logger.critical("cannot start: \(error)")
            Systemd.status("cannot start: \(error)")
            Systemd.errno(error.errno)
            throw ExitCode(error.exitStatus)
        }
    }
}
