import Foundation
import Synchronization
import Testing
import VeneerCore
import VeneerOS
import VeneerTestSupport

@testable import VeneerService

/// `Snapshotter.applyLayer` on a real state root, with layers made by Python's tarfile
/// and compressed by gzip.
@Suite("Applying a layer to an active snapshot")
struct ApplyLayerTests {
    typealias Entry = LayerApplierTests.Entry

    /// A source over `bytes` in 1000-byte chunks.
    static func source(_ bytes: [UInt8]) -> @Sendable () throws -> [UInt8] {
        let offset = Mutex(0)
        return {
            offset.withLock { position in
                let end = min(position + 1000, bytes.count)
                defer { position = end }
                return Array(bytes[position..<end])
            }
        }
    }

    static func gzip(_ bytes: [UInt8], in tmp: TemporaryDirectory) throws -> [UInt8] {
        let path = tmp("layer.bin")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let run = try ProcessRun.run("/bin/gzip", ["-n", "-f", path])
        guard run.succeeded else { throw TestFailure("gzip: \(run)") }
        return Array(try Data(contentsOf: URL(fileURLWithPath: path + ".gz")))
    }

    static func sha256(_ bytes: [UInt8], in tmp: TemporaryDirectory) throws -> String {
        let path = tmp("digest.bin")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let run = try ProcessRun.run("/usr/bin/sha256sum", [path])
        guard run.succeeded, let hex = run.stdout.split(separator: " ").first else { throw TestFailure("sha256sum: \(run)") }
        return "sha256:" + hex
    }

    @Test("a gzip layer goes in whole, with its digest and diff ID; the next layer applies on top of it")
    func applyAndStack() async throws {
        let tmp = try TemporaryDirectory(prefix: "vn-svc-apply")
        defer { tmp.remove() }
        let snapshotter = try tmp.snapshotter()
        let tar = try LayerApplierTests.tar(
            [LayerApplierTests.file("etc/passwd", "root:x:0:0\n"), LayerApplierTests.symlink("lib", "usr/lib"),
             LayerApplierTests.file("usr/lib/libc.so", "elf")], in: tmp.path)
        let gz = try Self.gzip(tar, in: tmp)
        _ = try await snapshotter.prepare(key: "l1", parent: nil, kind: .active, labels: [:])
        let applied = try await snapshotter.applyLayer(
            key: "l1", compression: .gzip, digest: try Self.sha256(gz, in: tmp), source: Self.source(gz))
        #expect(applied.digest == (try Self.sha256(gz, in: tmp)))
        #expect(applied.diffID == (try Self.sha256(tar, in: tmp)))
        #expect(applied.size == Int64(gz.count) && applied.uncompressedSize == Int64(tar.count))
        #expect(applied.entries == 3)
        let record = try #require(snapshotter.store.record("l1", in: .default))
        let fs = snapshotter.layout.fsDirectory(record.id)
        #expect(try String(contentsOfFile: fs + "/etc/passwd", encoding: .utf8) == "root:x:0:0\n")
        _ = try await snapshotter.commit(key: "l1", name: "base", labels: [:])

        let second = try LayerApplierTests.tar(
            [LayerApplierTests.file("etc/.wh.passwd"), LayerApplierTests.file("lib/libm.so", "m")], in: tmp.path)
        _ = try await snapshotter.prepare(key: "l2", parent: "base", kind: .active, labels: [:])
        let stacked = try await snapshotter.applyLayer(
            key: "l2", compression: .none, diffID: try Self.sha256(second, in: tmp), source: Self.source(second))
        #expect(stacked.digest == stacked.diffID)
        let top = try #require(snapshotter.store.record("l2", in: .default))
        let upper = snapshotter.layout.fsDirectory(top.id)
        #expect(FileSystem.entryType(upper + "/usr/lib/libm.so") == .regular)
        #expect(FileSystem.entryType(upper + "/lib") == .missing)
        #expect(FileSystem.entryType(upper + "/etc/passwd") == .other)
        #expect(try FileSystem.listDirectory(snapshotter.layout.staging).isEmpty)
    }

