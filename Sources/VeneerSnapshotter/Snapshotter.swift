import Logging
import Synchronization
import VeneerCore
import VeneerFilter
import VeneerOS
import VeneerStore

/// Names of staging directories in use by creates in progress.
final class StagingNames: Sendable {
    let state = Mutex((sequence: 0, inFlight: Set<String>()))
}

/// Result of removing leftovers from the state root.
public struct CleanupReport: Sendable, Equatable {
    public var removed: Int
    public var reclaimedBytes: Int64
}

/// The snapshot lifecycle: applies the rules, keeps the store and the directories
/// on disk in step, and plans mounts. Every change is durable when a method returns;
/// an interrupted change leaves nothing behind (or a leftover that `cleanup` removes).
public final class Snapshotter: Sendable {
    public let layout: Layout
    public let store: SnapshotStore
    let settings: Mutex<Settings>
    let logger: Logger

    /// What may change while the daemon runs (on reload).
    public struct Settings: Sendable, Equatable {
        /// Largest number of lower layers a prepare or view may stack.
        public var maxDepth: Int
        /// Extra options appended to overlay mounts.
        public var overlayOptions: [String]

        public init(maxDepth: Int, overlayOptions: [String]) {
            self.maxDepth = maxDepth
            self.overlayOptions = overlayOptions
        }
    }

    public var maxDepth: Int { settings.withLock { $0.maxDepth } }
    public var overlayOptions: [String] { settings.withLock { $0.overlayOptions } }

    /// Applies new settings; requests that start afterwards use them.
    public func apply(_ new: Settings) {
        settings.withLock { $0 = new }
    }
    let cleanupGate = AsyncGate()
    /// Staging directories of creates in progress, which cleanup must not touch.
    let stagingNames = StagingNames()
    /// The `fs` directories of committed snapshots' chains (the snapshot first, then its
    /// ancestors), by the snapshot's id: the lower layers of whatever is prepared on it.
    /// A committed snapshot's chain never changes, it cannot be removed while anything
    /// stands on it, and ids are never used again, so an entry never goes stale; the
    /// cache is emptied when it holds ``lowerChainsKept`` chains.
    let lowerChains = Mutex([Int64: [String]]())
    public static let lowerChainsKept = 64
    /// The state root as mount targets are checked against it.
    let stateRoot: PathSafety.StateRoot
    /// Mounts and unmounts of one target take turns.
    let targetLocks = TargetLocks()

    /// The kernel's limit on overlay lower layers.
    public static let kernelMaxDepth = 500

    /// Opens the store under `root` and prepares the directory layout. Does not clean up;
    /// call `cleanup()` once at startup.
    public init(
        root: String, maxDepth: Int = Snapshotter.kernelMaxDepth, overlayOptions: [String] = [], logger: Logger
    ) throws(VeneerError) {
        let layout = Layout(root: root)
        for dir in [layout.root, layout.snapshots, layout.staging, layout.trash] {
            do {
                try FileSystem.makeDirectories(dir, mode: 0o700)
            } catch {
                throw .unavailable("cannot create state directory: \(error); check that the state root is writable")
            }
        }
        self.layout = layout
        do {
            self.stateRoot = try PathSafety.StateRoot(layout.root)
        } catch {
            throw .unavailable("cannot resolve the state root \(layout.root): \(error)")
        }
        self.store = try SnapshotStore(path: layout.database)
        self.settings = Mutex(Settings(maxDepth: maxDepth, overlayOptions: overlayOptions))
        self.logger = logger
    }

    static func now() -> Timestamp {
        Timestamp(nanosecondsSinceEpoch: SystemClock.realtimeNanoseconds())
    }

    static func mapped(_ error: SystemError, doing what: String) -> VeneerError {
        if error.isNoSpace {
            return .resourceExhausted("\(what): \(error); free space on the state root")
        }
        return .internal("\(what): \(error)")
    }

    // MARK: - Create

