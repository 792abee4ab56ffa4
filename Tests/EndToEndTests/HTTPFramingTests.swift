import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

/// Requests that are not valid HTTP/1.1 and paths that match an endpoint only after
/// normalisation: each gets a 4xx with the JSON error body, whichever part of the daemon
/// answers it (the router, or the handler that answers stats and mounts on the event
/// loop), and changes nothing.
@Suite("HTTP framing and exact paths")
struct HTTPFramingTests {
    /// A request with a chunked body given as raw text after the head.
    static func chunked(
        _ method: String, _ target: String, encoding: String = "chunked", body: String, close: Bool = false
    ) -> String {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        if close { text += "Connection: close\r\n" }
        return text + "Transfer-Encoding: \(encoding)\r\n\r\n" + body
    }

    /// Expects the JSON refusal of a request the daemon could not read, after which it
    /// closes the connection.
    static func expectUnreadable(
        _ response: RawResponse, _ what: String, method: String, path: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        expectFollowsContract(response, method: method, path: path, sourceLocation: sourceLocation)
        #expect(response.status == 400, "\(what): \(response.status) \(response.text)", sourceLocation: sourceLocation)
        #expect(response.errorCode == "invalid_argument", "\(what): \(response.text)", sourceLocation: sourceLocation)
        #expect(
            response.errorMessage?.contains("not valid HTTP/1.1") == true, "\(what): \(response.text)",
            sourceLocation: sourceLocation)
        #expect(response.header("Content-Type") == "application/json", "\(what)", sourceLocation: sourceLocation)
        #expect(response.header("Connection")?.lowercased() == "close", "\(what)", sourceLocation: sourceLocation)
    }

    @Test("a malformed chunked body or an unknown Transfer-Encoding is 400 with the JSON error body")
    func malformedChunkedBodies() async throws {
        try await withFixture { daemon, api in
            let target = try daemon.mountPoint("chunked")
            let mountBody = #"{"key":"ctr","target":"\#(target)"}"#
            let cases: [(what: String, method: String, path: String, request: String)] = [
                ("prepare, chunk size ZZ", "POST", APIPath.snapshots,
                 Self.chunked("POST", APIPath.snapshots, body: "ZZ\r\n{\"key\":\"new\"}\r\n0\r\n\r\n")),
                ("prepare, chunk size ZZ after a good chunk", "POST", APIPath.snapshots,
                 Self.chunked("POST", APIPath.snapshots, body: "3\r\n{\"k\r\nZZ\r\ney\":\"new\"}\r\n0\r\n\r\n")),
                ("prepare, Connection: close", "POST", APIPath.snapshots,
                 Self.chunked("POST", APIPath.snapshots, body: "ZZ\r\n{\"key\":\"new\"}\r\n0\r\n\r\n", close: true)),
                ("update, chunk size ZZ", "PATCH", APIPath.snapshot("ctr"),
                 Self.chunked("PATCH", APIPath.snapshot("ctr"), body: "ZZ\r\n{\"labels\":{}}\r\n0\r\n\r\n")),
                ("commit, chunk size ZZ", "POST", APIPath.commit("ctr"),
                 Self.chunked("POST", APIPath.commit("ctr"), body: "ZZ\r\n{\"name\":\"new\"}\r\n0\r\n\r\n")),
                ("prepare, Transfer-Encoding xchunked", "POST", APIPath.snapshots,
                 Self.chunked("POST", APIPath.snapshots, encoding: "xchunked", body: "{\"key\":\"new\"}")),
                ("update, Transfer-Encoding xchunked", "PATCH", APIPath.snapshot("ctr"),
                 Self.chunked("PATCH", APIPath.snapshot("ctr"), encoding: "xchunked", body: "{\"labels\":{}}")),
                ("mount, chunk size ZZ", "POST", MountCalls.path,
                 Self.chunked("POST", MountCalls.path, body: "ZZ\r\n\(mountBody)\r\n0\r\n\r\n")),
                ("mount, chunk size ZZ, Connection: close", "POST", MountCalls.path,
                 Self.chunked("POST", MountCalls.path, body: "ZZ\r\n\(mountBody)\r\n0\r\n\r\n", close: true)),
                ("mount, Transfer-Encoding xchunked", "POST", MountCalls.path,
                 Self.chunked("POST", MountCalls.path, encoding: "xchunked", body: mountBody)),
            ]
            for (what, method, path, request) in cases {
                let before = try await StoredState.of(daemon)
                let responses = try RawHTTP.pipelined(socket: daemon.socket, [request])
                #expect(responses.count == 1, "\(what): \(responses.count) responses")
                if let response = responses.first {
                    Self.expectUnreadable(response, what, method: method, path: path)
                }
                #expect(try await StoredState.of(daemon) == before, "\(what) changed what is stored")
            }
            #expect(try await MountCalls(daemon).list().decoded(LiveMountsResponse.self).mounts.isEmpty)

            // Behind requests answered on the event loop or by the router, the refusal
            // comes last, in order.
            let responses = try RawHTTP.pipelined(
                socket: daemon.socket,
                [
                    RawHTTP.request("GET", APIPath.snapshot("ctr")),
                    RawHTTP.request("POST", APIPath.snapshots, json: #"{"key":"piped"}"#),
                    Self.chunked("POST", APIPath.snapshots, body: "ZZ\r\n{\"key\":\"new\"}\r\n0\r\n\r\n"),
                ])
            #expect(responses.map(\.status) == [200, 201, 400])
            if responses.count == 3 {
                Self.expectUnreadable(responses[2], "pipelined", method: "POST", path: APIPath.snapshots)
            }
            #expect(try await api.remove("piped").status == 204)

            // A well-formed chunked body is read as any other.
            let good = try RawHTTP.pipelined(
                socket: daemon.socket,
                [Self.chunked("POST", APIPath.snapshots, body: "5\r\n{\"key\r\n9\r\n\":\"chunk\"\r\n1\r\n}\r\n0\r\n\r\n", close: true)])
            #expect(good.first?.status == 201, "\(good.first?.text ?? "no answer")")
            #expect(try await api.remove("chunk").status == 204)
        }
    }

    @Test("a path with an empty segment (repeated or trailing slash) is 404 and changes nothing")
    func emptySegmentsAreNotFound() async throws {
        try await withFixture { daemon, api in
            let target = try daemon.mountPoint("slash")
            let mount = utf8Bytes(#"{"key":"ctr","target":"\#(target)"}"#)
            let cases: [(String, String, [UInt8]?)] = [
                ("DELETE", "/v1/snapshots/look/", nil),
                ("DELETE", "//v1/snapshots/look", nil),
                ("DELETE", "/v1/snapshots//look", nil),
                ("GET", "//v1/snapshots/ctr", nil),
                ("GET", "/v1/snapshots//ctr", nil),
                ("GET", "/v1/snapshots/ctr/", nil),
                ("GET", "/v1//snapshots", nil),
                ("GET", "/v1/snapshots/", nil),
                ("GET", "/v1/status/", nil),
                ("GET", "//v1/status", nil),
                ("POST", "/v1/snapshots/", utf8Bytes(#"{"key":"new"}"#)),
                ("POST", "//v1/snapshots", utf8Bytes(#"{"key":"new"}"#)),
                ("PATCH", "/v1/snapshots/ctr/", utf8Bytes(#"{"labels":{}}"#)),
                ("POST", "/v1/snapshots/ctr/commit/", utf8Bytes(#"{"name":"new"}"#)),
                ("POST", "/v1/snapshots/ctr//commit", utf8Bytes(#"{"name":"new"}"#)),
                ("GET", "/v1/snapshots/ctr//mounts", nil),
                ("GET", "/v1/snapshots/ctr/usage/", nil),
                ("POST", "/v1/cleanup/", nil),
                ("POST", "/v1/mounts/", mount),
                ("POST", "//v1/mounts", mount),
                ("GET", "/v1/mounts/", nil),
                ("PUT", "/v1/status/", nil),
            ]
            try await expectRefusedWithoutChange(
                cases.map { method, path, body in
                    BadRequest(what: "empty segment", method: method, path: path, body: body, status: 404, code: "not_found", raw: true)
                }, on: daemon)
            // The same without a Connection header, which the event-loop handler may answer.
            for (method, path, body) in cases {
                let before = try await StoredState.of(daemon)
                let response = try RawHTTP.exchange(
                    socket: daemon.socket, method: method, target: path, body: body,
                    headers: body == nil ? [] : [("Content-Type", "application/json")], keepAlive: true)
                expectFollowsContract(response, method: method, path: path)
                expectError(response, 404, "not_found", mentioning: ["empty segment"])
                #expect(try await StoredState.of(daemon) == before, "\(method) \(path) changed what is stored")
            }
            #expect(try await MountCalls(daemon).list().decoded(LiveMountsResponse.self).mounts.isEmpty)
            #expect(try await api.keys() == ["layer", "ctr", "look"])
        }
    }
}
