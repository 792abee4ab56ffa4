import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

#if canImport(Glibc)
import Glibc
#endif

/// Layer semantics as a container sees them: real overlay and bind mounts of what
/// the daemon returns, checked by reading the mounted trees and the layer directories.
@Suite("Overlay semantics")
struct OverlayTests {
    /// Prepares `key` on `parent`, runs `fill` on its mounted tree, commits it as `name`.
    func layer(
        _ daemon: Daemon, _ key: String, parent: String?, name: String, _ fill: (String) throws -> Void
    ) async throws {
        try await withPrepared(daemon, key, parent: parent) { target in try fill(target) }
        _ = try await daemon.client.commit(key, CommitRequest(name: name))
    }

    @Test("files of every parent layer are visible in a child and the nearest layer wins")
    func parentLayersVisible() async throws {
        try await withDaemon { daemon in
            try await layer(daemon, "w1", parent: nil, name: "L1") { t throws in
                try Tree.write(t + "/only-1", "one")
                try Tree.write(t + "/in-1-and-2", "from 1")
                try Tree.write(t + "/in-1-and-3", "from 1")
                try Tree.makeDirectory(t + "/dir")
                try Tree.write(t + "/dir/a", "a from 1")
            }
            try await layer(daemon, "w2", parent: "L1", name: "L2") { t throws in
                try Tree.write(t + "/only-2", "two")
                try Tree.write(t + "/in-1-and-2", "from 2")
                try Tree.write(t + "/dir/b", "b from 2")
            }
            try await layer(daemon, "w3", parent: "L2", name: "L3") { t throws in
                try Tree.write(t + "/only-3", "three")
                try Tree.write(t + "/in-1-and-3", "from 3")
                try Tree.write(t + "/dir/a", "a from 3")
            }
            try await withPrepared(daemon, "child", parent: "L3") { t throws in
                #expect(try Tree.entries(t) == ["dir", "in-1-and-2", "in-1-and-3", "only-1", "only-2", "only-3"])
                #expect(try Tree.read(t + "/only-1") == "one")
                #expect(try Tree.read(t + "/only-2") == "two")
                #expect(try Tree.read(t + "/only-3") == "three")
                #expect(try Tree.read(t + "/in-1-and-2") == "from 2")
                #expect(try Tree.read(t + "/in-1-and-3") == "from 3")
                #expect(try Tree.entries(t + "/dir") == ["a", "b"])
                #expect(try Tree.read(t + "/dir/a") == "a from 3")
                #expect(try Tree.read(t + "/dir/b") == "b from 2")
            }
            // A view on the middle layer sees the stack as it was below L3.
            try await withPrepared(daemon, "view-2", parent: "L2", kind: .view) { t throws in
                #expect(try Tree.entries(t) == ["dir", "in-1-and-2", "in-1-and-3", "only-1", "only-2"])
                #expect(try Tree.read(t + "/in-1-and-2") == "from 2")
                #expect(try Tree.read(t + "/in-1-and-3") == "from 1")
                #expect(try Tree.read(t + "/dir/a") == "a from 1")
            }
        }
    }