    /// Prepare (`kind == .active`) or View (`kind == .view`).
    public func create(
        key: String, parent: String?, kind: SnapshotKind, labels: [String: String]
    ) async throws(VeneerError) -> (SnapshotInfo, [Mount]) {
        try Rules.validateKey(key)
        if let parent { try Rules.validateKey(parent, role: "parent") }
        try Rules.validateLabels(labels)
        if kind == .committed {
            throw .invalidArgument("kind must be active or view; committed snapshots come from commit")
        }
        // The chain's depth never changes while the parent exists, so checking it here,
        // before anything touches the disk, is enough.
        let maxDepth = self.maxDepth
        if let parent, let lowers = try await store.depth(parent), lowers > maxDepth {
            throw .failedPrecondition(
                "chain depth \(lowers) exceeds max_depth \(maxDepth): snapshot \(quoted(key)) would stack \(lowers) layers on \(quoted(parent)); flatten the image or raise max_depth (at most \(Self.kernelMaxDepth))")
        }
        // Build the directories under a staging name first, in parallel with other
        // requests; only the rename into place happens inside the store's transaction.
        let layout = self.layout
        let parentRecord = try await parent.asyncFlatMap { parent throws(VeneerError) in try await store.get(parent) }
        let staging = layout.staging + "/" + stagingName()
        do {
            try await blocking {
                try Self.stage(at: staging, kind: kind, parent: parentRecord, layout: layout)
            }
        } catch {
            await discardStaging(staging)
            // The parent was removed (or replaced) while its owner was being copied:
            // answer as if the request had come after that.
            if let parent {
                let current = try await store.get(parent)
                if current?.id != parentRecord?.id {
                    try Lifecycle.checkCreate(key: key, kind: kind, existing: nil, parent: (parent, current?.kind))
                    throw .failedPrecondition("parent snapshot \(quoted(parent)) changed while \(quoted(key)) was being prepared; retry")
                }
            }
            if let error = error as? SystemError {
                throw Self.mapped(error, doing: "cannot create the directories of snapshot \(quoted(key))")
            }
            throw .internal("cannot create the directories of snapshot \(quoted(key)): \(error)")
        }
        let record: SnapshotRecord
        do {
            record = try await store.create(
                NewSnapshot(key: key, kind: kind, parent: parent, labels: labels, created: Self.now())
            ) { id, parentInTransaction, batch in
                // The owner was copied from the parent looked up before staging; make sure
                // the key still names that parent.
                guard parentInTransaction?.id == parentRecord?.id else {
                    throw VeneerError.failedPrecondition(
                        "parent snapshot of \(quoted(key)) changed while it was being prepared; retry")
                }
                try Self.moveIntoPlace(staging: staging, id: id, layout: layout, batch: batch)
            }
        } catch {
            await discardStaging(staging)
            throw error
        }
        // Renamed into place: nothing is left under the staging name.
        forgetStaging(staging)
        logger.info("created snapshot", metadata: ["snapshot.key": "\(key)", "kind": "\(kind.rawValue)", "id": "\(record.id)"])
        let mounts = try await mounts(of: record)
        return (record.info, mounts)
    }

    /// A staging name no other create uses; registered so cleanup leaves it alone.
    private func stagingName() -> String {
        stagingNames.state.withLock { state in
            state.sequence += 1
            let name = "pending-\(SystemClock.monotonicNanoseconds())-\(state.sequence)"
            state.inFlight.insert(name)
            return name
        }
    }

    /// Removes what is left of a staging directory (nothing after a successful rename)
    /// and forgets its name.
    private func discardStaging(_ path: String) async {
        _ = try? await blocking { try FileSystem.removeTree(path) }
        forgetStaging(path)
    }

    private func forgetStaging(_ path: String) {
        let name = String(path.split(separator: "/").last ?? "")
        _ = stagingNames.state.withLock { $0.inFlight.remove(name) }
    }

    /// Makes `<staging>/fs` (0755, owned like the parent's `fs` root) and, for an active
    /// snapshot, `<staging>/work`.
    private static func stage(at staging: String, kind: SnapshotKind, parent: SnapshotRecord?, layout: Layout) throws {
        try FileSystem.makeDirectory(staging, mode: 0o700)
        try FileSystem.makeDirectory(staging + "/fs", mode: 0o755)
        if let parent {
            let owner = try FileSystem.owner(layout.directories(parent.id).fs)
            try FileSystem.setOwner(staging + "/fs", owner)
        }
        if kind == .active {
            try FileSystem.makeDirectory(staging + "/work", mode: 0o700)
        }
    }

    /// Renames the staged directories to `snapshots/<id>`. Runs inside the store's
    /// transaction: if it throws, no row is written; if the transaction does not commit,
    /// the directory is removed again.
    ///
    /// The rename is not fsync'd: the new directories are empty when the create is
    /// answered, so if a power loss takes the rename back, ``recoverDirectories()``
    /// makes them again, empty, at the next start (and cleanup removes the staging
    /// directory). The row, which is fsync'd, is what makes the snapshot exist.
    private static func moveIntoPlace(staging: String, id: Int64, layout: Layout, batch: WriteBatch) throws {
        let final = layout.snapshotDirectory(id)
        do {
            // Ids of rolled-back inserts come round again: clear what such an attempt left.
            try FileSystem.removeTree(final)
            try FileSystem.rename(staging, to: final)
            batch.onRollback { _ = try? FileSystem.removeTree(final) }
        } catch {
            throw mapped(error, doing: "cannot move the directories of snapshot \(id) into place")
        }
    }

