import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerOS
import VeneerTestSupport
import VeneerWire

/// Layers made with GNU tar from a directory, compressed by gzip or zstd.
enum Layers {
    /// A tar of the contents of `directory` (entries `./`, `./name`, ...).
    static func tar(_ directory: String, compression: LayerCompression = .none) throws -> [UInt8] {
        let out = directory + ".tar"
        let made = try ProcessRun.run(
            "/bin/tar", ["--numeric-owner", "--sort=name", "-C", directory, "-cf", out, "."])
        guard made.succeeded else { throw TestFailure("tar: \(made)") }
        switch compression {
        case .none:
            return Array(try Data(contentsOf: URL(fileURLWithPath: out)))
        case .gzip:
            let run = try ProcessRun.run("/bin/gzip", ["-n", "-f", out])
            guard run.succeeded else { throw TestFailure("gzip: \(run)") }
            return Array(try Data(contentsOf: URL(fileURLWithPath: out + ".gz")))
        case .zstd:
            let run = try ProcessRun.run("/usr/bin/zstd", ["-q", "-f", "--rm", out])
            guard run.succeeded else { throw TestFailure("zstd: \(run)") }
            return Array(try Data(contentsOf: URL(fileURLWithPath: out + ".zst")))
        }
    }

    static func sha256(_ bytes: [UInt8], in directory: String) throws -> String {
        let path = directory + "/digest-\(UUID().uuidString)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try ProcessRun.run("/usr/bin/sha256sum", [path])
        guard run.succeeded, let hex = run.stdout.split(separator: " ").first else { throw TestFailure("sha256sum: \(run)") }
        return "sha256:" + hex
    }
}

extension APIPath {
    static func layer(_ key: String, query: String = "") -> String {
        snapshot(key) + "/layer" + (query.isEmpty ? "" : "?" + query)
    }
}

extension CheckedAPI {
    /// `PUT /v1/snapshots/{key}/layer`.
    func applyLayer(
        _ key: String, _ bytes: [UInt8], mediaType: String? = LayerMediaType.name(of: .gzip), query: String = "",
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> RawResponse {
        try await checked(
            daemon, "PUT", APIPath.layer(key, query: query), template: "/v1/snapshots/{key}/layer", body: bytes,
            headers: mediaType.map { [("Content-Type", $0)] } ?? [], sourceLocation: sourceLocation)
    }
}

@Suite("PUT /v1/snapshots/{key}/layer")
struct LayerRouteTests {
    /// A directory of content: a file, a nested file, a symbolic link.
    static func content(_ temp: TemporaryDirectory, name: String, file: String) throws -> String {
        let dir = temp.path + "/" + name
        try Tree.makeDirectory(dir)
        try Tree.makeDirectory(dir + "/etc")
        try Tree.write(dir + "/etc/hostname", file)
        try Tree.symlink("etc/hostname", at: dir + "/link")
        return dir
    }

    /// A committed `base` made by a layer of ``content(_:name:file:)`` ("base\n"), and
    /// the active snapshot `ctr` on it mounted by the daemon at the target returned.
    static func containerOnBase(_ daemon: Daemon, _ api: CheckedAPI, _ mounts: MountCalls) async throws -> String {
        let layer = try Layers.tar(try content(daemon.temp, name: "c", file: "base\n"), compression: .gzip)
        try #require(try await api.prepare("base-w").status == 201)
        try #require(try await api.applyLayer("base-w", layer).status == 200)
        try #require(try await api.commit("base-w", name: "base").status == 201)
        try #require(try await api.prepare("ctr", parent: "base").status == 201)
        let target = try daemon.mountPoint()
        try await mounts.mounted("ctr", at: target)
        return target
    }

