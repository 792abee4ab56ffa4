import VeneerCore

// Answers of the HTTP API (v1). `api/openapi.yaml` is the contract; these types
// follow it field for field.

/// Answer to `POST /v1/snapshots`.
public struct PrepareResponse: Sendable, Equatable, Codable {
    public var snapshot: SnapshotInfo
    public var mounts: [Mount]

    public init(snapshot: SnapshotInfo, mounts: [Mount]) {
        self.snapshot = snapshot
        self.mounts = mounts
    }
}

/// Answer to `GET /v1/snapshots`.
public struct ListResponse: Sendable, Equatable, Codable {
    public var snapshots: [SnapshotInfo]
    public init(snapshots: [SnapshotInfo]) { self.snapshots = snapshots }
}

/// Answer to `GET /v1/snapshots/{key}/mounts`.
public struct MountsResponse: Sendable, Equatable, Codable {
    public var mounts: [Mount]
    public init(mounts: [Mount]) { self.mounts = mounts }
}

/// Answer to `POST /v1/cleanup`.
public struct CleanupResponse: Sendable, Equatable, Codable {
    /// Directories removed.
    public var removed: Int
    public var reclaimedBytes: Int64

    public init(removed: Int, reclaimedBytes: Int64) {
        self.removed = removed
        self.reclaimedBytes = reclaimedBytes
    }

    enum CodingKeys: String, CodingKey {
        case removed
        case reclaimedBytes = "reclaimed_bytes"
    }
}

/// Answer to `POST /v1/reload`: the settings in force after the configuration file was
/// read again, and the settings the file changes that only a restart applies.
public struct ReloadResponse: Sendable, Equatable, Codable {
    public var logLevel: String
    public var maxDepth: Int
    public var overlayOptions: [String]
    /// Seconds.
    public var idleTimeout: Int
    /// Seconds.
    public var readTimeout: Int
    public var maxConnections: Int
    /// Bytes; 0 for no limit.
    public var maxLayerSize: Int64
    /// Names of settings (`root`, `socket`) whose new values wait for the next start.
    public var restartRequired: [String]

    public init(
        logLevel: String, maxDepth: Int, overlayOptions: [String], idleTimeout: Int, readTimeout: Int,
        maxConnections: Int, maxLayerSize: Int64 = 0, restartRequired: [String]
    ) {
        self.logLevel = logLevel
        self.maxDepth = maxDepth
        self.overlayOptions = overlayOptions
        self.idleTimeout = idleTimeout
        self.readTimeout = readTimeout
        self.maxConnections = maxConnections
        self.maxLayerSize = maxLayerSize
        self.restartRequired = restartRequired
    }

    enum CodingKeys: String, CodingKey {
        case logLevel = "log_level"
        case maxDepth = "max_depth"
        case overlayOptions = "overlay_options"
        case idleTimeout = "idle_timeout"
        case readTimeout = "read_timeout"
        case maxConnections = "max_connections"
        case maxLayerSize = "max_layer_size"
        case restartRequired = "restart_required"
    }
}

/// Answer to `GET /v1/status`.
public struct StatusResponse: Sendable, Equatable, Codable {
    public var version: String
    public var root: String
    /// File system type of the state root (`ext4`, `xfs`, `btrfs`, ...).
    public var rootFilesystem: String
    public var socket: String
    /// The gRPC socket containerd connects to; nil when it is disabled.
    public var grpcSocket: String?
    /// Snapshots of every namespace.
    public var snapshots: KindCounts
    /// Snapshots of each namespace that has any, by name.
    public var namespaces: [String: KindCounts]
    /// Live mounts the daemon made.
    public var mounts: Int
    /// Largest number of lower layers a prepare or view may stack.
    public var maxDepth: Int
    /// Longest chain of committed layers present.
    public var deepestChain: Int
    public var overlay: OverlayFeatureReport
    public var uptimeSeconds: Double

    public init(
        version: String, root: String, rootFilesystem: String, socket: String, grpcSocket: String?,
        snapshots: KindCounts, namespaces: [String: KindCounts], mounts: Int, maxDepth: Int, deepestChain: Int,
        overlay: OverlayFeatureReport, uptimeSeconds: Double
    ) {
        self.version = version
        self.root = root
        self.rootFilesystem = rootFilesystem
        self.socket = socket
        self.grpcSocket = grpcSocket
        self.snapshots = snapshots
        self.namespaces = namespaces
        self.mounts = mounts
        self.maxDepth = maxDepth
        self.deepestChain = deepestChain
        self.overlay = overlay
        self.uptimeSeconds = uptimeSeconds
    }

