import Crypto
import Logging
import Synchronization
import VeneerCore
import VeneerOS
import VeneerStore

/// What applying a layer measured: the digest of the bytes received, the diff ID (the
/// digest of the uncompressed tar), both sizes and the number of entries.
public struct LayerApplied: Sendable, Equatable {
    public var digest: String
    public var diffID: String
    public var size: Int64
    public var uncompressedSize: Int64
    public var entries: Int
}

extension Snapshotter {
    /// Applies an OCI layer, read from `source` (blocking; an empty array at its end),
    /// to the active snapshot `key`, whose own layer must still be empty and which must
    /// not be mounted. All or nothing: the entries go into a staging directory, which
    /// replaces the snapshot's empty `fs` only when the whole stream was read, checked
    /// and written to disk; on any failure the layer stays empty.
    ///
    /// `digest` and `diffID`, when given, must match what was received; `maxSize`
    /// (by default the `maxLayerSize` setting) limits the bytes received and the bytes
    /// of the uncompressed tar.
    public func applyLayer(
        key: String, in namespace: Namespace = .default, compression: LayerCompression,
        digest expectedDigest: String? = nil, diffID expectedDiffID: String? = nil, maxSize: Int64? = nil,
        userXattr: Bool = false, source: @escaping @Sendable () throws -> [UInt8]
    ) async throws(VeneerError) -> LayerApplied {
        try Rules.validateKey(key)
        for (name, value) in [("digest", expectedDigest), ("diff_id", expectedDiffID)] {
            if let value { try Self.validateDigest(value, name: name) }
        }
        guard let record = store.record(key, in: namespace) else { throw Lifecycle.notFound(key) }
        guard record.kind == .active else {
            throw .failedPrecondition(
                "snapshot \(quoted(key)) is \(record.kind.rawValue); layers are applied to active snapshots (prepare one on the parent, apply, then commit it)")
        }
        guard claims.claimAlone(record.id) else {
            let what = claims.isClaimedAlone(record.id) ? "a layer is already being applied to it" : "it is being committed, removed or mounted"
            throw .failedPrecondition("snapshot \(quoted(key)) is busy: \(what); try again once that is done")
        }
        defer { claims.release(record.id) }
        // A commit or remove may have finished between the look-up and the claim.
        guard let claimedRecord = store.record(key, in: namespace), claimedRecord.id == record.id,
            claimedRecord.kind == .active
        else {
            throw .failedPrecondition(
                "snapshot \(quoted(key)) was committed or removed while the layer was about to be applied; the layer was not applied")
        }
        let mounts = try await store.mounts(key: key, in: namespace)
        if !mounts.isEmpty {
            throw .failedPrecondition(
                "snapshot \(quoted(key)) is mounted at \(mounts.map(\.target).joined(separator: ", ")); unmount it before applying a layer (layers must not change under a live overlay)")
        }
        let maxSize = maxSize ?? maxLayerSize
        let staging = layout.staging + "/" + stagingName(prefix: "applying")
        defer { forgetStaging(staging) }
        let applied = try await blockingOperation { () throws(VeneerError) -> LayerApplied in
            do throws(VeneerError) {
                return try self.applyBlocking(
                    record, staging: staging, compression: compression, expectedDigest: expectedDigest,
                    expectedDiffID: expectedDiffID, maxSize: maxSize, userXattr: userXattr, source: source)
            } catch {
                _ = try? FileSystem.removeTree(staging)
                throw error
            }
        }
        logger.info(
            "applied a layer",
            metadata: [
                "namespace": "\(namespace)", "snapshot.key": "\(key)", "digest": "\(applied.digest)",
                "entries": "\(applied.entries)", "bytes": "\(applied.uncompressedSize)",
            ])
        return applied
    }

