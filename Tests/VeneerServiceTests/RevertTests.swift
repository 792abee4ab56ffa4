import Foundation
import Testing
import VeneerCore
import VeneerOS
import VeneerTestSupport

@testable import VeneerService

/// `Snapshotter.revert` on layers changed through real overlay mounts.
@Suite("Reverting paths of an active snapshot")
struct RevertTests {
    typealias C = LayerChangesTests

    static let script = """
        echo changed > etc/passwd
        rm etc/hosts
        rm -r var/lib
        echo new > var/log/b
        mkdir -p new/dir && echo n > new/dir/file
        chmod 0700 usr
        echo two > usr/bin/tool
        rm -r opt && mkdir opt && echo k2 > opt/keep
        """

    static func read(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }

    @Test("reverted paths show the parent's content again, and nothing else changes")
    func reverts() async throws {
        let tmp = try TemporaryDirectory(prefix: "vn-svc-revert")
        defer { tmp.remove() }
        let snapshotter = try await C.base(tmp)
        try await C.mountedAsync(snapshotter, tmp) { root in try C.run(Self.script, in: root) }
        let before = try await snapshotter.changes(key: "w")

        // A path inside a directory the layer replaced cannot be reverted alone; nothing
        // of the request is done.
        let inside = await #expect(throws: VeneerError.self) { () async throws in
            _ = try await snapshotter.revert(key: "w", paths: ["/etc/passwd", "/opt/keep"])
        }
        #expect(inside?.code == .failedPrecondition && inside?.message.contains("revert /opt instead") == true, "\(String(describing: inside))")
        #expect(try await snapshotter.changes(key: "w") == before)

        let reverted = try await snapshotter.revert(key: "w", paths: ["/etc/passwd", "/var", "/srv/none", "/etc/hosts"])
        #expect(reverted == ["/etc/passwd", "/var", "/etc/hosts"])
        let after = try await snapshotter.changes(key: "w")
        #expect(after == before.filter { !$0.path.hasPrefix("/etc/") && !$0.path.hasPrefix("/var/") })
        try await C.mountedAsync(snapshotter, tmp) { root in
            #expect(Self.read(root + "/etc/passwd") == "root:x:0:0\n")
            #expect(Self.read(root + "/etc/hosts") == "127.0.0.1\n")
            #expect(Self.read(root + "/var/lib/db") == "d")
            #expect(Self.read(root + "/var/log/b") == nil)
            #expect(Self.read(root + "/new/dir/file") == "n\n")
            #expect(Self.read(root + "/opt/keep") == "k2\n")
        }

        // A replaced directory and a directory whose own metadata changed.
        #expect(try await snapshotter.revert(key: "w", paths: ["/opt", "/usr"]) == ["/opt", "/usr"])
        try await C.mountedAsync(snapshotter, tmp) { root in
            #expect(Self.read(root + "/opt/keep") == "k")
            #expect(Self.read(root + "/opt/sub/deep") == "d")
            #expect(Self.read(root + "/usr/bin/tool") == nil)
            let mode = try FileManager.default.attributesOfItem(atPath: root + "/usr")[.posixPermissions] as? Int
            #expect(mode == 0o755)
        }
        #expect(try await snapshotter.changes(key: "w").map(\.path) == ["/new", "/new/dir", "/new/dir/file"])

        // Everything; reverting again finds nothing to do.
        #expect(try await snapshotter.revert(key: "w", paths: ["/"]) == ["/"])
        #expect(try await snapshotter.changes(key: "w").isEmpty)
        #expect(try await snapshotter.revert(key: "w", paths: ["/", "/etc"]).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: snapshotter.layout.trash).isEmpty)
    }

    @Test("bad paths, a mounted, committed or missing snapshot are refused and change nothing")
    func refusals() async throws {
        let tmp = try TemporaryDirectory(prefix: "vn-svc-revert-r")
        defer { tmp.remove() }
        let snapshotter = try await C.base(tmp)
        try await C.mountedAsync(snapshotter, tmp) { root in try C.run("echo x > etc/passwd", in: root) }
        for bad in [[], ["etc/passwd"], ["/etc/../etc/passwd"], ["/etc/"], ["//etc"], ["/etc/./passwd"], [""], ["/a\u{0}b"]] {
            let error = await #expect(throws: VeneerError.self) { () async throws in
                _ = try await snapshotter.revert(key: "w", paths: bad)
            }
            #expect(error?.code == .invalidArgument, "\(bad): \(String(describing: error))")
        }
        let mounted = try await C.mountedAsync(snapshotter, tmp) { _ in
            await #expect(throws: VeneerError.self) { () async throws in
                _ = try await snapshotter.revert(key: "w", paths: ["/etc/passwd"])
            }
        }
        #expect(mounted?.code == .failedPrecondition && mounted?.message.contains("mounted") == true)

        // A mount the daemon did not make, with the layer as its upper directory.
        let target = tmp("own")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let mounts = try await snapshotter.mounts(key: "w")
        try Mounts.mount(mounts, at: target)
        let foreign = await #expect(throws: VeneerError.self) { () async throws in
            _ = try await snapshotter.revert(key: "w", paths: ["/etc/passwd"])
        }
        Mounts.unmount(target)
        #expect(foreign?.code == .failedPrecondition && foreign?.message.contains(target) == true, "\(String(describing: foreign))")

        for (key, code) in [("base", VeneerError.Code.failedPrecondition), ("nope", .notFound)] {
            let error = await #expect(throws: VeneerError.self) { () async throws in
                _ = try await snapshotter.revert(key: key, paths: ["/etc"])
            }
            #expect(error?.code == code)
        }
        #expect(try await snapshotter.changes(key: "w") == [LayerChange(path: "/etc/passwd", kind: .modified, type: .file)])
    }
}
