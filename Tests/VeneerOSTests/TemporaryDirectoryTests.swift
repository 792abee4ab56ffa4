import Foundation
import Testing
import VeneerTestSupport

/// The test support's teardown must never delete what is outside the directory: not
/// through a symbolic link, not through a mount left in it.
@Suite("Test support: temporary directories")
struct TemporaryDirectoryTests {
    @Test("removal follows no link out and enters no mount, and leaves nothing of its own")
    func removalStaysInside() throws {
        let outside = try TemporaryDirectory(prefix: "vn-outside")
        try Fixture.writeFile(outside("keep"), "kept")
        let scratch = try TemporaryDirectory(prefix: "vn-scratch")
        try Fixture.mkdir(scratch("tree"))
        try Fixture.writeFile(scratch("tree/file"), "gone")
        try Fixture.symlink(outside.path, at: scratch("tree/link"))
        try Fixture.mkdir(scratch("tree/mnt"))
        let bind = try ProcessRun.run("/bin/mount", ["--bind", outside.path, scratch("tree/mnt")])
        try #require(bind.succeeded, "\(bind)")
        try #require(MountInfo.targets(under: scratch.path) == [scratch("tree/mnt")])

        scratch.remove()

        #expect(!Fixture.exists(scratch.path))
        #expect(MountInfo.targets(under: scratch.path).isEmpty)
        #expect(try String(contentsOfFile: outside("keep"), encoding: .utf8) == "kept")
        scratch.remove()  // a second call does nothing
        #expect(Fixture.exists(outside("keep")))
    }
}
