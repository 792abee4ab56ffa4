import Synchronization
import VeneerCore
import VeneerStore

/// Who is working on which snapshot, so that applying a layer has its snapshot to
/// itself: an apply claims its snapshot alone, and commits, removes and mounts share
/// theirs. A claim that cannot be had is refused at once (nothing waits): an apply
/// while anything else works on the snapshot, anything else while an apply runs.
final class SnapshotClaims: Sendable {
    private enum Holder {
        case applying
        case sharing(Int)
    }

    private let holders = Mutex([Int64: Holder]())

    /// Claims snapshot `id` alone; false when it is claimed already.
    func claimAlone(_ id: Int64) -> Bool {
        holders.withLock { holders in
            guard holders[id] == nil else { return false }
            holders[id] = .applying
            return true
        }
    }

    /// Claims snapshot `id` beside other sharers; false while it is claimed alone.
    func claimShared(_ id: Int64) -> Bool {
        holders.withLock { holders in
            switch holders[id] {
            case .applying: return false
            case .sharing(let count): holders[id] = .sharing(count + 1)
            case nil: holders[id] = .sharing(1)
            }
            return true
        }
    }

    /// Whether snapshot `id` is claimed alone.
    func isClaimedAlone(_ id: Int64) -> Bool {
        holders.withLock { holders in
            if case .applying = holders[id] { return true }
            return false
        }
    }

    /// Gives up one claim of snapshot `id`.
    func release(_ id: Int64) {
        holders.withLock { holders in
            switch holders[id] {
            case .sharing(let count) where count > 1: holders[id] = .sharing(count - 1)
            default: holders[id] = nil
            }
        }
    }
}

extension Snapshotter {
    /// Claims `record` for `doing` beside other commits, removes and mounts; refused
    /// while a layer is being applied to it. Call ``releaseClaim(_:)`` when done.
    func claimShared(_ record: SnapshotRecord, doing what: String) throws(VeneerError) {
        guard claims.claimShared(record.id) else {
            throw .failedPrecondition(
                "snapshot \(quoted(record.key)) is busy: a layer is being applied to it, its changes are being exported or its paths reverted; \(what) once that is done")
        }
    }

    func releaseClaim(_ record: SnapshotRecord) {
        claims.release(record.id)
    }
}
