import Foundation
import Testing
import VeneerTestSupport
import VeneerCore
import VeneerOS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Real mounts (the tests run as root). Each test works in its own short directory
/// under /tmp; whatever it mounted there is detached and the directory removed when
/// the test ends, whether it passed or not. Serialized so that the latency figures
/// printed by `latencyByDepth` are not disturbed by the other tests of the suite.
@Suite("Mounts", .serialized)
struct MountTests {
    // MARK: - Bind mounts

    @Test func bindMountReadWrite() throws {
        let box = try MountSandbox()
        let source = try box.directory("src")
        let target = try box.target("t")
        try MountFixture.write(source + "/before", "x")

        try Mounter.mount(Mount(type: "bind", source: source, options: ["rw", "rbind"]), at: target)

        #expect(MountTable.isMountPoint(target))
        #expect(FileManager.default.fileExists(atPath: target + "/before"))
        try MountFixture.write(target + "/through", "written through the mount")
        #expect(try MountFixture.read(source + "/through") == "written through the mount")
        let entry = try #require(try MountTable.entries(at: target).last)
        #expect(entry.root == source)
        #expect(!entry.isReadOnly)
        #expect(entry.fsType == (try FileSystem.fileSystemType(source)))

        try Mounter.unmount(target)
        #expect(!MountTable.isMountPoint(target))
        #expect(try MountTable.entries(at: target).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: target + "/through"))
    }

    @Test func targetWithSpacesIsFoundInTheTable() throws {
        let box = try MountSandbox()
        let source = try box.directory("src")
        let target = try box.target("a target\twith blanks")

        try Mounter.mount(Mount(type: "bind", source: source, options: ["bind"]), at: target)

        #expect(MountTable.isMountPoint(target))
        let entry = try #require(try MountTable.entries(at: target).last)
        #expect(entry.root == source)
        try Mounter.unmount(target)
        #expect(try MountTable.entries(at: target).isEmpty)
    }

    @Test func bindMountReadOnlyRefusesWrites() throws {
        let box = try MountSandbox()
        let source = try box.directory("src", holding: "f", "content")
        let fromOption = try box.target("a")
        let fromFlag = try box.target("b")

        try Mounter.mount(Mount(type: "bind", source: source, options: ["ro", "rbind"]), at: fromOption)
        try Mounter.mount(Mount(type: "bind", source: source, options: ["rw", "rbind"]), at: fromFlag, readOnly: true)

        for target in [fromOption, fromFlag] {
            #expect(try MountFixture.read(target + "/f") == "content")
            #expect(MountFixture.createError(target + "/new") == EROFS)
            let entry = try #require(try MountTable.entries(at: target).last)
            #expect(entry.isReadOnly)
            try Mounter.unmount(target)
        }
        // The source itself stays writable.
        #expect(MountFixture.createError(source + "/new") == 0)
    }

    // MARK: - Overlay

    @Test func overlayOfTwoLowersWithUpper() throws {
        let box = try MountSandbox()
        let bottom = try box.directory("l1")
        let top = try box.directory("l2")
        let upper = try box.directory("u")
        let work = try box.directory("w")
        let target = try box.target("t")
        try MountFixture.write(bottom + "/shared", "bottom")
        try MountFixture.write(bottom + "/only-bottom", "b")
        try MountFixture.write(top + "/shared", "top")

        let spec = Mount(
            type: "overlay", source: "overlay",
            options: ["workdir=\(work)", "upperdir=\(upper)", "lowerdir=\(top):\(bottom)"])
        try Mounter.mount(spec, at: target)

        #expect(try MountFixture.read(target + "/shared") == "top")
        #expect(try MountFixture.read(target + "/only-bottom") == "b")
        try MountFixture.write(target + "/new", "upper")
        #expect(try MountFixture.read(upper + "/new") == "upper")
        #expect(!FileManager.default.fileExists(atPath: top + "/new"))
        let entry = try #require(try MountTable.entries(at: target).last)
        #expect(entry.fsType == "overlay")
        #expect(entry.source == "overlay")
        #expect(entry.options.contains("upperdir=\(upper)"))

        try Mounter.unmount(target)
        #expect(try MountTable.entries(at: target).isEmpty)
    }

