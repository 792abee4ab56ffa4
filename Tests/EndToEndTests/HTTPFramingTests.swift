import Foundation
import Testing
import VeneerClient
import VeneerCore

/// Paths that match an endpoint only after normalisation: each gets a 404 with the JSON
/// error body, whichever part of the daemon answers it (the router, or the handler that
/// answers stats and mounts on the event loop), and changes nothing.
@Suite("HTTP framing and exact paths")
struct HTTPFramingTests {
    @Test("a path with an empty segment (repeated or trailing slash) is 404 and changes nothing")
    func emptySegmentsAreNotFound() async throws {
        try await withDaemon { daemon in
            try await makeFixture(daemon)
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
            let api = CheckedAPI(daemon)
            #expect(try await api.keys() == ["layer", "ctr", "look"])
            try await expectServesNormally(daemon)
        }
    }
}
