import ContainerdAPI
import SwiftProtobuf
import VeneerCore

// The domain's values in containerd's messages.

extension Containerd_Services_Snapshots_V1_Kind {
    /// Always one of the three kinds: containerd reads an unset kind as committed.
    public init(_ kind: SnapshotKind) {
        switch kind {
        case .active: self = .active
        case .view: self = .view
        case .committed: self = .committed
        }
    }
}

extension Containerd_Services_Snapshots_V1_Info {
    /// `name` is the snapshot's key; a snapshot without parent has an empty `parent`.
    public init(_ info: SnapshotInfo) {
        self.init()
        name = info.key
        parent = info.parent ?? ""
        kind = .init(info.kind)
        createdAt = Google_Protobuf_Timestamp(info.created)
        updatedAt = Google_Protobuf_Timestamp(info.updated)
        labels = info.labels
    }
}

extension Google_Protobuf_Timestamp {
    /// Seconds and nanoseconds since the epoch; nanoseconds are always 0 to 999,999,999,
    /// also before 1970.
    public init(_ time: Timestamp) {
        let (seconds, nanoseconds) = time.nanosecondsSinceEpoch.quotientAndRemainder(dividingBy: 1_000_000_000)
        if nanoseconds < 0 {
            self.init(seconds: seconds - 1, nanos: Int32(nanoseconds + 1_000_000_000))
        } else {
            self.init(seconds: seconds, nanos: Int32(nanoseconds))
        }
    }
}

extension Containerd_Types_Mount {
    /// The mount as planned; containerd fills in no target for a snapshot's mounts.
    public init(_ mount: Mount) {
        self.init()
        type = mount.type
        source = mount.source
        options = mount.options
    }
}

extension Containerd_Services_Snapshots_V1_UsageResponse {
    public init(_ usage: Usage) {
        self.init()
        size = usage.size
        inodes = usage.inodes
    }
}

extension Containerd_Services_Snapshots_V1_ListSnapshotsResponse {
    /// Snapshots a List response carries at most: containerd's own snapshots service
    /// sends its lists in batches of this size, which keeps each message far below
    /// gRPC's default 4 MiB limit whatever the labels.
    public static let batchSize = 100

    /// `infos` as the messages of a List stream, `batchSize` snapshots each; no message
    /// for no snapshot.
    public static func batches(_ infos: [SnapshotInfo], size: Int = batchSize) -> [Self] {
        let size = max(size, 1)
        return stride(from: 0, to: infos.count, by: size).map { start in
            var response = Self()
            response.info = infos[start..<min(start + size, infos.count)].map(Containerd_Services_Snapshots_V1_Info.init)
            return response
        }
    }
}