    @Test func shortOverlayGoesThroughLibmountAndReadOnlyIsHonoured() throws {
        let box = try MountSandbox()
        let layers = try (1...3).map { i throws -> String in
            let dir = try box.directory("l\(i)", holding: "f\(i)", "\(i)")
            return dir
        }
        let target = try box.target("t")

        let method = try Mounter.mountOverlay(
            lowers: layers.reversed(), upper: nil, work: nil, at: target, readOnly: true)

        #expect(method == .libmount)
        #expect(try MountFixture.read(target + "/f1") == "1")
        #expect(try MountFixture.read(target + "/f3") == "3")
        #expect(MountFixture.createError(target + "/new") == EROFS)
        #expect(try MountTable.entries(at: target).last?.isReadOnly == true)
        try Mounter.unmount(target)
    }

    @Test func optionsExactlyAtTheLimitGoThroughLibmountAndOneByteMoreDoNot() throws {
        let box = try MountSandbox()
        let upper = try box.directory("u")
        let work = try box.directory("w")
        let limit = Mounter.singleCallOptionLimit
        func length(_ lowers: [String]) -> Int {
            ("lowerdir=" + lowers.joined(separator: ":") + ",upperdir=" + upper + ",workdir=" + work).utf8.count
        }
        var lowers: [String] = []
        while length(lowers) < limit - 200 {
            lowers.append(try box.directory("l/\(lowers.count)-" + String(repeating: "x", count: 100)))
        }
        // The last layer's name takes the options to the limit exactly, then one past it.
        let padding = limit - length(lowers + [box.path + "/l/"])
        try #require((2...254).contains(padding))
        let exact = try box.directory("l/" + String(repeating: "y", count: padding))
        let over = try box.directory("l/" + String(repeating: "z", count: padding + 1))
        try #require(length(lowers + [exact]) == limit)
        let target = try box.target("t")

        #expect(try Mounter.mountOverlay(lowers: lowers + [exact], upper: upper, work: work, at: target) == .libmount)
        try Mounter.unmount(target)
        #expect(try Mounter.mountOverlay(lowers: lowers + [over], upper: upper, work: work, at: target) != .libmount)
        try Mounter.unmount(target)
    }

    @Test func fiveHundredLayersUnderALongRootUseTheNewMountAPI() throws {
        let box = try MountSandbox()
        let root = try box.longRoot()
        #expect(root.utf8.count > 100)
        let stack = try LayerStack(root: root, depth: OverlayFeatures.maxLowerLayers)
        let target = try box.target("t")
        #expect(stack.optionBytes > Mounter.singleCallOptionLimit)

        let method = try Mounter.mountOverlay(
            lowers: stack.lowers, upper: stack.upper, work: stack.work, at: target)

        #expect(method == .newMountAPI)
        try stack.verify(through: target)
        // The table parser copes with the very long mountinfo line of such a mount.
        let entry = try #require(try MountTable.entries(at: target).last)
        #expect(entry.fsType == "overlay")
        #expect(entry.options.contains(stack.lowers[499]))
        try Mounter.unmount(target)
        #expect(!MountTable.isMountPoint(target))
    }

    @Test func aPreparedDeepOverlayShowsNowhereUntilAttached() throws {
        let box = try MountSandbox()
        let stack = try LayerStack(root: try box.longRoot(), depth: 300)
        let target = try box.target("t")
        let spec = Mount(
            type: "overlay", source: "overlay",
            options: [
                "workdir=\(stack.work)", "upperdir=\(stack.upper)", "lowerdir=\(stack.lowers.joined(separator: ":"))",
            ])

        let prepared = try Mounter.prepare(spec, at: try MountTarget(opening: target))
        #expect(prepared.isDetached)
        #expect(!MountTable.isMountPoint(target))
        try prepared.attach()
        try stack.verify(through: target)
        try Mounter.unmount(target)

        // Released without being attached: nothing was mounted, and the layers mount again.
        do {
            let abandoned = try Mounter.prepare(spec, at: try MountTarget(opening: target))
            #expect(abandoned.isDetached)
        }
        #expect(!MountTable.isMountPoint(target))
        #expect(try MountTable.current().allSatisfy { $0.target != target })
        let again = try Mounter.prepare(spec, at: try MountTarget(opening: target))
        try again.attach()
        try stack.verify(through: target)
        try Mounter.unmount(target)
    }

