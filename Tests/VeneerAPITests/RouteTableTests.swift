import HTTPTypes
import Testing

@testable import VeneerAPI

@Suite("Route table")
struct RouteTableTests {
    static let table: RouteTable = {
        var table = RouteTable()
        table.add(.post, "/v1/snapshots")
        table.add(.get, "/v1/snapshots")
        table.add(.get, "/v1/snapshots/{key}")
        table.add(.delete, "/v1/snapshots/{key}")
        table.add(.post, "/v1/snapshots/{key}/commit")
        return table
    }()

    @Test func methodsOfExactPathsInTheOrderAdded() {
        #expect(Self.table.methods(of: "/v1/snapshots") == [.post, .get])
        #expect(Self.table.methods(of: "/v1/snapshots/a%2Fb") == [.get, .delete])
        #expect(Self.table.methods(of: "/v1/snapshots/commit") == [.get, .delete])
        #expect(Self.table.methods(of: "/v1/snapshots/x/commit") == [.post])
    }

    @Test func noRouteForOtherOrNormalisablePaths() {
        for path in [
            "/", "", "*", "/v1", "/v1/snapshot", "/V1/snapshots", "/v1/snapshots/", "//v1/snapshots", "/v1//snapshots",
            "/v1/snapshots/x/", "/v1/snapshots//commit", "/v1/snapshots/x/commit/extra", "v1/snapshots",
        ] {
            #expect(Self.table.methods(of: path) == nil, "\(path)")
        }
    }

    @Test func emptySegments() {
        for path in ["//", "//v1", "/v1/", "/v1//x", "/v1/x//", "///"] {
            #expect(RouteTable.hasEmptySegment(path), "\(path)")
        }
        for path in ["/", "/v1", "/v1/x", "/v1/x/y", "*", ""] {
            #expect(!RouteTable.hasEmptySegment(path), "\(path)")
        }
    }
}
