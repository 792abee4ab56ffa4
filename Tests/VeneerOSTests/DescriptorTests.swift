import Foundation
import Testing
import VeneerCore
import VeneerOS
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The descriptor-relative operations layers are extracted with, on a real directory.
@Suite("Descriptor: one name at a time, never following a link")
struct DescriptorTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("links are not followed: not opened as directories or files, not written through, not replaced")
    func linksAreNotFollowed() throws {
        let tmp = try TemporaryDirectory(prefix: "vn-fd")
        defer { tmp.remove() }
        try Fixture.mkdir(tmp("root"))
        try Fixture.mkdir(tmp("outside"))
        #expect(symlink(tmp("outside"), tmp("root/up")) == 0)
        #expect(symlink(tmp("outside/made"), tmp("root/dangling")) == 0)
        let root = try Descriptor.openDirectory(tmp("root"))
        for call in [{ _ = try root.openDirectory(Self.bytes("up")) }, { _ = try root.openFile(Self.bytes("up")) }] {
            let error = #expect(throws: SystemError.self) { try call() }
            #expect(error?.errno == ELOOP || error?.errno == ENOTDIR, "\(String(describing: error))")
        }
        let taken = #expect(throws: SystemError.self) { _ = try root.createFile(Self.bytes("dangling"), permissions: 0o644) }
        #expect(taken?.errno == EEXIST)
        #expect(FileManager.default.fileExists(atPath: tmp("outside/made")) == false)
        #expect(throws: SystemError.self) { try root.makeDirectory(Self.bytes("up"), permissions: 0o755) }
        #expect(try root.status(Self.bytes("up"))?.type == .symlink)
        #expect(try root.readLink(Self.bytes("up")) == Self.bytes(tmp("outside")))
        #expect(throws: SystemError.self) { _ = try Descriptor.openDirectory(tmp("root/up")) }
    }

    @Test("a name is one component: a slash, . and .. are refused before any system call", arguments: ["a/b", "..", ".", "", "/etc"])
    func namesAreSingleComponents(_ name: String) throws {
        let tmp = try TemporaryDirectory(prefix: "vn-fd")
        defer { tmp.remove() }
        let root = try Descriptor.openDirectory(tmp.path)
        let error = #expect(throws: SystemError.self) { _ = try root.createFile(Self.bytes(name), permissions: 0o644) }
        #expect(error?.errno == EINVAL)
        #expect(throws: SystemError.self) { _ = try root.openDirectory(Self.bytes(name)) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path).isEmpty)
    }

    @Test("a file's content, owner, setuid mode and nanosecond mtime are set through its descriptor")
    func fileAttributes() throws {
        let tmp = try TemporaryDirectory(prefix: "vn-fd")
        defer { tmp.remove() }
        let root = try Descriptor.openDirectory(tmp.path)
        let file = try root.createFile(Self.bytes("tool"), permissions: 0o600)
        try Self.bytes("hello").withUnsafeBytes { try file.write($0, at: 0) }
        try Self.bytes("world").withUnsafeBytes { try file.write($0, at: 1 << 20) }
        try file.setOwner(uid: 1234, gid: 5678)
        try file.setPermissions(0o4755)
        let time = Timestamp(nanosecondsSinceEpoch: 1_700_000_000_123_456_789)
        try file.setModified(time)
        let status = try #require(try root.status(Self.bytes("tool")))
        #expect(status.type == .regular && status.size == (1 << 20) + 5)
        #expect(status.uid == 1234 && status.gid == 5678 && status.permissions == 0o4755)
        #expect(status.modified == time)
        let again = #expect(throws: SystemError.self) { _ = try root.createFile(Self.bytes("tool"), permissions: 0o644) }
        #expect(again?.errno == EEXIST)
    }

    @Test("whiteout devices, fifos, symlinks with their own owner and time, hard links, xattrs")
    func otherEntries() throws {
        let tmp = try TemporaryDirectory(prefix: "vn-fd")
        defer { tmp.remove() }
        let root = try Descriptor.openDirectory(tmp.path)
        try root.makeNode(Self.bytes("gone"), type: .character, permissions: 0)
        let gone = try #require(try root.status(Self.bytes("gone")))
        #expect(gone.type == .character && gone.deviceMajor == 0 && gone.deviceMinor == 0)
        try root.makeNode(Self.bytes("null"), type: .character, permissions: 0o666, major: 1, minor: 3)
        #expect(try root.status(Self.bytes("null")).map { [$0.deviceMajor, $0.deviceMinor] } == [1, 3])
        try root.makeNode(Self.bytes("big"), type: .block, permissions: 0o600, major: 259, minor: 1 << 19)
        #expect(try root.status(Self.bytes("big")).map { [$0.deviceMajor, $0.deviceMinor] } == [259, 1 << 19])
        let range = #expect(throws: SystemError.self) {
            try root.makeNode(Self.bytes("bad"), type: .character, permissions: 0, major: 4096, minor: 0)
        }
        #expect(range?.errno == EINVAL && range?.detail?.contains("out of range") == true)
        try root.makeNode(Self.bytes("pipe"), type: .fifo, permissions: 0o644)
        #expect(try root.status(Self.bytes("pipe"))?.type == .fifo)

        try root.makeSymlink(Self.bytes("link"), target: Self.bytes("/etc/passwd"))
        let time = Timestamp(nanosecondsSinceEpoch: 1_000_000_000_500)
        try root.setOwner(Self.bytes("link"), uid: 42, gid: 43)
        try root.setModified(Self.bytes("link"), time)
        let link = try #require(try root.status(Self.bytes("link")))
        #expect(link.type == .symlink && link.uid == 42 && link.modified == time)

        let file = try root.createFile(Self.bytes("data"), permissions: 0o644)
        try root.makeHardLink(Self.bytes("alias"), to: Self.bytes("data"), in: root)
        let alias = try #require(try root.status(Self.bytes("alias")))
        #expect(alias.inode == (try file.status().inode) && alias.links == 2)
        // A hard link to a symlink links the symlink, not its target.
        try root.makeHardLink(Self.bytes("link2"), to: Self.bytes("link"), in: root)
        #expect(try root.status(Self.bytes("link2"))?.type == .symlink)

        try root.makeDirectory(Self.bytes("dir"), permissions: 0o755)
        let dir = try root.openDirectory(Self.bytes("dir"))
        #expect(try dir.extendedAttribute("trusted.overlay.opaque") == nil)
        try dir.setExtendedAttribute("trusted.overlay.opaque", Self.bytes("y"))
        #expect(try dir.extendedAttribute("trusted.overlay.opaque") == Self.bytes("y"))
        #expect(Set(try root.entries()) == Set(["gone", "null", "big", "pipe", "link", "data", "alias", "link2", "dir"].map(Self.bytes)))
    }

    @Test("removing a tree deletes what is in it and nothing a link inside points to")
    func removeTree() throws {
        let tmp = try TemporaryDirectory(prefix: "vn-fd")
        defer { tmp.remove() }
        try Fixture.mkdir(tmp("outside"))
        try Fixture.writeFile(tmp("outside/keep"), "keep")
        try Fixture.mkdir(tmp("root"))
        try Fixture.mkdir(tmp("root/tree"))
        try Fixture.mkdir(tmp("root/tree/deep"))
        try Fixture.writeFile(tmp("root/tree/deep/file"), "x")
        #expect(symlink(tmp("outside"), tmp("root/tree/escape")) == 0)
        let root = try Descriptor.openDirectory(tmp("root"))
        try root.removeTree(Self.bytes("tree"))
        try root.removeTree(Self.bytes("missing"))
        #expect(try root.entries().isEmpty)
        #expect(FileManager.default.fileExists(atPath: tmp("outside/keep")))
    }
}
