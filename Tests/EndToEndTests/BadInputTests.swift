import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerOS
import VeneerTestSupport

// MARK: - What a request could change

/// Everything a refused request must leave alone: the entries under the state root's
/// snapshot, staging and trash directories (with file sizes), and the listed snapshots.
struct StoredState: Equatable {
    var entries: [String]
    var snapshots: [SnapshotInfo]

    static func of(_ daemon: Daemon, sourceLocation: SourceLocation = #_sourceLocation) async throws -> StoredState {
        var entries: [String] = []
        let manager = FileManager.default
        for area in ["snapshots", "staging", "trash"] {
            let base = daemon.root + "/" + area
            guard let walker = manager.enumerator(atPath: base) else {
                entries.append(area + " (unreadable)")
                continue
            }
            while let relative = walker.nextObject() as? String {
                let attributes = try manager.attributesOfItem(atPath: base + "/" + relative)
                let type = (attributes[.type] as? FileAttributeType).map { "\($0.rawValue)" } ?? "?"
                let size = (attributes[.size] as? NSNumber)?.int64Value ?? -1
                entries.append("\(area)/\(relative) \(type) \(type == FileAttributeType.typeDirectory.rawValue ? 0 : size)")
            }
        }
        let snapshots = try await CheckedAPI(daemon).all(sourceLocation: sourceLocation)
        return StoredState(entries: entries.sorted(), snapshots: snapshots.sorted { $0.key < $1.key })
    }
}

/// Snapshots of every kind to aim bad requests at, and an orphan directory that a
/// cleanup would remove.
func makeFixture(_ daemon: Daemon) async throws {
    let api = CheckedAPI(daemon)
    let base = try await api.prepared("base")
    try Data("layer data\n".utf8).write(to: URL(fileURLWithPath: try ownLayer(of: base.mounts) + "/file"))
    try await api.committed("base", name: "layer", labels: ["team": "storage"])
    try await api.prepared("ctr", parent: "layer", labels: ["a": "1"])
    try await api.prepared("look", parent: "layer", kind: .view)
    let orphan = daemon.root + "/snapshots/999999/fs"
    try FileManager.default.createDirectory(atPath: orphan, withIntermediateDirectories: true)
    try Data("orphan\n".utf8).write(to: URL(fileURLWithPath: orphan + "/junk"))
}

/// One bad request and the error it must get.
struct BadRequest: CustomStringConvertible {
    var what: String
    var method: String
    var path: String
    var body: [UInt8]?
    /// nil: `Content-Type: application/json` when there is a body.
    var headers: [(String, String)]?
    var status: Int
    var code: String
    /// Sent byte for byte over the socket, because an HTTP client would repair the path.
    var raw = false

    var description: String { "\(what): \(method) \(path.prefix(120))" }
}

/// Sends each request, expects its error, a 4xx status and no change to what is stored.
func expectRefusedWithoutChange(
    _ requests: [BadRequest], on daemon: Daemon, sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    for request in requests {
        let before = try await StoredState.of(daemon)
        let response: RawResponse
        if request.raw {
            response = try RawHTTP.exchange(
                socket: daemon.socket, method: request.method, target: request.path, body: request.body,
                headers: request.headers ?? (request.body == nil ? [] : [("Content-Type", "application/json")]))
            expectFollowsContract(response, method: request.method, path: request.path, sourceLocation: sourceLocation)
        } else {
            response = try await checked(
                daemon, request.method, request.path, body: request.body, headers: request.headers,
                sourceLocation: sourceLocation)
        }
        #expect(
            (400..<500).contains(response.status), "\(request) answered \(response.status): \(response.text)",
            sourceLocation: sourceLocation)
        #expect(
            response.status == request.status && response.errorCode == request.code,
            "\(request): expected \(request.status) \(request.code), got \(response.status) \(response.text)",
            sourceLocation: sourceLocation)
        #expect(response.errorMessage?.isEmpty == false, "\(request): no message", sourceLocation: sourceLocation)
        let after = try await StoredState.of(daemon)
        #expect(after == before, "\(request) changed what is stored", sourceLocation: sourceLocation)
    }
}