    // MARK: - Commit

    public func commit(key: String, name: String, labels: [String: String]) async throws(VeneerError) -> SnapshotInfo {
        try Rules.validateKey(key)
        try Rules.validateKey(name, role: "name")
        try Rules.validateLabels(labels)
        // Check the rules before the (possibly long) usage walk; the store checks again.
        let existing = try await store.get(name)
        let current = try await store.get(key)
        try Lifecycle.checkCommit(name: name, nameTaken: existing?.kind, key: key, kind: current?.kind)
        guard let current else { throw Lifecycle.notFound(key) }
        let dirs = layout.directories(current.id)
        let usage: Usage
        do {
            let measured = try await blocking { try FileSystem.diskUsage(dirs.fs) }
            usage = Usage(size: measured.bytes, inodes: measured.inodes)
        } catch {
            throw await measurementFailed(error, key: key, record: current)
        }
        let record = try await store.commit(
            key: key, name: name, labels: labels, usage: usage, at: Self.now(), expectedID: current.id)
        // The work directory is only needed while the snapshot is active.
        let work = dirs.work
        let logger = self.logger
        _ = try? await blocking {
            do { _ = try FileSystem.removeTree(work) } catch {
                logger.warning("cannot remove work directory of committed snapshot", metadata: ["path": "\(work)", "error": "\(error)"])
            }
        }
        logger.info("committed snapshot", metadata: ["snapshot.key": "\(name)", "from": "\(key)", "id": "\(record.id)"])
        return record.info
    }

    // MARK: - Remove

    public func remove(key: String) async throws(VeneerError) {
        try Rules.validateKey(key)
        if let current = try await store.get(key) { try await refuseIfSomethingIsMountedInside(current) }
        let record = try await store.remove(key)
        let dir = layout.snapshotDirectory(record.id)
        do {
            let kept = try await blocking { try FileSystem.removeTree(dir) }
            if !kept.isEmpty {
                logger.warning(
                    "kept what is mounted inside a removed snapshot; unmount it, then clean up",
                    metadata: ["path": "\(dir)", "mount_points": "\(kept.joined(separator: ", "))"])
            }
        } catch {
            // The row is gone, so the directory is an orphan that cleanup reclaims.
            logger.warning("cannot remove directory of removed snapshot; cleanup will retry",
                metadata: ["path": "\(dir)", "error": "\(error)"])
        }
        logger.info("removed snapshot", metadata: ["snapshot.key": "\(key)", "id": "\(record.id)"])
    }

    /// Refuses to remove a snapshot while anything is mounted inside its directories
    /// (by someone else: the daemon's own mounts are refused by the store): deleting
    /// them would delete through that mount.
    private func refuseIfSomethingIsMountedInside(_ record: SnapshotRecord) async throws(VeneerError) {
        let dir = stateRoot.path + "/snapshots/\(record.id)"
        let inside: [String]
        do {
            inside = try await blocking { try MountTable.current().map(\.target).filter { PathSafety.isLexicallyInside($0, dir) } }
        } catch {
            throw .internal("cannot read the mount table: \(error)")
        }
        if !inside.isEmpty {
            throw .failedPrecondition(
                "snapshot \(quoted(record.key)) has something mounted inside its directory at \(inside.sorted().joined(separator: ", ")); unmount it before removing the snapshot")
        }
    }

    /// A measurement of `record`'s layer failed: not found when the snapshot was
    /// removed meanwhile (its directory went with it), else the failure.
    func measurementFailed(_ error: any Error, key: String, record: SnapshotRecord) async -> VeneerError {
        if let current = try? await store.get(key), current.id == record.id {
            if let error = error as? SystemError {
                return Self.mapped(error, doing: "cannot measure snapshot \(quoted(key))")
            }
            return .internal("cannot measure snapshot \(quoted(key)): \(error)")
        }
        return Lifecycle.notFound(key)
    }

    // MARK: - Reads

    public func stat(key: String) async throws(VeneerError) -> SnapshotInfo {
        try Rules.validateKey(key)
        guard let record = try await store.get(key) else { throw Lifecycle.notFound(key) }
        return record.info
    }