    @Test("a file deleted in a child is a whiteout there and still present in the parent")
    func deletionIsAWhiteout() async throws {
        try await withClient { daemon, client in
            try await layer(daemon, "w", parent: nil, name: "P") { t throws in
                try Tree.write(t + "/keep", "kept")
                try Tree.write(t + "/gone", "doomed")
                try Tree.makeDirectory(t + "/dir")
                try Tree.write(t + "/dir/gone-too", "doomed too")
            }
            let child = try await client.prepare(PrepareRequest(key: "child", parent: "P"))
            try await withMounted(daemon, "child") { t throws in
                try Tree.unlinkFile(t + "/gone")
                try Tree.unlinkFile(t + "/dir/gone-too")
                #expect(!Tree.exists(t + "/gone"))
                #expect(!Tree.exists(t + "/dir/gone-too"))
                #expect(try Tree.entries(t) == ["dir", "keep"])
                #expect(try Tree.entries(t + "/dir") == [])
            }
            // Overlay records a deletion as a 0/0 character device in the upper directory.
            let upper = try MountPaths.writableDirectory(child.mounts)
            for name in ["gone", "dir/gone-too"] {
                let st = try Tree.status(upper + "/" + name)
                #expect(Tree.isCharacterDevice(st), "\(name) in the child's layer is not a whiteout")
                #expect(st.st_rdev == 0, "whiteout \(name) has device number \(st.st_rdev), not 0/0")
            }
            // The parent's layer is untouched: seen through a view and through a new child.
            try await withPrepared(daemon, "view", parent: "P", kind: .view) { t throws in
                #expect(try Tree.read(t + "/gone") == "doomed")
                #expect(try Tree.read(t + "/dir/gone-too") == "doomed too")
            }
            try await withPrepared(daemon, "sibling", parent: "P") { t throws in
                #expect(try Tree.entries(t) == ["dir", "gone", "keep"])
                #expect(try Tree.read(t + "/gone") == "doomed")
            }
            // Committed, the whiteout keeps hiding the file from the layers above.
            _ = try await client.commit("child", CommitRequest(name: "P2"))
            try await withPrepared(daemon, "grandchild", parent: "P2") { t throws in
                #expect(try Tree.entries(t) == ["dir", "keep"])
                #expect(try Tree.entries(t + "/dir") == [])
                #expect(try Tree.read(t + "/keep") == "kept")
            }
        }
    }

    @Test("a directory removed and recreated in a child is opaque: only its new contents show")
    func recreatedDirectoryIsOpaque() async throws {
        try await withClient { daemon, client in
            try await layer(daemon, "w", parent: nil, name: "P") { t throws in
                try Tree.makeDirectory(t + "/d")
                try Tree.write(t + "/d/old-1", "old")
                try Tree.write(t + "/d/old-2", "old")
                try Tree.makeDirectory(t + "/d/sub")
                try Tree.write(t + "/d/sub/old-3", "old")
            }
            let child = try await client.prepare(PrepareRequest(key: "child", parent: "P"))
            try await withMounted(daemon, "child") { t throws in
                try Tree.removeTree(t + "/d")
                try Tree.makeDirectory(t + "/d")
                try Tree.write(t + "/d/new", "new")
                #expect(try Tree.entries(t + "/d") == ["new"])
            }
            let upper = try MountPaths.writableDirectory(child.mounts)
            let opaque = try Tree.extendedAttribute(upper + "/d", "trusted.overlay.opaque")
            #expect(opaque == Array("y".utf8), "d in the child's layer is not marked opaque")
            // The parent still has the old contents.
            try await withPrepared(daemon, "view-p", parent: "P", kind: .view) { t throws in
                #expect(try Tree.entries(t + "/d") == ["old-1", "old-2", "sub"])
            }
            // Committed, the opaque directory keeps hiding the old contents.
            _ = try await client.commit("child", CommitRequest(name: "C"))
            try await withPrepared(daemon, "grandchild", parent: "C") { t throws in
                #expect(try Tree.entries(t + "/d") == ["new"])
                #expect(try Tree.read(t + "/d/new") == "new")
                #expect(!Tree.exists(t + "/d/sub/old-3"))
            }
            try await withPrepared(daemon, "view-c", parent: "C", kind: .view) { t throws in
                #expect(try Tree.entries(t + "/d") == ["new"])
            }
        }
    }

