import Dispatch
import Synchronization
import Testing
import VeneerCore
import VeneerStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@Suite("SnapshotStore mount records")
struct MountRecordTests {
    private let mounts = [Mount(type: "bind", source: "/src", options: ["rw", "rbind"])]

    @Test func aRecordIsKeptInMemoryAndInTheDatabaseAndATargetIsTakenOnce() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let a = try await store.create("a")
        let record = try store.addMount(of: a, target: "/t1", readonly: false, mounts: mounts, at: t1) { _ throws(VeneerError) in }
        #expect(record.key == "a")
        #expect(try await store.mounts() == [record])

        let again = #expect(throws: VeneerError.self) {
            try store.addMount(of: a, target: "/t1", readonly: true, mounts: mounts, at: t2) { _ throws(VeneerError) in }
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

    @Test func concurrentRecordingsEachSeeTheOnesBefore() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let b = try await store.create("b")
        let outcomes = Mutex<[String: VeneerError?]>([:])
        // Every check takes long enough that unserialized recordings would all pass it.
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let target = "/c\(i)"
            do throws(VeneerError) {
                _ = try store.addMount(of: b, target: target, readonly: false, mounts: mounts, at: t1) {
                    siblings throws(VeneerError) in
                    if !siblings.isEmpty { throw .failedPrecondition("already mounted at \(siblings.map(\.target))") }
                    usleep(20_000)
                }
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

    @Test func aSnapshotRemovedOrCommittedSincePlanningIsNotRecorded() async throws {
        let tmp = try TemporaryDirectory()
        let store = try SnapshotStore(path: tmp.database)
        let gone = try await store.create("gone")
        _ = try await store.remove("gone")
        let missing = #expect(throws: VeneerError.self) {
            try store.addMount(of: gone, target: "/g", readonly: false, mounts: mounts, at: t1) { _ throws(VeneerError) in }
        }
        #expect(missing?.code == .notFound)

        // The same key made again is another snapshot.
        try await store.create("gone")
        let changed = #expect(throws: VeneerError.self) {
            try store.addMount(of: gone, target: "/g", readonly: false, mounts: mounts, at: t1) { _ throws(VeneerError) in }
        }
        #expect(changed?.code == .failedPrecondition)

        // An active snapshot committed since: its key is gone.
        let work = try await store.create("work")
        _ = try await store.commit(key: "work", name: "done", labels: [:], usage: Usage(size: 0, inodes: 1), at: t1, expectedID: work.id)
        let committed = #expect(throws: VeneerError.self) {
            try store.addMount(of: work, target: "/w", readonly: false, mounts: mounts, at: t1) { _ throws(VeneerError) in }
        }
        #expect(committed?.code == .notFound)
        #expect(try await store.mounts().isEmpty)
    }
}