    @Test("every failure leaves the layer empty and nothing in staging", arguments: 0..<6)
    func failuresLeaveNothing(_ which: Int) async throws {
        struct Gone: Error {}
        let tmp = try TemporaryDirectory(prefix: "vn-svc-apply")
        defer { tmp.remove() }
        let snapshotter = try tmp.snapshotter()
        let tar = try LayerApplierTests.tar(
            [LayerApplierTests.file("a", String(repeating: "a", count: 100_000)), LayerApplierTests.file("b", "b")], in: tmp.path)
        let gz = try Self.gzip(tar, in: tmp)
        _ = try await snapshotter.prepare(key: "w", parent: nil, kind: .active, labels: [:])
        let wrong = "sha256:" + String(repeating: "0", count: 64)
        let expected: (VeneerError.Code, String)
        let call: () async throws -> LayerApplied
        switch which {
        case 0:
            expected = (.invalidArgument, "digest is")
            call = { try await snapshotter.applyLayer(key: "w", compression: .gzip, digest: wrong, source: Self.source(gz)) }
        case 1:
            expected = (.invalidArgument, "max_layer_size")
            call = { try await snapshotter.applyLayer(key: "w", compression: .gzip, maxSize: 50_000, source: Self.source(gz)) }
        case 2:
            var corrupt = gz
            for i in stride(from: gz.count / 3, to: gz.count - 10, by: 5) { corrupt[i] ^= 0x77 }
            expected = (.invalidArgument, "cannot be read")
            call = { [corrupt] in try await snapshotter.applyLayer(key: "w", compression: .gzip, source: Self.source(corrupt)) }
        case 3:
            let bad = try LayerApplierTests.tar([LayerApplierTests.file("ok", "1"), LayerApplierTests.file("../x", "2")], in: tmp.path)
            expected = (.invalidArgument, "layer entry 1")
            call = { try await snapshotter.applyLayer(key: "w", compression: .none, source: Self.source(bad)) }
        case 4:
            let given = Mutex(0)
            expected = (.unavailable, "could not be received")
            call = {
                try await snapshotter.applyLayer(key: "w", compression: .gzip) {
                    try given.withLock { count in
                        count += 1
                        if count > 3 { throw Gone() }
                        return Array(gz[(count - 1) * 100..<count * 100])
                    }
                }
            }
        default:
            expected = (.invalidArgument, "not a digest")
            call = { try await snapshotter.applyLayer(key: "w", compression: .gzip, digest: "md5:x", source: Self.source(gz)) }
        }
        let error = await #expect(throws: VeneerError.self) { () async throws in _ = try await call() }
        #expect(error?.code == expected.0, "\(String(describing: error))")
        #expect(error?.message.contains(expected.1) == true, "\(String(describing: error))")
        let record = try #require(snapshotter.store.record("w", in: .default))
        #expect(try FileSystem.listDirectory(snapshotter.layout.fsDirectory(record.id)).isEmpty)
        #expect(try FileSystem.listDirectory(snapshotter.layout.staging).isEmpty)
        // And the snapshot takes a good layer afterwards.
        _ = try await snapshotter.applyLayer(key: "w", compression: .gzip, source: Self.source(gz))
    }