    @Test func aPreparedShortMountIsMadeInOneStepByAttach() throws {
        let box = try MountSandbox()
        let lower = try box.directory("l")
        let bottom = try box.directory("b")
        try MountFixture.write(lower + "/f", "x")
        let target = try box.target("t")
        let spec = Mount(type: "overlay", source: "overlay", options: ["lowerdir=\(lower):\(bottom)"])

        let prepared = try Mounter.prepare(spec, at: try MountTarget(opening: target), readOnly: true)
        #expect(!prepared.isDetached)
        #expect(!MountTable.isMountPoint(target))
        try prepared.attach()
        #expect(try MountFixture.read(target + "/f") == "x")
        #expect(try MountTable.entries(at: target).last?.isReadOnly == true)
        try Mounter.unmount(target)
    }

    @Test func descriptorPathFallbackMountsFiveHundredLayersUnderALongRoot() throws {
        let box = try MountSandbox()
        let root = try box.longRoot()
        let stack = try LayerStack(root: root, depth: OverlayFeatures.maxLowerLayers)
        let target = try box.target("t")

        let method = try Mounter.mountOverlay(
            lowers: stack.lowers, upper: stack.upper, work: stack.work, at: target, method: .descriptorPaths)

        #expect(method == .descriptorPaths)
        try stack.verify(through: target)
        #expect(try MountTable.entries(at: target).last?.fsType == "overlay")
        try Mounter.unmount(target)
    }

    @Test func descriptorPathFallbackReadOnlyViewOfTwoHundredLayers() throws {
        let box = try MountSandbox()
        let stack = try LayerStack(root: try box.longRoot(), depth: 200)
        let target = try box.target("t")

        try Mounter.mountOverlay(
            lowers: stack.lowers, upper: nil, work: nil, at: target, readOnly: true, method: .descriptorPaths)

        #expect(try MountFixture.read(target + "/layer-1") == "1")
        #expect(try MountFixture.read(target + "/layer-200") == "200")
        #expect(MountFixture.createError(target + "/new") == EROFS)
        try Mounter.unmount(target)
    }