    @Test("a gzip and a zstd layer go in, answer their digests, and the daemon's mount shows them, the upper one over the lower")
    func appliesAndMounts() async throws {
        try await withMountCalls { daemon, api, mounts in
            let lower = try Layers.tar(try Self.content(daemon.temp, name: "lower", file: "lower\n"), compression: .gzip)
            let upperDir = try Self.content(daemon.temp, name: "upper", file: "upper\n")
            try Tree.write(upperDir + "/only-upper", "u")
            let upperTar = try Layers.tar(upperDir)
            let upper = try Layers.tar(upperDir, compression: .zstd)

            try #require(try await api.prepare("base-w").status == 201)
            let digest = try Layers.sha256(lower, in: daemon.temp.path)
            let response = try await api.applyLayer("base-w", lower, query: "digest=" + digest)
            try #require(response.status == 200, "\(response.text)")
            let applied = try response.decoded(LayerAppliedResponse.self)
            #expect(applied.digest == digest)
            #expect(applied.size == Int64(lower.count))
            #expect(applied.entries == 4)
            #expect(applied.uncompressedSize > Int64(lower.count))
            #expect(try await api.commit("base-w", name: "base").status == 201)

            try #require(try await api.prepare("top-w", parent: "base").status == 201)
            let diffID = try Layers.sha256(upperTar, in: daemon.temp.path)
            let top = try await api.applyLayer(
                "top-w", upper, mediaType: LayerMediaType.name(of: .zstd), query: "diff_id=" + diffID)
            try #require(top.status == 200, "\(top.text)")
            #expect(try top.decoded(LayerAppliedResponse.self).diffID == diffID)
            #expect(try top.decoded(LayerAppliedResponse.self).uncompressedSize == Int64(upperTar.count))

            let target = try daemon.mountPoint()
            try await mounts.mounted("top-w", at: target)
            #expect(try Tree.read(target + "/etc/hostname") == "upper\n")
            #expect(try Tree.read(target + "/only-upper") == "u")
            #expect(try Tree.readLink(target + "/link") == "etc/hostname")
            try await mounts.unmounted(target)
        }
    }

    @Test("a body that is not a layer's media type is 415, and changes nothing")
    func mediaTypes() async throws {
        try await withAPI { daemon, api in
            let layer = try Layers.tar(try Self.content(daemon.temp, name: "c", file: "x"))
            try #require(try await api.prepare("w").status == 201)
            for type in ["application/json", "application/octet-stream", "application/vnd.oci.image.layer.v1.tar+bzip2", nil] {
                let response = try await api.applyLayer("w", layer, mediaType: type)
                expectError(response, 415, "unsupported_media_type", mentioning: [LayerMediaType.tar])
            }
            // Parameters and case of the media type do not matter; the deprecated
            // non-distributable types are taken too.
            let response = try await api.applyLayer("w", layer, mediaType: "Application/VND.oci.image.layer.nondistributable.v1.tar; x=y")
            #expect(response.status == 200, "\(response.text)")
        }
    }

