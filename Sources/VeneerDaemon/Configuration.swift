import Foundation
import Logging
import TOMLKit
import VeneerCore
import VeneerOS

/// Settings of the daemon. Built from defaults, then the TOML file, then flags.
public struct DaemonConfiguration: Sendable, Equatable {
    public static let defaultRoot = "/var/lib/veneer"
    public static let defaultSocket = "/run/veneer/veneer.sock"
    public static let defaultConfigFile = "/etc/veneer/veneerd.toml"

    public var root: String = defaultRoot
    public var socket: String = defaultSocket
    /// The gRPC socket as configured: nil for the default (`grpc.sock` beside the API
    /// socket, so `/run/veneer/grpc.sock`), empty to serve no gRPC.
    public var grpcSocketSetting: String? = nil
    public var logLevel: Logger.Level = .info
    /// Largest number of lower layers a prepare or view may stack (1 to 500).
    public var maxDepth: Int = 500
    /// Extra options appended to overlay mounts, from `knownOverlayOptions`.
    public var overlayOptions: [String] = []
    /// Seconds a connection may stay open with no request in progress and no answer owed.
    public var idleTimeout: Int = 60
    /// Seconds the head of a request may take to arrive, and the longest gap between two
    /// reads of a body.
    public var readTimeout: Int = 10
    /// Most client connections served at once.
    public var maxConnections: Int = 1024
    /// Largest layer `PUT /v1/snapshots/{key}/layer` takes, in bytes (received, and
    /// of its uncompressed tar); 0 for no limit.
    public var maxLayerSize: Int64 = 0

    /// The layer size limit as the snapshotter takes it: nil for none.
    public var layerSizeLimit: Int64? { maxLayerSize > 0 ? maxLayerSize : nil }

    public init() {}

    /// Where containerd's snapshots API is served, or nil when it is disabled.
    public var grpcSocket: String? {
        if let setting = grpcSocketSetting { return setting.isEmpty ? nil : setting }
        let directory = socket[..<(socket.lastIndex(of: "/") ?? socket.startIndex)]
        return directory + "/grpc.sock"
    }

    public static let idleTimeoutRange = 1...86_400
    public static let readTimeoutRange = 1...3_600
    public static let maxConnectionsRange = 1...65_536

    /// The connection settings, as the server takes them.
    public var connectionSettings: ConnectionPolicy.Settings {
        .init(timeouts: .init(idle: idleTimeout, read: readTimeout), maxConnections: maxConnections)
    }

    /// Overlay options that may be configured, with their allowed values (nil: a flag).
    public static let knownOverlayOptions: [String: [String]?] = [
        "index": ["on", "off"],
        "volatile": nil,
        "metacopy": ["on", "off"],
        "redirect_dir": ["on", "off", "follow", "nofollow"],
        "xino": ["on", "off", "auto"],
    ]

    /// Longest state root path accepted.
    public static let maxRootBytes = 200

    static let knownSettings =
        "root, socket, grpc_socket, log_level, max_depth, overlay_options, idle_timeout, read_timeout, max_connections, max_layer_size"

    /// Settings that the file may hold; every field optional, unknown fields rejected.
    struct File: Decodable {
        var root: String?
        var socket: String?
        var grpc_socket: String?
        var log_level: String?
        var max_depth: Int?
        var overlay_options: [String]?
        var idle_timeout: Int?
        var read_timeout: Int?
        var max_connections: Int?
        var max_layer_size: Int64?
    }

    /// Command-line values; nil where the flag was not given.
    public struct Overrides: Sendable {
        public var root: String?
        public var socket: String?
        public var grpcSocket: String?
        public var logLevel: String?
        public var idleTimeout: Int?
        public var readTimeout: Int?
        public var maxConnections: Int?
        public init(
            root: String? = nil, socket: String? = nil, grpcSocket: String? = nil, logLevel: String? = nil,
            idleTimeout: Int? = nil, readTimeout: Int? = nil, maxConnections: Int? = nil
        ) {
            self.root = root
            self.socket = socket
            self.grpcSocket = grpcSocket
            self.logLevel = logLevel
            self.idleTimeout = idleTimeout
            self.readTimeout = readTimeout
            self.maxConnections = maxConnections
        }
    }

