import Foundation
import Testing
import VeneerOS
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Serialized: one test changes the process umask for a moment.
@Suite("FileSystem", .serialized)
struct FileSystemTests {
    // MARK: - Directories

    @Test func makeDirectorySetsTheExactModeDespiteTheUmask() throws {
        let tmp = try TemporaryDirectory()
        // Restrictive umask only around the two calls, so that other tests barely see it.
        let saved = umask(0o077)
        let open = Result { () throws(SystemError) in try FileSystem.makeDirectory(tmp("open"), mode: 0o755) }
        let sticky = Result { () throws(SystemError) in try FileSystem.makeDirectory(tmp("sticky"), mode: 0o1777) }
        let plain = Glibc.mkdir(tmp("plain"), 0o755)
        umask(saved)
        // Without the fix-up, mkdir alone gives what the umask leaves.
        #expect(plain == 0)
        #expect(try Fixture.permissions(tmp("plain")) == 0o700)
        try open.get()
        try sticky.get()
        #expect(try Fixture.permissions(tmp("open")) == 0o755)
        #expect(try Fixture.permissions(tmp("sticky")) == 0o1777)
        #expect(try FileSystem.mode(tmp("open")) == 0o755)
        #expect(FileSystem.entryType(tmp("open")) == .directory)
    }

    @Test func makeDirectoryFailsOnAnExistingPathOrMissingParent() throws {
        let tmp = try TemporaryDirectory()
        try FileSystem.makeDirectory(tmp("d"))
        let exists = #expect(throws: SystemError.self) { try FileSystem.makeDirectory(tmp("d")) }
        #expect(exists?.exists == true)
        #expect(exists?.operation == "mkdir")
        #expect(exists?.path == tmp("d"))

        let missing = #expect(throws: SystemError.self) { try FileSystem.makeDirectory(tmp("no/such")) }
        #expect(missing?.isNotFound == true)
        #expect(missing?.path == tmp("no/such"))
        #expect(!Fixture.exists(tmp("no")))
    }

    @Test func makeDirectoriesCreatesMissingParentsAndAcceptsExistingDirectories() throws {
        let tmp = try TemporaryDirectory()
        let deep = tmp("a/b/c/d")
        try FileSystem.makeDirectories(deep, mode: 0o700)
        for path in [tmp("a"), tmp("a/b"), tmp("a/b/c"), deep] {
            #expect(FileSystem.entryType(path) == .directory, "\(path)")
        }
        // Existing directories, whole or partial, are fine and left alone.
        try Fixture.writeFile(tmp("a/b/c/d/keep"), "x")
        try FileSystem.makeDirectories(deep, mode: 0o700)
        try FileSystem.makeDirectories(tmp("a/b/e"), mode: 0o700)
        #expect(FileSystem.entryType(tmp("a/b/e")) == .directory)
        #expect(try Fixture.readFile(tmp("a/b/c/d/keep")) == Array("x".utf8))
        // A trailing or doubled slash names the same directory.
        try FileSystem.makeDirectories(tmp("a//b/f/"), mode: 0o700)
        #expect(FileSystem.entryType(tmp("a/b/f")) == .directory)
    }

    @Test func makeDirectoriesRejectsAFileInTheWay() throws {
        let tmp = try TemporaryDirectory()
        try Fixture.writeFile(tmp("file"), "x")
        let atEnd = #expect(throws: SystemError.self) { try FileSystem.makeDirectories(tmp("file"), mode: 0o755) }
        #expect(atEnd?.errno == ENOTDIR)
        #expect(atEnd?.path == tmp("file"))
        let below = #expect(throws: SystemError.self) { try FileSystem.makeDirectories(tmp("file/sub"), mode: 0o755) }
        #expect(below?.errno == ENOTDIR)
        #expect(FileSystem.entryType(tmp("file")) == .regular)
    }

    @Test func renameMovesEntriesAndReportsBothPaths() throws {
        let tmp = try TemporaryDirectory()
        try Fixture.mkdir(tmp("from"))
        try Fixture.writeFile(tmp("from/f"), "payload")
        try FileSystem.rename(tmp("from"), to: tmp("to"))
        #expect(!Fixture.exists(tmp("from")))
        #expect(try Fixture.readFile(tmp("to/f")) == Array("payload".utf8))

        let error = #expect(throws: SystemError.self) { try FileSystem.rename(tmp("from"), to: tmp("again")) }
        #expect(error?.operation == "rename")
        #expect(error?.path == "\(tmp("from")) -> \(tmp("again"))")
        #expect(error?.isNotFound == true)
    }

