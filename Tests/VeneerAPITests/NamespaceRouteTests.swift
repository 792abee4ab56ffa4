import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import VeneerCore
import VeneerTestSupport
import VeneerWire

@testable import VeneerAPI
@testable import VeneerService

@Suite("Namespaces through the routes")
struct NamespaceRouteTests {
    @Test func everySnapshotRouteWorksInTheNamespaceItNames() async throws {
        try await withAPI { client, snapshotter in
            let ns = "?namespace=containerd"
            // The same key in both namespaces, each with its own parent.
            #expect(try await client.send(.post, "/v1/snapshots", body: #"{"key":"w"}"#).status == .created)
            #expect(try await client.send(.post, "/v1/snapshots" + ns, body: #"{"key":"w"}"#).status == .created)
            #expect(try await client.send(.post, "/v1/snapshots/w/commit" + ns, body: #"{"name":"layer"}"#).status == .created)
            // A parent of another namespace does not exist here.
            try await client.send(.post, "/v1/snapshots", body: #"{"key":"c","parent":"layer"}"#).expectError(.notFound)
            let prepared = try await client.send(.post, "/v1/snapshots" + ns, body: #"{"key":"c","parent":"layer"}"#)
            #expect(prepared.status == .created)
            #expect(try prepared.decode(PrepareResponse.self).mounts.first?.type == "overlay")

            let mine = try await client.send(.get, "/v1/snapshots").decode(ListResponse.self).snapshots
            let theirs = try await client.send(.get, "/v1/snapshots" + ns).decode(ListResponse.self).snapshots
            #expect(mine.map(\.key) == ["w"])
            #expect(theirs.map(\.key) == ["layer", "c"])
            let filtered = try await client.send(.get, "/v1/snapshots?filter=kind%3D%3Dcommitted&namespace=containerd")
            #expect(try filtered.decode(ListResponse.self).snapshots.map(\.key) == ["layer"])

            #expect(try await client.send(.get, "/v1/snapshots/w").decode(SnapshotInfo.self).kind == .active)
            try await client.send(.get, "/v1/snapshots/layer").expectError(.notFound)
            #expect(try await client.send(.get, "/v1/snapshots/layer" + ns).decode(SnapshotInfo.self).kind == .committed)
            let patched = try await client.send(.patch, "/v1/snapshots/layer" + ns, body: #"{"labels":{"x":"1"}}"#)
            #expect(try patched.decode(SnapshotInfo.self).labels == ["x": "1"])
            #expect(try await client.send(.get, "/v1/snapshots/c/mounts" + ns).status == .ok)
            try await client.send(.get, "/v1/snapshots/c/mounts").expectError(.notFound)
            #expect(try await client.send(.get, "/v1/snapshots/layer/usage" + ns).status == .ok)
            try await client.send(.get, "/v1/snapshots/layer/usage").expectError(.notFound)
            #expect(try await client.send(.get, "/v1/mounts" + ns).status == .ok)

            // Removing in one namespace leaves the other alone.
            #expect(try await client.send(.post, "/v1/snapshots" + ns, body: #"{"key":"w"}"#).status == .created)
            #expect(try await client.send(.delete, "/v1/snapshots/w" + ns).status == .noContent)
            #expect(snapshotter.store.record("w") != nil)
            #expect(snapshotter.store.record("w", in: .containerd) == nil)
            try await client.send(.delete, "/v1/snapshots/c").expectError(.notFound)
            #expect(snapshotter.store.record("c", in: .containerd) != nil)

            let status = try await client.send(.get, "/v1/status").decode(StatusResponse.self)
            #expect(status.namespaces == [
                "default": KindCounts(active: 1), "containerd": KindCounts(active: 1, committed: 1),
            ])
            #expect(status.snapshots == KindCounts(active: 2, committed: 1))
        }
    }

    @Test func aBadOrRepeatedNamespaceIsRefusedAndChangesNothing() async throws {
        try await withAPI { client, snapshotter in
            for query in ["namespace=", "namespace=a%2Fb", "namespace=..", "namespace=a&namespace=b"] {
                let response = try await client.send(.post, "/v1/snapshots?" + query, body: #"{"key":"k"}"#)
                let message = try response.expectError(.invalidArgument)
                #expect(message.contains("namespace"), "\(message)")
                try await client.send(.get, "/v1/snapshots?" + query).expectError(.invalidArgument)
                try await client.send(.get, "/v1/snapshots/k?" + query).expectError(.invalidArgument)
            }
            #expect(try await snapshotter.store.list().isEmpty)
            #expect(try await snapshotter.store.counts().isEmpty)
            // Routes that are not scoped take no namespace.
            try await client.send(.post, "/v1/cleanup?namespace=containerd").expectError(.invalidArgument)
            try await client.send(.get, "/v1/status?namespace=containerd").expectError(.invalidArgument)
        }
    }
}
