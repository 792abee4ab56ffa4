import ContainerdAPI
import Foundation
import Synchronization
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import VeneerDaemon
import VeneerOS
/// The same snapshot workload through containerd's snapshots API three ways, in one run,
/// the targets taking turns round by round:
///
/// - containerd's own socket with its built-in `overlayfs` snapshotter;
/// - containerd's own socket with `veneer`, Veneer as its proxy snapshotter;
/// - Veneer's gRPC socket directly, as containerd's proxy client reaches it (a second
///   veneerd, which containerd's garbage collector does not see).
///
/// Workloads: prepare+commit+remove cycles from concurrent clients, stats from
/// concurrent clients, and a 16-layer chain built, topped with an active snapshot and
/// removed again by one client.
struct ContainerdBench {
    var veneerd: String
    var containerd: String
    var scratch: String
    var clients: Int
    var seconds: Double
    var rounds: Int
    /// Which of the three targets run (``targetNames(_:)``), in their fixed order.
    var targets: [String]
    /// The daemons' `--log-level`.
    var logLevel: String

    static let allTargets = ["overlayfs", "veneer", "direct"]

    static func targetNames(_ list: String) throws -> [String] {
        let names = list.split(separator: ",").map { String($0) }
        guard !names.isEmpty, names.allSatisfy(allTargets.contains) else {
            throw BenchError("--targets takes a comma-separated list of \(allTargets.joined(separator: ", ")): \(list)")
        }
        return allTargets.filter(names.contains)
    }

    typealias Client = Containerd_Services_Snapshots_V1_Snapshots.Client<HTTP2ClientTransport.Posix>

    struct Target {
        var name: String
        var socket: String
        /// The `snapshotter` field: the one containerd should use (ignored by Veneer).
        var snapshotter: String
        /// containerd wants to know the namespace of every call.
        var metadata: Metadata
        /// Calls made again after their connection dropped; see ``retrying(_:done:_:)``.
        var reconnects = Counter()
    }

