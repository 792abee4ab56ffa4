// JSON bodies of the HTTP API (v1), shared by the daemon and its clients.
// `api/openapi.yaml` is the contract; these types follow it field for field.

/// Decoding helper: rejects fields that the type does not know.
public struct AnyCodingKey: CodingKey, Sendable {
    public var stringValue: String
    public var intValue: Int?
    public init(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

extension Decoder {
    /// Throws when the JSON object holds a field outside `known`.
    public func rejectUnknownFields(_ known: Set<String>, in object: String) throws {
        let container = try self.container(keyedBy: AnyCodingKey.self)
        for key in container.allKeys where !known.contains(key.stringValue) {
            throw VeneerError.invalidArgument(
                "unknown field \(quoted(key.stringValue)) in \(object); known fields: \(known.sorted().joined(separator: ", "))")
        }
    }
}

extension KeyedDecodingContainer {
    /// An optional field: nil when it is absent. A null is refused like any other value
    /// of the wrong type (`decodeIfPresent` would take it for an absent field), with a
    /// message that names the field and what it must be.
    func decodeOptional<T: Decodable>(_ type: T.Type, forKey key: Key, mustBe what: String, in object: String) throws -> T? {
        guard contains(key) else { return nil }
        if try decodeNil(forKey: key) {
            throw VeneerError.invalidArgument(
                "field \(key.stringValue) in \(object) must be \(what), not null; leave the field out instead")
        }
        return try decode(type, forKey: key)
    }
}

/// `POST /v1/snapshots`
public struct PrepareRequest: Sendable, Equatable, Codable {
    public var key: String
    public var parent: String?
    /// `active` (default) or `view`.
    public var kind: SnapshotKind?
    public var labels: [String: String]?

    public init(key: String, parent: String? = nil, kind: SnapshotKind? = nil, labels: [String: String]? = nil) {
        self.key = key
        self.parent = parent
        self.kind = kind
        self.labels = labels
    }

    enum CodingKeys: String, CodingKey { case key, parent, kind, labels }
    static let what = "the prepare request"

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownFields(["key", "parent", "kind", "labels"], in: Self.what)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        key = try c.decode(String.self, forKey: .key)
        parent = try c.decodeOptional(String.self, forKey: .parent, mustBe: "a string", in: Self.what)
        kind = try c.decodeOptional(SnapshotKind.self, forKey: .kind, mustBe: "active or view", in: Self.what)
        labels = try c.decodeOptional([String: String].self, forKey: .labels, mustBe: "an object of strings", in: Self.what)
    }
}

/// Answer to `POST /v1/snapshots`.
public struct PrepareResponse: Sendable, Equatable, Codable {
    public var snapshot: SnapshotInfo
    public var mounts: [Mount]

    public init(snapshot: SnapshotInfo, mounts: [Mount]) {
        self.snapshot = snapshot
        self.mounts = mounts
    }
}

/// `POST /v1/snapshots/{key}/commit`
public struct CommitRequest: Sendable, Equatable, Codable {
    public var name: String
    public var labels: [String: String]?

    public init(name: String, labels: [String: String]? = nil) {
        self.name = name
        self.labels = labels
    }

    enum CodingKeys: String, CodingKey { case name, labels }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownFields(["name", "labels"], in: "the commit request")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        labels = try c.decodeOptional(
            [String: String].self, forKey: .labels, mustBe: "an object of strings", in: "the commit request")
    }
}

/// `PATCH /v1/snapshots/{key}`
public struct UpdateRequest: Sendable, Equatable, Codable {
    public var labels: [String: String]
    public var fieldpaths: [String]?

    public init(labels: [String: String], fieldpaths: [String]? = nil) {
        self.labels = labels
        self.fieldpaths = fieldpaths
    }

    enum CodingKeys: String, CodingKey { case labels, fieldpaths }