    @Test("a wrong digest or diff_id, a corrupt stream, a bad entry and a layer past max_layer_size are 400; the layer stays empty")
    func refusals() async throws {
        let config = try TemporaryDirectory()
        defer { config.remove() }
        let file = config.path + "/veneerd.toml"
        try "max_layer_size = 3000000\n".write(toFile: file, atomically: true, encoding: .utf8)
        try await withDaemon(arguments: ["--config", file]) { daemon in
            let api = CheckedAPI(daemon)
            let dir = try Self.content(daemon.temp, name: "c", file: "x")
            let layer = try Layers.tar(dir, compression: .gzip)
            try #require(try await api.prepare("w").status == 201)
            let zero = "sha256:" + String(repeating: "0", count: 64)
            expectError(try await api.applyLayer("w", layer, query: "digest=" + zero), 400, "invalid_argument", mentioning: ["digest", zero])
            expectError(try await api.applyLayer("w", layer, query: "diff_id=" + zero), 400, "invalid_argument", mentioning: ["diff_id"])
            expectError(try await api.applyLayer("w", layer, query: "digest=sha256:abc"), 400, "invalid_argument", mentioning: ["not a digest"])
            expectError(try await api.applyLayer("w", layer, query: "digest=\(zero)&digest=\(zero)"), 400, "invalid_argument")
            expectError(try await api.applyLayer("w", layer, query: "size=1"), 400, "invalid_argument", mentioning: ["size"])
            var corrupt = layer
            corrupt[corrupt.count / 2] ^= 0xff
            expectError(try await api.applyLayer("w", corrupt), 400, "invalid_argument", mentioning: ["stays empty"])
            expectError(try await api.applyLayer("w", Array(layer.prefix(layer.count / 2))), 400, "invalid_argument")

            // A file larger than max_layer_size; still no 413 for bodies over 1 MiB.
            let big = daemon.temp.path + "/big"
            try Tree.makeDirectory(big)
            var random = SplitMix64(seed: 7)
            try Tree.write(big + "/blob", bytes: (0..<2_000_000).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            let under = try Layers.tar(big)
            try Tree.write(big + "/blob2", bytes: (0..<2_000_000).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            let over = try Layers.tar(big)
            expectError(
                try await api.applyLayer("w", over, mediaType: LayerMediaType.tar), 400, "invalid_argument",
                mentioning: ["max_layer_size", "3000000"])
            let entries = try FileManager.default.contentsOfDirectory(atPath: daemon.root + "/snapshots")
            #expect(entries.count == 1)
            for entry in entries {
                #expect(try FileManager.default.contentsOfDirectory(atPath: daemon.root + "/snapshots/\(entry)/fs").isEmpty)
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: daemon.root + "/staging").isEmpty)

            // After all that, the snapshot takes a good layer.
            let response = try await api.applyLayer("w", under, mediaType: LayerMediaType.tar)
            #expect(response.status == 200, "\(response.text)")
            #expect(try response.decoded(LayerAppliedResponse.self).size == Int64(under.count))
        }
    }

    @Test("missing, committed, mounted or filled snapshots are refused before the body is read")
    func preconditions() async throws {
        try await withMountCalls { daemon, api, mounts in
            let layer = try Layers.tar(try Self.content(daemon.temp, name: "c", file: "x"), compression: .gzip)
            expectError(try await api.applyLayer("nope", layer), 404, "not_found", mentioning: ["nope"])
            try #require(try await api.prepare("w").status == 201)
            try #require(try await api.applyLayer("w", layer).status == 200)
            expectError(try await api.applyLayer("w", layer), 409, "failed_precondition", mentioning: ["already has content"])
            try #require(try await api.commit("w", name: "c").status == 201)
            expectError(try await api.applyLayer("c", layer), 409, "failed_precondition", mentioning: ["committed"])
            try #require(try await api.prepare("m", parent: "c").status == 201)
            let target = try daemon.mountPoint()
            try await mounts.mounted("m", at: target)
            expectError(try await api.applyLayer("m", layer), 409, "failed_precondition", mentioning: ["mounted", target])
            try await mounts.unmounted(target)
            #expect(try await api.applyLayer("m", layer).status == 200)
            #expect(try await api.prepare("v", parent: "c", kind: .view).status == 201)
            expectError(try await api.applyLayer("v", layer), 409, "failed_precondition", mentioning: ["view"])
        }
    }

    @Test("a client that goes away in the middle of its layer leaves the layer empty and the daemon serving")
    func clientGone() async throws {
        try await withAPI { daemon, api in
            let big = daemon.temp.path + "/big"
            try Tree.makeDirectory(big)
            var random = SplitMix64(seed: 11)
            try Tree.write(big + "/blob", bytes: (0..<3_000_000).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            let layer = try Layers.tar(big)
            try #require(try await api.prepare("w").status == 201)
            do {
                let connection = try UnixStreamConnection(path: daemon.socket)
                let head = "PUT \(APIPath.layer("w")) HTTP/1.1\r\nHost: localhost\r\nContent-Type: \(LayerMediaType.tar)\r\nContent-Length: \(layer.count)\r\n\r\n"
                try connection.writeAll(Array(head.utf8) + layer.prefix(layer.count / 2))
                try await Task.sleep(for: .milliseconds(300))
            }
            // The daemon notices, and drops what it had: once the first apply has let go
            // of the snapshot, the whole layer goes in (a layer left behind would be
            // refused as content).
            var response = try await api.applyLayer("w", layer, mediaType: LayerMediaType.tar)
            for _ in 0..<100 where response.status == 409 && response.errorMessage?.contains("busy") == true {
                try await Task.sleep(for: .milliseconds(50))
                response = try await api.applyLayer("w", layer, mediaType: LayerMediaType.tar)
            }
            #expect(response.status == 200, "\(response.text)")
            #expect(try response.decoded(LayerAppliedResponse.self).entries == 2)
        }
    }

    @Test("GET /v1/snapshots/{key}/changes lists what a mounted container changed, by path, and the CLI shows it")
    func changes() async throws {
        try await withMountCalls { daemon, api, mounts in
            let target = try await Self.containerOnBase(daemon, api, mounts)
            try Tree.write(target + "/etc/hostname", "changed\n")
            try Tree.unlinkFile(target + "/link")
            try Tree.makeDirectory(target + "/srv")
            try Tree.write(target + "/srv/index.html", "hi")
            // Listed while the snapshot is mounted.
            let response = try await checked(
                daemon, "GET", APIPath.snapshot("ctr") + "/changes", template: "/v1/snapshots/{key}/changes")
            try #require(response.status == 200, "\(response.text)")
            let changes = try response.decoded(ChangesResponse.self).changes
            #expect(changes == [
                LayerChange(path: "/etc/hostname", kind: .modified, type: .file),
                LayerChange(path: "/link", kind: .deleted, type: .symlink),
                LayerChange(path: "/srv", kind: .added, type: .directory),
                LayerChange(path: "/srv/index.html", kind: .added, type: .file),
            ])
            let cli = CLITests()
            let table = try await cli.succeeding(daemon, ["changes", "ctr"])
            let lines = table.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
            #expect(lines == ["KIND TYPE PATH", "modified file /etc/hostname", "deleted symlink /link", "added directory /srv", "added file /srv/index.html"], "\(table)")
            let json = try await cli.succeeding(daemon, ["changes", "ctr", "--json"])
            #expect(try JSONDecoder().decode(ChangesResponse.self, from: Data(json.utf8)).changes == changes)
            try await mounts.unmounted(target)

            expectError(
                try await checked(daemon, "GET", APIPath.snapshot("nope") + "/changes", template: "/v1/snapshots/{key}/changes"),
                404, "not_found", mentioning: ["nope"])
            let base = try await checked(daemon, "GET", APIPath.snapshot("base") + "/changes", template: "/v1/snapshots/{key}/changes")
            // The base layer's tar has ./, ./etc, ./etc/hostname and ./link; its root is no change.
            #expect(try base.decoded(ChangesResponse.self).changes.map(\.path) == ["/etc", "/etc/hostname", "/link"])
        }
    }

