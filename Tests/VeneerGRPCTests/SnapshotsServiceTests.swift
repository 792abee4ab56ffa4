import ContainerdAPI
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Testing
import VeneerCore
import VeneerGRPC
import VeneerOS
import VeneerTestSupport

@testable import VeneerService

typealias SnapshotsClient = Containerd_Services_Snapshots_V1_Snapshots.Client<HTTP2ClientTransport.Posix>

/// Serves the adapter over HTTP/2 on a Unix socket of a fresh state root, as the daemon
/// does, and runs `body` with a generated client connected to it.
/// `root` puts the state root somewhere else than a fresh temporary directory;
/// `interceptors` run around every call, as the daemon's do.
func withSnapshotsService(
    root: String? = nil, interceptors: [any ServerInterceptor] = [],
    _ body: @Sendable (_ client: SnapshotsClient, _ snapshotter: Snapshotter, _ root: String) async throws -> Void
) async throws {
    let tmp = try TemporaryDirectory(prefix: "veneer-grpc")
    let root = root ?? tmp.path + "/root"
    let snapshotter = try Snapshotter(root: root, logger: TestLoggers.quiet("veneer.grpc.test"))
    let socket = tmp.path + "/grpc.sock"
    let server = GRPCServer(
        transport: .http2NIOPosix(address: .unixDomainSocket(path: socket), transportSecurity: .plaintext),
        services: [SnapshotsService(snapshotter: snapshotter)], interceptors: interceptors)
    try await withThrowingDiscardingTaskGroup { group in
        group.addTask { try await server.serve() }
        _ = try await server.listeningAddress
        defer { server.beginGracefulShutdown() }
        try await withGRPCClient(
            transport: .http2NIOPosix(target: .unixDomainSocket(path: socket), transportSecurity: .plaintext)
        ) { client in
            try await body(SnapshotsClient(wrapping: client), snapshotter, root)
        }
    }
}

extension SnapshotsClient {
    func prepare(_ key: String, parent: String = "", labels: [String: String] = [:]) async throws -> [Containerd_Types_Mount] {
        var request = Containerd_Services_Snapshots_V1_PrepareSnapshotRequest()
        request.snapshotter = "veneer"
        request.key = key
        request.parent = parent
        request.labels = labels
        return try await prepare(request).mounts
    }

    func view(_ key: String, parent: String) async throws -> [Containerd_Types_Mount] {
        var request = Containerd_Services_Snapshots_V1_ViewSnapshotRequest()
        request.snapshotter = "anything"
        request.key = key
        request.parent = parent
        return try await view(request).mounts
    }

    func commit(_ key: String, as name: String, parent: String = "", labels: [String: String] = [:]) async throws {
        var request = Containerd_Services_Snapshots_V1_CommitSnapshotRequest()
        request.key = key
        request.name = name
        request.parent = parent
        request.labels = labels
        _ = try await commit(request)
    }

    func stat(_ key: String) async throws -> Containerd_Services_Snapshots_V1_Info {
        var request = Containerd_Services_Snapshots_V1_StatSnapshotRequest()
        request.key = key
        return try await stat(request).info
    }

    func remove(_ key: String) async throws {
        var request = Containerd_Services_Snapshots_V1_RemoveSnapshotRequest()
        request.key = key
        _ = try await remove(request)
    }

    /// The List stream as it arrives: one array per message.
    func listBatches(_ filters: [String] = []) async throws -> [[String]] {
        var request = Containerd_Services_Snapshots_V1_ListSnapshotsRequest()
        request.filters = filters
        return try await list(request) { response in
            var batches: [[String]] = []
            for try await message in response.messages { batches.append(message.info.map(\.name)) }
            return batches
        }
    }

    func update(_ key: String, labels: [String: String], paths: [String]) async throws -> Containerd_Services_Snapshots_V1_Info {
        var request = Containerd_Services_Snapshots_V1_UpdateSnapshotRequest()
        request.info.name = key
        request.info.labels = labels
        request.updateMask = Google_Protobuf_FieldMask(protoPaths: paths)
        return try await update(request).info
    }
}

