import Foundation
import Synchronization
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

#if canImport(Glibc)
import Glibc
#endif

/// What the clients of a soak were told: commits acknowledged (with the content their
/// layer holds), removes sent and acknowledged.
final class SoakLedger: Sendable {
    struct State {
        /// Committed name → the text of its `id` file.
        var commits: [String: String] = [:]
        /// Names whose remove was sent (acknowledged or not): they may be gone.
        var removing: Set<String> = []
        var acknowledged = 0
    }

    private let state = Mutex(State())

    func withLock<T: Sendable>(_ body: (inout State) -> T) -> T { state.withLock { body(&$0) } }
}

/// kill -9 over live traffic, again and again: after each restart, nothing acknowledged
/// is lost and nothing half-made is left.
enum CrashSoak {
    /// Rounds to run: `VENEER_SOAK_ROUNDS` (`make soak SOAK=N`), else 100.
    static var rounds: Int {
        ProcessInfo.processInfo.environment["VENEER_SOAK_ROUNDS"].flatMap { Int($0) } ?? 100
    }

    /// One client until the daemon goes away or `deadline` passes: builds layers
    /// (prepare, write a file into the layer, commit), removes, mounts, unmounts and
    /// cleans up.
    static func client(
        _ daemon: Daemon, id: String, ledger: SoakLedger, targets: [String], seed: UInt64, deadline: Date
    ) async {
        var random = SplitMix64(seed: seed)
        let client = daemon.client
        var n = 0
        func send(_ method: String, _ path: String, _ body: String? = nil) async -> RawResponse? {
            try? await client.send(
                method: method, path: path, body: body.map { Array($0.utf8) },
                headers: body == nil ? [] : [("Content-Type", "application/json")])
        }
        while Date() < deadline {
            n += 1
            let key = "\(id)-\(n)"
            switch random.next() % 10 {
            case 0..<5:
                let parents = ledger.withLock { Array($0.commits.keys.filter { !$0.isEmpty }.prefix(32)) }
                let parent = parents.isEmpty || random.next() % 3 == 0 ? "base-layer" : parents[Int(random.next() % UInt64(parents.count))]
                guard let prepared = await send("POST", "/v1/snapshots", #"{"key":"\#(key)","parent":"\#(parent)"}"#) else { return }
                guard prepared.status == 201, let answer = try? prepared.decoded(PrepareResponse.self),
                    let layer = try? MountPaths.writableDirectory(answer.mounts)
                else { continue }
                guard (try? Tree.write(layer + "/id", key)) != nil else { continue }
                let name = "L-" + key
                guard let committed = await send("POST", APIPath.commit(key), #"{"name":"\#(name)"}"#) else { return }
                if committed.status == 201 {
                    ledger.withLock {
                        $0.commits[name] = key
                        $0.acknowledged += 1
                    }
                }
            case 5:
                let victim = ledger.withLock { state -> String? in
                    let names = Array(state.commits.keys.filter { !state.removing.contains($0) })
                    guard let name = names.randomElement() else { return nil }
                    state.removing.insert(name)
                    return name
                }
                guard let victim else { continue }
                guard let removed = await send("DELETE", APIPath.snapshot(victim)) else { return }
                if removed.status == 204 || removed.status == 404 {
                    _ = ledger.withLock { $0.commits.removeValue(forKey: victim) }
                } else {
                    _ = ledger.withLock { $0.removing.remove(victim) }
                }
            case 6, 7:
                let target = targets[Int(random.next() % UInt64(targets.count))]
                guard await send("POST", "/v1/snapshots", #"{"key":"\#(key)","kind":"view","parent":"base-layer"}"#) != nil,
                    await send("POST", "/v1/mounts", #"{"key":"\#(key)","target":"\#(target)"}"#) != nil
                else { return }
            case 8:
                let target = targets[Int(random.next() % UInt64(targets.count))]
                guard await send("DELETE", "/v1/mounts?target=\(PathSegment.encode(target))") != nil else { return }
            default:
                guard await send("POST", "/v1/cleanup") != nil else { return }
            }
        }
    }

    /// Every acknowledged commit is there with its layer's content; rows match
    /// directories; staging and trash are empty (start-up cleaned up); every record is a
    /// mount and every mount under the test's directory a record.
    static func expectIntact(_ daemon: Daemon, ledger: SoakLedger, round: Int) async throws {
        let api = CheckedAPI(daemon)
        let (commits, removing) = ledger.withLock { ($0.commits, $0.removing) }
        let listed = Set(try await api.keys())
        for name in commits.keys where !removing.contains(name) {
            #expect(listed.contains(name), "round \(round): acknowledged commit \(name) is missing")
        }
        // The content of a sample of them, through a view of each.
        for (name, content) in commits.filter({ !removing.contains($0.key) && listed.contains($0.key) }).prefix(4) {
            let view = "check-\(round)-\(name)"
            let prepared = try await api.prepared(view, parent: name, kind: .view)
            let lowers = MountPaths.lowerDirectories(prepared.mounts)
            let layer = lowers.first ?? (prepared.mounts.first?.source ?? "")
            #expect(try Tree.read(layer + "/id") == content, "round \(round): \(name)")
            #expect(try await api.remove(view).status == 204)
        }
        try await ConcurrencyTests.expectConsistent(daemon)
        #expect(try StateRoot.trashEntries(daemon) == [], "round \(round)")
        let records = try await MountCalls(daemon).live()
        let kernel = Set(MountInfo.targets(under: daemon.temp.path))
        #expect(Set(records.map(\.target)) == kernel, "round \(round): records \(records.map(\.target)), kernel \(kernel)")
    }
}

@Suite("Crash soak")
struct CrashSoakTests {
    @Test("kill -9 over concurrent prepare, commit, remove, mount and cleanup traffic, again and again: nothing acknowledged lost, nothing half-made left")
    func soak() async throws {
        try await withAPI { daemon, api in
            try await api.committedLayer("base-layer")
            let targets = try (0..<4).map { try daemon.mountPoint("soak-\($0)") }
            let ledger = SoakLedger()
            let seed = UInt64.random(in: 0...UInt64.max)
            var random = SplitMix64(seed: seed)
            for round in 0..<CrashSoak.rounds {
                let runFor = Double(40 + random.next() % 160) / 1000
                let deadline = Date().addingTimeInterval(runFor + 5)
                let clients = (0..<8).map { c in
                    Task {
                        await CrashSoak.client(
                            daemon, id: "r\(round)c\(c)", ledger: ledger, targets: targets,
                            seed: seed &+ UInt64(round * 8 + c), deadline: deadline)
                    }
                }
                try await Task.sleep(nanoseconds: UInt64(runFor * 1e9))
                try await daemon.crash()
                for client in clients { await client.value }
                try await daemon.start()
                try await CrashSoak.expectIntact(daemon, ledger: ledger, round: round)
            }
            let acknowledged = ledger.withLock { $0.acknowledged }
            #expect(acknowledged >= CrashSoak.rounds, "seed \(seed): only \(acknowledged) commits acknowledged")
            print("crash soak: \(CrashSoak.rounds) kill -9s, \(acknowledged) acknowledged commits, seed \(seed)")
        }
    }
}
