import Foundation
import Synchronization
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire


/// Many clients on a few shared keys, parents, names and targets, with cleanups among
/// them: every answer is one that some order of the requests gives, never a 5xx.
enum RaceTraffic {
    struct Outcome: Sendable {
        var requests = 0
        var byStatus: [Int: Int] = [:]
        var serverErrors: [String] = []
    }

    /// Runs `clients` clients of `operations` requests each against `daemon`, with
    /// targets under `targets`.
    static func run(
        _ daemon: Daemon, clients: Int, operations: Int, targets: [String], seed: UInt64
    ) async throws -> Outcome {
        let client = daemon.client
        let keys = (0..<12).map { "k\($0)" }
        let names = (0..<6).map { "n\($0)" }
        let parents: [String?] = [nil, "base-layer"] + names.map { Optional($0) }
        let outcome = Tally()
        await withTaskGroup(of: Void.self) { group in
            for c in 0..<clients {
                group.addTask {
                    var random = SplitMix64(seed: seed &+ UInt64(c) &* 7919)
                    for _ in 0..<operations {
                        let (method, path, body) = request(
                            &random, keys: keys, names: names, parents: parents, targets: targets)
                        let response: RawResponse
                        do {
                            response = try await client.send(
                                method: method, path: path, body: body,
                                headers: body == nil ? [] : [("Content-Type", "application/json")])
                        } catch {
                            outcome.withLock { $0.serverErrors.append("\(method) \(path): \(error)") }
                            continue
                        }
                        outcome.withLock { outcome in
                            outcome.requests += 1
                            outcome.byStatus[response.status, default: 0] += 1
                            if response.status >= 500 {
                                outcome.serverErrors.append(
                                    "\(method) \(path) -> \(response.status) \(String(decoding: response.body, as: UTF8.self))")
                            }
                        }
                    }
                }
            }
        }
        return outcome.withLock { $0 }
    }

    final class Tally: Sendable {
        private let state = Mutex(Outcome())
        func withLock<T: Sendable>(_ body: (inout Outcome) -> T) -> T { state.withLock { body(&$0) } }
    }

    static func request(
        _ random: inout SplitMix64, keys: [String], names: [String], parents: [String?], targets: [String]
    ) -> (String, String, [UInt8]?) {
        func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
        let key = pick(keys)
        switch random.next() % 100 {
        case 0..<25:
            let parent = pick(parents)
            let kind = random.next() % 4 == 0 ? "view" : "active"
            let parentField = parent.map { #","parent":"\#($0)""# } ?? ""
            return ("POST", "/v1/snapshots", Array(#"{"key":"\#(key)","kind":"\#(kind)"\#(parentField)}"#.utf8))
        case 25..<40:
            return ("POST", "/v1/snapshots/\(key)/commit", Array(#"{"name":"\#(pick(names))"}"#.utf8))
        case 40..<58:
            return ("DELETE", "/v1/snapshots/\(random.next() % 3 == 0 ? pick(names) : key)", nil)
        case 58..<68:
            let readonly = random.next() % 2 == 0
            return ("POST", "/v1/mounts", Array(#"{"key":"\#(key)","target":"\#(pick(targets))","readonly":\#(readonly)}"#.utf8))
        case 68..<80:
            return ("DELETE", "/v1/mounts?target=\(PathSegment.encode(pick(targets)))", nil)
        case 80..<86:
            return ("GET", "/v1/snapshots/\(key)/usage", nil)
        case 86..<92:
            return ("POST", "/v1/cleanup", nil)
        case 92..<96:
            return ("GET", "/v1/snapshots/\(key)", nil)
        default:
            return ("GET", "/v1/snapshots", nil)
        }
    }

    /// Every record is a mount in the kernel at its target, and every mount under the
    /// test's directory is a record; rows match directories; staging and trash are empty
    /// after a cleanup.
    static func expectInvariants(_ daemon: Daemon, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        _ = try await daemon.client.cleanup()
        let records = try await MountCalls(daemon).live()
        let kernel = Set(MountInfo.targets(under: daemon.temp.path))
        #expect(Set(records.map(\.target)) == kernel, "records \(records.map(\.target)), kernel \(kernel)", sourceLocation: sourceLocation)
        try await ConcurrencyTests.expectConsistent(daemon)
        #expect(try StateRoot.trashEntries(daemon) == [], sourceLocation: sourceLocation)
    }
}

@Suite("Races between valid requests")
struct RaceTests {
    @Test("64 clients on shared keys, parents, names and targets, with cleanups: no 5xx, and the state adds up")
    func sixtyFourClients() async throws {
        try await withAPI { daemon, api in
            try await api.committedLayer("base-layer")
            let targets = try (0..<6).map { try daemon.mountPoint("race-\($0)") }
            let seed = UInt64.random(in: 0...UInt64.max)
            let outcome = try await RaceTraffic.run(daemon, clients: 64, operations: 60, targets: targets, seed: seed)
            #expect(outcome.serverErrors.isEmpty, "seed \(seed): \(outcome.serverErrors.prefix(20))")
            #expect(outcome.requests == 64 * 60)
            // The traffic did meet: some of each kind of answer.
            #expect((outcome.byStatus[201] ?? 0) > 0 && (outcome.byStatus[409] ?? 0) > 0 && (outcome.byStatus[404] ?? 0) > 0,
                "\(outcome.byStatus)")
            try await RaceTraffic.expectInvariants(daemon)
        }
    }
}
