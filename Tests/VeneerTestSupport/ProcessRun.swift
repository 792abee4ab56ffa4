import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How a program ended and what it printed.
public struct RunResult: Sendable, CustomStringConvertible {
    public var status: Int32
    /// False when a signal ended the program (`status` is then the signal).
    public var exited: Bool
    public var stdout: String
    public var stderr: String

    public init(status: Int32, exited: Bool = true, stdout: String, stderr: String) {
        self.status = status
        self.exited = exited
        self.stdout = stdout
        self.stderr = stderr
    }

    public var succeeded: Bool { exited && status == 0 }
    /// The program exited by itself with a status other than 0 (it did not crash).
    public var failedCleanly: Bool { exited && status != 0 }
    /// Standard output without surrounding white space.
    public var output: String { stdout.trimmingCharacters(in: .whitespacesAndNewlines) }

    public var description: String {
        "\(exited ? "exit status" : "signal") \(status)\nstdout: \(stdout.suffix(2000))\nstderr: \(stderr.suffix(2000))"
    }
}

/// Running programs from tests. Output goes through files, so a chatty program cannot
/// block on a full pipe.
public enum ProcessRun {
    /// Runs a program to completion on this thread.
    @discardableResult
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, in directory: String? = nil
    ) throws -> RunResult {
        let output = try Output()
        let process = try output.start(executable, arguments, environment: environment, in: directory)
        process.waitUntilExit()
        return output.result(of: process)
    }

    /// Runs a program to completion without holding a thread while it runs. A program
    /// still running after `timeout` is killed and reported as an error.
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        timeout: Duration
    ) async throws -> RunResult {
        let output = try Output()
        let process = try output.start(executable, arguments, environment: environment, in: nil)
        try await waitForExit(process, timeout: timeout) {
            "\(executable) \(arguments.joined(separator: " ").prefix(300)) did not finish within \(timeout):\n"
                + output.stderr
        }
        return output.result(of: process)
    }

    /// Polls until `process` exits; kills it (SIGKILL) after `timeout` and throws.
    public static func waitForExit(
        _ process: Process, timeout: Duration, _ failure: () -> String = { "timed out" }
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                while process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
                throw TestFailure(failure())
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// The first of `candidates` that exists and is executable.
    public static func find(_ candidates: [String]) -> String? {
        candidates.first { access($0, X_OK) == 0 }
    }

    /// Two files in a scratch directory of their own for a program's output.
    private final class Output {
        let directory: TemporaryDirectory
        let out: FileHandle
        let err: FileHandle

        init() throws {
            directory = try TemporaryDirectory(prefix: "veneer-run")
            for name in ["stdout", "stderr"] {
                _ = FileManager.default.createFile(atPath: directory(name), contents: nil)
            }
            out = try FileHandle(forWritingTo: URL(fileURLWithPath: directory("stdout")))
            err = try FileHandle(forWritingTo: URL(fileURLWithPath: directory("stderr")))
        }

        deinit {
            try? out.close()
            try? err.close()
        }

        func start(
            _ executable: String, _ arguments: [String], environment: [String: String]?, in directory: String?
        ) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            if let environment { process.environment = environment }
            if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = out
            process.standardError = err
            try process.run()
            return process
        }

        var stdout: String { (try? String(contentsOfFile: directory("stdout"), encoding: .utf8)) ?? "" }
        var stderr: String { (try? String(contentsOfFile: directory("stderr"), encoding: .utf8)) ?? "" }

        func result(of process: Process) -> RunResult {
            RunResult(
                status: process.terminationStatus, exited: process.terminationReason == .exit,
                stdout: stdout, stderr: stderr)
        }
    }
}
