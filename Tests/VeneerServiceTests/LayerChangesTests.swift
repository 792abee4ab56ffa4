import Foundation
import Testing
import VeneerCore
import VeneerOS
import VeneerTestSupport

@testable import VeneerService

/// `Snapshotter.changes` on layers changed through real overlay mounts.
@Suite("Changes of a snapshot's own layer")
struct LayerChangesTests {
    typealias T = LayerApplierTests

    /// A committed base with a small tree, and an active snapshot `w` on it.
    static func base(_ tmp: TemporaryDirectory, overlayOptions: [String] = []) async throws -> Snapshotter {
        let snapshotter = try tmp.snapshotter(overlayOptions: overlayOptions)
        let tar = try T.tar(
            [
                T.dir("etc"), T.file("etc/passwd", "root:x:0:0\n"), T.file("etc/hosts", "127.0.0.1\n"),
                T.dir("var"), T.dir("var/lib"), T.file("var/lib/db", "d"), T.dir("var/log"), T.file("var/log/a", "a"),
                T.dir("usr"), T.dir("usr/bin"), T.file("usr/bin/sh", "#!", mode: 0o755),
                T.dir("opt"), T.file("opt/keep", "k"), T.file("opt/drop", "x"), T.dir("opt/sub"), T.file("opt/sub/deep", "d"),
                T.dir("srv"), T.file("srv/file", "f"),
            ], in: tmp.path)
        _ = try await snapshotter.prepare(key: "base-w", parent: nil, kind: .active, labels: [:])
        _ = try await snapshotter.applyLayer(key: "base-w", compression: .none, source: ApplyLayerTests.source(tar))
        _ = try await snapshotter.commit(key: "base-w", name: "base", labels: [:])
        _ = try await snapshotter.prepare(key: "w", parent: "base", kind: .active, labels: [:])
        return snapshotter
    }

    /// Changes of every kind to the base's tree: a modified file, deletions of a file and
    /// a directory, additions with a hard link, a symbolic link and a fifo, a directory's
    /// own metadata, a directory deleted and made again.
    static let changeScript = """
        echo changed > etc/passwd
        rm etc/hosts
        rm -r var/lib
        echo new > var/log/b
        mkdir -p new/dir && echo n > new/dir/file && ln new/dir/file new/dir/link && ln -s file new/dir/sym
        mkfifo new/fifo
        chmod 0700 usr
        echo two > usr/bin/tool
        rm -r opt && mkdir opt && echo k2 > opt/keep && mkdir opt/sub

        """

    static func run(_ script: String, in directory: String) throws {
        let run = try ProcessRun.run("/bin/sh", ["-ec", script], in: directory)
        guard run.succeeded else { throw TestFailure("\(script): \(run)") }
    }

    static func text(_ changes: [LayerChange]) -> [String] {
        changes.map { "\($0.kind.rawValue) \($0.type.rawValue) \($0.path)" }
    }

    @Test("additions, modifications, deletions and a replaced directory, as the merged view shows them; directories changed only by their children are not listed")
    func changesThroughAMount() async throws {
        let tmp = try TemporaryDirectory(prefix: "vn-svc-changes")
        defer { tmp.remove() }
        let snapshotter = try await Self.base(tmp)
        #expect(try await snapshotter.changes(key: "w").isEmpty)
        try await Self.mountedAsync(snapshotter, tmp) { root in
            try Self.run(Self.changeScript + "chown 7:7 srv\n", in: root)
        }
        let expected = [
            "modified file /etc/passwd",
            "deleted file /etc/hosts",
            "added directory /new",
            "added directory /new/dir",
            "added file /new/dir/file",
            "added hardlink /new/dir/link",
            "added symlink /new/dir/sym",
            "added fifo /new/fifo",
            "deleted file /opt/drop",
            "modified file /opt/keep",
            "deleted file /opt/sub/deep",
            "modified directory /srv",
            "modified directory /usr",
            "added file /usr/bin/tool",
            "deleted directory /var/lib",
            "added file /var/log/b",
        ].sorted { $0.split(separator: " ")[2].utf8.lexicographicallyPrecedes($1.split(separator: " ")[2].utf8) }
        let changes = try await snapshotter.changes(key: "w")
        #expect(Self.text(changes) == expected)

        // The same after commit; the parent's own changes are its whole layer.
        _ = try await snapshotter.commit(key: "w", name: "top", labels: [:])
        #expect(try await snapshotter.changes(key: "top") == changes)
        let baseChanges = try await snapshotter.changes(key: "base")
        #expect(baseChanges.count == 18 && baseChanges.allSatisfy { $0.kind == .added })
        #expect(baseChanges.first == LayerChange(path: "/etc", kind: .added, type: .directory))
    }

