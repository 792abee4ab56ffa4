import Foundation

#if canImport(Glibc)
import Glibc
#endif

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct RunResult: Sendable, CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String

    var succeeded: Bool { status == 0 }
    /// Standard output without surrounding white space.
    var output: String { stdout.trimmingCharacters(in: .whitespacesAndNewlines) }

    var description: String {
        "exit \(status)\nstdout: \(stdout.suffix(2000))\nstderr: \(stderr.suffix(2000))"
    }
}

enum Command {
    /// Runs a program to completion without holding a thread while it runs. Output goes
    /// through temporary files, so a chatty program cannot block on a full pipe. A
    /// program still running after `timeout` is killed and reported as an error.
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        timeout: Duration = .seconds(60)
    ) async throws -> RunResult {
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("veneer-cmd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("out")
        let errURL = scratch.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        defer {
            try? out.close()
            try? err.close()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try process.run()
        try await waitForExit(process, timeout: timeout, what: ([executable] + arguments).joined(separator: " "))
        return RunResult(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }

    /// Polls until `process` exits; kills it (SIGKILL) after `timeout`.
    static func waitForExit(_ process: Process, timeout: Duration, what: String) async throws {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                while process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
                throw HarnessError("timed out after \(timeout): \(what)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// The whole text of a file, read until end of file. Foundation stops after one page
    /// for /proc files, whose size reads as zero.
    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return count == 0 ? String(decoding: bytes, as: UTF8.self) : nil }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    /// The first of `candidates` that exists and is executable.
    static func find(_ candidates: [String]) -> String? {
        candidates.first { access($0, X_OK) == 0 }
    }
}
