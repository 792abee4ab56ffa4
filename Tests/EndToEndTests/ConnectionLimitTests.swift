import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerOS
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite("Connection timeouts and limit")
struct ConnectionLimitTests {
    @Test("idle, half-sent and stalled connections are closed on time; a busy keep-alive one is not")
    func timeouts() async throws {
        try await withDaemon(arguments: ["--idle-timeout", "4", "--read-timeout", "1"]) { daemon in
            let idle = try UnixStreamConnection(path: daemon.socket)
            let halfHead = try UnixStreamConnection(path: daemon.socket)
            try halfHead.writeAll(Array("GET /v1/status HTTP/1.1\r\nHost: localhost\r\n".utf8))
            let stalledBody = try UnixStreamConnection(path: daemon.socket)
            try stalledBody.writeAll(
                Array(
                    "POST /v1/snapshots HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"key\":\"x\""
                        .utf8))
            let opened = Date()

            let late = try RawHTTP.readUntilClosed(halfHead, limit: 10)
            let response = try RawHTTP.parse(late.received)
            #expect(response.status == 408, "\(late.text)")
            #expect(response.errorCode == "request_timeout")
            #expect(response.errorMessage?.contains("read_timeout") == true, "\(late.text)")
            #expect(response.header("Connection")?.lowercased() == "close")
            #expect(Date().timeIntervalSince(opened) < 3.5, "the read timeout is 1 s, the idle one 4 s")

            let stalled = try RawHTTP.readUntilClosed(stalledBody, limit: 10)
            #expect(Date().timeIntervalSince(opened) < 3.5, "closed after a 1 s gap in the body")
            #expect(stalled.received.isEmpty || (try? RawHTTP.parse(stalled.received))?.status ?? 0 >= 400, "\(stalled.text)")

            let quiet = try RawHTTP.readUntilClosed(idle, limit: 15)
            let idleFor = Date().timeIntervalSince(opened)
            #expect(quiet.received.isEmpty, "an idle connection is closed without an answer: \(quiet.text)")
            #expect(idleFor >= 3.5 && idleFor < 10, "closed after \(idleFor) s; the idle timeout is 4 s")

            // Requests every second on one connection for longer than the idle timeout.
            let busy = try UnixStreamConnection(path: daemon.socket)
            try busy.setReadTimeout(seconds: 10)
            for _ in 0..<6 {
                try busy.writeAll(Array(RawHTTP.request("GET", "/v1/status").utf8))
                #expect(try RawHTTP.readResponse(busy).status == 200)
                try await Task.sleep(for: .seconds(1))
            }
            #expect(try await daemon.client.list().isEmpty, "the stalled prepare made nothing")
        }
    }

    @Test("over max_connections a client is answered 503 and closed; a freed place is served again")
    func limit() async throws {
        try await withDaemon(arguments: ["--max-connections", "8", "--idle-timeout", "3"]) { daemon in
            // The harness's client keeps its connection for a while; the daemon closes it
            // after the idle timeout, so that the test holds every place itself.
            try await Task.sleep(for: .milliseconds(3_500))
            // Each held connection is answered once, so all are accepted and counted.
            var held: [UnixStreamConnection] = []
            for _ in 0..<8 {
                let connection = try UnixStreamConnection(path: daemon.socket)
                try connection.writeAll(Array(RawHTTP.request("GET", "/v1/status").utf8))
                #expect(try RawHTTP.readResponse(connection).status == 200)
                held.append(connection)
            }
            for _ in 0..<2 {
                let refused = try RawHTTP.exchange(
                    socket: daemon.socket, method: "GET", target: "/v1/status", body: nil, headers: [])
                #expect(refused.status == 503, "\(refused.text)")
                #expect(refused.errorCode == "unavailable")
                #expect(refused.errorMessage?.contains("max_connections") == true, "\(refused.text)")
            }
            let warnings = daemon.log.components(separatedBy: "refusing connections").count - 1
            #expect(warnings == 1, "one warning per 10 s, however many refusals:\n\(daemon.log)")

            held.removeLast()
            // Well within the held connections' idle timeout: the place is the one freed.
            // The daemon counts the connection out once it has seen it close.
            let served = try await eventually(50, every: .milliseconds(10)) {
                RawHTTP.status(socket: daemon.socket) == 200
            }
            #expect(served, "a place freed by a closed connection is given to the next client")
            withExtendedLifetime(held) {}
        }
    }

    @Test("with 500 idle connections open, a new client is served at once")
    func manyIdle() async throws {
        try await withDaemon { daemon in
            ResourceLimits.raiseOpenFiles()
            let idle = try RawHTTP.idleConnections(socket: daemon.socket, count: 500)
            // Let the daemon accept them all.
            try await Task.sleep(for: .milliseconds(500))
            let start = ContinuousClock.now
            let status = try await daemon.client.status()
            let elapsed = ContinuousClock.now - start
            #expect(status.version.isEmpty == false)
            #expect(elapsed < .seconds(2), "served in \(elapsed)")
            // The idle ones are still open and answer when they speak.
            let last = try #require(idle.last)
            try last.writeAll(Array(RawHTTP.request("GET", "/v1/status", close: true).utf8))
            let answer = try RawHTTP.readUntilClosed(last, limit: 10)
            #expect(answer.text.hasPrefix("HTTP/1.1 200 "), "\(answer.text.prefix(200))")
            withExtendedLifetime(idle) {}
        }
    }

    @Test("a reload changes the connection limit for new connections")
    func reloadLimit() async throws {
        let config = try TemporaryDirectory()
        defer { config.remove() }
        let file = config.path + "/veneerd.toml"
        try "max_connections = 64\n".write(toFile: file, atomically: true, encoding: .utf8)
        try await withDaemon(arguments: ["--config", file]) { daemon in
            let pid = try #require(daemon.process?.processIdentifier)
            var held = try RawHTTP.idleConnections(socket: daemon.socket, count: 3)
            try await Task.sleep(for: .milliseconds(200))
            _ = try await daemon.client.status()  // 4 of 64: served

            try "max_connections = 3\nidle_timeout = 300\n".write(toFile: file, atomically: true, encoding: .utf8)
            kill(pid, SIGHUP)
            let reloaded = try await eventually(250, every: .milliseconds(20)) {
                daemon.log.contains("configuration reloaded")
            }
            #expect(reloaded, "\(daemon.log)")
            #expect(daemon.log.contains("max_connections=3"), "\(daemon.log)")
            let refused = try RawHTTP.exchange(
                socket: daemon.socket, method: "GET", target: "/v1/status", body: nil, headers: [])
            #expect(refused.status == 503, "3 of 3: \(refused.text)")

            held.removeAll()
            let served = try await eventually(100, every: .milliseconds(20)) {
                RawHTTP.status(socket: daemon.socket) == 200
            }
            #expect(served, "the held connections are closed; the harness's client may keep one")
        }
    }

    @Test("out-of-range connection settings are refused at start with the setting named")
    func badSettings() async throws {
        for (flag, value, name) in [
            ("--idle-timeout", "0", "idle_timeout"), ("--read-timeout", "3601", "read_timeout"),
            ("--max-connections", "0", "max_connections"),
        ] {
            let result = try ProcessRun.run(BuildProducts.veneerd, ["--root", "/tmp/vn-never", "--socket", "/tmp/vn-never.sock", flag, value])
            #expect(result.status == 78, "\(flag) \(value): \(result.stderr)")
            #expect(result.stderr.contains(name), "\(result.stderr)")
            #expect(FileSystem.entryType("/tmp/vn-never") == .missing)
        }
    }
}
