import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import VeneerTestSupport
import VeneerCore
import VeneerOS
@testable import VeneerService
import VeneerWire

@testable import VeneerAPI

@Suite("Error mapping")
struct APIErrorTests {
    static let statuses: [APIErrorCode: Int] = [
        .service(.invalidArgument): 400,
        .service(.notFound): 404,
        .service(.alreadyExists): 409,
        .service(.failedPrecondition): 409,
        .service(.resourceExhausted): 507,
        .service(.unavailable): 503,
        .service(.internal): 500,
        .payloadTooLarge: 413,
        .unsupportedMediaType: 415,
        .methodNotAllowed: 405,
        .requestTimeout: 408,
    ]

    @Test func everyCodeHasItsStatus() {
        #expect(Set(Self.statuses.keys) == Set(APIErrorCode.allCases))
        for code in APIErrorCode.allCases {
            #expect(code.httpStatus.code == Self.statuses[code], "\(code)")
        }
    }

    /// A handler throwing each code (a service error, or one only HTTP has) gets the
    /// matching status and envelope.
    @Test func everyCodeBecomesTheEnvelope() async throws {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.get("fail/{code}") { _, context -> Response in
            let raw = context.parameters.get("code") ?? ""
            let message = "failed with \(raw) \"quoted\" / é"
            if let code = VeneerError.Code(rawValue: raw) { throw VeneerError(code, message) }
            guard let code = APIErrorCode(rawValue: raw) else { return Response(status: .ok) }
            throw APIError(code, message)
        }
        let app = Application(router: router, logger: quietLogger)
        try await app.test(.router) { client in
            for code in APIErrorCode.allCases {
                let response = try await client.send(.get, "/fail/\(code.rawValue)")
                let message = try response.expectError(code)
                #expect(message == "failed with \(code.rawValue) \"quoted\" / é")
            }
            // The route itself answers when nothing is thrown.
            let other = try await client.send(.get, "/fail/none")
            #expect(other.status == .ok)
        }
    }

    @Test("an internal error is logged with its cause; the client gets the message only")
    func internalErrorsLogTheirCause() async throws {
        struct DiskGone: Error, CustomStringConvertible { var description: String { "EIO on /dev/vdb" } }
        let (logger, entries) = TestLoggers.capturing()
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.get("broken") { _, _ -> Response in
            throw VeneerError.internal("cannot write the metadata database", cause: DiskGone())
        }
        router.get("missing") { _, _ -> Response in throw VeneerError.notFound("snapshot \"k\" does not exist") }
        let app = Application(router: router, logger: logger)
        try await app.test(.router) { client in
            let broken = try await client.send(.get, "/broken")
            #expect(try broken.expectError(.internal) == "cannot write the metadata database")
            #expect(!broken.text.contains("EIO"))
            try await client.send(.get, "/missing").expectError(.notFound)
        }
        let logged = entries.all.filter { $0.message == "internal error" }
        #expect(logged.count == 1)
        #expect(logged.first?.level == .error)
        #expect(logged.first?.metadata["error"] == "cannot write the metadata database")
        #expect(logged.first?.metadata["cause"] == "EIO on /dev/vdb")
    }

    @Test func otherErrorsAreInternal() async throws {
        struct Odd: Error {}
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.get("odd") { _, _ -> Response in throw Odd() }
        router.get("teapot") { _, _ -> Response in throw HTTPError(.init(code: 418, reasonPhrase: "teapot")) }
        router.get("busy") { _, _ -> Response in throw HTTPError(.serviceUnavailable) }
        let app = Application(router: router, logger: quietLogger)
        try await app.test(.router) { client in
            try await client.send(.get, "/odd").expectError(.internal)
            try await client.send(.get, "/teapot").expectError(.invalidArgument)
            try await client.send(.get, "/busy").expectError(.unavailable)
        }
    }
}

@Suite("API")
struct APITests {
    // MARK: - Happy path

