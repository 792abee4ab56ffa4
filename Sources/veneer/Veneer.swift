import ArgumentParser
import Foundation
import VeneerClient
import VeneerCore

@main
struct Veneer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "veneer",
        abstract: "Manage the snapshots and mounts of veneerd, the container root file system snapshotter.",
        discussion: """
            The daemon's socket is taken from --socket, else from the VENEER_SOCKET environment \
            variable, else \(VeneerClient.defaultSocketPath). Snapshot commands work in the \
            default namespace unless --namespace names another (snapshots containerd made are in \
            "containerd"). With --json, every command prints the daemon's answer as JSON instead \
            of text for people.
            """,
        subcommands: [
            PrepareCommand.self, ViewCommand.self, CommitCommand.self, RemoveCommand.self,
            ListCommand.self, InfoCommand.self, LabelCommand.self, MountsCommand.self,
            MountCommand.self, UnmountCommand.self, UsageCommand.self, CleanupCommand.self,
            StatusCommand.self, ApplyCommand.self, DiffCommand.self, ChangesCommand.self, RevertCommand.self, ImportCommand.self,
        ]
    )

    @OptionGroup var global: GlobalOptions

    /// Runs the command line; usage errors exit with status 2, failed requests with 1.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                Output.error(fullMessage(for: error))
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }
}

/// Options that every command accepts, before or after the command's name.
struct GlobalOptions: ParsableArguments {
    static let socketVariable = "VENEER_SOCKET"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The daemon's Unix socket (default: $\(GlobalOptions.socketVariable), else \(VeneerClient.defaultSocketPath)).",
            valueName: "path"))
    var socket: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The namespace of the snapshots (default: $\(GlobalOptions.namespaceVariable), else \"default\"; containerd's are in \"containerd\").",
            valueName: "name"))
    var namespace: String?

    static let namespaceVariable = "VENEER_NAMESPACE"

    @Flag(name: .long, help: "Print the daemon's answer as JSON (pretty, keys sorted).")
    var json = false

    var socketPath: String {
        if let socket { return socket }
        if let fromEnvironment = ProcessInfo.processInfo.environment[Self.socketVariable], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return VeneerClient.defaultSocketPath
    }

    /// The namespace named by --namespace or $VENEER_NAMESPACE, nil for the default one.
    var namespaceName: String? {
        if let namespace { return namespace }
        if let fromEnvironment = ProcessInfo.processInfo.environment[Self.namespaceVariable], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return nil
    }

    func client() -> VeneerClient {
        VeneerClient(socketPath: socketPath, namespace: namespaceName)
    }

    /// Runs a request; a failure is reported on standard error and ends the command with status 1.
    func perform(_ body: () async throws(VeneerError) -> Void) async throws {
        do {
            try await body()
        } catch {
            Output.report(error)
            throw ExitCode.failure
        }
    }

    /// Prints the answer as JSON with `--json`, otherwise as `text` (if not empty).
    func emit(_ value: some Encodable, text: @autoclosure () -> String) throws(VeneerError) {
        if json {
            Output.print(try Output.json(value))
        } else {
            let rendered = text()
            if !rendered.isEmpty { Output.print(rendered) }
        }
    }
}

enum Output {
    static func print(_ text: String) {
        Swift.print(text)
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }

    /// `veneer: <code>: <message>`, the daemon's message verbatim.
    static func report(_ error: VeneerError) {
        Self.error("veneer: \(error.code.rawValue): \(error.message)")
    }

    static func json(_ value: some Encodable) throws(VeneerError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            throw .internal("cannot print the answer as JSON: \(error)", cause: error)
        }
    }
}

/// A `name=value` argument. An empty value is allowed where the command says so.
struct LabelAssignment: Equatable {
    var name: String
    var value: String

    static func parse(_ text: String, option: String) throws -> LabelAssignment {
        guard let equals = text.firstIndex(of: "=") else {
            throw ValidationError("\(option) \(quoted(text)) is not of the form name=value")
        }
        let name = String(text[..<equals])
        if name.isEmpty {
            throw ValidationError("\(option) \(quoted(text)) has no label name before \"=\"")
        }
        return LabelAssignment(name: name, value: String(text[text.index(after: equals)...]))
    }

    /// The assignments as a dictionary; a name given twice keeps its last value.
    static func dictionary(_ texts: [String], option: String) throws -> [String: String] {
        var labels: [String: String] = [:]
        for text in texts {
            let assignment = try parse(text, option: option)
            labels[assignment.name] = assignment.value
        }
        return labels
    }
}