    public init(from decoder: any Decoder) throws {
        let what = "the update request"
        try decoder.rejectUnknownFields(["labels", "fieldpaths"], in: what)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        labels = try c.decodeOptional([String: String].self, forKey: .labels, mustBe: "an object of strings", in: what) ?? [:]
        fieldpaths = try c.decodeOptional([String].self, forKey: .fieldpaths, mustBe: "an array of strings", in: what)
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
    /// Names of settings (`root`, `socket`) whose new values wait for the next start.
    public var restartRequired: [String]

    public init(
        logLevel: String, maxDepth: Int, overlayOptions: [String], idleTimeout: Int, readTimeout: Int,
        maxConnections: Int, restartRequired: [String]
    ) {
        self.logLevel = logLevel
        self.maxDepth = maxDepth
        self.overlayOptions = overlayOptions
        self.idleTimeout = idleTimeout
        self.readTimeout = readTimeout
        self.maxConnections = maxConnections
        self.restartRequired = restartRequired
    }

    enum CodingKeys: String, CodingKey {
        case logLevel = "log_level"
        case maxDepth = "max_depth"
        case overlayOptions = "overlay_options"
        case idleTimeout = "idle_timeout"
        case readTimeout = "read_timeout"
        case maxConnections = "max_connections"
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
    public var snapshots: KindCounts
    /// Live mounts the daemon made.
    public var mounts: Int
    /// Largest number of lower layers a prepare or view may stack.
    public var maxDepth: Int
    /// Longest chain of committed layers present.
    public var deepestChain: Int
    public var overlay: OverlayFeatureReport
    public var uptimeSeconds: Double

    public init(
        version: String, root: String, rootFilesystem: String, socket: String, snapshots: KindCounts,
        mounts: Int, maxDepth: Int, deepestChain: Int, overlay: OverlayFeatureReport, uptimeSeconds: Double
    ) {
        self.version = version
        self.root = root
        self.rootFilesystem = rootFilesystem
        self.socket = socket
        self.snapshots = snapshots
        self.mounts = mounts
        self.maxDepth = maxDepth
        self.deepestChain = deepestChain
        self.overlay = overlay
        self.uptimeSeconds = uptimeSeconds
    }

    enum CodingKeys: String, CodingKey {
        case version, root, socket, snapshots, mounts, overlay
        case rootFilesystem = "root_filesystem"
        case maxDepth = "max_depth"
        case deepestChain = "deepest_chain"
        case uptimeSeconds = "uptime_seconds"
    }
}

/// Number of snapshots of each kind.
public struct KindCounts: Sendable, Equatable, Codable {
    public var active: Int
    public var view: Int
    public var committed: Int
    public var total: Int { active + view + committed }

    public init(active: Int = 0, view: Int = 0, committed: Int = 0) {
        self.active = active
        self.view = view
        self.committed = committed
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

/// Percent-encoding of a key as one path segment: everything but ASCII letters,
/// digits, `-`, `_` and `~` is encoded, so `.`, `..` and `/` survive any client.
public enum PathSegment {
    public static func encode(_ key: String) -> String {
        var out = ""
        out.reserveCapacity(key.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in key.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            default:
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(UnicodeScalar(hex[Int(byte >> 4)]))
                out.unicodeScalars.append(UnicodeScalar(hex[Int(byte & 0xF)]))
            }
        }
        return out
    }

    /// Strict decoding of a `{key}` path segment: malformed escapes and invalid UTF-8
    /// are errors.
    public static func decode(_ segment: Substring) throws(VeneerError) -> String {
        switch percentDecoded(segment) {
        case .success(let text):
            return text
        case .failure(.malformedEscape):
            throw .invalidArgument("malformed percent-encoding in path segment \(quoted(String(segment)))")
        case .failure(.notUTF8):
            throw .invalidArgument("key in path segment \(quoted(String(segment))) is not valid UTF-8")
        }
    }

    /// Strict decoding of a part of a query string: the name of a parameter
    /// (`parameter` nil) or the value of the parameter `parameter`.
    public static func decodeQuery(_ part: Substring, parameter: String?) throws(VeneerError) -> String {
        switch percentDecoded(part) {
        case .success(let text):
            return text
        case .failure(let failure):
            let what = failure == .malformedEscape ? "has a malformed percent-encoding" : "is not valid percent-encoded UTF-8"
            if let parameter {
                throw .invalidArgument(
                    "query parameter \(parameter) \(what): \(quoted(String(part))); percent-encode each byte of its UTF-8 as %XX")
            }
            throw .invalidArgument(
                "the name of a query parameter \(what): \(quoted(String(part))); percent-encode each byte of its UTF-8 as %XX")
        }
    }

    enum DecodingFailure: Error {
        case malformedEscape
        case notUTF8
    }

    static func percentDecoded(_ part: Substring) -> Result<String, DecodingFailure> {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(part.utf8.count)
        var it = part.utf8.makeIterator()
        func hexValue(_ c: UInt8?) -> UInt8? {
            guard let c else { return nil }
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        while let c = it.next() {
            if c == UInt8(ascii: "%") {
                guard let hi = hexValue(it.next()), let lo = hexValue(it.next()) else { return .failure(.malformedEscape) }
                bytes.append(hi << 4 | lo)
            } else {
                bytes.append(c)
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { return .failure(.notUTF8) }
        return .success(text)
    }
}

// MARK: - Mounts made by the daemon (`/v1/mounts`)

/// `POST /v1/mounts`
public struct MountRequest: Sendable, Equatable, Codable {
    public var key: String
    /// Absolute, normalized path of an existing directory outside the state root.
    public var target: String
    /// Mount an active snapshot read-only (views are always read-only).
    public var readonly: Bool?

    public init(key: String, target: String, readonly: Bool? = nil) {
        self.key = key
        self.target = target
        self.readonly = readonly
    }

    enum CodingKeys: String, CodingKey { case key, target, readonly }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownFields(["key", "target", "readonly"], in: "the mount request")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        key = try c.decode(String.self, forKey: .key)
        target = try c.decode(String.self, forKey: .target)
        readonly = try c.decodeOptional(Bool.self, forKey: .readonly, mustBe: "true or false", in: "the mount request")
    }
}

/// A live mount the daemon made and keeps track of.
public struct LiveMount: Sendable, Equatable, Codable {
    public var key: String
    public var target: String
    public var readonly: Bool
    /// What was mounted at the target.
    public var mounts: [Mount]
    public var mountedAt: Timestamp

    public init(key: String, target: String, readonly: Bool, mounts: [Mount], mountedAt: Timestamp) {
        self.key = key
        self.target = target
        self.readonly = readonly
        self.mounts = mounts
        self.mountedAt = mountedAt
    }

    enum CodingKeys: String, CodingKey {
        case key, target, readonly, mounts
        case mountedAt = "mounted_at"
    }
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
