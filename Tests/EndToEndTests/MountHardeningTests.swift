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
