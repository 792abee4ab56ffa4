import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

/// Rules of requests beyond their syntax.
@Suite("Strict requests")
struct StrictRequestTests {
    @Test("null for an optional field is 400 naming the field, on every endpoint, and changes nothing")
    func nullOptionalFields() async throws {
        try await withFixture { daemon, api in
            let target = try daemon.mountPoint("null")
            let cases: [(method: String, path: String, body: String, field: String)] = [
                ("POST", APIPath.snapshots, #"{"key":"n1","labels":null}"#, "labels"),
                ("POST", APIPath.snapshots, #"{"key":"n2","parent":null}"#, "parent"),
                ("POST", APIPath.snapshots, #"{"key":"n3","kind":null}"#, "kind"),
                ("POST", APIPath.snapshots, #"{"key":"n4","parent":"layer","kind":"view","labels":null}"#, "labels"),
                ("POST", APIPath.commit("ctr"), #"{"name":"n5","labels":null}"#, "labels"),
                ("PATCH", APIPath.snapshot("ctr"), #"{"labels":null}"#, "labels"),
                ("PATCH", APIPath.snapshot("ctr"), #"{"labels":{},"fieldpaths":null}"#, "fieldpaths"),
                ("PATCH", APIPath.snapshot("ctr"), #"{"fieldpaths":null}"#, "fieldpaths"),
                ("POST", MountCalls.path, #"{"key":"ctr","target":"\#(target)","readonly":null}"#, "readonly"),
            ]
            try await expectRefusedWithoutChange(
                cases.map {
                    BadRequest(
                        what: "\($0.field) null", method: $0.method, path: $0.path, body: utf8Bytes($0.body), status: 400,
                        code: "invalid_argument")
                }, on: daemon)
            for (method, path, body, field) in cases {
                let response = try await checked(daemon, method, path, body: utf8Bytes(body))
                expectError(response, 400, "invalid_argument", mentioning: ["field \(field)", "not null"])
                // The mount path is answered on the event loop too, without a Connection header.
                if path == MountCalls.path {
                    let direct = try RawHTTP.exchange(
                        socket: daemon.socket, method: method, target: path, body: utf8Bytes(body),
                        headers: [("Content-Type", "application/json")], keepAlive: true)
                    #expect(direct.status == 400 && direct.body == response.body, "\(direct.text)")
                }
            }
            #expect(try await MountCalls(daemon).list().decoded(LiveMountsResponse.self).mounts.isEmpty)
            // The ctr snapshot kept its labels; leaving the fields out still works.
            #expect(try await api.info("ctr").labels == ["a": "1"])
            let made = try await checked(daemon, "POST", APIPath.snapshots, body: utf8Bytes(#"{"key":"plain"}"#))
            #expect(made.status == 201, "\(made.text)")
            #expect(try await api.remove("plain").status == 204)
        }
    }

    @Test("a query value or name that is not percent-encoded UTF-8 is 400 naming the query parameter")
    func queryEncodingErrorsNameTheParameter() async throws {
        try await withFixture(thenServesNormally: false) { daemon, api in
            let cases: [(target: String, mentioning: [String])] = [
                ("/v1/snapshots?filter=%FF", ["query parameter filter", "UTF-8", #""%FF""#]),
                ("/v1/snapshots?filter=kind%3D%3Dview&filter=%C3", ["query parameter filter", "UTF-8"]),
                ("/v1/snapshots?filter=%zz", ["query parameter filter", "percent-encoding"]),
                ("/v1/mounts?key=%FF", ["query parameter key", "UTF-8"]),
                ("/v1/mounts?key=ctr%4", ["query parameter key", "percent-encoding"]),
                ("/v1/mounts?target=%ED%A0%80", ["query parameter target", "UTF-8"]),
                ("/v1/snapshots?%FF=1", ["name of a query parameter", "UTF-8"]),
            ]
            for (target, mentioning) in cases {
                let method = target.hasPrefix("/v1/mounts?target") ? "DELETE" : "GET"
                let response = try RawHTTP.exchange(
                    socket: daemon.socket, method: method, target: target, body: nil, headers: [])
                expectFollowsContract(response, method: method, path: target)
                expectError(response, 400, "invalid_argument", mentioning: mentioning)
                #expect(response.errorMessage?.contains("path segment") == false, "\(target): \(response.text)")
            }
            // A key in a path still says where it was.
            let path = try RawHTTP.exchange(socket: daemon.socket, method: "GET", target: "/v1/snapshots/%FF", body: nil, headers: [])
            expectError(path, 400, "invalid_argument", mentioning: ["path segment"])
        }
    }
}

/// The cap on all the labels of one snapshot, names and values together.
@Suite("Total size of a snapshot's labels")
struct LabelTotalLimitTests {
    static let limit = 65536

    /// 16 labels named `l00` … `l15` of exactly 4096 bytes each (name plus value): 64 KiB.
    static let full: [String: String] = {
        var labels: [String: String] = [:]
        for index in 0..<16 {
            let name = "l" + (index < 10 ? "0" : "") + String(index)
            labels[name] = String(repeating: "v", count: 4096 - name.utf8.count)
        }
        return labels
    }()

    @Test("prepare, view, commit and update are refused beyond 64 KiB of labels in all, and change nothing")
    func totalLimit() async throws {
        try await withFixture(thenServesNormally: false) { daemon, api in
            let full = Self.full
            var over = full
            over["x"] = "y"
            #expect(full.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count } == Self.limit)
            let overJSON = String(decoding: try encodeJSON(over), as: UTF8.self)
            let overBody = { (fields: String) in utf8Bytes(fields.replacingOccurrences(of: "LABELS", with: overJSON)) }
            var requests = [
                BadRequest(what: "prepare", method: "POST", path: APIPath.snapshots, body: overBody(#"{"key":"big","labels":LABELS}"#), status: 400, code: "invalid_argument"),
                BadRequest(
                    what: "view", method: "POST", path: APIPath.snapshots,
                    body: overBody(#"{"key":"big","parent":"layer","kind":"view","labels":LABELS}"#), status: 400, code: "invalid_argument"),
                BadRequest(what: "commit", method: "POST", path: APIPath.commit("ctr"), body: overBody(#"{"name":"big","labels":LABELS}"#), status: 400, code: "invalid_argument"),
                BadRequest(what: "update replacing all", method: "PATCH", path: APIPath.snapshot("ctr"), body: overBody(#"{"labels":LABELS}"#), status: 400, code: "invalid_argument"),
            ]
            try await expectRefusedWithoutChange(requests, on: daemon)
            let refused = try await api.prepare("big", labels: over)
            expectError(refused, 400, "invalid_argument", mentioning: ["65538 bytes", "65536"])

            // Exactly 64 KiB is accepted everywhere.
            #expect(try await api.prepared("full", labels: full).snapshot.labels == full)
            #expect(try await api.prepared("full-view", parent: "layer", kind: .view, labels: full).snapshot.labels == full)
            #expect(try await api.committed("full", name: "full-layer", labels: full).labels == full)

            // An update is checked on the labels it would leave: one more label on a
            // snapshot at the limit is refused, whether set alone or by replacing all.
            try await api.prepared("grow", labels: full)
            requests = [
                BadRequest(
                    what: "update adding a label", method: "PATCH", path: APIPath.snapshot("grow"),
                    body: utf8Bytes(#"{"labels":{"x":"y"},"fieldpaths":["labels.x"]}"#), status: 400, code: "invalid_argument"),
                BadRequest(
                    what: "update replacing all labels", method: "PATCH", path: APIPath.snapshot("grow"),
                    body: overBody(#"{"labels":LABELS,"fieldpaths":["labels"]}"#), status: 400, code: "invalid_argument"),
            ]
            try await expectRefusedWithoutChange(requests, on: daemon)
            #expect(try await api.info("grow").labels == full)
            // Shortening one label makes room for another.
            let shortened = try await api.update("grow", labels: ["l00": "s"], fieldpaths: ["labels.l00"])
            #expect(shortened.status == 200, "\(shortened.text)")
            let added = try await api.update("grow", labels: ["x": "y"], fieldpaths: ["labels.x"])
            #expect(added.status == 200, "\(added.text)")
            #expect(try await api.info("grow").labels["x"] == "y")
        }
    }
}
