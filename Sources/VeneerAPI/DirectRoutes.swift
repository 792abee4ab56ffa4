import Dispatch
import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes
import VeneerCore
import VeneerJSON
import VeneerService
import VeneerWire

/// The API's two hottest requests, answered on the connection's event loop instead of
/// going through Hummingbird's connection loop, router and middleware:
///
/// - a successful `GET /v1/snapshots/{key}`, answered from memory. Only the success is
///   answered here. Any other form of the request (a query string, an undecodable or
///   invalid key, a missing snapshot, extra path segments) goes to the router, so every
///   route keeps one definition of its errors and the router stays the contract's
///   reference.
/// - `POST /v1/mounts` without a query string, whose whole latency a container runtime
///   waits for. It is decoded and carried out by the same code as the router's route
///   (``MountRoute``), and its errors get the same status and body.
public struct DirectRoutes: Sendable {
    let snapshotter: Snapshotter

    static let snapshotsPrefix = Array("/v1/snapshots/".utf8)

    public init(snapshotter: Snapshotter) {
        self.snapshotter = snapshotter
    }

    /// The body of a `200 OK` answer to `request`, or nil when the router must answer it.
    public func answer(_ request: HTTPRequest) -> [UInt8]? {
        guard request.method == .get, let path = request.path else { return nil }
        let bytes = path.utf8
        guard bytes.starts(with: Self.snapshotsPrefix) else { return nil }
        let segment = path.utf8.dropFirst(Self.snapshotsPrefix.count)
        guard !segment.isEmpty,
            !segment.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") })
        else { return nil }
        guard let key = try? PathSegment.decode(Substring(segment)),
            let info = snapshotter.lookup(key: key)
        else { return nil }
        return JSONWriter.info(info)
    }

    /// Whether `request` is a mount this handler carries out itself. A client that
    /// waits for `100 Continue` goes to the router, which knows that dance.
    func takesMount(_ request: HTTPRequest) -> Bool {
        request.method == .post && request.path == "/v1/mounts" && request.headerFields[.expect] == nil
    }

    /// Decodes a mount request whose body was read, with the router's checks. Quick
    /// and without system calls: it runs on the event loop, where the body just was.
    func decodeMount(contentType: String?, body: [UInt8]) -> Result<MountRequest, APIError> {
        Result { () throws(APIError) -> MountRequest in
            try RequestDecoding.decode(MountRequest.self, contentType: contentType, bytes: body, what: MountRoute.what)
        }
    }

    /// Carries out a decoded mount request on the calling thread, which it blocks: the
    /// status and body of the answer.
    func mount(_ request: MountRequest, logger: Logger) -> (HTTPResponse.Status, [UInt8]) {
        do {
            return (.created, try MountRoute.mountBlocking(request, in: .default, snapshotter: snapshotter))
        } catch {
            return JSON.answer(error, logger: logger)
        }
    }
}
