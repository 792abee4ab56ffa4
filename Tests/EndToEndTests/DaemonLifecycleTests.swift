import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerOS
import VeneerTestSupport
import VeneerWire

#if canImport(Glibc)
import Glibc
#endif

/// A `veneerd` started with arguments of the test's choosing; always killed by `withVeneerd`.
final class VeneerdProcess: @unchecked Sendable {
    // Used from the one test that owns it, one step at a time.
    let process: Process
    let logPath: String
    let socket: String

    init(arguments: [String], socket: String, logPath: String) throws {
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BuildProducts.veneerd)
        process.arguments = arguments
        process.environment = toolEnvironment()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        try process.run()
        try? log.close()
        self.process = process
        self.logPath = logPath
        self.socket = socket
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var client: VeneerClient { VeneerClient(socketPath: socket) }

    /// Waits until the daemon answers on its socket.
    func waitUntilServing(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !process.isRunning {
                throw VeneerError.internal("veneerd exited with \(process.terminationStatus) during start:\n\(log)")
            }
            if (try? await client.status()) != nil { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw VeneerError.internal("veneerd did not answer on \(socket) within \(timeout):\n\(log)")
    }

    /// Waits for the process to end by itself; nil when it is still running after `timeout`.
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> RunResult? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline { return nil }
            try await Task.sleep(for: .milliseconds(10))
        }
        return RunResult(
            status: process.terminationStatus, exited: process.terminationReason == .exit, stdout: "", stderr: log)
    }

    func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// SIGTERM, then the way it ended.
    func terminate() async throws -> RunResult {
        signal(SIGTERM)
        guard let result = try await waitForExit() else {
            signal(SIGKILL)
            throw VeneerError.internal("veneerd did not stop within 30 s after SIGTERM:\n\(log)")
        }
        return result
    }

    func killHard() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// Runs `body` with a veneerd started with `arguments`, and kills it afterwards if it
/// still runs.
func withVeneerd<T>(
    _ arguments: [String], socket: String, logPath: String, _ body: (VeneerdProcess) async throws -> T
) async throws -> T {
    let daemon = try VeneerdProcess(arguments: arguments, socket: socket, logPath: logPath)
    do {
        let result = try await body(daemon)
        daemon.killHard()
        return result
    } catch {
        daemon.killHard()
        Issue.record("veneerd log:\n\(daemon.log.suffix(4000))")
        throw error
    }
}

/// Runs `body` with a fresh temporary directory, removed afterwards.
func withScratch<T>(_ body: (String) async throws -> T) async throws -> T {
    let scratch = try TemporaryDirectory()
    do {
        let result = try await body(scratch.path)
        scratch.remove()
        return result
    } catch {
        scratch.remove()
        throw error
    }
}

@Suite("Daemon lifecycle", .serialized)
struct DaemonLifecycleTests {
    /// Runs veneerd with these arguments; it is expected to exit by itself.
    func veneerd(_ arguments: [String]) async throws -> RunResult {
        try await runTool(BuildProducts.veneerd, arguments, timeout: .seconds(30))
    }

    @Test("SIGTERM: exit status 0, the socket file is removed, the data is there after a restart")
    func sigtermAndRestart() async throws {
        try await withAPI { daemon, api in
            let base = try await api.prepared("base", labels: ["a": "b"])
            let layerDir = try ownLayer(of: base.mounts)
            try Data("kept\n".utf8).write(to: URL(fileURLWithPath: layerDir + "/file"))
            try await api.committed("base", name: "layer", labels: ["team": "storage"])
            try await api.prepared("ctr", parent: "layer")
            try await api.prepared("look", parent: "layer", kind: .view)
            let before = try await api.all()
            let mounts = try await api.mountList("ctr")

            let status = try await daemon.stop()
            #expect(status == 0, "exit status after SIGTERM:\n\(daemon.log.suffix(2000))")
            #expect(FileSystem.entryType(daemon.socket) == .missing, "the socket file is left behind")

            try await daemon.start()
            #expect(try await api.all() == before)
            #expect(try await api.mountList("ctr") == mounts)
            #expect(try String(contentsOfFile: layerDir + "/file", encoding: .utf8) == "kept\n")
            let seen = try await withMounted(daemon, "ctr") { target in
                try String(contentsOfFile: target + "/file", encoding: .utf8)
            }
            #expect(seen == "kept\n")
            // And once more, with SIGINT, which stops it the same way.
            let process = try #require(daemon.process)
            kill(process.processIdentifier, SIGINT)
            while process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
            #expect(process.terminationReason == .exit && process.terminationStatus == 0)
            #expect(FileSystem.entryType(daemon.socket) == .missing)
        }
    }

