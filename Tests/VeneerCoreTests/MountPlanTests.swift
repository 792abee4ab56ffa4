import Testing
import VeneerCore

@Suite("MountPlan")
struct MountPlanTests {
    let own = SnapshotDirectories(fs: "/var/lib/veneer/snapshots/7/fs", work: "/var/lib/veneer/snapshots/7/work")
    let one = ["/var/lib/veneer/snapshots/3/fs"]
    let three = ["/var/lib/veneer/snapshots/3/fs", "/var/lib/veneer/snapshots/2/fs", "/var/lib/veneer/snapshots/1/fs"]

    @Test func activeWithoutParentIsAWritableBind() throws {
        let mounts = try MountPlan.mounts(kind: .active, key: "k", own: own, lowers: [])
        #expect(mounts == [Mount(type: "bind", source: own.fs, options: ["rw", "rbind"])])
    }

    @Test func activeWithOneParentIsAnOverlay() throws {
        let mounts = try MountPlan.mounts(kind: .active, key: "k", own: own, lowers: one)
        #expect(
            mounts == [
                Mount(
                    type: "overlay", source: "overlay",
                    options: ["workdir=\(own.work)", "upperdir=\(own.fs)", "lowerdir=\(one[0])"])
            ])
    }

    @Test func activeWithAncestorsListsLowersNearestFirst() throws {
        let mounts = try MountPlan.mounts(kind: .active, key: "k", own: own, lowers: three)
        #expect(mounts.count == 1)
        #expect(mounts.first?.type == "overlay")
        #expect(mounts.first?.source == "overlay")
        #expect(
            mounts.first?.options == [
                "workdir=\(own.work)", "upperdir=\(own.fs)",
                "lowerdir=/var/lib/veneer/snapshots/3/fs:/var/lib/veneer/snapshots/2/fs:/var/lib/veneer/snapshots/1/fs",
            ])
    }

    @Test func overlayOptionsAreAppendedToOverlaysOnly() throws {
        let extra = ["index=off", "userxattr"]
        let overlay = try MountPlan.mounts(kind: .active, key: "k", own: own, lowers: one, overlayOptions: extra)
        #expect(overlay.first?.options.suffix(2) == ["index=off", "userxattr"])
        #expect(overlay.first?.options.count == 5)
        let bind = try MountPlan.mounts(kind: .active, key: "k", own: own, lowers: [], overlayOptions: extra)
        #expect(bind == [Mount(type: "bind", source: own.fs, options: ["rw", "rbind"])])
        let viewBind = try MountPlan.mounts(kind: .view, key: "k", own: own, lowers: one, overlayOptions: extra)
        #expect(viewBind == [Mount(type: "bind", source: one[0], options: ["ro", "rbind"])])
        let viewOverlay = try MountPlan.mounts(kind: .view, key: "k", own: own, lowers: three, overlayOptions: extra)
        #expect(viewOverlay.first?.options.suffix(2) == ["index=off", "userxattr"])
    }

    @Test func viewWithoutParentIsAReadOnlyBindOfItsOwnLayer() throws {
        let mounts = try MountPlan.mounts(kind: .view, key: "k", own: own, lowers: [])
        #expect(mounts == [Mount(type: "bind", source: own.fs, options: ["ro", "rbind"])])
    }

    @Test func viewWithOneParentBindsTheParentReadOnly() throws {
        let mounts = try MountPlan.mounts(kind: .view, key: "k", own: own, lowers: one)
        #expect(mounts == [Mount(type: "bind", source: one[0], options: ["ro", "rbind"])])
    }

    @Test func viewWithSeveralAncestorsIsALowerOnlyOverlay() throws {
        let mounts = try MountPlan.mounts(kind: .view, key: "k", own: own, lowers: Array(three.prefix(2)))
        #expect(
            mounts == [
                Mount(
                    type: "overlay", source: "overlay",
                    options: ["lowerdir=/var/lib/veneer/snapshots/3/fs:/var/lib/veneer/snapshots/2/fs"])
            ])
        let deeper = try MountPlan.mounts(kind: .view, key: "k", own: own, lowers: three)
        #expect(deeper.first?.options == ["lowerdir=\(three.joined(separator: ":"))"])
        // A view never writes: no upper or work directory.
        #expect(deeper.first?.options.contains { $0.hasPrefix("upperdir=") || $0.hasPrefix("workdir=") } == false)
    }

    @Test(arguments: [0, 1, 3])
    func committedSnapshotsCannotBeMounted(parents: Int) {
        let error = #expect(throws: VeneerError.self) {
            try MountPlan.mounts(kind: .committed, key: "layer 1", own: own, lowers: Array(three.prefix(parents)))
        }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message.contains("\"layer 1\"") == true, "\(String(describing: error))")
    }

    @Test func everyKindAndParentCountIsPlanned() throws {
        // The whole table, so that a new case cannot slip through untested.
        for kind in SnapshotKind.allCases {
            for count in 0...3 {
                let lowers = Array(three.prefix(count))
                let result = Result { () throws(VeneerError) -> [Mount] in
                    try MountPlan.mounts(kind: kind, key: "k", own: own, lowers: lowers)
                }
                switch (kind, count) {
                case (.committed, _):
                    #expect(throws: VeneerError.self) { try result.get() }
                case (.active, 0), (.view, 0), (.view, 1):
                    #expect(try result.get().first?.type == "bind")
                    #expect(try result.get().count == 1)
                default:
                    #expect(try result.get().first?.type == "overlay")
                    #expect(try result.get().count == 1)
                }
            }
        }
    }
}
