import Logging
import VeneerCore
import VeneerOS
import VeneerStore

extension Snapshotter {
    // MARK: - Cleanup

    /// Deletes staging leftovers and snapshot directories that have no row.
    /// Safe to run while serving: orphans are moved aside while writes are paused,
    /// then deleted.
    public func cleanup() async throws(VeneerError) -> CleanupReport {
        // One cleanup at a time: concurrent ones would walk and delete the same trees.
        await cleanupGate.enter()
        do {
            let report = try await cleanupAlone()
            await cleanupGate.leave()
            return report
        } catch {
            await cleanupGate.leave()
            throw error
        }
    }

    private func cleanupAlone() async throws(VeneerError) -> CleanupReport {
        let layout = self.layout
        let moved: [String]
        do {
            let stagingNames = self.stagingNames
            moved = try await store.withWritesPaused { ids in
                // A prepare registers its name before it makes the directory, so reading the
                // names in use after the listing covers every directory the listing saw.
                let staged = try FileSystem.listDirectory(layout.staging)
                let inFlight = stagingNames.state.withLock { $0.inFlight }
                var moved: [String] = []
                var candidates: [(String, String)] = []
                for name in staged where !inFlight.contains(name) {
                    candidates.append((layout.staging + "/" + name, "staging-" + name))
                }
                for name in try FileSystem.listDirectory(layout.snapshots) {
                    if let id = Int64(name), ids.contains(id) { continue }
                    candidates.append((layout.snapshots + "/" + name, "snapshot-" + name))
                }
                for (path, name) in candidates {
                    var target = layout.trash + "/" + name
                    var n = 0
                    while FileSystem.entryType(target) != .missing {
                        n += 1
                        target = layout.trash + "/\(name).\(n)"
                    }
                    do {
                        try FileSystem.rename(path, to: target)
                    } catch let error as SystemError where error.isNotFound {
                        // Gone meanwhile: renamed into place by its prepare, or deleted by
                        // the remove that left it without a row.
                        continue
                    }
                    moved.append(target)
                }
                return moved
            }
        }
        let logger = self.logger
        let report: CleanupReport
        do {
            // Emptying the trash is one hand-off to a thread that may block, however many
            // leftovers there are: containerd's garbage collector waits for it.
            report = try await blocking { () throws -> CleanupReport in
                var report = CleanupReport(removed: 0, reclaimedBytes: 0)
                let leftovers = try FileSystem.listDirectory(layout.trash).map { layout.trash + "/" + $0 }
                // Also empties trash left by an earlier, interrupted cleanup.
                for path in Set(moved + leftovers).sorted() {
                    let freed = try FileSystem.diskUsage(path).bytes
                    let kept = try FileSystem.removeTree(path)
                    if !kept.isEmpty {
                        // Never deleted through a mount: what holds it stays in trash until unmounted.
                        logger.warning(
                            "kept a leftover in trash: something is mounted inside it; unmount it and clean up again",
                            metadata: ["path": "\(path)", "mount_points": "\(kept.joined(separator: ", "))"])
                        continue
                    }
                    report.removed += 1
                    report.reclaimedBytes += freed
                    logger.info("removed leftover", metadata: ["path": "\(path)", "bytes": "\(freed)"])
                }
                return report
            }
        } catch let error as SystemError {
            throw Self.mapped(error, doing: "cleanup failed")
        } catch {
            throw .internal("cleanup failed: \(error)", cause: error)
        }
        return report
    }
}
