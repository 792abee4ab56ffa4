import Foundation
import Synchronization
import Testing
import VeneerCore
import VeneerOS
import VeneerTestSupport

@testable import VeneerService

/// `Snapshotter.exportLayer` of layers changed through real overlay mounts.
@Suite("Exporting a snapshot's changes as a layer")
struct LayerDiffTests {
    typealias C = LayerChangesTests

    static func export(_ snapshotter: Snapshotter, _ key: String, _ compression: LayerCompression = .none) async throws -> [UInt8] {
        let export = try await snapshotter.exportLayer(key: key, compression: compression)
        let bytes = Mutex([UInt8]())
        _ = try await blockingOperation { () throws(VeneerError) -> Int in
            try export.write { chunk in bytes.withLock { $0 += chunk } }
        }
        return bytes.withLock { $0 }
    }

    static func names(_ tar: [UInt8]) throws -> [String] {
        let source = ApplyLayerTests.source(tar)
        let reader = try LayerReader(compression: .none, source: source, compressed: { _ in }, tar: { _ in })
        var names: [String] = []
        while let entry = try reader.next() { names.append(entry.displayPath + (entry.type == .hardlink ? " -> link" : "")) }
        return names
    }

    @Test("the export applies onto the same parent to the same changes, is the same bytes every time, and compresses to the same tar")
    func roundTrip() async throws {
        let tmp = try TemporaryDirectory(prefix: "vn-svc-diff")
        defer { tmp.remove() }
        let snapshotter = try await C.base(tmp)
        try await C.mountedAsync(snapshotter, tmp) { root in
            try C.run(C.changeScript + "python3 -c \"import os; os.setxattr('new/dir/file', 'user.note', b'hello')\"\n", in: root)
        }
        let changes = try await snapshotter.changes(key: "w")
        let tar = try await Self.export(snapshotter, "w")
        #expect(try await Self.export(snapshotter, "w") == tar)
        #expect(try Self.names(tar) == [
            "etc/", "etc/.wh.hosts", "etc/passwd",
            "new/", "new/dir/", "new/dir/file", "new/dir/link -> link", "new/dir/sym", "new/fifo",
            "opt/", "opt/.wh..wh..opq", "opt/keep", "opt/sub/",
            "usr/", "usr/bin/", "usr/bin/tool",
            "var/", "var/.wh.lib", "var/log/", "var/log/b",
        ])

        // Applied to a new snapshot on the same parent, it makes the same changes.
        _ = try await snapshotter.prepare(key: "copy", parent: "base", kind: .active, labels: [:])
        let applied = try await snapshotter.applyLayer(key: "copy", compression: .none, source: ApplyLayerTests.source(tar))
        #expect(applied.uncompressedSize == Int64(tar.count))
        #expect(try await snapshotter.changes(key: "copy") == changes)
        #expect(try await Self.export(snapshotter, "copy") == tar)

        // Compressed, the same tar; committed, the same bytes.
        for compression in [LayerCompression.gzip, .zstd] {
            let compressed = try await Self.export(snapshotter, "w", compression)
            #expect(try await Self.export(snapshotter, "w", compression) == compressed)
            _ = try await snapshotter.prepare(key: "c-\(compression)", parent: "base", kind: .active, labels: [:])
            let again = try await snapshotter.applyLayer(
                key: "c-\(compression)", compression: compression, source: ApplyLayerTests.source(compressed))
            #expect(again.diffID == applied.diffID, "\(compression)")
        }
        _ = try await snapshotter.commit(key: "w", name: "top", labels: [:])
        #expect(try await Self.export(snapshotter, "top") == tar)
    }

    @Test("a view, a missing snapshot and an active one mounted read-write are refused; a read-only mount is exported")
    func refusals() async throws {
        let tmp = try TemporaryDirectory(prefix: "vn-svc-diff-r")
        defer { tmp.remove() }
        let snapshotter = try await C.base(tmp)
        _ = try await snapshotter.prepare(key: "v", parent: "base", kind: .view, labels: [:])
        for (key, code) in [("v", VeneerError.Code.failedPrecondition), ("nope", .notFound)] {
            let error = await #expect(throws: VeneerError.self) { () async throws in
                _ = try await snapshotter.exportLayer(key: key, compression: .none)
            }
            #expect(error?.code == code)
        }
        let writable = try await C.mountedAsync(snapshotter, tmp) { _ in
            await #expect(throws: VeneerError.self) { () async throws in
                _ = try await snapshotter.exportLayer(key: "w", compression: .none)
            }
        }
        #expect(writable?.code == .failedPrecondition && writable?.message.contains("read-write") == true)
        // While an export of an active snapshot is prepared, nothing else may touch it.
        let export = try await snapshotter.exportLayer(key: "w", compression: .none)
        let busy = await #expect(throws: VeneerError.self) { () async throws in
            _ = try await snapshotter.revert(key: "w", paths: ["/"])
        }
        #expect(busy?.code == .failedPrecondition)
        _ = try await blockingOperation { () throws(VeneerError) -> Int in try export.write { _ in } }
        #expect(try await snapshotter.revert(key: "w", paths: ["/"]).isEmpty)
    }
}
