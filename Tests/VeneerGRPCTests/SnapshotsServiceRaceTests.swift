import ContainerdAPI
import Foundation
import GRPCCore
import Testing
import VeneerCore
import VeneerOS
import VeneerTestSupport

@testable import VeneerService

@Suite("gRPC: concurrent calls and a full disk")
struct SnapshotsServiceRaceTests {
    @Test("removes racing cleanups all succeed, and the last cleanup leaves nothing behind")
    func removesRacingCleanups() async throws {
        try await withSnapshotsService { client, snapshotter, root in
            let count = 40
            for i in 0..<count {
                let fs = try #require(try await client.prepare("w\(i)").first?.source)
                try "layer \(i)".write(toFile: fs + "/file", atomically: false, encoding: .utf8)
            }
            let failures = try await withThrowingTaskGroup(of: [String].self) { group in
                for i in 0..<count {
                    group.addTask {
                        await rpcCode { try await client.remove("w\(i)") }.map { ["remove w\(i): \($0)"] } ?? []
                    }
                }
                for n in 0..<8 {
                    group.addTask {
                        await rpcCode { try await client.cleanup(Containerd_Services_Snapshots_V1_CleanupRequest()) }
                            .map { ["cleanup \(n): \($0)"] } ?? []
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(failures.isEmpty)
            _ = try await client.cleanup(Containerd_Services_Snapshots_V1_CleanupRequest())
            #expect(try FileSystem.listDirectory(root + "/snapshots").isEmpty)
            #expect(try FileSystem.listDirectory(root + "/trash").isEmpty)
            #expect(try await snapshotter.list(filters: [], in: .containerd).isEmpty)
        }
    }

    @Test("the same keys made and removed at once through gRPC and in the default namespace stay apart")
    func sameKeysInTwoNamespacesAtOnce() async throws {
        try await withSnapshotsService { client, snapshotter, _ in
            _ = try await client.prepare("base-work")
            try await client.commit("base-work", as: "base")
            _ = try await snapshotter.prepare(key: "base-work", parent: nil, kind: .active, labels: [:])
            _ = try await snapshotter.commit(key: "base-work", name: "base", labels: ["side": "http"])
            let rounds = 25
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for i in 0..<rounds {
                        _ = try await client.prepare("k\(i)", parent: "base", labels: ["side": "grpc"])
                        try await client.commit("k\(i)", as: "c\(i)", labels: ["side": "grpc"])
                        if i % 2 == 0 { try await client.remove("c\(i)") }
                    }
                }
                group.addTask {
                    for i in 0..<rounds {
                        _ = try await snapshotter.prepare(key: "k\(i)", parent: "base", kind: .active, labels: ["side": "http"])
                        _ = try await snapshotter.commit(key: "k\(i)", name: "c\(i)", labels: ["side": "http"])
                        if i % 2 == 1 { try await snapshotter.remove(key: "c\(i)") }
                    }
                }
                try await group.waitForAll()
            }
            let grpcSide = try await snapshotter.store.list(in: .containerd)
            let httpSide = try await snapshotter.store.list(in: .default)
            // gRPC removed the even ones, the default namespace the odd ones.
            let grpcKept = (0..<rounds).filter { $0 % 2 == 1 }.map { "c\($0)" }
            let httpKept = (0..<rounds).filter { $0 % 2 == 0 }.map { "c\($0)" }
            #expect(Set(grpcSide.map(\.key)) == Set(["base"] + grpcKept))
            #expect(Set(httpSide.map(\.key)) == Set(["base"] + httpKept))
            #expect(grpcSide.allSatisfy { $0.labels["side"] != "http" })
            #expect(httpSide.allSatisfy { $0.labels["side"] == "http" })
            #expect(Set(grpcSide.map(\.id)).isDisjoint(with: Set(httpSide.map(\.id))))
            // Each side's children hang on its own base.
            let grpcBase = try #require(grpcSide.first { $0.key == "base" })
            let httpBase = try #require(httpSide.first { $0.key == "base" })
            #expect(grpcSide.filter { $0.key != "base" }.allSatisfy { $0.parentID == grpcBase.id })
            #expect(httpSide.filter { $0.key != "base" }.allSatisfy { $0.parentID == httpBase.id })
            #expect(try await client.stat("c1").parent == "base")
            #expect(await rpcCode { try await client.stat("c0") } == .notFound)
        }
    }

    @Test("a full disk is ResourceExhausted, leaves no snapshot behind, and the service goes on once space is back")
    func fullDisk() async throws {
        let disk = try TemporaryDirectory(prefix: "vn-full")
        defer { disk.remove() }
        let mounted = try ProcessRun.run("/bin/mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", disk.path])
        try #require(mounted.status == 0, "mount tmpfs: \(mounted.output)")
        try await withSnapshotsService(root: disk.path + "/root") { client, snapshotter, root in
            _ = try await client.prepare("before")
            // Fill what is left of the file system.
            let filler = disk.path + "/filler"
            let fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            try #require(fd >= 0)
            let chunk = [UInt8](repeating: 7, count: 64 * 1024)
            while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
            close(fd)

            var refused: [String: RPCError.Code] = [:]
            for i in 0..<200 {
                if let code = await rpcCode({ try await client.prepare("full-\(i)", labels: ["n": String(repeating: "x", count: 3000)]) }) {
                    refused["full-\(i)"] = code
                    if refused.count >= 3 { break }
                }
            }
            #expect(!refused.isEmpty, "a prepare failed once the disk was full")
            #expect(Set(refused.values) == [.resourceExhausted])
            for key in refused.keys {
                #expect(await rpcCode { try await client.stat(key) } == .notFound)
            }
            #expect(try await client.stat("before").kind == .active)

            unlink(filler)
            let again = try #require(refused.keys.sorted().first)
            _ = try await client.prepare(again)
            #expect(try await client.stat(again).kind == .active)
            // Every directory under snapshots/ belongs to a snapshot the store knows.
            let ids = Set(try await snapshotter.store.list(in: .containerd).map { String($0.id) })
            #expect(Set(try FileSystem.listDirectory(root + "/snapshots")) == ids)
        }
    }
}