    /// Files with every kind of metadata that a layer must keep, written under `prefix`.
    static func writeMetadataSamples(_ t: String, prefix p: String) throws {
        try Tree.write(t + "/\(p)owned", "owned by 1234:5678")
        try Tree.setOwner(t + "/\(p)owned", uid: 1234, gid: 5678)
        try Tree.setMode(t + "/\(p)owned", 0o600)
        try Tree.write(t + "/\(p)rootfile", "owned by root")
        try Tree.setOwner(t + "/\(p)rootfile", uid: 0, gid: 0)
        try Tree.setMode(t + "/\(p)rootfile", 0o755)
        try Tree.write(t + "/\(p)setuid", "setuid")
        // chown clears setuid, so the owner comes first.
        try Tree.setOwner(t + "/\(p)setuid", uid: 0, gid: 0)
        try Tree.setMode(t + "/\(p)setuid", 0o4755)
        try Tree.makeDirectory(t + "/\(p)sticky")
        try Tree.setMode(t + "/\(p)sticky", 0o1777)
        try Tree.symlink("\(p)owned", at: t + "/\(p)link")
        try Tree.setOwner(t + "/\(p)link", uid: 1234, gid: 5678)
        try Tree.symlink("/nowhere/\(p)dangling", at: t + "/\(p)dangling")
        try Tree.hardLink(t + "/\(p)rootfile", at: t + "/\(p)hard")
        try Tree.write(t + "/\(p)dated", "dated")
        try Tree.setModificationTime(t + "/\(p)dated", seconds: 1_000_000_000, nanoseconds: 123_456_789)
        try Tree.makeDirectory(t + "/\(p)olddir")
        try Tree.write(t + "/\(p)olddir/inside", "inside")
        try Tree.setModificationTime(t + "/\(p)olddir", seconds: 987_654_321, nanoseconds: 5)
    }

