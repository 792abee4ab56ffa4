/// A live mount the daemon made and keeps track of.
public struct LiveMount: Sendable, Equatable {
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
}
