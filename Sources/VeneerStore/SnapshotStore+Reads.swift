import Foundation
import GRDB
import Synchronization
import VeneerCore
import VeneerJSON

extension SnapshotStore {
    /// The snapshot `key` of `namespace`, from the in-memory index (what the last
    /// committed write left).
    public func record(_ key: String, in namespace: Namespace = .default) -> SnapshotRecord? {
        let name = SnapshotName(namespace, key)
        return index.withLock { $0.byName[name] }
    }

    /// Ids of the ancestors of snapshot `id`, nearest first (the snapshot itself not
    /// included): what an overlay's lower layers are made of.
    public func ancestorIDs(of id: Int64) -> [Int64] {
        index.withLock { index in
            var ids: [Int64] = []
            ids.reserveCapacity((index.depthByID[id] ?? 1) - 1)
            var next = index.parentByID[id]
            while let parent = next {
                ids.append(parent)
                next = index.parentByID[parent]
            }
            return ids
        }
    }

    /// Every snapshot of `namespace`, oldest first.
    public func list(in namespace: Namespace = .default) async throws(VeneerError) -> [SnapshotRecord] {
        let records = index.withLock { $0.byName.values.filter { $0.namespace == namespace } }
        // Sort positions rather than the (large) records themselves.
        return records.indices.sorted { records[$0].id < records[$1].id }.map { records[$0] }
    }

    /// Snapshots of each kind, by namespace; a namespace without snapshots is absent.
    public func counts() async throws(VeneerError) -> [Namespace: KindCounts] {
        index.withLock { index in
            var counts: [Namespace: KindCounts] = [:]
            for record in index.byName.values {
                switch record.kind {
                case .active: counts[record.namespace, default: KindCounts()].active += 1
                case .view: counts[record.namespace, default: KindCounts()].view += 1
                case .committed: counts[record.namespace, default: KindCounts()].committed += 1
                }
            }
            return counts
        }
    }

    /// Length of the chain of `key` (itself included), or nil when it does not exist.
    public func depth(_ key: String, in namespace: Namespace = .default) async throws(VeneerError) -> Int? {
        let name = SnapshotName(namespace, key)
        return index.withLock { index in index.byName[name].flatMap { index.depthByID[$0.id] } }
    }

    /// Longest chain of committed snapshots present.
    public func deepestChain() async throws(VeneerError) -> Int {
        index.withLock { index in
            var deepest = 0
            for record in index.byName.values where record.kind == .committed {
                deepest = max(deepest, index.depthByID[record.id] ?? 0)
            }
            return deepest
        }
    }

    public func allIDs() async throws(VeneerError) -> Set<Int64> {
        index.withLock { Set($0.nameByID.keys) }
    }

    /// A query that proves the database answers (used by health checks).
    public func ping() async throws(VeneerError) {
        _ = try await read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }
}
