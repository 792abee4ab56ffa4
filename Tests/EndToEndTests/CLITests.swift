import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Running programs

/// The test process's environment without `VENEER_SOCKET`, so that only what a test sets counts.
func toolEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
    var environment = ProcessInfo.processInfo.environment
    environment["VENEER_SOCKET"] = nil
    environment["VENEER_NAMESPACE"] = nil
    environment.merge(extra) { $1 }
    return environment
}

/// Runs a program to completion, killing it after `timeout`.
func runTool(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
    timeout: Duration = .seconds(60)
) async throws -> RunResult {
    try await ProcessRun.run(executable, arguments, environment: environment ?? toolEnvironment(), timeout: timeout)
}

// MARK: - The CLI

@Suite("CLI")
struct CLITests {
    /// Runs `veneer --socket <daemon's socket> arguments...`.
    func veneer(_ daemon: Daemon, _ arguments: [String]) async throws -> RunResult {
        try await runTool(BuildProducts.veneer, ["--socket", daemon.socket] + arguments)
    }

    /// Runs `veneer` and requires it to succeed.
    func succeeding(
        _ daemon: Daemon, _ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> String {
        let result = try await veneer(daemon, arguments)
        try #require(result.succeeded, "veneer \(arguments): \(result)", sourceLocation: sourceLocation)
        #expect(result.stderr.isEmpty, "veneer \(arguments) wrote to stderr: \(result.stderr)", sourceLocation: sourceLocation)
        return result.stdout
    }

    /// Runs `veneer --json` and decodes what it printed.
    func json<T: Decodable>(
        _ type: T.Type, _ daemon: Daemon, _ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> T {
        let output = try await succeeding(daemon, arguments + ["--json"], sourceLocation: sourceLocation)
        do {
            return try JSONDecoder().decode(T.self, from: Data(output.utf8))
        } catch {
            Issue.record("veneer \(arguments) --json printed what is not a \(T.self): \(output)", sourceLocation: sourceLocation)
            throw error
        }
    }

    /// The mount command line the CLI prints for a mount, built here independently.
    func mountLine(_ mount: Mount, target: String = "TARGET") -> String {
        var words = ["mount"]
        if mount.type != "bind" { words += ["-t", mount.type] }
        words += [mount.source, "-o", mount.options.joined(separator: ","), target]
        return words.joined(separator: " ")
    }

    /// `Name:  value` lines as name → values (continuation lines add values).
    func fields(_ text: String) -> [String: [String]] {
        var result: [String: [String]] = [:]
        var last: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.first == " ", let last {
                result[last, default: []].append(line.trimmingCharacters(in: .whitespaces))
            } else if let colon = line.firstIndex(of: ":") {
                let name = String(line[..<colon])
                result[name] = [line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)]
                last = name
            }
        }
        return result
    }

    /// A timestamp as the table shows it: to the second.
    func seconds(_ time: Timestamp) -> String {
        String(time.rfc3339.prefix(19)) + "Z"
    }

