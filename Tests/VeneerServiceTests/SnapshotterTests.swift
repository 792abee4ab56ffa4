import Foundation
import Testing
import VeneerCore
import VeneerOS
@testable import VeneerService
import VeneerTestSupport

@Suite("Snapshotter")
struct SnapshotterTests {
    // MARK: - Create

    @Test func layoutIsCreatedOnOpen() throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        let layout = snapshotter.layout
        #expect(layout.root == tmp.root)
        for dir in [layout.root, layout.snapshots, layout.staging, layout.trash] {
            #expect(FileSystem.entryType(dir) == .directory, "\(dir)")
        }
        #expect(FileSystem.entryType(layout.database) == .regular)
        #expect(layout.directories(7) == SnapshotDirectories(fs: tmp.root + "/snapshots/7/fs", work: tmp.root + "/snapshots/7/work"))
    }

    @Test func prepareActiveWithoutParent() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        let (info, mounts) = try await snapshotter.prepare(key: "a", parent: nil, kind: .active, labels: ["l": "v"])
        #expect(info.key == "a" && info.kind == .active && info.parent == nil && info.labels == ["l": "v"])
        let id = try await snapshotter.id("a")
        let dirs = snapshotter.layout.directories(id)
        #expect(try FileSystem.mode(snapshotter.layout.snapshotDirectory(id)) == 0o700)
        #expect(FileSystem.entryType(dirs.fs) == .directory)
        #expect(try FileSystem.mode(dirs.fs) == 0o755)
        #expect(FileSystem.entryType(dirs.work) == .directory)
        #expect(try FileSystem.mode(dirs.work) == 0o700)
        #expect(try Disk.names(snapshotter.layout.snapshotDirectory(id)) == ["fs", "work"])
        #expect(try Disk.names(dirs.fs) == [])
        #expect(try Disk.names(snapshotter.layout.staging) == [])
        #expect(mounts == [Mount(type: "bind", source: dirs.fs, options: ["rw", "rbind"])])
        #expect(try await snapshotter.stat(key: "a") == info)
    }

    @Test func prepareViewWithoutParent() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        let (info, mounts) = try await snapshotter.prepare(key: "v", parent: nil, kind: .view, labels: [:])
        #expect(info.kind == .view)
        let id = try await snapshotter.id("v")
        let dirs = snapshotter.layout.directories(id)
        #expect(try FileSystem.mode(dirs.fs) == 0o755)
        #expect(FileSystem.entryType(dirs.work) == .missing)
        #expect(try Disk.names(snapshotter.layout.snapshotDirectory(id)) == ["fs"])
        #expect(try Disk.names(snapshotter.layout.staging) == [])
        #expect(mounts == [Mount(type: "bind", source: dirs.fs, options: ["ro", "rbind"])])
    }

    @Test(arguments: [SnapshotKind.active, .view])
    func prepareOnAParentTakesTheParentsOwner(kind: SnapshotKind) async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        try await snapshotter.layer("base")
        let base = try await snapshotter.directories("base")
        let owner = FileSystem.Owner(uid: 1234, gid: 5678)
        try FileSystem.setOwner(base.fs, owner)

        let (info, _) = try await snapshotter.prepare(key: "child", parent: "base", kind: kind, labels: [:])
        #expect(info.parent == "base")
        let child = try await snapshotter.directories("child")
        #expect(try FileSystem.owner(child.fs) == owner)
        #expect(try FileSystem.mode(child.fs) == 0o755)
        #expect(FileSystem.entryType(child.work) == (kind == .active ? .directory : .missing))
        #expect(try Disk.names(snapshotter.layout.staging) == [])
    }

    @Test func aFailedMaterializeLeavesNothing() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        try await snapshotter.layer("base")
        let baseID = try await snapshotter.id("base")
        // The parent's layer vanished, so its owner cannot be read for the child.
        try FileSystem.removeTree(snapshotter.layout.directories(baseID).fs)
        let before = try Disk.names(snapshotter.layout.snapshots)
        let counts = try await snapshotter.status().snapshots

        for kind in [SnapshotKind.active, .view] {
            let error = await #expect(throws: VeneerError.self) {
                try await snapshotter.prepare(key: "child", parent: "base", kind: kind, labels: [:])
            }
            #expect(error?.code == .internal)
            #expect(error?.message.contains("No such file or directory") == true)
        }
        #expect(snapshotter.store.record("child") == nil)
        #expect(try await snapshotter.status().snapshots == counts)
        #expect(try Disk.names(snapshotter.layout.snapshots) == before)
        #expect(try Disk.names(snapshotter.layout.staging) == [])
        #expect(try Disk.names(snapshotter.layout.trash) == [])
    }

    @Test func badInputIsRejectedBeforeAnythingIsWritten() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        let attempts: [(String, String?, SnapshotKind, [String: String])] = [
            ("", nil, .active, [:]),
            ("k", "", .active, [:]),
            ("k\u{0}", nil, .view, [:]),
            ("k", nil, .committed, [:]),
            ("k", nil, .active, ["": "v"]),
            ("k", nil, .active, ["n": String(repeating: "x", count: 5000)]),
        ]
        for (key, parent, kind, labels) in attempts {
            let error = await #expect(throws: VeneerError.self) {
                try await snapshotter.prepare(key: key, parent: parent, kind: kind, labels: labels)
            }
            #expect(error?.code == .invalidArgument)
        }
        #expect(try await snapshotter.list(filters: []) == [])
        #expect(try Disk.names(snapshotter.layout.snapshots) == [])
    }

    @Test func prepareRulesComeFromTheStore() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        _ = try await snapshotter.prepare(key: "a", parent: nil, kind: .active, labels: [:])
        let dup = await #expect(throws: VeneerError.self) {
            try await snapshotter.prepare(key: "a", parent: nil, kind: .view, labels: [:])
        }
        #expect(dup?.code == .alreadyExists)
        let orphan = await #expect(throws: VeneerError.self) {
            try await snapshotter.prepare(key: "b", parent: "missing", kind: .active, labels: [:])
        }
        #expect(orphan?.code == .notFound)
        let onActive = await #expect(throws: VeneerError.self) {
            try await snapshotter.prepare(key: "b", parent: "a", kind: .active, labels: [:])
        }
        #expect(onActive?.code == .invalidArgument)
        #expect(try Disk.names(snapshotter.layout.snapshots) == ["\(try await snapshotter.id("a"))"])
    }

    // MARK: - Commit

    @Test func commitRemovesTheWorkDirectoryAndStoresUsage() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        _ = try await snapshotter.prepare(key: "work", parent: nil, kind: .active, labels: ["old": "1"])
        let dirs = try await snapshotter.directories("work")
        try Disk.write(dirs.fs + "/file", bytes: 100_000)
        try FileSystem.makeDirectory(dirs.fs + "/dir")
        try Disk.write(dirs.work + "/scratch", bytes: 10)
        let live = try await snapshotter.usage(key: "work")
        #expect(live.inodes == 3)
        #expect(live.size >= 100_000)

        let info = try await snapshotter.commit(key: "work", name: "layer", labels: ["new": "2"])
        #expect(info.key == "layer" && info.kind == .committed && info.labels == ["new": "2"])
        #expect(try await snapshotter.id("layer") == (snapshotter.store.record("layer"))?.id)
        #expect(FileSystem.entryType(dirs.work) == .missing)
        #expect(FileSystem.entryType(dirs.fs + "/file") == .regular)
        let stored = try #require(snapshotter.store.record("layer")?.usage)
        #expect(stored == live)
        #expect(try await snapshotter.usage(key: "layer") == stored)
        // The usage of a committed layer is the one measured at commit.
        try Disk.write(dirs.fs + "/late", bytes: 50_000)
        #expect(try await snapshotter.usage(key: "layer") == stored)

        let missing = await #expect(throws: VeneerError.self) { try await snapshotter.stat(key: "work") }
        #expect(missing?.code == .notFound)
    }

    @Test func commitFollowsTheRules() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        _ = try await snapshotter.prepare(key: "view", parent: nil, kind: .view, labels: [:])
        _ = try await snapshotter.prepare(key: "active", parent: nil, kind: .active, labels: [:])
        let cases: [(key: String, name: String, code: VeneerError.Code)] = [
            ("view", "n", .failedPrecondition),
            ("missing", "n", .notFound),
            ("missing", "view", .alreadyExists),
            ("active", "view", .alreadyExists),
            ("active", "", .invalidArgument),
        ]
        for (key, name, code) in cases {
            let error = await #expect(throws: VeneerError.self) {
                try await snapshotter.commit(key: key, name: name, labels: [:])
            }
            #expect(error?.code == code, "commit \(key) as \(name)")
        }
        let active = try await snapshotter.directories("active")
        #expect(FileSystem.entryType(active.work) == .directory)
        #expect(try await snapshotter.stat(key: "active").kind == .active)
    }

    // MARK: - Remove

    @Test func removeDeletesTheDirectory() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        _ = try await snapshotter.prepare(key: "a", parent: nil, kind: .active, labels: [:])
        let id = try await snapshotter.id("a")
        try Disk.write(snapshotter.layout.directories(id).fs + "/f", bytes: 1000)
        try await snapshotter.remove(key: "a")
        #expect(FileSystem.entryType(snapshotter.layout.snapshotDirectory(id)) == .missing)
        let error = await #expect(throws: VeneerError.self) { try await snapshotter.stat(key: "a") }
        #expect(error?.code == .notFound)
        let again = await #expect(throws: VeneerError.self) { try await snapshotter.remove(key: "a") }
        #expect(again?.code == .notFound)
    }

    @Test func removeOfAParentIsRefusedAndKeepsItsDirectory() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        try await snapshotter.layer("base")
        _ = try await snapshotter.prepare(key: "child", parent: "base", kind: .view, labels: [:])
        let error = await #expect(throws: VeneerError.self) { try await snapshotter.remove(key: "base") }
        #expect(error?.code == .failedPrecondition)
        #expect(FileSystem.entryType(try await snapshotter.directories("base").fs) == .directory)
        try await snapshotter.remove(key: "child")
        try await snapshotter.remove(key: "base")
        #expect(try Disk.names(snapshotter.layout.snapshots) == [])
    }

    // MARK: - Update

    @Test func updateWithABadFieldPathChangesNothing() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        let (before, _) = try await snapshotter.prepare(key: "a", parent: nil, kind: .active, labels: ["keep": "1"])
        for fieldpaths in [["kind"], ["labels.x", "parent"], ["labels."]] {
            let error = await #expect(throws: VeneerError.self) {
                try await snapshotter.update(key: "a", labels: ["x": "2"], fieldpaths: fieldpaths)
            }
            #expect(error?.code == .invalidArgument, "\(fieldpaths)")
        }
        #expect(try await snapshotter.stat(key: "a") == before)

        let updated = try await snapshotter.update(key: "a", labels: ["x": "2"], fieldpaths: ["labels.x"])
        #expect(updated.labels == ["keep": "1", "x": "2"])
        #expect(updated.updated.nanosecondsSinceEpoch >= before.updated.nanosecondsSinceEpoch)
        #expect(updated.created == before.created)
        let replaced = try await snapshotter.update(key: "a", labels: ["only": "this"], fieldpaths: [])
        #expect(replaced.labels == ["only": "this"])

        let missing = await #expect(throws: VeneerError.self) {
            try await snapshotter.update(key: "nope", labels: [:], fieldpaths: [])
        }
        #expect(missing?.code == .notFound)
    }

    // MARK: - Mounts

    @Test func mountsFollowTheChain() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter(overlayOptions: ["index=off"])
        let (l0, l1, l2) = try await snapshotter.threeLayers()

        let (_, created) = try await snapshotter.prepare(key: "top", parent: "L2", kind: .active, labels: [:])
        let top = try await snapshotter.directories("top")
        let expectedTop = [
            Mount(
                type: "overlay", source: "overlay",
                options: ["workdir=\(top.work)", "upperdir=\(top.fs)", "lowerdir=\(l2):\(l1):\(l0)", "index=off"])
        ]
        #expect(created == expectedTop)
        #expect(try await snapshotter.mounts(key: "top") == expectedTop)

        _ = try await snapshotter.prepare(key: "one", parent: "L0", kind: .active, labels: [:])
        let one = try await snapshotter.directories("one")
        #expect(try await snapshotter.mounts(key: "one") == [
            Mount(
                type: "overlay", source: "overlay",
                options: ["workdir=\(one.work)", "upperdir=\(one.fs)", "lowerdir=\(l0)", "index=off"])
        ])

        _ = try await snapshotter.prepare(key: "view2", parent: "L1", kind: .view, labels: [:])
        #expect(try await snapshotter.mounts(key: "view2") == [
            Mount(type: "overlay", source: "overlay", options: ["lowerdir=\(l1):\(l0)", "index=off"])
        ])
        _ = try await snapshotter.prepare(key: "view1", parent: "L0", kind: .view, labels: [:])
        #expect(try await snapshotter.mounts(key: "view1") == [Mount(type: "bind", source: l0, options: ["ro", "rbind"])])

        let committed = await #expect(throws: VeneerError.self) { try await snapshotter.mounts(key: "L1") }
        #expect(committed?.code == .failedPrecondition)
        let missing = await #expect(throws: VeneerError.self) { try await snapshotter.mounts(key: "none") }
        #expect(missing?.code == .notFound)
    }

    @Test("the chains of lower layers kept in memory follow layers that come and go")
    func lowerChainsFollowChanges() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        let (l0, l1, oldL2) = try await snapshotter.threeLayers()
        func lowerdir(_ key: String) async throws -> String? {
            try await snapshotter.mounts(key: key).first?.options.first { $0.hasPrefix("lowerdir=") }
        }
        // Planned once, then taken from memory: the same chain either way.
        for key in ["a", "b"] { _ = try await snapshotter.prepare(key: key, parent: "L2", kind: .active, labels: [:]) }
        #expect(try await lowerdir("a") == "lowerdir=\(oldL2):\(l1):\(l0)")
        #expect(try await lowerdir("b") == "lowerdir=\(oldL2):\(l1):\(l0)")
        // L2 goes and comes back as a new layer: what stands on it sees the new one.
        for key in ["a", "b", "L2"] { try await snapshotter.remove(key: key) }
        try await snapshotter.layer("L2", parent: "L1")
        let newL2 = try await snapshotter.directories("L2").fs
        #expect(newL2 != oldL2)
        _ = try await snapshotter.prepare(key: "c", parent: "L2", kind: .view, labels: [:])
        #expect(try await lowerdir("c") == "lowerdir=\(newL2):\(l1):\(l0)")
        // More parents than chains kept: each still gets its own chain.
        let count = Snapshotter.lowerChainsKept + 6
        for index in 0..<count {
            try await snapshotter.layer("P\(index)", parent: index % 2 == 0 ? "L0" : "L1")
            _ = try await snapshotter.prepare(key: "on-P\(index)", parent: "P\(index)", kind: .active, labels: [:])
        }
        for index in 0..<count {
            let own = try await snapshotter.directories("P\(index)").fs
            let below = index % 2 == 0 ? l0 : "\(l1):\(l0)"
            #expect(try await lowerdir("on-P\(index)") == "lowerdir=\(own):\(below)")
        }
    }

    // MARK: - Reads and persistence

    @Test func listFiltersAndCounts() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        try await snapshotter.layer("base")
        _ = try await snapshotter.prepare(key: "a", parent: "base", kind: .active, labels: ["team": "web"])
        _ = try await snapshotter.prepare(key: "v", parent: "base", kind: .view, labels: [:])
        #expect(try await snapshotter.list(filters: []).map(\.key) == ["base", "a", "v"])
        #expect(try await snapshotter.list(filters: ["kind==committed"]).map(\.key) == ["base"])
        #expect(try await snapshotter.list(filters: ["labels.team", "kind==view"]).map(\.key) == ["a", "v"])
        #expect(try await snapshotter.status().snapshots == KindCounts(active: 1, view: 1, committed: 1))
        let bad = await #expect(throws: VeneerError.self) { try await snapshotter.list(filters: ["kind="]) }
        #expect(bad?.code == .invalidArgument)
    }

    @Test func snapshotsSurviveReopening() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        var expected: [SnapshotInfo] = []
        do {
            let snapshotter = try tmp.snapshotter()
            try await snapshotter.layer("base")
            _ = try await snapshotter.prepare(key: "a", parent: "base", kind: .active, labels: ["x": "y"])
            expected = try await snapshotter.list(filters: [])
        }
        let reopened = try tmp.snapshotter()
        #expect(try await reopened.list(filters: []) == expected)
        #expect(FileSystem.entryType(try await reopened.directories("a").work) == .directory)
        try await reopened.expectNothingToClean()
    }

    // MARK: - Recovery of directories lost in a power loss

    @Test func recoverDirectoriesMakesAgainWhatAPowerLossTookBack() async throws {
        let tmp = try TemporaryDirectory(prefix: "veneer")
        let snapshotter = try tmp.snapshotter()
        _ = try await snapshotter.prepare(key: "base", parent: nil, kind: .active, labels: [:])
        _ = try await snapshotter.commit(key: "base", name: "layer", labels: [:])
        let layerID = try await snapshotter.id("layer")
        let owner = FileSystem.Owner(uid: 4321, gid: 8765)
        try FileSystem.setOwner(snapshotter.layout.directories(layerID).fs, owner)
        _ = try await snapshotter.prepare(key: "active", parent: "layer", kind: .active, labels: [:])
        _ = try await snapshotter.prepare(key: "view", parent: "layer", kind: .view, labels: [:])
        _ = try await snapshotter.prepare(key: "kept", parent: "layer", kind: .active, labels: [:])
        let activeID = try await snapshotter.id("active")
        let viewID = try await snapshotter.id("view")
        let keptID = try await snapshotter.id("kept")
        try Disk.write(snapshotter.layout.directories(keptID).fs + "/file", bytes: 10)
        // As if the renames of these two creates had not reached the disk.
        try FileSystem.removeTree(snapshotter.layout.snapshotDirectory(activeID))
        try FileSystem.removeTree(snapshotter.layout.snapshotDirectory(viewID))

        let repaired = try await snapshotter.recoverDirectories()
        #expect(Set(repaired) == ["active", "view"])
        let active = snapshotter.layout.directories(activeID)
        #expect(FileSystem.entryType(active.fs) == .directory && FileSystem.entryType(active.work) == .directory)
        #expect(try FileSystem.mode(snapshotter.layout.snapshotDirectory(activeID)) == 0o700)
        #expect(try FileSystem.mode(active.fs) == 0o755)
        #expect(try FileSystem.mode(active.work) == 0o700)
        #expect(try FileSystem.owner(active.fs) == owner)
        let view = snapshotter.layout.directories(viewID)
        #expect(try Disk.names(snapshotter.layout.snapshotDirectory(viewID)) == ["fs"])
        #expect(try FileSystem.owner(view.fs) == owner)
        // What was there is left alone, and a second pass finds nothing to do.
        #expect(try Disk.names(snapshotter.layout.directories(keptID).fs) == ["file"])
        #expect(try await snapshotter.recoverDirectories() == [])
        // The repaired snapshot is usable again: it commits, and cleanup has nothing to take.
        _ = try await snapshotter.commit(key: "active", name: "active-done", labels: [:])
        #expect(try await snapshotter.cleanup().removed == 0)
    }
}
