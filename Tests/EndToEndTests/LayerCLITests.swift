import Foundation
import Testing
import VeneerCore
import VeneerTestSupport
import VeneerWire

@Suite("CLI: layers")
struct LayerCLITests {
    let cli = CLITests()

    @Test("veneer apply takes a file or standard input, tells the compression from the bytes, and prints what was applied")
    func apply() async throws {
        try await withDaemon { daemon in
            let dir = try LayerRouteTests.content(daemon.temp, name: "c", file: "cli\n")
            let gz = try Layers.tar(dir, compression: .gzip)
            let gzPath = daemon.temp.path + "/layer.tar.gz"
            try Data(gz).write(to: URL(fileURLWithPath: gzPath))
            let digest = try Layers.sha256(gz, in: daemon.temp.path)

            _ = try await cli.succeeding(daemon, ["prepare", "w"])
            // Piped, no progress line: `succeeding` requires an empty stderr.
            let text = try await cli.succeeding(daemon, ["apply", "w", gzPath, "--digest", digest])
            #expect(text.contains(digest) && text.contains("Entries"), "\(text)")
            _ = try await cli.succeeding(daemon, ["commit", "base", "w"])

            _ = try await cli.succeeding(daemon, ["prepare", "w2", "base"])
            try Tree.write(dir + "/etc/hostname", "second\n")
            let zst = try Layers.tar(dir, compression: .zstd)
            let zstPath = daemon.temp.path + "/layer.tar.zst"
            try Data(zst).write(to: URL(fileURLWithPath: zstPath))
            let piped = try await runTool(
                "/bin/sh", ["-c", "exec \"$0\" --socket \"$1\" --json apply w2 - < \"$2\"", BuildProducts.veneer, daemon.socket, zstPath])
            try #require(piped.succeeded, "\(piped)")
            let applied = try JSONDecoder().decode(LayerAppliedResponse.self, from: Data(piped.stdout.utf8))
            #expect(applied.size == Int64(zst.count))
            #expect(applied.digest == (try Layers.sha256(zst, in: daemon.temp.path)))

            let mounts = try await daemon.client.mounts("w2")
            let target = try daemon.mountPoint()
            try Mounts.mount(mounts, at: target)
            defer { Mounts.unmount(target) }
            #expect(try Tree.read(target + "/etc/hostname") == "second\n")
        }
    }

    @Test("veneer apply fails clearly: a missing snapshot, a wrong digest, a bzip2 file, a missing file")
    func failures() async throws {
        try await withDaemon { daemon in
            let dir = try LayerRouteTests.content(daemon.temp, name: "c", file: "x")
            var random = SplitMix64(seed: 3)
            try Tree.write(dir + "/blob", bytes: (0..<4_000_000).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            let tarPath = daemon.temp.path + "/layer.tar"
            try Data(try Layers.tar(dir)).write(to: URL(fileURLWithPath: tarPath))

            // Refused before the body is read, while the CLI is still sending it.
            let missing = try await cli.veneer(daemon, ["apply", "nope", tarPath])
            #expect(missing.failedCleanly && missing.stderr.contains("not_found") && missing.stderr.contains("nope"), "\(missing)")

            _ = try await cli.succeeding(daemon, ["prepare", "w"])
            let zero = "sha256:" + String(repeating: "0", count: 64)
            let wrong = try await cli.veneer(daemon, ["apply", "w", tarPath, "--diff-id", zero])
            #expect(wrong.failedCleanly && wrong.stderr.contains("invalid_argument") && wrong.stderr.contains("stays empty"), "\(wrong)")

            let bz = daemon.temp.path + "/layer.tar.bz2"
            try Data(Array("BZh91AY&SY".utf8)).write(to: URL(fileURLWithPath: bz))
            let bzip = try await cli.veneer(daemon, ["apply", "w", bz])
            #expect(bzip.failedCleanly && bzip.stderr.contains("bzip2"), "\(bzip)")

            let absent = try await cli.veneer(daemon, ["apply", "w", daemon.temp.path + "/absent"])
            #expect(absent.failedCleanly && absent.stderr.contains("cannot open the layer"), "\(absent)")

            // Nothing of it reached the layer: a good apply still works.
            _ = try await cli.succeeding(daemon, ["apply", "w", tarPath])
        }
    }
}
