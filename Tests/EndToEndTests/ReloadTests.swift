import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

#if canImport(Glibc)
import Glibc
#endif

/// `POST /v1/reload` and `veneerd reload`, the unit's `ExecReload=`: the outcome of a
/// reload reaches the one who asked, and a file that does not load changes nothing.
@Suite("Reload", .serialized)
struct ReloadTests {
    /// A daemon reading `file`, which starts with `text`.
    func withConfigured<T>(_ text: String, _ body: (Daemon, String) async throws -> T) async throws -> T {
        let config = try TemporaryDirectory()
        defer { config.remove() }
        let file = config.path + "/veneerd.toml"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return try await withDaemon(arguments: ["--config", file]) { daemon in try await body(daemon, file) }
    }

    func veneerdReload(_ arguments: [String]) throws -> RunResult {
        try ProcessRun.run(BuildProducts.veneerd, ["reload"] + arguments)
    }

    @Test("veneerd reload applies the file before it exits 0, and says what is in force")
    func reloadApplies() async throws {
        try await withConfigured("max_depth = 500\n") { daemon, file in
            #expect(try await daemon.client.status().maxDepth == 500)
            try "max_depth = 7\nlog_level = \"debug\"\nread_timeout = 20\n".write(toFile: file, atomically: true, encoding: .utf8)
            let result = try veneerdReload(["--socket", daemon.socket])
            #expect(result.status == 0, "\(result)")
            // The harness starts veneerd with --log-level info: flags keep winning over the file.
            #expect(result.stdout.contains("max_depth 7") && result.stdout.contains("log_level info"), "\(result.stdout)")
            #expect(result.stdout.contains("read_timeout 20s"), "\(result.stdout)")
            #expect(try await daemon.client.status().maxDepth == 7, "max_depth once veneerd reload returned")
            #expect(daemon.log.contains("configuration reloaded") && daemon.log.contains("trigger=API"), "\(daemon.log)")
        }
    }

    @Test("a file that does not load: veneerd reload exits 1 with the reason, POST /v1/reload is 409, nothing changes")
    func reloadRejected() async throws {
        try await withConfigured("max_depth = 12\n") { daemon, file in
            for (text, mentioning) in [("max_depth = = 3\n", "TOML"), ("max_depth = 9999\n", "9999"), ("colour = 1\n", "colour")] {
                try text.write(toFile: file, atomically: true, encoding: .utf8)
                let result = try veneerdReload(["--socket", daemon.socket])
                #expect(result.status == 1, "\(text): \(result)")
                #expect(result.stderr.contains(mentioning) && result.stderr.contains(file), "\(text): \(result.stderr)")
                #expect(result.stderr.contains("running configuration is kept"), "\(result.stderr)")

                let raw = try await checked(daemon, "POST", "/v1/reload")
                #expect(raw.status == 409 && raw.errorCode == "failed_precondition", "\(raw.status) \(raw.text)")
                let error = await errorCode { _ = try await daemon.client.reload() }
                #expect(error == .failedPrecondition)
                #expect(try await daemon.client.status().maxDepth == 12, "after reloading \(quoted(text))")
            }
            #expect(daemon.log.contains("reload rejected"), "\(daemon.log)")
            // Fixed, it loads again.
            try "max_depth = 13\n".write(toFile: file, atomically: true, encoding: .utf8)
            let fixed = try await checked(daemon, "POST", "/v1/reload")
            #expect(fixed.status == 200, "\(fixed.text)")
            #expect(try fixed.decoded(ReloadResponse.self).maxDepth == 13, "\(fixed.text)")
            #expect(try await daemon.client.status().maxDepth == 13)
        }
    }

    @Test("POST /v1/reload takes no body and no query; a changed root is reported as waiting for a restart")
    func reloadRequestShape() async throws {
        try await withConfigured("max_depth = 40\n") { daemon, file in
            let withBody = try await checked(daemon, "POST", "/v1/reload", body: Array("{}".utf8))
            #expect(withBody.status == 400, "\(withBody.text)")
            let withQuery = try await checked(daemon, "POST", "/v1/reload?now=1", template: "/v1/reload")
            #expect(withQuery.status == 400, "\(withQuery.text)")
            let get = try await daemon.client.send(method: "GET", path: "/v1/reload")
            #expect(get.status == 405 && get.header("Allow") == "POST", "\(get.status) \(get.headers)")

            try "max_depth = 41\nroot = \"/elsewhere\"\n".write(toFile: file, atomically: true, encoding: .utf8)
            // The command line's --root wins over the file, as at start.
            #expect(try await daemon.client.reload().restartRequired == [])
            #expect(try await daemon.client.status().root == daemon.root)
        }
    }

    @Test("veneerd reload without a daemon exits 1 and names the socket")
    func reloadUnreachable() async throws {
        let temp = try TemporaryDirectory()
        defer { temp.remove() }
        let socket = temp.path + "/absent.sock"
        let result = try veneerdReload(["--socket", socket])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains(socket), "\(result.stderr)")
    }

    @Test("reloads by SIGHUP and by the API at once all succeed, one at a time")
    func concurrentReloads() async throws {
        try await withConfigured("max_depth = 30\n") { daemon, _ in
            let pid = try #require(daemon.process?.processIdentifier)
            let client = daemon.client
            try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<32 {
                    group.addTask {
                        if index % 4 == 0 { kill(pid, SIGHUP) }
                        return try await client.reload().maxDepth
                    }
                }
                for try await depth in group { #expect(depth == 30) }
            }
            #expect(try await client.status().maxDepth == 30)
            let reloaded = daemon.log.components(separatedBy: "configuration reloaded").count - 1
            #expect(reloaded >= 32, "\(reloaded) reloads logged")
        }
    }
}