    @Test("a mounted snapshot's changes are listed while it is mounted; views have none; a missing snapshot is not found")
    func mountedViewsAndMissing() async throws {
        let tmp = try TemporaryDirectory(prefix: "vn-svc-changes-m")
        defer { tmp.remove() }
        let snapshotter = try await Self.base(tmp)
        let listed = try await Self.mountedAsync(snapshotter, tmp) { root in
            try Self.run("echo x > etc/new && rm srv/file", in: root)
            return try await snapshotter.changes(key: "w")
        }
        #expect(Self.text(listed) == ["added file /etc/new", "deleted file /srv/file"])
        _ = try await snapshotter.prepare(key: "v", parent: "base", kind: .view, labels: [:])
        #expect(try await snapshotter.changes(key: "v").isEmpty)
        let missing = await #expect(throws: VeneerError.self) { () async throws in
            _ = try await snapshotter.changes(key: "nope")
        }
        #expect(missing?.code == .notFound)
    }

    static func mountedAsync<R>(
        _ snapshotter: Snapshotter, _ tmp: TemporaryDirectory, _ body: (String) async throws -> R
    ) async throws -> R {
        let target = tmp("target")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        _ = try await blockingOperation { () throws(VeneerError) in
            try snapshotter.liveMounts.mountBlocking(key: "w", target: target, readonly: false)
        }
        do {
            let result = try await body(target)
            try await snapshotter.liveMounts.unmount(target: target, lazy: false)
            return result
        } catch {
            try? await snapshotter.liveMounts.unmount(target: target, lazy: false)
            throw error
        }
    }

    @Test("copies overlayfs made that change nothing are no change, in the list and in the export")
    func unchangedCopies() async throws {
        let tmp = try TemporaryDirectory(prefix: "vn-svc-changes-c")
        defer { tmp.remove() }
        let snapshotter = try await Self.base(tmp)
        try await Self.mountedAsync(snapshotter, tmp) { root in
            // An open for writing, an owner set to what it was, a mode changed and put back.
            try Self.run(
                """
                python3 -c "open('etc/hosts', 'r+').close()"
                chown 0:0 etc/passwd
                chmod 0600 var/log/a && chmod 0644 var/log/a
                echo real > srv/file
                """, in: root)
        }
        let upper = snapshotter.layout.fsDirectory(try #require(snapshotter.store.record("w", in: .default)?.id))
        #expect(FileManager.default.fileExists(atPath: upper + "/etc/hosts"), "the open for writing copied the file up")
        #expect(Self.text(try await snapshotter.changes(key: "w")) == ["modified file /srv/file"])
        let tar = try await LayerDiffTests.export(snapshotter, "w")
        #expect(try LayerDiffTests.names(tar) == ["srv/", "srv/file"])
    }

    @Test("a layer written with redirect_dir=on is refused with a clear error")
    func redirects() async throws {
        let tmp = try TemporaryDirectory(prefix: "vn-svc-changes-r")
        defer { tmp.remove() }
        let snapshotter = try await Self.base(tmp, overlayOptions: ["redirect_dir=on"])
        try await Self.mountedAsync(snapshotter, tmp) { root in try Self.run("mv var/log var/logs", in: root) }
        let error = await #expect(throws: VeneerError.self) { () async throws in
            _ = try await snapshotter.changes(key: "w")
        }
        #expect(error?.code == .failedPrecondition && error?.message.contains("redirect_dir") == true, "\(String(describing: error))")
        let exported = await #expect(throws: VeneerError.self) { () async throws in
            _ = try await LayerDiffTests.export(snapshotter, "w")
        }
        #expect(exported?.code == .failedPrecondition, "\(String(describing: exported))")
    }
}
