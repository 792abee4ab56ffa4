import ArgumentParser
import Foundation
import VeneerClient
import VeneerCore
import VeneerDaemon

/// `veneerd reload`: asks the running daemon to read its configuration file again and
/// waits for the outcome, so that `systemctl reload veneerd` (whose `ExecReload=` this
/// is) fails when the file does not load. Needs nothing but the daemon's socket.
struct ReloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Have the running veneerd read its configuration file again.",
        discussion: """
            Exits 0 once the daemon applied the file (log_level, max_depth, overlay_options, \
            idle_timeout, read_timeout, max_connections), 1 when the file does not load or the \
            daemon cannot be reached; the daemon then keeps its running configuration. The \
            socket is --socket, else the configuration file's socket setting, else \
            \(DaemonConfiguration.defaultSocket).
            """)

    @Option(help: "The daemon's API socket.")
    var socket: String?

    @Option(help: "Configuration file to take the socket from (default \(DaemonConfiguration.defaultConfigFile)).")
    var config: String?

    func run() async throws {
        let path = socketPath()
        do {
            let applied = try await VeneerClient(socketPath: path).reload()
            var line = "veneerd reloaded its configuration: log_level \(applied.logLevel), max_depth \(applied.maxDepth)"
            line += ", overlay_options [\(applied.overlayOptions.joined(separator: ","))]"
            line += ", idle_timeout \(applied.idleTimeout)s, read_timeout \(applied.readTimeout)s"
            line += ", max_connections \(applied.maxConnections)"
            line += ", max_layer_size \(applied.maxLayerSize == 0 ? "off" : "\(applied.maxLayerSize)")\n"
            FileHandle.standardOutput.write(Data(line.utf8))
            if !applied.restartRequired.isEmpty {
                let names = applied.restartRequired.joined(separator: " and ")
                FileHandle.standardError.write(Data("veneerd reload: \(names) change only when veneerd restarts\n".utf8))
            }
        } catch {
            FileHandle.standardError.write(Data("veneerd reload: \(error.message)\n".utf8))
            throw ExitCode.failure
        }
    }

    /// The flag, else the file's setting; a file that does not load (the very case a
    /// reload must report) leaves the default socket.
    func socketPath() -> String {
        if let socket { return socket }
        if let file = try? DaemonConfiguration.load(file: config, overrides: .init()) {
            return file.socket
        }
        return DaemonConfiguration.defaultSocket
    }
}
