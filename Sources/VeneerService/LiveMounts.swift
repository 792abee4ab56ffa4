import Logging
import VeneerCore
import VeneerOS
import VeneerStore

/// The mounts the daemon makes itself (`/v1/mounts`): made on request, recorded in the
/// store with the kernel's identity of each, unmounted only when the target still leads
/// to that very mount, and reconciled with the kernel's mount table at start-up.
public struct LiveMounts: Sendable {
    let snapshotter: Snapshotter

    private var store: SnapshotStore { snapshotter.store }
    private var stateRoot: PathSafety.StateRoot { snapshotter.stateRoot }
    private var targetLocks: TargetLocks { snapshotter.targetLocks }
    private var logger: Logger { snapshotter.logger }

    /// Mounts the snapshot `key` of `namespace` at `target`. The mount is recorded before it is made
    /// visible, so a crash in between leaves a record that start-up reconciliation drops,
    /// never a mount the daemon does not know about. The target checks and the mount run
    /// on the calling thread, which they block (call it from neither an event loop nor
    /// the cooperative pool: see `blockingOperation`); the record is written by the
    /// store's writer meanwhile.
    public func mountBlocking(
        key: String, target: String, readonly: Bool, in namespace: Namespace = .default
    ) throws(VeneerError) -> MadeMount {
        try Rules.validateKey(key)
        // Mounts and unmounts of one target take turns: the later one sees what the
        // earlier one did and answers accordingly.
        return try targetLocks.withLock(target) { () throws(VeneerError) -> MadeMount in
            try mountLocked(key: key, target: target, readonly: readonly, in: namespace)
        }
    }

