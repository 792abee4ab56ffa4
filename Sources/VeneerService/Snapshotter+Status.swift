import VeneerCore
import VeneerOS

/// What the service says about itself. `GET /v1/status` and systemd's STATUS= line are
/// both made from it.
public struct ServiceStatus: Sendable, Equatable {
    /// Snapshots of every namespace.
    public var snapshots: KindCounts
    /// Snapshots of each namespace that has any.
    public var namespaces: [Namespace: KindCounts]
    /// Live mounts the daemon made.
    public var mounts: Int
    /// Largest number of lower layers a prepare or view may stack.
    public var maxDepth: Int
    /// Longest chain of committed layers present.
    public var deepestChain: Int
    /// Seconds since the service opened its state root.
    public var uptimeSeconds: Double

    /// One line: `142 snapshots (12 active, 3 views), 4 mounts, deepest chain 37/500`.
    public var summary: String {
        "\(snapshots.total) snapshots (\(snapshots.active) active, \(snapshots.view) views), \(mounts) mounts, "
            + "deepest chain \(deepestChain)/\(maxDepth)"
    }
}

extension Snapshotter {
    public func status() async throws(VeneerError) -> ServiceStatus {
        let namespaces = try await store.counts()
        var total = KindCounts()
        for counts in namespaces.values {
            total.active += counts.active
            total.view += counts.view
            total.committed += counts.committed
        }
        return ServiceStatus(
            snapshots: total, namespaces: namespaces, mounts: try await store.mounts().count, maxDepth: maxDepth,
            deepestChain: try await store.deepestChain(),
            uptimeSeconds: Double(SystemClock.monotonicNanoseconds() - openedAt) / 1e9)
    }

    /// A round trip to the metadata database, for the watchdog.
    public func ping() async throws(VeneerError) {
        try await store.ping()
    }
}
