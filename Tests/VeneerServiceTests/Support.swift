import Foundation
import Logging
import Synchronization
import Testing
import VeneerCore
import VeneerOS
@testable import VeneerService
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension TemporaryDirectory {
    /// The state root itself; the snapshotter creates it.
    var root: String { path + "/root" }

    func snapshotter(overlayOptions: [String] = []) throws -> Snapshotter {
        try Snapshotter(root: root, overlayOptions: overlayOptions, logger: TestLoggers.quiet())
    }
}

enum Disk {
    static func exists(_ path: String) -> Bool { FileSystem.entryType(path) != .missing }

    static func names(_ path: String) throws -> Set<String> { Set(try FileSystem.listDirectory(path)) }

    static func write(_ path: String, bytes: Int) throws {
        let data = Data((0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) })
        guard FileManager.default.createFile(atPath: path, contents: data) else {
            throw VeneerError.internal("cannot write \(path)")
        }
        // Allocate the blocks now, so that usage sees them.
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}

extension Snapshotter {
    /// The id, and so the directory, of a stored snapshot.
    func id(_ key: String) async throws -> Int64 {
        guard let record = store.record(key) else { throw VeneerError.notFound("no \(key)") }
        return record.id
    }

    func directories(_ key: String) async throws -> SnapshotDirectories {
        layout.directories(try await id(key))
    }

    /// Runs a cleanup and expects it to find nothing to remove or reclaim.
    func expectNothingToClean(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let report = try await cleanup()
        #expect(report.removed == 0 && report.reclaimedBytes == 0, sourceLocation: sourceLocation)
    }

    /// Prepares `name`-work on `parent` and commits it as `name`.
    @discardableResult
    func layer(_ name: String, parent: String? = nil) async throws -> SnapshotInfo {
        _ = try await prepare(key: name + "-work", parent: parent, kind: .active, labels: [:])
        return try await commit(key: name + "-work", name: name, labels: [:])
    }

    /// Commits the chain L0 ← L1 ← L2 and returns their `fs` directories, bottom first.
    func threeLayers() async throws -> (l0: String, l1: String, l2: String) {
        try await layer("L0")
        try await layer("L1", parent: "L0")
        try await layer("L2", parent: "L1")
        return (try await directories("L0").fs, try await directories("L1").fs, try await directories("L2").fs)
    }
}
