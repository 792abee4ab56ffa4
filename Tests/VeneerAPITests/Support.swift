import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import VeneerAPI
import VeneerCore
import VeneerOS
import VeneerService
import VeneerTestSupport
import VeneerWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

let quietLogger = TestLoggers.quiet("veneer.api.test")

extension TemporaryDirectory {
    /// The state root; the snapshotter creates it.
    var root: String { path + "/root" }
}

let testOverlayFeatures = OverlayFeatureReport(
    newMountAPI: true, index: false, metacopy: true, redirectDir: false, userxattr: true, dType: true)

/// Runs `body` against the API router of a snapshotter on a fresh state root,
/// in process, without a socket.
func withAPI(
    _ body: @Sendable (_ client: any TestClientProtocol, _ snapshotter: Snapshotter) async throws -> Void
) async throws {
    let tmp = try TemporaryDirectory(prefix: "veneer")
    let snapshotter = try Snapshotter(root: tmp.root, logger: quietLogger)
    let facts = ServerFacts(
        root: tmp.root, rootFilesystem: "testfs", socket: tmp.path + "/veneer.sock", overlay: testOverlayFeatures)
    let app = Application(router: API.router(snapshotter: snapshotter, facts: facts), logger: quietLogger)
    try await app.test(.router) { client in
        try await body(client, snapshotter)
    }
}

extension TestClientProtocol {
    /// Sends `body` (if any) with the given content type (none when nil).
    func send(
        _ method: HTTPRequest.Method, _ uri: String, body: String? = nil,
        contentType: String? = "application/json"
    ) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let contentType, body != nil { headers[.contentType] = contentType }
        return try await execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
    }

    func send<T: Encodable>(_ method: HTTPRequest.Method, _ uri: String, json: T) async throws -> TestResponse {
        let data = try JSONEncoder().encode(json)
        return try await send(method, uri, body: String(decoding: data, as: UTF8.self))
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }

    /// ``expectError(_:sourceLocation:)`` for a service error code.
    @discardableResult
    func expectError(
        _ code: VeneerError.Code, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> String {
        try expectError(.service(code), sourceLocation: sourceLocation)
    }

    /// The error envelope: status, JSON content type and exactly `{"error": {"code", "message"}}`.
    @discardableResult
    func expectError(
        _ code: APIErrorCode, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> String {
        #expect(status == code.httpStatus, "body: \(text)", sourceLocation: sourceLocation)
        #expect(headers[.contentType] == "application/json", sourceLocation: sourceLocation)
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect(object.map { Set($0.keys) } == ["error"], "body: \(text)", sourceLocation: sourceLocation)
        let inner = object?["error"] as? [String: Any]
        #expect(inner.map { Set($0.keys) } == ["code", "message"], "body: \(text)", sourceLocation: sourceLocation)
        let envelope = try decode(ErrorResponse.self)
        #expect(envelope.error.code == code.rawValue, "body: \(text)", sourceLocation: sourceLocation)
        #expect(!envelope.error.message.isEmpty, sourceLocation: sourceLocation)
        return envelope.error.message
    }
}

extension Snapshotter {
    /// Prepares `name`-work and commits it as `name`.
    @discardableResult
    func layer(_ name: String, parent: String? = nil) async throws -> SnapshotInfo {
        _ = try await prepare(key: name + "-work", parent: parent, kind: .active, labels: [:])
        return try await commit(key: name + "-work", name: name, labels: [:])
    }
}
