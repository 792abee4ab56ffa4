import Testing

@testable import VeneerSnapshotter

@Suite("Mount table lines matched to records")
struct MountMatchingTests {
    @Test("a layer path counts only as a whole option value or one element of a lowerdir list")
    func layerPathsInOptions() {
        let options = "rw,relatime,lowerdir=/r/snapshots/2/fs:/r/snapshots/1/fs,upperdir=/r/snapshots/3/fs,workdir=/r/snapshots/3/work"
        #expect(Snapshotter.options(options, name: "/r/snapshots/3/fs"))
        #expect(Snapshotter.options(options, name: "/r/snapshots/2/fs"))
        #expect(Snapshotter.options(options, name: "/r/snapshots/1/fs"))
        // Another root whose path ends like this one's, or starts like it.
        #expect(!Snapshotter.options("lowerdir=/x/r/snapshots/1/fs,upperdir=/x/r/snapshots/3/fs", name: "/r/snapshots/3/fs"))
        #expect(!Snapshotter.options("upperdir=/r/snapshots/3/fs2", name: "/r/snapshots/3/fs"))
        #expect(!Snapshotter.options("upperdir=/r/snapshots/3/fs/x", name: "/r/snapshots/3/fs"))
        #expect(!Snapshotter.options("/r/snapshots/3/fs", name: "/r/snapshots/3/fs"))
    }
}
