import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerWire

@Suite("Smoke")
struct SmokeTests {
    @Test("a prepared snapshot mounts and keeps what is written into it")
    func prepareMountWrite() async throws {
        try await withDaemon { daemon in
            let client = daemon.client
            _ = try await client.prepare(PrepareRequest(key: "base"))
            try await withMounted(daemon, "base") { target in
                try Data("hello\n".utf8).write(to: URL(fileURLWithPath: target + "/greeting"))
            }
            _ = try await client.commit("base", CommitRequest(name: "layer"))
            _ = try await client.prepare(PrepareRequest(key: "child", parent: "layer"))
            let text = try await withMounted(daemon, "child") { target in
                try String(contentsOfFile: target + "/greeting", encoding: .utf8)
            }
            #expect(text == "hello\n")
        }
    }
}
