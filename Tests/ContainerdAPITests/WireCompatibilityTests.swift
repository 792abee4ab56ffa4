import ContainerdAPI
import Foundation
import SwiftProtobuf
import Testing
import VeneerTestSupport

/// The generated messages put every field at containerd's field number with its wire
/// type: the bytes below are written out by hand from containerd's
/// `api/services/snapshots/v1/snapshots.proto` and `api/types/mount.proto`.
@Suite("containerd API: wire compatibility")
struct WireCompatibilityTests {
    /// A length-delimited field: tag (number << 3 | 2), length, bytes.
    private func field(_ number: UInt8, _ bytes: [UInt8]) -> [UInt8] {
        [number << 3 | 2, UInt8(bytes.count)] + bytes
    }

    private func field(_ number: UInt8, _ text: String) -> [UInt8] { field(number, Array(text.utf8)) }

    /// A map<string, string> entry: a message of key = 1 and value = 2.
    private func entry(_ number: UInt8, _ key: String, _ value: String) -> [UInt8] {
        field(number, field(1, key) + field(2, value))
    }

    @Test func prepareAndViewRequests() throws {
        var prepare = Containerd_Services_Snapshots_V1_PrepareSnapshotRequest()
        prepare.snapshotter = "veneer"
        prepare.key = "k"
        prepare.parent = "p"
        prepare.labels = ["a": "b"]
        let expected = field(1, "veneer") + field(2, "k") + field(3, "p") + entry(4, "a", "b")
        #expect(Array(try prepare.serializedData()) == expected)
        let view = try Containerd_Services_Snapshots_V1_ViewSnapshotRequest(serializedBytes: expected)
        #expect(view.snapshotter == "veneer" && view.key == "k" && view.parent == "p" && view.labels == ["a": "b"])
    }

    @Test func commitTakesContainerd2sParent() throws {
        let bytes = field(1, "veneer") + field(2, "name") + field(3, "key") + entry(4, "l", "v") + field(5, "parent")
        let commit = try Containerd_Services_Snapshots_V1_CommitSnapshotRequest(serializedBytes: bytes)
        #expect(commit.name == "name" && commit.key == "key" && commit.labels == ["l": "v"] && commit.parent == "parent")
        // containerd 1.6 sends no parent.
        let old = try Containerd_Services_Snapshots_V1_CommitSnapshotRequest(serializedBytes: Array(bytes.dropLast(8)))
        #expect(old.parent.isEmpty && old.key == "key")
    }

    @Test func mountsAndInfo() throws {
        var mount = Containerd_Types_Mount()
        mount.type = "overlay"
        mount.source = "overlay"
        mount.options = ["ro", "lowerdir=/a"]
        let mountBytes = field(1, "overlay") + field(2, "overlay") + field(4, "ro") + field(4, "lowerdir=/a")
        #expect(Array(try mount.serializedData()) == mountBytes)
        var response = Containerd_Services_Snapshots_V1_PrepareSnapshotResponse()
        response.mounts = [mount]
        #expect(Array(try response.serializedData()) == field(1, mountBytes))

        var info = Containerd_Services_Snapshots_V1_Info()
        info.name = "n"
        info.parent = "p"
        info.kind = .committed
        info.createdAt = Google_Protobuf_Timestamp(seconds: 1, nanos: 2)
        info.updatedAt = Google_Protobuf_Timestamp(seconds: 3, nanos: 4)
        info.labels = ["k": "v"]
        // Timestamp: seconds = 1 and nanos = 2, both varints.
        let created: [UInt8] = [0x08, 1, 0x10, 2]
        let updated: [UInt8] = [0x08, 3, 0x10, 4]
        let expected = field(1, "n") + field(2, "p") + [3 << 3, 3] + field(4, created) + field(5, updated)
            + entry(6, "k", "v")
        #expect(Array(try info.serializedData()) == expected)
    }

    @Test func kindsHaveContainerdsNumbers() {
        #expect(Containerd_Services_Snapshots_V1_Kind.unknown.rawValue == 0)
        #expect(Containerd_Services_Snapshots_V1_Kind.view.rawValue == 1)
        #expect(Containerd_Services_Snapshots_V1_Kind.active.rawValue == 2)
        #expect(Containerd_Services_Snapshots_V1_Kind.committed.rawValue == 3)
    }

    @Test func updateListAndUsage() throws {
        var update = Containerd_Services_Snapshots_V1_UpdateSnapshotRequest()
        update.snapshotter = "veneer"
        update.info.name = "n"
        update.updateMask.paths = ["labels.a"]
        let expected = field(1, "veneer") + field(2, field(1, "n")) + field(3, field(1, "labels.a"))
        #expect(Array(try update.serializedData()) == expected)

        var list = Containerd_Services_Snapshots_V1_ListSnapshotsRequest()
        list.snapshotter = "veneer"
        list.filters = ["kind==committed", "name~=^a"]
        #expect(Array(try list.serializedData()) == field(1, "veneer") + field(2, "kind==committed") + field(2, "name~=^a"))

        var usage = Containerd_Services_Snapshots_V1_UsageResponse()
        usage.size = 300
        usage.inodes = 2
        // Varints: 300 is 0xAC 0x02.
        #expect(Array(try usage.serializedData()) == [1 << 3, 0xAC, 0x02, 2 << 3, 2])
    }

    @Test func theServiceIsContainerds() {
        #expect(Containerd_Services_Snapshots_V1_Snapshots.descriptor.fullyQualifiedService
            == "containerd.services.snapshots.v1.Snapshots")
        let methods = [
            Containerd_Services_Snapshots_V1_Snapshots.Method.Prepare.descriptor,
            Containerd_Services_Snapshots_V1_Snapshots.Method.List.descriptor,
            Containerd_Services_Snapshots_V1_Snapshots.Method.Cleanup.descriptor,
        ]
        #expect(methods.map(\.method) == ["Prepare", "List", "Cleanup"])
    }
}
