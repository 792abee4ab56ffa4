import Foundation
import Testing
import VeneerClient
import VeneerCore

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
        try await withDaemon { daemon in
            let api = CheckedAPI(daemon)
            let calls = MountCalls(daemon)
            try await api.prepared("base")
            try await api.committed("base", name: "layer")
            try await api.prepared("ctr", parent: "layer")
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
                        let points = Mounts.targets(under: daemon.temp.path)
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
        try await withDaemon { daemon in
            let api = CheckedAPI(daemon)
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
            #expect(Mounts.targets(under: daemon.root + "/trash") == [kept])
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