    @Test("a slow request in flight when SIGTERM arrives is answered before the daemon exits")
    func inFlightUsageSurvivesSigterm() async throws {
        try await withAPI { daemon, api in
            let big = try await api.prepared("big")
            let layer = try ownLayer(of: big.mounts)
            // 100 000 files make the usage walk take a noticeable time.
            for d in 0..<200 {
                let dir = layer + "/d\(d)"
                try #require(mkdir(dir, 0o755) == 0)
                for f in 0..<500 {
                    let fd = open(dir + "/f\(f)", O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
                    try #require(fd >= 0)
                    close(fd)
                }
            }
            let warmStart = ContinuousClock.now
            let expected = try await api.usage("big").decoded(Usage.self)
            let walk = ContinuousClock.now - warmStart
            #expect(expected.inodes == 1 + 200 + 100_000)

            let process = try #require(daemon.process)
            let socket = daemon.socket
            let request = Task { () -> (RawResponse, ContinuousClock.Instant) in
                let response = try await VeneerClient(socketPath: socket).send(method: "GET", path: APIPath.usage("big"))
                return (response, ContinuousClock.now)
            }
            try await Task.sleep(for: .milliseconds(100))
            let signalled = ContinuousClock.now
            kill(process.processIdentifier, SIGTERM)
            let (response, answered) = try await request.value
            expectFollowsContract(response, method: "GET", path: "/v1/snapshots/{key}/usage")
            #expect(response.status == 200, "\(response.text)")
            #expect(try response.decoded(Usage.self) == expected)
            #expect(
                answered > signalled,
                "the answer came before SIGTERM (a warm walk took \(walk)); the request was not in flight")
            let status = try await daemon.stop()
            #expect(status == 0)
            #expect(FileSystem.entryType(daemon.socket) == .missing)
        }
    }

