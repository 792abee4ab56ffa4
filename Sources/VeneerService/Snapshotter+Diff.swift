import Dispatch
import Synchronization
import VeneerCore
import VeneerOS
import VeneerStore

/// A snapshot's changes, ready to be written as an OCI layer: the checks are done and
/// the snapshot is claimed (no layer is applied to it, no path reverted) until
/// ``write(to:)`` returns or the export is dropped.
public final class LayerExport: Sendable {
    public let compression: LayerCompression
    public var mediaType: String { LayerMediaType.name(of: compression) }
    private let snapshotter: Snapshotter
    private let record: SnapshotRecord
    private let claimed = Mutex(true)

    init(snapshotter: Snapshotter, record: SnapshotRecord, compression: LayerCompression) {
        self.snapshotter = snapshotter
        self.record = record
        self.compression = compression
    }

    deinit { release() }

    /// Writes the layer to `sink`, on the calling thread, which it blocks (call it from
    /// neither an event loop nor the cooperative pool). Returns the entries written.
    public func write(to sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws(VeneerError) -> Int {
        defer { release() }
        let key = record.key
        do {
            let layout = snapshotter.layout
            let root = try Descriptor.openDirectory(layout.fsDirectory(record.id))
            let lowers = try snapshotter.store.ancestorIDs(of: record.id).map {
                try Descriptor.openDirectory(layout.fsDirectory($0))
            }
            let writer = try LayerWriter(compression: compression, sink: sink)
            var diff = LayerDiff(lowers: lowers, writer: writer)
            try diff.write(root)
            return diff.entries
        } catch let error as VeneerError {
            throw error
        } catch let error as LayerWriteError {
            if let cause = error.sinkError {
                throw .unavailable("the layer of snapshot \(quoted(key)) could not be sent: \(cause)")
            }
            if let cause = error.fileError { throw Snapshotter.mapped(cause, doing: "cannot export snapshot \(quoted(key))") }
            throw .internal("cannot export snapshot \(quoted(key)): \(error)", cause: error)
        } catch let error as SystemError where error.isNotFound {
            throw .notFound("snapshot \(quoted(key)) was removed while it was exported")
        } catch let error as SystemError {
            throw Snapshotter.mapped(error, doing: "cannot export snapshot \(quoted(key))")
        } catch {
            throw .internal("cannot export snapshot \(quoted(key)): \(error)", cause: error)
        }
    }

    /// Writes the layer into `sink` on a thread of its own and ends the sink with the
    /// outcome: a reader that cancels the sink stops the writing.
    public func start(into sink: BlockingSink) {
        DispatchQueue.global(qos: .userInitiated).async {
            do throws(VeneerError) {
                let entries = try self.write { bytes in try sink.put(Array(bytes)) }
                self.snapshotter.logger.info(
                    "exported a layer",
                    metadata: ["namespace": "\(self.record.namespace)", "snapshot.key": "\(self.record.key)", "entries": "\(entries)"])
                sink.finish()
            } catch {
                self.snapshotter.logger.warning(
                    "a layer export ended early",
                    metadata: ["namespace": "\(self.record.namespace)", "snapshot.key": "\(self.record.key)", "error": "\(error.message)"])
                sink.finish(error)
            }
        }
    }

    private func release() {
        let held = claimed.withLock { held in
            defer { held = false }
            return held
        }
        if held { snapshotter.releaseClaim(record) }
    }
}

extension Snapshotter {
    /// Prepares the export of the snapshot `key`'s own changes as an OCI layer (see
    /// ``LayerDiff``): for a committed snapshot, or an active one that the daemon has
    /// not mounted read-write (its layer could change while it is read).
    public func exportLayer(
        key: String, in namespace: Namespace = .default, compression: LayerCompression
    ) async throws(VeneerError) -> LayerExport {
        try Rules.validateKey(key)
        guard let record = store.record(key, in: namespace) else { throw Lifecycle.notFound(key) }
        switch record.kind {
        case .view:
            throw .failedPrecondition(
                "snapshot \(quoted(key)) is a view, which has no layer of its own; export its parent, or an active or committed snapshot")
        case .active, .committed:
            break
        }
        if record.kind == .active {
            // Alone: no mount (which could write to the layer), apply or revert meanwhile.
            guard claims.claimAlone(record.id) else {
                throw .failedPrecondition(
                    "snapshot \(quoted(key)) is busy: it is being mounted, committed, removed, exported or a layer is applied to it; try again once that is done")
            }
            let writable = try await store.mounts(key: key, in: namespace).filter { !$0.readonly }
            if !writable.isEmpty {
                claims.release(record.id)
                throw .failedPrecondition(
                    "snapshot \(quoted(key)) is mounted read-write at \(writable.map(\.target).joined(separator: ", ")); unmount it (or mount it read-only) before exporting its changes")
            }
        } else {
            try claimShared(record, doing: "export it")
        }
        return LayerExport(snapshotter: self, record: record, compression: compression)
    }
}
