import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Helpers for mounts made by the daemon

/// The `/v1/mounts` calls as raw requests, every answer held against the contract.
struct MountCalls {
    static let path = "/v1/mounts"
    let daemon: Daemon

    init(_ daemon: Daemon) { self.daemon = daemon }

    /// `POST /v1/mounts`.
    func mount(
        _ key: String, at target: String, readonly: Bool? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> RawResponse {
        let body = try encodeJSON(MountRequest(key: key, target: target, readonly: readonly))
        return try await checked(daemon, "POST", Self.path, body: body, sourceLocation: sourceLocation)
    }

    /// `POST /v1/mounts` that must succeed.
    @discardableResult
    func mounted(
        _ key: String, at target: String, readonly: Bool? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> LiveMount {
        let response = try await mount(key, at: target, readonly: readonly, sourceLocation: sourceLocation)
        try #require(
            response.status == 201, "mount \(quoted(key)) at \(target): \(response.text)", sourceLocation: sourceLocation)
        return try response.decoded(LiveMount.self)
    }

    /// `GET /v1/mounts[?key=K]`.
    func list(key: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws -> RawResponse {
        let path = key.map { Self.path + "?key=" + PathSegment.encode($0) } ?? Self.path
        return try await checked(daemon, "GET", path, sourceLocation: sourceLocation)
    }

    /// `GET /v1/mounts[?key=K]` that must succeed.
    func live(key: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [LiveMount] {
        let response = try await list(key: key, sourceLocation: sourceLocation)
        try #require(response.status == 200, "list mounts: \(response.text)", sourceLocation: sourceLocation)
        return try response.decoded(LiveMountsResponse.self).mounts
    }

    /// `DELETE /v1/mounts?target=T[&lazy=L]`.
    func unmount(
        _ target: String, lazy: Bool? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> RawResponse {
        var path = Self.path + "?target=" + PathSegment.encode(target)
        if let lazy { path += "&lazy=\(lazy)" }
        return try await checked(daemon, "DELETE", path, sourceLocation: sourceLocation)
    }

    /// `DELETE /v1/mounts?target=T` that must succeed.
    func unmounted(_ target: String, lazy: Bool? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let response = try await unmount(target, lazy: lazy, sourceLocation: sourceLocation)
        try #require(response.status == 204, "unmount \(target): \(response.text)", sourceLocation: sourceLocation)
    }

    /// `GET /v1/status` that must succeed.
    func status(sourceLocation: SourceLocation = #_sourceLocation) async throws -> StatusResponse {
        let response = try await checked(daemon, "GET", APIPath.status, sourceLocation: sourceLocation)
        try #require(response.status == 200, "status: \(response.text)", sourceLocation: sourceLocation)
        return try response.decoded(StatusResponse.self)
    }
}

/// What the kernel's mount table says, read from `/proc/self/mountinfo` to its end.
enum KernelMounts {
    /// Every mount point, in the order of the table.
    static func targets() throws -> [String] {
        let path = "/proc/self/mountinfo"
        guard let text = FileText.read(path) else { throw VeneerError.internal("cannot read \(path)") }
        return try text.split(separator: "\n").map { line in
            let fields = line.split(separator: " ", maxSplits: 5)
            guard fields.count > 4 else { throw VeneerError.internal("unexpected line in \(path): \(line)") }
            return MountInfo.unescape(fields[4])
        }
    }

    /// Whether `path` is a mount point.
    static func isMountPoint(_ path: String) throws -> Bool {
        try targets().contains(path)
    }

    /// Every mount point at or below `prefix`, sorted.
    static func under(_ prefix: String) throws -> [String] {
        try targets().filter { $0 == prefix || $0.hasPrefix(prefix + "/") }.sorted()
    }
}

let rfc3339Nanoseconds = #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$"#

// MARK: - Tests

@Suite("Mounts made by the daemon")
struct DaemonMountTests {
    @Test("mount and unmount through the API: answer fields, listing, status count, mount table")
    func mountAndUnmount() async throws {
        try await withMountCalls { daemon, api, calls in
            try await api.prepared("a")
            try await api.prepared("b")
            let planned = try await api.mountList("a")
            let target = try daemon.mountPoint("a")
            let other = try daemon.mountPoint("b")
            #expect(try await calls.status().mounts == 0)

            let before = Timestamp(nanosecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1e9) - 1_000_000_000)
            let response = try await calls.mount("a", at: target)
            let after = Timestamp(nanosecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1e9) + 1_000_000_000)
            try #require(response.status == 201, "\(response.text)")
            let live = try response.decoded(LiveMount.self)
            #expect(live.key == "a")
            #expect(live.target == target)
            #expect(live.readonly == false)
            #expect(live.mounts == planned, "the mounts made are the snapshot's mounts")
            #expect(live.mountedAt >= before && live.mountedAt <= after, "mounted_at \(live.mountedAt)")
            guard case .string(let mountedAt)? = response.json?["mounted_at"] else {
                Issue.record("no mounted_at string in \(response.text)")
                return
            }
            #expect(mountedAt.wholeMatch(of: try Regex(rfc3339Nanoseconds)) != nil, "mounted_at \(mountedAt)")
            #expect(try KernelMounts.isMountPoint(target))
            #expect(try !KernelMounts.isMountPoint(other))
            #expect(try await calls.status().mounts == 1)

            // A file written at the target is in the snapshot's own layer: the mount is real.
            try Tree.write(target + "/through-mount", "hello")
            #expect(try Tree.read(ownLayer(of: planned) + "/through-mount") == "hello")

            let liveB = try await calls.mounted("b", at: other)
            #expect(try await calls.status().mounts == 2)
            #expect(try await calls.live() == [live, liveB].sorted { $0.target < $1.target })
            #expect(try await calls.live(key: "a") == [live])
            #expect(try await calls.live(key: "b") == [liveB])
            #expect(try await calls.live(key: "nobody").isEmpty)

            let deleted = try await calls.unmount(target)
            #expect(deleted.status == 204, "\(deleted.text)")
            #expect(deleted.body.isEmpty)
            #expect(try !KernelMounts.isMountPoint(target), "\(target) is still a mount point after DELETE")
            #expect(try KernelMounts.isMountPoint(other))
            #expect(try await calls.live() == [liveB])
            #expect(try await calls.live(key: "a").isEmpty)
            #expect(try await calls.status().mounts == 1)
            #expect(!Tree.exists(target + "/through-mount"), "the target shows the layer after unmounting")

            // Unmounting again: the target is not ours any more.
            expectError(try await calls.unmount(target), 404, "not_found", mentioning: [target])
            try await calls.unmounted(other)
            #expect(try !KernelMounts.isMountPoint(other))
            #expect(try await calls.live().isEmpty)
            #expect(try await calls.status().mounts == 0)
            #expect(try KernelMounts.under(daemon.temp.path).isEmpty)
        }
    }

    @Test("files written through a mount land in the snapshot's own layer and in its commits")
    func writesLandInTheSnapshot() async throws {
        try await withMountCalls { daemon, api, calls in
            let base = try await api.prepared("base")
            let t1 = try daemon.mountPoint("base")
            try await calls.mounted("base", at: t1)
            try Tree.write(t1 + "/first", "from base")
            #expect(try Tree.read(ownLayer(of: base.mounts) + "/first") == "from base")
            try await calls.unmounted(t1)
            try await api.committed("base", name: "L1")

            let child = try await api.prepared("child", parent: "L1")
            #expect(child.mounts.first?.type == "overlay")
            let t2 = try daemon.mountPoint("child")
            try await calls.mounted("child", at: t2)
            #expect(try Tree.read(t2 + "/first") == "from base", "the committed file is in the child")
            try Tree.write(t2 + "/second", "from child")
            let upper = try ownLayer(of: child.mounts)
            #expect(try Tree.read(upper + "/second") == "from child")
            #expect(!Tree.exists(try ownLayer(of: base.mounts) + "/second"), "the parent's layer changed")
            try await calls.unmounted(t2)
            try await api.committed("child", name: "L2")

            try await api.prepared("look", parent: "L2", kind: .view)
            let t3 = try daemon.mountPoint("look")
            let view = try await calls.mounted("look", at: t3)
            #expect(view.readonly)
            #expect(try Tree.entries(t3) == ["first", "second"])
            #expect(try Tree.read(t3 + "/second") == "from child")
            try await calls.unmounted(t3)
        }
    }

    @Test("remove and commit are refused while mounted, naming the target, and allowed after unmount")
    func removeAndCommitWhileMounted() async throws {
        try await withMountCalls { daemon, api, calls in
            try await api.prepared("a")
            try await api.prepared("v", kind: .view)
            let ta = try daemon.mountPoint("a")
            let tv1 = try daemon.mountPoint("v1")
            let tv2 = try daemon.mountPoint("v2")
            try await calls.mounted("a", at: ta)
            try await calls.mounted("v", at: tv1)
            try await calls.mounted("v", at: tv2)
            let snapshots = try await api.all()

            expectError(try await api.commit("a", name: "c"), 409, "failed_precondition", mentioning: [ta, "\"a\""])
            expectError(try await api.remove("a"), 409, "failed_precondition", mentioning: [ta, "\"a\""])
            expectError(try await api.remove("v"), 409, "failed_precondition", mentioning: [tv1, tv2])
            #expect(try await api.all() == snapshots, "a refused request changed the snapshots")
            #expect(try KernelMounts.isMountPoint(ta) && KernelMounts.isMountPoint(tv1) && KernelMounts.isMountPoint(tv2))

            try await calls.unmounted(tv1)
            expectError(try await api.remove("v"), 409, "failed_precondition", mentioning: [tv2])
            try await calls.unmounted(tv2)
            #expect(try await api.remove("v").status == 204)

            try await calls.unmounted(ta)
            let committed = try await api.committed("a", name: "c")
            #expect(committed.kind == .committed)
            #expect(try await api.keys() == ["c"])
            try await api.prepared("again", parent: "c")
            try await calls.mounted("again", at: ta)
            expectError(try await api.remove("again"), 409, "failed_precondition", mentioning: [ta])
            try await calls.unmounted(ta)
            #expect(try await api.remove("again").status == 204)
            #expect(try await api.remove("c").status == 204)
        }
    }

    @Test("read-only mounts: an active with readonly, views always, several read-only targets")
    func readOnlyMounts() async throws {
        try await withMountCalls { daemon, api, calls in
            let a = try await api.prepared("a")
            try Tree.write(ownLayer(of: a.mounts) + "/file", "in a")

            // An active snapshot mounted read-only, twice: both mounts refuse writes.
            let ro1 = try daemon.mountPoint("ro1")
            let ro2 = try daemon.mountPoint("ro2")
            let first = try await calls.mounted("a", at: ro1, readonly: true)
            #expect(first.readonly)
            let second = try await calls.mounted("a", at: ro2, readonly: true)
            #expect(second.readonly)
            for target in [ro1, ro2] {
                #expect(try Tree.read(target + "/file") == "in a")
                #expect(Tree.createErrno(target + "/new") == EROFS, "\(target) is writable")
            }
            // A writable mount next to read-only ones is refused.
            let rw = try daemon.mountPoint("rw")
            expectError(try await calls.mount("a", at: rw), 409, "failed_precondition", mentioning: [ro1, ro2])
            #expect(try !KernelMounts.isMountPoint(rw))
            #expect(try await calls.live(key: "a").map(\.target) == [ro1, ro2])
            try await calls.unmounted(ro1)
            try await calls.unmounted(ro2)
            #expect(!Tree.exists(try ownLayer(of: a.mounts) + "/new"))

            // Read-only on an overlay (an active snapshot with a parent).
            try await api.committed("a", name: "c1")
            let child = try await api.prepared("child", parent: "c1")
            let overlayTarget = try daemon.mountPoint("child")
            #expect(try await calls.mounted("child", at: overlayTarget, readonly: true).readonly)
            #expect(try Tree.read(overlayTarget + "/file") == "in a")
            #expect(Tree.createErrno(overlayTarget + "/new") == EROFS)
            #expect(try Tree.entries(ownLayer(of: child.mounts)).isEmpty)
            try await calls.unmounted(overlayTarget)

            // Views are read-only without asking, at one or several targets: a view of one
            // layer (a bind mount) and of two layers (an overlay).
            try await api.committed("child", name: "c2")
            try await api.prepared("v1", parent: "c1", kind: .view)
            try await api.prepared("v2", parent: "c2", kind: .view)
            for key in ["v1", "v2"] {
                let targets = [try daemon.mountPoint(key + "-x"), try daemon.mountPoint(key + "-y")]
                for target in targets {
                    let live = try await calls.mounted(key, at: target)
                    #expect(live.readonly, "view \(key) mounted writable at \(target)")
                    #expect(try Tree.read(target + "/file") == "in a")
                    #expect(Tree.createErrno(target + "/new") == EROFS, "view \(key) is writable at \(target)")
                }
                // Asking for a writable mount of a view still gives a read-only one.
                let third = try daemon.mountPoint(key + "-z")
                #expect(try await calls.mounted(key, at: third, readonly: false).readonly)
                #expect(Tree.createErrno(third + "/new") == EROFS)
                #expect(try await calls.live(key: key).map(\.target) == (targets + [third]).sorted())
                for target in targets + [third] { try await calls.unmounted(target) }
            }
        }
    }

    @Test("one writable mount per active snapshot, one mount per target, mountable kinds, unknown keys and targets")
    func mountRules() async throws {
        try await withMountCalls { daemon, api, calls in
            try await api.prepared("a")
            try await api.prepared("v", kind: .view)
            try await api.prepared("tmp")
            try await api.committed("tmp", name: "c")
            let t1 = try daemon.mountPoint("t1")
            let t2 = try daemon.mountPoint("t2")
            try await calls.mounted("a", at: t1)

            // A second mount of an active snapshot with a writable one: refused, rw or ro.
            expectError(try await calls.mount("a", at: t2), 409, "failed_precondition", mentioning: [t1, "\"a\""])
            expectError(try await calls.mount("a", at: t2, readonly: true), 409, "failed_precondition", mentioning: [t1])
            #expect(try !KernelMounts.isMountPoint(t2))

            // The same target twice, for the same or another snapshot.
            expectError(try await calls.mount("a", at: t1), 409, "already_exists", mentioning: [t1])
            expectError(try await calls.mount("v", at: t1), 409, "already_exists", mentioning: [t1, "\"a\""])
            #expect(try KernelMounts.under(t1) == [t1], "a refused mount stacked another one on \(t1)")

            // Committed snapshots have no mounts; unknown keys are not found.
            expectError(try await calls.mount("c", at: t2), 409, "failed_precondition", mentioning: ["\"c\""])
            expectError(try await calls.mount("nope", at: t2), 404, "not_found", mentioning: ["\"nope\""])
            #expect(try !KernelMounts.isMountPoint(t2))
            #expect(try await calls.live().map(\.target) == [t1])

            // DELETE of targets that are not the daemon's: a plain directory, a missing
            // path, and a mount someone else made, which stays in place.
            expectError(try await calls.unmount(t2), 404, "not_found", mentioning: [t2])
            expectError(try await calls.unmount(daemon.temp.path + "/missing"), 404, "not_found")
            let foreign = try daemon.mountPoint("foreign")
            let made = try ProcessRun.run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", foreign])
            try #require(made.status == 0, "mount tmpfs: \(made.stderr)")
            defer { Mounts.unmount(foreign) }
            expectError(try await calls.unmount(foreign), 404, "not_found", mentioning: [foreign])
            expectError(try await calls.unmount(foreign, lazy: true), 404, "not_found")
            #expect(try KernelMounts.isMountPoint(foreign), "the daemon unmounted a mount it did not make")
            Mounts.unmount(foreign)
            #expect(try !KernelMounts.isMountPoint(foreign))

            // Bad DELETE requests.
            expectError(try await calls.unmount("relative/path"), 400, "invalid_argument")
            expectError(try await calls.unmount(t1 + "/"), 400, "invalid_argument")
            let noTarget = try await checked(daemon, "DELETE", MountCalls.path)
            expectError(noTarget, 400, "invalid_argument")
            let badLazy = try await checked(daemon, "DELETE", MountCalls.path + "?target=" + PathSegment.encode(t1) + "&lazy=maybe")
            expectError(badLazy, 400, "invalid_argument", mentioning: ["maybe"])
            #expect(try KernelMounts.isMountPoint(t1), "a refused DELETE unmounted \(t1)")

            try await calls.unmounted(t1)
            // With the writable mount gone, the active snapshot mounts again.
            try await calls.mounted("a", at: t2)
            try await calls.unmounted(t2)
            #expect(try KernelMounts.under(daemon.temp.path).isEmpty)
        }
    }

    @Test("a busy mount: DELETE refused with 409, lazy DELETE detaches it while the file stays open")
    func lazyUnmount() async throws {
        try await withMountCalls { daemon, api, calls in
            try await api.prepared("a")
            let target = try daemon.mountPoint("busy")
            try await calls.mounted("a", at: target)
            try Tree.write(target + "/held", "still readable")
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: target + "/held"))
            defer { try? handle.close() }

            expectError(try await calls.unmount(target), 409, "failed_precondition", mentioning: [target, "lazy"])
            expectError(try await calls.unmount(target, lazy: false), 409, "failed_precondition")
            #expect(try KernelMounts.isMountPoint(target), "a refused unmount removed the mount")
            #expect(try await calls.live().map(\.target) == [target], "a refused unmount forgot the mount")

            let lazy = try await calls.unmount(target, lazy: true)
            #expect(lazy.status == 204, "\(lazy.text)")
            #expect(try !KernelMounts.isMountPoint(target), "a lazy unmount left \(target) mounted")
            #expect(try await calls.live().isEmpty)
            #expect(try await calls.status().mounts == 0)
            // The open file still works after the detach.
            let data = try handle.readToEnd() ?? Data()
            #expect(String(decoding: data, as: UTF8.self) == "still readable")
            try handle.close()
        }
    }