    @Test("a request whose body is still arriving when SIGTERM arrives is served, then the daemon exits")
    func inFlightBodySurvivesSigterm() async throws {
        try await withDaemon { daemon in
            let process = try #require(daemon.process)
            let body = utf8Bytes(#"{"key":"late","labels":{"arrived":"after SIGTERM"}}"#)
            let head = "POST /v1/snapshots HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            let connection = try UnixStreamConnection(path: daemon.socket)
            try connection.writeAll(utf8Bytes(head) + body.prefix(10))
            try await Task.sleep(for: .milliseconds(300))
            kill(process.processIdentifier, SIGTERM)
            try await Task.sleep(for: .milliseconds(500))
            #expect(process.isRunning, "veneerd exited with a request in flight")
            try connection.writeAll(Array(body.dropFirst(10)))
            var received: [UInt8] = []
            while true {
                let count = received.count
                try connection.read(into: &received)
                if received.count == count { break }
            }
            let response = try RawHTTP.parse(received)
            expectFollowsContract(response, method: "POST", path: "/v1/snapshots")
            #expect(response.status == 201, "\(response.text)")
            let status = try await daemon.stop()
            #expect(status == 0)

            try await daemon.start()
            let info = try await CheckedAPI(daemon).info("late")
            #expect(info.labels == ["arrived": "after SIGTERM"])
        }
    }

    @Test("a regular file as the state root: exits with a message naming it")
    func rootIsAFile() async throws {
        try await withScratch { scratch in
            let file = scratch + "/not-a-directory"
            _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
            let socket = scratch + "/s.sock"
            let result = try await veneerd(["--root", file, "--socket", socket])
            #expect(result.failedCleanly, "\(result)")
            #expect(result.stderr.contains(file), "\(result)")
            #expect(FileSystem.entryType(socket) == .missing)
            #expect(try String(contentsOfFile: file, encoding: .utf8) == "x", "the file was changed")

            // A root below a regular file cannot be created either.
            let below = try await veneerd(["--root", file + "/root", "--socket", socket])
            #expect(below.failedCleanly, "\(below)")
            #expect(below.stderr.contains(file), "\(below)")
        }
    }

    @Test("relative paths for the root or the socket are refused")
    func relativePaths() async throws {
        try await withScratch { scratch in
            let relativeRoot = try await veneerd(["--root", "relative/root", "--socket", scratch + "/s.sock"])
            #expect(relativeRoot.failedCleanly, "\(relativeRoot)")
            #expect(relativeRoot.stderr.contains("relative/root"), "\(relativeRoot)")
            let relativeSocket = try await veneerd(["--root", scratch + "/root", "--socket", "s.sock"])
            #expect(relativeSocket.failedCleanly, "\(relativeSocket)")
            #expect(relativeSocket.stderr.contains("s.sock"), "\(relativeSocket)")
            #expect(!FileManager.default.fileExists(atPath: FileManager.default.currentDirectoryPath + "/relative/root"))
        }
    }

    @Test("a socket served by another veneerd: the second exits, the first keeps serving")
    func socketAlreadyServed() async throws {
        try await withAPI { daemon, api in
            try await api.prepared("mine")
            let otherRoot = daemon.temp.path + "/other-root"
            let second = try await veneerd(["--root", otherRoot, "--socket", daemon.socket])
            #expect(second.failedCleanly, "\(second)")
            #expect(second.stderr.contains(daemon.socket), "\(second)")
            #expect(FileSystem.entryType(daemon.socket) == .other, "the first daemon's socket is gone")
            #expect(try await api.keys() == ["mine"])
            let status = try await api.status().decoded(StatusResponse.self)
            #expect(status.root == daemon.root)
            // The same root on the same socket changes nothing either.
            let third = try await veneerd(["--root", daemon.root, "--socket", daemon.socket])
            #expect(third.failedCleanly, "\(third)")
            try await api.prepared("still")
            #expect(try await api.keys() == ["mine", "still"])
        }
    }

    @Test("a stale socket file left by SIGKILL does not stop a restart")
    func staleSocketAfterCrash() async throws {
        try await withAPI { daemon, api in
            try await api.committedLayer()
            try await api.prepared("ctr", parent: "layer", labels: ["a": "b"])
            let before = try await api.all()
            try await daemon.crash()
            #expect(FileSystem.entryType(daemon.socket) == .other, "SIGKILL should leave the socket file")
            try await daemon.start()
            #expect(try await api.all() == before)
            try await api.prepared("after")
            #expect(try await daemon.stop() == 0)
        }
    }

    @Test("the socket is created with mode 0660")
    func socketMode() async throws {
        try await withDaemon { daemon in
            // The mode is set once the server runs; allow the daemon a moment for it.
            let deadline = ContinuousClock.now + .seconds(2)
            var mode = try FileSystem.mode(daemon.socket)
            while mode & 0o777 != 0o660, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
                mode = try FileSystem.mode(daemon.socket)
            }
            #expect(mode & 0o777 == 0o660, "mode \(String(mode, radix: 8))")
        }
    }

    // MARK: Configuration file

    @Test("a TOML configuration file sets root, socket and log level")
    func configurationFile() async throws {
        try await withScratch { scratch in
            let root = scratch + "/config-root"
            let socket = scratch + "/config.sock"
            let config = try writeDaemonConfiguration("root = \"\(root)\"\nsocket = \"\(socket)\"\nlog_level = \"debug\"\n", in: scratch)
            try await withVeneerd(["--config", config], socket: socket, logPath: scratch + "/log") { daemon in
                try await daemon.waitUntilServing()
                let status = try await daemon.client.status()
                #expect(status.root == root)
                #expect(status.socket == socket)
                #expect(FileManager.default.fileExists(atPath: root + "/snapshots"))
                // At debug level every request is logged.
                _ = try await daemon.client.list()
                try await Task.sleep(for: .milliseconds(100))
                #expect(daemon.log.contains("debug"), "no debug lines in:\n\(daemon.log)")
                let stopped = try await daemon.terminate()
                #expect(stopped.succeeded, "\(stopped)")
            }
        }
    }