/// The gRPC status code an RPC failed with, or nil when it succeeded.
func rpcCode(_ body: () async throws -> some Any) async -> RPCError.Code? {
    do {
        _ = try await body()
        return nil
    } catch let error as RPCError {
        return error.code
    } catch {
        return .unknown
    }
}

@Suite("gRPC: containerd's snapshots service")
struct SnapshotsServiceTests {
    @Test("mounts have the shapes containerd's overlayfs snapshotter gives, with absolute host paths")
    func lifecycleAndMountShapes() async throws {
        try await withSnapshotsService { client, snapshotter, root in
            let fresh = try await client.prepare("default/1/extract", labels: ["containerd.io/snapshot.ref": "sha256:aa"])
            #expect(fresh.count == 1)
            #expect(fresh.first?.type == "bind")
            #expect(fresh.first?.options == ["rw", "rbind"])
            let source = try #require(fresh.first?.source)
            #expect(source.hasPrefix(root + "/snapshots/") && source.hasSuffix("/fs"))
            try await client.commit("default/1/extract", as: "layer-1", parent: "ignored by the service")
            _ = try await client.prepare("default/2/extract", parent: "layer-1")
            try await client.commit("default/2/extract", as: "layer-2")

            let active = try await client.prepare("ctr", parent: "layer-2")
            #expect(active.count == 1)
            let overlay = try #require(active.first)
            #expect(overlay.type == "overlay")
            let options = overlay.options
            #expect(options.contains { $0.hasPrefix("workdir=" + root + "/snapshots/") })
            #expect(options.contains { $0.hasPrefix("upperdir=" + root + "/snapshots/") })
            let lower = try #require(options.first { $0.hasPrefix("lowerdir=") })
            #expect(lower.dropFirst("lowerdir=".count).split(separator: ":").count == 2)
            #expect(!options.contains("ro"), "the last mount of a prepare is never read-only")

            let oneParent = try await client.view("v1", parent: "layer-1")
            #expect(oneParent.map(\.type) == ["bind"])
            #expect(oneParent.first?.options == ["ro", "rbind"])
            let deep = try await client.view("v2", parent: "layer-2")
            #expect(deep.map(\.type) == ["overlay"])
            #expect(deep.first?.options.contains { $0.hasPrefix("upperdir=") } == false)
            #expect(deep.first?.options.contains { $0.hasPrefix("lowerdir=") } == true)

            var mountsRequest = Containerd_Services_Snapshots_V1_MountsRequest()
            mountsRequest.key = "ctr"
            #expect(try await client.mounts(mountsRequest).mounts == active)

            let info = try await client.stat("layer-2")
            #expect(info.name == "layer-2" && info.parent == "layer-1" && info.kind == .committed)
            #expect(try await client.stat("ctr").kind == .active)
            #expect(try await client.stat("v1").kind == .view)
            #expect(await rpcCode { try await client.stat("default/1/extract") } == .notFound)
            #expect(try await client.stat("layer-1").labels == [:])

            var usageRequest = Containerd_Services_Snapshots_V1_UsageRequest()
            usageRequest.key = "layer-1"
            #expect(try await client.usage(usageRequest).inodes >= 1)

            // Everything lives in Veneer's containerd namespace, none of it in the default one.
            #expect(snapshotter.store.record("layer-1", in: .containerd) != nil)
            #expect(try await snapshotter.list(filters: []).isEmpty)
            #expect(try await snapshotter.list(filters: [], in: .containerd).count == 5)
        }
    }

