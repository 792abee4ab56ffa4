import ArgumentParser
import Foundation
import Logging
import VeneerDaemon

@main
struct Veneerd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "veneerd",
        abstract: "Veneer snapshotter daemon: layer snapshots over an HTTP/JSON API on a Unix socket.")

    @Option(help: "State root (default \(DaemonConfiguration.defaultRoot)).")
    var root: String?

    @Option(help: "API socket path (default \(DaemonConfiguration.defaultSocket)).")
    var socket: String?

    @Option(help: "Configuration file in TOML (default \(DaemonConfiguration.defaultConfigFile), optional).")
    var config: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?

    func run() async throws {
        let configuration: DaemonConfiguration
        do {
            configuration = try DaemonConfiguration.load(
                file: config, overrides: .init(root: root, socket: socket, logLevel: logLevel))
        } catch {
            FileHandle.standardError.write(Data("veneerd: \(error)\n".utf8))
            throw ExitCode(error.exitStatus)
        }
        let level = configuration.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "veneerd")
        let daemon = Daemon(configuration: configuration, logger: logger)
        do {
            let snapshotter = try daemon.prepare()
            try await daemon.run(snapshotter: snapshotter)
        } catch let error as StartupError {
            logger.critical("cannot start: \(error)")
            throw ExitCode(error.exitStatus)
        }
    }
}
