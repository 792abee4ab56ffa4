import Foundation
import Hummingbird
import Logging
import VeneerCore
import VeneerOS
import VeneerSnapshotter

/// Facts about the running daemon that `/v1/status` reports.
public struct ServerFacts: Sendable {
    public var root: String
    public var socket: String
    /// Monotonic start time, for the uptime.
    public var startedAt: Int64

    public init(root: String, socket: String, startedAt: Int64) {
        self.root = root
        self.socket = socket
        self.startedAt = startedAt
    }
}

/// The HTTP API v1. `api/openapi.yaml` is its contract.
public enum API {
    public static func router(
        snapshotter: Snapshotter, facts: ServerFacts
    ) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: RequestLogMiddleware())
        router.add(middleware: ErrorMiddleware())

        let snapshots = router.group("v1/snapshots")

        snapshots.post { request, _ -> Response in
            let body = try await RequestDecoding.body(PrepareRequest.self, from: request, what: "the prepare request")
            _ = try RequestDecoding.query(request, allowed: [])
            let (info, mounts) = try await snapshotter.create(
                key: body.key, parent: body.parent, kind: body.kind ?? .active, labels: body.labels ?? [:])
            return JSON.response(bytes: JSONWriter.prepared(info, mounts), status: .created)
        }

        snapshots.get { request, _ -> Response in
            let filters = try RequestDecoding.query(request, allowed: ["filter"]).map(\.1)
            let list = try await snapshotter.list(filters: filters)
            return JSON.response(bytes: JSONWriter.list(list))
        }

        snapshots.get("{key}") { request, context -> Response in
            _ = try RequestDecoding.query(request, allowed: [])
            let key = try RequestDecoding.key(context)
            return JSON.response(bytes: JSONWriter.info(try await snapshotter.stat(key: key)))
        }

        snapshots.patch("{key}") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            let body = try await RequestDecoding.body(UpdateRequest.self, from: request, what: "the update request")
            _ = try RequestDecoding.query(request, allowed: [])
            let info = try await snapshotter.update(key: key, labels: body.labels, fieldpaths: body.fieldpaths ?? [])
            return JSON.response(bytes: JSONWriter.info(info))
        }

        snapshots.delete("{key}") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            _ = try RequestDecoding.query(request, allowed: [])
            try await RequestDecoding.noBody(request, what: "DELETE")
            try await snapshotter.remove(key: key)
            return Response(status: .noContent)
        }

        snapshots.post("{key}/commit") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            let body = try await RequestDecoding.body(CommitRequest.self, from: request, what: "the commit request")
            _ = try RequestDecoding.query(request, allowed: [])
            let info = try await snapshotter.commit(key: key, name: body.name, labels: body.labels ?? [:])
            return JSON.response(bytes: JSONWriter.info(info), status: .created)
        }

        snapshots.get("{key}/mounts") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            _ = try RequestDecoding.query(request, allowed: [])
            return JSON.response(bytes: JSONWriter.mountList(try await snapshotter.mounts(key: key)))
        }

        snapshots.get("{key}/usage") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            _ = try RequestDecoding.query(request, allowed: [])
            return try JSON.response(try await snapshotter.usage(key: key))
        }

        router.post("v1/cleanup") { request, _ -> Response in
            _ = try RequestDecoding.query(request, allowed: [])
            try await RequestDecoding.noBody(request, what: "cleanup")
            let report = try await snapshotter.cleanup()
            return try JSON.response(CleanupResponse(removed: report.removed, reclaimedBytes: report.reclaimedBytes))
        }

        router.get("v1/status") { request, _ -> Response in
            _ = try RequestDecoding.query(request, allowed: [])
            let counts = try await snapshotter.counts()
            let uptime = Double(SystemClock.monotonicNanoseconds() - facts.startedAt) / 1e9
            return try JSON.response(
                StatusResponse(
                    version: Veneer.version, root: facts.root, socket: facts.socket, snapshots: counts,
                    uptimeSeconds: uptime))
        }

        return router
    }
}

/// One debug line per request: method, path, status, duration.
struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard context.logger.logLevel <= .debug else {
            return try await next(request, context)
        }
        let start = SystemClock.monotonicNanoseconds()
        let response = try await next(request, context)
        let micros = (SystemClock.monotonicNanoseconds() - start) / 1000
        context.logger.debug(
            "request",
            metadata: [
                "method": "\(request.method)", "path": "\(request.uri.path)",
                "status": "\(response.status.code)", "duration_us": "\(micros)",
            ])
        return response
    }
}
