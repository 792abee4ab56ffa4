import Foundation
import Hummingbird
import Logging
import VeneerCore
import VeneerJSON
import VeneerService
import VeneerWire

/// Facts about the running daemon that `/v1/status` reports.
public struct ServerFacts: Sendable {
    public var root: String
    public var rootFilesystem: String
    public var socket: String
    /// The gRPC socket, or nil when it is disabled.
    public var grpcSocket: String?
    public var overlay: OverlayFeatureReport

    public init(
        root: String, rootFilesystem: String, socket: String, grpcSocket: String? = nil, overlay: OverlayFeatureReport
    ) {
        self.root = root
        self.rootFilesystem = rootFilesystem
        self.socket = socket
        self.grpcSocket = grpcSocket
        self.overlay = overlay
    }
}

public func status(snapshotter: Snapshotter, facts: ServerFacts) async throws(VeneerError) -> StatusResponse {
    let status = try await snapshotter.status()
    return StatusResponse(
        version: Veneer.version, root: facts.root, rootFilesystem: facts.rootFilesystem, socket: facts.socket,
        grpcSocket: facts.grpcSocket, snapshots: status.snapshots,
        namespaces: Dictionary(uniqueKeysWithValues: status.namespaces.map { ($0.key.name, $0.value) }), mounts: status.mounts, maxDepth: status.maxDepth,
        deepestChain: status.deepestChain, overlay: facts.overlay, uptimeSeconds: status.uptimeSeconds)
}
