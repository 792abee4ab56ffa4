import Foundation
import GRDB
import Testing
import VeneerCore
import VeneerTestSupport

@testable import VeneerStore

@Suite("Namespaces in the store")
struct NamespaceTests {
    let other = Namespace.containerd

    @Test func theSameKeyInTwoNamespacesIsTwoSnapshots() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let mine = try await store.insert(NewSnapshot(key: "k", kind: .active, parent: nil, labels: ["a": "1"], created: t0)) { _, _, _ in }
        let theirs = try await store.insert(
            NewSnapshot(key: "k", kind: .view, parent: nil, labels: [:], created: t1, in: other)) { _, _, _ in }
        #expect(mine.id != theirs.id)
        #expect(mine.namespace == .default && theirs.namespace == other)
        #expect(store.record("k") == mine)
        #expect(store.record("k", in: other) == theirs)
        #expect(try await store.list() == [mine])
        #expect(try await store.list(in: other) == [theirs])
        #expect(try await store.counts() == [.default: KindCounts(active: 1), other: KindCounts(view: 1)])
        // A key taken in one namespace is taken there only.
        await #expect(throws: VeneerError.self) {
            try await store.insert(NewSnapshot(key: "k", kind: .active, parent: nil, labels: [:], created: t2, in: other)) { _, _, _ in }
        }
        // The index follows what the database holds after a reopen.
        let reopened = try SnapshotStore(path: tmp.database)
        #expect(reopened.record("k") == mine)
        #expect(reopened.record("k", in: other) == theirs)
    }

    @Test func parentsAreLookedUpInTheChildsNamespace() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        try await store.committed("base")
        do {
            _ = try await store.insert(
                NewSnapshot(key: "child", kind: .active, parent: "base", labels: [:], created: t0, in: other)) { _, _, _ in }
            Issue.record("a parent of another namespace was accepted")
        } catch {
            #expect(error.code == .notFound)
        }
        #expect(store.record("child", in: other) == nil)
        let child = try await store.insert(NewSnapshot(key: "child", kind: .active, parent: "base", labels: [:], created: t0)) { _, _, _ in }
        #expect(child.parentKey == "base")
        #expect(try await store.depth("child") == 2)
        #expect(try await store.depth("child", in: other) == nil)
    }

    @Test func commitRemoveAndUpdateStayInTheirNamespace() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let work = try await store.insert(NewSnapshot(key: "w", kind: .active, parent: nil, labels: [:], created: t0, in: other)) { _, _, _ in }
        // The same name in the default namespace does not block the commit.
        try await store.insert("layer")
        await #expect(throws: VeneerError.self) {
            try await store.commit(key: "w", name: "layer2", labels: [:], usage: Usage(size: 0, inodes: 1), at: t1, expectedID: work.id)
        }
        let layer = try await store.commit(
            key: "w", name: "layer", labels: [:], usage: Usage(size: 0, inodes: 1), at: t1, expectedID: work.id, in: other)
        #expect(layer.namespace == other && layer.kind == .committed)
        #expect(store.record("layer")?.kind == .active)
        let updated = try await store.updateLabels("layer", in: other, at: t2) { _ in ["x": "y"] }
        #expect(updated.labels == ["x": "y"])
        #expect(store.record("layer")?.labels == [:])
        do {
            _ = try await store.remove("w")
            Issue.record("a key of another namespace was removed")
        } catch {
            #expect(error.code == .notFound)
        }
        _ = try await store.remove("layer", in: other)
        #expect(store.record("layer", in: other) == nil)
        #expect(store.record("layer") != nil)
    }

    @Test func mountRecordsCarryTheirNamespace() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let mine = try await store.insert("k")
        let theirs = try await store.insert(NewSnapshot(key: "k", kind: .active, parent: nil, labels: [:], created: t0, in: other)) { _, _, _ in }
        _ = try store.recordMount(of: mine, target: "/mnt/a", readonly: false, mounts: [], at: t1) { _ throws(VeneerError) in }.wait()
        _ = try store.recordMount(of: theirs, target: "/mnt/b", readonly: false, mounts: [], at: t1) { _ throws(VeneerError) in }.wait()
        #expect(try await store.mounts(key: "k", in: .default).map(\.target) == ["/mnt/a"])
        #expect(try await store.mounts(in: other).map(\.target) == ["/mnt/b"])
        #expect(try await store.mounts().map(\.target) == ["/mnt/a", "/mnt/b"])
        let reopened = try SnapshotStore(path: tmp.database)
        #expect(try await reopened.mounts(in: other).map(\.namespace) == [other])
    }

    /// A database written before namespaces existed opens with everything in the
    /// default namespace, the same ids, the same id counter and working foreign keys.
    @Test func anOlderDatabaseMigratesToTheDefaultNamespace() async throws {
        let tmp = try TemporaryDirectory()
        do {
            let pool = try DatabasePool(path: tmp.database)
            try SnapshotStore.migrator.migrate(pool, upTo: "v3-mount-identity")
            try await pool.write { db in
                try db.execute(sql: """
                    INSERT INTO snapshots (key, kind, parent_id, labels, created, updated, size, inodes)
                        VALUES ('base', 'committed', NULL, '{}', 1, 1, 10, 2);
                    INSERT INTO snapshots (key, kind, parent_id, labels, created, updated)
                        VALUES ('work', 'active', 1, '{"a":"b"}', 2, 2);
                    INSERT INTO snapshots (key, kind, parent_id, labels, created, updated)
                        VALUES ('gone', 'active', NULL, '{}', 3, 3);
                    DELETE FROM snapshots WHERE key = 'gone';
                    INSERT INTO mounts (target, snapshot_id, readonly, mounts, mounted_at) VALUES ('/mnt/w', 2, 0, '[]', 4);
                    """)
            }
            try pool.close()
        }
        let store = try SnapshotStore(path: tmp.database)
        let base = try #require(store.record("base"))
        let work = try #require(store.record("work"))
        #expect(base.id == 1 && base.namespace == .default && base.usage == Usage(size: 10, inodes: 2))
        #expect(work.id == 2 && work.parentKey == "base" && work.labels == ["a": "b"])
        #expect(try await store.mounts().map(\.key) == ["work"])
        // Id 3 was used once; it is never given again.
        let next = try await store.insert("next")
        #expect(next.id == 4)
        // The parent is still protected by its foreign key.
        do {
            _ = try await store.pool.write { db in try db.execute(sql: "DELETE FROM snapshots WHERE id = 1") }
            Issue.record("a parent row was deleted under its child")
        } catch {}
        let unique = try await store.pool.read { db in
            try Row.fetchAll(db, sql: "PRAGMA index_list(snapshots)").compactMap { row -> String? in
                (row["unique"] as Int?) == 1 ? row["name"] : nil
            }
        }
        #expect(unique.count == 1)
    }
}