    @Test("prepare, view, commit, mounts, label, info, ls, usage, cleanup, status and rm in text form")
    func textOutput() async throws {
        try await withAPI { daemon, api in

            let prepared = try await succeeding(daemon, ["prepare", "base"])
            let baseMounts = try await api.mountList("base")
            #expect(prepared == mountLine(baseMounts[0]) + "\n")
            #expect(baseMounts[0].type == "bind")
            try Data("x".utf8).write(to: URL(fileURLWithPath: baseMounts[0].source + "/file"))

            #expect(try await succeeding(daemon, ["commit", "layer", "base", "--label", "team=storage"]) == "")
            let layer = try await api.info("layer")
            #expect(layer.kind == .committed)
            #expect(layer.labels == ["team": "storage"])
            expectError(try await api.stat("base"), 404, "not_found")

            let overlay = try await succeeding(
                daemon, ["prepare", "ctr", "layer", "--label", "a=1", "--label", "b=2", "--target", "/mnt/ctr"])
            let ctrMounts = try await api.mountList("ctr")
            #expect(ctrMounts[0].type == "overlay")
            #expect(overlay == mountLine(ctrMounts[0], target: "/mnt/ctr") + "\n")
            let ctr = try await api.info("ctr")
            #expect(ctr.parent == "layer")
            #expect(ctr.labels == ["a": "1", "b": "2"])

            let view = try await succeeding(daemon, ["view", "look", "layer"])
            #expect(view == "mount \(baseMounts[0].source) -o ro,rbind TARGET\n")
            #expect(try await api.info("look").kind == .view)
            #expect(try await succeeding(daemon, ["mounts", "ctr", "--target", "/t"]) == mountLine(ctrMounts[0], target: "/t") + "\n")
            #expect(try await succeeding(daemon, ["mounts", "look"]) == view)

            #expect(try await succeeding(daemon, ["label", "ctr", "a=", "c=3"]) == "")
            #expect(try await api.info("ctr").labels == ["b": "2", "c": "3"])

            // info: one `Name: value` line per field; labels one per line.
            let info = fields(try await succeeding(daemon, ["info", "ctr"]))
            let ctrNow = try await api.info("ctr")
            #expect(info["Key"] == ["ctr"])
            #expect(info["Kind"] == ["active"])
            #expect(info["Parent"] == ["layer"])
            #expect(info["Created"] == [ctrNow.created.rfc3339])
            #expect(info["Updated"] == [ctrNow.updated.rfc3339])
            #expect(info["Labels"] == ["b=2", "c=3"])
            #expect(fields(try await succeeding(daemon, ["info", "layer"]))["Parent"] == ["-"])

            // ls: a header and one row per snapshot.
            let table = try await succeeding(daemon, ["ls"]).split(separator: "\n").map {
                $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            }
            try #require(table.count == 4, "\(table)")
            #expect(table[0] == ["KEY", "KIND", "PARENT", "CREATED", "LABELS"])
            let rows = Dictionary(table.dropFirst().map { ($0[0], $0) }, uniquingKeysWith: { first, _ in first })
            #expect(rows["layer"] == ["layer", "committed", "-", seconds(layer.created), "team=storage"])
            #expect(rows["ctr"] == ["ctr", "active", "layer", seconds(ctrNow.created), "b=2,c=3"])
            #expect(rows["look"]?.prefix(3) == ["look", "view", "layer"])
            let filtered = try await succeeding(daemon, ["ls", "--filter", "kind==view", "--filter", "labels.team"])
            let filteredKeys = filtered.split(separator: "\n").dropFirst().compactMap { $0.split(separator: " ").first }
            #expect(Set(filteredKeys.map(String.init)) == ["layer", "look"], "\(filtered)")
            #expect(filteredKeys.count == 2, "\(filtered)")

            // usage: the daemon's numbers.
            let usage = try await api.usage("layer").decoded(Usage.self)
            let usageText = fields(try await succeeding(daemon, ["usage", "layer"]))
            #expect(usageText["Size"]?.first?.hasSuffix("(\(usage.size) bytes)") == true, "\(usageText)")
            #expect(usageText["Inodes"] == ["\(usage.inodes)"])

            // cleanup: an orphan directory is removed once.
            let orphan = daemon.root + "/snapshots/424242"
            try FileManager.default.createDirectory(atPath: orphan + "/fs", withIntermediateDirectories: true)
            #expect(fields(try await succeeding(daemon, ["cleanup"]))["Removed"] == ["1 directory"])
            #expect(!FileManager.default.fileExists(atPath: orphan))
            #expect(fields(try await succeeding(daemon, ["cleanup"]))["Removed"] == ["0 directories"])

            // status
            let status = fields(try await succeeding(daemon, ["status"]))
            #expect(status["Version"] == [Veneer.version])
            #expect(status["Socket"] == [daemon.socket])
            #expect(status["gRPC socket"] == [daemon.grpcSocket])
            #expect(status["Namespaces"] == ["default: 3 (1 active, 1 view, 1 committed)"])
            #expect(status["Root"] == [daemon.root])
            #expect(status["Snapshots"] == ["3 (1 active, 1 view, 1 committed)"])
            #expect(status["Uptime"]?.first?.hasSuffix("s") == true)

            // rm of several keys
            #expect(try await succeeding(daemon, ["rm", "look", "ctr"]) == "")
            #expect(try await api.keys() == ["layer"])
            #expect(try await succeeding(daemon, ["rm", "layer"]) == "")
            #expect(try await api.keys().isEmpty)
        }
    }

