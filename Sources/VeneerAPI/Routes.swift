import Foundation
import Hummingbird
import Logging
import VeneerCore
import VeneerJSON
import VeneerService
import VeneerWire

/// The HTTP API v1. `api/openapi.yaml` is its contract.
public enum API {
    /// Reads the configuration again (`POST /v1/reload`); the daemon provides it.
    public typealias Reload = @Sendable () async throws(VeneerError) -> ReloadResponse

    /// Answers `POST /v1/reload` of a server that has no configuration to reload.
    public static let cannotReload: Reload = { () throws(VeneerError) -> ReloadResponse in
        throw VeneerError.failedPrecondition("this server has no configuration file to reload")
    }

    public static func router(
        snapshotter: Snapshotter, facts: ServerFacts, reload: @escaping Reload = cannotReload
    ) -> Router<BasicRequestContext> {
        var api = Endpoints()

        api.add(.post, "/v1/snapshots") { request, _ -> Response in
            let body = try await RequestDecoding.body(PrepareRequest.self, from: request, what: "the prepare request")
            let namespace = try RequestDecoding.namespace(RequestDecoding.query(request, allowed: ["namespace"]))
            let (info, mounts) = try await snapshotter.prepare(
                key: body.key, parent: body.parent, kind: body.kind ?? .active, labels: body.labels ?? [:],
                in: namespace)
            return JSON.response(bytes: JSONWriter.prepared(info, mounts), status: .created)
        }

        api.add(.get, "/v1/snapshots") { request, _ -> Response in
            let query = try RequestDecoding.query(request, allowed: ["filter", "namespace"])
            let filters = query.filter { $0.0 == "filter" }.map(\.1)
            let list = try await snapshotter.list(filters: filters, in: RequestDecoding.namespace(query))
            return JSON.response(bytes: JSONWriter.list(list))
        }

        api.add(.get, "/v1/snapshots/{key}") { request, context -> Response in
            let namespace = try RequestDecoding.namespace(RequestDecoding.query(request, allowed: ["namespace"]))
            let key = try RequestDecoding.key(context)
            return JSON.response(bytes: JSONWriter.info(try await snapshotter.stat(key: key, in: namespace)))
        }

        api.add(.patch, "/v1/snapshots/{key}") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            let body = try await RequestDecoding.body(UpdateRequest.self, from: request, what: "the update request")
            let namespace = try RequestDecoding.namespace(RequestDecoding.query(request, allowed: ["namespace"]))
            let info = try await snapshotter.update(
                key: key, labels: body.labels, fieldpaths: body.fieldpaths ?? [], in: namespace)
            return JSON.response(bytes: JSONWriter.info(info))
        }

