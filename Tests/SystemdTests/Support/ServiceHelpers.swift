import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

#if canImport(Glibc)
import Glibc
#endif

/// Paths veneerd uses inside a machine, as the shipped units and example configuration set them.
enum ServicePaths {
    static let socket = "/run/veneer/veneer.sock"
    static let configuration = "/etc/veneer/veneerd.toml"
    static let dropInDirectory = "/etc/systemd/system/veneerd.service.d"
    static let service = "veneerd.service"
    static let socketUnit = "veneerd.socket"
    static let grpcSocket = "/run/veneer/grpc.sock"
    static let grpcSocketUnit = "veneerd-grpc.socket"
}

/// Boots a machine, installs veneerd with the units from `systemd/`, the configuration
/// `configuration` and, when given, a drop-in for veneerd.service, then runs `body`.
/// The machine is always powered off (or destroyed). When `body` throws, veneerd's
/// unit status and journal are attached to the test's issues.
func withVeneerMachine<T>(
    configuration: String, serviceDropIn: String? = nil, _ body: (SystemdMachine) async throws -> T
) async throws -> T {
    try await withSystemdMachine { machine in
        try await machine.installVeneer()
        try machine.writeFile(ServicePaths.configuration, configuration)
        if let serviceDropIn {
            try machine.writeFile(ServicePaths.dropInDirectory + "/test.conf", serviceDropIn)
        }
        try await machine.run(["systemctl", "daemon-reload"])
        do {
            return try await body(machine)
        } catch {
            let status = (try? await machine.exec(["systemctl", "status", "--no-pager", "-l", ServicePaths.service]).stdout) ?? ""
            let journal = (try? await machine.journal(unit: ServicePaths.service)) ?? ""
            Issue.record("systemctl status veneerd:\n\(status.suffix(3000))\nveneerd's journal:\n\(journal.suffix(6000))")
            throw error
        }
    }
}

extension SystemdMachine {
    // MARK: Clients

    /// A client for veneerd's socket in this machine, reached from the host.
    var client: VeneerClient { client(connectionGroup: 0) }

    /// A client that never shares a connection with clients of another group.
    ///
    /// AsyncHTTPClient pools connections by socket path, so a call through `client` may
    /// go out on a kept-alive connection that a daemon (now stopped, say) accepted
    /// earlier, rather than a new connection queued on the listening socket. Spelling
    /// the same path differently (`./` components) gives a pool of its own.
    func client(connectionGroup: Int) -> VeneerClient {
        let path = "/run/veneer/" + String(repeating: "./", count: connectionGroup) + "veneer.sock"
        return VeneerClient(socketPath: hostPath(path))
    }

    /// Writes veneerd's configuration file.
    func writeConfiguration(_ text: String) throws {
        try writeFile(ServicePaths.configuration, text)
    }

    // MARK: Unit state

    /// `systemctl show UNIT --property=…` as a dictionary.
    func show(_ unit: String, _ properties: [String]) async throws -> [String: String] {
        let result = try await run(["systemctl", "show", unit, "--property=" + properties.joined(separator: ",")])
        var values: [String: String] = [:]
        for line in result.stdout.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return values
    }

    /// The service's main PID as the machine numbers it, or nil when it has none.
    func mainPID() async throws -> Int? {
        guard let text = try await show(ServicePaths.service, ["MainPID"])["MainPID"], let pid = Int(text), pid > 0
        else { return nil }
        return pid
    }