    @Test("mounts and their records survive a restart after SIGTERM and after kill -9")
    func mountsSurviveRestarts() async throws {
        try await withMountCalls { daemon, api, calls in
            let base = try await api.prepared("base")
            try Tree.write(ownLayer(of: base.mounts) + "/from-base", "base layer")
            try await api.committed("base", name: "c")
            try await api.prepared("ctr", parent: "c")
            try await api.prepared("look", parent: "c", kind: .view)
            let tc = try daemon.mountPoint("ctr")
            let tv = try daemon.mountPoint("look")
            try await calls.mounted("ctr", at: tc)
            try await calls.mounted("look", at: tv)
            try Tree.write(tc + "/written", "before restart")
            let before = try await calls.live()
            #expect(before.count == 2)

            for how in ["SIGTERM", "kill -9"] {
                if how == "SIGTERM" {
                    let status = try await daemon.stop()
                    #expect(status == 0, "veneerd exited with \(status) on SIGTERM")
                } else {
                    try await daemon.crash()
                }
                #expect(try KernelMounts.isMountPoint(tc), "\(how) unmounted \(tc)")
                #expect(try KernelMounts.isMountPoint(tv), "\(how) unmounted \(tv)")
                #expect(try Tree.read(tc + "/written") == "before restart")
                try await daemon.start()
                #expect(try await calls.live() == before, "the records changed across \(how)")
                #expect(try await calls.status().mounts == 2)
                #expect(try KernelMounts.isMountPoint(tc) && KernelMounts.isMountPoint(tv), "start-up unmounted something")
                #expect(try Tree.read(tc + "/written") == "before restart")
                #expect(try Tree.read(tv + "/from-base") == "base layer")
                // The rules still hold for the recovered mounts.
                expectError(try await api.remove("ctr"), 409, "failed_precondition", mentioning: [tc])
                expectError(try await calls.mount("ctr", at: tv), 409, "already_exists")
            }
            try await calls.unmounted(tc)
            try await calls.unmounted(tv)
            #expect(try KernelMounts.under(daemon.temp.path).isEmpty)
            #expect(try await api.remove("ctr").status == 204)
            #expect(try await api.remove("look").status == 204)
        }
    }