    func run() async throws {
        let veneerRoot = scratch + "/veneer"
        let containerdRoot = scratch + "/containerd"
        try FileManager.default.createDirectory(atPath: veneerRoot, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: containerdRoot, withIntermediateDirectories: true)
        let veneerGRPC = veneerRoot + "/grpc.sock"
        let containerdSocket = containerdRoot + "/containerd.sock"
        let config = """
            version = 2
            root = "\(containerdRoot)/root"
            state = "\(containerdRoot)/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
            [grpc]
              address = "\(containerdSocket)"
            [ttrpc]
              address = "\(containerdSocket).ttrpc"
            [proxy_plugins]
              [proxy_plugins.veneer]
                type = "snapshot"
                address = "\(veneerGRPC)"
            """
        try config.write(toFile: containerdRoot + "/config.toml", atomically: true, encoding: .utf8)
        let daemon = try Self.start(
            veneerd, ["--root", veneerRoot + "/root", "--socket", veneerRoot + "/veneer.sock", "--log-level", logLevel],
            log: veneerRoot + "/veneerd.log")
        defer { Self.stop(daemon) }
        // The direct target has a veneerd of its own: containerd's garbage collector
        // removes from its snapshotter whatever it does not know, snapshots made past it
        // included.
        let directRoot = scratch + "/veneer-direct"
        try FileManager.default.createDirectory(atPath: directRoot, withIntermediateDirectories: true)
        let directGRPC = directRoot + "/grpc.sock"
        let direct = try Self.start(
            veneerd, ["--root", directRoot + "/root", "--socket", directRoot + "/veneer.sock", "--log-level", logLevel],
            log: directRoot + "/veneerd.log")
        defer { Self.stop(direct) }
        let containerdProcess = try Self.start(
            containerd, ["--config", containerdRoot + "/config.toml", "--log-level", "warn"], log: containerdRoot + "/containerd.log")
        defer { Self.stop(containerdProcess) }

        for (socket, process) in [(veneerGRPC, daemon), (directGRPC, direct), (containerdSocket, containerdProcess)] {
            let deadline = Date().addingTimeInterval(30)
            while !UnixSocket.isListening(socket) {
                guard process.isRunning, Date() < deadline else { throw BenchError("nobody listens on \(socket)") }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        let namespace: Metadata = ["containerd-namespace": "bench"]
        let known = [
            "overlayfs": Target(name: "containerd + overlayfs", socket: containerdSocket, snapshotter: "overlayfs", metadata: namespace),
            "veneer": Target(name: "containerd + veneer", socket: containerdSocket, snapshotter: "veneer", metadata: namespace),
            "direct": Target(name: "veneer gRPC, direct", socket: directGRPC, snapshotter: "veneer", metadata: [:]),
        ]
        let targets = self.targets.compactMap { known[$0] }
        print("containerd phase: \(clients) clients, \(seconds) s per measurement, \(rounds) rounds, targets taking turns")
        try await withGRPCClient(transport: try Self.transport(containerdSocket)) { containerdClient in
            try await withGRPCClient(transport: try Self.transport(directGRPC)) { veneerClient in
                let clientsByTarget = targets.map { Client(wrapping: $0.socket == directGRPC ? veneerClient : containerdClient) }
                for (target, client) in zip(targets, clientsByTarget) {
                    try await Self.waitUntilServing(client, target)
                    try await Self.prepareAndCommit(client, target, key: "base-work", name: "base", parent: "")
                }
                var cycleRates = Array(repeating: [Double](), count: targets.count)
                var statRates = Array(repeating: [Double](), count: targets.count)
                var chainTimes = Array(repeating: [Double](), count: targets.count)
                for round in 0..<rounds {
                    for (index, target) in targets.enumerated() {
                        let client = clientsByTarget[index]
                        let cycles = try await measure(clients: clients) { worker, iteration in
                            let key = "cycle-\(round)-\(worker)-\(iteration)"
                            try await Self.prepareAndCommit(client, target, key: key, name: key + "-done", parent: "base")
                            try await Self.remove(client, target, key + "-done")
                        }
                        cycleRates[index].append(cycles)
                        let stats = try await measure(clients: clients) { _, _ in
                            var request = Containerd_Services_Snapshots_V1_StatSnapshotRequest()
                            request.snapshotter = target.snapshotter
                            request.key = "base"
                            try await Self.retrying(target) { _ = try await client.stat(request, metadata: target.metadata, options: Self.waitForReady) }
                        }
                        statRates[index].append(stats)
                        chainTimes[index].append(try await chain(client, target, tag: "chain-\(round)"))
                        print(String(
                            format: "  round %d  %-24@ %7.0f cycles/s  %7.0f stats/s  16-layer chain %6.1f ms",
                            round + 1, target.name, cycles, stats, chainTimes[index].last ?? 0))
                    }
                }
                print("medians over \(rounds) rounds:")
                for (index, target) in targets.enumerated() {
                    print(String(
                        format: "  %-24@ %7.0f cycles/s  %7.0f stats/s  16-layer chain %6.1f ms  (%d calls made again)",
                        target.name, Self.median(cycleRates[index]), Self.median(statRates[index]),
                        Self.median(chainTimes[index]), target.reconnects.value))
                }
                guard self.targets.first == "overlayfs" else { return }
                let base = 0
                for index in 1..<targets.count {
                    print(String(
                        format: "  %@ / %@: cycles %.2fx, stats %.2fx, chain time %.2fx",
                        targets[index].name, targets[base].name,
                        Self.median(cycleRates[index]) / Self.median(cycleRates[base]),
                        Self.median(statRates[index]) / Self.median(statRates[base]),
                        Self.median(chainTimes[index]) / Self.median(chainTimes[base])))
                }
            }
        }
    }

    /// Calls per second of `body` from `clients` concurrent tasks for `seconds`.
    private func measure(
        clients: Int, _ body: @escaping @Sendable (_ worker: Int, _ iteration: Int) async throws -> Void
    ) async throws -> Double {
        let start = SystemClock.monotonicNanoseconds()
        let stop = start + Int64(seconds * 1e9)
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<clients {
                group.addTask {
                    var iteration = 0
                    while SystemClock.monotonicNanoseconds() < stop {
                        try await body(worker, iteration)
                        iteration += 1
                    }
                    return iteration
                }
            }
            return try await group.reduce(0, +)
        }
        return Double(total) / (Double(SystemClock.monotonicNanoseconds() - start) / 1e9)
    }

    /// Milliseconds to build a 16-layer chain, prepare an active snapshot on it and remove
    /// everything again, with one client.
    private func chain(_ client: Client, _ target: Target, tag: String) async throws -> Double {
        let start = SystemClock.monotonicNanoseconds()
        var parent = ""
        for layer in 0..<16 {
            let name = "\(tag)-layer-\(layer)"
            try await Self.prepareAndCommit(client, target, key: name + "-work", name: name, parent: parent)
            parent = name
        }
        var request = Containerd_Services_Snapshots_V1_PrepareSnapshotRequest()
        request.snapshotter = target.snapshotter
        request.key = "\(tag)-top"
        request.parent = parent
        request.labels = ["containerd.io/gc.root": "bench"]
        var mounts: [Containerd_Types_Mount] = []
        try await Self.retrying(target, done: [.alreadyExists]) { mounts = try await client.prepare(request, metadata: target.metadata, options: Self.waitForReady).mounts }
        if mounts.isEmpty {
            var again = Containerd_Services_Snapshots_V1_MountsRequest()
            again.snapshotter = target.snapshotter
            again.key = request.key
            mounts = try await client.mounts(again, metadata: target.metadata, options: Self.waitForReady).mounts
        }
        guard mounts.first?.type == "overlay" else { throw BenchError("\(target.name): the chain's top is not an overlay: \(mounts)") }
        try await Self.remove(client, target, "\(tag)-top")
        for layer in (0..<16).reversed() {
            try await Self.remove(client, target, "\(tag)-layer-\(layer)")
        }
        return Double(SystemClock.monotonicNanoseconds() - start) / 1e6
    }

    /// Prepares `key` on `parent` and commits it as `name`. The labels root both in
    /// containerd's garbage collector, which would otherwise collect them meanwhile.
    private static func prepareAndCommit(
        _ client: Client, _ target: Target, key: String, name: String, parent: String
    ) async throws {
        var prepare = Containerd_Services_Snapshots_V1_PrepareSnapshotRequest()
        prepare.snapshotter = target.snapshotter
        prepare.key = key
        prepare.parent = parent
        prepare.labels = ["containerd.io/gc.root": "bench"]
        try await retrying(target, done: [.alreadyExists]) { _ = try await client.prepare(prepare, metadata: target.metadata, options: Self.waitForReady) }
        var commit = Containerd_Services_Snapshots_V1_CommitSnapshotRequest()
        commit.snapshotter = target.snapshotter
        commit.key = key
        commit.name = name
        commit.labels = ["containerd.io/gc.root": "bench"]
        // A retried commit whose first attempt went through finds its key gone.
        try await retrying(target, done: [.notFound, .alreadyExists]) { _ = try await client.commit(commit, metadata: target.metadata, options: Self.waitForReady) }
    }

    private static func remove(_ client: Client, _ target: Target, _ key: String) async throws {
        var request = Containerd_Services_Snapshots_V1_RemoveSnapshotRequest()
        request.snapshotter = target.snapshotter
        request.key = key
        try await retrying(target, done: [.notFound]) { _ = try await client.remove(request, metadata: target.metadata, options: Self.waitForReady) }
    }

    /// Calls wait for a connection, rather than fail while one is being made again.
    static var waitForReady: CallOptions {
        var options = CallOptions.defaults
        options.waitForReady = true
        return options
    }

    /// Connections that dropped under a call, which was then made again. grpc-swift's HTTP/2
    /// client closes a connection that receives more than 200 PING frames in 30 seconds,
    /// and containerd's gRPC server (Go) sends one for about every request it receives (its
    /// flow-control estimation); Veneer's server sends none. The call is made again on a
    /// new connection, and `done` lists the errors that say its first attempt went through.
    /// The count is reported for each target.
    static func retrying(
        _ target: Target, done: Set<RPCError.Code> = [], _ call: () async throws -> Void
    ) async throws {
        var attempt = 0
        while true {
            do {
                try await call()
                return
            } catch let error as RPCError where error.code == .unavailable && attempt < 50 {
                attempt += 1
                target.reconnects.increment()
                try await Task.sleep(for: .milliseconds(2 * attempt))
            } catch let error as RPCError where attempt > 0 && done.contains(error.code) {
                return
            }
        }
    }

    private static func waitUntilServing(_ client: Client, _ target: Target) async throws {
        let deadline = Date().addingTimeInterval(30)
        var request = Containerd_Services_Snapshots_V1_ListSnapshotsRequest()
        request.snapshotter = target.snapshotter
        while true {
            do {
                try await client.list(request, metadata: target.metadata, options: Self.waitForReady) { response in
                    for try await _ in response.messages {}
                }
                return
            } catch {
                if Date() > deadline { throw BenchError("\(target.name) did not answer within 30 s: \(error)") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    private static func transport(_ socket: String) throws -> HTTP2ClientTransport.Posix {
        var config = HTTP2ClientTransport.Posix.Config.defaults
        // containerd's server pings about once a request; answered here, as veneerd's
        // server answers containerd's client (see PingAnswerer), the connection is not
        // taken for a flood and closed.
        config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(PingAnswerer(side: .client), position: .first)
            }
        }
        // A dropped connection (see `retrying`) is dialled again at once.
        config.backoff = .init(initial: .milliseconds(1), max: .milliseconds(20), multiplier: 1.6, jitter: 0.2)
        return try HTTP2ClientTransport.Posix(
            target: .unixDomainSocket(path: socket), transportSecurity: .plaintext, config: config)
    }

    private static func start(_ binary: String, _ arguments: [String], log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    private static func stop(_ process: Process) {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}

/// A count shared by the benchmark's tasks.
final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