/// After the bad requests, ordinary requests still work.
func expectServesNormally(_ daemon: Daemon, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let api = CheckedAPI(daemon)
    let key = "after-" + UUID().uuidString
    let made = try await api.prepared(key, parent: "layer", labels: ["ok": "yes"], sourceLocation: sourceLocation)
    #expect(made.snapshot.parent == "layer", sourceLocation: sourceLocation)
    #expect(try await api.info(key, sourceLocation: sourceLocation) == made.snapshot, sourceLocation: sourceLocation)
    #expect(try await api.keys(sourceLocation: sourceLocation).contains(key), sourceLocation: sourceLocation)
    #expect(try await api.status(sourceLocation: sourceLocation).status == 200, sourceLocation: sourceLocation)
    #expect(try await api.remove(key, sourceLocation: sourceLocation).status == 204, sourceLocation: sourceLocation)
    #expect(try await api.keys(sourceLocation: sourceLocation) == ["layer", "ctr", "look"], sourceLocation: sourceLocation)
}

/// Runs `body` with a started daemon holding `makeFixture`'s snapshots, then, unless
/// `thenServesNormally` is false, `expectServesNormally`.
func withFixture(
    thenServesNormally: Bool = true, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (Daemon, CheckedAPI) async throws -> Void
) async throws {
    try await withAPI { daemon, api in
        try await makeFixture(daemon)
        try await body(daemon, api)
        if thenServesNormally { try await expectServesNormally(daemon, sourceLocation: sourceLocation) }
    }
}

// MARK: - Bad input

@Suite("Bad input")
struct BadInputTests {
    static let json = [("Content-Type", "application/json")]

    static func prepare(_ what: String, _ body: String, _ status: Int = 400, _ code: String = "invalid_argument") -> BadRequest {
        BadRequest(what: what, method: "POST", path: APIPath.snapshots, body: utf8Bytes(body), status: status, code: code)
    }

    static func commit(_ what: String, _ body: String, _ status: Int = 400, _ code: String = "invalid_argument") -> BadRequest {
        BadRequest(what: what, method: "POST", path: APIPath.commit("ctr"), body: utf8Bytes(body), status: status, code: code)
    }

    static func update(_ what: String, _ body: String, _ status: Int = 400, _ code: String = "invalid_argument") -> BadRequest {
        BadRequest(what: what, method: "PATCH", path: APIPath.snapshot("ctr"), body: utf8Bytes(body), status: status, code: code)
    }