    enum CodingKeys: String, CodingKey {
        case version, root, socket, snapshots, namespaces, mounts, overlay
        case rootFilesystem = "root_filesystem"
        case grpcSocket = "grpc_socket"
        case maxDepth = "max_depth"
        case deepestChain = "deepest_chain"
        case uptimeSeconds = "uptime_seconds"
    }

    /// Every field is written, `grpc_socket` as null when the socket is disabled.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encode(root, forKey: .root)
        try c.encode(rootFilesystem, forKey: .rootFilesystem)
        try c.encode(socket, forKey: .socket)
        try c.encode(grpcSocket, forKey: .grpcSocket)
        try c.encode(snapshots, forKey: .snapshots)
        try c.encode(namespaces, forKey: .namespaces)
        try c.encode(mounts, forKey: .mounts)
        try c.encode(maxDepth, forKey: .maxDepth)
        try c.encode(deepestChain, forKey: .deepestChain)
        try c.encode(overlay, forKey: .overlay)
        try c.encode(uptimeSeconds, forKey: .uptimeSeconds)
    }
}

/// Body of every error answer: `{"error": {"code", "message"}}`.
public struct ErrorResponse: Sendable, Equatable, Codable {
    public struct Body: Sendable, Equatable, Codable {
        public var code: String
        public var message: String
        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }
    }

    public var error: Body
    public init(code: String, message: String) { self.error = Body(code: code, message: message) }
}

/// Answer to `GET /v1/mounts`.
public struct LiveMountsResponse: Sendable, Equatable, Codable {
    public var mounts: [LiveMount]
    public init(mounts: [LiveMount]) { self.mounts = mounts }
}

/// Overlay features of the running kernel, probed at start-up.
public struct OverlayFeatureReport: Sendable, Equatable, Codable {
    /// `fsopen`/`fsconfig` with `lowerdir+` (Linux 6.8 and later).
    public var newMountAPI: Bool
    public var index: Bool
    public var metacopy: Bool
    public var redirectDir: Bool
    public var userxattr: Bool
    /// Whether the state root's file system reports d_type (overlayfs requires it).
    public var dType: Bool

    public init(newMountAPI: Bool, index: Bool, metacopy: Bool, redirectDir: Bool, userxattr: Bool, dType: Bool) {
        self.newMountAPI = newMountAPI
        self.index = index
        self.metacopy = metacopy
        self.redirectDir = redirectDir
        self.userxattr = userxattr
        self.dType = dType
    }

    enum CodingKeys: String, CodingKey {
        case index, metacopy, userxattr
        case newMountAPI = "new_mount_api"
        case redirectDir = "redirect_dir"
        case dType = "d_type"
    }
}

/// Answer to `PUT /v1/snapshots/{key}/layer`: what the applied layer measured.
public struct LayerAppliedResponse: Sendable, Equatable, Codable {
    /// `sha256:` digest of the bytes received.
    public var digest: String
    /// `sha256:` digest of the uncompressed tar.
    public var diffID: String
    /// Bytes received.
    public var size: Int64
    /// Bytes of the uncompressed tar.
    public var uncompressedSize: Int64
    /// Entries of the tar.
    public var entries: Int

    public init(digest: String, diffID: String, size: Int64, uncompressedSize: Int64, entries: Int) {
        self.digest = digest
        self.diffID = diffID
        self.size = size
        self.uncompressedSize = uncompressedSize
        self.entries = entries
    }

    enum CodingKeys: String, CodingKey {
        case digest
        case diffID = "diff_id"
        case size
        case uncompressedSize = "uncompressed_size"
        case entries
    }
}

/// Answer to `GET /v1/snapshots/{key}/changes`.
public struct ChangesResponse: Sendable, Equatable, Codable {
    public var changes: [LayerChange]
    public init(changes: [LayerChange]) { self.changes = changes }
}

/// Answer to `POST /v1/snapshots/{key}/revert`.
public struct RevertResponse: Sendable, Equatable, Codable {
    /// The paths that had changes, in the order asked.
    public var reverted: [String]
    public init(reverted: [String]) { self.reverted = reverted }
}