    @Test("flags override the configuration file")
    func flagsOverrideConfiguration() async throws {
        try await withScratch { scratch in
            let fileRoot = scratch + "/file-root"
            let flagRoot = scratch + "/flag-root"
            let fileSocket = scratch + "/file.sock"
            let flagSocket = scratch + "/flag.sock"
            let config = try writeDaemonConfiguration("root = \"\(fileRoot)\"\nsocket = \"\(fileSocket)\"\nlog_level = \"debug\"\n", in: scratch)

            // The socket from the flag, the root from the file, the log level from the flag.
            try await withVeneerd(
                ["--config", config, "--socket", flagSocket, "--log-level", "error"], socket: flagSocket,
                logPath: scratch + "/log1"
            ) { daemon in
                try await daemon.waitUntilServing()
                let status = try await daemon.client.status()
                #expect(status.socket == flagSocket)
                #expect(status.root == fileRoot)
                #expect(FileSystem.entryType(fileSocket) == .missing)
                _ = try await daemon.client.list()
                try await Task.sleep(for: .milliseconds(100))
                let stopped = try await daemon.terminate()
                #expect(stopped.succeeded, "\(stopped)")
                #expect(!daemon.log.contains(" debug "), "debug lines at level error:\n\(daemon.log)")
                #expect(!daemon.log.contains(" info "), "info lines at level error:\n\(daemon.log)")
            }
            // The root from the flag, the socket from the file.
            try await withVeneerd(
                ["--config", config, "--root", flagRoot], socket: fileSocket, logPath: scratch + "/log2"
            ) { daemon in
                try await daemon.waitUntilServing()
                let status = try await daemon.client.status()
                #expect(status.root == flagRoot)
                #expect(status.socket == fileSocket)
                #expect(try await daemon.terminate().succeeded)
            }
        }
    }

    @Test("bad configuration: unknown settings, missing or unreadable files, bad values")
    func badConfiguration() async throws {
        try await withScratch { scratch in
            let socket = scratch + "/s.sock"
            func write(_ text: String, _ name: String) throws -> String {
                let path = scratch + "/" + name
                try Data(text.utf8).write(to: URL(fileURLWithPath: path))
                return path
            }
            let unknown = try write("root = \"\(scratch)/r\"\ncolour = \"blue\"\n", "unknown.toml")
            let result = try await veneerd(["--config", unknown, "--socket", socket])
            #expect(result.failedCleanly, "\(result)")
            #expect(result.stderr.contains("colour"), "\(result)")

            let missing = scratch + "/no-such.toml"
            let noFile = try await veneerd(["--config", missing, "--root", scratch + "/r", "--socket", socket])
            #expect(noFile.failedCleanly, "\(noFile)")
            #expect(noFile.stderr.contains(missing), "\(noFile)")

            let notTOML = try write("root = \n[[[", "broken.toml")
            let broken = try await veneerd(["--config", notTOML, "--socket", socket])
            #expect(broken.failedCleanly, "\(broken)")
            #expect(broken.stderr.contains(notTOML), "\(broken)")

            let wrongType = try write("root = 5\n", "type.toml")
            let typed = try await veneerd(["--config", wrongType, "--socket", socket])
            #expect(typed.failedCleanly, "\(typed)")
            #expect(typed.stderr.contains("root"), "\(typed)")

            let badLevel = try write("root = \"\(scratch)/r\"\nlog_level = \"loud\"\n", "level.toml")
            let level = try await veneerd(["--config", badLevel, "--socket", socket])
            #expect(level.failedCleanly, "\(level)")
            #expect(level.stderr.contains("loud"), "\(level)")

            let relative = try write("root = \"relative\"\n", "relative.toml")
            let relativeResult = try await veneerd(["--config", relative, "--socket", socket])
            #expect(relativeResult.failedCleanly, "\(relativeResult)")
            #expect(relativeResult.stderr.contains("relative"), "\(relativeResult)")

            let negative = try write("root = \"\(scratch)/r\"\nmax_layer_size = -1\n", "layer.toml")
            let negativeResult = try await veneerd(["--config", negative, "--socket", socket])
            #expect(negativeResult.failedCleanly, "\(negativeResult)")
            #expect(negativeResult.stderr.contains("max_layer_size -1"), "\(negativeResult)")

            #expect(FileSystem.entryType(socket) == .missing)
            #expect(!FileManager.default.fileExists(atPath: scratch + "/r"), "a refused start created the root")
        }
    }
}