    /// Loads the configuration. The default file is optional; a file named on the
    /// command line must exist.
    public static func load(file: String?, overrides: Overrides) throws(StartupError) -> DaemonConfiguration {
        var config = DaemonConfiguration()
        let path = file ?? defaultConfigFile
        if FileSystem.entryType(path) != .missing || file != nil {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw .configuration("cannot read configuration file \(path): \(error.localizedDescription)")
            }
            try config.apply(try parse(text, path: path), path: path)
        }
        if let root = overrides.root { config.root = root }
        if let socket = overrides.socket { config.socket = socket }
        if let grpcSocket = overrides.grpcSocket { config.grpcSocketSetting = grpcSocket }
        if let level = overrides.logLevel { config.logLevel = try parseLevel(level, source: "--log-level") }
        if let seconds = overrides.idleTimeout { config.idleTimeout = seconds }
        if let seconds = overrides.readTimeout { config.readTimeout = seconds }
        if let count = overrides.maxConnections { config.maxConnections = count }
        try config.validate()
        return config
    }

    static func parse(_ text: String, path: String) throws(StartupError) -> File {
        do {
            return try TOMLDecoder(strictDecoding: true).decode(File.self, from: text)
        } catch let error as TOMLParseError {
            throw .configuration("configuration file \(path) is not valid TOML: \(error.debugDescription)")
        } catch let error as UnexpectedKeysError {
            let keys = error.keys.keys.sorted().joined(separator: ", ")
            throw .configuration("configuration file \(path) has unknown settings: \(keys); known: \(knownSettings)")
        } catch let error as DecodingError {
            throw .configuration("configuration file \(path): \(describe(error))")
        } catch {
            throw .configuration("configuration file \(path): \(error)")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "setting \(field) has the wrong type (\(context.debugDescription))"
        case .keyNotFound(let key, _):
            return "missing setting \(key.stringValue)"
        @unknown default:
            return "\(error)"
        }
    }

    mutating func apply(_ file: File, path: String) throws(StartupError) {
        if let root = file.root { self.root = root }
        if let socket = file.socket { self.socket = socket }
        if let grpcSocket = file.grpc_socket { self.grpcSocketSetting = grpcSocket }
        if let level = file.log_level { self.logLevel = try Self.parseLevel(level, source: "log_level in \(path)") }
        if let depth = file.max_depth { self.maxDepth = depth }
        if let options = file.overlay_options { self.overlayOptions = options }
        if let seconds = file.idle_timeout { self.idleTimeout = seconds }
        if let seconds = file.read_timeout { self.readTimeout = seconds }
        if let count = file.max_connections { self.maxConnections = count }
        if let bytes = file.max_layer_size { self.maxLayerSize = bytes }
    }

    static func parseLevel(_ text: String, source: String) throws(StartupError) -> Logger.Level {
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            let known = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw .configuration("\(source): unknown log level \(quoted(text)); use one of \(known)")
        }
        return level
    }

    func validate() throws(StartupError) {
        guard root.hasPrefix("/") else {
            throw .configuration("state root \(quoted(root)) must be an absolute path")
        }
        // Layer paths (<root>/snapshots/<id>/fs) must stay under the kernel's 256-byte
        // limit on one fsconfig value, which deep stacks are mounted with.
        if root.utf8.count > Self.maxRootBytes {
            throw .configuration(
                "state root \(quoted(root)) is \(root.utf8.count) bytes long; use a path of at most \(Self.maxRootBytes) bytes")
        }
        // Layer paths end up in overlay mount options, where these characters are separators.
        if let bad = root.first(where: { $0 == ":" || $0 == "," || $0 == "\n" }) {
            throw .configuration("state root \(quoted(root)) contains \(quoted(String(bad))), which overlay mount options cannot carry; choose another path")
        }
        guard socket.hasPrefix("/") else {
            throw .configuration("socket path \(quoted(socket)) must be an absolute path")
        }
        if !(1...500).contains(maxDepth) {
            throw .configuration(
                "max_depth \(maxDepth) is out of range; the kernel stacks at most 500 overlay lower layers, so use 1 to 500")
        }
        if !Self.idleTimeoutRange.contains(idleTimeout) {
            throw .configuration(
                "idle_timeout \(idleTimeout) is out of range; give seconds from \(Self.idleTimeoutRange.lowerBound) to \(Self.idleTimeoutRange.upperBound)")
        }
        if !Self.readTimeoutRange.contains(readTimeout) {
            throw .configuration(
                "read_timeout \(readTimeout) is out of range; give seconds from \(Self.readTimeoutRange.lowerBound) to \(Self.readTimeoutRange.upperBound)")
        }
        if !Self.maxConnectionsRange.contains(maxConnections) {
            throw .configuration(
                "max_connections \(maxConnections) is out of range; use \(Self.maxConnectionsRange.lowerBound) to \(Self.maxConnectionsRange.upperBound)")
        }
        if maxLayerSize < 0 {
            throw .configuration("max_layer_size \(maxLayerSize) is negative; give bytes, or 0 for no limit")
        }
        for option in overlayOptions {
            let parts = option.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            guard let allowed = Self.knownOverlayOptions[name] else {
                let known = Self.knownOverlayOptions.keys.sorted().joined(separator: ", ")
                throw .configuration("overlay option \(quoted(option)) is not supported; known options: \(known)")
            }
            switch (allowed, parts.count) {
            case (nil, 1):
                break
            case (nil, _):
                throw .configuration("overlay option \(quoted(name)) takes no value")
            case (let values?, 2) where values.contains(String(parts[1])):
                break
            case (let values?, _):
                throw .configuration(
                    "overlay option \(quoted(option)) needs one of: \(values.map { name + "=" + $0 }.joined(separator: ", "))")
            }
        }
        if socket.utf8.count > UnixSocket.maxPathBytes {
            throw .configuration("socket path \(quoted(socket)) is \(socket.utf8.count) bytes; Unix socket paths are limited to \(UnixSocket.maxPathBytes) bytes")
        }
        if let grpcSocket {
            guard grpcSocket.hasPrefix("/") else {
                throw .configuration(
                    "grpc_socket \(quoted(grpcSocket)) must be an absolute path, or \"\" to serve no gRPC")
            }
            if grpcSocket.utf8.count > UnixSocket.maxPathBytes {
                throw .configuration("grpc_socket \(quoted(grpcSocket)) is \(grpcSocket.utf8.count) bytes; Unix socket paths are limited to \(UnixSocket.maxPathBytes) bytes")
            }
            if grpcSocket == socket {
                throw .configuration(
                    "grpc_socket and socket are both \(quoted(socket)); give the gRPC socket a path of its own")
            }
        }
    }
}

/// A reason the daemon cannot start; each kind has its own exit status.
public enum StartupError: Error, Sendable, CustomStringConvertible {
    /// Bad flags or configuration file (exit status 78, EX_CONFIG).
    case configuration(String)
    /// The state root or the socket cannot be used (exit status 73, EX_CANTCREAT).
    case unusablePath(String)
    /// Another daemon serves the socket (exit status 75, EX_TEMPFAIL).
    case alreadyRunning(String)

    public var description: String {
        switch self {
        case .configuration(let m), .unusablePath(let m), .alreadyRunning(let m): m
        }
    }

    /// The errno reported to systemd (ERRNO=) with the failure.
    public var errno: Int32 {
        switch self {
        case .configuration: 22  // EINVAL
        case .unusablePath: 13  // EACCES
        case .alreadyRunning: 98  // EADDRINUSE
        }
    }

    public var exitStatus: Int32 {
        switch self {
        case .configuration: 78
        case .unusablePath: 73
        case .alreadyRunning: 75
        }
    }
}
