import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerOS
import VeneerTestSupport
import VeneerWire

#if canImport(Glibc)
import Glibc
#endif

/// Another process that swaps two paths with renameat2(RENAME_EXCHANGE) as fast as it
/// can, until killed: a hostile client racing the daemon's target checks.
final class PathSwapper {
    private let process = Process()

    init(_ a: String, _ b: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [
            "-c",
            """
            import ctypes, sys
            libc = ctypes.CDLL(None, use_errno=True)
            a, b = sys.argv[1].encode(), sys.argv[2].encode()
            while True:
                libc.renameat2(-100, a, -100, b, 2)
            """,
            a, b,
        ]
        try process.run()
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

@Suite("Mount targets that clients swap")
struct MountHardeningTests {
    @Test("a target swapped with a symbolic link: every mount that succeeds is at the checked directory, never elsewhere")
    func swappedTargets() async throws {
        try await withContainer { daemon, api, calls in
            try await api.prepared("plain")
            let elsewhere = try daemon.mountPoint("elsewhere")
            let race = try daemon.mountPoint("race")
            let target = race + "/t"
            try Tree.makeDirectory(target)
            // The link points at a directory outside and, for the second round, into the state root.
            let links = [elsewhere, daemon.root + "/snapshots"]
            for (round, destination) in links.enumerated() {
                let link = race + "/l\(round)"
                try Tree.symlink(destination, at: link)
                let swapper = try PathSwapper(target, link)
                defer { swapper.stop() }
                // Wait for the first swap.
                let start = Date()
                while (try? Tree.readLink(target)) == nil && Date().timeIntervalSince(start) < 10 { usleep(100) }
                var refused = 0
                for key in ["ctr", "plain"] {
                    var mounted = 0
                    while mounted < 5 && refused < 5000 {
                        let response = try await calls.mount(key, at: target)
                        let points = MountInfo.targets(under: daemon.temp.path)
                        if response.status == 201 {
                            mounted += 1
                            #expect(points == [target], "mounted \(quoted(key)) somewhere else: \(points): \(response.text)")
                            #expect(try await calls.unmount(target).status == 204)
                        } else {
                            refused += 1
                            #expect(response.status == 400, "\(response.status): \(response.text)")
                            #expect(points.isEmpty, "a refused mount left \(points)")
                        }
                    }
                    #expect(mounted == 5, "\(quoted(key)): \(mounted) mounts in \(mounted + refused) attempts")
                }
                #expect(refused > 0, "the swaps never got in the way")
                swapper.stop()
                // Back to the directory for the next round.
                if (try? Tree.readLink(target)) != nil {
                    try Tree.unlinkFile(target)
                    try #require(rename(link, target) == 0)
                } else {
                    try Tree.unlinkFile(link)
                }
            }
            #expect(try await calls.live().isEmpty)
        }
    }
}

@Suite("Deletes that never cross a mount")
struct DeleteAcrossMountTests {
    /// The `fs` directory of `key`, from its mounts (a bind of it, or the upper layer).
    static func ownLayer(_ api: CheckedAPI, _ key: String) async throws -> String {
        try MountPaths.writableDirectory(try await api.mountList(key))
    }

    @Test("remove refuses while another snapshot is mounted inside; cleanup keeps such a leftover in trash; start-up comes up")
    func removeAndCleanupStopAtMounts() async throws {
        try await withAPI { daemon, api in
            try await api.prepared("victim")
            try await api.prepared("scratch")
            let victim = try await Self.ownLayer(api, "victim")
            let scratch = try await Self.ownLayer(api, "scratch")
            try Tree.write(victim + "/precious", "keep me")
            let inside = scratch + "/sub"
            try Tree.makeDirectory(inside)
            try Mounts.bind(victim, at: inside)
            defer { Mounts.unmount(inside) }

            let refused = try await api.remove("scratch")
            #expect(refused.status == 409)
            #expect(refused.errorCode == "failed_precondition")
            #expect(refused.errorMessage?.contains(inside) == true, "\(refused.text)")
            #expect(try Tree.read(victim + "/precious") == "keep me")
            #expect(try await api.stat("scratch").status == 200)

            // A directory without a row that holds a mount: cleanup deletes around it.
            let orphan = daemon.root + "/snapshots/77777"
            try FileManager.default.createDirectory(atPath: orphan + "/fs/mnt", withIntermediateDirectories: true)
            try Tree.write(orphan + "/fs/junk", "junk")
            try Mounts.bind(victim, at: orphan + "/fs/mnt")
            let cleanup = try await checked(daemon, "POST", "/v1/cleanup")
            #expect(cleanup.status == 200, "\(cleanup.text)")
            #expect(try cleanup.decoded(CleanupResponse.self).removed == 0)
            #expect(try Tree.read(victim + "/precious") == "keep me")
            let trash = try StateRoot.trashEntries(daemon)
            #expect(trash == ["snapshot-77777"])
            let kept = daemon.root + "/trash/snapshot-77777/fs/mnt"
            #expect(MountInfo.targets(under: daemon.root + "/trash") == [kept])
            #expect(!Tree.exists(daemon.root + "/trash/snapshot-77777/fs/junk"))

            // A restart cleans up at start-up: it comes up, logs what it kept, deletes nothing through the mount.
            #expect(try await daemon.stop() == 0)
            try await daemon.start()
            #expect(daemon.log.contains("kept a leftover in trash"))
            #expect(try Tree.read(victim + "/precious") == "keep me")
            #expect(try await api.stat("victim").status == 200)

            // Once unmounted, the next cleanup removes it.
            Mounts.unmount(kept)
            let after = try await checked(daemon, "POST", "/v1/cleanup")
            #expect(try after.decoded(CleanupResponse.self).removed == 1)
            #expect(try StateRoot.trashEntries(daemon).isEmpty)
            Mounts.unmount(inside)
            #expect(try await api.remove("scratch").status == 204)
            #expect(try Tree.read(victim + "/precious") == "keep me")
        }
    }
}

@Suite("Mount records follow the kernel's mounts")
struct MountIdentityTests {
    static func fsType(at target: String) throws -> String? {
        MountTable.topEntry(at: target, in: try MountTable.current())?.fsType
    }

    @Test("a mount whose directory was moved: unmounting the old path names the new one, the record follows, remove stays refused")
    func movedMount() async throws {
        try await withContainer { daemon, api, calls in
            let ren = try daemon.mountPoint("ren")
            try Tree.makeDirectory(ren + "/x")
            try Tree.makeDirectory(ren + "/x/t")
            try await calls.mounted("ctr", at: ren + "/x/t")
            try #require(rename(ren + "/x", ren + "/y") == 0)

            let refused = try await calls.unmount(ren + "/x/t")
            #expect(refused.status == 409, "\(refused.text)")
            #expect(refused.errorCode == "failed_precondition")
            #expect(refused.errorMessage?.contains(ren + "/y/t") == true, "\(refused.text)")
            #expect(try Self.fsType(at: ren + "/y/t") == "overlay")
            #expect(try await calls.live().map(\.target) == [ren + "/y/t"])
            let remove = try await api.remove("ctr")
            #expect(remove.status == 409, "\(remove.text)")
            #expect(try await calls.unmount(ren + "/x/t").status == 404)

            #expect(try await calls.unmount(ren + "/y/t").status == 204)
            #expect(MountInfo.targets(under: ren).isEmpty)
            #expect(try await api.remove("ctr").status == 204)
        }
    }

    @Test("a mount replaced by another: unmount leaves the other alone, and so does a restart")
    func replacedMount() async throws {
        try await withMountCalls { daemon, api, calls in
            try await api.prepared("a")
            try await api.prepared("b")
            let first = try daemon.mountPoint("first")
            let second = try daemon.mountPoint("second")
            defer {
                MountInfo.detachAll(under: first)
                MountInfo.detachAll(under: second)
            }

            // Replaced while running: the record is forgotten, the tmpfs stays.
            try await calls.mounted("a", at: first)
            Mounts.unmount(first)
            try #require(try ProcessRun.run("/bin/mount", ["-t", "tmpfs", "tmpfs", first]).status == 0)
            #expect(try await calls.unmount(first).status == 204)
            #expect(try Self.fsType(at: first) == "tmpfs")
            #expect(try await calls.live().isEmpty)
            Mounts.unmount(first)

            // Replaced while stopped: start-up drops the record, the tmpfs stays.
            try await calls.mounted("b", at: second)
            #expect(try await daemon.stop() == 0)
            Mounts.unmount(second)
            try #require(try ProcessRun.run("/bin/mount", ["-t", "tmpfs", "tmpfs", second]).status == 0)
            try await daemon.start()
            #expect(try await calls.live().isEmpty)
            #expect(try await calls.unmount(second).status == 404)
            #expect(try Self.fsType(at: second) == "tmpfs")
            #expect(try await api.remove("b").status == 204)
        }
    }

    @Test("another daemon's bind mount of its own snapshot of the same number, carrying a gone mount's identity, is not taken for it")
    func identityOfAnotherRoot() async throws {
        let other = try await Daemon()
        do {
            try await Self.checkIdentityOfAnotherRoot(other)
        } catch {
            Issue.record("the other veneerd's log:\n\(other.log.suffix(4000))")
            await other.destroy()
            throw error
        }
        await other.destroy()
    }

    static func checkIdentityOfAnotherRoot(_ other: Daemon) async throws {
        try await withDaemon { daemon in
            // Both roots are on the same file system and number their snapshots alike:
            // each one's "a" is a bind mount of <root>/snapshots/1/fs.
            try await CheckedAPI(daemon).prepared("a")
            try await CheckedAPI(other).prepared("a")
            let mine = try daemon.mountPoint("mine")
            let theirs = try other.mountPoint("theirs")
            defer { MountInfo.detachAll(under: theirs) }
            try await MountCalls(daemon).mounted("a", at: mine)
            try await MountCalls(other).mounted("a", at: theirs)
            try Tree.write(theirs + "/owner", "the other daemon")

            #expect(try await daemon.stop() == 0)
            Mounts.unmount(mine)
            try Self.forgeIdentity(daemon, record: mine, as: theirs)
            try await daemon.start()

            #expect(try await MountCalls(daemon).live().isEmpty, "\(daemon.log)")
            #expect(daemon.log.contains("dropped the record of a mount that is gone"), "\(daemon.log)")
            #expect(try await MountCalls(other).live().map(\.target) == [theirs])
            #expect(try Tree.read(theirs + "/owner") == "the other daemon")
            #expect(try await CheckedAPI(daemon).remove("a").status == 204)
        }
    }

    /// Gives the record of the daemon's mount at `target` the kernel identity of the
    /// mount now at `other`, as when the kernel hands a gone mount's id and device to a
    /// newer mount. The daemon must be stopped.
    static func forgeIdentity(_ daemon: Daemon, record target: String, as other: String) throws {
        let entry = try #require(MountTable.topEntry(at: other, in: try MountTable.current()))
        let script = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            n = db.execute("UPDATE mounts SET mount_id = ?, device = ? WHERE target = ?", (int(sys.argv[2]), sys.argv[3], sys.argv[4])).rowcount
            db.commit()
            sys.exit(0 if n == 1 else 1)
            """
        let result = try ProcessRun.run(
            "/usr/bin/python3",
            ["-c", script, daemon.root + "/metadata.db", "\(entry.id)", "\(entry.deviceMajor):\(entry.deviceMinor)", target])
        try #require(result.status == 0, "\(result.stderr)")
    }

    @Test("a gone mount's id and device turning up on a newer mount elsewhere: start-up drops the stale record, the newer mount keeps its own")
    func reusedIdentity() async throws {
        try await withMountCalls { daemon, api, calls in
            try await api.prepared("a")
            try await api.prepared("b")
            try await api.prepared("c")
            let first = try daemon.mountPoint("first")
            let second = try daemon.mountPoint("second")
            let third = try daemon.mountPoint("third")
            let foreign = try daemon.mountPoint("foreign")
            defer { MountInfo.detachAll(under: foreign) }
            try await calls.mounted("a", at: first)
            try await calls.mounted("b", at: second)
            try await calls.mounted("c", at: third)
            try Tree.write(second + "/kept", "b's")
            try #require(try ProcessRun.run("/bin/mount", ["-t", "tmpfs", "tmpfs", foreign]).status == 0)

            // a's mount is gone and its identity is b's (a daemon mount with a record);
            // c's mount is gone and its identity is a tmpfs's that the daemon never made.
            #expect(try await daemon.stop() == 0)
            Mounts.unmount(first)
            Mounts.unmount(third)
            try Self.forgeIdentity(daemon, record: first, as: second)
            try Self.forgeIdentity(daemon, record: third, as: foreign)
            try await daemon.start()

            #expect(try await calls.live().map(\.target) == [second], "\(daemon.log)")
            #expect(daemon.log.contains("dropped the record of a mount that is gone"))
            #expect(try Self.fsType(at: foreign) == "tmpfs")
            #expect(try Tree.read(second + "/kept") == "b's")
            #expect(try await api.remove("a").status == 204)
            #expect(try await api.remove("c").status == 204)
            #expect(try await api.remove("b").status == 409, "b is still mounted")
            #expect(try await calls.unmount(second).status == 204)
            #expect(try await api.remove("b").status == 204)
        }
    }
}
