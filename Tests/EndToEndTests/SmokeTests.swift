import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerWire

@Suite("Smoke")
struct SmokeTests {
    @Test("a prepared snapshot mounts and keeps what is written into it")
    func prepareMountWrite() async throws {
        try await withClient { daemon, client in
            try await withPrepared(daemon, "base") { target in
                try Data("hello\n".utf8).write(to: URL(fileURLWithPath: target + "/greeting"))
            }
            _ = try await client.commit("base", CommitRequest(name: "layer"))
            let text = try await withPrepared(daemon, "child", parent: "layer") { target in
                try String(contentsOfFile: target + "/greeting", encoding: .utf8)
            }
            #expect(text == "hello\n")
        }
    }
}
