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
        let dirs = layout.directories(current.id)
        let usage: Usage
        do {
            let measured = try await blocking { try FileSystem.diskUsage(dirs.fs) }
            usage = Usage(size: measured.bytes, inodes: measured.inodes)
        } catch {
            throw await measurementFailed(error, record: current)
        }
        let record = try await store.commit(
            key: key, name: name, labels: labels, usage: usage, at: Self.now(), expectedID: current.id,
            in: namespace)
        // The work directory is only needed while the snapshot is active.
        let work = dirs.work
        let logger = self.logger
        _ = try? await blocking {
            do { _ = try FileSystem.removeTree(work) } catch {
                logger.warning("cannot remove work directory of committed snapshot", metadata: ["path": "\(work)", "error": "\(error)"])
            }
        }
        logger.info("committed snapshot", metadata: ["namespace": "\(namespace)", "snapshot.key": "\(name)", "from": "\(key)", "id": "\(record.id)"])
        return record.info
    }
}
