import Foundation
import Testing
import VeneerCore
import VeneerTestSupport
import VeneerWire

@Suite("CLI: veneer import")
struct ImportTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path + "/Support/make-oci-image.py"

    /// The chain IDs of the layout's one image, computed by Python from its config.
    static func chainIDs(_ layout: String) throws -> [String] {
        let code = """
            import hashlib, json, sys
            root = sys.argv[1]
            blob = lambda d: json.load(open(root + "/blobs/sha256/" + d.split(":")[1]))
            manifest = blob(json.load(open(root + "/index.json"))["manifests"][0]["digest"])
            chain = None
            for diff in blob(manifest["config"]["digest"])["rootfs"]["diff_ids"]:
                chain = diff if chain is None else "sha256:" + hashlib.sha256((chain + " " + diff).encode()).hexdigest()
                print(chain)
            """
        let run = try ProcessRun.run("/usr/bin/python3", ["-c", code, layout])
        guard run.succeeded else { throw TestFailure("chain IDs: \(run)") }
        return run.stdout.split(separator: "\n").map(String.init)
    }

    @Test("an OCI layout becomes a chain of committed snapshots named by chain ID; again from a tar, the layers are reused; prepare takes the image's name")
    func imports() async throws {
        try await withDaemon { daemon in
            let cli = CLITests()
            let layout = daemon.temp.path + "/layout"
            let made = try ProcessRun.run("/usr/bin/python3", [Self.script, layout, "example.com/app:1", "1"])
            try #require(made.succeeded, "\(made)")
            let chain = try Self.chainIDs(layout)
            try #require(chain.count == 3)

            let printed = try await cli.succeeding(daemon, ["import", layout])
            #expect(printed == chain[2] + "\n")
            let snapshots = try await daemon.client.list()
            #expect(Set(snapshots.map(\.key)) == Set(chain))
            for (index, key) in chain.enumerated() {
                let info = try #require(snapshots.first { $0.key == key })
                #expect(info.kind == .committed)
                #expect(info.parent == (index == 0 ? nil : chain[index - 1]))
            }
            let top = try #require(snapshots.first { $0.key == chain[2] })
            #expect(top.labels["veneer.image/example.com/app:1"]?.hasPrefix("sha256:") == true)

            _ = try await cli.succeeding(daemon, ["prepare", "ctr", "example.com/app:1"])
            #expect(try await daemon.client.stat("ctr").parent == chain[2])
            let target = try daemon.mountPoint()
            try Mounts.mount(try await daemon.client.mounts("ctr"), at: target)
            defer { Mounts.unmount(target) }
            #expect(try Tree.read(target + "/etc/motd") == "two\n")
            #expect(!Tree.exists(target + "/etc/gone"))
            #expect(try Tree.read(target + "/layer0") == "0\n")
            #expect(try Tree.read(target + "/newdir/file") == "new\n")

            // From a tar of the layout, by name: every layer is there already.
            let archive = daemon.temp.path + "/layout.tar"
            let tarred = try ProcessRun.run("/bin/tar", ["-C", layout, "-cf", archive, "."])
            try #require(tarred.succeeded, "\(tarred)")
            #expect(try await cli.succeeding(daemon, ["import", archive, "--name", "example.com/app:1"]) == chain[2] + "\n")
            #expect(try await daemon.client.list().count == 4)
            let unknown = try await cli.veneer(daemon, ["import", archive, "--name", "other:2"])
            #expect(unknown.failedCleanly && unknown.stderr.contains("no image named") && unknown.stderr.contains("example.com/app:1"), "\(unknown)")
        }
    }

    @Test("a damaged layer is refused by its digest, and leaves no snapshot behind")
    func damaged() async throws {
        try await withDaemon { daemon in
            let cli = CLITests()
            let layout = daemon.temp.path + "/layout"
            let made = try ProcessRun.run("/usr/bin/python3", [Self.script, layout, "example.com/app:1", "0"])
            try #require(made.succeeded, "\(made)")
            let chain = try Self.chainIDs(layout)
            // The second layer's blob, one byte changed (its name kept).
            let manifest = try Self.json(layout, Self.json(layout, nil)["manifests"].flatMap { ($0 as? [[String: Any]])?.first?["digest"] as? String })
            let layers = try #require(manifest["layers"] as? [[String: Any]])
            let digest = try #require(layers[1]["digest"] as? String)
            let blob = layout + "/blobs/sha256/" + digest.dropFirst(7)
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: blob)))
            bytes[bytes.count / 2] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: blob))

            let result = try await cli.veneer(daemon, ["import", layout])
            #expect(result.failedCleanly && result.stderr.contains(digest), "\(result)")
            let keys = try await daemon.client.list().map(\.key)
            #expect(keys == [chain[0]], "\(keys)")
        }
    }

    static func json(_ layout: String, _ digest: String?) throws -> [String: Any] {
        let path = digest.map { layout + "/blobs/sha256/" + $0.dropFirst(7) } ?? layout + "/index.json"
        return try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
    }
}