    @Test func lifecycleThroughTheRoutes() async throws {
        try await withAPI { client, snapshotter in
            let prepared = try await client.send(.post, "/v1/snapshots", json: PrepareRequest(key: "work", labels: ["a": "1"]))
            #expect(prepared.status == .created, "\(prepared.text)")
            #expect(prepared.headers[.contentType] == "application/json")
            let body = try prepared.decode(PrepareResponse.self)
            #expect(body.snapshot.key == "work" && body.snapshot.kind == .active && body.snapshot.labels == ["a": "1"])
            #expect(body.mounts == (try await snapshotter.mounts(key: "work")))

            let committed = try await client.send(.post, "/v1/snapshots/work/commit", json: CommitRequest(name: "layer"))
            #expect(committed.status == .created, "\(committed.text)")
            #expect(try committed.decode(SnapshotInfo.self).kind == .committed)

            let view = try await client.send(
                .post, "/v1/snapshots", json: PrepareRequest(key: "view", parent: "layer", kind: .view))
            #expect(view.status == .created)
            #expect(try view.decode(PrepareResponse.self).snapshot.parent == "layer")

            let stat = try await client.send(.get, "/v1/snapshots/layer")
            #expect(stat.status == .ok)
            #expect(try stat.decode(SnapshotInfo.self) == (try await snapshotter.stat(key: "layer")))

            let list = try await client.send(.get, "/v1/snapshots")
            #expect(try list.decode(ListResponse.self).snapshots.map(\.key) == ["layer", "view"])

            let patched = try await client.send(
                .patch, "/v1/snapshots/view", json: UpdateRequest(labels: ["b": "2"], fieldpaths: ["labels.b"]))
            #expect(patched.status == .ok)
            #expect(try patched.decode(SnapshotInfo.self).labels == ["b": "2"])

            let mounts = try await client.send(.get, "/v1/snapshots/view/mounts")
            #expect(try mounts.decode(MountsResponse.self).mounts == (try await snapshotter.mounts(key: "view")))

            let usage = try await client.send(.get, "/v1/snapshots/layer/usage")
            #expect(usage.status == .ok)
            #expect(try usage.decode(Usage.self).inodes == 1)

            let status = try await client.send(.get, "/v1/status")
            let facts = try status.decode(StatusResponse.self)
            #expect(facts.snapshots == KindCounts(active: 0, view: 1, committed: 1))
            #expect(facts.version == Veneer.version)
            #expect(facts.root == snapshotter.layout.root)
            #expect(facts.rootFilesystem == "testfs")
            #expect(facts.overlay == testOverlayFeatures)
            #expect(facts.socket.hasSuffix("/veneer.sock"))
            #expect(facts.uptimeSeconds >= 0 && facts.uptimeSeconds < 600)

            let cleanup = try await client.send(.post, "/v1/cleanup")
            #expect(cleanup.status == .ok)
            #expect(try cleanup.decode(CleanupResponse.self) == CleanupResponse(removed: 0, reclaimedBytes: 0))
            #expect(cleanup.text.contains("\"reclaimed_bytes\""))

            let deleted = try await client.send(.delete, "/v1/snapshots/view")
            #expect(deleted.status == .noContent)
            #expect(deleted.body.readableBytes == 0)
            try await client.send(.get, "/v1/snapshots/view").expectError(.notFound)
        }
    }

    // MARK: - Errors of the snapshot rules

