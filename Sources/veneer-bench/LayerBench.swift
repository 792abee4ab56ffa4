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
            let t0 = SystemClock.monotonicNanoseconds()
            try Self.run("/bin/tar", ["-xf", layer, "-C", target])
            let t1 = SystemClock.monotonicNanoseconds()
            try Self.run("/bin/sync", ["-f", target])
            let t2 = SystemClock.monotonicNanoseconds()
            tarTimes.append(Double(t1 - t0) / 1e9)
            tarSyncTimes.append(Double(t2 - t0) / 1e9)
            try FileManager.default.removeItem(atPath: target)

            let key = "bench-apply-\(tag)-\(round)"
            try expect(connection.request("POST", "/v1/snapshots", json: #"{"key":"\#(key)"}"#), 201, "prepare")
            let p0 = SystemClock.monotonicNanoseconds()
            try expect(
                connection.upload("PUT", "/v1/snapshots/\(key)/layer", contentType: "application/vnd.oci.image.layer.v1.tar", file: layer),
                200, "apply")
            let p1 = SystemClock.monotonicNanoseconds()
            putTimes.append(Double(p1 - p0) / 1e9)
            try expect(connection.request("DELETE", "/v1/snapshots/\(key)"), 204, "remove")
            print(String(format: "  round %d: tar -xf %.2f s, tar -xf + sync %.2f s, PUT /layer %.2f s", round + 1, tarTimes.last ?? 0, tarSyncTimes.last ?? 0, putTimes.last ?? 0))
        }
        let tar = ContainerdBench.median(tarTimes)
        let tarSync = ContainerdBench.median(tarSyncTimes)
        let put = ContainerdBench.median(putTimes)
        print(String(format: "  medians: tar -xf %.2f s, tar -xf + sync %.2f s, PUT /layer %.2f s: %.2f× tar -xf, %.2f× tar -xf + sync", tar, tarSync, put, put / tar, put / tarSync))
        try changes(connection)
    }

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
            for i in range(files):
                size = large_size if i < large else small_size
                info = tarfile.TarInfo("d%d/f%d" % (i % 100, i)); info.size = size; info.mode = 0o644; info.mtime = 1700000000
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

    static func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchError("\(executable) \(arguments.prefix(2).joined(separator: " ")) exited with \(process.terminationStatus)")
        }
    }
}
