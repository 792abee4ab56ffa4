import Testing
import VeneerCore
import VeneerStore
import VeneerTestSupport

@Suite("SnapshotStore")
struct SnapshotStoreTests {
    // MARK: - Create and read

    @Test func createGetListAndCounts() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        #expect(try await store.list() == [])
        #expect(try await store.counts() == [:])

        let labels = ["team": "db", "quote\"d": "v,1", "emoji": "🐳", "empty": ""]
        let a = try await store.insert("default/a 1", .active, labels: labels, at: t0)
        #expect(a.key == "default/a 1")
        #expect(a.kind == .active)
        #expect(a.parentID == nil && a.parentKey == nil)
        #expect(a.labels == labels)
        #expect(a.created == t0 && a.updated == t0)
        #expect(a.usage == nil)
        #expect(store.record("default/a 1") == a)
        #expect(store.record("default/a") == nil)

        let v = try await store.insert("v", .view, at: t2)
        #expect(v.id > a.id)
        #expect(store.record("v")?.created == t2)

        let list = try await store.list()
        #expect(list.map(\.key) == ["default/a 1", "v"])
        #expect(list == [a, v])
        #expect(try await store.counts() == [.default: KindCounts(active: 1, view: 1, committed: 0)])
        #expect(try await store.allIDs() == [a.id, v.id])
        try await store.ping()

