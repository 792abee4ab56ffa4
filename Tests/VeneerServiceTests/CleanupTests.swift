import Foundation
import Testing
import VeneerCore
import VeneerOS
@testable import VeneerService
import VeneerTestSupport

@Suite("Snapshotter cleanup")
struct CleanupTests {
    /// Directories no row owns: a snapshot directory, a staging leftover, junk in the
    /// trash and a name that is no id. `staging` names the staging leftover: a create
    /// that gets that id clears it itself, so concurrent tests pick one no create reaches.
    private func plantOrphans(_ layout: Layout, staging: Int64 = 9) throws {
        try FileSystem.makeDirectories(layout.snapshots + "/12345/fs/deep", mode: 0o755)
        try Disk.write(layout.snapshots + "/12345/fs/deep/file", bytes: 64_000)
        try FileSystem.makeDirectories(layout.staging + "/\(staging)/fs", mode: 0o755)
        try Disk.write(layout.staging + "/\(staging)/fs/half-made", bytes: 8_000)
        try Disk.write(layout.trash + "/junk", bytes: 16_000)
        try FileSystem.makeDirectory(layout.snapshots + "/not-an-id")
    }

    @Test func cleanupRemovesOrphansAndKeepsLiveSnapshots() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        let layout = snapshotter.layout
        try await snapshotter.layer("base")
        _ = try await snapshotter.prepare(key: "a", parent: "base", kind: .active, labels: [:])
        _ = try await snapshotter.prepare(key: "v", parent: nil, kind: .view, labels: [:])
        let a = try await snapshotter.directories("a")
        try Disk.write(a.fs + "/live", bytes: 4_000)
        let live = try Disk.names(layout.snapshots)
        #expect(live.count == 3)
        try plantOrphans(layout)

        let report = try await snapshotter.cleanup()
        #expect(report.removed == 4)
        #expect(report.reclaimedBytes >= 64_000 + 8_000 + 16_000)
        #expect(try Disk.names(layout.snapshots) == live)
        #expect(try Disk.names(layout.staging) == [])
        #expect(try Disk.names(layout.trash) == [])
        #expect(FileSystem.entryType(a.fs + "/live") == .regular)
        #expect(FileSystem.entryType(a.work) == .directory)
        for key in ["base", "a", "v"] {
            #expect(FileSystem.entryType(try await snapshotter.directories(key).fs) == .directory, "\(key)")
        }

        // Nothing left: a second run removes nothing.
        try await snapshotter.expectNothingToClean()
    }

    @Test func cleanupReclaimsTheDirectoryOfARemovedSnapshotLeftBehind() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        _ = try await snapshotter.prepare(key: "a", parent: nil, kind: .active, labels: [:])
        let id = try await snapshotter.id("a")
        // As if the daemon stopped between deleting the row and the directory.
        let kept = tmp.path + "/kept"
        try FileSystem.rename(snapshotter.layout.snapshotDirectory(id), to: kept)
        try await snapshotter.remove(key: "a")
        try FileSystem.rename(kept, to: snapshotter.layout.snapshotDirectory(id))

        let report = try await snapshotter.cleanup()
        #expect(report.removed == 1)
        #expect(try Disk.names(snapshotter.layout.snapshots) == [])
    }

    @Test func cleanupNeverTouchesSnapshotsCreatedConcurrently() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        let layout = snapshotter.layout
        try await snapshotter.layer("base")
        try plantOrphans(layout, staging: 99_999)

        // One cleanup among 50 creates, all started at once. (Concurrent cleanups
        // race each other over the trash; that is not what this test is about.)
        let n = 50
        let (created, reports) = try await withThrowingTaskGroup(of: (String?, CleanupReport?).self) { group in
            for i in 0..<n {
                group.addTask {
                    let kind: SnapshotKind = i % 3 == 0 ? .view : .active
                    let parent: String? = i % 2 == 0 ? "base" : nil
                    let (info, _) = try await snapshotter.prepare(key: "c\(i)", parent: parent, kind: kind, labels: [:])
                    return (info.key, nil)
                }
                if i == n / 2 {
                    group.addTask { (nil, try await snapshotter.cleanup()) }
                }
            }
            var created: [String] = []
            var reports: [CleanupReport] = []
            for try await (key, report) in group {
                if let key { created.append(key) }
                if let report { reports.append(report) }
            }
            return (created, reports)
        }
        #expect(created.count == n)
        #expect(reports.map(\.removed) == [4])

        for key in created {
            let record = try #require(snapshotter.store.record(key))
            let dirs = layout.directories(record.id)
            #expect(FileSystem.entryType(dirs.fs) == .directory, "\(key)")
            #expect(FileSystem.entryType(dirs.work) == (record.kind == .active ? .directory : .missing), "\(key)")
        }
        let ids = try await snapshotter.store.allIDs()
        #expect(try Disk.names(layout.snapshots) == Set(ids.map { "\($0)" }))
        #expect(try Disk.names(layout.staging) == [])
        #expect(try Disk.names(layout.trash) == [])

        // A final cleanup finds nothing to do.
        let last = try await snapshotter.cleanup()
        #expect(last.removed == 0)
    }
}
