import Foundation
import VeneerClient
import VeneerCore

#if canImport(Glibc)
import Glibc
#endif

/// Where the package's build products are: `VENEER_BIN_DIR`, else `.build/debug`
/// under the package root found from this file.
public enum BuildProducts {
    public static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url
            }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }()

    public static var binDir: String {
        if let dir = ProcessInfo.processInfo.environment["VENEER_BIN_DIR"] { return dir }
        return packageRoot.appendingPathComponent(".build/debug").path
    }

    public static var veneerd: String { binDir + "/veneerd" }
    public static var veneer: String { binDir + "/veneer" }
}

/// Mount helpers for tests: uses mount(8) to perform what the daemon returns.
public enum Mounts {
    /// Performs `mounts` at `target` as a client would.
    public static func mount(_ mounts: [Mount], at target: String) throws {
        for m in mounts {
            let result = try ProcessRun.run("/bin/mount", ["-t", m.type, m.source, "-o", m.options.joined(separator: ","), target])
            guard result.status == 0 else {
                throw TestFailure("mount -t \(m.type) at \(target) failed: \(result.stderr)")
            }
        }
    }

    public static func unmount(_ target: String) {
        _ = try? ProcessRun.run("/bin/umount", [target])
    }

    /// `mount --bind source target`, as someone other than the daemon would.
    public static func bind(_ source: String, at target: String) throws {
        let result = try ProcessRun.run("/bin/mount", ["--bind", source, target])
        guard result.status == 0 else {
            throw TestFailure("mount --bind \(source) \(target) failed: \(result.stderr)")
        }
    }
}

/// A real `veneerd` process on its own temporary state root and socket.
public final class Daemon: @unchecked Sendable {
    // Mutated only from the test that owns the daemon (start/stop/kill are sequential).
    public let temp: TemporaryDirectory
    public let root: String
    public let socket: String
    /// Where the daemon serves containerd's gRPC API: beside the API socket, its default.
    public let grpcSocket: String
    public private(set) var process: Process?
    public private(set) var logPath: String
    public let extraArguments: [String]

    public var client: VeneerClient { VeneerClient(socketPath: socket) }

    /// Creates the temporary root and starts the daemon. `rootName` is the state root's
    /// path below the temporary directory (for example a long one, to test deep stacks).
    public init(arguments: [String] = [], start: Bool = true, rootName: String = "root") async throws {
        temp = try TemporaryDirectory()
        root = temp.path + "/" + rootName
        socket = temp.path + "/veneer.sock"
        grpcSocket = temp.path + "/grpc.sock"
        logPath = temp.path + "/veneerd.log"
        extraArguments = arguments
        if start { try await self.start() }
    }

    public var arguments: [String] {
        ["--root", root, "--socket", socket, "--log-level", "info"] + extraArguments
    }

    /// Starts veneerd and waits until the API answers.
    public func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BuildProducts.veneerd)
        process.arguments = arguments
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if !process.isRunning {
                throw TestFailure("veneerd exited with \(process.terminationStatus) during start:\n\(self.log)")
            }
            if (try? await client.status()) != nil { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("veneerd did not answer within 30 s:\n\(self.log)")
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    public func stop() async throws -> Int32 {
        guard let process else { return 0 }
        kill(process.processIdentifier, SIGTERM)
        try await waitForExit(process)
        self.process = nil
        return process.terminationStatus
    }

    /// SIGKILL and wait, as a crash would.
    public func crash() async throws {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        try await waitForExit(process)
        self.process = nil
    }

    private func waitForExit(_ process: Process) async throws {
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning {
            if Date() > deadline {
                kill(process.processIdentifier, SIGKILL)
                throw TestFailure("veneerd did not exit within 30 s")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Stops the daemon (hard if needed), unmounts what tests mounted and deletes the root.
    public func destroy() async {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            try? await waitForExit(process)
        }
        temp.remove()
    }

    /// A fresh empty directory under the temporary root, to mount on.
    public func mountPoint(_ name: String = UUID().uuidString) throws -> String {
        let path = temp.path + "/mnt-" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

