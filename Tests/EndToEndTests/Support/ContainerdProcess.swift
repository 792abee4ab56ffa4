import Foundation
import Testing
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A real containerd on its own temporary root, state and socket, with veneerd's gRPC
/// socket configured as the proxy snapshotter `veneer`. Driven through `ctr`.
final class ContainerdProcess: @unchecked Sendable {
    // Mutated only by the test that owns it, one step at a time.
    let temp: TemporaryDirectory
    let address: String
    let logPath: String
    private var process: Process?

    static let binary = "/usr/bin/containerd"
    static let ctr = "/usr/bin/ctr"

    /// Starts containerd and waits until it answers.
    init(snapshotterSocket: String) async throws {
        for program in [Self.binary, Self.ctr, "/usr/bin/containerd-shim-runc-v2"] {
            guard FileManager.default.isExecutableFile(atPath: program) else {
                throw TestFailure("\(program) is missing; `make deps` installs containerd and runc")
            }
        }
        temp = try TemporaryDirectory(prefix: "ctrd")
        address = temp.path + "/containerd.sock"
        logPath = temp.path + "/containerd.log"
        let config = """
            version = 2
            root = "\(temp.path)/root"
            state = "\(temp.path)/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

            [grpc]
              address = "\(address)"

            [ttrpc]
              address = "\(address).ttrpc"

            [proxy_plugins]
              [proxy_plugins.veneer]
                type = "snapshot"
                address = "\(snapshotterSocket)"
            """
        try config.write(toFile: temp.path + "/config.toml", atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["--config", temp.path + "/config.toml"]
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if !process.isRunning { throw TestFailure("containerd exited during start:\n\(self.log.suffix(4000))") }
            if try await ctr(["version"]).succeeded { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("containerd did not answer within 30 s:\n\(self.log.suffix(4000))")
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Runs `ctr --address <socket> arguments...`.
    func ctr(_ arguments: [String], timeout: Duration = .seconds(120)) async throws -> RunResult {
        try await ProcessRun.run(Self.ctr, ["--address", address] + arguments, timeout: timeout)
    }

    /// Runs `ctr` and requires it to succeed; returns its standard output.
    @discardableResult
    func succeeding(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let result = try await ctr(arguments)
        try #require(result.succeeded, "ctr \(arguments): \(result)", sourceLocation: sourceLocation)
        return result.stdout
    }

    /// The keys and parents `ctr snapshots --snapshotter veneer ls` prints (containerd's
    /// own names, without the prefix its metadata layer gives backend keys).
    func snapshots() async throws -> [String: String] {
        let result = try await ctr(["snapshots", "--snapshotter", "veneer", "ls"])
        guard result.succeeded else { throw TestFailure("ctr snapshots ls: \(result)") }
        let table = result.stdout
        var rows: [String: String] = [:]
        for line in table.split(separator: "\n").dropFirst() {
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard words.count >= 2 else { continue }
            // KEY PARENT KIND, PARENT empty for a snapshot without one.
            rows[words[0]] = words.count == 3 ? words[1] : ""
        }
        return rows
    }

    /// Writes an OCI image layout tar named `name` with two layers (and `extraLayers`
    /// more), as `make-oci-image.py` describes; returns its path.
    func imageArchive(_ name: String, extraLayers: Int = 0) throws -> String {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path + "/make-oci-image.py"
        let layout = temp.path + "/layout-\(extraLayers)"
        let made = try ProcessRun.run("/usr/bin/python3", [script, layout, name, String(extraLayers)])
        guard made.succeeded else { throw TestFailure("make-oci-image.py: \(made)") }
        let archive = layout + ".tar"
        let tarred = try ProcessRun.run("/bin/tar", ["-C", layout, "-cf", archive, "."])
        guard tarred.succeeded else { throw TestFailure("tar: \(tarred)") }
        return archive
    }

    /// Stops containerd and the shims it started, and removes its directories.
    func destroy() async {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process = nil
        // Shims of containers still running name containerd's address on their command line.
        _ = try? ProcessRun.run("/usr/bin/pkill", ["-KILL", "-f", "containerd-shim-runc-v2 .*-address \(address)"])
        temp.remove()
    }
}

/// Runs `body` with veneerd and a containerd that uses it, and tears both down, even
/// when the body fails.
func withContainerd<T>(_ body: (Daemon, ContainerdProcess) async throws -> T) async throws -> T {
    try await withDaemon { daemon in
        let containerd = try await ContainerdProcess(snapshotterSocket: daemon.grpcSocket)
        do {
            let result = try await body(daemon, containerd)
            await containerd.destroy()
            return result
        } catch {
            Issue.record("containerd log:\n\(containerd.log.suffix(6000))")
            await containerd.destroy()
            throw error
        }
    }
}
