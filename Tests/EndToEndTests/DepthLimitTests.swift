import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Builds a chain of committed layers `L1` ... `L<depth>` through the API, each
/// prepared on the one before. `fill(n, directory)` writes layer `n` straight into the
/// active snapshot's own directory (the bind source, or the overlay's upper directory),
/// which is quicker than mounting it.
func buildCommittedChain(
    _ daemon: Daemon, depth: Int, fill: (Int, String) throws -> Void
) async throws {
    let api = CheckedAPI(daemon)
    for n in 1...depth {
        let key = "w\(n)"
        let prepared = try await api.prepared(key, parent: n == 1 ? nil : "L\(n - 1)")
        try fill(n, try ownLayer(of: prepared.mounts))
        try await api.committed(key, name: "L\(n)")
    }
}

/// Marks `path` deleted in an overlay layer: a character device 0/0.
func makeWhiteout(_ path: String) throws {
    if mknod(path, S_IFCHR, 0) != 0 {
        throw Tree.Failure(call: "mknod", path: path, errno: errno)
    }
}

/// Writes a configuration file for veneerd in `directory`.
func writeDaemonConfiguration(_ text: String, in directory: String, name: String = "veneerd.toml") throws -> String {
    let path = directory + "/" + name
    try Tree.write(path, text)
    return path
}

/// What a refused request must leave unchanged: directories on disk and the list.
struct StateSnapshot: Equatable {
    var snapshotDirectories: [String]
    var staging: [String]
    var list: [SnapshotInfo]

    init(_ daemon: Daemon) async throws {
        snapshotDirectories = try StateRoot.snapshotDirectories(daemon)
        staging = try StateRoot.stagingEntries(daemon)
        list = try await CheckedAPI(daemon).all()
    }
}

@Suite("Stacking depth limits")
struct DepthLimitTests {
    @Test("500 layers under a state root path over 100 characters mount through the API; a 501st is refused")
    func fiveHundredLayers() async throws {
        let rootName = String(repeating: "deep-layer-root-", count: 6)
        try await withDaemon(rootName: rootName) { daemon in
            #expect(daemon.root.utf8.count > 100, "state root \(daemon.root) is too short for this test")
            let api = CheckedAPI(daemon)
            let calls = MountCalls(daemon)
            try await buildCommittedChain(daemon, depth: 500) { n, layer in
                try Tree.write(layer + "/layer-\(n)", "\(n)")
                switch n {
                case 1: try Tree.write(layer + "/first", "from layer 1")
                case 250: try makeWhiteout(layer + "/layer-10")
                case 500: try Tree.write(layer + "/last", "from layer 500")
                default: break
                }
            }
            let status = try await calls.status()
            #expect(status.deepestChain == 500)
            #expect(status.maxDepth == 500)

            let top = try await api.prepared("top", parent: "L500")
            let lowers = MountPaths.lowerDirectories(top.mounts)
            #expect(lowers.count == 500)
            let optionBytes = top.mounts.flatMap(\.options).joined(separator: ",").utf8.count
            #expect(optionBytes > 500 * 100, "the layer paths are not long: \(optionBytes) bytes of options")

            let target = try daemon.mountPoint("top")
            let live = try await calls.mounted("top", at: target)
            #expect(live.mounts == top.mounts)
            #expect(try KernelMounts.isMountPoint(target))
            var expected = Set((1...500).filter { $0 != 10 }.map { "layer-\($0)" })
            expected.formUnion(["first", "last"])
            #expect(Set(try Tree.entries(target)) == expected)
            #expect(try Tree.read(target + "/first") == "from layer 1")
            #expect(try Tree.read(target + "/last") == "from layer 500")
            #expect(try Tree.read(target + "/layer-9") == "9")
            #expect(try Tree.read(target + "/layer-250") == "250")
            #expect(!Tree.exists(target + "/layer-10"), "the file deleted at layer 250 is visible")
            try Tree.write(target + "/from-container", "written")
            #expect(try Tree.read(ownLayer(of: top.mounts) + "/from-container") == "written")
            #expect(try await calls.status().mounts == 1)

            // A view of the full stack mounts too (500 lowers, no upper layer).
            try await api.prepared("look", parent: "L500", kind: .view)
            let viewTarget = try daemon.mountPoint("look")
            #expect(try await calls.mounted("look", at: viewTarget).readonly)
            #expect(Set(try Tree.entries(viewTarget)) == expected)
            #expect(Tree.createErrno(viewTarget + "/new") == EROFS)

            // Start-up reconciliation finds these long lines of the mount table.
            let live500 = try await calls.live()
            #expect(live500.count == 2)
            try await daemon.stop()
            try await daemon.start()
            #expect(try await calls.live() == live500, "a restart dropped the record of a deep mount")
            #expect(try KernelMounts.isMountPoint(target) && KernelMounts.isMountPoint(viewTarget))
            #expect(try Tree.read(target + "/last") == "from layer 500")
            try await calls.unmounted(viewTarget)
            try await calls.unmounted(target)

            // A 501st committed layer can exist, but nothing can be stacked on it.
            try await api.committed("top", name: "L501")
            #expect(try await calls.status().deepestChain == 501)
            let before = try await StateSnapshot(daemon)
            for kind in [SnapshotKind.active, .view] {
                expectError(
                    try await api.prepare("too-deep", parent: "L501", kind: kind), 409, "failed_precondition",
                    mentioning: ["chain depth 501 exceeds max_depth 500"])
            }
            #expect(try await StateSnapshot(daemon) == before, "a refused prepare left something behind")
            #expect(try await calls.live().isEmpty)
        }
    }