    @Test("--json prints the daemon's answers, before or after the command name")
    func jsonOutput() async throws {
        try await withAPI { daemon, api in
            let base = try await json(PrepareResponse.self, daemon, ["prepare", "base", "--label", "x=y"])
            #expect(base.snapshot == (try await api.info("base")))
            #expect(base.snapshot.labels == ["x": "y"])
            #expect(base.mounts == (try await api.mountList("base")))

            let layer = try await json(SnapshotInfo.self, daemon, ["commit", "layer", "base", "--label", "team=storage"])
            #expect(layer.key == "layer")
            #expect(layer.kind == .committed)
            #expect(layer.labels == ["team": "storage"])
            #expect(layer == (try await api.info("layer")))

            let ctr = try await json(PrepareResponse.self, daemon, ["prepare", "ctr", "layer"])
            #expect(ctr.snapshot.parent == "layer")
            #expect(ctr.mounts.first?.type == "overlay")
            let look = try await json(PrepareResponse.self, daemon, ["view", "look", "layer"])
            #expect(look.snapshot.kind == .view)
            #expect(look.mounts == [Mount(type: "bind", source: base.mounts[0].source, options: ["ro", "rbind"])])

            let all = try await json(ListResponse.self, daemon, ["ls"]).snapshots
            #expect(all.sorted { $0.key < $1.key } == (try await api.all()).sorted { $0.key < $1.key })
            #expect(Set(all.map(\.key)) == ["layer", "ctr", "look"])
            let committed = try await json(ListResponse.self, daemon, ["ls", "--filter", "kind==committed"]).snapshots
            #expect(committed == [layer])

            #expect(try await json(SnapshotInfo.self, daemon, ["info", "ctr"]) == (try await api.info("ctr")))
            let labelled = try await json(SnapshotInfo.self, daemon, ["label", "ctr", "a=1", "b=2"])
            #expect(labelled.labels == ["a": "1", "b": "2"])
            #expect(labelled.updated > labelled.created)
            #expect(try await json(MountsResponse.self, daemon, ["mounts", "ctr"]).mounts == ctr.mounts)
            let usage = try await json(Usage.self, daemon, ["usage", "layer"])
            #expect(usage == (try await api.usage("layer").decoded(Usage.self)))
            #expect(usage.inodes == 1)

            try FileManager.default.createDirectory(atPath: daemon.root + "/snapshots/5151/fs", withIntermediateDirectories: true)
            let cleanup = try await json(CleanupResponse.self, daemon, ["cleanup"])
            #expect(cleanup.removed == 1)
            #expect(cleanup.reclaimedBytes > 0)

            let status = try await json(StatusResponse.self, daemon, ["status"])
            #expect(status.version == Veneer.version)
            #expect(status.root == daemon.root)
            #expect(status.socket == daemon.socket)
            #expect(status.snapshots == KindCounts(active: 1, view: 1, committed: 1))

            // Global options before the command name work as well.
            let before = try await runTool(BuildProducts.veneer, ["--socket", daemon.socket, "--json", "status"])
            try #require(before.succeeded, "\(before)")
            #expect(try JSONDecoder().decode(StatusResponse.self, from: Data(before.stdout.utf8)).root == daemon.root)
            let after = try await runTool(BuildProducts.veneer, ["status", "--socket", daemon.socket, "--json"])
            try #require(after.succeeded, "\(after)")
            #expect(try JSONDecoder().decode(StatusResponse.self, from: Data(after.stdout.utf8)).socket == daemon.socket)
        }
    }

    @Test("--namespace (or VENEER_NAMESPACE) names the namespace; without it the CLI sees only the default one")
    func namespaces() async throws {
        try await withDaemon { daemon in
            let containerd = VeneerClient(socketPath: daemon.socket, namespace: "containerd")
            _ = try await containerd.prepare(PrepareRequest(key: "default/1/k"))
            _ = try await daemon.client.prepare(PrepareRequest(key: "mine"))

            let theirs = try await json(ListResponse.self, daemon, ["ls", "--namespace", "containerd"]).snapshots
            #expect(theirs.map(\.key) == ["default/1/k"])
            let mine = try await json(ListResponse.self, daemon, ["ls"]).snapshots
            #expect(mine.map(\.key) == ["mine"])
            let fromEnvironment = try await runTool(
                BuildProducts.veneer, ["--socket", daemon.socket, "ls", "--json"],
                environment: toolEnvironment(["VENEER_NAMESPACE": "containerd"]))
            try #require(fromEnvironment.succeeded, "\(fromEnvironment)")
            #expect(try JSONDecoder().decode(ListResponse.self, from: Data(fromEnvironment.stdout.utf8)).snapshots.map(\.key) == ["default/1/k"])

            let info = fields(try await succeeding(daemon, ["info", "default/1/k", "--namespace", "containerd"]))
            #expect(info["Kind"] == ["active"])
            let missing = try await veneer(daemon, ["info", "default/1/k"])
            #expect(missing.failedCleanly && missing.stderr.contains("not_found"), "\(missing)")
            #expect(try await succeeding(daemon, ["--namespace", "containerd", "rm", "default/1/k"]) == "")
            #expect(try await containerd.list().isEmpty)
            #expect(try await daemon.client.list().map(\.key) == ["mine"])

            let bad = try await veneer(daemon, ["ls", "--namespace", "no/such"])
            #expect(bad.failedCleanly && bad.stderr.contains("invalid_argument"), "\(bad)")
            #expect(bad.stderr.contains("namespace"), "\(bad)")
        }
    }

