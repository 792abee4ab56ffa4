import ContainerdAPI
import GRPCCore
import Logging
import Testing
import VeneerGRPC
import VeneerTestSupport

@Suite("gRPC: one debug line per call")
struct RequestLogInterceptorTests {
    @Test("each call logs its method, the code it ended with and its duration; List when its stream ends")
    func callsAreLogged() async throws {
        let (logger, entries) = TestLoggers.capturing(level: .debug)
        try await withSnapshotsService(interceptors: [RequestLogInterceptor(logger: logger)]) { client, _, _ in
            _ = try await client.prepare("w")
            #expect(await rpcCode { try await client.stat("missing") } == .notFound)
            _ = try await client.listBatches()
        }
        let calls = entries.all.filter { $0.message == "rpc" }
        #expect(calls.map { $0.metadata["method"] } == ["Prepare", "Stat", "List"])
        #expect(calls.map { $0.metadata["code"] } == ["ok", "notFound", "ok"])
        #expect(calls.allSatisfy { $0.level == .debug && Int($0.metadata["duration_us"] ?? "") != nil })
    }

    @Test("above debug nothing is logged")
    func quietAboveDebug() async throws {
        let (logger, entries) = TestLoggers.capturing(level: .info)
        try await withSnapshotsService(interceptors: [RequestLogInterceptor(logger: logger)]) { client, _, _ in
            _ = try await client.prepare("w")
            _ = try await client.stat("w")
        }
        #expect(entries.all.filter { $0.message == "rpc" }.isEmpty)
    }
}