    @Test("max_depth from the configuration file refuses deeper chains before touching the disk")
    func configuredMaxDepth() async throws {
        try await withScratch { scratch in
            let config = try writeDaemonConfiguration("max_depth = 3\n", in: scratch)
            try await withMountCalls(arguments: ["--config", config]) { daemon, api, calls in
                let status = try await calls.status()
                #expect(status.maxDepth == 3)
                #expect(status.deepestChain == 0)
                #expect(!status.rootFilesystem.isEmpty && status.rootFilesystem != "overlay", "\(status.rootFilesystem)")
                #expect(status.overlay.dType, "the state root reports no d_type")
                try await buildCommittedChain(daemon, depth: 4) { n, layer in
                    try Tree.write(layer + "/layer-\(n)", "\(n)")
                }
                #expect(try await calls.status().deepestChain == 4)

                // Three layers are allowed, for an active snapshot and for a view.
                try await api.prepared("three", parent: "L3")
                try await api.prepared("three-view", parent: "L3", kind: .view)
                let target = try daemon.mountPoint("three")
                try await calls.mounted("three", at: target)
                #expect(try Tree.entries(target) == ["layer-1", "layer-2", "layer-3"])
                try await calls.unmounted(target)

                let before = try await StateSnapshot(daemon)
                for kind in [SnapshotKind.active, .view] {
                    expectError(
                        try await api.prepare("four", parent: "L4", kind: kind), 409, "failed_precondition",
                        mentioning: ["chain depth 4 exceeds max_depth 3", "\"L4\""])
                }
                #expect(try await StateSnapshot(daemon) == before, "a refused prepare left something behind")
            }
        }
    }

