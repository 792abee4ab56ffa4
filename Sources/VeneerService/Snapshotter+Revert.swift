import VeneerCore
import VeneerOS
import VeneerStore

extension Snapshotter {
    /// Reverts `paths` (absolute, normalized; `/` for everything) of the active snapshot
    /// `key`: afterwards the merged view at each path, and below it, is its parent's,
    /// and everything else is unchanged. The snapshot must not be mounted (layers must
    /// not change under a live overlay). Returns the paths that had changes, in the
    /// order given; a path the layer does not touch is left out.
    ///
    /// All paths are checked before anything changes. Each path is reverted whole: what
    /// the layer has there leaves it in one rename (into the trash, emptied before this
    /// returns, or by the next cleanup after a crash), and the change is on disk when
    /// this returns.
    public func revert(
        key: String, paths: [String], in namespace: Namespace = .default
    ) async throws(VeneerError) -> [String] {
        try Rules.validateKey(key)
        if paths.isEmpty {
            throw .invalidArgument("name at least one path to revert, such as \"/etc/passwd\" (\"/\" reverts everything)")
        }
        let components = try paths.map { path throws(VeneerError) in try Self.revertComponents(path) }
        guard let record = store.record(key, in: namespace) else { throw Lifecycle.notFound(key) }
        guard record.kind == .active else {
            throw .failedPrecondition(
                "snapshot \(quoted(key)) is \(record.kind.rawValue); only an active snapshot's changes can be reverted")
        }
        guard claims.claimAlone(record.id) else {
            throw .failedPrecondition(
                "snapshot \(quoted(key)) is busy: a layer is being applied, or it is being committed, removed or mounted; try again once that is done")
        }
        defer { claims.release(record.id) }
        guard let current = store.record(key, in: namespace), current.id == record.id, current.kind == .active else {
            throw .failedPrecondition("snapshot \(quoted(key)) was committed or removed meanwhile; nothing was reverted")
        }
        let mounts = try await store.mounts(key: key, in: namespace)
        if !mounts.isEmpty {
            throw .failedPrecondition(
                "snapshot \(quoted(key)) is mounted at \(mounts.map(\.target).joined(separator: ", ")); unmount it before reverting paths (layers must not change under a live overlay)")
        }
        let reverted = try await blockingOperation { () throws(VeneerError) -> [Int] in
            try self.refuseIfLayerIsInUse(record, doing: "reverting paths")
            return try self.revertBlocking(record, components)
        }
        let names = reverted.map { paths[$0] }
        logger.info(
            "reverted paths", metadata: ["namespace": "\(namespace)", "snapshot.key": "\(key)", "paths": "\(names.count)"])
        return names
    }

    /// The components of an absolute, normalized path; `/` has none.
    static func revertComponents(_ path: String) throws(VeneerError) -> [[UInt8]] {
        guard path.hasPrefix("/") else {
            throw .invalidArgument("path \(quoted(path)) must be absolute, such as \"/etc/passwd\"")
        }
        if path == "/" { return [] }
        let parts = path.utf8.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        for part in parts {
            if part.isEmpty || part.elementsEqual(".".utf8) || part.elementsEqual("..".utf8) || part.contains(0) {
                throw .invalidArgument(
                    "path \(quoted(path)) is not normalized (an empty, \".\" or \"..\" component, a trailing slash or a NUL); give it as /a/b")
            }
        }
        return parts.map { Array($0) }
    }

