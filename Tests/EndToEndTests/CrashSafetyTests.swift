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

/// Set once the daemon is about to be killed; failures after that are expected.
final class CrashFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

/// One client doing a stream of operations on snapshots of its own, remembering what
/// the daemon acknowledged and the one operation that may have been cut off.
struct CrashWorker: Sendable {
    /// What the worker knows of one of its snapshots.
    struct Node: Sendable, Equatable {
        var kind: SnapshotKind
        var parent: String?
        /// Key of the active snapshot whose layer this is; its files are named after it.
        var origin: String
    }

    enum Operation: Sendable, CustomStringConvertible {
        case prepare(key: String, parent: String?, kind: SnapshotKind)
        case commit(key: String, name: String)
        case remove(key: String)

        var description: String {
            switch self {
            case .prepare(let key, let parent, let kind): "prepare \(kind.rawValue) \(key) on \(parent ?? "nothing")"
            case .commit(let key, let name): "commit \(key) as \(name)"
            case .remove(let key): "remove \(key)"
            }
        }
    }

    let id: Int
    var nodes: [String: Node] = [:]
    var counter = 0
    /// The operation under way when the daemon died; its outcome is unknown.
    var pending: Operation?
    var acknowledged = 0

    init(id: Int) { self.id = id }

    mutating func newKey() -> String {
        counter += 1
        return "w\(id)-\(counter)"
    }

    func children(of key: String) -> [String] {
        nodes.filter { $0.value.parent == key }.map(\.key)
    }

    mutating func nextOperation() -> Operation {
        let actives = nodes.filter { $0.value.kind == .active }.map(\.key).sorted()
        let committed = nodes.filter { $0.value.kind == .committed }.map(\.key).sorted()
        let removable = nodes.keys.filter { children(of: $0).isEmpty }.sorted()
        let roll = Int.random(in: 0..<100)
        if actives.count < 2 || roll < 25 {
            let parent = committed.isEmpty || Int.random(in: 0..<5) == 0 ? nil : committed.randomElement()
            return .prepare(key: newKey(), parent: parent, kind: .active)
        }
        if roll < 60, let key = actives.randomElement() {
            return .commit(key: key, name: newKey())
        }
        if roll < 70, let parent = committed.randomElement() {
            return .prepare(key: newKey(), parent: parent, kind: .view)
        }
        if let key = removable.randomElement() {
            return .remove(key: key)
        }
        return .prepare(key: newKey(), parent: nil, kind: .active)
    }

    /// Files that identify a layer: `id` holds the active key it was written under,
    /// `layers/<key>` too, so that a mount of a chain shows every layer of it.
    static func writeIdentity(_ key: String, mounts: [Mount]) throws {
        let dir = try MountPaths.writableDirectory(mounts)
        try Tree.write(dir + "/id", key)
        if !Tree.exists(dir + "/layers") { try Tree.makeDirectory(dir + "/layers") }
        try Tree.write(dir + "/layers/" + key, key)
    }

    /// Runs operations until one fails. Returns a problem when a failure happened
    /// before the crash, nil when the daemon's death stopped the worker.
    mutating func run(_ client: VeneerClient, crashed: CrashFlag) async -> String? {
        while !crashed.isSet {
            let operation = nextOperation()
            pending = operation
            do {
                switch operation {
                case .prepare(let key, let parent, let kind):
                    let response = try await client.prepare(PrepareRequest(key: key, parent: parent, kind: kind))
                    pending = nil
                    nodes[key] = Node(kind: kind, parent: parent, origin: key)
                    if kind == .active { try Self.writeIdentity(key, mounts: response.mounts) }
                case .commit(let key, let name):
                    _ = try await client.commit(key, CommitRequest(name: name))
                    pending = nil
                    applyCommit(key: key, name: name)
                case .remove(let key):
                    try await client.remove(key)
                    pending = nil
                    nodes[key] = nil
                }
                acknowledged += 1
            } catch {
                if crashed.isSet && pending != nil { return nil }
                return "worker \(id): \(operation) failed before the crash: \(error)"
            }
        }
        return nil
    }

    mutating func applyCommit(key: String, name: String) {
        guard let node = nodes.removeValue(forKey: key) else { return }
        nodes[name] = Node(kind: .committed, parent: node.parent, origin: node.origin)
    }

    /// After the restart: finds out whether the cut-off operation happened, checks that
    /// it either fully happened or not at all, and updates what the worker knows.
    /// Returns whether it happened, or nil when nothing was under way.
    mutating func resolvePending(_ client: VeneerClient) async throws -> Bool? {
        guard let operation = pending else { return nil }
        pending = nil
        switch operation {
        case .prepare(let key, let parent, let kind):
            guard let info = try await statIfPresent(client, key) else { return false }
            #expect(info.kind == kind && info.parent == parent, "\(operation) left \(info)")
            nodes[key] = Node(kind: kind, parent: parent, origin: key)
            if kind == .active { try Self.writeIdentity(key, mounts: try await client.mounts(key)) }
            return true
        case .commit(let key, let name):
            let committed = try await statIfPresent(client, name)
            let active = try await statIfPresent(client, key)
            if let committed {
                #expect(active == nil, "\(operation): both \(key) and \(name) exist")
                #expect(committed.kind == .committed && committed.parent == nodes[key]?.parent)
                applyCommit(key: key, name: name)
                return true
            }
            #expect(active?.kind == .active, "\(operation): \(key) is \(String(describing: active))")
            return false
        case .remove(let key):
            if let info = try await statIfPresent(client, key) {
                #expect(info.kind == nodes[key]?.kind, "\(operation) left \(info)")
                return false
            }
            nodes[key] = nil
            return true
        }
    }