        let info = a.info
        #expect(info == SnapshotInfo(key: a.key, kind: .active, parent: nil, labels: labels, created: t0, updated: t0))
    }

    @Test func createOnACommittedParent() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let base = try await store.committed("base")
        let seen = Counter()
        let child = try await store.insert(
            NewSnapshot(key: "child", kind: .view, parent: "base", labels: [:], created: t2)
        ) { id, parent, _ in
            seen.increment()
            // The hook sees the new id and the parent's stored record.
            guard id > base.id, parent == base else { throw Unrelated() }
        }
        #expect(seen.count == 1)
        #expect(child.parentID == base.id)
        #expect(child.parentKey == "base")
        #expect(store.record("child") == child)
        #expect(store.record("child")?.info.parent == "base")
        #expect(try await store.counts()[.default] == KindCounts(active: 0, view: 1, committed: 1))
    }

    @Test(arguments: SnapshotKind.allCases)
    func createOverAnExistingKeyAlreadyExists(existing: SnapshotKind) async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        if existing == .committed {
            try await store.committed("k")
        } else {
            try await store.insert("k", existing)
        }
        let before = try await store.list()
        let hook = Counter()
        let error = await #expect(throws: VeneerError.self) {
            try await store.insert(NewSnapshot(key: "k", kind: .active, parent: nil, labels: [:], created: t2)) { _, _, _ in
                hook.increment()
            }
        }
        #expect(error?.code == .alreadyExists)
        #expect(hook.count == 0)
        #expect(try await store.list() == before)
    }

    @Test func createOnAMissingParentIsNotFound() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let error = await #expect(throws: VeneerError.self) { try await store.insert("k", parent: "gone") }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("\"gone\"") == true)
        #expect(try await store.list() == [])
    }

    @Test(arguments: [SnapshotKind.active, .view])
    func createOnAnUncommittedParentIsInvalid(parentKind: SnapshotKind) async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        try await store.insert("p", parentKind)
        for kind in [SnapshotKind.active, .view] {
            let error = await #expect(throws: VeneerError.self) { try await store.insert("k", kind, parent: "p") }
            #expect(error?.code == .invalidArgument)
        }
        #expect(try await store.list().map(\.key) == ["p"])
    }

    @Test func createCommittedIsInvalid() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let error = await #expect(throws: VeneerError.self) { try await store.insert("k", .committed) }
        #expect(error?.code == .invalidArgument)
        #expect(try await store.list() == [])
    }

    @Test func aThrowingHookWritesNothing() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        try await store.committed("base")
        let before = try await store.list()

        let passedThrough = await #expect(throws: VeneerError.self) {
            try await store.insert(NewSnapshot(key: "k", kind: .active, parent: "base", labels: [:], created: t0)) { _, _, _ in
                throw VeneerError.resourceExhausted("disk full")
            }
        }
        #expect(passedThrough == .resourceExhausted("disk full"))

        let wrapped = await #expect(throws: VeneerError.self) {
            try await store.insert(NewSnapshot(key: "k", kind: .view, parent: nil, labels: [:], created: t0)) { _, _, _ in
                throw Unrelated()
            }
        }
        #expect(wrapped?.code == .internal)

        #expect(store.record("k") == nil)
        #expect(try await store.list() == before)
        #expect(try await store.counts()[.default] == KindCounts(committed: 1))
        // The key is free: a later create succeeds.
        let k = try await store.insert("k", parent: "base")
        #expect(k.parentKey == "base")
    }

    @Test func idsAreNeverReusedAfterDelete() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let a = try await store.insert("a")
        let b = try await store.insert("b")
        // Removing the highest id is what plain rowids would hand out again.
        _ = try await store.remove("b")
        let c = try await store.insert("c")
        #expect(c.id > b.id)
        _ = try await store.remove("a")
        _ = try await store.remove("c")
        let b2 = try await store.insert("b")
        #expect(b2.id > c.id)
        #expect(Set([a.id, b.id, c.id, b2.id]).count == 4)
        #expect(try await store.allIDs() == [b2.id])
    }

    // MARK: - Chains

    @Test func chainIsNearestFirstAcrossFiveLevels() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        var levels: [SnapshotRecord] = []
        var sides: [SnapshotRecord] = []
        var parent: String?
        for level in 0..<5 {
            // Side branches and unrelated snapshots that must not appear in the chain.
            sides.append(try await store.insert("side-\(level)", .view, parent: parent))
            try await store.committed("other-\(level)")
            let record = try await store.committed("L\(level)", parent: parent)
            levels.append(record)
            parent = record.key
        }
        let leaf = try await store.insert("leaf", .active, parent: "L4")

        func check(_ store: SnapshotStore) {
            #expect(store.ancestorIDs(of: leaf.id) == levels.reversed().map(\.id))
            #expect(store.ancestorIDs(of: levels[2].id) == [levels[1].id, levels[0].id])
            #expect(store.ancestorIDs(of: levels[0].id) == [])
            #expect(store.ancestorIDs(of: sides[3].id) == [levels[2].id, levels[1].id, levels[0].id])
            #expect(store.ancestorIDs(of: 999_999) == [])
        }
        check(store)
        // The index built when the database is opened again knows the same chains.
        check(try SnapshotStore(path: tmp.database))

        // A removed snapshot is no longer anybody's ancestor.
        _ = try await store.remove("leaf")
        _ = try await store.remove("L4")
        let next = try await store.insert("next", .active, parent: "L3")
        #expect(store.ancestorIDs(of: next.id) == [levels[3].id, levels[2].id, levels[1].id, levels[0].id])
        #expect(store.ancestorIDs(of: levels[4].id) == [])
    }

    // MARK: - Commit

    @Test func commitTurnsTheActiveSnapshotIntoACommittedOne() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        try await store.committed("base")
        let work = try await store.insert("work", parent: "base", labels: ["old": "1"], at: t0)
        let usage = Usage(size: 123_456, inodes: 42)
        let layer = try await store.commit(
            key: "work", name: "layer", labels: ["new": "2"], usage: usage, at: t2, expectedID: work.id)
        #expect(layer.id == work.id)
        #expect(layer.key == "layer")
        #expect(layer.kind == .committed)
        #expect(layer.labels == ["new": "2"])
        #expect(layer.created == t2 && layer.updated == t2)
        #expect(layer.usage == usage)
        #expect(layer.parentKey == "base")
        #expect(store.record("work") == nil)
        #expect(store.record("layer") == layer)
        #expect(try await store.counts()[.default] == KindCounts(committed: 2))
        // A committed snapshot is a parent.
        #expect(try await store.insert("next", parent: "layer").parentID == layer.id)
    }

    @Test func commitChecksTheNameFirst() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let taken = try await store.insert("taken", .view)
        let active = try await store.insert("active")
        for key in ["missing", "taken", "active"] {
            let error = await #expect(throws: VeneerError.self) {
                try await store.commit(
                    key: key, name: "taken", labels: [:], usage: Usage(size: 0, inodes: 0), at: t1,
                    expectedID: key == "active" ? active.id : taken.id)
            }
            #expect(error?.code == .alreadyExists, "committing \(key)")
        }
        // Committing a key under its own name: the name is taken by itself.
        let own = await #expect(throws: VeneerError.self) {
            try await store.commit(
                key: "active", name: "active", labels: [:], usage: Usage(size: 0, inodes: 0), at: t1, expectedID: active.id)
        }
        #expect(own?.code == .alreadyExists)
        #expect(store.record("active") == active)
    }

    @Test func commitOfAMissingKeyIsNotFound() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let error = await #expect(throws: VeneerError.self) {
            try await store.commit(key: "gone", name: "n", labels: [:], usage: Usage(size: 0, inodes: 0), at: t1, expectedID: 1)
        }
        #expect(error?.code == .notFound)
        #expect(store.record("n") == nil)
    }

    @Test(arguments: [SnapshotKind.view, .committed])
    func onlyActiveSnapshotsCanBeCommitted(kind: SnapshotKind) async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let record = kind == .committed ? try await store.committed("k") : try await store.insert("k", kind)
        let error = await #expect(throws: VeneerError.self) {
            try await store.commit(
                key: "k", name: "n", labels: [:], usage: Usage(size: 0, inodes: 0), at: t1, expectedID: record.id)
        }
        #expect(error?.code == .failedPrecondition)
        #expect(store.record("k") == record)
        #expect(store.record("n") == nil)
    }

    @Test func commitWithAStaleIDChangesNothing() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        // The key was removed and prepared again after the caller measured it.
        let first = try await store.insertedAndRemoved("work")
        let second = try await store.insert("work", labels: ["again": "yes"])
        let error = await #expect(throws: VeneerError.self) {
            try await store.commit(
                key: "work", name: "layer", labels: [:], usage: Usage(size: 1, inodes: 1), at: t1, expectedID: first.id)
        }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message.contains("changed") == true)
        #expect(store.record("work") == second)
        #expect(store.record("layer") == nil)
    }

    // MARK: - Remove

    @Test func removeReturnsTheDeletedRecord() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let a = try await store.insert("a", labels: ["x": "y"])
        #expect(try await store.remove("a") == a)
        #expect(store.record("a") == nil)
        let error = await #expect(throws: VeneerError.self) { try await store.remove("a") }
        #expect(error?.code == .notFound)
    }

    @Test func removeWithChildrenIsRefused() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let base = try await store.committed("base")
        try await store.insert("c1", parent: "base")
        let few = await #expect(throws: VeneerError.self) { try await store.remove("base") }
        #expect(few?.code == .failedPrecondition)
        #expect(few?.message.contains("1 child") == true)
        #expect(few?.message.contains("\"c1\"") == true)

        for i in 2...5 { try await store.insert("c\(i)", .view, parent: "base") }
        let many = await #expect(throws: VeneerError.self) { try await store.remove("base") }
        #expect(many?.code == .failedPrecondition)
        #expect(many?.message.contains("5 child") == true)
        #expect(many?.message.contains("and 2 more") == true)
        #expect(store.record("base") == base)

        for i in 1...5 { _ = try await store.remove("c\(i)") }
        #expect(try await store.remove("base") == base)
    }

    @Test func aThrowingRemoveCheckKeepsTheRow() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let a = try await store.insert("a")
        let error = await #expect(throws: VeneerError.self) {
            _ = try await store.remove("a") { record in
                throw VeneerError.failedPrecondition("busy \(record.id)")
            }
        }
        #expect(error == .failedPrecondition("busy \(a.id)"))
        #expect(store.record("a") == a)
    }

    // MARK: - Labels

    @Test func updateLabelsReplacesLabelsAndBumpsUpdated() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let a = try await store.insert("a", labels: ["keep": "1", "drop": "2"], at: t0)
        let updated = try await store.updateLabels("a", at: t2) { current in
            var next = current
            next["drop"] = nil
            next["add"] = "3"
            return next
        }
        #expect(updated.labels == ["keep": "1", "add": "3"])
        #expect(updated.updated == t2)
        #expect(updated.created == t0)
        #expect(updated.id == a.id)
        #expect(store.record("a") == updated)

        let missing = await #expect(throws: VeneerError.self) {
            _ = try await store.updateLabels("gone", at: t2) { $0 }
        }
        #expect(missing?.code == .notFound)

        let refused = await #expect(throws: VeneerError.self) {
            _ = try await store.updateLabels("a", at: t1) { _ in throw VeneerError.invalidArgument("no") }
        }
        #expect(refused == .invalidArgument("no"))
        #expect(store.record("a") == updated)
    }

    // MARK: - Concurrency

    @Test func concurrentCreatesOfOneKeyLetExactlyOneWin() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let outcomes = await withTaskGroup(of: VeneerError.Code?.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    do {
                        try await store.insert("same")
                        return nil
                    } catch let error as VeneerError {
                        return error.code
                    } catch {
                        return .internal
                    }
                }
            }
            var outcomes: [VeneerError.Code?] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        #expect(outcomes.filter { $0 == nil }.count == 1)
        #expect(outcomes.filter { $0 == .alreadyExists }.count == 19)
        #expect(try await store.list().count == 1)
    }

    @Test func withWritesPausedSeesEveryID() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let a = try await store.insert("a")
        let b = try await store.committed("b")
        #expect(try await store.withWritesPaused { ids in ids } == [a.id, b.id])
        let error = await #expect(throws: VeneerError.self) {
            try await store.withWritesPaused { _ in throw VeneerError.unavailable("stop") }
        }
        #expect(error == .unavailable("stop"))
    }

    // MARK: - Durability

    @Test func writesSurviveReopeningTheStore() async throws {
        let tmp = try TemporaryDirectory()
        var expected: [SnapshotRecord] = []
        var highestID: Int64 = 0
        do {
            let store = try SnapshotStore(path: tmp.database)
            try await store.committed("base", labels: ["l": "1"], usage: Usage(size: 8192, inodes: 3))
            try await store.insert("child", parent: "base", labels: ["x": "y"])
            try await store.insert("view", .view, parent: "base")
            _ = try await store.updateLabels("view", at: t2) { _ in ["updated": "yes"] }
            let gone = try await store.insertedAndRemoved("gone")
            highestID = gone.id
            expected = try await store.list()
        }
        // The first store is released; a new one opens the same file.
        let reopened = try SnapshotStore(path: tmp.database)
        let list = try await reopened.list()
        #expect(list == expected)
        #expect(list.map(\.key) == ["base", "child", "view"])
        #expect(list.first?.usage == Usage(size: 8192, inodes: 3))
        #expect(list.last?.labels == ["updated": "yes"])
        #expect(list.last?.updated == t2)
        #expect(try await reopened.counts()[.default] == KindCounts(active: 1, view: 1, committed: 1))
        // The id sequence is stored too.
        #expect(try await reopened.insert("new").id > highestID)
    }

    @Test func anUnusablePathIsUnavailable() throws {
        let tmp = try TemporaryDirectory()
        let error = #expect(throws: VeneerError.self) {
            try SnapshotStore(path: tmp.path + "/missing-dir/metadata.db")
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("missing-dir/metadata.db") == true)
    }
}