    /// Checks what `writeMetadataSamples` wrote, as seen at `t`.
    static func checkMetadataSamples(_ t: String, prefix p: String, ownedMode: mode_t = 0o600) throws {
        let owned = try Tree.status(t + "/\(p)owned")
        #expect(Tree.isRegular(owned))
        #expect(owned.st_uid == 1234 && owned.st_gid == 5678, "\(p)owned is \(owned.st_uid):\(owned.st_gid)")
        #expect(Tree.permissions(owned) == ownedMode, "\(p)owned has mode \(String(Tree.permissions(owned), radix: 8))")
        #expect(try Tree.read(t + "/\(p)owned") == "owned by 1234:5678")

        let rootfile = try Tree.status(t + "/\(p)rootfile")
        #expect(rootfile.st_uid == 0 && rootfile.st_gid == 0)
        #expect(Tree.permissions(rootfile) == 0o755)
        #expect(try Tree.read(t + "/\(p)rootfile") == "owned by root")

        let setuid = try Tree.status(t + "/\(p)setuid")
        #expect(setuid.st_uid == 0 && setuid.st_gid == 0)
        #expect(Tree.permissions(setuid) == 0o4755, "\(p)setuid has mode \(String(Tree.permissions(setuid), radix: 8))")

        let sticky = try Tree.status(t + "/\(p)sticky")
        #expect(Tree.isDirectory(sticky))
        #expect(Tree.permissions(sticky) == 0o1777, "\(p)sticky has mode \(String(Tree.permissions(sticky), radix: 8))")

        let link = try Tree.status(t + "/\(p)link")
        #expect(Tree.isSymlink(link))
        #expect(link.st_uid == 1234 && link.st_gid == 5678, "\(p)link is \(link.st_uid):\(link.st_gid)")
        #expect(try Tree.readLink(t + "/\(p)link") == "\(p)owned")
        #expect(try Tree.readLink(t + "/\(p)dangling") == "/nowhere/\(p)dangling")

        let hard = try Tree.status(t + "/\(p)hard")
        #expect(hard.st_ino == rootfile.st_ino, "\(p)hard and \(p)rootfile are not the same inode")
        #expect(hard.st_nlink == 2 && rootfile.st_nlink == 2)

        let dated = try Tree.status(t + "/\(p)dated")
        #expect(dated.st_mtim.tv_sec == 1_000_000_000 && dated.st_mtim.tv_nsec == 123_456_789,
            "\(p)dated has mtime \(dated.st_mtim.tv_sec).\(dated.st_mtim.tv_nsec)")
        let olddir = try Tree.status(t + "/\(p)olddir")
        #expect(olddir.st_mtim.tv_sec == 987_654_321 && olddir.st_mtim.tv_nsec == 5,
            "\(p)olddir has mtime \(olddir.st_mtim.tv_sec).\(olddir.st_mtim.tv_nsec)")
        #expect(try Tree.read(t + "/\(p)olddir/inside") == "inside")
    }

    @Test("commit keeps content, owners, modes, links and times, in a plain and in an overlay layer")
    func commitPreservesMetadata() async throws {
        try await withClient { daemon, client in
            // First layer written through a bind mount, second through an overlay.
            try await layer(daemon, "w1", parent: nil, name: "L1") { t throws in
                try Self.writeMetadataSamples(t, prefix: "a-")
            }
            try await layer(daemon, "w2", parent: "L1", name: "L2") { t throws in
                try Self.writeMetadataSamples(t, prefix: "b-")
                // A metadata change to a file of the layer below.
                try Tree.setMode(t + "/a-owned", 0o640)
            }
            try await withPrepared(daemon, "child", parent: "L2") { t throws in
                try Self.checkMetadataSamples(t, prefix: "a-", ownedMode: 0o640)
                try Self.checkMetadataSamples(t, prefix: "b-")
            }
            // The first layer alone still has the original mode.
            try await withPrepared(daemon, "view", parent: "L1", kind: .view) { t throws in
                try Self.checkMetadataSamples(t, prefix: "a-")
                #expect(!Tree.exists(t + "/b-owned"))
            }
        }
    }

    @Test("the fs directory of a new snapshot is owned like its parent's and has mode 0755")
    func rootOwnershipFollowsParent() async throws {
        try await withClient { daemon, client in
            let base = try await client.prepare(PrepareRequest(key: "base"))
            let baseDir = try MountPaths.writableDirectory(base.mounts)
            let fresh = try Tree.status(baseDir)
            #expect(fresh.st_uid == 0 && fresh.st_gid == 0)
            #expect(Tree.permissions(fresh) == 0o755)

            try await withMounted(daemon, "base") { t throws in
                try Tree.setOwner(t, uid: 4321, gid: 8765)
            }
            _ = try await client.commit("base", CommitRequest(name: "L1"))
            let child = try await client.prepare(PrepareRequest(key: "child", parent: "L1"))
            let childDir = try MountPaths.writableDirectory(child.mounts)
            #expect(childDir != baseDir)
            let st = try Tree.status(childDir)
            #expect(st.st_uid == 4321 && st.st_gid == 8765, "child's fs is \(st.st_uid):\(st.st_gid)")
            #expect(Tree.permissions(st) == 0o755, "child's fs has mode \(String(Tree.permissions(st), radix: 8))")

            // Changed again through the overlay, the owner passes on to the next layer.
            try await withMounted(daemon, "child") { t throws in
                let root = try Tree.status(t)
                #expect(root.st_uid == 4321 && root.st_gid == 8765)
                try Tree.setOwner(t, uid: 2468, gid: 1357)
            }
            _ = try await client.commit("child", CommitRequest(name: "L2"))
            let grandchild = try await client.prepare(PrepareRequest(key: "grandchild", parent: "L2"))
            let grand = try Tree.status(try MountPaths.writableDirectory(grandchild.mounts))
            #expect(grand.st_uid == 2468 && grand.st_gid == 1357, "grandchild's fs is \(grand.st_uid):\(grand.st_gid)")
            #expect(Tree.permissions(grand) == 0o755)
            try await withMounted(daemon, "grandchild") { t throws in
                let root = try Tree.status(t)
                #expect(root.st_uid == 2468 && root.st_gid == 1357)
            }
        }
    }

    /// Expects every kind of write at `t` to fail with EROFS.
    static func expectReadOnly(_ t: String, existing: String) {
        #expect(Tree.createErrno(t + "/new-file") == EROFS)
        #expect(Tree.errnoOf { mkdir(t + "/new-dir", 0o755) } == EROFS)
        #expect(Tree.errnoOf { unlink(t + "/" + existing) } == EROFS)
        #expect(Tree.errnoOf { chmod(t + "/" + existing, 0o600) } == EROFS)
        #expect(Tree.errnoOf { open(t + "/" + existing, O_WRONLY | O_APPEND | O_CLOEXEC) } == EROFS)
    }

    @Test("views are read-only: without a parent, on one parent and on a chain of parents")
    func viewsRefuseWrites() async throws {
        try await withClient { daemon, client in
            try await layer(daemon, "w1", parent: nil, name: "L1") { t throws in
                try Tree.write(t + "/f", "from 1")
            }
            try await layer(daemon, "w2", parent: "L1", name: "L2") { t throws in
                try Tree.write(t + "/g", "from 2")
            }

            // No parent: a read-only bind of the view's own empty layer.
            let none = try await client.prepare(PrepareRequest(key: "v0", kind: .view))
            #expect(none.mounts.count == 1 && none.mounts.first?.type == "bind")
            #expect(none.mounts.first?.options.contains("ro") == true)
            try Tree.write(try MountPaths.writableDirectory(none.mounts) + "/planted", "x")
            try await withMounted(daemon, "v0") { t throws in
                #expect(try Tree.entries(t) == ["planted"])
                Self.expectReadOnly(t, existing: "planted")
            }

            // One parent: a read-only bind of the parent's layer.
            let one = try await client.prepare(PrepareRequest(key: "v1", parent: "L1", kind: .view))
            #expect(one.mounts.count == 1 && one.mounts.first?.type == "bind")
            #expect(one.mounts.first?.options.contains("ro") == true)
            try await withMounted(daemon, "v1") { t throws in
                #expect(try Tree.entries(t) == ["f"])
                Self.expectReadOnly(t, existing: "f")
            }

            // A chain: an overlay with lower directories only.
            let chain = try await client.prepare(PrepareRequest(key: "v2", parent: "L2", kind: .view))
            #expect(chain.mounts.count == 1 && chain.mounts.first?.type == "overlay")
            if let mount = chain.mounts.first {
                #expect(MountPaths.option("upperdir", in: mount) == nil)
                #expect(MountPaths.option("workdir", in: mount) == nil)
                #expect(MountPaths.lowerDirectories(chain.mounts).count == 2)
            }
            try await withMounted(daemon, "v2") { t throws in
                #expect(try Tree.entries(t) == ["f", "g"])
                Self.expectReadOnly(t, existing: "g")
            }

            // Nothing leaked into the layers.
            try await withPrepared(daemon, "check", parent: "L2") { t throws in
                #expect(try Tree.entries(t) == ["f", "g"])
                #expect(try Tree.read(t + "/f") == "from 1")
                #expect(try Tree.read(t + "/g") == "from 2")
            }
        }
    }

    @Test("a chain of 128 layers mounts with every layer's files, overrides and deletions")
    func deepChain() async throws {
        let started = ContinuousClock.now
        try await withClient { daemon, client in
            let depth = 128
            var parent: String?
            for n in 1...depth {
                let key = "w\(n)"
                let prepared = try await client.prepare(PrepareRequest(key: key, parent: parent))
                if n == 100 {
                    // Through a real mount, so that the deletion becomes a whiteout.
                    try await withLongMounted(daemon, key) { t throws in
                        #expect(try Tree.read(t + "/extra-64") == "extra")
                        try Tree.unlinkFile(t + "/extra-64")
                        try Tree.write(t + "/layer-\(n)", "content of layer \(n)")
                        try Tree.write(t + "/top", "\(n)")
                    }
                } else {
                    let dir = try MountPaths.writableDirectory(prepared.mounts)
                    try Tree.write(dir + "/layer-\(n)", "content of layer \(n)")
                    try Tree.write(dir + "/top", "\(n)")
                    if n == 64 { try Tree.write(dir + "/extra-64", "extra") }
                }
                let name = "L\(n)"
                _ = try await client.commit(key, CommitRequest(name: name))
                parent = name
            }
            let top = try await client.prepare(PrepareRequest(key: "top", parent: parent))
            #expect(MountPaths.lowerDirectories(top.mounts).count == depth)
            try await withLongMounted(daemon, "top") { t throws in
                let expected = ((1...depth).map { "layer-\($0)" } + ["top"]).sorted()
                #expect(try Tree.entries(t) == expected)
                for n in 1...depth {
                    let text = try Tree.read(t + "/layer-\(n)")
                    #expect(text == "content of layer \(n)", "layer-\(n) reads \(text)")
                }
                #expect(try Tree.read(t + "/top") == "\(depth)")
                #expect(!Tree.exists(t + "/extra-64"))
            }
            // Below the deletion, the file is still there.
            _ = try await client.prepare(PrepareRequest(key: "view-99", parent: "L99", kind: .view))
            try await withLongMounted(daemon, "view-99") { t throws in
                #expect(try Tree.read(t + "/extra-64") == "extra")
                #expect(try Tree.read(t + "/top") == "99")
            }
        }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed < .seconds(30), "the 128-layer chain took \(elapsed)")
    }

    @Test("usage counts an active layer's bytes and inodes and is kept at commit")
    func usage() async throws {
        try await withClient { daemon, client in
            let mib = 1 << 20
            let prepared = try await client.prepare(PrepareRequest(key: "active"))
            let dir = try MountPaths.writableDirectory(prepared.mounts)
            let empty = try await client.usage("active")
            #expect(empty.inodes == 1, "an empty layer holds its root directory only, got \(empty.inodes)")

            try await withMounted(daemon, "active") { t throws in
                try Tree.write(t + "/big", bytes: (0..<mib).map { UInt8(truncatingIfNeeded: $0 &* 31) })
                try Tree.hardLink(t + "/big", at: t + "/big-link")
                try Tree.write(t + "/small-1", "1")
                try Tree.write(t + "/small-2", "2")
                try Tree.makeDirectory(t + "/sub")
                try Tree.write(t + "/sub/small-3", "3")
            }
            let active = try await client.usage("active")
            // Root, big (its hard link counted once), two small files, sub and the file in it.
            #expect(active.inodes == 6, "inodes: \(active.inodes)")
            #expect(active.size >= Int64(mib), "size: \(active.size)")
            #expect(active.size < Int64(mib + 256 * 1024), "the hard link was counted twice? size: \(active.size)")

            _ = try await client.commit("active", CommitRequest(name: "layer"))
            let committed = try await client.usage("layer")
            #expect(committed == active)

            // Writes in a new child count for the child only.
            let child = try await client.prepare(PrepareRequest(key: "child", parent: "layer"))
            try await withMounted(daemon, "child") { t throws in
                try Tree.write(t + "/child-big", bytes: [UInt8](repeating: 7, count: 2 * mib))
            }
            #expect(try await client.usage("layer") == committed)
            let childUsage = try await client.usage("child")
            #expect(childUsage.inodes == 2, "child inodes: \(childUsage.inodes)")
            #expect(childUsage.size >= Int64(2 * mib))

            // The committed figure is stored, not measured again: growing the layer's
            // directory behind the daemon's back does not change it.
            #expect(MountPaths.lowerDirectories(child.mounts) == [dir])
            try Tree.write(dir + "/behind-the-back", bytes: [UInt8](repeating: 1, count: mib))
            #expect(try await client.usage("layer") == committed)
        }
    }
}
