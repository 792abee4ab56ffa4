import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Schemathesis as `make venv` installs it, and the files of the run kept in the repository.
enum Schemathesis {
    static var executable: String {
        if let path = ProcessInfo.processInfo.environment["VENEER_SCHEMATHESIS"], !path.isEmpty { return path }
        return BuildProducts.packageRoot.appendingPathComponent(".build-venv/bin/schemathesis").path
    }

    static var schema: String { BuildProducts.packageRoot.appendingPathComponent("api/openapi.yaml").path }
    static var config: String { BuildProducts.packageRoot.appendingPathComponent("api/schemathesis.toml").path }
    static var hooks: String { BuildProducts.packageRoot.appendingPathComponent("api/schemathesis_hooks.py").path }

    /// The run's time budget: `VENEER_FUZZ_SECONDS`, else two minutes.
    static func seconds() throws -> Int {
        guard let text = ProcessInfo.processInfo.environment["VENEER_FUZZ_SECONDS"], !text.isEmpty else { return 120 }
        guard let seconds = Int(text), seconds > 0 else {
            throw VeneerError.internal("VENEER_FUZZ_SECONDS must be a positive number of seconds, not \(text)")
        }
        return seconds
    }

    /// `VENEER_FUZZ_SEED`, else a new one (the test prints it).
    static func seed() throws -> UInt32 {
        guard let text = ProcessInfo.processInfo.environment["VENEER_FUZZ_SEED"], !text.isEmpty else {
            return UInt32.random(in: 0...UInt32.max)
        }
        guard let seed = UInt32(text) else {
            throw VeneerError.internal("VENEER_FUZZ_SEED must be an integer from 0 to \(UInt32.max), not \(text)")
        }
        return seed
    }
}

/// A child process whose output goes to a file, stopped with a signal and waited for.
final class LoggedProcess: @unchecked Sendable {
    // Used only by the test that started it, one call at a time.
    let process = Process()
    let outputPath: String

    init(_ executable: String, _ arguments: [String], output: String, environment: [String: String]? = nil,
         in directory: String? = nil) throws {
        outputPath = output
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        let file = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = file
        process.standardError = file
        try process.run()
        try file.close()
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Waits up to `seconds` for the process to exit; returns its status, or nil when it
    /// is still running.
    func wait(seconds: Double) async throws -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning {
            if Date() > deadline { return nil }
            try await Task.sleep(for: .milliseconds(50))
        }
        return process.terminationStatus
    }

    /// SIGTERM, then SIGKILL after two seconds; waits for the exit.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(2)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// Loopback TCP helpers: schemathesis speaks HTTP over TCP, the daemon only on its socket.
enum Loopback {
    /// 127.0.0.1:`port`.
    static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
        address.sin_port = port.bigEndian
        return address
    }

    /// A port that was free a moment ago.
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw VeneerError.internal("socket: errno \(errno)") }
        defer { close(fd) }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw VeneerError.internal("bind 127.0.0.1:0: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw VeneerError.internal("getsockname: errno \(errno)") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Whether something accepts connections on 127.0.0.1:`port`.
    static func accepts(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

/// socat forwarding 127.0.0.1:`port` to the daemon's Unix socket, one connection each.
final class SocketBridge: Sendable {
    static let socat = "/usr/bin/socat"
    let port: UInt16
    private let child: LoggedProcess

    init(socket: String, logDirectory: String) async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.socat) else {
            throw VeneerError.internal("\(Self.socat) is missing; `make deps` installs socat")
        }
        var failures: [String] = []
        // The free port is found by binding and closing: another process may take it
        // before socat does, so a bridge that cannot listen is tried on another port.
        for attempt in 0..<5 {
            let port = try Loopback.freePort()
            let child = try LoggedProcess(
                Self.socat, ["TCP-LISTEN:\(port),bind=127.0.0.1,reuseaddr,fork", "UNIX-CONNECT:\(socket)"],
                output: logDirectory + "/socat-\(attempt).log")
            let deadline = Date().addingTimeInterval(10)
            while child.process.isRunning, !Loopback.accepts(port), Date() < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            if child.process.isRunning, Loopback.accepts(port) {
                self.port = port
                self.child = child
                return
            }
            child.stop()
            failures.append("port \(port): \(child.output)")
        }
        throw VeneerError.internal("socat did not listen on 127.0.0.1: \(failures)")
    }

    func stop() { child.stop() }
}