    @Test("the socket comes from VENEER_SOCKET unless --socket is given")
    func socketFromEnvironment() async throws {
        try await withDaemon { daemon in
            let fromEnvironment = try await runTool(
                BuildProducts.veneer, ["status", "--json"], environment: toolEnvironment(["VENEER_SOCKET": daemon.socket]))
            try #require(fromEnvironment.succeeded, "\(fromEnvironment)")
            #expect(try JSONDecoder().decode(StatusResponse.self, from: Data(fromEnvironment.stdout.utf8)).socket == daemon.socket)

            let elsewhere = daemon.temp.path + "/elsewhere.sock"
            let flagWins = try await runTool(
                BuildProducts.veneer, ["--socket", daemon.socket, "status", "--json"],
                environment: toolEnvironment(["VENEER_SOCKET": elsewhere]))
            #expect(flagWins.succeeded, "\(flagWins)")

            let wrongEnvironment = try await runTool(
                BuildProducts.veneer, ["status"], environment: toolEnvironment(["VENEER_SOCKET": elsewhere]))
            #expect(wrongEnvironment.failedCleanly, "\(wrongEnvironment)")
            #expect(wrongEnvironment.stderr.contains(elsewhere), "\(wrongEnvironment)")
        }
    }

    @Test("errors of the daemon are printed verbatim on stderr, with a failing exit status")
    func daemonErrors() async throws {
        try await withAPI { daemon, api in
            try await api.committedLayer()
            try await api.prepared("ctr", parent: "layer")

            /// Runs the command, which must fail with exactly the error the API gives.
            func expectVerbatim(
                _ arguments: [String], _ apiAnswer: RawResponse, sourceLocation: SourceLocation = #_sourceLocation
            ) async throws {
                let code = try #require(apiAnswer.errorCode, "\(apiAnswer.text)", sourceLocation: sourceLocation)
                let message = try #require(apiAnswer.errorMessage, sourceLocation: sourceLocation)
                let result = try await veneer(daemon, arguments)
                #expect(result.failedCleanly, "veneer \(arguments): \(result)", sourceLocation: sourceLocation)
                #expect(result.stdout.isEmpty, "veneer \(arguments): \(result)", sourceLocation: sourceLocation)
                #expect(
                    result.stderr == "veneer: \(code): \(message)\n", "veneer \(arguments): \(result)",
                    sourceLocation: sourceLocation)
            }

            try await expectVerbatim(["info", "missing"], try await api.stat("missing"))
            try await expectVerbatim(["info", "missing", "--json"], try await api.stat("missing"))
            // The API call is refused too, so asking it first changes nothing.
            try await expectVerbatim(["rm", "layer"], try await api.remove("layer"))
            try await expectVerbatim(["prepare", "x", "nope"], try await api.prepare("x", parent: "nope"))
            try await expectVerbatim(["prepare", "ctr"], try await api.prepare("ctr"))
            try await expectVerbatim(["view", "x", "ctr"], try await api.prepare("x", parent: "ctr", kind: .view))
            try await expectVerbatim(["commit", "layer", "ctr"], try await api.commit("ctr", name: "layer"))
            try await expectVerbatim(["commit", "new", "layer"], try await api.commit("layer", name: "new"))
            try await expectVerbatim(["mounts", "layer"], try await api.mounts("layer"))
            try await expectVerbatim(["usage", "gone"], try await api.usage("gone"))
            try await expectVerbatim(["label", "gone", "a=b"], try await api.update("gone", labels: ["a": "b"], fieldpaths: ["labels.a"]))
            try await expectVerbatim(["ls", "--filter", "==view"], try await api.list(["==view"]))
            let long = String(repeating: "k", count: 4097)
            try await expectVerbatim(["prepare", long], try await api.prepare(long))

            // rm goes on after a failure, and still fails.
            try await api.prepared("other")
            let mixed = try await veneer(daemon, ["rm", "missing", "other"])
            #expect(mixed.failedCleanly, "\(mixed)")
            #expect(mixed.stderr.contains("\"missing\""), "\(mixed)")
            expectError(try await api.stat("other"), 404, "not_found")
            #expect(try await api.keys() == ["layer", "ctr"])
        }
    }

    @Test("a socket nobody serves: failing exit status and a message naming the socket")
    func unreachableSocket() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let missing = scratch.path + "/nobody.sock"
        let plainFile = scratch.path + "/plain-file"
        _ = FileManager.default.createFile(atPath: plainFile, contents: Data("x".utf8))
        for socket in [missing, plainFile, plainFile + "/below-a-file.sock"] {
            for command in [["status"], ["ls", "--json"], ["info", "x"]] {
                let result = try await runTool(BuildProducts.veneer, ["--socket", socket] + command)
                #expect(result.failedCleanly, "\(command) on \(socket): \(result)")
                #expect(result.stdout.isEmpty, "\(result)")
                #expect(result.stderr.contains(socket), "the message should name \(socket): \(result)")
            }
        }
    }
}