    @Test func listDirectoryNamesEntriesWithoutDotAndDotDot() throws {
        let tmp = try TemporaryDirectory()
        #expect(try FileSystem.listDirectory(tmp.path) == [])
        try Fixture.mkdir(tmp("dir"))
        try Fixture.writeFile(tmp("file"), "x")
        try Fixture.symlink("/nonexistent", at: tmp("dangling"))
        try Fixture.writeFile(tmp(".hidden"), "x")
        #expect(Set(try FileSystem.listDirectory(tmp.path)) == ["dir", "file", "dangling", ".hidden"])
        let error = #expect(throws: SystemError.self) { try FileSystem.listDirectory(tmp("none")) }
        #expect(error?.isNotFound == true)
    }

    // MARK: - removeTree

    @Test func removeTreeRemovesNestedDirectories() throws {
        let tmp = try TemporaryDirectory()
        let top = tmp("top")
        try FileSystem.makeDirectories(top + "/a/b/c", mode: 0o755)
        try FileSystem.makeDirectories(top + "/x/y", mode: 0o755)
        try Fixture.writeFile(top + "/a/b/c/deep", "deep")
        try Fixture.writeFile(top + "/a/file", "file")
        try Fixture.writeFile(top + "/x/y/other", "other")
        try Fixture.link(top + "/a/file", at: top + "/x/hardlink")
        try FileSystem.removeTree(top)
        #expect(FileSystem.entryType(top) == .missing)
        #expect(try FileSystem.listDirectory(tmp.path) == [])
    }

    @Test func removeTreeRemovesDirectoriesWithoutPermissions() throws {
        let tmp = try TemporaryDirectory()
        let top = tmp("top")
        try Fixture.mkdir(top)
        try Fixture.mkdir(top + "/locked")
        try Fixture.mkdir(top + "/locked/inner")
        try Fixture.writeFile(top + "/locked/inner/f", "x")
        try Fixture.chmod(top + "/locked/inner", 0)
        try Fixture.chmod(top + "/locked", 0)
        try Fixture.chmod(top, 0)
        try FileSystem.removeTree(top)
        #expect(FileSystem.entryType(top) == .missing)
    }

    @Test func removeTreeDoesNotFollowSymbolicLinks() throws {
        let tmp = try TemporaryDirectory()
        let outside = tmp("outside")
        try Fixture.mkdir(outside)
        try Fixture.mkdir(outside + "/sub")
        try Fixture.writeFile(outside + "/keep", "precious")
        try Fixture.writeFile(outside + "/sub/keep", "precious too")

        let top = tmp("top")
        try Fixture.mkdir(top)
        try Fixture.mkdir(top + "/nested")
        try Fixture.symlink(outside, at: top + "/dirlink")
        try Fixture.symlink(outside + "/keep", at: top + "/nested/filelink")
        try Fixture.symlink("../outside/sub", at: top + "/nested/relative")
        try FileSystem.removeTree(top)

        #expect(FileSystem.entryType(top) == .missing)
        #expect(try Fixture.readFile(outside + "/keep") == Array("precious".utf8))
        #expect(try Fixture.readFile(outside + "/sub/keep") == Array("precious too".utf8))

        // A link given as the path itself is removed, not its target.
        try Fixture.symlink(outside, at: tmp("toplink"))
        try FileSystem.removeTree(tmp("toplink"))
        #expect(FileSystem.entryType(tmp("toplink")) == .missing)
        #expect(Set(try FileSystem.listDirectory(outside)) == ["keep", "sub"])
    }

    @Test func removeTreeAcceptsMissingPathsAndRemovesSingleFiles() throws {
        let tmp = try TemporaryDirectory()
        try FileSystem.removeTree(tmp("missing"))
        try FileSystem.removeTree(tmp("missing/below"))
        try Fixture.writeFile(tmp("file"), "x")
        try FileSystem.removeTree(tmp("file"))
        #expect(FileSystem.entryType(tmp("file")) == .missing)
        #expect(FileSystem.entryType(tmp.path) == .directory)
    }

    // MARK: - diskUsage

    /// Makes `top` in `tmp` with the directory `sub` and the file `a` holding `bytes`;
    /// returns the path of `top`.
    static func usageTree(_ tmp: TemporaryDirectory, a bytes: [UInt8]) throws -> String {
        let top = tmp("top")
        try Fixture.mkdir(top)
        try Fixture.mkdir(top + "/sub")
        try Fixture.writeFile(top + "/a", bytes)
        return top
    }