    /// ``stat(key:)`` without suspending, for callers on an event loop: the snapshot
    /// `key`, or nil when the key is invalid or names no snapshot.
    public func lookup(key: String) -> SnapshotInfo? {
        guard (try? Rules.validateKey(key)) != nil else { return nil }
        return store.record(key)?.info
    }

    public func list(filters: [String]) async throws(VeneerError) -> [SnapshotInfo] {
        let filter = try SnapshotFilterSet(parsing: filters)
        let all = try await store.list()
        if filter.isEmpty { return all.map(\.info) }
        // Regular expressions can be slow on hostile patterns; match away from the
        // cooperative pool so one such request cannot stall the others.
        do {
            return try await blocking { all.lazy.map(\.info).filter { filter.matches($0) } }
        } catch {
            throw .internal("filtering failed: \(error)")
        }
    }

    public func update(key: String, labels: [String: String], fieldpaths: [String]) async throws(VeneerError) -> SnapshotInfo {
        try Rules.validateKey(key)
        // Validate field paths before touching the store, so bad input changes nothing.
        _ = try Rules.updatedLabels(current: [:], new: labels, fieldpaths: fieldpaths)
        let record = try await store.updateLabels(key, at: Self.now()) { current in
            try Rules.updatedLabels(current: current, new: labels, fieldpaths: fieldpaths)
        }
        logger.info("updated snapshot labels", metadata: ["snapshot.key": "\(key)"])
        return record.info
    }

    public func mounts(key: String) async throws(VeneerError) -> [Mount] {
        try Rules.validateKey(key)
        guard let record = try await store.get(key) else { throw Lifecycle.notFound(key) }
        return try await mounts(of: record)
    }

    private func mounts(of record: SnapshotRecord) async throws(VeneerError) -> [Mount] {
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

    public func usage(key: String) async throws(VeneerError) -> Usage {
        try Rules.validateKey(key)
        guard let record = try await store.get(key) else { throw Lifecycle.notFound(key) }
        if let usage = record.usage { return usage }
        let fs = layout.directories(record.id).fs
        do {
            let measured = try await blocking { try FileSystem.diskUsage(fs) }
            return Usage(size: measured.bytes, inodes: measured.inodes)
        } catch {
            throw await measurementFailed(error, key: key, record: record)
        }
    }

    public func counts() async throws(VeneerError) -> KindCounts {
        try await store.counts()
    }

    // MARK: - Recovery

    /// Makes again the directories of snapshots whose row survived a power loss but
    /// whose directories did not (their creation is not fsync'd; see
    /// ``moveIntoPlace(staging:id:layout:batch:)``): `fs` (0755, owned like the
    /// parent's `fs`) and, for an active snapshot, `work`. Such directories were empty
    /// when the snapshot was acknowledged, and anything written into them later that
    /// reached the disk would have taken the creation with it. A create renames
    /// `fs` and `work` into place together, so one listing of `snapshots/` tells which
    /// snapshots lost theirs. Runs once at start-up, before the socket opens; returns
    /// the keys of the snapshots it repaired.
    public func recoverDirectories() async throws(VeneerError) -> [String] {
        let records = try await store.list()
        let layout = self.layout
        let logger = self.logger
        do {
            return try await blocking { () throws -> [String] in
                let present = Set(try FileSystem.listDirectory(layout.snapshots))
                var repaired: [String] = []
                // Oldest first, so that a parent is repaired before its children copy its owner.
                for record in records where !present.contains(String(record.id)) {
                    let dirs = layout.directories(record.id)
                    let top = layout.snapshotDirectory(record.id)
                    try FileSystem.makeDirectory(top, mode: 0o700)
                    try FileSystem.makeDirectory(dirs.fs, mode: 0o755)
                    if let parentID = record.parentID {
                        try FileSystem.setOwner(dirs.fs, try FileSystem.owner(layout.directories(parentID).fs))
                    }
                    if record.kind == .active {
                        try FileSystem.makeDirectory(dirs.work, mode: 0o700)
                    }
                    try FileSystem.syncDirectory(top)
                    repaired.append(record.key)
                    logger.warning(
                        "made again the missing directories of a snapshot (lost in a crash before they reached the disk)",
                        metadata: ["snapshot.key": "\(record.key)", "id": "\(record.id)", "kind": "\(record.kind.rawValue)"])
                }
                if !repaired.isEmpty { try FileSystem.syncDirectory(layout.snapshots) }
                return repaired
            }
        } catch let error as SystemError {
            throw Self.mapped(error, doing: "cannot make again the directories of a snapshot")
        } catch {
            throw .internal("cannot make again the directories of a snapshot: \(error)")
        }
    }

}