        api.add(.delete, "/v1/snapshots/{key}") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            let namespace = try RequestDecoding.namespace(RequestDecoding.query(request, allowed: ["namespace"]))
            try await RequestDecoding.noBody(request, what: "DELETE")
            try await snapshotter.remove(key: key, in: namespace)
            return Response(status: .noContent)
        }

        api.add(.post, "/v1/snapshots/{key}/commit") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            let body = try await RequestDecoding.body(CommitRequest.self, from: request, what: "the commit request")
            let namespace = try RequestDecoding.namespace(RequestDecoding.query(request, allowed: ["namespace"]))
            let info = try await snapshotter.commit(key: key, name: body.name, labels: body.labels ?? [:], in: namespace)
            return JSON.response(bytes: JSONWriter.info(info), status: .created)
        }

        api.add(.get, "/v1/snapshots/{key}/mounts") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            let namespace = try RequestDecoding.namespace(RequestDecoding.query(request, allowed: ["namespace"]))
            return JSON.response(bytes: JSONWriter.mountList(try await snapshotter.mounts(key: key, in: namespace)))
        }

        api.add(.put, "/v1/snapshots/{key}/layer") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            return try JSON.response(try await LayerRoute.apply(request, key: key, snapshotter: snapshotter))
        }

        api.add(.get, "/v1/snapshots/{key}/diff") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            return try await LayerRoute.diff(request, key: key, snapshotter: snapshotter)
        }

        api.add(.get, "/v1/snapshots/{key}/changes") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            let namespace = try RequestDecoding.namespace(RequestDecoding.query(request, allowed: ["namespace"]))
            return try JSON.response(ChangesResponse(changes: try await snapshotter.changes(key: key, in: namespace)))
        }

        api.add(.post, "/v1/snapshots/{key}/revert") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            let body = try await RequestDecoding.body(RevertRequest.self, from: request, what: "the revert request")
            let namespace = try RequestDecoding.namespace(RequestDecoding.query(request, allowed: ["namespace"]))
            let reverted = try await snapshotter.revert(key: key, paths: body.paths, in: namespace)
            return try JSON.response(RevertResponse(reverted: reverted))
        }

        api.add(.get, "/v1/snapshots/{key}/usage") { request, context -> Response in
            let key = try RequestDecoding.key(context)
            let namespace = try RequestDecoding.namespace(RequestDecoding.query(request, allowed: ["namespace"]))
            return try JSON.response(try await snapshotter.usage(key: key, in: namespace))
        }

        api.add(.post, "/v1/cleanup") { request, _ -> Response in
            _ = try RequestDecoding.query(request, allowed: [])
            try await RequestDecoding.noBody(request, what: "cleanup")
            let report = try await snapshotter.cleanup()
            return try JSON.response(CleanupResponse(removed: report.removed, reclaimedBytes: report.reclaimedBytes))
        }

        api.add(.get, "/v1/status") { request, _ -> Response in
            _ = try RequestDecoding.query(request, allowed: [])
            return try JSON.response(try await status(snapshotter: snapshotter, facts: facts))
        }

        api.add(.post, "/v1/reload") { request, _ -> Response in
            _ = try RequestDecoding.query(request, allowed: [])
            try await RequestDecoding.noBody(request, what: "reload")
            return try JSON.response(try await reload())
        }

        api.add(.post, "/v1/mounts") { request, _ -> Response in
            let body = try await RequestDecoding.body(MountRequest.self, from: request, what: MountRoute.what)
            let namespace = try RequestDecoding.namespace(RequestDecoding.query(request, allowed: ["namespace"]))
            return JSON.response(
                bytes: try await MountRoute.mount(body, in: namespace, snapshotter: snapshotter), status: .created)
        }

        api.add(.get, "/v1/mounts") { request, _ -> Response in
            let query = try RequestDecoding.query(request, allowed: ["key", "namespace"])
            let keys = query.filter { $0.0 == "key" }.map(\.1)
            if keys.count > 1 {
                throw VeneerError.invalidArgument("give the key query parameter at most once")
            }
            let mounts = try await snapshotter.liveMounts.list(key: keys.first, in: RequestDecoding.namespace(query))
            return JSON.response(bytes: JSONWriter.liveMounts(mounts))
        }

        api.add(.delete, "/v1/mounts") { request, _ -> Response in
            let query = try RequestDecoding.query(request, allowed: ["target", "lazy"])
            try await RequestDecoding.noBody(request, what: "DELETE")
            let targets = query.filter { $0.0 == "target" }.map(\.1)
            guard targets.count == 1, let target = targets.first else {
                throw VeneerError.invalidArgument("name exactly one target: DELETE /v1/mounts?target=/absolute/path")
            }
            let lazyValues = query.filter { $0.0 == "lazy" }.map(\.1)
            var lazy = false
            switch lazyValues.count {
            case 0: break
            case 1:
                switch lazyValues[0] {
                case "true", "1": lazy = true
                case "false", "0": lazy = false
                default: throw VeneerError.invalidArgument("lazy must be true or false, not \(quoted(lazyValues[0]))")
                }
            default: throw VeneerError.invalidArgument("give the lazy query parameter at most once")
            }
            try await snapshotter.liveMounts.unmount(target: target, lazy: lazy)
            return Response(status: .noContent)
        }

        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: RequestLogMiddleware())
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: RouteMatchMiddleware(table: api.table))
        for endpoint in api.endpoints {
            router.on(RouterPath(endpoint.path), method: endpoint.method, use: endpoint.handler)
        }
        return router
    }
}