    @Test func diskUsageCountsBytesAndInodes() throws {
        let tmp = try TemporaryDirectory()
        let top = try Self.usageTree(tmp, a: [UInt8](repeating: 0x5A, count: 100_000))
        try Fixture.writeFile(top + "/sub/b", [UInt8](repeating: 0xA5, count: 50_000))
        let usage = try FileSystem.diskUsage(top)
        // top, sub, a, b
        #expect(usage.inodes == 4)
        #expect(usage.bytes >= 150_000)
        // Allocated bytes: the sum of st_blocks × 512 of the four inodes.
        var expected: Int64 = 0
        for path in [top, top + "/sub", top + "/a", top + "/sub/b"] {
            expected += Int64(try Fixture.stat(path).st_blocks) * 512
        }
        #expect(usage.bytes == expected)

        let single = try FileSystem.diskUsage(top + "/a")
        #expect(single.inodes == 1)
        #expect(single.bytes >= 100_000)
    }

    @Test func diskUsageCountsHardLinksOnce() throws {
        let tmp = try TemporaryDirectory()
        let top = try Self.usageTree(tmp, a: [UInt8](repeating: 1, count: 200_000))
        let before = try FileSystem.diskUsage(top)
        try Fixture.link(top + "/a", at: top + "/sub/a2")
        try Fixture.link(top + "/a", at: top + "/a3")
        let after = try FileSystem.diskUsage(top)
        #expect(after.inodes == before.inodes)
        // Adding names can grow a directory, never by a second copy of the file.
        #expect(after.bytes < before.bytes + 200_000)
        #expect(after.inodes == 3)
    }

    @Test func diskUsageDoesNotFollowSymbolicLinks() throws {
        let tmp = try TemporaryDirectory()
        try Fixture.mkdir(tmp("outside"))
        try Fixture.writeFile(tmp("outside/big"), [UInt8](repeating: 7, count: 1_000_000))
        let top = tmp("top")
        try Fixture.mkdir(top)
        try Fixture.symlink(tmp("outside/big"), at: top + "/filelink")
        try Fixture.symlink(tmp("outside"), at: top + "/dirlink")
        let usage = try FileSystem.diskUsage(top)
        #expect(usage.inodes == 3)
        #expect(usage.bytes < 1_000_000)
        // The link as the path itself is one inode.
        #expect(try FileSystem.diskUsage(top + "/dirlink").inodes == 1)
    }

    @Test func diskUsageOfAMissingPathIsZero() throws {
        let tmp = try TemporaryDirectory()
        #expect(try FileSystem.diskUsage(tmp("missing")) == FileSystem.DiskUsage(bytes: 0, inodes: 0))
    }

    // MARK: - Entries and owners

    @Test func entryTypeTellsKindsApartWithoutFollowingLinks() throws {
        let tmp = try TemporaryDirectory()
        try Fixture.mkdir(tmp("dir"))
        try Fixture.writeFile(tmp("file"), "x")
        try Fixture.symlink(tmp("dir"), at: tmp("link"))
        try Fixture.symlink(tmp("nowhere"), at: tmp("dangling"))
        #expect(mkfifo(tmp("fifo"), 0o600) == 0)
        #expect(FileSystem.entryType(tmp("dir")) == .directory)
        #expect(FileSystem.entryType(tmp("file")) == .regular)
        #expect(FileSystem.entryType(tmp("link")) == .symlink)
        #expect(FileSystem.entryType(tmp("dangling")) == .symlink)
        #expect(FileSystem.entryType(tmp("fifo")) == .other)
        #expect(FileSystem.entryType(tmp("nowhere")) == .missing)
        #expect(FileSystem.entryType(tmp("file/below")) == .missing)
    }

    @Test func ownerAndSetOwner() throws {
        let tmp = try TemporaryDirectory()
        try Fixture.writeFile(tmp("file"), "x")
        let original = try FileSystem.owner(tmp("file"))
        #expect(original == FileSystem.Owner(uid: geteuid(), gid: getegid()))

        let other = FileSystem.Owner(uid: 4242, gid: 4343)
        try FileSystem.setOwner(tmp("file"), other)
        #expect(try FileSystem.owner(tmp("file")) == other)
        let st = try Fixture.stat(tmp("file"))
        #expect(st.st_uid == 4242 && st.st_gid == 4343)

        // Links are changed themselves, their targets are not.
        try Fixture.writeFile(tmp("target"), "x")
        try Fixture.symlink(tmp("target"), at: tmp("link"))
        try FileSystem.setOwner(tmp("link"), other)
        #expect(try FileSystem.owner(tmp("link")) == other)
        #expect(try FileSystem.owner(tmp("target")) == original)

        let error = #expect(throws: SystemError.self) { try FileSystem.owner(tmp("missing")) }
        #expect(error?.isNotFound == true)
        let setError = #expect(throws: SystemError.self) { try FileSystem.setOwner(tmp("missing"), other) }
        #expect(setError?.operation == "chown")
    }

