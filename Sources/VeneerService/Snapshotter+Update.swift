import Logging
import Synchronization
import VeneerCore
import VeneerFilter
import VeneerOS
import VeneerStore

extension Snapshotter {
    public func update(
        key: String, labels: [String: String], fieldpaths: [String], in namespace: Namespace = .default
    ) async throws(VeneerError) -> SnapshotInfo {
        try Rules.validateKey(key)
        // Validate field paths before touching the store, so bad input changes nothing.
        _ = try Rules.updatedLabels(current: [:], new: labels, fieldpaths: fieldpaths)
        let record = try await store.updateLabels(key, in: namespace, at: Self.now()) { current in
            try Rules.updatedLabels(current: current, new: labels, fieldpaths: fieldpaths)
        }
        logger.info("updated snapshot labels", metadata: ["namespace": "\(namespace)", "snapshot.key": "\(key)"])
        return record.info
    }
}