    /// The indices of the paths that had changes.
    private func revertBlocking(_ record: SnapshotRecord, _ paths: [[[UInt8]]]) throws(VeneerError) -> [Int] {
        let key = record.key
        let opaque = "trusted.overlay.opaque"
        do {
            let root = try Descriptor.openDirectory(layout.fsDirectory(record.id))
            let lowerRoot = try store.ancestorIDs(of: record.id).first.map {
                try Descriptor.openDirectory(layout.fsDirectory($0))
            }
            // Check every path first: its parents in the layer must be plain directories
            // that show the parent's content (not opaque, not replacing something else).
            var plans: [(index: Int, directory: Descriptor, name: [UInt8]?)] = []
            for (index, path) in paths.enumerated() {
                var directory = root
                var walked: [[UInt8]] = []
                var present = true
                for component in path.dropLast() {
                    walked.append(component)
                    guard let status = try directory.status(component) else {
                        present = false
                        break
                    }
                    let shown = "/" + walked.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
                    guard status.type == .directory, !status.isWhiteout else {
                        throw VeneerError.failedPrecondition(
                            "cannot revert \(Self.text(path)) alone: this layer deleted or replaced \(shown); revert \(shown) instead")
                    }
                    directory = try directory.openDirectory(component)
                    if try directory.extendedAttribute(opaque) == Array("y".utf8) {
                        throw VeneerError.failedPrecondition(
                            "cannot revert \(Self.text(path)) alone: this layer replaced the directory \(shown) (it hides the parent's content); revert \(shown) instead")
                    }
                }
                if present { plans.append((index, directory, path.last)) }
            }
            // What the merged view shows changed, to answer which paths had changes (the
            // layer may hold copies that overlayfs made and that change nothing).
            let lowers = try store.ancestorIDs(of: record.id).map { try Descriptor.openDirectory(layout.fsDirectory($0)) }
            var walker = LayerChanges(lowers: lowers)
            let changed = try walker.list(root).map(\.path)
            var reverted: [Int] = []
            for plan in plans {
                let metadataChanged = try revertOne(plan.directory, plan.name, root: root, lowerRoot: lowerRoot, record: record)
                let shown = Self.text(paths[plan.index])
                let prefix = shown == "/" ? "/" : shown + "/"
                if metadataChanged || changed.contains(where: { $0 == shown || $0.hasPrefix(prefix) }) {
                    reverted.append(plan.index)
                }
            }
            try root.syncFileSystem()
            return reverted
        } catch let error as VeneerError {
            throw error
        } catch let error as SystemError {
            throw Self.mapped(error, doing: "cannot revert paths of snapshot \(quoted(key))")
        } catch {
            throw .internal("cannot revert paths of snapshot \(quoted(key)): \(error)", cause: error)
        }
    }

    /// Takes what the layer has at `name` in `directory` out of it (for the root:
    /// everything, and its permissions and owner go back to the parent's), keeping the
    /// directory's modification time; true when the root's own metadata changed.
    private func revertOne(
        _ directory: Descriptor, _ name: [UInt8]?, root: Descriptor, lowerRoot: Descriptor?, record: SnapshotRecord
    ) throws -> Bool {
        let before = try directory.status()
        var changed = false
        var moved = false
        let names: [[UInt8]]
        if let name {
            names = try directory.status(name) == nil ? [] : [name]
        } else {
            names = try directory.entries()
        }
        for entry in names {
            let trash = layout.trash + "/" + stagingName(prefix: "reverted-\(record.id)")
            try directory.move(entry, to: trash)
            do {
                _ = try FileSystem.removeTree(trash)
            } catch {
                logger.warning(
                    "cannot delete what a revert took out of a layer; cleanup will retry",
                    metadata: ["path": "\(trash)", "error": "\(error)"])
            }
            moved = true
        }
        if name == nil, let lower = try lowerRoot?.status() {
            if before.permissions != lower.permissions || before.uid != lower.uid || before.gid != lower.gid {
                try root.setOwner(uid: lower.uid, gid: lower.gid)
                try root.setPermissions(lower.permissions)
                changed = true
            }
        }
        if changed || moved { try directory.setModified(before.modified) }
        return changed
    }

    static func text(_ path: [[UInt8]]) -> String {
        "/" + path.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
    }

    /// Refuses `doing` while the snapshot's layer is in use by a mount the daemon did
    /// not make: an overlay with it as upper directory, a bind mount of it, or anything
    /// mounted inside the snapshot's directory.
    func refuseIfLayerIsInUse(_ record: SnapshotRecord, doing what: String) throws(VeneerError) {
        let dir = stateRoot.path + "/snapshots/\(record.id)"
        let fs = dir + "/fs"
        let users: [String]
        do {
            users = try MountTable.current().filter { entry in
                if PathSafety.isLexicallyInside(entry.target, dir) { return true }
                if entry.fsType == "overlay" {
                    return entry.options.split(separator: ",").contains { $0 == "upperdir=" + fs }
                }
                // A bind mount shows the layer's path relative to its file system's root.
                return entry.root.hasSuffix("/snapshots/\(record.id)/fs") && fs.hasSuffix(entry.root)
            }.map(\.target)
        } catch {
            throw .internal("cannot read the mount table: \(error)", cause: error)
        }
        if !users.isEmpty {
            throw .failedPrecondition(
                "the layer of snapshot \(quoted(record.key)) is in use by a mount at \(users.sorted().joined(separator: ", ")); unmount it before \(what) (layers must not change under a live overlay)")
        }
    }
}
