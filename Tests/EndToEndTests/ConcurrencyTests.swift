import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

/// Races between clients: every outcome must be one that some serial order of the
/// same requests would give, on the API and on disk.
@Suite("Concurrency")
struct ConcurrencyTests {
    /// On-disk checks after a race: one directory per snapshot, no staging leftovers,
    /// no snapshot whose parent is missing.
    static func expectConsistent(_ daemon: Daemon) async throws {
        let listed = try await daemon.client.list()
        let directories = try StateRoot.snapshotDirectories(daemon)
        #expect(directories.count == listed.count, "\(directories.count) directories for \(listed.count) snapshots")
        if let ids = try StateRoot.databaseIDs(daemon) {
            #expect(Set(directories) == ids)
        }
        #expect(try StateRoot.stagingEntries(daemon) == [])
        let keys = Set(listed.map(\.key))
        for info in listed {
            if let parent = info.parent {
                #expect(keys.contains(parent), "\(info.key) has a missing parent \(parent)")
            }
        }
    }

    @Test("concurrent prepares of one key: exactly one is created, the rest already exist")
    func samePrepareKey() async throws {
        try await withClient { daemon, client in
            _ = try await client.prepare(PrepareRequest(key: "base"))
            _ = try await client.commit("base", CommitRequest(name: "layer"))
            let variants: [(key: String, parent: String?)] = [("same", nil), ("same-child", "layer")]
            for (key, parent) in variants {
                let codes = await withTaskGroup(of: VeneerError.Code?.self) { group in
                    for _ in 0..<16 {
                        group.addTask {
                            await errorCode { try await client.prepare(PrepareRequest(key: key, parent: parent)) }
                        }
                    }
                    var codes: [VeneerError.Code?] = []
                    for await code in group { codes.append(code) }
                    return codes
                }
                #expect(codes.filter { $0 == nil }.count == 1, "\(key): \(codes)")
                #expect(codes.filter { $0 == .alreadyExists }.count == 15, "\(key): \(codes)")
                let info = try await client.stat(key)
                #expect(info.kind == .active && info.parent == parent)
            }
            #expect(try await client.list().map(\.key).sorted() == ["layer", "same", "same-child"])
            #expect(try StateRoot.snapshotDirectories(daemon).count == 3)
            try await Self.expectConsistent(daemon)
        }
    }