    private func statIfPresent(_ client: VeneerClient, _ key: String) async throws -> SnapshotInfo? {
        do {
            return try await client.stat(key)
        } catch let error where error.code == .notFound {
            return nil
        }
    }
}

@Suite("Crash safety", .serialized)
struct CrashSafetyTests {
    /// A layer's `id` and `layers/` as a mount of `key` shows them.
    static func expectIdentity(
        _ daemon: Daemon, view key: String, origin: String, chain origins: Set<String>
    ) async throws {
        try await withMounted(daemon, key) { t throws in
            #expect(try Tree.read(t + "/id") == origin, "\(key): wrong id")
            let found = try Tree.entries(t + "/layers")
            #expect(Set(found) == origins, "\(key): layers \(found), expected \(origins.sorted())")
            for name in found {
                #expect(try Tree.read(t + "/layers/" + name) == name, "\(key): layers/\(name) damaged")
            }
        }
    }

    /// Everything the state root and the API say agrees with what the workers know.
    static func verify(_ daemon: Daemon, workers: [CrashWorker], cycle: Int) async throws {
        let client = daemon.client
        var expected: [String: CrashWorker.Node] = [:]
        for worker in workers { expected.merge(worker.nodes) { first, _ in first } }

        // (d) Acknowledged prepares, commits and removes are all reflected, nothing more.
        let listed = try await client.list()
        let byKey = Dictionary(listed.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(Set(byKey.keys) == Set(expected.keys), "cycle \(cycle): listed keys differ from acknowledged state")
        for (key, node) in expected {
            guard let info = byKey[key] else { continue }
            #expect(info.kind == node.kind && info.parent == node.parent, "cycle \(cycle): \(key) is \(info), expected \(node)")
        }

        // (a) One directory per snapshot, and the very ones the database names.
        let directories = try StateRoot.snapshotDirectories(daemon)
        #expect(directories.count == listed.count, "cycle \(cycle): \(directories.count) directories, \(listed.count) snapshots")
        if let ids = try StateRoot.databaseIDs(daemon) {
            #expect(Set(directories) == ids, "cycle \(cycle): directories \(directories) vs rows \(ids.sorted())")
        }
        // (b) Nothing is left half-made or half-deleted.
        #expect(try StateRoot.stagingEntries(daemon) == [], "cycle \(cycle): staging is not empty")
        #expect(try StateRoot.trashEntries(daemon) == [], "cycle \(cycle): trash is not empty")

        // Mounts of active snapshots and views refer to existing directories; actives keep their data.
        for info in listed where info.kind != .committed {
            let mounts = try await client.mounts(info.key)
            for path in MountPaths.referencedPaths(mounts) {
                #expect(Tree.exists(path), "cycle \(cycle): \(info.key) mounts missing \(path)")
            }
            if info.kind == .active {
                let dir = try MountPaths.writableDirectory(mounts)
                #expect(try Tree.read(dir + "/id") == info.key, "cycle \(cycle): data of \(info.key) lost")
            }
        }

        // (c) Every committed layer is intact: a view on each committed snapshot without
        // committed children shows its own files and those of all its ancestors.
        let committed = expected.filter { $0.value.kind == .committed }
        let withCommittedChildren = Set(committed.values.compactMap(\.parent))
        for (name, node) in committed.sorted(by: { $0.key < $1.key }) where !withCommittedChildren.contains(name) {
            var origins: Set<String> = []
            var cursor: String? = name
            while let key = cursor, let ancestor = expected[key] {
                origins.insert(ancestor.origin)
                cursor = ancestor.parent
            }
            let view = "verify-\(cycle)-\(name)"
            _ = try await client.prepare(PrepareRequest(key: view, parent: name, kind: .view))
            try await expectIdentity(daemon, view: view, origin: node.origin, chain: origins)
            try await client.remove(view)
        }
    }

    @Test("killing the daemon during a stream of operations loses nothing acknowledged and leaves no debris",
        .timeLimit(.minutes(2)))
    func crashDuringOperations() async throws {
        let started = ContinuousClock.now
        try await withDaemon { daemon in
            var workers = (0..<4).map { CrashWorker(id: $0) }
            let cycles = 6
            var cutOff = (happened: 0, didNotHappen: 0)
            for cycle in 1...cycles {
                let crashed = CrashFlag()
                let client = daemon.client
                let delay = Int.random(in: 100...400)
                let before = workers
                let outcome = try await withThrowingTaskGroup(of: (Int, CrashWorker, String?).self) { group in
                    for (index, worker) in before.enumerated() {
                        group.addTask {
                            var worker = worker
                            let problem = await worker.run(client, crashed: crashed)
                            return (index, worker, problem)
                        }
                    }
                    try await Task.sleep(for: .milliseconds(delay))
                    crashed.set()
                    try await daemon.crash()
                    var results: [(Int, CrashWorker, String?)] = []
                    for try await result in group { results.append(result) }
                    return results
                }
                for (index, worker, problem) in outcome {
                    workers[index] = worker
                    if let problem { Issue.record("cycle \(cycle): \(problem)") }
                }
                try await daemon.start()
                for index in workers.indices {
                    switch try await workers[index].resolvePending(daemon.client) {
                    case true?: cutOff.happened += 1
                    case false?: cutOff.didNotHappen += 1
                    case nil: break
                    }
                }
                try await Self.verify(daemon, workers: workers, cycle: cycle)
            }
            let total = workers.map(\.acknowledged).reduce(0, +)
            let snapshots = workers.map(\.nodes.count).reduce(0, +)
            let recoveries = daemon.log.components(separatedBy: "startup recovery removed leftovers").count - 1
            print(
                "\(total) operations acknowledged, \(snapshots) snapshots at the end; operations cut off by a crash: "
                    + "\(cutOff.happened) happened, \(cutOff.didNotHappen) did not; "
                    + "\(recoveries) of \(cycles) restarts removed leftovers")
            // The stream must have done real work, and crashes must have cut operations
            // short, for the checks to mean anything.
            #expect(total >= cycles * 4, "only \(total) operations were acknowledged")
            #expect(snapshots > 0)
            #expect(cutOff.happened + cutOff.didNotHappen > 0, "no crash interrupted an operation")
        }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed < .seconds(60), "the crash cycles took \(elapsed)")
    }

