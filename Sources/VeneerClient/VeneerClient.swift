import AsyncHTTPClient
import Foundation
import NIOCore
import VeneerCore
import VeneerWire

/// An HTTP answer as the daemon sent it.
public struct RawResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The value of the first header with this name (compared without case), if any.
    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }
}

/// Client for the API that `veneerd` serves on its Unix socket.
///
/// Every method throws only `VeneerError`: errors reported by the daemon keep its code
/// and message; a daemon that cannot be reached gives `unavailable`; an answer that does
/// not follow the API gives `internal`.
public struct VeneerClient: Sendable {
    /// Where `veneerd` listens unless configured otherwise.
    public static let defaultSocketPath = "/run/veneer/veneer.sock"

    /// How long one request may take, connection included. Generous, because removing or
    /// measuring a large snapshot walks its whole tree.
    static let requestTimeout: TimeAmount = .minutes(10)

    /// Largest answer body accepted.
    static let maxResponseBytes = 256 * 1024 * 1024

    /// The HTTP client used when none is given. Unlike `HTTPClient.shared`, it does not
    /// retry failed connection attempts until the request times out, so a daemon that is
    /// not running is reported at once; it never follows redirects and speaks HTTP/1.1 only.
    public static let sharedHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(5), read: nil),
            decompression: .disabled
        )
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.connectionPool.idleTimeout = .seconds(30)
        configuration.httpVersion = .http1Only
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    public let socketPath: String
    /// The namespace the snapshot requests name (`?namespace=`); nil for the daemon's
    /// default namespace.
    public let namespace: String?
    private let httpClient: HTTPClient

    /// - Parameters:
    ///   - socketPath: the daemon's Unix socket.
    ///   - namespace: the namespace of the snapshots this client works on; nil for the
    ///     default one. Unmount, cleanup, status and reload are not scoped.
    ///   - httpClient: the client that carries the requests. `HTTPClient.shared` works too,
    ///     but it keeps retrying to connect to a daemon that is down until the request times out.
    public init(
        socketPath: String, namespace: String? = nil, httpClient: HTTPClient = VeneerClient.sharedHTTPClient
    ) {
        self.socketPath = socketPath
        self.namespace = namespace
        self.httpClient = httpClient
    }

    // MARK: - Typed API

    /// Creates an active snapshot or a view, and returns it with its mounts.
    public func prepare(_ request: PrepareRequest) async throws(VeneerError) -> PrepareResponse {
        try await call("POST", scoped("/v1/snapshots"), body: encode(request), expect: 201, as: PrepareResponse.self)
    }

    /// All snapshots matching every filter (no filter: all snapshots).
    public func list(filters: [String] = []) async throws(VeneerError) -> [SnapshotInfo] {
        var path = "/v1/snapshots"
        if !filters.isEmpty {
            path += "?" + filters.map { "filter=" + PathSegment.encode($0) }.joined(separator: "&")
        }
        return try await call("GET", scoped(path), expect: 200, as: ListResponse.self).snapshots
    }

    public func stat(_ key: String) async throws(VeneerError) -> SnapshotInfo {
        try await call("GET", scoped(Self.snapshotPath(key)), expect: 200, as: SnapshotInfo.self)
    }

    /// Changes a snapshot's labels; see `Rules.updatedLabels` for the meaning of field paths.
    public func update(_ key: String, _ request: UpdateRequest) async throws(VeneerError) -> SnapshotInfo {
        try await call("PATCH", scoped(Self.snapshotPath(key)), body: encode(request), expect: 200, as: SnapshotInfo.self)
    }

    public func remove(_ key: String) async throws(VeneerError) {
        let path = scoped(Self.snapshotPath(key))
        let response = try await send(method: "DELETE", path: path)
        try check(response, expect: 204, method: "DELETE", path: path)
    }

    /// Commits the active snapshot `key` under the name given in the request.
    public func commit(_ key: String, _ request: CommitRequest) async throws(VeneerError) -> SnapshotInfo {
        try await call(
            "POST", scoped(Self.snapshotPath(key) + "/commit"), body: encode(request), expect: 201, as: SnapshotInfo.self)
    }

    public func mounts(_ key: String) async throws(VeneerError) -> [Mount] {
        try await call("GET", scoped(Self.snapshotPath(key) + "/mounts"), expect: 200, as: MountsResponse.self).mounts
    }

    public func usage(_ key: String) async throws(VeneerError) -> Usage {
        try await call("GET", scoped(Self.snapshotPath(key) + "/usage"), expect: 200, as: Usage.self)
    }

    /// Removes directories that no snapshot owns any more.
    public func cleanup() async throws(VeneerError) -> CleanupResponse {
        try await call("POST", "/v1/cleanup", expect: 200, as: CleanupResponse.self)
    }

    /// Has the daemon read its configuration file again; a file that does not load is
    /// `failed_precondition`, and the daemon keeps its running configuration.
    public func reload() async throws(VeneerError) -> ReloadResponse {
        try await call("POST", "/v1/reload", expect: 200, as: ReloadResponse.self)
    }

    public func status() async throws(VeneerError) -> StatusResponse {
        try await call("GET", "/v1/status", expect: 200, as: StatusResponse.self)
    }

    // MARK: - Layers

    /// Applies an OCI layer to the active snapshot `key`, whose own layer must be empty.
    /// `read` gives the layer's bytes a chunk at a time, an empty chunk at its end; they
    /// are sent as they come (the request has no deadline of its own). `digest` and
    /// `diffID`, when given, are what the daemon checks the layer against.
    public func applyLayer(
        _ key: String, compression: LayerCompression, digest: String? = nil, diffID: String? = nil,
        read: @escaping @Sendable () async throws -> [UInt8]
    ) async throws(VeneerError) -> LayerAppliedResponse {
        var query: [String] = []
        if let digest { query.append("digest=" + PathSegment.encode(digest)) }
        if let diffID { query.append("diff_id=" + PathSegment.encode(diffID)) }
        var path = Self.snapshotPath(key) + "/layer"
        if !query.isEmpty { path += "?" + query.joined(separator: "&") }
        path = scoped(path)
        let response = try await send(
            method: "PUT", path: path, streaming: .stream(Chunks(read: read), length: .unknown),
            headers: [("Accept", "application/json"), ("Content-Type", LayerMediaType.name(of: compression))],
            timeout: Self.streamTimeout)
        try check(response, expect: 200, method: "PUT", path: path)
        do {
            return try JSONDecoder().decode(LayerAppliedResponse.self, from: Data(response.body))
        } catch {
            throw .internal(
                "veneerd answered PUT \(path) with a body that is not a valid answer: \(Self.describe(decodingError: error)); "
                    + "body: \(Self.excerpt(response.body))")
        }
    }

    /// The changes of the snapshot's own layer against its parent, sorted by path.
    public func changes(_ key: String) async throws(VeneerError) -> [LayerChange] {
        try await call("GET", scoped(Self.snapshotPath(key) + "/changes"), expect: 200, as: ChangesResponse.self).changes
    }

    /// Reverts paths of an active snapshot that is not mounted to its parent's content;
    /// returns those that had changes.
    public func revert(_ key: String, paths: [String]) async throws(VeneerError) -> [String] {
        try await call(
            "POST", scoped(Self.snapshotPath(key) + "/revert"), body: encode(RevertRequest(paths: paths)), expect: 200,
            as: RevertResponse.self
        ).reverted
    }

    /// Exports the snapshot's own changes as an OCI layer of `compression`, handing its
    /// bytes to `write` as they arrive. Returns the layer's media type.
    public func exportLayer(
        _ key: String, compression: LayerCompression, write: @Sendable ([UInt8]) async throws -> Void
    ) async throws(VeneerError) -> String {
        let path = scoped(Self.snapshotPath(key) + "/diff?compression=" + compression.rawValue)
        guard let url = URL(httpURLWithSocketPath: socketPath, uri: path) else {
            throw .invalidArgument("cannot form a request URL from socket path \(quoted(socketPath)) and path \(quoted(path))")
        }
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .GET
        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, timeout: Self.streamTimeout)
        } catch {
            throw transportError(error, method: "GET", path: path)
        }
        guard response.status.code == 200 else {
            let body: ByteBuffer
            do {
                body = try await response.body.collect(upTo: Self.maxResponseBytes)
            } catch {
                throw transportError(error, method: "GET", path: path)
            }
            let raw = RawResponse(
                status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
                body: Array(body.readableBytesView))
            try check(raw, expect: 200, method: "GET", path: path)
            throw .internal("veneerd answered GET \(path) with status \(response.status.code)")
        }
        do {
            for try await buffer in response.body {
                try await write(Array(buffer.readableBytesView))
            }
        } catch let error as VeneerError {
            throw error
        } catch {
            throw .unavailable(
                "the layer of snapshot \(quoted(key)) was cut short: \(error); veneerd's log says why (the layer is not complete)")
        }
        return response.headers.first(name: "Content-Type") ?? LayerMediaType.name(of: compression)
    }

    /// How long a request that streams a layer may take.
    static let streamTimeout: TimeAmount = .hours(24)

    /// The chunks of a layer as a request body.
    struct Chunks: AsyncSequence, Sendable {
        typealias Element = ByteBuffer
        let read: @Sendable () async throws -> [UInt8]

        struct AsyncIterator: AsyncIteratorProtocol {
            let read: @Sendable () async throws -> [UInt8]
            var ended = false

            mutating func next() async throws -> ByteBuffer? {
                guard !ended else { return nil }
                let chunk = try await read()
                if chunk.isEmpty {
                    ended = true
                    return nil
                }
                return ByteBuffer(bytes: chunk)
            }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(read: read) }
    }

    // MARK: - Mounts made by the daemon

    /// Mounts the snapshot named in the request at its target directory. The daemon keeps
    /// track of the mount until ``unmount(target:lazy:)``; it stays in place when the
    /// daemon stops.
    public func mount(_ request: MountRequest) async throws(VeneerError) -> LiveMount {
        try await call("POST", scoped("/v1/mounts"), body: encode(request), expect: 201, as: LiveMount.self)
    }

    /// Unmounts a target the daemon mounted. `lazy` detaches it even while it is busy;
    /// the kernel finishes the unmount once nothing uses it any more.
    public func unmount(target: String, lazy: Bool = false) async throws(VeneerError) {
        var path = "/v1/mounts?target=" + PathSegment.encode(target)
        if lazy { path += "&lazy=true" }
        let response = try await send(method: "DELETE", path: path)
        try check(response, expect: 204, method: "DELETE", path: path)
    }

    /// The mounts the daemon made and has not unmounted, all of them or those of one
    /// snapshot.
    public func liveMounts(key: String? = nil) async throws(VeneerError) -> [LiveMount] {
        var path = "/v1/mounts"
        if let key { path += "?key=" + PathSegment.encode(key) }
        return try await call("GET", scoped(path), expect: 200, as: LiveMountsResponse.self).mounts
    }

    // MARK: - Raw access

    /// Raw access for tests and tools: sends exactly these bytes, returns status, headers and body.
    ///
    /// `path` (with its query, if any) is sent as given as long as it is a valid request
    /// target; characters that are not allowed there (spaces, non-ASCII, a `%` not followed
    /// by two hex digits) are percent-encoded on the way. No header is added besides those
    /// HTTP needs (`Host`, `Content-Length`). Only failures to exchange the request throw;
    /// any HTTP status is returned.
    public func send(
        method: String, path: String, body: [UInt8]? = nil, headers: [(String, String)] = []
    ) async throws(VeneerError) -> RawResponse {
        try await send(
            method: method, path: path, streaming: body.map { .bytes(ByteBuffer(bytes: $0)) }, headers: headers,
            timeout: Self.requestTimeout)
    }

    private func send(
        method: String, path: String, streaming body: HTTPClientRequest.Body?, headers: [(String, String)],
        timeout: TimeAmount
    ) async throws(VeneerError) -> RawResponse {
        if socketPath.isEmpty {
            throw .invalidArgument("the socket path is empty; give the path of veneerd's socket")
        }
        if method.isEmpty {
            throw .invalidArgument("the HTTP method is empty")
        }
        if !path.hasPrefix("/") {
            throw .invalidArgument("request path \(quoted(path)) does not start with \"/\"")
        }
        guard let url = URL(httpURLWithSocketPath: socketPath, uri: path) else {
            throw .invalidArgument(
                "cannot form a request URL from socket path \(quoted(socketPath)) and path \(quoted(path))")
        }
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .init(rawValue: method)
        for (name, value) in headers {
            request.headers.add(name: name, value: value)
        }
        request.body = body
        do {
            let response = try await httpClient.execute(request, timeout: timeout)
            let buffer = try await response.body.collect(upTo: Self.maxResponseBytes)
            return RawResponse(
                status: Int(response.status.code),
                headers: response.headers.map { ($0.name, $0.value) },
                body: Array(buffer.readableBytesView)
            )
        } catch {
            throw transportError(error, method: method, path: path)
        }
    }

    // MARK: - Helpers

    /// `/v1/snapshots/{key}` with the key encoded as one path segment.
    static func snapshotPath(_ key: String) -> String {
        "/v1/snapshots/" + PathSegment.encode(key)
    }

    /// `path` with this client's namespace added to its query, if it has one.
    func scoped(_ path: String) -> String {
        guard let namespace else { return path }
        return path + (path.contains("?") ? "&" : "?") + "namespace=" + PathSegment.encode(namespace)
    }

    private func encode(_ value: some Encodable) throws(VeneerError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw .internal("cannot encode the request as JSON: \(error)", cause: error)
        }
    }

    private func call<Response: Decodable>(
        _ method: String, _ path: String, body: [UInt8]? = nil, expect status: Int, as type: Response.Type
    ) async throws(VeneerError) -> Response {
        let headers: [(String, String)] =
            body == nil
            ? [("Accept", "application/json")]
            : [("Accept", "application/json"), ("Content-Type", "application/json")]
        let response = try await send(method: method, path: path, body: body, headers: headers)
        try check(response, expect: status, method: method, path: path)
        do {
            return try JSONDecoder().decode(type, from: Data(response.body))
        } catch {
            throw .internal(
                "veneerd answered \(Self.describe(status: response.status)) to \(method) \(path) "
                    + "with a body that is not a valid \(type): \(Self.describe(decodingError: error)); "
                    + "body: \(Self.excerpt(response.body))")
        }
    }

    /// Passes when the answer has the expected status; otherwise throws the daemon's error,
    /// or `internal` when the answer is not an error the API describes.
    private func check(_ response: RawResponse, expect status: Int, method: String, path: String)
        throws(VeneerError)
    {
        if response.status == status { return }
        if let answer = try? JSONDecoder().decode(ErrorResponse.self, from: Data(response.body)) {
            let code = APIErrorCode(rawValue: answer.error.code)?.serviceCode ?? .internal
            throw VeneerError(code, answer.error.message)
        }
        var message =
            "veneerd answered \(Self.describe(status: response.status)) to \(method) \(path) "
            + "instead of \(Self.describe(status: status))"
        if response.body.isEmpty {
            message += ", with an empty body"
        } else {
            message += ", with a body that is not an API error: \(Self.excerpt(response.body))"
        }
        throw .internal(message)
    }

    private func transportError(_ error: any Error, method: String, path: String) -> VeneerError {
        let hint = "is the daemon running? (set --socket or VENEER_SOCKET)"
        func unreachable(_ reason: String) -> VeneerError {
            .unavailable("cannot reach veneerd at \(socketPath): \(reason); \(hint)")
        }
        if let error = error as? VeneerError { return error }
        if let error = error as? IOError {
            return unreachable(Self.describe(errno: error.errnoCode) ?? String(describing: error))
        }
        if let error = error as? SocketAddressError, error == .unixDomainSocketPathTooLong {
            return .invalidArgument(
                "socket path \(quoted(socketPath)) is \(socketPath.utf8.count) bytes long; "
                    + "Unix socket paths are limited to 107 bytes")
        }
        if let error = error as? ChannelError, case .connectTimeout = error {
            return unreachable("timed out connecting")
        }
        if error is NIOTooManyBytesError {
            return .internal(
                "the answer of veneerd to \(method) \(path) is larger than \(Self.maxResponseBytes) bytes")
        }
        if error is CancellationError {
            return .unavailable("the request \(method) \(path) to veneerd at \(socketPath) was cancelled")
        }
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout:
                return unreachable("timed out connecting")
            case .remoteConnectionClosed:
                return .unavailable(
                    "veneerd at \(socketPath) closed the connection before answering \(method) \(path)")
            case .deadlineExceeded, .readTimeout:
                return .unavailable(
                    "veneerd at \(socketPath) did not answer \(method) \(path) within "
                        + "\(Self.requestTimeout.nanoseconds / 1_000_000_000) seconds")
            case .cancelled:
                return .unavailable("the request \(method) \(path) to veneerd at \(socketPath) was cancelled")
            case .invalidURL, .emptyHost, .missingSocketPath, .emptyScheme:
                return .invalidArgument(
                    "cannot form a request from socket path \(quoted(socketPath)) and path \(quoted(path)): \(error)")
            default:
                return .internal("request \(method) \(path) to veneerd at \(socketPath) failed: \(error)", cause: error)
            }
        }
        return .unavailable("request \(method) \(path) to veneerd at \(socketPath) failed: \(error)")
    }

    private static func describe(errno code: CInt) -> String? {
        switch code {
        case ENOENT: return "no such socket"
        case ECONNREFUSED: return "connection refused"
        case EACCES, EPERM: return "permission denied"
        case ENOTDIR: return "a component of the socket path is not a directory"
        case ECONNRESET: return "connection reset by the daemon"
        case EPIPE: return "the daemon closed the connection"
        case EAGAIN: return "the daemon is not accepting connections (its backlog is full)"
        case ENAMETOOLONG: return "the socket path is too long"
        default: return nil
        }
    }

    private static func describe(status: Int) -> String {
        let reasons: [Int: String] = [
            200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
            412: "Precondition Failed", 413: "Content Too Large", 415: "Unsupported Media Type",
            422: "Unprocessable Content", 429: "Too Many Requests", 500: "Internal Server Error",
            501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 507: "Insufficient Storage",
        ]
        return reasons[status].map { "\(status) \($0)" } ?? "HTTP status \(status)"
    }

    private static func describe(decodingError error: any Error) -> String {
        guard let error = error as? DecodingError else { return String(describing: error) }
        func at(_ path: [any CodingKey]) -> String {
            path.isEmpty ? "the top level" : path.map { $0.intValue.map(String.init) ?? $0.stringValue }
                .joined(separator: ".")
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "expected \(type) at \(at(context.codingPath))"
        case .valueNotFound(let type, let context):
            return "missing \(type) value at \(at(context.codingPath))"
        case .keyNotFound(let key, let context):
            return "missing field \(quoted(key.stringValue)) at \(at(context.codingPath))"
        case .dataCorrupted(let context):
            return "\(context.debugDescription) at \(at(context.codingPath))"
        @unknown default:
            return String(describing: error)
        }
    }

    /// At most 200 characters of a body, for messages.
    private static func excerpt(_ body: [UInt8]) -> String {
        let text = String(decoding: body.prefix(200), as: UTF8.self)
        return quoted(text) + (body.count > 200 ? "…" : "")
    }
}
