import VeneerCore

// Request bodies of the HTTP API (v1). `api/openapi.yaml` is the contract; these types
// follow it field for field.

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

/// `POST /v1/snapshots/{key}/revert`
public struct RevertRequest: Sendable, Equatable, Codable {
    /// Absolute, normalized paths in the snapshot's root file system; `/` for all.
    public var paths: [String]

    public init(paths: [String]) {
        self.paths = paths
    }

    enum CodingKeys: String, CodingKey { case paths }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownFields(["paths"], in: "the revert request")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        paths = try c.decode([String].self, forKey: .paths)
    }
}
