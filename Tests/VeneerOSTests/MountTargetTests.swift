import Foundation
import Synchronization
import Testing
import VeneerTestSupport
import VeneerCore
import VeneerOS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A target swapped for a symbolic link while it is being mounted: every mount that
/// succeeds is on the directory that was checked, at the target's path, and nothing is
/// ever mounted where the link points.
@Suite("Mount targets under a swap race", .serialized)
struct MountTargetTests {
    enum Kind: String, CaseIterable, Sendable {
        case bind, overlayLibmount, overlayNewMountAPI, overlayDescriptorPaths
    }

    @Test(arguments: Kind.allCases)
    func aTargetSwappedWithALinkIsNeverMountedElsewhere(kind: Kind) throws {
        if kind == .overlayNewMountAPI && !Mounter.probeNewMountAPI() { return }
        let box = try MountSandbox()
        defer { Self.detachEverything(under: box.path) }
        let source = try box.directory("src", holding: "marker", "source")
        let upper = try box.directory("upper")
        let work = try box.directory("work")
        let elsewhere = try box.directory("elsewhere")
        let parent = try box.directory("race")
        let target = try box.directory("race/t")
        let link = parent + "/l"
        guard symlink(elsewhere, link) == 0 else { throw TestFailure("symlink: errno \(errno)") }

        let swapper = Swapper(target, link)
        swapper.start()
        // Wait for the first swap.
        var st = stat()
        for _ in 0..<100_000 where !(lstat(target, &st) == 0 && st.st_mode & S_IFMT == S_IFLNK) { usleep(10) }
        var mounted = 0
        var refused = 0
        // Until ten mounts went through the race (the swaps refuse most attempts).
        while mounted < 10 && refused < 5000 {
            do {
                switch kind {
                case .bind:
                    try Mounter.mount(Mount(type: "bind", source: source, options: ["rbind"]), at: target)
                case .overlayLibmount:
                    try Mounter.mountOverlay(lowers: [source], upper: upper, work: work, at: target, method: .libmount)
                case .overlayNewMountAPI:
                    try Mounter.mountOverlay(lowers: [source], upper: upper, work: work, at: target, method: .newMountAPI)
                case .overlayDescriptorPaths:
                    try Mounter.mountOverlay(
                        lowers: [source], upper: upper, work: work, at: target, method: .descriptorPaths)
                }
            } catch {
                refused += 1
                #expect(Self.mountPoints(under: box.path).isEmpty, "a refused mount left \(Self.mountPoints(under: box.path))")
                continue
            }
            mounted += 1
            // A mount point cannot be renamed, so the swapping stops while it is mounted.
            #expect(Self.mountPoints(under: box.path) == [target])
            #expect(try MountFixture.read(target + "/marker") == "source")
            #expect(!FileManager.default.fileExists(atPath: elsewhere + "/marker"))
            try Mounter.unmount(target)
        }
        swapper.stop()
        #expect(mounted == 10, "only \(mounted) mounts succeeded in \(refused + mounted) attempts")
        #expect(refused > 0, "the swaps never got in the way of a mount")
        #expect(swapper.swaps > 0, "the race never swapped the target")
        #expect(Self.mountPoints(under: box.path).isEmpty)
    }

    /// Swaps two paths in a loop on its own thread until stopped.
    final class Swapper: Sendable {
        private let state = Mutex((running: true, swaps: 0))
        private let done = DispatchSemaphore(value: 0)
        let a: String
        let b: String

        init(_ a: String, _ b: String) {
            self.a = a
            self.b = b
        }

        var swaps: Int { state.withLock { $0.swaps } }

        func start() {
            Thread {
                var swaps = 0
                while self.state.withLock({ $0.running }) {
                    if (try? FileSystem.exchange(self.a, self.b)) != nil { swaps += 1 }
                }
                let total = swaps
                self.state.withLock { $0.swaps = total }
                self.done.signal()
            }.start()
        }

        func stop() {
            state.withLock { $0.running = false }
            done.wait()
        }
    }

    static func mountPoints(under path: String) -> [String] {
        ((try? MountTable.current()) ?? []).map(\.target).filter { $0.hasPrefix(path + "/") }
    }

    static func detachEverything(under path: String) {
        for _ in 0..<64 {
            let points = mountPoints(under: path)
            if points.isEmpty { return }
            for point in points.reversed() { _ = umount2(point, Int32(MNT_DETACH)) }
        }
    }
}

/// Tree removal and disk usage stop at mount points.
@Suite("Tree walks that never cross a mount", .serialized)
struct TreeWalkMountTests {
    @Test func removeTreeLeavesAMountInsideAndWhatItHolds() throws {
        let box = try MountSandbox()
        defer { MountTargetTests.detachEverything(under: box.path) }
        let victim = try box.directory("victim", holding: "precious", "keep me")
        let doomed = try box.directory("doomed/a/b", holding: "junk", "delete me")
        let inner = try box.directory("doomed/a/mnt")
        try Mounter.mount(Mount(type: "bind", source: victim, options: ["bind"]), at: inner)

        // doomed, a, b, junk and the mount point; not what is mounted there.
        #expect(try FileSystem.diskUsage(box.path + "/doomed").inodes == 5)
        let kept = try FileSystem.removeTree(box.path + "/doomed")

        #expect(kept == [inner])
        #expect(try MountFixture.read(victim + "/precious") == "keep me")
        #expect(!FileManager.default.fileExists(atPath: doomed))
        #expect(FileManager.default.fileExists(atPath: inner))
        try Mounter.unmount(inner)
        #expect(try FileSystem.removeTree(box.path + "/doomed").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: box.path + "/doomed"))
        #expect(try MountFixture.read(victim + "/precious") == "keep me")
    }

    @Test func removeTreeOfAMountPointRemovesNothing() throws {
        let box = try MountSandbox()
        defer { MountTargetTests.detachEverything(under: box.path) }
        let victim = try box.directory("victim", holding: "precious", "keep me")
        let point = try box.directory("point")
        try Mounter.mount(Mount(type: "bind", source: victim, options: ["bind"]), at: point)
        #expect(try FileSystem.removeTree(point) == [point])
        #expect(try MountFixture.read(victim + "/precious") == "keep me")
    }
}