    @Test("a mount removed while the daemon was stopped is dropped from the records at start-up")
    func vanishedMountIsReconciled() async throws {
        try await withMountCalls { daemon, api, calls in
            try await api.prepared("gone")
            try await api.prepared("kept")
            let tg = try daemon.mountPoint("gone")
            let tk = try daemon.mountPoint("kept")
            try await calls.mounted("gone", at: tg)
            let kept = try await calls.mounted("kept", at: tk)
            try await daemon.stop()

            let umount = try ProcessRun.run("/bin/umount", [tg])
            try #require(umount.status == 0, "umount \(tg): \(umount.stderr)")
            let logged = daemon.log.utf8.count
            try await daemon.start()
            #expect(try await calls.live() == [kept])
            #expect(try await calls.status().mounts == 1)
            #expect(try KernelMounts.isMountPoint(tk), "start-up unmounted a live mount")
            let newLog = String(decoding: daemon.log.utf8.dropFirst(logged), as: UTF8.self)
            #expect(newLog.contains(tg), "the dropped record is not logged:\n\(newLog)")

            #expect(try await api.remove("gone").status == 204)
            expectError(try await api.remove("kept"), 409, "failed_precondition", mentioning: [tk])
            // The target is free again.
            try await api.prepared("next")
            try await calls.mounted("next", at: tg)
            try await calls.unmounted(tg)
            try await calls.unmounted(tk)
        }
    }