    @Test("malformed JSON, wrong shapes and types, unknown fields and kinds are 400 and change nothing")
    func malformedBodies() async throws {
        try await withFixture { daemon, api in
            var requests: [BadRequest] = []
            for (what, body) in [
                ("truncated JSON", #"{"key":"#), ("not JSON", "key=x"), ("trailing data", #"{"key":"x"} {}"#),
                ("single quotes", "{'key':'x'}"), ("missing value", #"{"key":}"#), ("missing colon", #"{"key" "x"}"#),
                ("JSON array", #"[{"key":"x"}]"#), ("JSON number", "5"), ("JSON string", #""x""#),
                ("JSON null", "null"), ("JSON true", "true"), ("empty object", "{}"),
                ("lone surrogate", #"{"key":"\ud800"}"#),
            ] {
                requests.append(Self.prepare(what + " (prepare)", body))
            }
            for (what, body) in [("truncated JSON", #"{"name":"#), ("JSON array", #"[{"name":"x"}]"#),
                ("JSON number", "7"), ("empty object", "{}")]
            {
                requests.append(Self.commit(what + " (commit)", body))
            }
            for (what, body) in [("truncated JSON", #"{"labels":"#), ("JSON array", "[]"), ("JSON number", "0"),
                ("JSON null", "null")]
            {
                requests.append(Self.update(what + " (update)", body))
            }
            requests += [
                Self.prepare("key is a number", #"{"key":5}"#),
                Self.prepare("key is null", #"{"key":null}"#),
                Self.prepare("key is an object", #"{"key":{"a":"b"}}"#),
                Self.prepare("parent is a number", #"{"key":"x","parent":5}"#),
                Self.prepare("labels is an array", #"{"key":"x","labels":["a","b"]}"#),
                Self.prepare("labels is a string", #"{"key":"x","labels":"a=b"}"#),
                Self.prepare("label value is a number", #"{"key":"x","labels":{"a":1}}"#),
                Self.prepare("label value is null", #"{"key":"x","labels":{"a":null}}"#),
                Self.prepare("label value is an object", #"{"key":"x","labels":{"a":{}}}"#),
                Self.prepare("kind is a number", #"{"key":"x","kind":1}"#),
                Self.prepare("unknown field", #"{"key":"x","lables":{"a":"b"}}"#),
                Self.prepare("unknown field (id)", #"{"key":"x","id":7}"#),
                Self.prepare("kind committed", #"{"key":"x","kind":"committed"}"#),
                Self.prepare("kind committed with parent", #"{"key":"x","parent":"layer","kind":"committed"}"#),
                Self.prepare("kind banana", #"{"key":"x","kind":"banana"}"#),
                Self.prepare("kind in capitals", #"{"key":"x","kind":"Active"}"#),
                Self.prepare("kind empty", #"{"key":"x","kind":""}"#),
                Self.prepare("empty key", #"{"key":""}"#),
                Self.prepare("empty parent", #"{"key":"x","parent":""}"#),
                Self.prepare("empty label name", #"{"key":"x","labels":{"":"v"}}"#),
                Self.prepare("oversized key", #"{"key":"\#(String(repeating: "k", count: 4097))"}"#),
                Self.prepare("oversized parent", #"{"key":"x","parent":"\#(String(repeating: "p", count: 4097))"}"#),
                Self.prepare("NUL in key", #"{"key":"a\u0000b"}"#),
                Self.prepare("NUL alone as key", #"{"key":"\u0000"}"#),
                Self.prepare("NUL in parent", #"{"key":"x","parent":"lay\u0000er"}"#),
                Self.prepare("NUL in label name", #"{"key":"x","labels":{"a\u0000":"v"}}"#),
                Self.prepare("NUL in label value", #"{"key":"x","labels":{"a":"v\u0000"}}"#),
                Self.commit("name is a number", #"{"name":5}"#),
                Self.commit("labels is an array", #"{"name":"n","labels":[]}"#),
                Self.commit("unknown field", #"{"name":"n","parent":"layer"}"#),
                Self.commit("empty name", #"{"name":""}"#),
                Self.commit("oversized name", #"{"name":"\#(String(repeating: "n", count: 4097))"}"#),
                Self.commit("NUL in name", #"{"name":"n\u0000"}"#),
                Self.commit("NUL in label", #"{"name":"n","labels":{"a":"\u0000"}}"#),
                Self.update("labels is an array", #"{"labels":["a"]}"#),
                Self.update("label value is a number", #"{"labels":{"a":2}}"#),
                Self.update("fieldpaths is a string", #"{"labels":{},"fieldpaths":"labels"}"#),
                Self.update("fieldpath is a number", #"{"labels":{},"fieldpaths":[1]}"#),
                Self.update("unknown field", #"{"labels":{},"kind":"view"}"#),
                Self.update("unknown field path", #"{"labels":{"a":"2"},"fieldpaths":["parent"]}"#),
                Self.update("NUL in label", #"{"labels":{"a":"x\u0000"}}"#),
                Self.update("empty label name", #"{"labels":{"":"x"}}"#),
            ]
            // Bytes that are not UTF-8 inside JSON strings.
            for (what, raw) in [("0xFF", [UInt8(0xFF)]), ("lone continuation byte", [0x80]),
                ("overlong slash", [0xC0, 0xAF]), ("truncated sequence", [0xE2, 0x82]), ("surrogate", [0xED, 0xA0, 0x80])]
            {
                requests.append(BadRequest(
                    what: "invalid UTF-8 \(what) in the key", method: "POST", path: APIPath.snapshots,
                    body: utf8Bytes(#"{"key":"a"#) + raw + utf8Bytes(#""}"#), status: 400, code: "invalid_argument"))
                requests.append(BadRequest(
                    what: "invalid UTF-8 \(what) in a label", method: "PATCH", path: APIPath.snapshot("ctr"),
                    body: utf8Bytes(#"{"labels":{"a":""#) + raw + utf8Bytes(#""}}"#), status: 400, code: "invalid_argument"))
            }
            try await expectRefusedWithoutChange(requests, on: daemon)
        }
    }

    @Test("bad escapes in paths, NUL and oversized keys in paths, unknown query parameters")
    func pathsAndQueries() async throws {
        try await withFixture { daemon, api in
            var requests: [BadRequest] = []
            let badSegments: [(String, String)] = [
                ("invalid UTF-8 %FF", "%FF"), ("invalid UTF-8 overlong", "%C0%AF"), ("truncated UTF-8", "ctr%C3"),
                ("encoded surrogate", "%ED%A0%80"), ("NUL", "ctr%00"), ("NUL alone", "%00"),
                ("oversized key", String(repeating: "k", count: 4097)),
            ]
            let malformedSegments: [(String, String)] = [
                ("malformed escape %zz", "%zz"), ("escape cut short", "ctr%4"), ("lone percent", "ctr%"),
                ("escape with one hex digit", "%4g"),
            ]
            for (what, segment) in badSegments + malformedSegments {
                // Escapes that do not decode to UTF-8 are sent raw: an HTTP client may
                // rewrite or drop them (see the note on `RawHTTP`).
                let raw = segment.contains("%")
                let base = APIPath.snapshots + "/" + segment
                requests += [
                    BadRequest(what: what, method: "GET", path: base, status: 400, code: "invalid_argument", raw: raw),
                    BadRequest(what: what, method: "DELETE", path: base, status: 400, code: "invalid_argument", raw: raw),
                    BadRequest(
                        what: what, method: "PATCH", path: base, body: utf8Bytes(#"{"labels":{}}"#), status: 400,
                        code: "invalid_argument", raw: raw),
                    BadRequest(
                        what: what, method: "POST", path: base + "/commit", body: utf8Bytes(#"{"name":"fresh"}"#),
                        status: 400, code: "invalid_argument", raw: raw),
                    BadRequest(what: what, method: "GET", path: base + "/mounts", status: 400, code: "invalid_argument", raw: raw),
                    BadRequest(what: what, method: "GET", path: base + "/usage", status: 400, code: "invalid_argument", raw: raw),
                ]
            }
            // Unknown query parameters, on requests that would otherwise succeed and change things.
            let unknownQuery: [BadRequest] = [
                BadRequest(what: "unknown parameter", method: "GET", path: "/v1/snapshots?foo=1", status: 400, code: "invalid_argument"),
                BadRequest(
                    what: "unknown parameter beside a filter", method: "GET", path: "/v1/snapshots?filter=kind%3D%3Dview&x=1",
                    status: 400, code: "invalid_argument"),
                BadRequest(what: "filter in capitals", method: "GET", path: "/v1/snapshots?Filter=kind%3D%3Dview", status: 400, code: "invalid_argument"),
                BadRequest(
                    what: "unknown parameter", method: "POST", path: "/v1/snapshots?parent=layer", body: utf8Bytes(#"{"key":"new"}"#),
                    status: 400, code: "invalid_argument"),
                BadRequest(what: "unknown parameter", method: "GET", path: "/v1/snapshots/ctr?verbose", status: 400, code: "invalid_argument"),
                BadRequest(
                    what: "unknown parameter", method: "PATCH", path: "/v1/snapshots/ctr?fieldpaths=labels.a",
                    body: utf8Bytes(#"{"labels":{"b":"2"}}"#), status: 400, code: "invalid_argument"),
                BadRequest(what: "unknown parameter", method: "DELETE", path: "/v1/snapshots/ctr?force=true", status: 400, code: "invalid_argument"),
                BadRequest(
                    what: "unknown parameter", method: "POST", path: "/v1/snapshots/ctr/commit?labels=a",
                    body: utf8Bytes(#"{"name":"fresh"}"#), status: 400, code: "invalid_argument"),
                BadRequest(what: "unknown parameter", method: "GET", path: "/v1/snapshots/ctr/mounts?x=1", status: 400, code: "invalid_argument"),
                BadRequest(what: "unknown parameter", method: "GET", path: "/v1/snapshots/ctr/usage?x=1", status: 400, code: "invalid_argument"),
                BadRequest(what: "unknown parameter", method: "POST", path: "/v1/cleanup?dry-run=1", status: 400, code: "invalid_argument"),
                BadRequest(what: "unknown parameter", method: "GET", path: "/v1/status?x", status: 400, code: "invalid_argument"),
                BadRequest(what: "malformed escape in the query", method: "GET", path: "/v1/snapshots?filter=%zz", status: 400, code: "invalid_argument", raw: true),
                BadRequest(what: "invalid UTF-8 in the query", method: "GET", path: "/v1/snapshots?filter=%FF", status: 400, code: "invalid_argument", raw: true),
                BadRequest(what: "empty filter", method: "GET", path: "/v1/snapshots?filter=", status: 400, code: "invalid_argument"),
            ]
            requests += unknownQuery
            try await expectRefusedWithoutChange(requests, on: daemon)
        }
    }

    @Test("bodies: over 1 MiB is 413, other media types 415, missing bodies and bodies on DELETE 400")
    func bodySizesAndMediaTypes() async throws {
        try await withFixture { daemon, api in
            // Valid JSON apart from its size: only the size can be the reason to refuse it.
            let padding = String(repeating: " ", count: maxBodyBytes)
            let huge: [(String, String, String)] = [
                ("POST", APIPath.snapshots, #"{"key":"big"\#(padding)}"#),
                ("POST", APIPath.commit("ctr"), #"{"name":"big"\#(padding)}"#),
                ("PATCH", APIPath.snapshot("ctr"), #"{"labels":{}\#(padding)}"#),
                ("POST", APIPath.snapshots, #"{"key":"big","labels":{"a":"\#(String(repeating: "v", count: maxBodyBytes))"}}"#),
            ]
            var requests = huge.map { method, path, body in
                BadRequest(
                    what: "body over 1 MiB", method: method, path: path, body: utf8Bytes(body), status: 413,
                    code: "payload_too_large")
            }
            let otherTypes = ["text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data",
                "application/jsonx", "text/json"]
            for type in otherTypes {
                requests += [
                    BadRequest(
                        what: "Content-Type \(type)", method: "POST", path: APIPath.snapshots, body: utf8Bytes(#"{"key":"new"}"#),
                        headers: [("Content-Type", type)], status: 415, code: "unsupported_media_type"),
                    BadRequest(
                        what: "Content-Type \(type)", method: "POST", path: APIPath.commit("ctr"),
                        body: utf8Bytes(#"{"name":"new"}"#), headers: [("Content-Type", type)], status: 415,
                        code: "unsupported_media_type"),
                    BadRequest(
                        what: "Content-Type \(type)", method: "PATCH", path: APIPath.snapshot("ctr"),
                        body: utf8Bytes(#"{"labels":{}}"#), headers: [("Content-Type", type)], status: 415,
                        code: "unsupported_media_type"),
                ]
            }
            requests += [
                BadRequest(
                    what: "no Content-Type", method: "POST", path: APIPath.snapshots, body: utf8Bytes(#"{"key":"new"}"#),
                    headers: [], status: 415, code: "unsupported_media_type"),
                BadRequest(
                    what: "no body", method: "POST", path: APIPath.snapshots, headers: [], status: 400, code: "invalid_argument"),
                BadRequest(
                    what: "empty body", method: "POST", path: APIPath.snapshots, body: [], headers: Self.json, status: 400,
                    code: "invalid_argument"),
                BadRequest(
                    what: "no body", method: "POST", path: APIPath.commit("ctr"), headers: Self.json, status: 400,
                    code: "invalid_argument"),
                BadRequest(
                    what: "no body", method: "PATCH", path: APIPath.snapshot("ctr"), headers: [], status: 400,
                    code: "invalid_argument"),
                BadRequest(
                    what: "body on DELETE", method: "DELETE", path: APIPath.snapshot("ctr"), body: utf8Bytes("{}"), status: 400,
                    code: "invalid_argument"),
                BadRequest(
                    what: "body on DELETE without type", method: "DELETE", path: APIPath.snapshot("look"), body: utf8Bytes("x"),
                    headers: [], status: 400, code: "invalid_argument"),
                BadRequest(
                    what: "body on cleanup", method: "POST", path: APIPath.cleanup, body: utf8Bytes("{}"), status: 400,
                    code: "invalid_argument"),
            ]
            try await expectRefusedWithoutChange(requests, on: daemon)

            // Parameters of application/json and the case of the media type are accepted.
            for (key, type) in [("p1", "application/json; charset=utf-8"), ("p2", "Application/JSON")] {
                let response = try await checked(
                    daemon, "POST", APIPath.snapshots, body: utf8Bytes(#"{"key":"\#(key)"}"#), headers: [("Content-Type", type)])
                #expect(response.status == 201, "Content-Type \(type): \(response.text)")
                #expect(try await api.remove(key).status == 204)
            }
            // A body of exactly 1 MiB is not too large.
            let exact = #"{"key":"exact"}"#
            let fill = String(repeating: " ", count: maxBodyBytes - exact.utf8.count)
            let fits = try await checked(daemon, "POST", APIPath.snapshots, body: utf8Bytes(exact + fill))
            #expect(fits.status == 201, "\(fits.text)")
            #expect(try await api.remove("exact").status == 204)
        }
    }

    @Test("unknown paths are 404, unknown methods of known paths 405 with Allow, and change nothing")
    func unknownRoutes() async throws {
        try await withFixture { daemon, api in
            let unknownPaths: [(String, String, [UInt8]?)] = [
                ("GET", "/v2/x", nil),
                ("POST", "/v2/snapshots", utf8Bytes(#"{"key":"new"}"#)),
                ("GET", "/", nil),
                ("GET", "/v1", nil),
                ("GET", "/v1/snapshots/ctr/bogus", nil),
                ("GET", "/v1/snapshots/ctr/mounts/extra", nil),
                ("DELETE", "/v1/snapshots/layer/ctr", nil),
                ("GET", "/V1/STATUS", nil),
            ]
            try await expectRefusedWithoutChange(
                unknownPaths.map { method, path, body in
                    BadRequest(what: "unknown path", method: method, path: path, body: body, status: 404, code: "not_found")
                }, on: daemon)
            // Known paths with a method they do not have: the Allow header lists theirs.
            let unknownMethods: [(String, String, [UInt8]?, String)] = [
                ("PUT", "/v1/snapshots", utf8Bytes(#"{"key":"new"}"#), "POST, GET"),
                ("PATCH", "/v1/snapshots", utf8Bytes(#"{"labels":{}}"#), "POST, GET"),
                ("DELETE", "/v1/snapshots", nil, "POST, GET"),
                ("OPTIONS", "/v1/snapshots", nil, "POST, GET"),
                ("DELETE", "/v1/status", nil, "GET"),
                ("POST", "/v1/status", nil, "GET"),
                ("GET", "/v1/cleanup", nil, "POST"),
                ("DELETE", "/v1/cleanup", nil, "POST"),
                ("POST", "/v1/snapshots/ctr", utf8Bytes(#"{"key":"new"}"#), "GET, PATCH, DELETE"),
                ("PUT", "/v1/snapshots/ctr", utf8Bytes(#"{"labels":{}}"#), "GET, PATCH, DELETE"),
                ("GET", "/v1/snapshots/ctr/commit", nil, "POST"),
                ("DELETE", "/v1/snapshots/ctr/mounts", nil, "GET"),
                ("POST", "/v1/snapshots/ctr/usage", nil, "GET"),
                ("PUT", "/v1/mounts", nil, "POST, GET, DELETE"),
            ]
            try await expectRefusedWithoutChange(
                unknownMethods.map { method, path, body, _ in
                    BadRequest(
                        what: "unknown method", method: method, path: path, body: body, status: 405, code: "method_not_allowed")
                }, on: daemon)
            for (method, path, body, allow) in unknownMethods {
                let response = try await checked(daemon, method, path, body: body)
                #expect(response.header("Allow") == allow, "\(method) \(path): Allow \(response.header("Allow") ?? "(none)")")
                #expect(
                    response.errorMessage?.contains("\(method) is not allowed on \(path)") == true,
                    "\(method) \(path): \(response.text)")
            }
        }
    }
}

/// The daemon's body limit, 1 MiB.
let maxBodyBytes = 1 << 20