    @Test func libmountRefusesAStackThatDoesNotFitInOnePage() throws {
        let box = try MountSandbox()
        let stack = try LayerStack(root: try box.longRoot(), depth: 100)
        let target = try box.target("t")

        let error = #expect(throws: SystemError.self) {
            try Mounter.mountOverlay(
                lowers: stack.lowers, upper: stack.upper, work: stack.work, at: target, method: .libmount)
        }
        #expect(error?.errno == E2BIG)
        #expect(error?.description.contains("mount overlay at \(target)") == true)
        #expect(!MountTable.isMountPoint(target))
    }

    @Test func pathsWithReservedCharactersAvoidTheOptionString() throws {
        let box = try MountSandbox()
        let bottom = try box.directory("a,b", holding: "f", "comma")
        let top = try box.directory("c:d", holding: "g", "colon")
        let target = try box.target("t")

        let method = try Mounter.mountOverlay(lowers: [top, bottom], upper: nil, work: nil, at: target)

        #expect(method == .newMountAPI)
        #expect(try MountFixture.read(target + "/f") == "comma")
        #expect(try MountFixture.read(target + "/g") == "colon")
        try Mounter.unmount(target)
    }

    // MARK: - Failures

    @Test func missingLowerFailsNamingTargetErrnoAndLayer() throws {
        let box = try MountSandbox()
        let lower = try box.directory("l1")
        let missing = box.path + "/does-not-exist"
        let upper = try box.directory("u")
        let work = try box.directory("w")
        let target = try box.target("t")

        for method in OverlayMountMethod.allCases {
            let error = #expect(throws: SystemError.self) {
                try Mounter.mountOverlay(
                    lowers: [lower, missing], upper: upper, work: work, at: target, method: method)
            }
            #expect(error?.errno == ENOENT)
            let text = error?.description ?? ""
            #expect(text.hasPrefix("mount overlay at \(target): No such file or directory (errno \(ENOENT))"), "\(method)")
            #expect(text.contains(missing), "\(method): \(text)")
            #expect(!MountTable.isMountPoint(target))
        }
    }

    @Test func unknownOverlayOptionCarriesTheKernelsReason() throws {
        let box = try MountSandbox()
        let lowers = [try box.directory("l1"), try box.directory("l2")]
        let target = try box.target("t")

        for method in [OverlayMountMethod.libmount, .newMountAPI] {
            let error = #expect(throws: SystemError.self) {
                try Mounter.mountOverlay(
                    lowers: lowers, upper: nil, work: nil, extraOptions: ["no_such_option=1"], at: target,
                    method: method)
            }
            #expect(error?.errno == EINVAL)
            #expect(error?.description.contains("no_such_option") == true, "\(method): \(String(describing: error))")
        }
    }

    @Test func bindOfMissingSourceNamesIt() throws {
        let box = try MountSandbox()
        let target = try box.target("t")
        let missing = box.path + "/nothing"

        let error = #expect(throws: SystemError.self) {
            try Mounter.mount(Mount(type: "bind", source: missing, options: ["rbind"]), at: target)
        }
        #expect(error?.errno == ENOENT)
        #expect(error?.description.hasPrefix("mount bind at \(target): No such file or directory") == true)
        #expect(error?.description.contains(missing) == true)
    }

    @Test func mounterRefusesATargetReachedThroughASymlink() throws {
        let box = try MountSandbox()
        let source = try box.directory("src")
        let real = try box.target("real")
        let link = box.path + "/link"
        #expect(symlink(real, link) == 0)

        let error = #expect(throws: SystemError.self) {
            try Mounter.mount(Mount(type: "bind", source: source, options: ["rbind"]), at: link)
        }
        #expect(error?.errno == ELOOP)
        #expect(error?.description.contains(link) == true)
        #expect(!MountTable.isMountPoint(real))
    }

    // MARK: - Unmounting

    @Test func unmountNormalBusyAndLazy() throws {
        let box = try MountSandbox()
        let source = try box.directory("src", holding: "f", "x")
        let target = try box.target("t")

        let notMounted = #expect(throws: SystemError.self) { try Mounter.unmount(target) }
        #expect(notMounted?.errno == EINVAL)
        #expect(notMounted?.description == "unmount \(target): Invalid argument (errno \(EINVAL)): not a mount point")

        try Mounter.mount(Mount(type: "bind", source: source, options: ["rbind"]), at: target)
        let fd = open(target + "/f", O_RDONLY | O_CLOEXEC)
        #expect(fd >= 0)
        defer { if fd >= 0 { close(fd) } }
        // Busy: a file is open through it.
        let busy = #expect(throws: SystemError.self) { try Mounter.unmount(target) }
        #expect(busy?.errno == EBUSY)
        #expect(busy?.description.contains(target) == true)
        #expect(MountTable.isMountPoint(target))

        try Mounter.unmount(target, lazy: true)
        #expect(!MountTable.isMountPoint(target))
        // The open file still reads after the detach.
        var byte: UInt8 = 0
        #expect(read(fd, &byte, 1) == 1 && byte == UInt8(ascii: "x"))
    }

    @Test func unmountRemovesOnlyTheTopmostStackedMount() throws {
        let box = try MountSandbox()
        let first = try box.directory("one", holding: "which", "one")
        let second = try box.directory("two", holding: "which", "two")
        let target = try box.target("t")

        try Mounter.mount(Mount(type: "bind", source: first, options: ["bind"]), at: target)
        try Mounter.mount(Mount(type: "bind", source: second, options: ["bind"]), at: target)
        #expect(try MountTable.entries(at: target).count == 2)
        #expect(try MountFixture.read(target + "/which") == "two")

        try Mounter.unmount(target)
        #expect(try MountFixture.read(target + "/which") == "one")
        try Mounter.unmount(target)
        #expect(try MountTable.entries(at: target).isEmpty)
    }

    // MARK: - Mount table and features

    @Test func mountTableListsTheSystemMounts() throws {
        let entries = try MountTable.current()
        let root = try #require(entries.first { $0.target == "/" })
        #expect(!root.fsType.isEmpty)
        #expect(entries.contains { $0.target == "/proc" && $0.fsType == "proc" })
        #expect(Set(entries.map(\.id)).count == entries.count)
        #expect(MountTable.isMountPoint("/"))
        #expect(MountTable.isMountPoint("/proc"))
        #expect(!MountTable.isMountPoint("/proc/self"))
        #expect(!MountTable.isMountPoint("/nonexistent/veneer"))
    }

    @Test func kernelFeatures() throws {
        #expect(Mounter.probeNewMountAPI())
        let features = OverlayFeatures.probe()
        #expect(features.available)
        #expect(features.newMountAPI)
        #expect(features.userxattr)  // Linux 5.11+
        #expect(features.index == (OverlayFeatures.moduleParameter("index") == "Y"))
        #expect(features.metacopy == (OverlayFeatures.moduleParameter("metacopy") == "Y"))
        #expect(OverlayFeatures.moduleParameter("no_such_parameter") == nil)
        #expect(OverlayFeatures.maxLowerLayers == 500)

        let box = try MountSandbox()
        #expect(try OverlayFeatures.dTypeSupported(root: box.path))
        // The probe cleans up after itself.
        #expect(try FileManager.default.contentsOfDirectory(atPath: box.path).isEmpty)
        let missing = #expect(throws: SystemError.self) {
            try OverlayFeatures.dTypeSupported(root: box.path + "/missing")
        }
        #expect(missing?.errno == ENOENT)
    }

    // MARK: - Target validation

    @Test func targetValidation() throws {
        let box = try MountSandbox()
        let good = try box.directory("good")
        let state = try box.directory("state")
        let inside = try box.directory("state/snapshots")
        let real = try box.directory("real")
        try box.directory("real/sub")
        #expect(symlink(real, box.path + "/link") == 0)
        try MountFixture.write(box.path + "/file", "x")

        func problem(_ path: String, root: String? = nil) -> TargetProblem? {
            do {
                try PathSafety.validateMountTarget(path, root: root)
                return nil
            } catch {
                return error
            }
        }

        #expect(problem(good) == nil)
        #expect(problem(good, root: state) == nil)
        #expect(problem("relative/dir") == .notAbsolute(target: "relative/dir"))
        #expect(problem("") == .notAbsolute(target: ""))
        #expect(problem(box.path + "/good/../state") == .notNormalized(target: box.path + "/good/../state"))
        #expect(problem(box.path + "/./good") == .notNormalized(target: box.path + "/./good"))
        #expect(problem(box.path + "//good") == .notNormalized(target: box.path + "//good"))
        #expect(problem(good + "/") == .notNormalized(target: good + "/"))
        #expect(problem(box.path + "/link") == .symlinkComponent(target: box.path + "/link", component: box.path + "/link"))
        #expect(problem(box.path + "/link/sub") == .symlinkComponent(target: box.path + "/link/sub", component: box.path + "/link"))
        #expect(problem(box.path + "/file") == .notDirectory(target: box.path + "/file", component: box.path + "/file"))
        #expect(problem(box.path + "/file/x") == .notDirectory(target: box.path + "/file/x", component: box.path + "/file"))
        #expect(problem(box.path + "/missing") == .missing(target: box.path + "/missing", component: box.path + "/missing"))
        #expect(problem(box.path + "/missing/x") == .missing(target: box.path + "/missing/x", component: box.path + "/missing"))
        #expect(problem(state, root: state) == .insideRoot(target: state, root: state))
        #expect(problem(inside, root: state) == .insideRoot(target: inside, root: state))
        #expect(problem(box.path, root: state) == .containsRoot(target: box.path, root: state))
        #expect(problem("/", root: state) == .containsRoot(target: "/", root: state))
        // The root given through a symlink is resolved first.
        let linkedRoot = box.path + "/link"
        #expect(problem(real + "/sub", root: linkedRoot) == .insideRoot(target: real + "/sub", root: real))

        let text = try #require(problem(box.path + "/link/sub")).description
        #expect(text == "target \(box.path)/link/sub has a symbolic link in its path: \(box.path)/link")
        #expect(TargetProblem.notAbsolute(target: "x").description == "target \"x\" is not an absolute path")
        #expect(
            TargetProblem.insideRoot(target: "/r/a", root: "/r").description == "target /r/a is inside the state root /r")
    }

    @Test func targetInsideTheRootThroughABindMountIsRefused() throws {
        let box = try MountSandbox()
        let state = try box.directory("state")
        try box.directory("state/x")
        let alias = try box.target("alias")
        try Mounter.mount(Mount(type: "bind", source: state, options: ["bind"]), at: alias)

        #expect(throws: TargetProblem.insideRoot(target: alias + "/x", root: state)) {
            try PathSafety.validateMountTarget(alias + "/x", root: state)
        }
        try Mounter.unmount(alias)
        #expect(throws: Never.self) { try PathSafety.validateMountTarget(alias, root: state) }
    }

    @Test func targetBelowABindMountOfADirectoryInsideTheRootIsRefused() throws {
        let box = try MountSandbox()
        let state = try box.directory("state")
        try box.directory("state/snapshots/1/fs")
        let alias = try box.target("alias")
        try Mounter.mount(Mount(type: "bind", source: state + "/snapshots", options: ["bind"]), at: alias)

        #expect(throws: TargetProblem.insideRoot(target: alias + "/1/fs", root: state)) {
            try PathSafety.validateMountTarget(alias + "/1/fs", root: state)
        }
        // A sibling of the root on the same file system stays acceptable.
        let outside = try box.directory("outside")
        #expect(throws: Never.self) { try PathSafety.validateMountTarget(outside, root: state) }
        try Mounter.unmount(alias)
    }

    @Test func aBindMountOfADirectoryInsideTheRootIsRefusedAsATargetItself() throws {
        let box = try MountSandbox()
        let state = try box.directory("state")
        try box.directory("state/snapshots/4/fs")
        let alias = try box.target("alias")
        let deep = try box.target("deep")
        try Mounter.mount(Mount(type: "bind", source: state + "/snapshots", options: ["bind"]), at: alias)
        try Mounter.mount(Mount(type: "bind", source: state + "/snapshots/4/fs", options: ["bind"]), at: deep)

        #expect(throws: TargetProblem.insideRoot(target: alias, root: state)) {
            try PathSafety.validateMountTarget(alias, root: state)
        }
        #expect(throws: TargetProblem.insideRoot(target: deep, root: state)) {
            try PathSafety.validateMountTarget(deep, root: state)
        }
        try Mounter.unmount(deep)
        try Mounter.unmount(alias)
        #expect(throws: Never.self) { try PathSafety.validateMountTarget(alias, root: state) }
    }

    @Test func containmentIsComponentWise() throws {
        #expect(PathSafety.isLexicallyInside("/a/b", "/a/b"))
        #expect(PathSafety.isLexicallyInside("/a/b/c", "/a/b"))
        #expect(!PathSafety.isLexicallyInside("/a/bc", "/a/b"))
        #expect(!PathSafety.isLexicallyInside("/a", "/a/b"))
        #expect(PathSafety.isLexicallyInside("/anything", "/"))
        #expect(PathSafety.isNormalizedAbsolute("/"))
        #expect(PathSafety.isNormalizedAbsolute("/a/b..c/.d"))
        #expect(!PathSafety.isNormalizedAbsolute("/a/../b"))
        #expect(!PathSafety.isNormalizedAbsolute("a/b"))
        // A combining mark after a slash makes one character of both; paths are bytes.
        #expect(PathSafety.isNormalizedAbsolute("/\u{1F3FB}a/b\u{301}"))
        #expect(!PathSafety.isNormalizedAbsolute("/a/\u{301}/"))
        #expect(!PathSafety.isNormalizedAbsolute("\u{301}/a"))
        #expect(PathSafety.isLexicallyInside("/a/b/\u{301}c", "/a/b"))
        #expect(!PathSafety.isLexicallyInside("/a/b\u{301}", "/a/b"))

        let box = try MountSandbox()
        let real = try box.directory("real")
        #expect(symlink(real, box.path + "/link") == 0)
        #expect(try PathSafety.isInside(real + "/x", root: box.path + "/link"))
        #expect(try !PathSafety.isInside(box.path + "/realx", root: box.path + "/link"))
    }
}