    @Test("configured limits and overlay options are validated at start-up")
    func badConfigurationRefused() async throws {
        try await withScratch { scratch in
            let cases: [(text: String, words: [String])] = [
                ("max_depth = 501\n", ["max_depth", "501"]),
                ("max_depth = 0\n", ["max_depth"]),
                ("overlay_options = [\"bogus\"]\n", ["bogus"]),
                ("overlay_options = [\"index=off\", \"nfs_export=on\"]\n", ["nfs_export=on"]),
                ("overlay_options = [\"index=maybe\"]\n", ["index=maybe"]),
            ]
            for (n, item) in cases.enumerated() {
                let config = try writeDaemonConfiguration(item.text, in: scratch, name: "bad-\(n).toml")
                let socket = scratch + "/s.sock"
                let result = try await runTool(
                    BuildProducts.veneerd, ["--config", config, "--root", scratch + "/root", "--socket", socket],
                    timeout: .seconds(30))
                #expect(result.failedCleanly, "\(item.text): \(result)")
                for word in item.words {
                    #expect(result.stderr.contains(word), "\(item.text): the message should name \(word): \(result)")
                }
                #expect(!Tree.exists(socket), "\(item.text): a refused start left a socket")
            }
        }
    }

    @Test("overlay_options from the configuration are appended to the overlay mounts")
    func overlayOptionsApplied() async throws {
        try await withScratch { scratch in
            let config = try writeDaemonConfiguration("overlay_options = [\"index=off\"]\n", in: scratch)
            try await withMountCalls(arguments: ["--config", config]) { daemon, api, calls in
                try await buildCommittedChain(daemon, depth: 2) { n, layer in
                    try Tree.write(layer + "/layer-\(n)", "\(n)")
                }
                let child = try await api.prepared("child", parent: "L2")
                #expect(child.mounts.first?.type == "overlay")
                #expect(child.mounts.first?.options.contains("index=off") == true, "\(child.mounts)")
                let view = try await api.prepared("look", parent: "L2", kind: .view)
                #expect(view.mounts.first?.options.contains("index=off") == true, "\(view.mounts)")

                let target = try daemon.mountPoint("child")
                let live = try await calls.mounted("child", at: target)
                #expect(live.mounts == child.mounts)
                #expect(live.mounts.first?.options.contains("index=off") == true)
                #expect(try Tree.entries(target) == ["layer-1", "layer-2"])
                try Tree.write(target + "/new", "written")
                #expect(try Tree.read(ownLayer(of: child.mounts) + "/new") == "written")
                let viewTarget = try daemon.mountPoint("look")
                let liveView = try await calls.mounted("look", at: viewTarget)
                #expect(liveView.mounts.first?.options.contains("index=off") == true)
                #expect(try await calls.live(key: "look") == [liveView])
                try await calls.unmounted(viewTarget)
                try await calls.unmounted(target)
            }
        }
    }

    @Test("a state root on overlayfs is refused at start-up with a message saying what to do")
    func stateRootOnOverlay() async throws {
        try await withScratch { scratch in
            for dir in ["lower", "upper", "work", "merged"] {
                try Tree.makeDirectory(scratch + "/" + dir)
            }
            let merged = scratch + "/merged"
            let options = "lowerdir=\(scratch)/lower,upperdir=\(scratch)/upper,workdir=\(scratch)/work"
            let made = try ProcessRun.run("/bin/mount", ["-t", "overlay", "overlay", "-o", options, merged])
            try #require(made.status == 0, "mount overlay: \(made.stderr)")
            defer { Mounts.unmount(merged) }
            try Tree.makeDirectory(merged + "/existing")
            let socket = scratch + "/s.sock"
            for root in [merged + "/existing", merged + "/new-root"] {
                let result = try await runTool(
                    BuildProducts.veneerd, ["--root", root, "--socket", socket], timeout: .seconds(30))
                #expect(result.failedCleanly, "root \(root): \(result)")
                for word in [root, "overlayfs", "ext4", "xfs", "btrfs"] {
                    #expect(result.stderr.contains(word), "the message should mention \(word): \(result)")
                }
                #expect(!Tree.exists(socket), "a refused start left a socket")
                #expect(!Tree.exists(root + "/metadata.db"), "a refused start created the database")
            }
            Mounts.unmount(merged)
            #expect(try !KernelMounts.isMountPoint(merged))
        }
    }
}