    @Test func setModeAndMode() throws {
        let tmp = try TemporaryDirectory()
        try Fixture.writeFile(tmp("file"), "x")
        try FileSystem.setMode(tmp("file"), 0o4751)
        #expect(try FileSystem.mode(tmp("file")) == 0o4751)
        #expect(try Fixture.permissions(tmp("file")) == 0o4751)
    }

    // MARK: - File system facts

    @Test func fileSystemTypeOfProc() throws {
        // PROC_SUPER_MAGIC has no name in the table, so it is shown in hex.
        #expect(try FileSystem.fileSystemType("/proc") == "0x9fa0")
        let error = #expect(throws: SystemError.self) { try FileSystem.fileSystemType("/nonexistent/veneer") }
        #expect(error?.operation == "statfs")
        #expect(error?.isNotFound == true)
    }

    @Test func fileSystemTypeOfTmpAgreesWithTheMountTable() throws {
        let tmp = try TemporaryDirectory()
        let reported = try FileSystem.fileSystemType(tmp.path)
        let mounted = try MountInfoFile.fileSystemType(of: try FileSystem.realPath(tmp.path))
        let names: [String: String] = [
            "ext2": "ext4", "ext3": "ext4", "ext4": "ext4", "xfs": "xfs", "btrfs": "btrfs", "tmpfs": "tmpfs",
            "overlay": "overlay", "zfs": "zfs", "fuse": "fuse", "nfs": "nfs", "nfs4": "nfs", "f2fs": "f2fs",
        ]
        let base = mounted.split(separator: ".").first.map(String.init) ?? mounted
        if let name = names[base] {
            #expect(reported == name, "mount table says \(mounted)")
        } else {
            #expect(reported.hasPrefix("0x"), "mount table says \(mounted)")
        }
        #expect(try FileSystem.availableBytes(tmp.path) > 0)
    }

    @Test func realPathResolvesLinksAndDots() throws {
        let tmp = try TemporaryDirectory()
        let real = try FileSystem.realPath(tmp.path)
        try Fixture.mkdir(tmp("dir"))
        try Fixture.symlink(tmp("dir"), at: tmp("link"))
        #expect(try FileSystem.realPath(tmp("link/../link/.")) == real + "/dir")
        let error = #expect(throws: SystemError.self) { try FileSystem.realPath(tmp("missing")) }
        #expect(error?.operation == "realpath")
    }

}

/// Reads /proc/self/mountinfo directly (independently of the code under test).
enum MountInfoFile {
    /// File system type of the mount holding `path` (the longest mount point that
    /// contains it; the last one mounted wins).
    static func fileSystemType(of path: String) throws -> String {
        guard let data = try FileHandle(forReadingAtPath: "/proc/self/mountinfo")?.readToEnd() else {
            throw SystemError("read", "/proc/self/mountinfo", errno: 5)
        }
        var best: (length: Int, type: String)?
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let fields = halves[0].split(separator: " ")
            let after = halves[1].split(separator: " ")
            guard fields.count > 4, let type = after.first else { continue }
            let mountPoint = String(fields[4])
            let inside = mountPoint == "/" || path == mountPoint || path.hasPrefix(mountPoint + "/")
            if inside, mountPoint.count >= (best?.length ?? -1) {
                best = (mountPoint.count, String(type))
            }
        }
        guard let best else { throw SystemError("find mount of", path, errno: 2) }
        return best.type
    }
}

@Suite("FileSystem.makeDirectories through links")
struct MakeDirectoriesThroughLinksTests {
    @Test func aLinkToADirectoryIsAnExistingDirectory() throws {
        let tmp = try TemporaryDirectory()
        try FileSystem.makeDirectories(tmp("real/dir"))
        try Fixture.symlink(tmp("real"), at: tmp("link"))
        try FileSystem.makeDirectories(tmp("link"))
        try FileSystem.makeDirectories(tmp("link/dir/below"))
        #expect(FileSystem.entryType(tmp("real/dir/below")) == .directory)
        try Fixture.symlink(tmp("missing"), at: tmp("dangling"))
        #expect(throws: SystemError.self) { try FileSystem.makeDirectories(tmp("dangling")) }
    }
}
