import Foundation
import Synchronization
import Testing
import VeneerCore
import VeneerStore
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension TemporaryDirectory {
    /// Where a test's store keeps its database.
    var database: String { path + "/metadata.db" }
}

/// A counter that closures running inside the store's transactions can bump.
final class Counter: Sendable {
    private let value = Mutex(0)
    func increment() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}

struct Unrelated: Error {}

let t0 = Timestamp(nanosecondsSinceEpoch: 1_700_000_000_123_456_789)
let t1 = Timestamp(nanosecondsSinceEpoch: 1_700_000_100_000_000_001)
let t2 = Timestamp(nanosecondsSinceEpoch: 1_700_000_200_987_654_321)

extension SnapshotStore {
    /// Creates a snapshot with nothing to do inside the transaction.
    @discardableResult
    func insert(
        _ key: String, _ kind: SnapshotKind = .active, parent: String? = nil, labels: [String: String] = [:],
        at time: Timestamp = t0
    ) async throws(VeneerError) -> SnapshotRecord {
        try await insert(NewSnapshot(key: key, kind: kind, parent: parent, labels: labels, created: time)) { _, _, _ in }
    }

    /// Creates `key` and removes it again: the record of a snapshot that is gone.
    func insertedAndRemoved(_ key: String) async throws -> SnapshotRecord {
        let record = try await insert(key)
        _ = try await remove(key)
        return record
    }

    /// Prepares `name`-work on `parent` and commits it as `name`.
    @discardableResult
    func committed(
        _ name: String, parent: String? = nil, labels: [String: String] = [:],
        usage: Usage = Usage(size: 4096, inodes: 1)
    ) async throws(VeneerError) -> SnapshotRecord {
        let work = try await insert(name + "-work", .active, parent: parent)
        return try await commit(
            key: work.key, name: name, labels: labels, usage: usage, at: t1, expectedID: work.id)
    }
}