    @Test("POST /v1/snapshots/{key}/revert gives paths back the parent's content, refuses a mounted snapshot, and the CLI does the same")
    func revert() async throws {
        try await withMountCalls { daemon, api, mounts in
            let target = try await Self.containerOnBase(daemon, api, mounts)
            try Tree.write(target + "/etc/hostname", "changed\n")
            try Tree.write(target + "/added", "a")
            let path = APIPath.snapshot("ctr") + "/revert"
            let template = "/v1/snapshots/{key}/revert"
            let body = try encodeJSON(RevertRequest(paths: ["/etc/hostname"]))
            expectError(
                try await checked(daemon, "POST", path, template: template, body: body), 409, "failed_precondition",
                mentioning: ["mounted", target])
            try await mounts.unmounted(target)

            for bad in [#"{"paths":["etc"]}"#, #"{"paths":[]}"#, #"{"paths":["/a/../b"]}"#, #"{"path":["/a"]}"#, #"{"paths":"/a"}"#] {
                expectError(try await checked(daemon, "POST", path, template: template, body: utf8Bytes(bad)), 400, "invalid_argument")
            }
            let response = try await checked(daemon, "POST", path, template: template, body: body)
            try #require(response.status == 200, "\(response.text)")
            #expect(try response.decoded(RevertResponse.self).reverted == ["/etc/hostname"])
            #expect(try await daemon.client.changes("ctr") == [LayerChange(path: "/added", kind: .added, type: .file)])

            let cli = CLITests()
            #expect(try await cli.succeeding(daemon, ["revert", "ctr", "/added", "/etc"]) == "/added\n")
            #expect(try await daemon.client.changes("ctr").isEmpty)
            try await mounts.mounted("ctr", at: target)
            #expect(try Tree.read(target + "/etc/hostname") == "base\n")
            #expect(!Tree.exists(target + "/added"))
            try await mounts.unmounted(target)
            let committed = try await cli.veneer(daemon, ["revert", "base", "/etc"])
            #expect(committed.failedCleanly && committed.stderr.contains("failed_precondition"), "\(committed)")
        }
    }

