import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

@Suite("Client errors")
struct ClientErrorTests {
    @Test("an answer with a code only HTTP has reaches the client as the nearest service code, message intact")
    func httpOnlyCodes() async throws {
        try await withDaemon { daemon in
            // A body over 1 MiB: the daemon answers 413 payload_too_large.
            let labels = ["big": String(repeating: "v", count: 1 << 20)]
            do {
                _ = try await daemon.client.prepare(PrepareRequest(key: "big", parent: nil, kind: nil, labels: labels))
                Issue.record("a prepare with a body over 1 MiB succeeded")
            } catch let error as VeneerError {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains("larger than 1 MiB"), "\(error.message)")
            }
            #expect(try await daemon.client.list().isEmpty)
            // The raw answer keeps the HTTP-only code.
            let raw = try RawHTTP.exchange(
                socket: daemon.socket, method: "PUT", target: "/v1/status", body: nil, headers: [])
            #expect(raw.status == 405)
            #expect(String(decoding: raw.body, as: UTF8.self).contains(#""code":"method_not_allowed""#))
        }
    }
}
