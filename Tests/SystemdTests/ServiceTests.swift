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

/// veneerd under a real systemd, with the units from `systemd/`: socket activation,
/// notifications (READY, STATUS, RELOADING, STOPPING, WATCHDOG), restarts and the
/// journal. Each test boots its own machine; they run one at a time.
@Suite("veneerd as a systemd service", .serialized)
struct ServiceTests {
    static let infoConfiguration = """
        # written by the test
        log_level = "info"

        """

    @Test(
        "socket activation: the first call through the socket starts veneerd, which reports active/running and its STATUS line",
        .timeLimit(.minutes(2)))
    func socketActivation() async throws {
        try await withVeneerMachine(configuration: Self.infoConfiguration) { machine in
            try await machine.run(["systemctl", "start", ServicePaths.socketUnit])
            let socketUnit = try await machine.show(ServicePaths.socketUnit, ["ActiveState", "SubState"])
            #expect(socketUnit == ["ActiveState": "active", "SubState": "listening"])
            #expect(machine.socketInode() != nil, "no socket file at \(ServicePaths.socket) after starting the socket unit")

            // The socket alone does not start the service.
            try await Task.sleep(for: .milliseconds(500))
            let idle = try await machine.show(ServicePaths.service, ["ActiveState", "SubState", "MainPID"])
            #expect(idle == ["ActiveState": "inactive", "SubState": "dead", "MainPID": "0"])

            // The first call starts it, and is answered.
            let client = machine.client
            let first = try await withTimeout(.seconds(60), "the first call through the socket") {
                try await client.prepare(PrepareRequest(key: "w1"))
            }
            #expect(first.snapshot.key == "w1" && first.snapshot.kind == .active)
            let started = try await machine.show(ServicePaths.service, ["ActiveState", "NRestarts"])
            #expect(["active", "activating", "reloading"].contains(started["ActiveState"]), "\(started)")
            #expect(started["NRestarts"] == "0", "\(started)")

            // Two committed layers, an active snapshot on them, mounted by the daemon.
            _ = try await client.commit("w1", CommitRequest(name: "L1"))
            _ = try await client.prepare(PrepareRequest(key: "w2", parent: "L1"))
            _ = try await client.commit("w2", CommitRequest(name: "L2"))
            _ = try await client.prepare(PrepareRequest(key: "top", parent: "L2"))
            try await machine.run(["mkdir", "-p", "/mnt/x"])
            _ = try await client.mount(MountRequest(key: "top", target: "/mnt/x"))

            let expected = "3 snapshots (1 active, 0 views), 1 mounts, deepest chain 2/500"
            let status = try await client.status()
            #expect(expectedStatusText(status) == expected, "the API reports other counts: \(status)")
            let shown = try await machine.waitForUnit(["ActiveState", "SubState", "StatusText"], timeout: .seconds(5)) {
                $0["ActiveState"] == "active" && $0["SubState"] == "running" && $0["StatusText"] == expected
            }
            #expect(shown.accepted, "systemctl show veneerd: \(shown.values); expected StatusText \(quoted(expected))")

            // The line follows the next change within about a second.
            let changed = ContinuousClock.now
            try await client.unmount(target: "/mnt/x")
            let afterUnmount = "3 snapshots (1 active, 0 views), 0 mounts, deepest chain 2/500"
            let updated = try await machine.waitForUnit(["StatusText"], timeout: .seconds(3)) {
                $0["StatusText"] == afterUnmount
            }
            #expect(
                updated.accepted,
                "StatusText after an unmount: \(updated.values) after \(ContinuousClock.now - changed); expected \(quoted(afterUnmount))"
            )
        }
    }

    @Test(
        "socket activation by containerd's gRPC socket: a connection to it starts veneerd, which serves HTTP/2 on the descriptor systemd passed and reports it",
        .timeLimit(.minutes(2)))
    func grpcSocketActivation() async throws {
        try await withVeneerMachine(configuration: Self.infoConfiguration) { machine in
            try await machine.run(["systemctl", "start", ServicePaths.socketUnit, ServicePaths.grpcSocketUnit])
            let grpcUnit = try await machine.show(ServicePaths.grpcSocketUnit, ["ActiveState", "SubState"])
            #expect(grpcUnit == ["ActiveState": "active", "SubState": "listening"])
            let inode = try #require(machine.socketInode(ServicePaths.grpcSocket))
            let idle = try await machine.show(ServicePaths.service, ["ActiveState"])
            #expect(idle == ["ActiveState": "inactive"])

            // containerd's first bytes on an HTTP/2 connection; the server answers with its SETTINGS.
            let path = machine.hostPath(ServicePaths.grpcSocket)
            let firstFrame = try await withTimeout(.seconds(60), "an HTTP/2 exchange on the gRPC socket") {
                try await HTTP2Probe.firstFrame(path, timeoutSeconds: 50)
            }
            #expect(firstFrame.count == 9 && firstFrame[3] == 4, "not an HTTP/2 SETTINGS frame: \(firstFrame)")
            try await machine.waitUntilServiceRunning()
            let status = try await machine.client.status()
            #expect(status.grpcSocket == ServicePaths.grpcSocket)
            // The daemon served systemd's socket rather than binding one of its own.
            #expect(machine.socketInode(ServicePaths.grpcSocket) == inode)
        }
    }

    @Test(
        "reload: `systemctl reload` applies a changed max_depth before it returns; invalid TOML and an out-of-range max_depth make it fail, with the reason in the status and the journal, the old configuration kept; a valid file clears the status note",
        .timeLimit(.minutes(2)))
    func reload() async throws {
        try await withVeneerMachine(configuration: Self.infoConfiguration + "max_depth = 500\n") { machine in
            // The machine has systemd and veneerd, and no procps: no kill program.
            let kill = try await machine.exec(["sh", "-c", "test -e /bin/kill || test -e /usr/bin/kill"])
            #expect(kill.status != 0, "a kill program is installed in the test machine")
            // Type=notify: systemctl start returns once READY=1 arrived.
            try await machine.run(["systemctl", "start", ServicePaths.service])
            try await machine.waitUntilServiceRunning()
            try await machine.run(["systemd-analyze", "log-level", "debug"])
            let client = machine.client
            #expect(try await client.status().maxDepth == 500)
            try await commitChain(client, depth: 8)
            let pid = try #require(try await machine.mainPID())

            let cursor = try await machine.journalCursor()
            try machine.writeConfiguration(Self.infoConfiguration + "max_depth = 7\n")
            let reloaded = try await machine.exec(["systemctl", "reload", ServicePaths.service])
            try #require(reloaded.succeeded, "systemctl reload with a valid file: \(reloaded)")
            // ExecReload= waits for the daemon's answer: the new value is in force already.
            #expect(try await client.status().maxDepth == 7, "max_depth right after systemctl reload returned")
            let state = try await machine.waitForUnit(["ActiveState", "SubState"]) {
                $0["ActiveState"] == "active" && $0["SubState"] == "running"
            }
            #expect(state.accepted, "after the reload: \(state.values)")
            #expect(try await machine.mainPID() == pid, "the reload restarted veneerd")

            // The reload was announced with RELOADING=1 and MONOTONIC_USEC=, and ended with READY=1.
            let notifications = try await machine.managerEntries(after: cursor).map(\.message)
                .filter { $0.contains("Got notification message") }
            let reloading = notifications.firstIndex { $0.contains("RELOADING=1") }
            #expect(reloading != nil, "no RELOADING=1 from veneerd; notifications: \(notifications)")
            if let reloading {
                #expect(notifications[reloading].contains("MONOTONIC_USEC="), "\(notifications[reloading])")
                #expect(
                    notifications[(reloading + 1)...].contains { $0.contains("READY=1") },
                    "no READY=1 after RELOADING=1: \(notifications)")
            }

            // Seven layers are allowed, eight are refused.
            _ = try await client.prepare(PrepareRequest(key: "seven", parent: "L7"))
            let refused = await #expect(throws: VeneerError.self) {
                _ = try await client.prepare(PrepareRequest(key: "eight", parent: "L8"))
            }
            if let refused {
                #expect(refused.code == .failedPrecondition && refused.message.contains("max_depth 7"), "\(refused)")
            }

            let broken: [(text: String, mentioning: String)] = [
                (Self.infoConfiguration + "max_depth = = 3\n", "TOML"),
                (Self.infoConfiguration + "max_depth = 9999\n", "9999"),
            ]
            for (text, mentioning) in broken {
                let before = try await machine.journalCursor()
                try machine.writeConfiguration(text)
                let rejected = try await machine.exec(["systemctl", "reload", ServicePaths.service])
                #expect(!rejected.succeeded, "systemctl reload with \(quoted(text)) succeeded: \(rejected)")
                let logged = try await machine.waitForJournalEntry({ try await machine.veneerdEntries(after: before) }) {
                    ($0.priority ?? 7) <= 3 && $0.mentions(mentioning)
                }
                let entries = try await machine.veneerdEntries(after: before)
                #expect(
                    logged != nil,
                    "no error-priority line mentioning \(quoted(mentioning)) after reloading with \(quoted(text)); veneerd logged: \(entries)"
                )
                let after = try await machine.waitForUnit(["ActiveState", "SubState", "MainPID", "StatusText"]) {
                    $0["ActiveState"] == "active" && $0["SubState"] == "running"
                        && ($0["StatusText"] ?? "").contains("reload rejected") && ($0["StatusText"] ?? "").contains(mentioning)
                }
                #expect(after.accepted, "after a rejected reload with \(quoted(text)): \(after.values)")
                #expect(after.values["MainPID"] == String(pid), "veneerd was restarted: \(after.values)")
                #expect(try await client.status().maxDepth == 7, "after reloading with \(quoted(text))")
            }
            await #expect(throws: VeneerError.self) {
                _ = try await client.prepare(PrepareRequest(key: "eight", parent: "L8"))
            }

            // A file that loads again: the reload succeeds and the status loses its note.
            try machine.writeConfiguration(Self.infoConfiguration + "max_depth = 9\n")
            try await machine.run(["systemctl", "reload", ServicePaths.service])
            #expect(try await client.status().maxDepth == 9)
            let cleared = try await machine.waitForUnit(["StatusText"], timeout: .seconds(5)) {
                !($0["StatusText"] ?? "reload rejected").contains("reload rejected")
            }
            #expect(cleared.accepted, "the status still names a rejected reload: \(cleared.values)")
        }
    }

    @Test(
        "watchdog: a SIGSTOPped veneerd is restarted; the socket stays and a call made meanwhile succeeds",
        .timeLimit(.minutes(2)))
    func watchdogRestartsAWedgedDaemon() async throws {
        let dropIn = """
            [Service]
            WatchdogSec=3s

            """
        try await withVeneerMachine(configuration: Self.infoConfiguration, serviceDropIn: dropIn) { machine in
            try await machine.run(["systemctl", "start", ServicePaths.socketUnit])
            let client = machine.client
            _ = try await client.prepare(PrepareRequest(key: "before"))
            try await machine.waitUntilServiceRunning()
            #expect(try await machine.show(ServicePaths.service, ["WatchdogUSec"])["WatchdogUSec"] == "3s")
            let pid = try #require(try await machine.mainPID())

            // A healthy daemon keeps the watchdog fed: well past WatchdogSec, nothing restarted it.
            try await Task.sleep(for: .milliseconds(4500))
            let healthy = try await machine.show(ServicePaths.service, ["ActiveState", "SubState", "MainPID", "NRestarts"])
            try #require(
                healthy == ["ActiveState": "active", "SubState": "running", "MainPID": String(pid), "NRestarts": "0"],
                "a healthy veneerd did not keep the watchdog fed: \(healthy)")

            let inode = try #require(machine.socketInode())
            let cursor = try await machine.journalCursor()
            try await machine.run(["systemctl", "kill", "--kill-who=main", "--signal=SIGSTOP", ServicePaths.service])
            let procStat = try await machine.run(["cat", "/proc/\(pid)/stat"]).output
            let processState = procStat.split(separator: ")").last?.split(separator: " ").first
            #expect(processState == "T", "veneerd is not stopped: \(procStat)")

            // A call on a new connection, made while the daemon is stopped.
            let meanwhile = machine.client(connectionGroup: 1)
            let socketWatch = Task { () -> [String] in
                var problems: [String] = []
                while !Task.isCancelled {
                    let now = machine.socketInode()
                    if now != inode { problems.append("socket inode \(now.map(String.init) ?? "missing")") }
                    try? await Task.sleep(for: .milliseconds(50))
                }
                return problems
            }
            let started = ContinuousClock.now
            let call = await Task {
                try await withTimeout(.seconds(60), "the call made while veneerd was stopped") {
                    try await meanwhile.prepare(PrepareRequest(key: "during"))
                }
            }.result
            let waited = ContinuousClock.now - started
            socketWatch.cancel()
            let socketProblems = await socketWatch.value

            switch call {
            case .success(let prepared):
                #expect(prepared.snapshot.key == "during")
            case .failure(let error):
                let journal = (try? await machine.journal(unit: ServicePaths.service)) ?? ""
                Issue.record(
                    "the call made while veneerd was stopped failed after \(waited): \(error)\njournal of veneerd.service:\n\(journal.suffix(3000))"
                )
            }
            #expect(socketProblems.isEmpty, "the socket file did not stay: \(Set(socketProblems))")
            // Whatever became of the call, systemd restarts the service.
            let (after, running) = try await machine.waitForUnit(
                ["ActiveState", "SubState", "MainPID", "NRestarts"], timeout: .seconds(30)
            ) { $0["ActiveState"] == "active" && $0["SubState"] == "running" }
            #expect(running, "\(after)")
            #expect(Int(after["NRestarts"] ?? "") ?? 0 >= 1, "\(after)")
            #expect(after["MainPID"] != String(pid) && after["MainPID"] != "0", "\(after)")
            let manager = try await machine.managerEntries(after: cursor).map(\.message)
            #expect(manager.contains { $0.contains("Watchdog timeout") }, "systemd did not report a watchdog timeout: \(manager)")

            // Both snapshots are there, served by the new instance.
            let keys = Set(try await client.list().map(\.key))
            #expect(keys == ["before", "during"])
        }
    }

    @Test(
        "stop: exit status 0 after STOPPING=1; committed snapshots and live mounts are still there after a restart",
        .timeLimit(.minutes(2)))
    func stopKeepsSnapshotsAndMounts() async throws {
        try await withVeneerMachine(configuration: Self.infoConfiguration) { machine in
            try await machine.run(["systemd-analyze", "log-level", "debug"])
            try await machine.run(["systemctl", "start", ServicePaths.socketUnit])
            let client = machine.client
            try await commitChain(client, depth: 1)
            _ = try await client.prepare(PrepareRequest(key: "top", parent: "L1"))
            try await machine.run(["mkdir", "-p", "/mnt/x"])
            let mounted = try await client.mount(MountRequest(key: "top", target: "/mnt/x"))
            #expect(mounted.target == "/mnt/x" && mounted.key == "top")
            try #require(machine.isMountPoint("/mnt/x"), "/mnt/x is not a mount point in the machine")
            try "written through the mount\n".write(
                toFile: machine.hostPath("/mnt/x/hello"), atomically: false, encoding: .utf8)
            try await machine.waitUntilServiceRunning()
            let pid = try #require(try await machine.mainPID())

            let cursor = try await machine.journalCursor()
            try await machine.run(["systemctl", "stop", ServicePaths.service])
            let stopped = try await machine.show(
                ServicePaths.service, ["ActiveState", "Result", "ExecMainCode", "ExecMainStatus"])
            // ExecMainCode 1 is CLD_EXITED: the daemon exited by itself rather than dying of SIGTERM.
            #expect(
                stopped == ["ActiveState": "inactive", "Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0"],
                "after systemctl stop: \(stopped)")
            let notifications = try await machine.managerEntries(after: cursor).map(\.message)
                .filter { $0.contains("Got notification message from PID \(pid)") }
            #expect(
                notifications.contains { $0.contains("STOPPING=1") },
                "systemd got no STOPPING=1 from veneerd (PID \(pid)) during the stop: \(notifications)")

            // Stopping the service leaves the socket and the mount alone.
            #expect(machine.socketInode() != nil, "the socket file went away with the service")
            #expect(machine.isMountPoint("/mnt/x"), "the mount went away with the service")

            try await machine.run(["systemctl", "start", ServicePaths.service])
            try await machine.waitUntilServiceRunning()
            #expect(try await machine.mainPID() != pid)
            let snapshots = try await client.list()
            #expect(Set(snapshots.map { "\($0.key):\($0.kind.rawValue)" }) == ["L1:committed", "top:active"])
            let live = try await client.liveMounts()
            #expect(live.map(\.target) == ["/mnt/x"] && live.map(\.key) == ["top"], "\(live)")
            #expect(machine.isMountPoint("/mnt/x"), "/mnt/x is not a mount point after the restart")
            let hello = try? String(contentsOfFile: machine.hostPath("/mnt/x/hello"), encoding: .utf8)
            #expect(hello == "written through the mount\n")
            #expect(try await client.status().mounts == 1)
        }
    }

    @Test(
        "journal: structured entries with SNAPSHOT_KEY= at info, REQUEST_ID= at debug, warnings and errors at their priority",
        .timeLimit(.minutes(2)))
    func journalEntries() async throws {
        try await withVeneerMachine(configuration: "log_level = \"debug\"\n") { machine in
            try await machine.run(["systemctl", "start", ServicePaths.socketUnit])
            let client = machine.client
            let key = "journal-key-1"
            _ = try await client.prepare(PrepareRequest(key: key, labels: ["purpose": "journal"]))
            for _ in 0..<3 { _ = try await client.status() }
            try await machine.waitUntilServiceRunning()

            let created = try await machine.waitForJournalEntry({ try await machine.veneerdEntries() }) {
                $0["SNAPSHOT_KEY"] == key
            }
            let entries = try await machine.veneerdEntries()
            let keyed = entries.filter { $0["SNAPSHOT_KEY"] == key }
            #expect(created != nil, "no entry with SNAPSHOT_KEY=\(key); veneerd logged: \(entries.suffix(30))")
            #expect(
                keyed.contains { $0.priority == 6 && $0.message.localizedCaseInsensitiveContains("creat") },
                "no info-priority creation line for \(key): \(keyed)")
            #expect(keyed.allSatisfy { $0["_TRANSPORT"] == "journal" }, "\(keyed.map { $0["_TRANSPORT"] ?? "?" })")
            // Sent to the journal only, not also as plain text on stderr.
            let plain = entries.filter { $0["_TRANSPORT"] == "stdout" }
            for entry in keyed {
                #expect(!plain.contains { $0.message.contains(entry.message) }, "also on stderr: \(entry.message)")
            }

            // One debug line per request, each with its own REQUEST_ID (veneerd's own
            // health checks through the socket add some).
            let requests = entries.filter { !($0["REQUEST_ID"] ?? "").isEmpty }
            #expect(requests.allSatisfy { $0.priority == 7 }, "request lines not at debug: \(requests.prefix(5))")
            #expect(Set(requests.compactMap { $0["REQUEST_ID"] }).count >= 4, "request lines: \(requests)")

            // A warning or error at its priority: a rejected reload.
            let before = try await machine.journalCursor()
            let pid = try #require(try await machine.mainPID())
            try machine.writeConfiguration("log_level = \"shouting\"\n")
            let reload = try await machine.exec(["systemctl", "reload", ServicePaths.service])
            #expect(!reload.succeeded, "systemctl reload with an unknown log level succeeded: \(reload)")
            let rejected = try await machine.waitForJournalEntry({ try await machine.veneerdEntries(after: before) }) {
                ($0.priority ?? 7) <= 4 && $0.mentions("shouting") && $0["_PID"] == String(pid)
            }
            let afterReload = try await machine.veneerdEntries(after: before)
            #expect(rejected != nil, "no warning or error about the rejected log level; veneerd logged: \(afterReload)")
            // The daemon's own entries are structured; `veneerd reload` (ExecReload=, another
            // process) writes the reason to its standard error, which the journal keeps too.
            let daemon = afterReload.filter { $0["_PID"] == String(pid) }
            #expect(
                daemon.allSatisfy { $0.priority != nil && $0["_TRANSPORT"] == "journal" },
                "entries without priority or not structured: \(daemon.filter { $0["_TRANSPORT"] != "journal" })")
            #expect(
                afterReload.contains { $0["_PID"] != String(pid) && $0.message.hasPrefix("veneerd reload:") && $0.mentions("shouting") },
                "the reload command's reason is not in the journal: \(afterReload)")
            try await machine.waitUntilServiceRunning()
        }
    }
}
