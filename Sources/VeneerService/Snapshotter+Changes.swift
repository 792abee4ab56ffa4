import VeneerCore
import VeneerOS
import VeneerStore

extension Snapshotter {
    /// The changes of the snapshot `key`'s own layer against its parent, sorted by path
    /// (see ``LayerChanges``). For an active snapshot (mounted or not: the layer is only
    /// read) or a committed one; a view has no layer of its own and no changes.
    public func changes(key: String, in namespace: Namespace = .default) async throws(VeneerError) -> [LayerChange] {
        try Rules.validateKey(key)
        guard let record = store.record(key, in: namespace) else { throw Lifecycle.notFound(key) }
        if record.kind == .view { return [] }
        // No layer is applied while the walk runs.
        try claimShared(record, doing: "list its changes")
        defer { releaseClaim(record) }
        return try await blockingOperation { () throws(VeneerError) -> [LayerChange] in
            do {
                let root = try Descriptor.openDirectory(self.layout.fsDirectory(record.id))
                let lowers = try self.store.ancestorIDs(of: record.id).map {
                    try Descriptor.openDirectory(self.layout.fsDirectory($0))
                }
                var walker = LayerChanges(lowers: lowers)
                return try walker.list(root)
            } catch let error as SystemError where error.isNotFound {
                throw .notFound("snapshot \(quoted(key)) was removed while its changes were listed")
            } catch let error as SystemError {
                throw Self.mapped(error, doing: "cannot list the changes of snapshot \(quoted(key))")
            } catch let error as VeneerError {
                throw error
            } catch {
                throw .internal("cannot list the changes of snapshot \(quoted(key)): \(error)", cause: error)
            }
        }
    }
}
