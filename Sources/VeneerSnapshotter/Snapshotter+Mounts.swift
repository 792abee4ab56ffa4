import Logging
import VeneerCore
import VeneerOS
import VeneerStore

extension Snapshotter {
    // MARK: - Mounts made by the daemon

    /// Mounts the snapshot `key` at `target`. The mount is recorded before it is made
    /// visible, so a crash in between leaves a record that start-up reconciliation drops,
    /// never a mount the daemon does not know about. The target checks and the mount run
    /// on the calling thread, which they block (call it from neither an event loop nor
    /// the cooperative pool: see `blockingOperation`); the record is written by the
    /// store's writer meanwhile.
    public func mountBlocking(key: String, target: String, readonly: Bool) throws(VeneerError) -> MadeMount {
        try Rules.validateKey(key)
        let record = store.record(key)
        // Planned here; a failure is reported after the target checks, which come first.
        let planned = Result { () throws(VeneerError) -> (SnapshotRecord, [Mount], lowers: [String]) in
            guard let record else { throw Lifecycle.notFound(key) }
            let plan = try self.plan(of: record)
            return (record, plan.mounts, plan.lowers)
        }
        let readonly = readonly || record?.kind == .view
        try claim(target)
        defer { release(target) }
        let opened: MountTarget
        do {
            opened = try PathSafety.openMountTarget(target, root: stateRoot)
        } catch {
            // A target of ours is a bind mount of the state root: say what it is instead.
            if case .insideRoot = error { try store.refuseIfMountTarget(target) }
            throw .invalidArgument("\(error); choose an existing directory outside the state root")
        }
        let (snapshot, mounts, lowers) = try planned.get()
        let recording = try store.recordMount(
            of: snapshot, target: target, readonly: readonly, mounts: mounts, at: Self.now()
        ) { siblings throws(VeneerError) in
            if snapshot.kind == .active, !siblings.isEmpty, !readonly || siblings.contains(where: { !$0.readonly }) {
                let targets = siblings.map(\.target).sorted().joined(separator: ", ")
                throw .failedPrecondition(
                    "active snapshot \(quoted(key)) is already mounted at \(targets); an active snapshot can be mounted at several targets only when every mount is read-only")
            }
        }
        // While the record is written, the mounts are prepared as far as they can be
        // without showing anywhere (an overlay through the new mount API: its layers
        // and super block). They are attached only once the record is committed.
        var prepared: [PreparedMount] = []
        var failure: (any Error)?
        for mount in mounts where failure == nil {
            do {
                // An overlay's layers are handed over as planned, not parsed back out
                // of its lowerdir option.
                prepared.append(
                    try Mounter.prepare(
                        MountSpec(
                            type: mount.type, source: mount.source, options: mount.options,
                            lowerDirectories: mount.type == "overlay" ? lowers : nil),
                        at: opened, readOnly: readonly))
            } catch {
                failure = error
            }
        }
        let recorded = try recording.wait()
        do {
            if let failure { throw failure }
            for mount in prepared { try mount.attach() }
        } catch {
            _ = try? store.removeMounts([target])
            throw Self.mountFailure(error, key: key, target: target)
        }
        logger.info("mounted snapshot", metadata: ["snapshot.key": "\(key)", "target": "\(target)", "readonly": "\(readonly)"])
        return MadeMount(live: recorded.record.live, mountsJSON: recorded.mountsJSON)
    }

    /// A mount just made: what it is, and its mounts' JSON as recorded, which an answer
    /// can reuse instead of writing it again.
    public struct MadeMount: Sendable {
        public let live: LiveMount
        public let mountsJSON: [UInt8]
    }

    private static func mountFailure(_ error: any Error, key: String, target: String) -> VeneerError {
        guard let error = error as? SystemError else {
            return .internal("cannot mount snapshot \(quoted(key)) at \(target): \(error)")
        }
        if error.isPathProblem {
            return .invalidArgument(
                "cannot mount snapshot \(quoted(key)) at \(target): \(error); the target changed while it was being mounted")
        }
        if error.isNoSpace {
            return .resourceExhausted("cannot mount snapshot \(quoted(key)) at \(target): \(error)")
        }
        return .internal("cannot mount snapshot \(quoted(key)) at \(target): \(error)")
    }

    /// Unmounts a target the daemon mounted and forgets it. `lazy` detaches it even
    /// while it is busy.
    public func unmount(target: String, lazy: Bool) async throws(VeneerError) {
        guard PathSafety.isNormalizedAbsolute(target) else {
            throw .invalidArgument("target \(quoted(target)) must be an absolute, normalized path")
        }
        try claim(target)
        defer { release(target) }
        guard try await store.mount(target: target) != nil else {
            throw .notFound("\(target) is not a mount target of veneerd; see GET /v1/mounts")
        }
        let store = self.store
        let wasMounted = try await blockingOperation { () throws(VeneerError) -> Bool in
            var wasMounted = true
            do throws(SystemError) {
                try Mounter.unmount(target, lazy: lazy)
            } catch where error.isNotMounted || error.isNotFound {
                // Already unmounted behind our back: forgetting it is all that is left to do.
                wasMounted = false
            } catch where error.isBusy {
                throw .failedPrecondition("\(target) is busy: \(error); stop what uses it, or unmount with lazy=true")
            } catch {
                throw .internal("cannot unmount \(target): \(error)")
            }
            try store.removeMounts([target])
            return wasMounted
        }
        if !wasMounted {
            logger.warning("mount target was no longer mounted", metadata: ["target": "\(target)"])
        }
        logger.info("unmounted", metadata: ["target": "\(target)", "lazy": "\(lazy)"])
    }

    public func liveMounts(key: String?) async throws(VeneerError) -> [LiveMount] {
        if let key { try Rules.validateKey(key) }
        return try await store.mounts(key: key).map(\.live)
    }

    /// Drops records of mounts that are gone (unmounted behind the daemon's back, or
    /// never made because of a crash). Never unmounts anything.
    public func reconcileMounts() async throws(VeneerError) -> [String] {
        let records = try await store.mounts()
        if records.isEmpty { return [] }
        let table: [MountEntry]
        do {
            table = try await blocking { try MountTable.current() }
        } catch {
            throw .internal("cannot read the mount table: \(error)")
        }
        let targets = Set(table.map(\.target))
        let gone = records.filter { !targets.contains($0.target) }.map(\.target)
        if !gone.isEmpty {
            let store = self.store
            _ = try await blockingOperation { () throws(VeneerError) in try store.removeMounts(gone) }
            for target in gone {
                logger.warning("dropped the record of a mount that is gone", metadata: ["target": "\(target)"])
            }
        }
        return gone
    }

    private func claim(_ target: String) throws(VeneerError) {
        let claimed = busyTargets.withLock { $0.insert(target).inserted }
        if !claimed {
            throw .unavailable("\(target) is being mounted or unmounted by another request; retry")
        }
    }

    private func release(_ target: String) {
        _ = busyTargets.withLock { $0.remove(target) }
    }
}
