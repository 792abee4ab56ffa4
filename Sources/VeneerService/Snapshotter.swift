import Logging
import Synchronization
import VeneerCore
import VeneerFilter
import VeneerOS
import VeneerStore

/// Names of staging directories in use by prepares in progress.
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
    let store: SnapshotStore
    /// Monotonic time at which the state root was opened, for the uptime.
    let openedAt = SystemClock.monotonicNanoseconds()
    let settings: Mutex<Settings>
    let logger: Logger

    /// What may change while the daemon runs (on reload).
    public struct Settings: Sendable, Equatable {
        /// Largest number of lower layers a prepare or view may stack.
        public var maxDepth: Int
        /// Extra options appended to overlay mounts.
        public var overlayOptions: [String]
        /// Largest layer that may be applied, in bytes received and in bytes of its
        /// uncompressed tar; nil for no limit.
        public var maxLayerSize: Int64?

        public init(maxDepth: Int, overlayOptions: [String], maxLayerSize: Int64? = nil) {
            self.maxDepth = maxDepth
            self.overlayOptions = overlayOptions
            self.maxLayerSize = maxLayerSize
        }
    }

    public var maxDepth: Int { settings.withLock { $0.maxDepth } }
    public var overlayOptions: [String] { settings.withLock { $0.overlayOptions } }
    public var maxLayerSize: Int64? { settings.withLock { $0.maxLayerSize } }

    /// Applies new settings; requests that start afterwards use them.
    public func apply(_ new: Settings) {
        settings.withLock { $0 = new }
    }
    let cleanupGate = AsyncGate()
    /// Staging directories of prepares in progress, which cleanup must not touch.
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
    /// Snapshots a layer is being applied to (alone) and snapshots being committed,
    /// removed or mounted (shared).
    let claims = SnapshotClaims()

    /// The kernel's limit on overlay lower layers.
    public static let kernelMaxDepth = 500

    /// Opens the store under `root` and prepares the directory layout. Does not clean up;
    /// call `cleanup()` once at startup.
    public init(
        root: String, maxDepth: Int = Snapshotter.kernelMaxDepth, overlayOptions: [String] = [],
        maxLayerSize: Int64? = nil, logger: Logger
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
        self.settings = Mutex(Settings(maxDepth: maxDepth, overlayOptions: overlayOptions, maxLayerSize: maxLayerSize))
        self.logger = logger
    }

    static func now() -> Timestamp {
        Timestamp(nanosecondsSinceEpoch: SystemClock.realtimeNanoseconds())
    }

    static func mapped(_ error: SystemError, doing what: String) -> VeneerError {
        if error.isNoSpace {
            return .resourceExhausted("\(what): \(error); free space on the state root")
        }
        return .internal("\(what): \(error)", cause: error)
    }
}