    @Test("bad targets are refused with 400, and nothing is mounted or recorded")
    func targetValidation() async throws {
        try await withMountCalls { daemon, api, calls in
            let a = try await api.prepared("a")
            try Tree.write(ownLayer(of: a.mounts) + "/marker", "from a")
            let temp = daemon.temp.path
            let real = try daemon.mountPoint("real")
            let other = try daemon.mountPoint("other")
            try Tree.makeDirectory(real + "/sub")
            try Tree.symlink(real, at: temp + "/link")
            try Tree.symlink("mnt-real", at: temp + "/relative-link")
            try Tree.write(temp + "/file", "not a directory")
            let before = try KernelMounts.under(temp)

            let cases: [(target: String, mentioning: [String])] = [
                (temp + "/link", ["symbolic link"]),
                (temp + "/relative-link", ["symbolic link"]),
                (temp + "/link/sub", ["symbolic link", temp + "/link"]),
                (temp + "/file", ["not a directory"]),
                (temp + "/file/below", ["not a directory"]),
                ("mnt-real", ["absolute"]),
                ("", []),
                (real + "/../mnt-other", ["normalized"]),
                (real + "/", ["normalized"]),
                (real + "/./sub", ["normalized"]),
                (temp + "//mnt-real", ["normalized"]),
                (temp + "/missing", ["does not exist"]),
                (temp + "/missing/below", ["does not exist"]),
                (daemon.root, ["state root"]),
                (daemon.root + "/snapshots", ["state root"]),
                (temp, ["state root"]),
            ]
            for (target, words) in cases {
                let response = try await calls.mount("a", at: target)
                expectError(response, 400, "invalid_argument", mentioning: words)
                #expect(try KernelMounts.under(temp) == before, "refused target \(quoted(target)) left a mount")
            }
            #expect(try await calls.live().isEmpty, "a refused target was recorded")
            #expect(try await calls.status().mounts == 0)
            // Nothing of the snapshot shows anywhere it was refused.
            for dir in [real, real + "/sub", other, temp] {
                #expect(!Tree.exists(dir + "/marker"), "the snapshot is visible at \(dir)")
            }

            // The snapshot is still free to mount at a good target and to be removed after.
            try await calls.mounted("a", at: real)
            #expect(try Tree.read(real + "/marker") == "from a")
            #expect(try await calls.status().mounts == 1)
            try await calls.unmounted(real)
            #expect(try await api.remove("a").status == 204)
        }
    }

