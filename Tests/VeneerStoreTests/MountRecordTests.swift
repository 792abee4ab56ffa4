import Dispatch
import GRDB
import Synchronization
import Testing
import VeneerCore
import VeneerJSON
import VeneerStore
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

private let bindMounts = [Mount(type: "bind", source: "/src", options: ["rw", "rbind"])]

extension SnapshotStore {
    /// Starts recording a mount that no rule of the caller's refuses.
    fileprivate func recording(_ snapshot: SnapshotRecord, at target: String, readonly: Bool = false) throws(VeneerError)
        -> PendingMountRecord
    {
        try recordMount(of: snapshot, target: target, readonly: readonly, mounts: bindMounts, at: t1) { _ throws(VeneerError) in }
    }
}

@Suite("SnapshotStore mount records")
struct MountRecordTests {

    @Test func aRecordIsKeptInMemoryAndInTheDatabaseAndATargetIsTakenOnce() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let a = try await store.insert("a")
        let recorded = try store.recording(a, at: "/t1").wait()
        let record = recorded.record
        #expect(record.key == "a")
        #expect(recorded.mountsJSON == JSONWriter.mountArray(record.mounts))
        #expect(try await store.mounts() == [record])

        let again = #expect(throws: VeneerError.self) {
            try store.recording(a, at: "/t1", readonly: true).wait()
        }
        #expect(again?.code == .alreadyExists)
        #expect(again?.message.contains("\"a\"") == true)

        // The database holds it too: a store opened again loads it, and remove refuses.
        #expect(try await SnapshotStore(path: tmp.database).mounts() == [record])
        let removal = await #expect(throws: VeneerError.self) { try await store.remove("a") }
        #expect(removal?.code == .failedPrecondition)
        #expect(try store.removeMounts(["/t1"]) == 1)
        #expect(try await store.mounts().isEmpty)
    }

    @Test(arguments: [#"[{"type":1}]"#, "not json", #"[{"options":[],"source":"/s","type":"bind"},]"#])
    func aMountsColumnThatIsNotAListOfMountsStopsTheStoreFromOpening(column: String) async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let snapshot = try await store.insert("a")
        _ = try store.recording(snapshot, at: "/t1").wait()
        try await DatabaseQueue(path: tmp.database).write { db in
            try db.execute(sql: "UPDATE mounts SET mounts = ?", arguments: [column])
        }
        let error = #expect(throws: VeneerError.self) { try SnapshotStore(path: tmp.database) }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains(#"mounts of "/t1" that are not a JSON list of mounts"#) == true, "\(error?.message ?? "")")
    }

    @Test func concurrentRecordingsEachSeeTheOnesBeingWritten() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let b = try await store.insert("b")
        let outcomes = Mutex<[String: VeneerError?]>([:])
        // Each recording waits before its row is written; later ones must see it anyway.
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let target = "/c\(i)"
            do throws(VeneerError) {
                let recording = try store.recordMount(of: b, target: target, readonly: false, mounts: bindMounts, at: t1) {
                    (siblings: [MountRecord]) throws(VeneerError) in
                    if !siblings.isEmpty { throw .failedPrecondition("already mounted at \(siblings.map(\.target))") }
                }
                // The row is written while the others check: they must see this one anyway.
                usleep(20_000)
                _ = try recording.wait()
                outcomes.withLock { $0[target] = .some(nil) }
            } catch {
                outcomes.withLock { $0[target] = error }
            }
        }
        let all = outcomes.withLock { $0 }
        let recorded = all.filter { $0.value == nil }.map(\.key)
        #expect(recorded.count == 1, "\(all)")
        #expect(all.values.compactMap { $0 }.allSatisfy { $0.code == .failedPrecondition })
        #expect(try await store.mounts().map(\.target) == recorded)
    }

    @Test func aRecordBeingWrittenHoldsItsTargetAndCountsInLaterChecks() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let b = try await store.insert("b")
        // Keep the writer busy, so that the first record stays unwritten for a while.
        let started = DispatchSemaphore(value: 0)
        let busy = Task { try await store.withWritesPaused { _ in
            started.signal()
            usleep(300_000)
        } }
        await Task.detached { started.wait() }.value
        let first = try store.recording(b, at: "/c1")
        let sameTarget = #expect(throws: VeneerError.self) {
            try store.recording(b, at: "/c1", readonly: true)
        }
        #expect(sameTarget?.code == .alreadyExists)
        var seen: [String] = []
        let second = #expect(throws: VeneerError.self) {
            try store.recordMount(of: b, target: "/c2", readonly: false, mounts: bindMounts, at: t1) {
                (siblings: [MountRecord]) throws(VeneerError) in
                seen = siblings.map(\.target)
                if !siblings.isEmpty { throw .failedPrecondition("already mounted") }
            }
        }
        #expect(second?.code == .failedPrecondition)
        #expect(seen == ["/c1"])
        // Not listed before its row is committed.
        #expect(try await store.mounts().isEmpty)

        try await busy.value
        let record = try await Task.detached { try first.wait().record }.value
        #expect(try await store.mounts() == [record])
    }

    @Test func aFailedRecordFreesItsTarget() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let doomed = try await store.insertedAndRemoved("doomed")
        let pending = try store.recording(doomed, at: "/x")
        let error = #expect(throws: VeneerError.self) { try pending.wait() }
        #expect(error?.code == .notFound)
        let other = try await store.insert("other")
        let record = try store.recording(other, at: "/x").wait().record
        #expect(try await store.mounts() == [record])
    }

    @Test func aSnapshotRemovedOrCommittedSincePlanningIsNotRecorded() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let gone = try await store.insertedAndRemoved("gone")
        let missing = #expect(throws: VeneerError.self) {
            try store.recording(gone, at: "/g").wait()
        }
        #expect(missing?.code == .notFound)

        // The same key made again is another snapshot.
        try await store.insert("gone")
        let changed = #expect(throws: VeneerError.self) {
            try store.recording(gone, at: "/g").wait()
        }
        #expect(changed?.code == .failedPrecondition)

        // An active snapshot committed since: its key is gone.
        let work = try await store.insert("work")
        _ = try await store.commit(key: "work", name: "done", labels: [:], usage: Usage(size: 0, inodes: 1), at: t1, expectedID: work.id)
        let committed = #expect(throws: VeneerError.self) {
            try store.recording(work, at: "/w").wait()
        }
        #expect(committed?.code == .notFound)
        #expect(try await store.mounts().isEmpty)
    }
}
