import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

/// containerd 1.6 (Debian's) with veneerd as its proxy snapshotter, running containers
/// with runc.
@Suite("containerd", .serialized)
struct ContainerdTests {
    static let image = "docker.io/veneer/test:1"
    /// What the test container prints: layer 2's motd, the whiteout, the new directory,
    /// and a write to its own layer.
    static let script = "cat /etc/motd; test -e /etc/gone && echo present || echo gone; ls /newdir; echo w > /tmp/x && cat /tmp/x"

    /// The key containerd's metadata layer gave a backend key (`<namespace>/<id>/<key>`).
    static func containerdKey(_ backendKey: String) -> String {
        let parts = backendKey.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        return parts.count == 3 ? String(parts[2]) : backendKey
    }

    @Test("ctr runs a container on Veneer's snapshots; containerd's GC removes them and leaves the default namespace alone")
    func runAndCollect() async throws {
        try await withContainerd { daemon, containerd in
            _ = try await daemon.client.prepare(PrepareRequest(key: "mine"))
            let scoped = VeneerClient(socketPath: daemon.socket, namespace: "containerd")
            try await containerd.succeeding(["images", "import", "--snapshotter", "veneer", try containerd.imageArchive(Self.image)])

            let output = try await containerd.succeeding(
                ["run", "--rm", "--snapshotter", "veneer", Self.image, "t1", "/bin/sh", "-c", Self.script])
            #expect(output.split(separator: "\n") == ["two", "gone", "file", "w"])

            // What containerd lists is what Veneer holds in its containerd namespace, once
            // containerd's garbage collector (which runs after the container's removal) has
            // removed the container's own snapshot.
            var listed = try await containerd.snapshots()
            var held = try await scoped.list()
            let settled = Date().addingTimeInterval(20)
            while Set(held.map { Self.containerdKey($0.key) }) != Set(listed.keys) && Date() < settled {
                try await Task.sleep(for: .milliseconds(100))
                listed = try await containerd.snapshots()
                held = try await scoped.list()
            }
            #expect(listed.count == 2, "\(listed)")
            #expect(Set(held.map { Self.containerdKey($0.key) }) == Set(listed.keys))
            for info in held {
                #expect(listed[Self.containerdKey(info.key)] == info.parent.map(Self.containerdKey) ?? "", "\(info)")
                #expect(info.kind == .committed)
            }
            #expect(try await daemon.client.list().map(\.key) == ["mine"])
            let status = try await daemon.client.status()
            #expect(status.grpcSocket == daemon.grpcSocket)
            #expect(status.namespaces["containerd"]?.committed == 2)

            try await containerd.succeeding(["images", "rm", "--sync", Self.image])
            // The collection removed every snapshot of the image and then asked for a cleanup.
            var left = try await scoped.list()
            var trash = try FileManager.default.contentsOfDirectory(atPath: daemon.root + "/trash")
            let deadline = Date().addingTimeInterval(20)
            while (!left.isEmpty || !trash.isEmpty) && Date() < deadline {
                try await Task.sleep(for: .milliseconds(100))
                left = try await scoped.list()
                trash = try FileManager.default.contentsOfDirectory(atPath: daemon.root + "/trash")
            }
            #expect(left.isEmpty, "\(left)")
            #expect(trash.isEmpty, "\(trash)")
            #expect(try await containerd.snapshots().isEmpty)
            #expect(try await daemon.client.list().map(\.key) == ["mine"])
            let mineDirectory = try #require(try await daemon.client.mounts("mine").first?.source)
            #expect(FileManager.default.fileExists(atPath: mineDirectory))
            #expect(try FileManager.default.contentsOfDirectory(atPath: daemon.root + "/snapshots").count == 1)
        }
    }

    @Test("veneerd restarts while containerd runs: containerd reconnects and the image's snapshots are still there")
    func restartUnderContainerd() async throws {
        try await withContainerd { daemon, containerd in
            try await containerd.succeeding(["images", "import", "--snapshotter", "veneer", try containerd.imageArchive(Self.image)])
            let before = try await containerd.snapshots()
            #expect(before.count == 2)
            try #require(try await daemon.stop() == 0)
            try await daemon.start()
            // containerd's client reconnects by itself, after its own back-off.
            var after: Result<[String: String], any Error> = .success([:])
            let deadline = Date().addingTimeInterval(30)
            repeat {
                do { after = .success(try await containerd.snapshots()) } catch { after = .failure(error) }
                if case .success(let listed) = after, !listed.isEmpty { break }
                try await Task.sleep(for: .milliseconds(200))
            } while Date() < deadline
            #expect(try after.get() == before)
            let output = try await containerd.succeeding(
                ["run", "--rm", "--snapshotter", "veneer", Self.image, "t2", "/bin/sh", "-c", "cat /etc/motd"])
            #expect(output == "two\n")
        }
    }

    @Test("a 142-layer image mounts through containerd's own mount(2) path")
    func deepImage() async throws {
        try await withContainerd { daemon, containerd in
            let image = "docker.io/veneer/deep:1"
            try await containerd.succeeding(
                ["images", "import", "--snapshotter", "veneer", try containerd.imageArchive(image, extraLayers: 140)])
            // 141 lower layers: their absolute paths are longer than the one page of options
            // mount(2) takes, so containerd has to shorten them to mount the container.
            let status = try await daemon.client.status()
            #expect(status.deepestChain == 142)
            let output = try await containerd.succeeding(
                ["run", "--rm", "--snapshotter", "veneer", image, "t3", "/bin/sh", "-c", "cat /etc/motd /layer0 /layer139"])
            #expect(output.split(separator: "\n") == ["two", "0", "139"])
        }
    }
}