    private func applyBlocking(
        _ record: SnapshotRecord, staging: String, compression: LayerCompression, expectedDigest: String?,
        expectedDiffID: String?, maxSize: Int64?, userXattr: Bool, source: @escaping @Sendable () throws -> [UInt8]
    ) throws(VeneerError) -> LayerApplied {
        let key = record.key
        let dirs = layout.directories(record.id)
        try refuseIfLayerIsInUse(record, doing: "applying a layer")
        let target: Descriptor
        let lowers: [Descriptor]
        let stage: Descriptor
        do {
            target = try Descriptor.openDirectory(dirs.fs)
            guard try target.entries().isEmpty else {
                throw VeneerError.failedPrecondition(
                    "the layer of snapshot \(quoted(key)) already has content; apply a layer only to a snapshot whose own layer is empty")
            }
            let chain = store.ancestorIDs(of: record.id)
            lowers = try chain.map { try Descriptor.openDirectory(layout.fsDirectory($0)) }
            try FileSystem.makeDirectory(staging, mode: 0o755)
            stage = try Descriptor.openDirectory(staging)
            let owner = try target.status()
            try stage.setOwner(uid: owner.uid, gid: owner.gid)
            try stage.setPermissions(owner.permissions)
        } catch let error as VeneerError {
            throw error
        } catch let error as SystemError {
            throw Self.mapped(error, doing: "cannot prepare to apply a layer to snapshot \(quoted(key))")
        } catch {
            throw .internal("cannot prepare to apply a layer to snapshot \(quoted(key)): \(error)", cause: error)
        }

        var received = SHA256()
        var uncompressed = SHA256()
        let counts = Mutex((received: Int64(0), uncompressed: Int64(0)))
        let limit = maxSize ?? .max
        let limited: LayerReader.Source = {
            let (inBytes, outBytes) = counts.withLock { ($0.received, $0.uncompressed) }
            if inBytes > limit || outBytes > limit { throw LayerTooLarge(limit: limit) }
            return try source()
        }
        let applier = LayerApplier(root: stage, lowers: lowers, userXattr: userXattr)
        do {
            let reader = try LayerReader(
                compression: compression, source: limited,
                compressed: { bytes in
                    received.update(bufferPointer: bytes)
                    counts.withLock { $0.received += Int64(bytes.count) }
                },
                tar: { bytes in
                    uncompressed.update(bufferPointer: bytes)
                    counts.withLock { $0.uncompressed += Int64(bytes.count) }
                })
            while let entry = try reader.next() {
                try applier.apply(entry, from: reader)
                if counts.withLock({ $0.uncompressed > limit }) { throw LayerTooLarge(limit: limit) }
            }
            try reader.drain()
            try applier.finish()
            let entries = reader.entries
            let totals = counts.withLock { $0 }
            if totals.received > limit || totals.uncompressed > limit { throw LayerTooLarge(limit: limit) }
            let applied = LayerApplied(
                digest: Self.text(received.finalize()), diffID: Self.text(uncompressed.finalize()),
                size: totals.received, uncompressedSize: totals.uncompressed, entries: entries)
            if let expectedDigest, expectedDigest != applied.digest {
                throw VeneerError.invalidArgument(
                    "the layer's digest is \(applied.digest), not \(expectedDigest) as asked; the layer of snapshot \(quoted(key)) stays empty")
            }
            if let expectedDiffID, expectedDiffID != applied.diffID {
                throw VeneerError.invalidArgument(
                    "the layer's diff_id is \(applied.diffID), not \(expectedDiffID) as asked; the layer of snapshot \(quoted(key)) stays empty")
            }
            // On disk before it takes the place of the empty layer, which the rename does
            // in one step (a directory replaces an empty one).
            try stage.syncFileSystem()
            try FileSystem.rename(staging, to: dirs.fs)
            try FileSystem.syncDirectory(layout.snapshotDirectory(record.id))
            return applied
        } catch let error as VeneerError {
            throw error
        } catch let error as LayerTooLarge {
            throw .invalidArgument(
                "the layer is larger than max_layer_size (\(error.limit) bytes); the layer of snapshot \(quoted(key)) stays empty")
        } catch let error as LayerReadError {
            if let cause = error.sourceError as? VeneerError { throw cause }
            if error.sourceError is LayerTooLarge {
                throw .invalidArgument(
                    "the layer is larger than max_layer_size (\(limit) bytes); the layer of snapshot \(quoted(key)) stays empty")
            }
            if let cause = error.sourceError {
                throw .unavailable("the layer could not be received: \(cause); the layer of snapshot \(quoted(key)) stays empty")
            }
            throw .invalidArgument("the layer cannot be read: \(error); the layer of snapshot \(quoted(key)) stays empty")
        } catch let error as SystemError {
            if error.errno == SystemError.notEmpty {
                throw .failedPrecondition(
                    "the layer of snapshot \(quoted(key)) got content while the layer was applied; it was not replaced")
            }
            throw Self.mapped(error, doing: "cannot apply a layer to snapshot \(quoted(key))")
        } catch {
            throw .internal("cannot apply a layer to snapshot \(quoted(key)): \(error)", cause: error)
        }
    }

    /// `sha256:` and 64 lowercase hexadecimal digits.
    static func validateDigest(_ value: String, name: String) throws(VeneerError) {
        let hex = value.utf8.dropFirst("sha256:".count)
        guard value.hasPrefix("sha256:"), hex.count == 64,
            hex.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) })
        else {
            throw .invalidArgument("\(name) \(quoted(value)) is not a digest; give sha256: and 64 lowercase hexadecimal digits")
        }
    }

    static func text(_ digest: SHA256.Digest) -> String {
        "sha256:" + digest.map { String(format: "%02x", $0) }.joined()
    }
}

/// The stream went past `max_layer_size`.
struct LayerTooLarge: Error {
    var limit: Int64
}