    @Test func ruleViolationsMapToTheirCodes() async throws {
        try await withAPI { client, snapshotter in
            _ = try await snapshotter.prepare(key: "view", parent: nil, kind: .view, labels: [:])
            _ = try await snapshotter.layer("base")

            try await client.send(.post, "/v1/snapshots", json: PrepareRequest(key: "")).expectError(.invalidArgument)
            try await client.send(.get, "/v1/snapshots/missing").expectError(.notFound)
            try await client.send(.delete, "/v1/snapshots/missing").expectError(.notFound)
            try await client.send(.post, "/v1/snapshots", json: PrepareRequest(key: "view")).expectError(.alreadyExists)
            try await client.send(.post, "/v1/snapshots/view/commit", json: CommitRequest(name: "n"))
                .expectError(.failedPrecondition)
            try await client.send(.get, "/v1/snapshots/base/mounts").expectError(.failedPrecondition)
            try await client.send(.post, "/v1/snapshots", json: PrepareRequest(key: "c", parent: "view"))
                .expectError(.invalidArgument)
            try await client.send(.patch, "/v1/snapshots/view", json: UpdateRequest(labels: [:], fieldpaths: ["kind"]))
                .expectError(.invalidArgument)

            // A broken state root is an internal error: the parent's layer is gone.
            let base = snapshotter.store.record("base")
            try FileSystem.removeTree(snapshotter.layout.snapshotDirectory(try #require(base).id))
            try await client.send(.post, "/v1/snapshots", json: PrepareRequest(key: "child", parent: "base"))
                .expectError(.internal)
            #expect(snapshotter.store.record("child") == nil)
        }
    }

    // MARK: - Bodies

    @Test func bodiesOverOneMebibyteAreRefused() async throws {
        try await withAPI { client, snapshotter in
            let padding = String(repeating: "x", count: maxRequestBodyBytes)
            let big = "{\"key\": \"k\", \"labels\": {\"pad\": \"\(padding)\"}}"
            let message = try await client.send(.post, "/v1/snapshots", body: big).expectError(.payloadTooLarge)
            #expect(message.contains("1 MiB"))
            try await client.send(.patch, "/v1/snapshots/k", body: big).expectError(.payloadTooLarge)
            try await client.send(.delete, "/v1/snapshots/k", body: big).expectError(.payloadTooLarge)
            #expect(try await snapshotter.status().snapshots == KindCounts())

            // Just under the limit is read (and then judged on its content).
            let fits = "{\"key\": \"k\", \"labels\": {\"pad\": \"\(padding.dropFirst(64))\"}}"
            #expect(fits.utf8.count <= maxRequestBodyBytes)
            try await client.send(.post, "/v1/snapshots", body: fits).expectError(.invalidArgument)
        }
    }

    @Test func onlyJSONIsAccepted() async throws {
        try await withAPI { client, snapshotter in
            let body = "{\"key\": \"k\"}"
            for type in ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", "application/ json", "application/jso"] {
                let message = try await client.send(.post, "/v1/snapshots", body: body, contentType: type)
                    .expectError(.unsupportedMediaType)
                #expect(message.contains(type))
            }
            try await client.send(.post, "/v1/snapshots", body: body, contentType: nil).expectError(.unsupportedMediaType)
            try await client.send(.post, "/v1/snapshots/k/commit", body: "{\"name\": \"n\"}", contentType: "text/json")
                .expectError(.unsupportedMediaType)
            #expect(try await snapshotter.status().snapshots == KindCounts())

            // Parameters, case and spaces around the type do not matter.
            let ok = try await client.send(
                .post, "/v1/snapshots", body: body, contentType: "Application/JSON; charset=utf-8")
            #expect(ok.status == .created, "\(ok.text)")
            let spaced = try await client.send(
                .post, "/v1/snapshots", body: "{\"key\": \"k2\"}", contentType: " application/json\t ;charset=utf-8")
            #expect(spaced.status == .created, "\(spaced.text)")
        }
    }

    @Test func malformedBodiesAreInvalid() async throws {
        try await withAPI { client, snapshotter in
            let bodies = [
                "", "{", "[]", "{\"key\": 1}", "{\"parent\": \"p\"}", "{\"key\": \"k\", \"kind\": \"committed-ish\"}",
                "{\"key\": \"k\", \"extra\": true}", "{\"key\": \"k\", \"labels\": {\"a\": 1}}", "{\"key\": null}",
            ]
            for body in bodies {
                let response = try await client.send(.post, "/v1/snapshots", body: body)
                try response.expectError(.invalidArgument)
            }
            let unknown = try await client.send(.post, "/v1/snapshots", body: "{\"key\": \"k\", \"extra\": true}")
            #expect(try unknown.expectError(.invalidArgument).contains("\"extra\""))
            try await client.send(.post, "/v1/cleanup", body: "{}").expectError(.invalidArgument)
            #expect(try await snapshotter.status().snapshots == KindCounts())
        }
    }

    // MARK: - Routes and queries

    @Test func unknownRoutesAndMethodsGetTheEnvelope() async throws {
        try await withAPI { client, _ in
            for (method, uri) in [
                (HTTPRequest.Method.get, "/"), (.get, "/v1"), (.get, "/v1/nothing"), (.get, "/v2/snapshots"),
                (.post, "/v1/snapshots/k/nothing"), (.get, "/v1/snapshots/"), (.delete, "/v1/snapshots/k/"),
                (.get, "//v1/status"), (.put, "/v1/status/"),
            ] {
                let message = try await client.send(method, uri).expectError(.notFound)
                #expect(message.contains(uri), "\(method) \(uri): \(message)")
            }
            for (method, uri, allow) in [
                (HTTPRequest.Method.put, "/v1/snapshots", "POST, GET"), (.delete, "/v1/status", "GET"),
                (.get, "/v1/cleanup", "POST"), (.get, "/v1/snapshots/k/commit", "POST"),
                (.post, "/v1/snapshots/k", "GET, PATCH, DELETE"), (.options, "/v1/mounts", "POST, GET, DELETE"),
            ] {
                let response = try await client.send(method, uri)
                let message = try response.expectError(.methodNotAllowed)
                #expect(response.headers[.allow] == allow, "\(method) \(uri)")
                #expect(message.contains("\(method) is not allowed on \(uri)"), "\(method) \(uri): \(message)")
            }
        }
    }

    @Test func queriesAreParsedStrictly() async throws {
        try await withAPI { client, snapshotter in
            _ = try await snapshotter.prepare(key: "a", parent: nil, kind: .active, labels: ["l": "x+y"])
            _ = try await snapshotter.prepare(key: "v", parent: nil, kind: .view, labels: ["l": "x y"])

            let unknown = try await client.send(.get, "/v1/snapshots?bogus=1").expectError(.invalidArgument)
            #expect(unknown.contains("\"bogus\""))
            try await client.send(.get, "/v1/snapshots?filter=%zz").expectError(.invalidArgument)
            try await client.send(.get, "/v1/snapshots?filter=%4").expectError(.invalidArgument)
            try await client.send(.get, "/v1/snapshots?fil%zzter=x").expectError(.invalidArgument)
            try await client.send(.get, "/v1/snapshots?filter=kind%3D").expectError(.invalidArgument)
            try await client.send(.get, "/v1/status?verbose").expectError(.invalidArgument)
            try await client.send(.get, "/v1/snapshots/a?x=1").expectError(.invalidArgument)
            try await client.send(.get, "/v1/snapshots/a/mounts?x=1").expectError(.invalidArgument)
            try await client.send(.delete, "/v1/snapshots/a?force=true").expectError(.invalidArgument)
            try await client.send(.post, "/v1/cleanup?dry-run=1").expectError(.invalidArgument)
            #expect(try await snapshotter.status().snapshots == KindCounts(active: 1, view: 1))

            func keys(_ query: String) async throws -> [String] {
                let response = try await client.send(.get, "/v1/snapshots?" + query)
                #expect(response.status == .ok, "\(query): \(response.text)")
                return try response.decode(ListResponse.self).snapshots.map(\.key)
            }
            #expect(try await keys("filter=kind%3D%3Dview") == ["v"])
            #expect(try await keys("filter=kind==view&filter=kind==active") == ["a", "v"])
            // "+" is a plus sign, not a space; %20 is a space.
            #expect(try await keys("filter=labels.l%3D%3Dx+y") == ["a"])
            #expect(try await keys("filter=labels.l%3D%3D%22x%20y%22") == ["v"])
            #expect(try await keys("") == ["a", "v"])
        }
    }

    @Test(arguments: ["a/b", "..", ".", "with space", "per%cent", "ünï/cödé", "a?b#c", "x+y", "/lead/", "%2F"])
    func keysRoundTripThroughThePath(key: String) async throws {
        try await withAPI { client, _ in
            let created = try await client.send(.post, "/v1/snapshots", json: PrepareRequest(key: key))
            #expect(created.status == .created, "\(created.text)")
            let segment = PathSegment.encode(key)
            let stat = try await client.send(.get, "/v1/snapshots/\(segment)")
            #expect(stat.status == .ok, "\(segment): \(stat.text)")
            #expect(try stat.decode(SnapshotInfo.self).key == key)
            let mounts = try await client.send(.get, "/v1/snapshots/\(segment)/mounts")
            #expect(mounts.status == .ok)
            let committed = try await client.send(
                .post, "/v1/snapshots/\(segment)/commit", json: CommitRequest(name: key + "!"))
            #expect(committed.status == .created, "\(committed.text)")
            let name = PathSegment.encode(key + "!")
            #expect(try await client.send(.get, "/v1/snapshots/\(name)").decode(SnapshotInfo.self).key == key + "!")
            #expect(try await client.send(.delete, "/v1/snapshots/\(name)").status == .noContent)
            try await client.send(.get, "/v1/snapshots/\(name)").expectError(.notFound)
        }
    }

    @Test func malformedPathSegmentsAreInvalid() async throws {
        try await withAPI { client, _ in
            for segment in ["%zz", "%", "a%2", "%C3%28", "%00"] {
                try await client.send(.get, "/v1/snapshots/\(segment)").expectError(.invalidArgument)
            }
        }
    }
}