    @Test("concurrent mounts: one writable mount of an active snapshot wins; a racing remove never removes a mounted snapshot")
    func concurrentMounts() async throws {
        try await withMountCalls { daemon, api, calls in
            try await api.committedLayer()
            try await api.prepared("a", parent: "layer")
            let targets = try (0..<8).map { try daemon.mountPoint("a\($0)") }
            let outcomes = try await withThrowingTaskGroup(of: (String, Int).self) { group in
                for target in targets {
                    group.addTask { (target, try await calls.mount("a", at: target).status) }
                }
                var outcomes: [(String, Int)] = []
                for try await outcome in group { outcomes.append(outcome) }
                return outcomes
            }
            let winners = outcomes.filter { $0.1 == 201 }.map(\.0)
            #expect(winners.count == 1, "\(outcomes)")
            #expect(outcomes.filter { $0.1 == 409 }.count == 7, "\(outcomes)")
            #expect(try await calls.live().map(\.target) == winners)
            for target in targets {
                #expect(try KernelMounts.isMountPoint(target) == winners.contains(target), "\(target)")
            }
            for target in winners { try await calls.unmounted(target) }

            // A mount and a remove of one snapshot at once: never both.
            for round in 0..<10 {
                let key = "r\(round)"
                try await api.prepared(key, parent: "layer")
                let target = try daemon.mountPoint(key)
                async let mounting = calls.mount(key, at: target)
                async let removing = api.remove(key)
                let (mount, remove) = try await (mounting, removing)
                #expect((mount.status == 201) != (remove.status == 204), "round \(round): mount \(mount.status), remove \(remove.status)")
                #expect(try KernelMounts.isMountPoint(target) == (mount.status == 201))
                if mount.status == 201 {
                    try await calls.unmounted(target)
                    #expect(try await api.remove(key).status == 204)
                }
            }
            #expect(try await calls.live().isEmpty)
            #expect(try KernelMounts.under(daemon.temp.path).isEmpty)
        }
    }
}