    @Test("GET /v1/snapshots/{key}/diff streams the changes as a layer that applies to the same changes, the same bytes twice; veneer diff writes it")
    func diff() async throws {
        try await withMountCalls { daemon, api, mounts in
            let target = try await Self.containerOnBase(daemon, api, mounts)
            try Tree.write(target + "/etc/hostname", "changed\n")
            try Tree.unlinkFile(target + "/link")
            var random = SplitMix64(seed: 5)
            try Tree.write(target + "/big", bytes: (0..<3_000_000).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            let template = "/v1/snapshots/{key}/diff"
            expectError(
                try await checked(daemon, "GET", APIPath.snapshot("ctr") + "/diff", template: template), 409,
                "failed_precondition", mentioning: ["read-write"])
            try await mounts.unmounted(target)

            var exported: [LayerCompression: [UInt8]] = [:]
            for compression in LayerCompression.allCases {
                let path = APIPath.snapshot("ctr") + "/diff?compression=" + compression.rawValue
                let first = try await checked(daemon, "GET", path, template: template)
                try #require(first.status == 200, "\(first.text)")
                #expect(first.header("Content-Type") == LayerMediaType.name(of: compression))
                let second = try await checked(daemon, "GET", path, template: template)
                #expect(second.body == first.body, "\(compression): two exports differ")
                exported[compression] = first.body
            }
            let tar = try #require(exported[LayerCompression.none])
            #expect(tar.count > 3_000_000)
            // Applied onto the same parent: the same changes, and the same diff ID.
            let diffID = try Layers.sha256(tar, in: daemon.temp.path)
            for compression in LayerCompression.allCases {
                let key = "copy-\(compression)"
                try #require(try await api.prepare(key, parent: "base").status == 201)
                let applied = try await api.applyLayer(
                    key, try #require(exported[compression]), mediaType: LayerMediaType.name(of: compression),
                    query: "diff_id=" + diffID)
                #expect(applied.status == 200, "\(compression): \(applied.text)")
                #expect(try await daemon.client.changes(key) == (try await daemon.client.changes("ctr")))
            }

            // The CLI writes the same bytes to a file, or to a pipe.
            let cli = CLITests()
            let file = daemon.temp.path + "/out.tar.zst"
            _ = try await cli.succeeding(daemon, ["diff", "ctr", "-o", file, "--compression", "zstd"])
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: file))) == exported[.zstd])
            let piped = try await runTool(
                "/bin/sh", ["-c", "\"$0\" --socket \"$1\" diff ctr | sha256sum", BuildProducts.veneer, daemon.socket])
            #expect(piped.succeeded && piped.stdout.hasPrefix(String(diffID.dropFirst("sha256:".count))), "\(piped)")
            let missing = try await cli.veneer(daemon, ["diff", "nope", "-o", daemon.temp.path + "/nope.tar"])
            #expect(missing.failedCleanly && missing.stderr.contains("not_found"), "\(missing)")
            #expect(!Tree.exists(daemon.temp.path + "/nope.tar"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: daemon.temp.path).allSatisfy { !$0.contains(".partial-") })

            try #require(try await api.prepare("view", parent: "base", kind: .view).status == 201)
            expectError(
                try await checked(daemon, "GET", APIPath.snapshot("view") + "/diff", template: template), 409,
                "failed_precondition", mentioning: ["view"])
            expectError(
                try await checked(daemon, "GET", APIPath.snapshot("ctr") + "/diff?compression=xz", template: template), 400,
                "invalid_argument", mentioning: ["xz"])
        }
    }
}
