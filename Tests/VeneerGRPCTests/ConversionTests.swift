import ContainerdAPI
import GRPCCore
import SwiftProtobuf
import Testing
import VeneerCore
import VeneerGRPC
import VeneerTestSupport

@Suite("gRPC: errors and conversions")
struct ConversionTests {
    @Test("every service code ends an RPC with the status containerd maps back, message intact, cause kept here")
    func errorCodes() {
        let expected: [VeneerError.Code: RPCError.Code] = [
            .invalidArgument: .invalidArgument, .notFound: .notFound, .alreadyExists: .alreadyExists,
            .failedPrecondition: .failedPrecondition, .resourceExhausted: .resourceExhausted,
            .unavailable: .unavailable, .internal: .internalError,
        ]
        #expect(Set(expected.keys) == Set(VeneerError.Code.allCases))
        struct Underlying: Error {}
        for code in VeneerError.Code.allCases {
            let error = RPCError(VeneerError(code, "snapshot \"k\" is \(code.rawValue)", cause: Underlying()))
            #expect(error.code == expected[code], "\(code)")
            #expect(error.message == "snapshot \"k\" is \(code.rawValue)")
            #expect(error.cause == nil)
        }
    }

    @Test("a kind is always set: containerd reads an unset one as committed")
    func kinds() {
        #expect(SnapshotKind.allCases.map { Containerd_Services_Snapshots_V1_Kind($0) } == [.active, .view, .committed])
        #expect(!SnapshotKind.allCases.contains { Containerd_Services_Snapshots_V1_Kind($0) == .unknown })
    }

    @Test("an info carries the key as name, no parent as empty, times to the nanosecond")
    func info() {
        let created = Timestamp(nanosecondsSinceEpoch: 1_700_000_000_123_456_789)
        let updated = Timestamp(nanosecondsSinceEpoch: 1_700_000_100_000_000_001)
        let info = Containerd_Services_Snapshots_V1_Info(
            SnapshotInfo(key: "k/1", kind: .view, parent: nil, labels: ["a": "b"], created: created, updated: updated))
        #expect(info.name == "k/1" && info.parent.isEmpty && info.kind == .view && info.labels == ["a": "b"])
        #expect(info.createdAt.seconds == 1_700_000_000 && info.createdAt.nanos == 123_456_789)
        #expect(info.updatedAt.seconds == 1_700_000_100 && info.updatedAt.nanos == 1)
        let child = Containerd_Services_Snapshots_V1_Info(
            SnapshotInfo(key: "c", kind: .active, parent: "k/1", labels: [:], created: created, updated: created))
        #expect(child.parent == "k/1" && child.kind == .active)
    }

    @Test("timestamps before 1970 keep nanoseconds in 0..<1e9", arguments: [Int64(-1), -999_999_999, -1_000_000_000, -1_500_000_000])
    func negativeTimes(nanoseconds: Int64) {
        let stamp = Google_Protobuf_Timestamp(Timestamp(nanosecondsSinceEpoch: nanoseconds))
        #expect((0..<1_000_000_000).contains(stamp.nanos))
        #expect(stamp.seconds * 1_000_000_000 + Int64(stamp.nanos) == nanoseconds)
    }

    @Test("mounts and usage pass through as they are")
    func mountsAndUsage() {
        let mount = Containerd_Types_Mount(
            Mount(type: "overlay", source: "overlay", options: ["workdir=/w", "upperdir=/u", "lowerdir=/l1:/l2"]))
        #expect(mount.type == "overlay" && mount.source == "overlay" && mount.target.isEmpty)
        #expect(mount.options == ["workdir=/w", "upperdir=/u", "lowerdir=/l1:/l2"])
        let usage = Containerd_Services_Snapshots_V1_UsageResponse(Usage(size: 4096, inodes: 3))
        #expect(usage.size == 4096 && usage.inodes == 3)
    }

    @Test("lists stream in batches of 100, in order, and nothing for no snapshot", arguments: [0, 1, 99, 100, 101, 250])
    func listBatches(count: Int) {
        let time = Timestamp(nanosecondsSinceEpoch: 0)
        let infos = (0..<count).map {
            SnapshotInfo(key: "s\($0)", kind: .committed, parent: nil, labels: [:], created: time, updated: time)
        }
        let batches = Containerd_Services_Snapshots_V1_ListSnapshotsResponse.batches(infos)
        #expect(batches.count == (count + 99) / 100)
        #expect(batches.allSatisfy { $0.info.count <= 100 && !$0.info.isEmpty })
        #expect(batches.flatMap(\.info).map(\.name) == infos.map(\.key))
    }
}
