import Foundation
import Testing
import VeneerClient
import VeneerCore

#if canImport(Glibc)
import Glibc
#endif

/// Where the package's build products are: `VENEER_BIN_DIR`, else `.build/debug`
/// under the package root found from this file.
enum BuildProducts {
    static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url
            }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }()

    static var binDir: String {
        if let dir = ProcessInfo.processInfo.environment["VENEER_BIN_DIR"] { return dir }
        return packageRoot.appendingPathComponent(".build/debug").path
    }

    static var veneerd: String { binDir + "/veneerd" }
    static var veneer: String { binDir + "/veneer" }
}

/// A temporary directory with a short path (overlay options must fit in a page),
/// removed with everything mounted below it unmounted first.
final class TemporaryRoot: Sendable {
    let path: String

    init() throws {
        var template = Array("/tmp/vn.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw VeneerError.internal("mkdtemp failed: errno \(errno)")
        }
        path = String(cString: made)
    }

    /// Unmounts everything under the root (deepest first), then deletes it.
    func destroy() {
        Mounts.unmountAll(under: path)
        _ = try? run("/bin/rm", ["-rf", "--one-file-system", path])
    }
}

/// Mount helpers for tests: uses mount(8) to perform what the daemon returns.
enum Mounts {
    /// Performs `mounts` at `target` as a client would.
    static func mount(_ mounts: [Mount], at target: String) throws {
        for m in mounts {
            let result = try run("/bin/mount", ["-t", m.type, m.source, "-o", m.options.joined(separator: ","), target])
            guard result.status == 0 else {
                throw VeneerError.internal("mount -t \(m.type) at \(target) failed: \(result.stderr)")
            }
        }
    }

    static func unmount(_ target: String) {
        _ = try? run("/bin/umount", [target])
    }

    /// `mount --bind source target`, as someone other than the daemon would.
    static func bind(_ source: String, at target: String) throws {
        let result = try run("/bin/mount", ["--bind", source, target])
        guard result.status == 0 else {
            throw VeneerError.internal("mount --bind \(source) \(target) failed: \(result.stderr)")
        }
    }

    /// Targets under `prefix` according to /proc/self/mountinfo, deepest first.
    static func targets(under prefix: String) -> [String] {
        // Read to the end: a plain String(contentsOfFile:) stops at procfs's first short
        // read, which comes before any line longer than its buffer (deep overlays).
        guard let data = try? FileHandle(forReadingAtPath: "/proc/self/mountinfo")?.readToEnd() else { return [] }
        let text = String(decoding: data, as: UTF8.self)
        var found: [String] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { continue }
            let target = unescape(String(fields[4]))
            if target == prefix || target.hasPrefix(prefix + "/") { found.append(target) }
        }
        return found.sorted { $0.count > $1.count }
    }

    static func unmountAll(under prefix: String) {
        for target in targets(under: prefix) {
            _ = try? run("/bin/umount", ["-l", target])
        }
    }

    private static func unescape(_ s: String) -> String {
        var out = ""
        var chars = Array(s)
        var i = 0
        while i < chars.count {
            if chars[i] == "\\", i + 3 < chars.count, let v = Int(String(chars[(i + 1)...(i + 3)]), radix: 8),
                let scalar = UnicodeScalar(v)
            {
                out.unicodeScalars.append(scalar)
                i += 4
            } else {
                out.append(chars[i])
                i += 1
            }
        }
        chars.removeAll()
        return out
    }
}

struct RunResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion and captures its output.
@discardableResult
func run(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, in directory: String? = nil
) throws -> RunResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return RunResult(
        status: process.terminationStatus,
        stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
}

/// A real `veneerd` process on its own temporary state root and socket.
final class Daemon: @unchecked Sendable {
    // Mutated only from the test that owns the daemon (start/stop/kill are sequential).
    let temp: TemporaryRoot
    let root: String
    let socket: String
    private(set) var process: Process?
    private(set) var logPath: String
    let extraArguments: [String]

    var client: VeneerClient { VeneerClient(socketPath: socket) }

    /// Creates the temporary root and starts the daemon. `rootName` is the state root's
    /// path below the temporary directory (for example a long one, to test deep stacks).
    init(arguments: [String] = [], start: Bool = true, rootName: String = "root") async throws {
        temp = try TemporaryRoot()
        root = temp.path + "/" + rootName
        socket = temp.path + "/veneer.sock"
        logPath = temp.path + "/veneerd.log"
        extraArguments = arguments
        if start { try await self.start() }
    }

    var arguments: [String] {
        ["--root", root, "--socket", socket, "--log-level", "info"] + extraArguments
    }

    /// Starts veneerd and waits until the API answers.
    func start() async throws {
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
                throw VeneerError.internal("veneerd exited with \(process.terminationStatus) during start:\n\(self.log)")
            }
            if (try? await client.status()) != nil { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw VeneerError.internal("veneerd did not answer within 30 s:\n\(self.log)")
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stop() async throws -> Int32 {
        guard let process else { return 0 }
        kill(process.processIdentifier, SIGTERM)
        try await waitForExit(process)
        self.process = nil
        return process.terminationStatus
    }

    /// SIGKILL and wait, as a crash would.
    func crash() async throws {
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
                throw VeneerError.internal("veneerd did not exit within 30 s")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Stops the daemon (hard if needed), unmounts what tests mounted and deletes the root.
    func destroy() async {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            try? await waitForExit(process)
        }
        temp.destroy()
    }

    /// A fresh empty directory under the temporary root, to mount on.
    func mountPoint(_ name: String = UUID().uuidString) throws -> String {
        let path = temp.path + "/mnt-" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// Runs `body` with a started daemon and always tears it down, even when the body fails.
func withDaemon<T>(
    arguments: [String] = [], rootName: String = "root", _ body: (Daemon) async throws -> T
) async throws -> T {
    let daemon = try await Daemon(arguments: arguments, rootName: rootName)
    do {
        let result = try await body(daemon)
        await daemon.destroy()
        return result
    } catch {
        let log = daemon.log
        await daemon.destroy()
        Issue.record("veneerd log:\n\(log.suffix(4000))")
        throw error
    }
}

/// Mounts what the daemon returns for `key` at a fresh target, runs `body` with the
/// target, and unmounts even when the body fails.
func withMounted<T>(
    _ daemon: Daemon, _ key: String, _ body: (String) async throws -> T
) async throws -> T {
    let target = try daemon.mountPoint()
    try Mounts.mount(try await daemon.client.mounts(key), at: target)
    defer { Mounts.unmount(target) }
    return try await body(target)
}
