import Logging
import Synchronization
import VeneerCore
import VeneerFilter
import VeneerOS
import VeneerStore

extension Snapshotter {
    public func stat(key: String, in namespace: Namespace = .default) async throws(VeneerError) -> SnapshotInfo {
        try Rules.validateKey(key)
        guard let record = store.record(key, in: namespace) else { throw Lifecycle.notFound(key) }
        return record.info
    }

    /// ``stat(key:)`` without suspending, for callers on an event loop: the snapshot
    /// `key`, or nil when the key is invalid or names no snapshot.
    public func lookup(key: String, in namespace: Namespace = .default) -> SnapshotInfo? {
        guard (try? Rules.validateKey(key)) != nil else { return nil }
        return store.record(key, in: namespace)?.info
    }

    /// The snapshots of `namespace` that match every filter, oldest first.
    public func list(filters: [String], in namespace: Namespace = .default) async throws(VeneerError) -> [SnapshotInfo] {
        let filter = try SnapshotFilterSet(parsing: filters)
        let all = try await store.list(in: namespace)
        if filter.isEmpty { return all.map(\.info) }
        // Regular expressions can be slow on hostile patterns; match away from the
        // cooperative pool so one such request cannot stall the others.
        do {
            return try await blocking { all.lazy.map(\.info).filter { filter.matches($0) } }
        } catch {
            throw .internal("filtering failed: \(error)", cause: error)
        }
    }

    public func mounts(key: String, in namespace: Namespace = .default) async throws(VeneerError) -> [Mount] {
        try Rules.validateKey(key)
        guard let record = store.record(key, in: namespace) else { throw Lifecycle.notFound(key) }
        return try await mounts(of: record)
    }

    func mounts(of record: SnapshotRecord) async throws(VeneerError) -> [Mount] {
        try plan(of: record).mounts
    }

    /// The mounts of `record` and the `fs` directories of its ancestors (nearest first)
    /// that its overlay, if any, stacks.
    func plan(of record: SnapshotRecord) throws(VeneerError) -> (mounts: [Mount], lowers: [String]) {
        if record.kind == .committed {
            let mounts = try MountPlan.mounts(
                kind: .committed, key: record.key, own: layout.directories(record.id), lowers: [])
            return (mounts, [])
        }
        var lowers: [String] = []
        if let parent = record.parentID {
            if let chain = lowerChains.withLock({ $0[parent] }) {
                lowers = chain
            } else {
                let ids = store.ancestorIDs(of: record.id)
                lowers.reserveCapacity(ids.count)
                for id in ids { lowers.append(layout.fsDirectory(id)) }
                lowerChains.withLock { chains in
                    if chains.count >= Self.lowerChainsKept { chains.removeAll(keepingCapacity: true) }
                    chains[parent] = lowers
                }
            }
        }
        let mounts = try MountPlan.mounts(
            kind: record.kind, key: record.key, own: layout.directories(record.id), lowers: lowers,
            overlayOptions: overlayOptions)
        return (mounts, lowers)
    }

    public func usage(key: String, in namespace: Namespace = .default) async throws(VeneerError) -> Usage {
        try Rules.validateKey(key)
        guard let record = store.record(key, in: namespace) else { throw Lifecycle.notFound(key) }
        if let usage = record.usage { return usage }
        let fs = layout.directories(record.id).fs
        do {
            let measured = try await blocking { try FileSystem.diskUsage(fs) }
            return Usage(size: measured.bytes, inodes: measured.inodes)
        } catch {
            throw measurementFailed(error, record: record)
        }
    }
}
