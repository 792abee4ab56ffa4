import Logging
import Synchronization
import VeneerCore
import VeneerFilter
import VeneerOS
import VeneerStore

extension Snapshotter {
    /// Commits the active snapshot `key` of `namespace` as `name`, in the same namespace.
    public func commit(
        key: String, name: String, labels: [String: String], in namespace: Namespace = .default
    ) async throws(VeneerError) -> SnapshotInfo {
        try Rules.validateKey(key)
        try Rules.validateKey(name, role: "name")
        try Rules.validateLabels(labels)
        // Check the rules before the (possibly long) usage walk; the store checks again.
        let existing = store.record(name, in: namespace)
        let current = store.record(key, in: namespace)
        try Lifecycle.checkCommit(name: name, nameTaken: existing?.kind, key: key, kind: current?.kind)
        guard let current else { throw Lifecycle.notFound(key) }
        try claimShared(current, doing: "commit it")
        defer { releaseClaim(current) }
        // The walk, the transaction (run here when no other is running) and the removal
        // of the work directory, on one thread that may block.
        let record = try await blockingOperation { () throws(VeneerError) -> SnapshotRecord in
            try self.measureAndCommit(current, name: name, labels: labels)
        }
        logger.info("committed snapshot", metadata: ["namespace": "\(namespace)", "snapshot.key": "\(name)", "from": "\(key)", "id": "\(record.id)"])
        return record.info
    }

    private func measureAndCommit(
        _ current: SnapshotRecord, name: String, labels: [String: String]
    ) throws(VeneerError) -> SnapshotRecord {
        let dirs = layout.directories(current.id)
        let usage: Usage
        do {
            let measured = try FileSystem.diskUsage(dirs.fs)
            usage = Usage(size: measured.bytes, inodes: measured.inodes)
        } catch {
            throw measurementFailed(error, record: current)
        }
        let record = try store.commitBlocking(
            key: current.key, name: name, labels: labels, usage: usage, at: Self.now(), expectedID: current.id,
            in: current.namespace)
        // The work directory is only needed while the snapshot is active.
        do { _ = try FileSystem.removeTree(dirs.work) } catch {
            logger.warning("cannot remove work directory of committed snapshot", metadata: ["path": "\(dirs.work)", "error": "\(error)"])
        }
        return record
    }
}