    private func mountLocked(
        key: String, target: String, readonly: Bool, in namespace: Namespace
    ) throws(VeneerError) -> MadeMount {
        let record = store.record(key, in: namespace)
        // Held until the mount is attached, so that no layer is applied meanwhile.
        var claimed: SnapshotRecord?
        defer { if let claimed { snapshotter.releaseClaim(claimed) } }
        // Planned here; a failure is reported after the target checks, which come first.
        let planned = Result { () throws(VeneerError) -> (SnapshotRecord, [Mount], lowers: [String]) in
            guard let record else { throw Lifecycle.notFound(key) }
            try snapshotter.claimShared(record, doing: "mount it")
            claimed = record
            let plan = try snapshotter.plan(of: record)
            return (record, plan.mounts, plan.lowers)
        }
        let readonly = readonly || record?.kind == .view
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
            of: snapshot, target: target, readonly: readonly, mounts: mounts, at: Snapshotter.now()
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
                        mount, lowerDirectories: mount.type == "overlay" ? lowers : nil, at: opened,
                        readOnly: readonly))
            } catch {
                failure = error
            }
        }
        let recorded = try recording.wait()
        var identity: MountIdentity?
        do {
            if let failure { throw failure }
            for mount in prepared { identity = try mount.attach() ?? identity }
        } catch {
            _ = try? store.removeMounts([target])
            throw Self.mountFailure(error, key: key, target: target)
        }
        if let identity { store.identifyMount(target: target, mountID: identity.id, device: identity.device) }
        logger.info("mounted snapshot", metadata: ["namespace": "\(namespace)", "snapshot.key": "\(key)", "target": "\(target)", "readonly": "\(readonly)"])
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
            return .internal("cannot mount snapshot \(quoted(key)) at \(target): \(error)", cause: error)
        }
        if error.isPathProblem {
            return .invalidArgument(
                "cannot mount snapshot \(quoted(key)) at \(target): \(error); the target changed while it was being mounted")
        }
        if error.isNoSpace {
            return .resourceExhausted("cannot mount snapshot \(quoted(key)) at \(target): \(error)")
        }
        return .internal("cannot mount snapshot \(quoted(key)) at \(target): \(error)", cause: error)
    }

    /// Unmounts a target the daemon mounted and forgets it. `lazy` detaches it even
    /// while it is busy. Only the mount the daemon made is unmounted, identified by its
    /// kernel mount id: when the target no longer leads to it, nothing is unmounted —
    /// a mount that was moved elsewhere keeps its record, under its new path, and the
    /// request fails naming that path; a mount that is gone is forgotten.
    public func unmount(target: String, lazy: Bool) async throws(VeneerError) {
        guard PathSafety.isNormalizedAbsolute(target) else {
            throw .invalidArgument("target \(quoted(target)) must be an absolute, normalized path")
        }
        let store = self.store
        let targetLocks = self.targetLocks
        let stateRoot = self.stateRoot
        let wasMounted = try await blockingOperation { () throws(VeneerError) -> Bool in
            try targetLocks.withLock(target) { () throws(VeneerError) -> Bool in
                guard let record = store.mountRecord(at: target) else {
                    throw .notFound("\(target) is not a mount target of veneerd; see GET /v1/mounts")
                }
                let expected = try Self.identity(of: record, stateRoot: stateRoot)
                let unmounted: Bool
                do throws(SystemError) {
                    if let expected {
                        unmounted = try Mounter.unmount(target, expected: expected, lazy: lazy)
                    } else {
                        // A record whose mount is not identified: the mount on top at the target.
                        try Mounter.unmount(target, lazy: lazy)
                        unmounted = true
                    }
                } catch where error.isNotMounted || error.isNotFound {
                    // Already unmounted behind our back: forgetting it is all that is left to do.
                    unmounted = false
                } catch where error.isBusy {
                    throw .failedPrecondition("\(target) is busy: \(error); stop what uses it, or unmount with lazy=true")
                } catch {
                    throw .internal("cannot unmount \(target): \(error)", cause: error)
                }
                if !unmounted, let expected {
                    // Moved or covered: throws; gone: forgets the record.
                    try Self.followMoved(record, expected: expected, store: store, stateRoot: stateRoot)
                    return false
                }
                try store.removeMounts([target])
                return unmounted
            }
        }
        if !wasMounted {
            logger.warning("the daemon's mount was no longer at its target; forgot it", metadata: ["target": "\(target)"])
        }
        logger.info("unmounted", metadata: ["target": "\(target)", "lazy": "\(lazy)"])
    }

    /// Which kernel mount `record` is: as noted when it was made, or, for a record
    /// without it, the mount on top at its target when that is one of the snapshot
    /// (see ``matchesRecord(_:_:stateRoot:entries:)``). Nil when neither tells.
    static func identity(of record: MountRecord, stateRoot: PathSafety.StateRoot) throws(VeneerError) -> MountIdentity? {
        if let id = record.mountID, let device = record.device, let identity = MountIdentity(id: id, device: device) {
            return identity
        }
        guard let entries = try? MountTable.current(), let top = MountTable.topEntry(at: record.target, in: entries),
            matchesRecord(top, record, stateRoot: stateRoot, entries: entries)
        else { return nil }
        return MountIdentity(id: UInt64(top.id), deviceMajor: top.deviceMajor, deviceMinor: top.deviceMinor)
    }

    /// Whether a mount table line can be the mount `record` describes: an overlay
    /// whose options name the first layer the record's overlay names, in this state
    /// root, or a bind mount of the very directory of this state root that the record's
    /// bind mount names (another daemon's root on the same file system has directories
    /// of the same names). `entries` is the mount table the line is from.
    static func matchesRecord(
        _ entry: MountEntry, _ record: MountRecord, stateRoot: PathSafety.StateRoot, entries: [MountEntry]
    ) -> Bool {
        guard let mount = record.mounts.first else { return false }
        // The layer paths as they are below the state root (the record may spell the root
        // another way than the kernel, which shows it resolved).
        func belowRoot(_ path: String) -> String? {
            path.range(of: "/snapshots/").map { String(path[$0.lowerBound...]) }
        }
        if mount.type == "overlay" {
            let layers = mount.options.compactMap { option -> String? in
                if option.hasPrefix("upperdir=") { return String(option.dropFirst(9)) }
                if option.hasPrefix("lowerdir=") { return option.dropFirst(9).split(separator: ":").first.map(String.init) }
                return nil
            }
            guard entry.fsType == "overlay", let layer = layers.first, let inRoot = belowRoot(layer) else { return false }
            return entry.optionsName(stateRoot.path + inRoot)
        }
        guard let inRoot = belowRoot(mount.source) else { return false }
        guard let location = stateRoot.fileSystemLocation(of: inRoot, in: entries) else {
            return entry.root.hasSuffix(inRoot)
        }
        return entry.root == location.path && entry.deviceMajor == location.deviceMajor
            && entry.deviceMinor == location.deviceMinor
    }

    /// The mount `expected` of `record` is not at the record's target: when it is
    /// somewhere else now, the record follows it and this throws naming the new place;
    /// when it is covered by another mount, this throws saying so; when it is gone, the
    /// record is dropped.
    private static func followMoved(
        _ record: MountRecord, expected: MountIdentity, store: SnapshotStore, stateRoot: PathSafety.StateRoot
    ) throws(VeneerError) {
        let entries: [MountEntry]
        do {
            entries = try MountTable.current()
        } catch {
            throw .internal("cannot read the mount table: \(error)", cause: error)
        }
        guard let entry = MountTable.entry(of: expected, in: entries) else {
            try store.removeMounts([record.target])
            return
        }
        if entry.target == record.target {
            throw .failedPrecondition(
                "\(record.target) has another mount on top of the one veneerd made for snapshot \(quoted(record.key)); unmount that one first")
        }
        if !isMove(of: record, to: entry, store: store, stateRoot: stateRoot, entries: entries) {
            // The kernel gave the gone mount's id and device to another mount.
            try store.removeMounts([record.target])
            return
        }
        try store.moveMount(from: record.target, to: entry.target)
        throw .failedPrecondition(
            "the mount of snapshot \(quoted(record.key)) made at \(record.target) is now at \(entry.target) (it was moved); unmount it there: DELETE /v1/mounts?target=\(entry.target)")
    }

    /// Whether the mount `entry`, which carries the identity noted in `record` but
    /// stands elsewhere, is the record's mount moved there. The kernel hands out mount
    /// ids and anonymous device numbers again once they are free, so the identity of a
    /// mount that is gone can turn up on a newer one. It is not the record's when a
    /// record of its own target claims it, or when it is not a mount of the record's
    /// layers.
    static func isMove(
        of record: MountRecord, to entry: MountEntry, store: SnapshotStore, stateRoot: PathSafety.StateRoot,
        entries: [MountEntry]
    ) -> Bool {
        store.mountRecord(at: entry.target) == nil
            && matchesRecord(entry, record, stateRoot: stateRoot, entries: entries)
    }

    /// The live mounts of snapshots of `namespace`, of one snapshot or all, ordered by
    /// target.
    public func list(key: String?, in namespace: Namespace = .default) async throws(VeneerError) -> [LiveMount] {
        if let key { try Rules.validateKey(key) }
        return try await store.mounts(key: key, in: namespace).map(\.live)
    }

    /// Brings the records of mounts in line with the kernel's mount table: a record
    /// whose mount is gone (unmounted behind the daemon's back, replaced by another
    /// mount, or never made because of a crash) is dropped; one whose mount was moved
    /// follows it; one made before mounts were identified is identified by the mount
    /// at its target. Never unmounts anything. Returns the targets dropped.
    public func reconcile() async throws(VeneerError) -> [String] {
        let records = try await store.mounts()
        if records.isEmpty { return [] }
        let table: [MountEntry]
        do {
            table = try await blocking { try MountTable.current() }
        } catch {
            throw .internal("cannot read the mount table: \(error)", cause: error)
        }
        var gone: [String] = []
        var moved: [(from: String, to: String)] = []
        var identified: [(target: String, identity: MountIdentity)] = []
        for record in records {
            if let id = record.mountID, let device = record.device, let identity = MountIdentity(id: id, device: device) {
                guard let entry = MountTable.entry(of: identity, in: table) else {
                    gone.append(record.target)
                    continue
                }
                if entry.target != record.target {
                    if Self.isMove(of: record, to: entry, store: store, stateRoot: stateRoot, entries: table) {
                        moved.append((record.target, entry.target))
                    } else {
                        gone.append(record.target)
                    }
                }
            } else if let top = MountTable.topEntry(at: record.target, in: table),
                Self.matchesRecord(top, record, stateRoot: stateRoot, entries: table)
            {
                identified.append(
                    (record.target, MountIdentity(id: UInt64(top.id), deviceMajor: top.deviceMajor, deviceMinor: top.deviceMinor)))
            } else {
                gone.append(record.target)
            }
        }
        let store = self.store
        let dropped = gone
        let followed = moved
        _ = try await blockingOperation { () throws(VeneerError) in
            if !dropped.isEmpty { try store.removeMounts(dropped) }
            // Two records whose mounts both moved onto one target: the first one keeps it.
            for move in followed where store.mountRecord(at: move.to) == nil {
                try store.moveMount(from: move.from, to: move.to)
            }
        }
        for (target, identity) in identified {
            store.identifyMount(target: target, mountID: identity.id, device: identity.device)
        }
        for target in gone {
            logger.warning("dropped the record of a mount that is gone", metadata: ["target": "\(target)"])
        }
        for move in moved {
            logger.warning("the record of a mount follows it to where it was moved", metadata: ["from": "\(move.from)", "to": "\(move.to)"])
        }
        return gone
    }
}

extension Snapshotter {
    /// The mounts the daemon makes itself.
    public var liveMounts: LiveMounts { LiveMounts(snapshotter: self) }
}