@Suite("Fuzzing the HTTP API with schemathesis")
struct FuzzTests {
    @Test("schemathesis with every check finds no failure, and the rows still match the directories")
    func schemathesis() async throws {
        let executable = Schemathesis.executable
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            Issue.record(
                "schemathesis is not installed at \(executable): run `make test` (or `make venv`), which installs it in .build-venv")
            return
        }
        let seconds = try Schemathesis.seconds()
        let seed = try Schemathesis.seed()
        try await withDaemon { daemon in
            // Targets of POST /v1/mounts that exist on this machine are moved here by the hooks.
            let sandbox = daemon.temp.path + "/targets"
            let work = daemon.temp.path + "/schemathesis"
            for directory in [sandbox, work] {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            let bridge = try await SocketBridge(socket: daemon.socket, logDirectory: daemon.temp.path)
            defer { bridge.stop() }

            let arguments = [
                "--config-file", Schemathesis.config, "--no-color", "run", Schemathesis.schema,
                "--url", "http://127.0.0.1:\(bridge.port)", "--checks", "all", "--max-time", "\(seconds)",
                "--seed", "\(seed)", "--request-timeout", "30",
            ]
            var environment = ProcessInfo.processInfo.environment
            environment["SCHEMATHESIS_HOOKS"] = Schemathesis.hooks
            environment["VENEER_FUZZ_SANDBOX"] = sandbox
            // Loading the hooks must not leave a __pycache__ in the repository.
            environment["PYTHONDONTWRITEBYTECODE"] = "1"
            let command = "schemathesis " + arguments.joined(separator: " ")
            print("fuzzing for \(seconds) s with seed \(seed) (VENEER_FUZZ_SEED=\(seed) repeats it): \(command)")

            // Runs in the temporary directory, so that its example database and any
            // report stay out of the repository.
            let fuzzer = try LoggedProcess(
                executable, arguments, output: daemon.temp.path + "/schemathesis.log", environment: environment,
                in: work)
            defer { fuzzer.stop() }
            // The budget covers the whole run; the margin is for loading and the last requests.
            let status = try await fuzzer.wait(seconds: Double(seconds) + 180)
            fuzzer.stop()
            bridge.stop()
            let output = fuzzer.output
            if let status {
                #expect(status == 0, "schemathesis exited with \(status), seed \(seed):\n\(output.suffix(20_000))")
                if status == 0 { print(output.split(separator: "\n").suffix(25).joined(separator: "\n")) }
            } else {
                Issue.record("schemathesis still ran \(seconds + 180) s after it started, seed \(seed):\n\(output.suffix(20_000))")
            }

            // The hooks keep every target inside the temporary directory; undo any other.
            let live = try await daemon.client.liveMounts()
            for mount in live where !mount.target.hasPrefix(daemon.temp.path + "/") {
                Issue.record("the fuzzer mounted \(quoted(mount.key)) at \(mount.target), outside its sandbox")
                try? await daemon.client.unmount(target: mount.target, lazy: true)
            }
            // Every record is a mount in the kernel, and every mount in the sandbox a record.
            let kernel = Set(MountInfo.targets(under: sandbox))
            #expect(Set(live.map(\.target)) == kernel, "records \(live.map(\.target).sorted()), kernel \(kernel.sorted())")

            #expect(try await daemon.stop() == 0, "veneerd's exit status after SIGTERM:\n\(daemon.log.suffix(4000))")
            let directories = Set(try StateRoot.snapshotDirectories(daemon))
            let rows = try #require(try StateRoot.databaseIDs(daemon), "the check reads the database with /usr/bin/sqlite3; `make deps` installs it")
            #expect(directories.subtracting(rows).isEmpty, "snapshot directories without a row: \(directories.subtracting(rows).sorted())")
            #expect(rows.subtracting(directories).isEmpty, "rows without a snapshot directory: \(rows.subtracting(directories).sorted())")
            #expect(try StateRoot.stagingEntries(daemon) == [])
            #expect(try StateRoot.trashEntries(daemon) == [])
            print("\(rows.count) snapshots and \(live.count) mounts left by the fuzzer, consistent")
        }
    }
}