    @Test("leftovers planted while the daemon is down are removed at start")
    func startupRemovesPlantedLeftovers() async throws {
        try await withClient { daemon, client in
            try await withPrepared(daemon, "base") { t in try Tree.write(t + "/keep", "kept") }
            _ = try await client.commit("base", CommitRequest(name: "layer"))
            let before = try StateRoot.snapshotDirectories(daemon)
            #expect(before.count == 1)

            try await daemon.stop()
            let orphan = daemon.root + "/snapshots/99999"
            try Tree.makeDirectory(orphan)
            try Tree.makeDirectory(orphan + "/fs")
            try Tree.write(orphan + "/fs/junk", bytes: [UInt8](repeating: 9, count: 100_000))
            let staged = daemon.root + "/staging/77"
            try Tree.makeDirectory(staged)
            try Tree.makeDirectory(staged + "/fs")
            try Tree.write(staged + "/fs/junk", "junk")
            try await daemon.start()

            #expect(!Tree.exists(orphan))
            #expect(!Tree.exists(staged))
            #expect(try StateRoot.snapshotDirectories(daemon) == before)
            #expect(try StateRoot.stagingEntries(daemon) == [])
            #expect(try StateRoot.trashEntries(daemon) == [])
            try await withPrepared(daemon, "check", parent: "layer", kind: .view) { t throws in
                #expect(try Tree.read(t + "/keep") == "kept")
            }
        }
    }

    @Test("cleanup while running removes an orphan and reports what it reclaimed")
    func cleanupRemovesOrphanWhileRunning() async throws {
        try await withClient { daemon, client in
            let nothing = try await client.cleanup()
            #expect(nothing == CleanupResponse(removed: 0, reclaimedBytes: 0))

            try await withPrepared(daemon, "active") { t in try Tree.write(t + "/keep", "kept") }
            let before = try StateRoot.snapshotDirectories(daemon)

            let orphan = daemon.root + "/snapshots/88888"
            let size = 256 * 1024
            try Tree.makeDirectory(orphan)
            try Tree.makeDirectory(orphan + "/fs")
            try Tree.write(orphan + "/fs/junk", bytes: [UInt8](repeating: 3, count: size))
            let report = try await client.cleanup()
            #expect(report.removed == 1)
            // The file's blocks, plus at most a few blocks for the directories.
            #expect(report.reclaimedBytes >= Int64(size), "reclaimed \(report.reclaimedBytes)")
            #expect(report.reclaimedBytes <= Int64(size + 64 * 1024), "reclaimed \(report.reclaimedBytes)")
            #expect(!Tree.exists(orphan))
            #expect(try StateRoot.snapshotDirectories(daemon) == before)
            #expect(try StateRoot.trashEntries(daemon) == [])

            // The live snapshot is untouched, and a second cleanup finds nothing.
            try await withMounted(daemon, "active") { t throws in
                #expect(try Tree.read(t + "/keep") == "kept")
            }
            #expect(try await client.cleanup() == CleanupResponse(removed: 0, reclaimedBytes: 0))
        }
    }
}
