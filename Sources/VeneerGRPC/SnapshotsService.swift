import ContainerdAPI
import GRPCCore
import SwiftProtobuf
import VeneerCore
import VeneerService

/// containerd's snapshots service over the service layer: what a containerd
/// `[proxy_plugins]` entry of type `snapshot` calls.
///
/// Every snapshot made here lives in Veneer's namespace ``Namespace/containerd``:
/// containerd's garbage collector removes whatever snapshot of its backend it does not
/// know, so these never mix with the snapshots of HTTP clients. (containerd's own
/// namespaces are already part of the keys it sends, `<namespace>/<id>/<name>`.) The
/// `snapshotter` field of the requests is accepted whatever it says: the socket
/// names the snapshotter.
public struct SnapshotsService: Containerd_Services_Snapshots_V1_Snapshots.SimpleServiceProtocol {
    let snapshotter: Snapshotter
    let namespace: Namespace

    public init(snapshotter: Snapshotter, namespace: Namespace = .containerd) {
        self.snapshotter = snapshotter
        self.namespace = namespace
    }

    public func prepare(
        request: Containerd_Services_Snapshots_V1_PrepareSnapshotRequest, context: ServerContext
    ) async throws -> Containerd_Services_Snapshots_V1_PrepareSnapshotResponse {
        var response = Containerd_Services_Snapshots_V1_PrepareSnapshotResponse()
        response.mounts = try await prepared(.active, key: request.key, parent: request.parent, labels: request.labels)
        return response
    }

    public func view(
        request: Containerd_Services_Snapshots_V1_ViewSnapshotRequest, context: ServerContext
    ) async throws -> Containerd_Services_Snapshots_V1_ViewSnapshotResponse {
        var response = Containerd_Services_Snapshots_V1_ViewSnapshotResponse()
        response.mounts = try await prepared(.view, key: request.key, parent: request.parent, labels: request.labels)
        return response
    }

    /// Prepare and View: the new snapshot's mounts. containerd sends an empty parent for
    /// a snapshot without one.
    private func prepared(
        _ kind: SnapshotKind, key: String, parent: String, labels: [String: String]
    ) async throws(VeneerError) -> [Containerd_Types_Mount] {
        let (_, mounts) = try await snapshotter.prepare(
            key: key, parent: parent.isEmpty ? nil : parent, kind: kind, labels: labels, in: namespace)
        return mounts.map(Containerd_Types_Mount.init)
    }

    public func mounts(
        request: Containerd_Services_Snapshots_V1_MountsRequest, context: ServerContext
    ) async throws -> Containerd_Services_Snapshots_V1_MountsResponse {
        var response = Containerd_Services_Snapshots_V1_MountsResponse()
        response.mounts = try await snapshotter.mounts(key: request.key, in: namespace).map(Containerd_Types_Mount.init)
        return response
    }

    /// containerd 2.x also sends the parent it expects (field 5); the parent is the
    /// active snapshot's own, so it is not needed and not checked.
    public func commit(
        request: Containerd_Services_Snapshots_V1_CommitSnapshotRequest, context: ServerContext
    ) async throws -> Google_Protobuf_Empty {
        _ = try await snapshotter.commit(key: request.key, name: request.name, labels: request.labels, in: namespace)
        return Google_Protobuf_Empty()
    }

    /// Answered once the row is gone and the directory is in the trash, which
    /// ``cleanup(request:context:)`` empties: containerd's garbage collector holds its
    /// lock across this call and asks for a cleanup when it is done.
    public func remove(
        request: Containerd_Services_Snapshots_V1_RemoveSnapshotRequest, context: ServerContext
    ) async throws -> Google_Protobuf_Empty {
        try await snapshotter.remove(key: request.key, in: namespace, deferringDeletion: true)
        return Google_Protobuf_Empty()
    }

    public func stat(
        request: Containerd_Services_Snapshots_V1_StatSnapshotRequest, context: ServerContext
    ) async throws -> Containerd_Services_Snapshots_V1_StatSnapshotResponse {
        var response = Containerd_Services_Snapshots_V1_StatSnapshotResponse()
        response.info = Containerd_Services_Snapshots_V1_Info(try await snapshotter.stat(key: request.key, in: namespace))
        return response
    }

    /// Only labels change: field paths `labels` and `labels.<name>`, or none for all
    /// labels; any other path is `InvalidArgument` and changes nothing.
    public func update(
        request: Containerd_Services_Snapshots_V1_UpdateSnapshotRequest, context: ServerContext
    ) async throws -> Containerd_Services_Snapshots_V1_UpdateSnapshotResponse {
        let info = try await snapshotter.update(
            key: request.info.name, labels: request.info.labels, fieldpaths: request.updateMask.paths, in: namespace)
        var response = Containerd_Services_Snapshots_V1_UpdateSnapshotResponse()
        response.info = Containerd_Services_Snapshots_V1_Info(info)
        return response
    }

    /// The snapshots that match any of the filters (containerd's filter language), in
    /// messages of ``Containerd_Services_Snapshots_V1_ListSnapshotsResponse/batchSize``.
    public func list(
        request: Containerd_Services_Snapshots_V1_ListSnapshotsRequest,
        response: RPCWriter<Containerd_Services_Snapshots_V1_ListSnapshotsResponse>, context: ServerContext
    ) async throws {
        let infos = try await snapshotter.list(filters: request.filters, in: namespace)
        for batch in Containerd_Services_Snapshots_V1_ListSnapshotsResponse.batches(infos) {
            try await response.write(batch)
        }
    }

    public func usage(
        request: Containerd_Services_Snapshots_V1_UsageRequest, context: ServerContext
    ) async throws -> Containerd_Services_Snapshots_V1_UsageResponse {
        Containerd_Services_Snapshots_V1_UsageResponse(try await snapshotter.usage(key: request.key, in: namespace))
    }

    /// The daemon's own cleanup: deletes the directories no snapshot owns any more, those
    /// that removes left behind included, so containerd's garbage collector frees disk.
    public func cleanup(
        request: Containerd_Services_Snapshots_V1_CleanupRequest, context: ServerContext
    ) async throws -> Google_Protobuf_Empty {
        _ = try await snapshotter.cleanup()
        return Google_Protobuf_Empty()
    }
}