    @Test("removing a parent while children are prepared on it never leaves an orphan")
    func removeRacingChildPrepares() async throws {
        try await withClient { daemon, client in
            var removedCount = 0
            for i in 0..<50 {
                let parent = "p-\(i)"
                _ = try await client.prepare(PrepareRequest(key: "b-\(i)"))
                _ = try await client.commit("b-\(i)", CommitRequest(name: parent))
                let children = (0..<4).map { "c-\(i)-\($0)" }
                let (removeCode, childCodes) = await withTaskGroup(of: (String, VeneerError.Code?).self) { group in
                    group.addTask { ("", await errorCode { try await client.remove(parent) }) }
                    for child in children {
                        group.addTask {
                            (child, await errorCode { try await client.prepare(PrepareRequest(key: child, parent: parent)) })
                        }
                    }
                    var removeCode: VeneerError.Code?
                    var childCodes: [String: VeneerError.Code?] = [:]
                    for await (name, code) in group {
                        if name.isEmpty { removeCode = code } else { childCodes[name] = code }
                    }
                    return (removeCode, childCodes)
                }
                let listed = try await client.list()
                let byKey = Dictionary(listed.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
                if removeCode == nil {
                    // The parent went first: no child could be made on it.
                    removedCount += 1
                    #expect(byKey[parent] == nil)
                    for child in children {
                        #expect(childCodes[child] == .notFound, "\(child): \(String(describing: childCodes[child]))")
                        #expect(byKey[child] == nil, "\(child) exists without its parent")
                    }
                } else {
                    // A child went first: the parent stays, and every child points at it.
                    #expect(removeCode == .failedPrecondition, "remove \(parent): \(String(describing: removeCode))")
                    #expect(byKey[parent]?.kind == .committed)
                    for child in children {
                        #expect(childCodes[child] == .some(nil), "\(child): \(String(describing: childCodes[child]))")
                        #expect(byKey[child]?.parent == parent)
                    }
                }
            }
            try await Self.expectConsistent(daemon)
            // Which side wins depends on scheduling; both outcomes were checked above.
            print("parent removed first in \(removedCount) of 50 races")
        }
    }

    @Test("concurrent commits of two active snapshots to one name: one wins, the other is untouched")
    func commitsToOneName() async throws {
        try await withClient { daemon, client in
            for i in 0..<10 {
                let name = "n-\(i)"
                let keys = ["a-\(i)", "b-\(i)"]
                for key in keys {
                    let prepared = try await client.prepare(PrepareRequest(key: key))
                    try Tree.write(try MountPaths.writableDirectory(prepared.mounts) + "/who", key)
                }
                let codes = await withTaskGroup(of: (String, VeneerError.Code?).self) { group in
                    for key in keys {
                        group.addTask { (key, await errorCode { try await client.commit(key, CommitRequest(name: name)) }) }
                    }
                    var codes: [String: VeneerError.Code?] = [:]
                    for await (key, code) in group { codes[key] = code }
                    return codes
                }
                let winners = keys.filter { codes[$0] == .some(nil) }
                let losers = keys.filter { codes[$0] == .some(.alreadyExists) }
                #expect(winners.count == 1 && losers.count == 1, "\(codes)")
                guard let winner = winners.first, let loser = losers.first else { continue }
                #expect(await errorCode { try await client.stat(winner) } == .notFound)
                #expect(try await client.stat(loser).kind == .active)
                let committed = try await client.stat(name)
                #expect(committed.kind == .committed && committed.parent == nil)
                try await withPrepared(daemon, "check-\(i)", parent: name, kind: .view) { t throws in
                    #expect(try Tree.read(t + "/who") == winner)
                }
                try await withMounted(daemon, loser) { t throws in
                    #expect(try Tree.read(t + "/who") == loser)
                }
            }
            try await Self.expectConsistent(daemon)
        }
    }

    @Test("32 clients doing 20 operations each on their own keys all succeed and counts agree")
    func manyClients() async throws {
        try await withClient { daemon, client in
            let tasks = 32
            let failures = await withTaskGroup(of: [String].self) { group in
                for t in 0..<tasks {
                    group.addTask {
                        var failures: [String] = []
                        var operations = 0
                        func step(_ what: String, _ body: () async throws -> Void) async {
                            operations += 1
                            do { try await body() } catch { failures.append("client \(t) \(what): \(error)") }
                        }
                        var parent: String?
                        for i in 0..<4 {
                            let active = "t\(t)-a\(i)"
                            let layer = "t\(t)-l\(i)"
                            let view = "t\(t)-v\(i)"
                            await step("prepare \(active)") {
                                _ = try await client.prepare(PrepareRequest(key: active, parent: parent))
                            }
                            await step("commit \(active)") {
                                _ = try await client.commit(active, CommitRequest(name: layer))
                            }
                            await step("view \(view)") {
                                _ = try await client.prepare(PrepareRequest(key: view, parent: layer, kind: .view))
                            }
                            await step("remove \(view)") { try await client.remove(view) }
                            parent = layer
                        }
                        // Left in place: one active snapshot and one view per client.
                        await step("prepare last active") {
                            _ = try await client.prepare(PrepareRequest(key: "t\(t)-last", parent: parent))
                        }
                        await step("prepare temporary view") {
                            _ = try await client.prepare(PrepareRequest(key: "t\(t)-tmp", parent: parent, kind: .view))
                        }
                        await step("remove temporary view") { try await client.remove("t\(t)-tmp") }
                        await step("prepare last view") {
                            _ = try await client.prepare(PrepareRequest(key: "t\(t)-view", parent: parent, kind: .view))
                        }
                        if operations != 20 { failures.append("client \(t) did \(operations) operations") }
                        return failures
                    }
                }
                var all: [String] = []
                for await failures in group { all += failures }
                return all
            }
            #expect(failures.isEmpty, "\(failures.prefix(10))")

            let listed = try await client.list()
            let status = try await client.status()
            let expected = KindCounts(active: tasks, view: tasks, committed: 4 * tasks)
            #expect(status.snapshots == expected)
            let counted = KindCounts(
                active: listed.filter { $0.kind == .active }.count,
                view: listed.filter { $0.kind == .view }.count,
                committed: listed.filter { $0.kind == .committed }.count)
            #expect(counted == status.snapshots)
            try await Self.expectConsistent(daemon)
        }
    }
}
