import Foundation
import VeneerOS

/// The layers phase: applying a layer through the API against GNU tar unpacking the same
/// tar into an empty directory, the two taking turns in each round; and the changes and
/// the diff of a few changed files on top of a large image against a walk of both trees.
struct LayerBench {
    let socket: String
    let scratch: String
    let rounds: Int
    let files: Int
    let megabytes: Int
    let imageFiles: Int
    let tag: String
    /// containerd's binary, for the image-import comparison; nil to leave it out.
    let containerd: String?
    /// The `veneer` CLI, for the image-import comparison.
    let cli: String

    func run() throws {
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let layer = scratch + "/layer.tar"
        try Self.python(Self.makeLayer, [layer, String(files), String(megabytes)])
        let size = (try FileManager.default.attributesOfItem(atPath: layer)[.size] as? NSNumber)?.int64Value ?? 0
        print(String(format: "layers: a tar of %d files, %.1f MiB; %d rounds, GNU tar and PUT /layer taking turns", files, Double(size) / 1_048_576, rounds))
        let connection = try HTTPConnection(socket: socket)
        var tarTimes: [Double] = []
        var tarSyncTimes: [Double] = []
        var putTimes: [Double] = []
        for round in 0..<rounds {
            // GNU tar into an empty directory on the same file system, then the same
            // made durable (the API syncs before it answers).
            let target = scratch + "/tar-\(round)"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            // Each side starts with nothing left to write back from the one before.
            try Self.run("/bin/sync", [])
            let t0 = SystemClock.monotonicNanoseconds()
            try Self.run("/bin/tar", ["-xf", layer, "-C", target])
            let t1 = SystemClock.monotonicNanoseconds()
            try Self.run("/bin/sync", ["-f", target])
            let t2 = SystemClock.monotonicNanoseconds()
            tarTimes.append(Double(t1 - t0) / 1e9)
            tarSyncTimes.append(Double(t2 - t0) / 1e9)

            let key = "bench-apply-\(tag)-\(round)"
            try expect(connection.request("POST", "/v1/snapshots", json: #"{"key":"\#(key)"}"#), 201, "prepare")
            try Self.run("/bin/sync", [])
            let p0 = SystemClock.monotonicNanoseconds()
            try expect(
                connection.upload("PUT", "/v1/snapshots/\(key)/layer", contentType: "application/vnd.oci.image.layer.v1.tar", file: layer),
                200, "apply")
            let p1 = SystemClock.monotonicNanoseconds()
            putTimes.append(Double(p1 - p0) / 1e9)
            print(String(format: "  round %d: tar -xf %.2f s, tar -xf + sync %.2f s, PUT /layer %.2f s", round + 1, tarTimes.last ?? 0, tarSyncTimes.last ?? 0, putTimes.last ?? 0))
        }
        // Nothing is deleted until every round is done: ext4 spends long in allocating
        // inodes right after many were freed (its recently_deleted scan), which would
        // slow whichever side came after a removal.
        for round in 0..<rounds {
            try FileManager.default.removeItem(atPath: scratch + "/tar-\(round)")
            try expect(connection.request("DELETE", "/v1/snapshots/bench-apply-\(tag)-\(round)"), 204, "remove")
        }
        let tar = ContainerdBench.median(tarTimes)
        let tarSync = ContainerdBench.median(tarSyncTimes)
        let put = ContainerdBench.median(putTimes)
        print(String(format: "  medians: tar -xf %.2f s, tar -xf + sync %.2f s, PUT /layer %.2f s: %.2f× tar -xf, %.2f× tar -xf + sync", tar, tarSync, put, put / tar, put / tarSync))
        if let containerd { try imports(layer, containerd: containerd) }
        try changes(connection)
    }

    /// `veneer import` against `ctr images import` (containerd's content store and its
    /// applier into its overlayfs snapshotter) of the same OCI archive of the layer,
    /// taking turns, each on a layer of its own. Both write the layer twice: once as a blob (containerd's content
    /// store, the CLI's unpacked layout in the scratch directory), once unpacked.
    private func imports(_ layer: String, containerd: String) throws {
        // A layer of its own per round (one more entry at the end), so that neither side
        // finds it already there; nothing is removed until the end.
        var archives: [String] = []
        for round in 0..<rounds {
            let variant = scratch + "/layer-\(round).tar"
            try FileManager.default.copyItem(atPath: layer, toPath: variant)
            try Self.python(Self.appendEntry, [variant, "round-\(round)"])
            let archive = scratch + "/image-archive-\(round).tar"
            try Self.python(Self.makeArchive, [variant, scratch + "/image-layout", archive, "bench.example/layer:\(round)"])
            try FileManager.default.removeItem(atPath: variant)
            archives.append(archive)
        }
        let root = scratch + "/containerd"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let address = root + "/containerd.sock"
        let config = """
            version = 2
            root = "\(root)/root"
            state = "\(root)/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
            [grpc]
              address = "\(address)"
            [ttrpc]
              address = "\(address).ttrpc"
            """
        try config.write(toFile: root + "/config.toml", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: containerd)
        process.arguments = ["--config", root + "/config.toml", "--log-level", "warn"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(30)
        while !UnixSocket.isListening(address) {
            guard process.isRunning, Date() < deadline else { throw BenchError("containerd did not start") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let ctr = "/usr/bin/ctr"
        let ctrBase = ["--address", address, "--namespace", "bench"]
        var ctrTimes: [Double] = []
        var veneerTimes: [Double] = []
        for round in 0..<rounds {
            try Self.run("/bin/sync", [])
            let c0 = SystemClock.monotonicNanoseconds()
            try Self.run(ctr, ctrBase + ["images", "import", "--snapshotter", "overlayfs", archives[round]])
            let c1 = SystemClock.monotonicNanoseconds()
            ctrTimes.append(Double(c1 - c0) / 1e9)

            try Self.run("/bin/sync", [])
            let v0 = SystemClock.monotonicNanoseconds()
            try Self.run(cli, ["--socket", socket, "import", archives[round]], environment: ["TMPDIR": scratch])
            let v1 = SystemClock.monotonicNanoseconds()
            veneerTimes.append(Double(v1 - v0) / 1e9)
            print(String(format: "  import round %d: ctr images import %.2f s, veneer import %.2f s", round + 1, ctrTimes.last ?? 0, veneerTimes.last ?? 0))
        }
        let ctrMedian = ContainerdBench.median(ctrTimes)
        let veneerMedian = ContainerdBench.median(veneerTimes)
        print(String(format: "  import medians: ctr images import (containerd's applier, overlayfs) %.2f s, veneer import %.2f s: %.2f×", ctrMedian, veneerMedian, veneerMedian / ctrMedian))
    }

    /// Appends an entry named argv[2] to the tar argv[1].
    static let appendEntry = """
        import io, sys, tarfile
        with tarfile.open(sys.argv[1], "a", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(sys.argv[2]); info.size = 1; info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(b"x"))
        """

    /// An OCI image archive (a tar of a layout) of one uncompressed layer, named argv[4].
    static let makeArchive = """
        import hashlib, json, os, platform, shutil, sys, tarfile
        layer, out, archive, name = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
        os.makedirs(out + "/blobs/sha256", exist_ok=True)
        def put(data):
            d = hashlib.sha256(data).hexdigest()
            open(out + "/blobs/sha256/" + d, "wb").write(data)
            return "sha256:" + d, len(data)
        h = hashlib.sha256()
        with open(layer, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""): h.update(block)
        digest = "sha256:" + h.hexdigest()
        shutil.copyfile(layer, out + "/blobs/sha256/" + h.hexdigest())
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        config = put(json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [digest]}}).encode())
        manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config[0], "size": config[1]},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": os.path.getsize(layer)}]}).encode())
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest[0], "size": manifest[1], "platform": {"architecture": arch, "os": "linux"},
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}}]},
            open(out + "/index.json", "w"))
        open(out + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
        with tarfile.open(archive, "w") as tar:
            for name in ["oci-layout", "index.json", "blobs"]: tar.add(out + "/" + name, arcname=name)
        shutil.rmtree(out)
        """

    /// Changes and diff of ten changed files on an image of `imageFiles` files, against
    /// a walk of both trees comparing every entry's metadata.
    private func changes(_ connection: HTTPConnection) throws {
        let image = scratch + "/image.tar"
        try Self.python(Self.makeLayer, [image, String(imageFiles), "0"])
        let base = "bench-image-\(tag)"
        try expect(connection.request("POST", "/v1/snapshots", json: #"{"key":"\#(base)-w"}"#), 201, "prepare image")
        try expect(
            connection.upload("PUT", "/v1/snapshots/\(base)-w/layer", contentType: "application/vnd.oci.image.layer.v1.tar", file: image),
            200, "apply image")
        try expect(connection.request("POST", "/v1/snapshots/\(base)-w/commit", json: #"{"name":"\#(base)"}"#), 201, "commit image")
        let container = "bench-ctr-\(tag)"
        try expect(connection.request("POST", "/v1/snapshots", json: #"{"key":"\#(container)","parent":"\#(base)"}"#), 201, "prepare container")
        try expect(connection.request("POST", "/v1/snapshots", json: #"{"key":"\#(base)-view","parent":"\#(base)","kind":"view"}"#), 201, "view")
        let merged = scratch + "/merged"
        let lower = scratch + "/lower"
        for dir in [merged, lower] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        try expect(connection.request("POST", "/v1/mounts", json: #"{"key":"\#(container)","target":"\#(merged)"}"#), 201, "mount")
        // Ten changes: five files written, three deleted, two added.
        for i in 0..<5 { try Data("changed \(i)\n".utf8).write(to: URL(fileURLWithPath: merged + "/d\(i)/f\(i)")) }
        for i in 5..<8 { try FileManager.default.removeItem(atPath: merged + "/d\(i)/f\(i)") }
        for i in 8..<10 { try Data("added\n".utf8).write(to: URL(fileURLWithPath: merged + "/d\(i)/new\(i)")) }
        try expect(connection.request("DELETE", "/v1/mounts?target=\(merged)"), 204, "unmount")
        try expect(connection.request("POST", "/v1/mounts", json: #"{"key":"\#(container)","target":"\#(merged)","readonly":true}"#), 201, "mount read-only")
        try expect(connection.request("POST", "/v1/mounts", json: #"{"key":"\#(base)-view","target":"\#(lower)"}"#), 201, "mount view")
        defer {
            _ = try? connection.request("DELETE", "/v1/mounts?target=\(merged)")
            _ = try? connection.request("DELETE", "/v1/mounts?target=\(lower)")
        }
        var changeTimes: [Double] = []
        var diffTimes: [Double] = []
        var walkTimes: [Double] = []
        var found = 0
        for _ in 0..<max(3, rounds) {
            let w0 = SystemClock.monotonicNanoseconds()
            found = try Self.doubleWalk(lower, merged)
            let w1 = SystemClock.monotonicNanoseconds()
            let listed = try connection.request("GET", "/v1/snapshots/\(container)/changes")
            let w2 = SystemClock.monotonicNanoseconds()
            let layer = try connection.request("GET", "/v1/snapshots/\(container)/diff")
            let w3 = SystemClock.monotonicNanoseconds()
            try expect(listed, 200, "changes")
            try expect(layer, 200, "diff")
            walkTimes.append(Double(w1 - w0) / 1e9)
            changeTimes.append(Double(w2 - w1) / 1e9)
            diffTimes.append(Double(w3 - w2) / 1e9)
        }
        let walk = ContainerdBench.median(walkTimes)
        let listed = ContainerdBench.median(changeTimes)
        let diff = ContainerdBench.median(diffTimes)
        print(String(format: "layers: 10 changes on an image of %d files: double walk %.1f ms (%d differences), GET /changes %.2f ms (%.0f× faster), GET /diff %.2f ms (%.0f× faster)",
            imageFiles, walk * 1e3, found, listed * 1e3, walk / listed, diff * 1e3, walk / diff))
    }

    /// Walks both trees side by side, comparing each entry's type, mode, owner, size and
    /// modification time; returns the number of differences.
    static func doubleWalk(_ a: String, _ b: String) throws -> Int {
        func walk(_ x: Descriptor?, _ y: Descriptor?) throws -> Int {
            let xs = Set(try x?.entries() ?? [])
            let ys = Set(try y?.entries() ?? [])
            var differences = 0
            for name in xs.union(ys) {
                let sx = try x?.status(name)
                let sy = try y?.status(name)
                guard let sx, let sy else {
                    differences += 1
                    continue
                }
                if sx.type != sy.type || sx.permissions != sy.permissions || sx.uid != sy.uid || sx.gid != sy.gid
                    || sx.size != sy.size || sx.modified != sy.modified
                {
                    differences += 1
                }
                if sx.type == .directory, sy.type == .directory {
                    differences += try walk(try x?.openDirectory(name), try y?.openDirectory(name))
                }
            }
            return differences
        }
        return try walk(try Descriptor.openDirectory(a), try Descriptor.openDirectory(b))
    }

    /// Writes a tar of `files` files in 100 directories: with a size in MiB, files of
    /// random bytes whose sizes add up to about it (most small, a few large); with 0,
    /// files of a few bytes.
    static let makeLayer = """
        import io, os, random, sys, tarfile
        path, files, megabytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        rng = random.Random(42)
        total = megabytes << 20
        large = files // 100 if megabytes else 0
        small_size = (total // 2) // max(1, files - large) if megabytes else 8
        large_size = (total - small_size * (files - large)) // max(1, large) if megabytes else 0
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for d in range(100):
                info = tarfile.TarInfo("d%d" % d); info.type = tarfile.DIRTYPE; info.mode = 0o755; info.mtime = 1700000000
                tar.addfile(info)
                # Each directory's files right after it, as a tar of a tree has them.
                for i in range(d, files, 100):
                    size = large_size if i < large else small_size
                    info = tarfile.TarInfo("d%d/f%d" % (d, i)); info.size = size; info.mode = 0o644; info.mtime = 1700000000
                    tar.addfile(info, io.BytesIO(rng.randbytes(size)))
        """

    private func expect(_ response: HTTPConnection.Response, _ status: Int, _ what: String) throws {
        if response.status != status {
            throw BenchError("\(what): HTTP \(response.status): \(String(decoding: response.body.prefix(2000), as: UTF8.self))")
        }
    }

    static func python(_ script: String, _ arguments: [String]) throws {
        try run("/usr/bin/python3", ["-c", script] + arguments)
    }

    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchError("\(executable) \(arguments.prefix(2).joined(separator: " ")) exited with \(process.terminationStatus)")
        }
    }
}
