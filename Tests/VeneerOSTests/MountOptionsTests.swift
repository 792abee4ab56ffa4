import Testing
import VeneerOS

@Suite("Paths named by mount options")
struct MountOptionsTests {
    func entry(_ options: String) -> MountEntry {
        MountEntry(id: 1, parentID: 0, target: "/t", fsType: "overlay", source: "overlay", root: "/", options: options, mountOptions: "rw")
    }

    @Test("a layer path counts only as a whole option value or one element of a lowerdir list")
    func layerPathsInOptions() {
        let overlay = entry("rw,relatime,lowerdir=/r/snapshots/2/fs:/r/snapshots/1/fs,upperdir=/r/snapshots/3/fs,workdir=/r/snapshots/3/work")
        #expect(overlay.optionsName("/r/snapshots/3/fs"))
        #expect(overlay.optionsName("/r/snapshots/2/fs"))
        #expect(overlay.optionsName("/r/snapshots/1/fs"))
        // Another root whose path ends like this one's, or starts like it.
        #expect(!entry("lowerdir=/x/r/snapshots/1/fs,upperdir=/x/r/snapshots/3/fs").optionsName("/r/snapshots/3/fs"))
        #expect(!entry("upperdir=/r/snapshots/3/fs2").optionsName("/r/snapshots/3/fs"))
        #expect(!entry("upperdir=/r/snapshots/3/fs/x").optionsName("/r/snapshots/3/fs"))
        #expect(!entry("/r/snapshots/3/fs").optionsName("/r/snapshots/3/fs"))
    }
}
