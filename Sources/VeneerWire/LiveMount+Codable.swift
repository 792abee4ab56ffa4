import VeneerCore

/// A live mount as `GET /v1/mounts` and `POST /v1/mounts` write it (`mounted_at` in
/// RFC 3339); the domain type knows nothing of its wire names.
extension LiveMount: Codable {
    enum CodingKeys: String, CodingKey {
        case key, target, readonly, mounts
        case mountedAt = "mounted_at"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            key: try c.decode(String.self, forKey: .key), target: try c.decode(String.self, forKey: .target),
            readonly: try c.decode(Bool.self, forKey: .readonly), mounts: try c.decode([Mount].self, forKey: .mounts),
            mountedAt: try c.decode(Timestamp.self, forKey: .mountedAt))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(key, forKey: .key)
        try c.encode(target, forKey: .target)
        try c.encode(readonly, forKey: .readonly)
        try c.encode(mounts, forKey: .mounts)
        try c.encode(mountedAt, forKey: .mountedAt)
    }
}
