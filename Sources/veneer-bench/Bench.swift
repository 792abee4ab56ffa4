import ArgumentParser
import Foundation
import VeneerCore
import VeneerOS
import VeneerOSBaseline
import VeneerWire

/// Measures the daemon through its socket: prepare+commit+remove cycles, stats and
/// lists, with concurrent clients. Starts its own veneerd on a temporary root unless
/// `--socket` names a running daemon.
@main
struct VeneerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "veneer-bench", abstract: "Throughput and latency of veneerd through its API socket.")

    @Option(help: "Socket of a running veneerd (default: start one on a temporary root).")
    var socket: String?

    @Option(help: "veneerd binary to start (default: next to this program).")
    var veneerd: String?

    @Option(help: "Directory for the temporary state root.")
    var tmp: String = "/var/tmp"

    @Option(help: "Concurrent clients.")
    var clients: Int = 8

    @Option(help: "Seconds per throughput phase.")
    var seconds: Double = 10

    @Option(help: "Snapshots present for the list phase.")
    var listSize: Int = 10_000

    @Option(
        help: "Phases to run: cycles, stat, list, api (those three), mounts (mount latency by depth), all, or containerd (the gRPC workload through containerd and straight at Veneer; not part of all).")
    var phase: String = "all"

    @Option(help: "containerd binary for the containerd phase.")
    var containerd: String = "/usr/bin/containerd"

    @Option(help: "Rounds of the containerd and layers phases; their targets take turns in each.")
    var rounds: Int = 3

    @Option(help: "Log level of the daemons the containerd phase starts (their logs stay in the scratch directory with --keep-logs).")
    var daemonLogLevel: String = "warning"

    @Flag(help: "Keep the containerd phase's scratch directory, with the daemons' logs.")
    var keepLogs = false

    @Option(help: "Targets of the containerd phase, comma-separated: overlayfs, veneer (both through containerd), direct (Veneer's gRPC socket). Ratios need overlayfs.")
    var targets: String = "overlayfs,veneer,direct"

    /// Makes this run's keys unique, so runs can share one daemon.
    var runTag: String { "\(getpid())" }

    @Option(help: "Files of the layers phase's layer.")
    var layerFiles: Int = 20_000

    @Option(help: "MiB of the layers phase's layer.")
    var layerMib: Int = 200

    @Option(help: "Files of the image the layers phase lists and exports 10 changes on.")
    var imageFiles: Int = 100_000

    @Option(help: "Mounts per depth in the mounts phase.")
    var mountRuns: Int = 100

    @Option(help: "Chain depths of the mounts phase, comma-separated (1 to 500).")
    var depths: String = "1,128,500"

    func run() throws {
        if phase == "containerd" {
            try runContainerdPhase()
            return
        }
        var daemon: Process?
        var root: String?
        let socketPath: String
        if let socket {
            socketPath = socket
        } else {
            let dir = tmp + "/veneer-bench.\(getpid())"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            root = dir
            socketPath = dir + "/veneer.sock"
            let binary = veneerd ?? (URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/veneerd")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["--root", dir + "/root", "--socket", socketPath, "--log-level", "warning"]
            try process.run()
            daemon = process
            try waitForDaemon(socketPath)
        }
        defer {
            if let daemon {
                daemon.terminate()
                daemon.waitUntilExit()
            }
            if let root { try? FileManager.default.removeItem(atPath: root) }
        }
        print("veneer-bench: \(clients) clients, \(seconds) s per phase, socket \(socketPath)")
        guard ["all", "api", "cycles", "stat", "list", "mounts", "layers"].contains(phase) else {
            throw ValidationError("--phase must be api, cycles, stat, list, mounts, layers, containerd or all")
        }
        if phase == "layers" {
            let scratch = (root ?? (tmp + "/veneer-bench-layers.\(getpid())")) + "/layers"
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            try LayerBench(
                socket: socketPath, scratch: scratch, rounds: rounds, files: layerFiles, megabytes: layerMib,
                imageFiles: imageFiles, tag: runTag,
                containerd: FileManager.default.isExecutableFile(atPath: containerd) ? containerd : nil,
                cli: URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/veneer"
            ).run()
            return
        }
        let api = ["all", "api"].contains(phase)
        if phase != "mounts" {
            try makeBaseLayer(socketPath)
        }
        if api || phase == "cycles" {
            try cycles(socketPath)
        }
        if api || phase == "stat" || phase == "list" {
            try populate(socketPath)
            if phase != "list" { try stats(socketPath) }
            if phase != "stat" { try lists(socketPath) }
        }
        if phase == "all" || phase == "mounts" {
            let scratch = root ?? (tmp + "/veneer-bench-mnt.\(getpid())")
            try mountLatency(socketPath, scratch: scratch)
        }
    }

    /// The containerd phase, on a scratch directory of its own; see ``ContainerdBench``.
    private func runContainerdPhase() throws {
        let scratch = tmp + "/veneer-bench-containerd.\(getpid())"
        let bench = ContainerdBench(
            veneerd: veneerd ?? (URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/veneerd"),
            containerd: containerd, scratch: scratch, clients: clients, seconds: seconds, rounds: rounds,
            targets: try ContainerdBench.targetNames(targets), logLevel: daemonLogLevel)
        let outcome = Results(count: 1)
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                try await bench.run()
                outcome.set(0, .success([]))
            } catch {
                outcome.set(0, .failure(error))
            }
            done.signal()
        }
        done.wait()
        do {
            _ = try outcome.all()
        } catch {
            // The logs of both daemons stay for a look.
            print("veneer-bench: the containerd phase failed; logs in \(scratch)/veneer/veneerd.log and \(scratch)/containerd/containerd.log")
            throw error
        }
        if keepLogs {
            print("veneer-bench: logs kept in \(scratch)")
        } else {
            try? FileManager.default.removeItem(atPath: scratch)
        }
    }

    /// Mount latency through the API (POST /v1/mounts) beside the bare system calls
    /// (mount(2) when the options fit in one call, else fsopen/fsconfig lowerdir+) for
    /// the same stack, at depth 1, 128 and 500.
    private func mountLatency(_ socket: String, scratch: String) throws {
        let c = try HTTPConnection(socket: socket)
        let target = scratch + "/mnt"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let depths = try depthList()
        var parent: String?
        for layer in 1...(depths.max() ?? 1) {
            let key = "mnt-\(runTag)-\(layer)-active"
            let parentJSON = parent.map { #","parent":"\#($0)""# } ?? ""
            try expect(c.request("POST", "/v1/snapshots", json: #"{"key":"\#(key)"\#(parentJSON)}"#), 201, "prepare layer")
            try expect(c.request("POST", "/v1/snapshots/\(key)/commit", json: #"{"name":"mnt-\#(runTag)-\#(layer)"}"#), 201, "commit layer")
            parent = "mnt-\(runTag)-\(layer)"
        }
        // The floor any API call pays: one round trip of a request the daemon answers
        // from memory.
        var floor: [Double] = []
        for _ in 0..<200 {
            let t0 = SystemClock.monotonicNanoseconds()
            try expect(c.request("GET", "/v1/snapshots/mnt-\(runTag)-1"), 200, "stat")
            floor.append(Double(SystemClock.monotonicNanoseconds() - t0) / 1e9)
        }
        print(String(format: "one client, round trip of a stat: p50 %.3f ms", percentile(floor, 0.5) * 1000))
        // The same after the daemon sat idle for 2 ms, as it does before each mount below
        // while the benchmark mounts and unmounts by itself: the wake-up of idle threads
        // is part of every answer then.
        var idleFloor: [Double] = []
        for _ in 0..<200 {
            usleep(2000)
            let t0 = SystemClock.monotonicNanoseconds()
            try expect(c.request("GET", "/v1/snapshots/mnt-\(runTag)-1"), 200, "stat")
            idleFloor.append(Double(SystemClock.monotonicNanoseconds() - t0) / 1e9)
        }
        let idleRoundTrip = percentile(idleFloor, 0.5)
        print(String(format: "one client, round trip of a stat after 2 ms idle: p50 %.3f ms", idleRoundTrip * 1000))
        // What the machine itself charges for waking an idle process and hearing back:
        // the same round trip to a process that does nothing but echo (cat on a pipe).
        let machineRoundTrip = try echoRoundTrip(idle: 0.002)
        print(String(format: "round trip to an idle echo process (cat) after 2 ms idle: p50 %.3f ms", machineRoundTrip * 1000))
        print("mount latency (\(mountRuns) mounts per depth, API vs bare system calls):")
        for depth in depths {
            let key = "mnt-\(runTag)-top-\(depth)"
            try expect(c.request("POST", "/v1/snapshots", json: #"{"key":"\#(key)","parent":"mnt-\#(runTag)-\#(depth)"}"#), 201, "prepare top")
            let planned = try c.request("GET", "/v1/snapshots/\(key)/mounts")
            try expect(planned, 200, "mounts")
            let mounts = try JSONDecoder().decode(MountsResponse.self, from: Data(planned.body)).mounts
            guard let overlay = mounts.first else { throw BenchError("no mount planned for \(key)") }
            var lowers: [String] = []
            var upper: String?
            var work: String?
            for option in overlay.options {
                if option.hasPrefix("lowerdir=") { lowers = option.dropFirst(9).split(separator: ":").map(String.init) }
                if option.hasPrefix("upperdir=") { upper = String(option.dropFirst(9)) }
                if option.hasPrefix("workdir=") { work = String(option.dropFirst(8)) }
            }
            let options = overlay.options.joined(separator: ",")
            let fitsOneCall = options.utf8.count < 4000
            var api: [Double] = []
            var raw: [Double] = []
            var mounter: [Double] = []
            for _ in 0..<mountRuns {
                var t0 = SystemClock.monotonicNanoseconds()
                try expect(c.request("POST", "/v1/mounts", json: #"{"key":"\#(key)","target":"\#(target)"}"#), 201, "mount")
                api.append(Double(SystemClock.monotonicNanoseconds() - t0) / 1e9)
                try expect(c.request("DELETE", "/v1/mounts?target=\(PathSegment.encode(target))"), 204, "unmount")

                t0 = SystemClock.monotonicNanoseconds()
                if fitsOneCall {
                    try BaselineMount.mount(type: "overlay", source: "overlay", target: target, options: options)
                } else {
                    try BaselineMount.overlay(lowers: lowers, upper: upper, work: work, target: target)
                }
                raw.append(Double(SystemClock.monotonicNanoseconds() - t0) / 1e9)
                try BaselineMount.unmount(target)

                // The daemon's own mount code (target check, then libmount or the new
                // mount API), called in this process: what any daemon built on it pays
                // besides the round trip.
                t0 = SystemClock.monotonicNanoseconds()
                try Mounter.mountOverlay(lowers: lowers, upper: upper, work: work, at: target)
                mounter.append(Double(SystemClock.monotonicNanoseconds() - t0) / 1e9)
                try BaselineMount.unmount(target)
            }
            let apiP50 = percentile(api, 0.5)
            let rawP50 = percentile(raw, 0.5)
            let mounterP50 = percentile(mounter, 0.5)
            // Floors: what a daemon would reach that did nothing but the same bare calls
            // plus one idle round trip of veneerd; and what one would reach that did
            // nothing but veneerd's mount code (libmount at depth 1) plus the machine's
            // idle round trip, with no HTTP, JSON, checks or record at all.
            print(String(
                format: "  depth %3d: API p50 %.3f ms p99 %.3f ms | bare %@ p50 %.3f ms p99 %.3f ms | ratio %.2f (floor %.2f)",
                depth, apiP50 * 1000, percentile(api, 0.99) * 1000, fitsOneCall ? "mount(2)" : "fsconfig",
                rawP50 * 1000, percentile(raw, 0.99) * 1000, apiP50 / rawP50, (rawP50 + idleRoundTrip) / rawP50))
            print(String(
                format: "             veneerd's mount code in this process p50 %.3f ms (%.2f× bare) | machine floor %.2f",
                mounterP50 * 1000, mounterP50 / rawP50, (mounterP50 + machineRoundTrip) / rawP50))
        }
    }

    /// The p50 round trip of 200 bytes through `cat`, after `idle` seconds without
    /// traffic before each one.
    private func echoRoundTrip(idle: Double) throws -> Double {
        let input = Pipe()
        let output = Pipe()
        let echo = Process()
        echo.executableURL = URL(fileURLWithPath: "/bin/cat")
        echo.standardInput = input
        echo.standardOutput = output
        try echo.run()
        defer {
            try? input.fileHandleForWriting.close()
            echo.waitUntilExit()
        }
        let message = Data(repeating: UInt8(ascii: "x"), count: 200)
        var samples: [Double] = []
        for _ in 0..<200 {
            Thread.sleep(forTimeInterval: idle)
            let t0 = SystemClock.monotonicNanoseconds()
            try input.fileHandleForWriting.write(contentsOf: message)
            var received = 0
            while received < message.count {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { throw BenchError("the echo process stopped") }
                received += chunk.count
            }
            samples.append(Double(SystemClock.monotonicNanoseconds() - t0) / 1e9)
        }
        return percentile(samples, 0.5)
    }

    private func depthList() throws -> [Int] {
        let list = depths.split(separator: ",").compactMap { Int($0.trimmingSpaces) }
        guard !list.isEmpty, list.count == depths.split(separator: ",").count, list.allSatisfy({ (1...500).contains($0) }) else {
            throw ValidationError("--depths must list depths from 1 to 500, comma-separated, e.g. 1,128,500")
        }
        return list
    }

    private func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    private func waitForDaemon(_ socket: String) throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let c = try? HTTPConnection(socket: socket), let r = try? c.request("GET", "/v1/status"), r.status == 200 {
                return
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw BenchError("veneerd did not answer on \(socket) within 30 s")
    }

    /// Runs `body(client, iteration)` on `clients` threads until the time is up;
    /// returns the latency of each call in seconds.
    private func timed(
        _ socket: String, threads: Int, duration: Double, _ body: @escaping @Sendable (HTTPConnection, Int, Int) throws -> Void
    ) throws -> (latencies: [Double], elapsed: Double) {
        let results = Results(count: threads)
        let start = SystemClock.monotonicNanoseconds()
        let stop = start + Int64(duration * 1e9)
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                do {
                    let connection = try HTTPConnection(socket: socket)
                    var latencies: [Double] = []
                    var i = 0
                    while SystemClock.monotonicNanoseconds() < stop {
                        let t0 = SystemClock.monotonicNanoseconds()
                        try body(connection, t, i)
                        latencies.append(Double(SystemClock.monotonicNanoseconds() - t0) / 1e9)
                        i += 1
                    }
                    results.set(t, .success(latencies))
                } catch {
                    results.set(t, .failure(error))
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
        let elapsed = Double(SystemClock.monotonicNanoseconds() - start) / 1e9
        return (try results.all().flatMap { $0 }, elapsed)
    }

    private func expect(_ response: HTTPConnection.Response, _ status: Int, _ what: String) throws {
        if response.status != status {
            throw BenchError("\(what): HTTP \(response.status): \(String(decoding: response.body, as: UTF8.self))")
        }
    }

    /// A committed base layer, so that each cycle and each populated snapshot is an
    /// overlay snapshot.
    private func makeBaseLayer(_ socket: String) throws {
        let setup = try HTTPConnection(socket: socket)
        try expect(setup.request("POST", "/v1/snapshots", json: #"{"key":"bench-base-\#(runTag)"}"#), 201, "prepare base")
        try expect(setup.request("POST", "/v1/snapshots/bench-base-\(runTag)/commit", json: #"{"name":"bench-layer-\#(runTag)"}"#), 201, "commit base")
    }

    private func cycles(_ socket: String) throws {
        let (latencies, elapsed) = try timed(socket, threads: clients, duration: seconds) { c, t, i in
            let key = "cycle-\(runTag)-\(t)-\(i)"
            try expect(c.request("POST", "/v1/snapshots", json: #"{"key":"\#(key)","parent":"bench-layer-\#(runTag)","labels":{"bench":"1"}}"#), 201, "prepare")
            try expect(c.request("POST", "/v1/snapshots/\(key)/commit", json: #"{"name":"\#(key)-done"}"#), 201, "commit")
            try expect(c.request("DELETE", "/v1/snapshots/\(key)-done"), 204, "remove")
        }
        report("prepare+commit+remove cycles", latencies, elapsed, unit: "cycles/s")
    }

    private func populate(_ socket: String) throws {
        let per = (listSize + clients - 1) / clients
        let start = SystemClock.monotonicNanoseconds()
        let results = Results(count: clients)
        let group = DispatchGroup()
        let total = listSize
        for t in 0..<clients {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let c = try HTTPConnection(socket: socket)
                    for i in (t * per)..<min(total, (t + 1) * per) {
                        try expect(c.request("POST", "/v1/snapshots",
                            json: #"{"key":"list-\#(runTag)-\#(i)","parent":"bench-layer-\#(runTag)","labels":{"n":"\#(i)"}}"#), 201, "populate")
                    }
                    results.set(t, .success([]))
                } catch {
                    results.set(t, .failure(error))
                }
            }.start()
        }
        group.wait()
        _ = try results.all()
        let elapsed = Double(SystemClock.monotonicNanoseconds() - start) / 1e9
        print(String(format: "populate: %d prepares in %.2f s (%.0f prepares/s)", listSize, elapsed, Double(listSize) / elapsed))
    }

    private func stats(_ socket: String) throws {
        let size = listSize
        let (latencies, elapsed) = try timed(socket, threads: clients, duration: seconds) { c, t, i in
            let key = "list-\(runTag)-\((t * 7919 + i * 104_729) % size)"
            try expect(c.request("GET", "/v1/snapshots/\(key)"), 200, "stat")
        }
        report("stat", latencies, elapsed, unit: "stats/s")
    }

    private func lists(_ socket: String) throws {
        let (latencies, elapsed) = try timed(socket, threads: clients, duration: seconds) { c, _, _ in
            let r = try c.request("GET", "/v1/snapshots")
            try expect(r, 200, "list")
        }
        report("list of \(listSize + 1) snapshots", latencies, elapsed, unit: "lists/s")
        let (filtered, filteredElapsed) = try timed(socket, threads: clients, duration: seconds) { c, _, _ in
            try expect(c.request("GET", "/v1/snapshots?filter=labels.n%3D%3D42"), 200, "filtered list")
        }
        report("filtered list (labels.n==42)", filtered, filteredElapsed, unit: "lists/s")
        // A regular expression tried on every snapshot's key: 10,001 matches per list.
        let (matched, matchedElapsed) = try timed(socket, threads: clients, duration: seconds) { c, _, _ in
            try expect(c.request("GET", "/v1/snapshots?filter=key~%3D%5Elist-%5B0-9%5D%2B-42%24"), 200, "regex list")
        }
        report("list filtered by a regular expression (key~=^list-[0-9]+-42$)", matched, matchedElapsed, unit: "lists/s")
    }

    private func report(_ name: String, _ latencies: [Double], _ elapsed: Double, unit: String) {
        let sorted = latencies.sorted()
        func pct(_ p: Double) -> Double {
            sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] * 1000
        }
        print(String(
            format: "%@: %.0f %@  p50 %.3f ms  p99 %.3f ms  (n=%d in %.1f s)",
            name, Double(sorted.count) / elapsed, unit, pct(0.50), pct(0.99), sorted.count, elapsed))
    }
}

/// Per-thread results, written once by each thread.
final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<[Double], any Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ result: Result<[Double], any Error>) {
        lock.lock()
        slots[index] = result
        lock.unlock()
    }

    func all() throws -> [[Double]] {
        lock.lock()
        defer { lock.unlock() }
        return try slots.map { slot in
            guard let slot else { throw BenchError("a client thread did not finish") }
            return try slot.get()
        }
    }
}
