import Foundation
import Testing
import VeneerCore
import VeneerOS
import VeneerTestSupport

@testable import VeneerService

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Layers written by Python's tarfile from a list of entries, applied to an empty
/// directory, and the result read back with lstat and getxattr.
@Suite("Applying a layer's entries to an empty directory")
struct LayerApplierTests {
    /// One entry for the Python script: (name, type, extra) where type is a tarfile
    /// type letter and extra holds linkname, data, mode, uid, gid, mtime, xattrs, devices.
    struct Entry {
        var name: String
        var type = "0"
        var link = ""
        var data = ""
        var mode = 0o644
        var uid = 0
        var gid = 0
        var mtime = "1000"
        var xattrs: [String: String] = [:]
        var major = 0
        var minor = 0

        var json: String {
            let x = xattrs.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ")
            return """
                {"name": \(Self.quote(name)), "type": "\(type)", "link": \(Self.quote(link)), "data": \(Self.quote(data)), \
                "mode": \(mode), "uid": \(uid), "gid": \(gid), "mtime": "\(mtime)", "xattrs": {\(x)}, "major": \(major), "minor": \(minor)}
                """
        }

        static func quote(_ text: String) -> String {
            "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n") + "\""
        }
    }

    static func dir(_ name: String, mode: Int = 0o755, mtime: String = "1000") -> Entry {
        Entry(name: name, type: "5", mode: mode, mtime: mtime)
    }

    static func file(_ name: String, _ data: String = "", mode: Int = 0o644) -> Entry {
        Entry(name: name, data: data, mode: mode)
    }

    static func symlink(_ name: String, _ target: String) -> Entry {
        Entry(name: name, type: "2", link: target, mode: 0o777)
    }

    static func hardlink(_ name: String, _ target: String) -> Entry {
        Entry(name: name, type: "1", link: target)
    }

    /// The tar of `entries`, made by Python's tarfile (PAX).
    static func tar(_ entries: [Entry], in dir: String) throws -> [UInt8] {
        let script = #"""
            import io, json, sys, tarfile
            entries = json.loads(sys.argv[2])
            with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as tar:
                for e in entries:
                    t = tarfile.TarInfo(e["name"])
                    t.type = e["type"].encode()
                    t.linkname = e["link"]
                    t.mode = e["mode"]; t.uid = e["uid"]; t.gid = e["gid"]
                    t.devmajor = e["major"]; t.devminor = e["minor"]
                    headers = {"mtime": e["mtime"]}
                    for k, v in e["xattrs"].items():
                        headers["SCHILY.xattr." + k] = v
                    t.pax_headers = headers
                    data = e["data"].encode()
                    if t.type == tarfile.REGTYPE:
                        t.size = len(data)
                        tar.addfile(t, io.BytesIO(data))
                    else:
                        tar.addfile(t)
            """#
        let path = dir + "/layer.tar"
        let list = "[" + entries.map(\.json).joined(separator: ", ") + "]"
        let made = try ProcessRun.run("/usr/bin/python3", ["-c", script, path, list])
        guard made.succeeded else { throw TestFailure("python3 tarfile: \(made)") }
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Applies `entries` to `<tmp>/<directory>` (made here) on the layers `lowers`
    /// (nearest first) and returns the directory's path.
    @discardableResult
    static func apply(
        _ entries: [Entry], in tmp: TemporaryDirectory, directory: String = "root", lowers: [String] = [],
        userXattr: Bool = false
    ) throws -> String {
        let bytes = try tar(entries, in: tmp.path)
        let rootPath = tmp(directory)
        if !FileManager.default.fileExists(atPath: rootPath) { try FileSystem.makeDirectory(rootPath, mode: 0o755) }
        var offset = 0
        let reader = try LayerReader(
            compression: .none,
            source: {
                let end = min(offset + 4096, bytes.count)
                defer { offset = end }
                return Array(bytes[offset..<end])
            }, compressed: { _ in }, tar: { _ in })
        let applier = LayerApplier(
            root: try Descriptor.openDirectory(rootPath), lowers: try lowers.map { try Descriptor.openDirectory($0) },
            userXattr: userXattr)
        while let entry = try reader.next() {
            try applier.apply(entry, from: reader)
        }
        try applier.finish()
        return rootPath
    }

    static func lstatus(_ path: String) -> stat? {
        var st = stat()
        return lstat(path, &st) == 0 ? st : nil
    }

    /// An extended attribute of `path` itself, read by Python (independent of the code
    /// under test), or nil when it has none of that name.
    static func xattr(_ path: String, _ name: String) -> String? {
        let script = """
            import os, sys
            try:
                sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False).decode())
            except OSError:
                sys.exit(3)
            """
        guard let run = try? ProcessRun.run("/usr/bin/python3", ["-c", script, path, name]), run.succeeded else { return nil }
        return run.stdout
    }

    @Test("files, directories, links, devices and their attributes come out as the layer has them")
    func entriesAndAttributes() throws {
        let tmp = try TemporaryDirectory(prefix: "vn-apply")
        defer { tmp.remove() }
        var tool = Self.file("usr/bin/tool", "#!/bin/sh\n", mode: 0o4755)
        tool.uid = 12
        tool.gid = 34
        tool.mtime = "1700000000.123456789"
        tool.xattrs = ["user.note": "kept", "trusted.overlay.opaque": "y", "user.overlay.redirect": "x", "trusted.evil": "1"]
        var null = Entry(name: "dev/null", type: "3", mode: 0o666, major: 1, minor: 3)
        null.uid = 0
        let root = try Self.apply(
            [
                Self.dir("usr", mtime: "2000.5"), Self.dir("usr/bin", mtime: "3000"), tool,
                Self.symlink("usr/bin/sh", "/bin/busybox"), Self.hardlink("usr/bin/tool2", "usr/bin/tool"),
                Entry(name: "run/pipe", type: "6", mode: 0o640), null,
            ], in: tmp)
        let st = try #require(Self.lstatus(root + "/usr/bin/tool"))
        #expect(st.st_mode & 0o7777 == 0o4755 && st.st_uid == 12 && st.st_gid == 34)
        #expect(st.st_mtim.tv_sec == 1_700_000_000 && st.st_mtim.tv_nsec == 123_456_789)
        #expect(try String(contentsOfFile: root + "/usr/bin/tool", encoding: .utf8) == "#!/bin/sh\n")
        #expect(Self.xattr(root + "/usr/bin/tool", "user.note") == "kept")
        #expect(Self.xattr(root + "/usr/bin/tool", "trusted.overlay.opaque") == nil)
        #expect(Self.xattr(root + "/usr/bin/tool", "user.overlay.redirect") == nil)
        #expect(Self.xattr(root + "/usr/bin/tool", "trusted.evil") == nil)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/usr/bin/sh") == "/bin/busybox")
        #expect(Self.lstatus(root + "/usr/bin/tool2")?.st_ino == st.st_ino)
        #expect(Self.lstatus(root + "/run/pipe").map { $0.st_mode & S_IFMT } == S_IFIFO)
        #expect(Self.lstatus(root + "/run/pipe").map { $0.st_mode & 0o7777 } == 0o640)
        let device = try #require(Self.lstatus(root + "/dev/null"))
        #expect(device.st_mode & S_IFMT == S_IFCHR && device.st_rdev == (1 << 8 | 3))
        // Directory times are the layer's, set after the children went in.
        #expect(Self.lstatus(root + "/usr").map { [Int($0.st_mtim.tv_sec), $0.st_mtim.tv_nsec] } == [2000, 500_000_000])
        #expect(Self.lstatus(root + "/usr/bin")?.st_mtim.tv_sec == 3000)
        // Implied parents are made.
        #expect(Self.lstatus(root + "/run").map { $0.st_mode & S_IFMT } == S_IFDIR)
    }

    @Test("whiteouts become 0/0 devices unless the layer has the name; opaque markers mark their directory", arguments: [false, true])
    func whiteoutsAndOpaque(_ userXattr: Bool) throws {
        let tmp = try TemporaryDirectory(prefix: "vn-apply")
        defer { tmp.remove() }
        let root = try Self.apply(
            [
                Self.file("etc/.wh.passwd"), Self.file("keep", "mine"), Self.file(".wh.keep"),
                Self.file("var/lib/x", "x"), Self.file("var/.wh..wh..opq"), Self.file(".wh.later"), Self.file("later", "back"),
            ], in: tmp, userXattr: userXattr)
        let whiteout = try #require(Self.lstatus(root + "/etc/passwd"))
        #expect(whiteout.st_mode & S_IFMT == S_IFCHR && whiteout.st_rdev == 0)
        #expect(try String(contentsOfFile: root + "/keep", encoding: .utf8) == "mine")
        #expect(try String(contentsOfFile: root + "/later", encoding: .utf8) == "back")
        let prefix = userXattr ? "user.overlay." : "trusted.overlay."
        #expect(Self.xattr(root + "/var", prefix + "opaque") == "y")
        #expect(Self.xattr(root + "/var", (userXattr ? "trusted.overlay." : "user.overlay.") + "opaque") == nil)
        #expect(try String(contentsOfFile: root + "/var/lib/x", encoding: .utf8) == "x")
        #expect(Self.lstatus(root + "/.wh.keep") == nil && Self.lstatus(root + "/var/.wh..wh..opq") == nil)
    }

    @Test("links that point out of the layer are resolved inside it; nothing outside is touched")
    func hostileLinks() throws {
        let tmp = try TemporaryDirectory(prefix: "vn-apply")
        defer { tmp.remove() }
        let outside = tmp("outside")
        try FileSystem.makeDirectory(outside, mode: 0o755)
        try "untouched".write(toFile: outside + "/keep", atomically: false, encoding: .utf8)
        let root = try Self.apply(
            [
                Self.symlink("abs", outside), Self.file("abs/planted", "a"),
                Self.symlink("rel", "../../../../../../.." + outside), Self.file("rel/planted2", "b"),
                Self.symlink("chain1", "chain2"), Self.symlink("chain2", "../.."), Self.file("chain1/top", "c"),
                Self.symlink("swap", outside + "/keep"), Self.file("swap", "replaced the link"),
                Self.symlink("wo", outside), Self.file("wo/.wh.keep"),
            ], in: tmp)
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside) == ["keep"])
        #expect(try String(contentsOfFile: outside + "/keep", encoding: .utf8) == "untouched")
        #expect(try String(contentsOfFile: root + outside + "/planted", encoding: .utf8) == "a")
        #expect(try String(contentsOfFile: root + outside + "/planted2", encoding: .utf8) == "b")
        #expect(try String(contentsOfFile: root + "/top", encoding: .utf8) == "c")
        #expect(Self.lstatus(root + "/swap").map { $0.st_mode & S_IFMT } == S_IFREG)
        #expect(Self.lstatus(root + outside + "/keep").map { $0.st_mode & S_IFMT } == S_IFCHR)
    }

    @Test(
        "entries that cannot be made inside the layer are refused with their index",
        arguments: [
            ([Self.file("../escape")], 0, "\"..\""),
            ([Self.file("ok"), Self.hardlink("h", "/etc/passwd")], 1, "not in the layer"),
            ([Self.hardlink("h", "../../etc/passwd")], 0, "\"..\""),
            ([Self.symlink("loop", "loop"), Self.file("loop/x")], 1, "symbolic links"),
            ([Self.file("f", "x"), Self.file("f/child")], 1, "not a directory"),
            ([Entry(name: "dev/huge", type: "3", major: 5000, minor: 1)], 0, "out of range"),
            ([Self.dir("d"), Self.hardlink("h", "d")], 1, "directory"),
        ])
    func refusals(_ entries: [Entry], _ index: Int, _ reason: String) throws {
        let tmp = try TemporaryDirectory(prefix: "vn-apply")
        defer { tmp.remove() }
        let error = #expect(throws: VeneerError.self) { try Self.apply(entries, in: tmp) }
        #expect(error?.code == .invalidArgument, "\(String(describing: error))")
        #expect(error?.message.contains("layer entry \(index)") == true, "\(String(describing: error))")
        #expect(error?.message.contains(reason) == true, "\(String(describing: error))")
    }

    @Test("on lower layers: parents copied up or followed through the lower layers' links, hard links to their files copied up, whiteouts and opaque directories as the mounted overlay shows")
    func onLowerLayers() throws {
        let tmp = try TemporaryDirectory(prefix: "vn-apply")
        defer { tmp.remove() }
        var usr = Self.dir("usr", mode: 0o751)
        usr.uid = 5
        let lower = try Self.apply(
            [
                usr, Self.dir("usr/lib"), Self.file("usr/lib/old", "old"), Self.symlink("lib", "usr/lib"),
                Self.file("etc/passwd", "root:x:0:0"), Self.file("var/cache", "c"), Self.file("top", "t"),
                Self.file("opt/a", "a"), Self.file("srv/kept", "k"),
            ], in: tmp, directory: "lower")
        let upper = try Self.apply(
            [
                Self.file("lib/new", "new"), Self.hardlink("etc/alias", "etc/passwd"), Self.file(".wh.top"),
                Self.file("opt/.wh..wh..opq"), Self.file("opt/b", "b"), Self.file(".wh.var"), Self.file("var/fresh", "f"),
            ], in: tmp, directory: "upper", lowers: [lower])
        // In the layer itself.
        let copied = try #require(Self.lstatus(upper + "/usr"))
        #expect(copied.st_mode & 0o7777 == 0o751 && copied.st_uid == 5)
        #expect(Self.lstatus(upper + "/lib") == nil, "the lower layer's link was followed, not replaced")
        #expect(try String(contentsOfFile: upper + "/usr/lib/new", encoding: .utf8) == "new")
        #expect(Self.lstatus(upper + "/usr/lib/old") == nil)
        #expect(Self.lstatus(upper + "/etc/alias")?.st_ino == Self.lstatus(upper + "/etc/passwd")?.st_ino)
        #expect(try String(contentsOfFile: upper + "/etc/passwd", encoding: .utf8) == "root:x:0:0")
        #expect(Self.lstatus(upper + "/top").map { $0.st_mode & S_IFMT } == S_IFCHR)
        #expect(Self.xattr(upper + "/opt", "trusted.overlay.opaque") == "y")
        #expect(Self.xattr(upper + "/var", "trusted.overlay.opaque") == "y")
        #expect(Self.lstatus(upper + "/srv") == nil)

        // Through a real overlay mount.
        let merged = tmp("merged")
        let work = tmp("work")
        try FileSystem.makeDirectory(merged, mode: 0o755)
        try FileSystem.makeDirectory(work, mode: 0o700)
        let mount = try ProcessRun.run(
            "/bin/mount", ["-t", "overlay", "overlay", "-o", "lowerdir=\(lower),upperdir=\(upper),workdir=\(work)", merged])
        try #require(mount.succeeded, "\(mount)")
        defer { _ = try? ProcessRun.run("/bin/umount", [merged]) }
        #expect(try String(contentsOfFile: merged + "/lib/new", encoding: .utf8) == "new")
        #expect(try String(contentsOfFile: merged + "/usr/lib/old", encoding: .utf8) == "old")
        #expect(try String(contentsOfFile: merged + "/etc/alias", encoding: .utf8) == "root:x:0:0")
        #expect(FileManager.default.fileExists(atPath: merged + "/top") == false)
        #expect(try FileManager.default.contentsOfDirectory(atPath: merged + "/opt") == ["b"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: merged + "/var") == ["fresh"])
        #expect(try String(contentsOfFile: merged + "/srv/kept", encoding: .utf8) == "k")
    }

    @Test("an opaque marker at the root deletes the lower layers' top-level names, and keeps the layer's own")
    func opaqueRoot() throws {
        let tmp = try TemporaryDirectory(prefix: "vn-apply")
        defer { tmp.remove() }
        let lower = try Self.apply([Self.file("a", "a"), Self.file("b", "b"), Self.file("c/d", "d")], in: tmp, directory: "lower")
        let upper = try Self.apply(
            [Self.file("b", "mine"), Self.file(".wh..wh..opq"), Self.file("e", "e")], in: tmp, directory: "upper", lowers: [lower])
        for name in ["a", "c"] {
            #expect(Self.lstatus(upper + "/" + name).map { $0.st_mode & S_IFMT } == S_IFCHR, "\(name)")
        }
        #expect(try String(contentsOfFile: upper + "/b", encoding: .utf8) == "mine")
        #expect(try String(contentsOfFile: upper + "/e", encoding: .utf8) == "e")
    }
}
