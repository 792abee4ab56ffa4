import HTTPTypes
import Hummingbird
import VeneerCore

/// The API's paths and the methods each one answers, kept beside the router so that a
/// request whose path exists but whose method does not is told which methods it has
/// (405 with `Allow`), and so that only exact paths match.
struct RouteTable: Sendable {
    private enum Segment: Sendable, Equatable {
        case literal(String)
        /// A `{name}` parameter: any one non-empty segment.
        case parameter
    }

    private struct Route: Sendable {
        var segments: [Segment]
        var methods: [HTTPRequest.Method]
    }

    private var routes: [Route] = []

    /// Records that `template` (such as `/v1/snapshots/{key}/commit`) answers `method`.
    mutating func add(_ method: HTTPRequest.Method, _ template: String) {
        let segments = template.split(separator: "/").map { part -> Segment in
            part.hasPrefix("{") && part.hasSuffix("}") ? .parameter : .literal(String(part))
        }
        if let index = routes.firstIndex(where: { $0.segments == segments }) {
            routes[index].methods.append(method)
        } else {
            routes.append(Route(segments: segments, methods: [method]))
        }
    }

    /// The methods of the route that `path` names, in the order they were added; nil
    /// when `path` names no route.
    func methods(of path: String) -> [HTTPRequest.Method]? {
        guard let segments = Self.segments(of: path) else { return nil }
        let route = routes.first { route in
            route.segments.count == segments.count
                && zip(route.segments, segments).allSatisfy { pattern, segment in
                    switch pattern {
                    case .literal(let text): text.utf8.elementsEqual(segment.utf8)
                    case .parameter: true
                    }
                }
        }
        return route?.methods
    }

    /// The segments of an absolute path, or nil when it is not one or has an empty
    /// segment, which no route matches.
    static func segments(of path: String) -> [Substring]? {
        guard path.utf8.first == UInt8(ascii: "/"), !hasEmptySegment(path) else { return nil }
        return path.utf8.dropFirst().split(separator: UInt8(ascii: "/")).map { Substring($0) }
    }

    /// Whether an absolute path other than `/` has an empty segment: a repeated slash
    /// (`//v1/status`, `/v1//status`) or a trailing one (`/v1/status/`).
    static func hasEmptySegment(_ path: String) -> Bool {
        let bytes = path.utf8
        guard bytes.first == UInt8(ascii: "/"), bytes.count > 1 else { return false }
        return bytes.last == UInt8(ascii: "/") || zip(bytes, bytes.dropFirst()).contains { $0 == UInt8(ascii: "/") && $1 == $0 }
    }
}

/// The endpoints of the API, in the order they are added to the router, and the
/// table of their paths and methods.
struct Endpoints {
    typealias Handler = @Sendable (Request, BasicRequestContext) async throws -> Response

    struct Endpoint {
        var method: HTTPRequest.Method
        var path: String
        var handler: Handler
    }

    private(set) var endpoints: [Endpoint] = []
    private(set) var table = RouteTable()

    mutating func add(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping Handler) {
        endpoints.append(Endpoint(method: method, path: path, handler: handler))
        table.add(method, path)
    }
}

/// Makes routing exact and answers a known path's unknown method:
///
/// - a path with an empty segment (`//v1/status`, `/v1/snapshots/a/`) is 404, where the
///   router alone would drop the empty segment and match another path;
/// - a method that an existing path does not answer is 405 `method_not_allowed`, with
///   the path's methods in `Allow`; a path that names no route stays 404.
struct RouteMatchMiddleware<Context: RequestContext>: RouterMiddleware {
    let table: RouteTable

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let path = request.uri.path
        guard !RouteTable.hasEmptySegment(path) else {
            throw VeneerError.notFound(
                "no route for \(request.method) \(path): the path has an empty segment (a repeated or trailing slash); see api/openapi.yaml for the endpoints")
        }
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            guard let methods = table.methods(of: path) else { throw error }
            let allowed = methods.map(\.rawValue).joined(separator: ", ")
            var response = JSON.error(
                APIError(.methodNotAllowed, "\(request.method) is not allowed on \(path); use one of \(allowed)"))
            response.headers[.allow] = allowed
            return response
        }
    }
}