// MARK: - Helpers

/// A short directory under /tmp for one test; on release whatever is mounted in it is
/// detached (deepest first, stacked mounts repeatedly) and the tree removed.
final class MountSandbox {
    private let scratch: TemporaryDirectory

    init() throws { scratch = try TemporaryDirectory(prefix: "vm") }

    var path: String { scratch.path }

    @discardableResult
    func directory(_ relative: String) throws -> String {
        let dir = scratch(relative)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// `directory(relative)` holding the file `name` with `text` in it.
    func directory(_ relative: String, holding name: String, _ text: String) throws -> String {
        let dir = try directory(relative)
        try MountFixture.write(dir + "/" + name, text)
        return dir
    }

    /// A directory to mount on.
    func target(_ relative: String) throws -> String { try directory(relative) }

    /// A directory whose path is well over 100 characters.
    func longRoot() throws -> String {
        try directory("state-root-with-a-deliberately-long-name/and-more-nesting-to-go-past-one-hundred-characters")
    }
}

/// Layers `1...depth` under `root/snapshots/N/fs` (layer 1 at the bottom), with an
/// upper and a work directory. Layer i holds `layer-i`; layer 1 holds `doomed`, which
/// a whiteout in the middle layer deletes.
private struct LayerStack {
    let lowers: [String]
    let upper: String
    let work: String
    let depth: Int

