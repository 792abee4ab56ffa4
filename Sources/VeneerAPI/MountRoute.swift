import Foundation
import Hummingbird
import Logging
import VeneerCore
import VeneerJSON
import VeneerService
import VeneerWire

/// `POST /v1/mounts` once its body is decoded. The router and ``DirectResponseHandler``
/// both answer it through here.
enum MountRoute {
    static let what = "the mount request"

    /// Mounts and returns the body of the `201 Created` answer.
    static func mount(
        _ request: MountRequest, in namespace: Namespace, snapshotter: Snapshotter
    ) async throws(VeneerError) -> [UInt8] {
        try await blockingOperation { () throws(VeneerError) -> [UInt8] in
            try mountBlocking(request, in: namespace, snapshotter: snapshotter)
        }
    }

    /// ``mount(_:in:snapshotter:)`` on the calling thread, which it blocks.
    static func mountBlocking(
        _ request: MountRequest, in namespace: Namespace, snapshotter: Snapshotter
    ) throws(VeneerError) -> [UInt8] {
        let made = try snapshotter.liveMounts.mountBlocking(
            key: request.key, target: request.target, readonly: request.readonly ?? false, in: namespace)
        return JSONWriter.liveMount(made.live, mountsJSON: made.mountsJSON)
    }
}