    @Test("only an active snapshot with an empty layer takes one; commit, remove and another apply wait their turn")
    func preconditions() async throws {
        let tmp = try TemporaryDirectory(prefix: "vn-svc-apply")
        defer { tmp.remove() }
        let snapshotter = try tmp.snapshotter()
        let tar = try LayerApplierTests.tar([LayerApplierTests.file("f", "x")], in: tmp.path)
        _ = try await snapshotter.prepare(key: "w", parent: nil, kind: .active, labels: [:])
        _ = try await snapshotter.applyLayer(key: "w", compression: .none, source: Self.source(tar))
        let again = await #expect(throws: VeneerError.self) { () async throws in
            _ = try await snapshotter.applyLayer(key: "w", compression: .none, source: Self.source(tar))
        }
        #expect(again?.code == .failedPrecondition && again?.message.contains("already has content") == true)
        _ = try await snapshotter.commit(key: "w", name: "c", labels: [:])
        let committed = await #expect(throws: VeneerError.self) { () async throws in
            _ = try await snapshotter.applyLayer(key: "c", compression: .none, source: Self.source(tar))
        }
        #expect(committed?.code == .failedPrecondition && committed?.message.contains("committed") == true)
        let missing = await #expect(throws: VeneerError.self) { () async throws in
            _ = try await snapshotter.applyLayer(key: "nope", compression: .none, source: Self.source(tar))
        }
        #expect(missing?.code == .notFound)

        // A source that waits holds the apply open while the others are tried.
        _ = try await snapshotter.prepare(key: "slow", parent: nil, kind: .active, labels: [:])
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let first = Mutex(true)
        let inner = Self.source(tar)
        let waiting: @Sendable () throws -> [UInt8] = {
            if first.withLock({ let was = $0; $0 = false; return was }) {
                started.signal()
                release.wait()
            }
            return try inner()
        }
        async let applied = snapshotter.applyLayer(key: "slow", compression: .none, source: waiting)
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                started.wait()
                continuation.resume()
            }
        }
        for attempt in [
            { _ = try await snapshotter.commit(key: "slow", name: "slow-c", labels: [:]) },
            { try await snapshotter.remove(key: "slow") },
            { _ = try await snapshotter.applyLayer(key: "slow", compression: .none, source: Self.source(tar)) },
        ] as [@Sendable () async throws -> Void] {
            let error = await #expect(throws: VeneerError.self) { () async throws in try await attempt() }
            #expect(error?.code == .failedPrecondition, "\(String(describing: error))")
        }
        release.signal()
        #expect(try await applied.entries == 1)
        _ = try await snapshotter.commit(key: "slow", name: "slow-c", labels: [:])
    }

    @Test("an apply racing a commit, a remove or a mount of its snapshot never changes a layer that was committed, removed or mounted")
    func racesWithOthers() async throws {
        let tmp = try TemporaryDirectory(prefix: "vn-svc-apply-race")
        defer { tmp.remove() }
        let snapshotter = try tmp.snapshotter()
        let big = String(repeating: "0123456789abcdef", count: 128)
        let tar = try LayerApplierTests.tar(
            (0..<40).map { LayerApplierTests.file("f\($0)", big) }, in: tmp.path)
        for round in 0..<48 {
            let key = "r\(round)"
            _ = try await snapshotter.prepare(key: key, parent: nil, kind: .active, labels: [:])
            let other = round % 3
            let target = tmp("target-\(round)")
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            let id = try #require(snapshotter.store.record(key, in: .default)?.id)
            async let applied: Bool = {
                do {
                    _ = try await snapshotter.applyLayer(key: key, compression: .none, source: Self.source(tar))
                    return true
                } catch let error as VeneerError {
                    #expect(error.code == .failedPrecondition || error.code == .notFound, "\(error)")
                    return false
                }
            }()
            async let done: Bool = {
                do {
                    switch other {
                    case 0: _ = try await snapshotter.commit(key: key, name: key + "-c", labels: [:])
                    case 1: try await snapshotter.remove(key: key)
                    default:
                        _ = try await blockingOperation { () throws(VeneerError) in
                            try snapshotter.liveMounts.mountBlocking(key: key, target: target, readonly: false)
                        }
                    }
                    return true
                } catch let error as VeneerError {
                    #expect(error.code == .failedPrecondition, "\(error)")
                    return false
                }
            }()
            let (applyWorked, otherWorked) = try await (applied, done)
            #expect(applyWorked || otherWorked, "round \(round): both were refused")
            switch other {
            case 0 where otherWorked:
                // Whatever the commit measured is what the committed layer holds.
                let usage = try await snapshotter.usage(key: key + "-c")
                let committed = try #require(snapshotter.store.record(key + "-c", in: .default)?.id)
                let files = try FileManager.default.contentsOfDirectory(atPath: snapshotter.layout.fsDirectory(committed))
                #expect(files.count == (applyWorked ? 40 : 0), "round \(round)")
                #expect((usage.inodes > 1) == applyWorked, "round \(round): \(usage)")
            case 1 where otherWorked:
                #expect(snapshotter.store.record(key, in: .default) == nil)
                #expect(!FileManager.default.fileExists(atPath: snapshotter.layout.snapshotDirectory(id)))
            case 2 where otherWorked:
                // A layer applied to a mounted snapshot would change under its overlay.
                let files = try FileManager.default.contentsOfDirectory(atPath: target)
                #expect(files.count == (applyWorked ? 40 : 0), "round \(round)")
                try await snapshotter.liveMounts.unmount(target: target, lazy: false)
            default:
                break
            }
        }
        // Nothing is left in staging.
        #expect(try FileManager.default.contentsOfDirectory(atPath: snapshotter.layout.staging).isEmpty)
    }

    /// A tar made by Python from `script`, which writes it to the path in argv[1].
    static func pythonTar(_ script: String, in tmp: TemporaryDirectory) throws -> [UInt8] {
        let path = tmp("made-\(UUID().uuidString).tar")
        let run = try ProcessRun.run("/usr/bin/python3", ["-c", script, path])
        guard run.succeeded else { throw TestFailure("python: \(run)") }
        defer { try? FileManager.default.removeItem(atPath: path) }
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    @Test("a gzip bomb stops at max_layer_size, early, and leaves the layer empty")
    func gzipBomb() async throws {
        let tmp = try TemporaryDirectory(prefix: "vn-svc-apply-bomb")
        defer { tmp.remove() }
        let snapshotter = try tmp.snapshotter()
        // 256 MiB of zeros in one file: about 250 kB compressed.
        let bomb = try Self.pythonTar(
            """
            import gzip, io, sys, tarfile
            class Zeros(io.RawIOBase):
                def __init__(self, n): self.left = n
                def readable(self): return True
                def readinto(self, b):
                    n = min(len(b), self.left); b[:n] = bytes(n); self.left -= n; return n
            with gzip.open(sys.argv[1], "wb", compresslevel=9) as out, tarfile.open(fileobj=out, mode="w") as tar:
                info = tarfile.TarInfo("zeros"); info.size = 256 << 20
                tar.addfile(info, io.BufferedReader(Zeros(info.size)))
            """, in: tmp)
        #expect(bomb.count < 2_000_000)
        _ = try await snapshotter.prepare(key: "w", parent: nil, kind: .active, labels: [:])
        let error = await #expect(throws: VeneerError.self) { () async throws in
            _ = try await snapshotter.applyLayer(key: "w", compression: .gzip, maxSize: 10 << 20, source: Self.source(bomb))
        }
        #expect(error?.code == .invalidArgument && error?.message.contains("max_layer_size") == true, "\(String(describing: error))")
        let id = try #require(snapshotter.store.record("w", in: .default)?.id)
        #expect(try FileManager.default.contentsOfDirectory(atPath: snapshotter.layout.fsDirectory(id)).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: snapshotter.layout.staging).isEmpty)
    }

    @Test("100,000 entries and 4096-byte names go in whole")
    func manyEntriesAndLongNames() async throws {
        let tmp = try TemporaryDirectory(prefix: "vn-svc-apply-many")
        defer { tmp.remove() }
        let snapshotter = try tmp.snapshotter()
        let tar = try Self.pythonTar(
            """
            import io, sys, tarfile
            with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as tar:
                for d in range(100):
                    info = tarfile.TarInfo("d%03d" % d); info.type = tarfile.DIRTYPE; info.mode = 0o755; tar.addfile(info)
                    for f in range(999):
                        info = tarfile.TarInfo("d%03d/f%03d" % (d, f)); info.size = 1
                        tar.addfile(info, io.BytesIO(b"x"))
                # A name of 4096 bytes: 16 components of 254 bytes and one of 16, the
                # directories first.
                parts = ["p%02d" % i + "x" * 251 for i in range(16)]
                for i in range(1, 17):
                    info = tarfile.TarInfo("/".join(parts[:i])); info.type = tarfile.DIRTYPE; info.mode = 0o755
                    tar.addfile(info)
                name = "/".join(parts) + "/" + "e" * 16
                assert len(name.encode()) == 4096, len(name.encode())
                info = tarfile.TarInfo(name); info.size = 4; tar.addfile(info, io.BytesIO(b"deep"))
            """, in: tmp)
        _ = try await snapshotter.prepare(key: "w", parent: nil, kind: .active, labels: [:])
        let applied = try await snapshotter.applyLayer(key: "w", compression: .none, source: Self.source(tar))
        #expect(applied.entries == 100 + 99_900 + 17)
        let root = snapshotter.layout.fsDirectory(try #require(snapshotter.store.record("w", in: .default)?.id))
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/d042").count == 999)
        let changes = try await snapshotter.changes(key: "w")
        #expect(changes.count == applied.entries)
        #expect(changes.last?.path.utf8.count == 4097)
    }
}