    init(root: String, depth: Int) throws {
        self.depth = depth
        var layers: [String] = []
        for i in 1...depth {
            let fs = root + "/snapshots/\(i)/fs"
            try FileManager.default.createDirectory(atPath: fs, withIntermediateDirectories: true)
            try MountFixture.write(fs + "/layer-\(i)", "\(i)")
            layers.append(fs)
        }
        if depth >= 3 {
            try MountFixture.write(layers[0] + "/doomed", "gone later")
            let middle = layers[depth / 2 - 1]
            guard mknod(middle + "/doomed", S_IFCHR | 0o000, 0) == 0 else {
                throw TestFailure("mknod whiteout: errno \(errno)")
            }
        }
        lowers = layers.reversed()  // topmost first
        upper = root + "/active/fs"
        work = root + "/active/work"
        try FileManager.default.createDirectory(atPath: upper, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    }

    /// Length of the plain `lowerdir=…,upperdir=…,workdir=…` option string.
    var optionBytes: Int {
        "lowerdir=\(lowers.joined(separator: ":")),upperdir=\(upper),workdir=\(work)".utf8.count
    }

    func verify(through target: String) throws {
        #expect(try MountFixture.read(target + "/layer-1") == "1")
        #expect(try MountFixture.read(target + "/layer-\(depth)") == "\(depth)")
        if depth >= 3 {
            #expect(!FileManager.default.fileExists(atPath: target + "/doomed"))
            #expect(FileManager.default.fileExists(atPath: lowers[depth - 1] + "/doomed"))
        }
        try MountFixture.write(target + "/written", "up")
        #expect(try MountFixture.read(upper + "/written") == "up")
    }
}

enum MountFixture {
    // Files are opened with O_CLOEXEC: tests run in parallel and other tests start
    // processes, which would otherwise inherit a descriptor into a test's mount and keep
    // it busy (EBUSY on unmount) for as long as they run.

    static func write(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TestFailure("cannot write \(path): errno \(errno)") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw TestFailure("cannot write \(path): errno \(errno)") }
    }

    static func read(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TestFailure("cannot read \(path): errno \(errno)") }
        defer { close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw TestFailure("cannot read \(path): errno \(errno)") }
            if n == 0 { break }
            data.append(contentsOf: chunk[..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// 0 when a new file can be created at `path` (it is then removed), else the errno.
    static func createError(_ path: String) -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { return errno }
        close(fd)
        unlink(path)
        return 0
    }
}