/// Hooks that a create registers with its write batch.
@Suite("SnapshotStore write batches")
struct WriteBatchTests {
    @Test func hooksOfACommittedCreateRun() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let before = Counter(), after = Counter(), rollback = Counter()
        _ = try await store.insert(NewSnapshot(key: "k", kind: .active, parent: nil, labels: [:], created: t0)) { _, _, batch in
            batch.beforeCommit(once: "sync") { before.increment() }
            batch.beforeCommit(once: "sync") { before.increment() }
            batch.afterCommit { after.increment() }
            batch.onRollback { rollback.increment() }
        }
        #expect(before.count == 1)
        #expect(after.count == 1)
        #expect(rollback.count == 0)
    }

    @Test func aFailingCreateRollsBackItsSideEffectsOnly() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let before = Counter(), after = Counter(), rollback = Counter()
        let error = await #expect(throws: VeneerError.self) {
            try await store.insert(NewSnapshot(key: "k", kind: .active, parent: nil, labels: [:], created: t0)) { _, _, batch in
                batch.beforeCommit(once: "sync") { before.increment() }
                batch.afterCommit { after.increment() }
                batch.onRollback { rollback.increment() }
                throw VeneerError.internal("cannot make directories")
            }
        }
        #expect(error == .internal("cannot make directories"))
        #expect(rollback.count == 1)
        #expect(before.count == 0)
        #expect(after.count == 0)
        #expect(store.record("k") == nil)
    }

    /// A job alone in its transaction runs without a savepoint: its failure after its
    /// INSERT must roll the whole transaction back, in the database and not only in the
    /// index.
    @Test func aLoneJobThatFailsAfterWritingLeavesNoRow() async throws {
        let tmp = try TemporaryDirectory()
        do {
            let store = try SnapshotStore(path: tmp.database)
            await #expect(throws: VeneerError.internal("after the insert")) {
                try await store.insert(NewSnapshot(key: "k", kind: .active, parent: nil, labels: [:], created: t0)) { _, _, _ in
                    throw VeneerError.internal("after the insert")
                }
            }
            // The database itself has no row "k": a create of the key succeeds.
            let created = try await store.insert(
                NewSnapshot(key: "k", kind: .view, parent: nil, labels: ["n": "2"], created: t0)) { _, _, _ in }
            #expect(created.kind == .view)
        }
        let reopened = try SnapshotStore(path: tmp.database)
        let all = try await reopened.list()
        #expect(all.map(\.key) == ["k"])
        #expect(all.first?.labels == ["n": "2"])
    }

    @Test func aFailingPreCommitActionFailsTheWrite() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let after = Counter(), rollback = Counter()
        let error = await #expect(throws: VeneerError.self) {
            try await store.insert(NewSnapshot(key: "k", kind: .active, parent: nil, labels: [:], created: t0)) { _, _, batch in
                batch.beforeCommit(once: "sync") { throw VeneerError.resourceExhausted("fsync failed") }
                batch.afterCommit { after.increment() }
                batch.onRollback { rollback.increment() }
            }
        }
        #expect(error == .resourceExhausted("fsync failed"))
        #expect(rollback.count == 1)
        #expect(after.count == 0)
        #expect(store.record("k") == nil)
        #expect(try await store.list() == [])
        // The store still works afterwards.
        try await store.insert("k")
        #expect(try await store.list().map(\.key) == ["k"])
    }

    @Test func concurrentCreatesSucceedOrFailEachOnTheirOwn() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let syncs = Counter(), after = Counter(), rollback = Counter()
        let n = 40
        let results = await withTaskGroup(of: (Int, SnapshotRecord?).self) { group in
            for i in 0..<n {
                group.addTask {
                    let new = NewSnapshot(key: "k\(i)", kind: .active, parent: nil, labels: [:], created: t0)
                    let record = try? await store.insert(new) { _, _, batch in
                        batch.beforeCommit(once: "sync") { syncs.increment() }
                        batch.afterCommit { after.increment() }
                        batch.onRollback { rollback.increment() }
                        if i % 2 == 1 { throw VeneerError.internal("odd") }
                    }
                    return (i, record)
                }
            }
            var results: [Int: SnapshotRecord?] = [:]
            for await (i, record) in group { results[i] = record }
            return results
        }
        let created = results.compactMapValues { $0 }
        #expect(created.keys.sorted() == Array(stride(from: 0, to: n, by: 2)))
        #expect(Set(created.values.map(\.id)).count == n / 2)
        #expect(Set(try await store.list().map(\.key)) == Set(created.values.map(\.key)))
        for (i, record) in created { #expect(record.key == "k\(i)") }
        #expect(after.count == n / 2)
        #expect(rollback.count == n / 2)
        // One sync per transaction, and transactions hold one or more creates.
        #expect(syncs.count >= 1 && syncs.count <= n / 2)
    }
}
