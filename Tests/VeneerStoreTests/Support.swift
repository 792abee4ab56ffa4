import Foundation
import Synchronization
import Testing
import VeneerCore
import VeneerStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A fresh directory under /tmp, deleted (with everything in it) when released.
final class TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        var template = Array("/tmp/veneer-store.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return false }
            return mkdtemp(base) != nil
        }
        guard made else { throw VeneerError.internal("mkdtemp failed: errno \(errno)") }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    var database: String { path + "/metadata.db" }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
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
    func create(
        _ key: String, _ kind: SnapshotKind = .active, parent: String? = nil, labels: [String: String] = [:],
        at time: Timestamp = t0
    ) async throws(VeneerError) -> SnapshotRecord {
        try await create(NewSnapshot(key: key, kind: kind, parent: parent, labels: labels, created: time)) { _, _, _ in }
    }

    /// Prepares `name`-work on `parent` and commits it as `name`.
    @discardableResult
    func committed(
        _ name: String, parent: String? = nil, labels: [String: String] = [:],
        usage: Usage = Usage(size: 4096, inodes: 1)
    ) async throws(VeneerError) -> SnapshotRecord {
        let work = try await create(name + "-work", .active, parent: parent)
        return try await commit(
            key: work.key, name: name, labels: labels, usage: usage, at: t1, expectedID: work.id)
    }
}