    @Test("errors come back as the status codes containerd maps to its own errors")
    func errorCodes() async throws {
        try await withSnapshotsService { client, _, _ in
            _ = try await client.prepare("w")
            try await client.commit("w", as: "base")
            _ = try await client.prepare("child", parent: "base")
            _ = try await client.view("view", parent: "base")
            #expect(await rpcCode { try await client.stat("missing") } == .notFound)
            #expect(await rpcCode { try await client.prepare("child") } == .alreadyExists)
            #expect(await rpcCode { try await client.prepare("x", parent: "missing") } == .notFound)
            #expect(await rpcCode { try await client.remove("base") } == .failedPrecondition)
            #expect(await rpcCode { try await client.commit("view", as: "n") } == .failedPrecondition)
            #expect(await rpcCode { try await client.update("base", labels: [:], paths: ["kind"]) } == .invalidArgument)
            #expect(await rpcCode { try await client.listBatches(["kind=="]) } == .invalidArgument)
            let huge = ["l": String(repeating: "x", count: 5000)]
            #expect(await rpcCode { try await client.prepare("big", labels: huge) } == .invalidArgument)
            #expect(await rpcCode { try await client.prepare("") } == .invalidArgument)
            // Nothing was written by the refused requests.
            #expect(await rpcCode { try await client.stat("big") } == .notFound)
            #expect(try await client.stat("base").labels == [:])
        }
    }

    @Test("update follows containerd's field paths: labels, labels.K, or none for all labels")
    func updateFieldPaths() async throws {
        try await withSnapshotsService { client, _, _ in
            _ = try await client.prepare("w", labels: ["a": "1", "b": "2"])
            #expect(try await client.update("w", labels: ["c": "3"], paths: ["labels.c"]).labels == ["a": "1", "b": "2", "c": "3"])
            #expect(try await client.update("w", labels: [:], paths: ["labels.a"]).labels == ["b": "2", "c": "3"])
            #expect(try await client.update("w", labels: ["z": "9"], paths: ["labels"]).labels == ["z": "9"])
            #expect(try await client.update("w", labels: ["y": "8"], paths: []).labels == ["y": "8"])
            #expect(try await client.stat("w").labels == ["y": "8"])
        }
    }

    @Test("List streams in batches of 100 and honours containerd's filters (any of them)")
    func listBatchesAndFilters() async throws {
        try await withSnapshotsService { client, _, _ in
            for i in 0..<250 {
                _ = try await client.prepare(String(format: "k%03d", i), labels: i % 50 == 0 ? ["every": "50"] : [:])
            }
            let batches = try await client.listBatches()
            #expect(batches.map(\.count) == [100, 100, 50])
            #expect(batches.joined().first == "k000" && batches.joined().last == "k249")
            let labelled = try await client.listBatches(["labels.every==50"])
            #expect(labelled.joined().sorted() == ["k000", "k050", "k100", "k150", "k200"])
            let either = try await client.listBatches([#"name==k001"#, #"key~=^k24[89]$"#])
            #expect(either.joined().sorted() == ["k001", "k248", "k249"])
            #expect(try await client.listBatches(["kind==committed"]).isEmpty)
        }
    }

    @Test("remove answers once the directory is in the trash; cleanup frees it")
    func removeIsDeferredToCleanup() async throws {
        try await withSnapshotsService { client, snapshotter, root in
            let mounts = try await client.prepare("w")
            let fs = try #require(mounts.first?.source)
            try String(repeating: "x", count: 1 << 20).write(toFile: fs + "/big", atomically: false, encoding: .utf8)
            try await client.remove("w")
            #expect(await rpcCode { try await client.stat("w") } == .notFound)
            #expect(FileSystem.entryType(fs) == .missing)
            #expect(try FileSystem.listDirectory(root + "/trash").count == 1)
            _ = try await client.cleanup(Containerd_Services_Snapshots_V1_CleanupRequest())
            #expect(try FileSystem.listDirectory(root + "/trash").isEmpty)
            #expect(try FileSystem.listDirectory(root + "/snapshots").isEmpty)
            #expect(try await snapshotter.status().namespaces.isEmpty)
        }
    }
}
