import Logging
import Synchronization
import VeneerCore
import VeneerFilter
import VeneerOS
import VeneerStore

extension Snapshotter {
    /// Makes again the directories of snapshots whose row survived a power loss but
    /// whose directories did not (their creation is not fsync'd; see
    /// ``moveIntoPlace(staging:id:layout:batch:)``): `fs` (0755, owned like the
    /// parent's `fs`) and, for an active snapshot, `work`. Such directories were empty
    /// when the snapshot was acknowledged, and anything written into them later that
    /// reached the disk would have taken the creation with it. A prepare renames
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
            throw .internal("cannot make again the directories of a snapshot: \(error)", cause: error)
        }
    }
}