    /// Polls `systemctl show` until `accept` holds for the properties, or `timeout` passes.
    /// Returns the last values read and whether they were accepted.
    func waitForUnit(
        _ properties: [String], of unit: String = ServicePaths.service, timeout: Duration = .seconds(10),
        until accept: ([String: String]) -> Bool
    ) async throws -> (values: [String: String], accepted: Bool) {
        let deadline = ContinuousClock.now + timeout
        while true {
            let values = try await show(unit, properties)
            if accept(values) { return (values, true) }
            if ContinuousClock.now > deadline { return (values, false) }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Waits until veneerd.service is active and running (READY=1 processed, no reload
    /// in progress); throws with the last state otherwise.
    func waitUntilServiceRunning(timeout: Duration = .seconds(20)) async throws {
        let (values, accepted) = try await waitForUnit(["ActiveState", "SubState"], timeout: timeout) {
            $0["ActiveState"] == "active" && $0["SubState"] == "running"
        }
        guard accepted else { throw TestFailure("veneerd.service is not active/running after \(timeout): \(values)") }
    }

    // MARK: Journal

    /// Journal entries of this boot whose fields have the values in `matching`, after
    /// `cursor` when given.
    ///
    /// With a cursor the entries are filtered here rather than by journalctl: systemd
    /// 252's `journalctl --after-cursor` with matches skips the first matching entry when
    /// the cursor's own entry does not match.
    func journalEntries(matching: [String: String], after cursor: String? = nil) async throws -> [JournalEntry] {
        var arguments = ["journalctl", "-b", "--no-pager", "-o", "json"]
        if let cursor {
            arguments.append("--after-cursor=" + cursor)
        } else {
            arguments += matching.keys.sorted().map { $0 + "=" + (matching[$0] ?? "") }
        }
        let result = try await run(arguments)
        return result.stdout.split(separator: "\n").compactMap { JournalEntry(json: $0) }
            .filter { entry in matching.allSatisfy { entry[$0.key] == $0.value } }
    }

    /// Entries of veneerd.service's own processes (not systemd's messages about the unit).
    func veneerdEntries(after cursor: String? = nil) async throws -> [JournalEntry] {
        try await journalEntries(matching: ["_SYSTEMD_UNIT": ServicePaths.service], after: cursor)
    }

    /// Messages that the machine's systemd (PID 1) logged about veneerd.service.
    func managerEntries(after cursor: String? = nil) async throws -> [JournalEntry] {
        try await journalEntries(matching: ["_PID": "1", "UNIT": ServicePaths.service], after: cursor)
    }

    /// The cursor of the newest journal entry, to read only what comes after it.
    func journalCursor() async throws -> String? {
        let result = try await run(["journalctl", "-b", "--no-pager", "-o", "json", "-n", "1"])
        return result.stdout.split(separator: "\n").compactMap { JournalEntry(json: $0) }.last?["__CURSOR"]
    }

    /// Polls `entries` until one satisfies `accept`, or `timeout` passes.
    func waitForJournalEntry(
        timeout: Duration = .seconds(10), _ entries: () async throws -> [JournalEntry],
        where accept: (JournalEntry) -> Bool
    ) async throws -> JournalEntry? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let found = try await entries().first(where: accept) { return found }
            if ContinuousClock.now > deadline { return nil }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    // MARK: Mounts and files inside the machine

    /// Whether `path` (a path inside the machine) is a mount point in the machine's mount
    /// namespace, the one veneerd shares, per its PID 1's mountinfo.
    func isMountPoint(_ path: String) -> Bool {
        MountInfo.targets(under: path, mountinfo: "/proc/\(pid)/mountinfo").contains(path)
    }

    /// The inode of the socket file at `path` inside the machine, or nil when there is no
    /// socket there.
    func socketInode(_ path: String = ServicePaths.socket) -> UInt64? {
        var st = stat()
        guard lstat(hostPath(path), &st) == 0, st.st_mode & S_IFMT == S_IFSOCK else { return nil }
        return UInt64(st.st_ino)
    }
}

/// One journal entry from `journalctl -o json`. Binary values (sent as byte arrays) are
/// decoded as UTF-8; values too large for journalctl (null) are left out.
struct JournalEntry: Sendable, CustomStringConvertible {
    var fields: [String: String]

    init?(json line: Substring) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            return nil
        }
        var fields: [String: String] = [:]
        for (name, value) in object {
            if let text = value as? String {
                fields[name] = text
            } else if let array = value as? [Any] {
                // Bytes of a value that is not valid UTF-8 text.
                let bytes = array.compactMap { ($0 as? NSNumber).map { UInt8(truncatingIfNeeded: $0.intValue) } }
                fields[name] = String(decoding: bytes, as: UTF8.self)
            }
        }
        self.fields = fields
    }

    subscript(_ name: String) -> String? { fields[name] }

    var message: String { fields["MESSAGE"] ?? "" }
    var priority: Int? { fields["PRIORITY"].flatMap { Int($0) } }

    /// Whether any field other than the journal's own (`_…`, `__…`) mentions `text`.
    func mentions(_ text: String) -> Bool {
        fields.contains { !$0.key.hasPrefix("_") && $0.value.localizedCaseInsensitiveContains(text) }
    }

    var description: String {
        let shown = fields.filter { !$0.key.hasPrefix("_") }.sorted { $0.key < $1.key }
        return "{" + shown.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + "}"
    }
}

// MARK: - API helpers

/// Builds committed layers `L1` … `L<depth>`, each prepared (as `w<n>`) on the one before.
func commitChain(_ client: VeneerClient, depth: Int) async throws {
    for n in 1...depth {
        _ = try await client.prepare(PrepareRequest(key: "w\(n)", parent: n == 1 ? nil : "L\(n - 1)"))
        _ = try await client.commit("w\(n)", CommitRequest(name: "L\(n)"))
    }
}

/// The STATUS= line veneerd sends for these counts.
func expectedStatusText(_ status: StatusResponse) -> String {
    "\(status.snapshots.total) snapshots (\(status.snapshots.active) active, \(status.snapshots.view) views), "
        + "\(status.mounts) mounts, deepest chain \(status.deepestChain)/\(status.maxDepth)"
}

/// Runs `operation`, cancelling it when it has not finished within `timeout`.
func withTimeout<T: Sendable>(
    _ timeout: Duration, _ what: String, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw TestFailure("\(what) did not finish within \(timeout)")
        }
        return value
    }
}
