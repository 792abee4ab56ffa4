import Foundation
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A minimal Debian bookworm root with systemd, built once with debootstrap and cached
/// where it survives between test runs on the same machine.
///
/// The cache is `$VENEER_TEST_CACHE/bookworm` (default `/var/cache/veneer-tests`). It is
/// built in a temporary directory beside it and renamed into place when complete, under
/// an exclusive lock (flock on `bookworm.lock`), so concurrent runs build it once and
/// never see half a root. A root built for another package list is rebuilt. The root is
/// only ever read: machines boot from an overlay on top of it.
enum DebianRoot {
    static let suite = "bookworm"
    /// systemd as PID 1 with D-Bus, plus what veneerd links against beyond those
    /// (libsqlite3, libarchive); nothing else, so that the tests show the units need no
    /// other program (no procps, so no kill(1): `systemctl reload` runs `veneerd reload`).
    static let packages = ["systemd", "systemd-sysv", "dbus", "libsqlite3-0", "libarchive13"]
    /// Recorded in the finished root; a mismatch means the root is rebuilt.
    static var stamp: String { "\(suite) minbase \(packages.joined(separator: ",")) v1\n" }

    static var cacheDirectory: String {
        ProcessInfo.processInfo.environment["VENEER_TEST_CACHE"] ?? "/var/cache/veneer-tests"
    }

    static var path: String { cacheDirectory + "/" + suite }
    static var stampPath: String { path + "/.veneer-test-root" }

    /// The cached root, built first if missing or stale.
    static func prepared() async throws -> String {
        if isComplete { return path }
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        let lock = try await FileLock.acquire(cacheDirectory + "/" + suite + ".lock", timeout: .seconds(900))
        defer { lock.release() }
        // Another run may have finished it while this one waited.
        if isComplete { return path }
        try await build()
        return path
    }

    private static var isComplete: Bool {
        (try? String(contentsOfFile: stampPath, encoding: .utf8)) == stamp
    }

    private static func build() async throws {
        // Leftovers of an interrupted build (the lock is held, so nobody is using them).
        for name in (try? FileManager.default.contentsOfDirectory(atPath: cacheDirectory)) ?? []
        where name.hasPrefix(suite + ".building.") || name.hasPrefix(suite + ".old.") {
            try await removeTree(cacheDirectory + "/" + name)
        }
        let debootstrap = try await ensureDebootstrap()
        let building = cacheDirectory + "/" + suite + ".building.\(getpid())"
        let log = cacheDirectory + "/" + suite + ".debootstrap.log"
        let mirror = aptMirror()
        let result = try await ProcessRun.run(
            debootstrap,
            ["--variant=minbase", "--include=" + packages.joined(separator: ","), suite, building, mirror],
            timeout: .seconds(900))
        try? (result.stdout + result.stderr).write(toFile: log, atomically: false, encoding: .utf8)
        guard result.succeeded else {
            try? await removeTree(building)
            throw TestFailure("debootstrap \(suite) from \(mirror) failed (log: \(log)):\n\(result)")
        }
        try "veneer-test\n".write(toFile: building + "/etc/hostname", atomically: true, encoding: .utf8)
        try stamp.write(toFile: building + "/.veneer-test-root", atomically: true, encoding: .utf8)
        if FileManager.default.fileExists(atPath: path) {
            let old = cacheDirectory + "/" + suite + ".old.\(getpid())"
            guard rename(path, old) == 0 else { throw TestFailure("rename \(path): errno \(errno)") }
            try await removeTree(old)
        }
        guard rename(building, path) == 0 else { throw TestFailure("rename \(building): errno \(errno)") }
    }

    /// debootstrap, installed with apt-get when missing.
    private static func ensureDebootstrap() async throws -> String {
        let candidates = ["/usr/sbin/debootstrap", "/usr/bin/debootstrap"]
        if let found = ProcessRun.find(candidates) { return found }
        let environment = ["PATH": SystemdMachine.path, "DEBIAN_FRONTEND": "noninteractive"]
        let update = try await ProcessRun.run(
            "/usr/bin/apt-get", ["update"], environment: environment, timeout: .seconds(300))
        guard update.succeeded else { throw TestFailure("apt-get update failed:\n\(update)") }
        let install = try await ProcessRun.run(
            "/usr/bin/apt-get", ["install", "-y", "--no-install-recommends", "debootstrap"],
            environment: environment, timeout: .seconds(300))
        guard install.succeeded, let found = ProcessRun.find(candidates) else {
            throw TestFailure("cannot install debootstrap:\n\(install)")
        }
        return found
    }

    /// The Debian mirror apt already uses (deb822 `.sources` or one-line `.list`
    /// entries for the suite), else the default mirror.
    static func aptMirror() -> String {
        var files = ["/etc/apt/sources.list"]
        let directory = "/etc/apt/sources.list.d"
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        where name.hasSuffix(".sources") || name.hasSuffix(".list") {
            files.append(directory + "/" + name)
        }
        for file in files {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            let found = file.hasSuffix(".sources") ? mirror(deb822: text) : mirror(oneLine: text)
            if let found { return found }
        }
        return "http://deb.debian.org/debian"
    }

    static func mirror(deb822 text: String) -> String? {
        for stanza in text.components(separatedBy: "\n\n") {
            var fields: [String: [String]] = [:]
            for line in stanza.split(separator: "\n") where !line.hasPrefix("#") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let key = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
                fields[key] = line[line.index(after: colon)...].split(separator: " ").map(String.init)
            }
            if fields["types"]?.contains("deb") == true, fields["suites"]?.contains(suite) == true,
                fields["enabled"]?.first?.lowercased() != "no", let uri = fields["uris"]?.first
            {
                return uri
            }
        }
        return nil
    }

    static func mirror(oneLine text: String) -> String? {
        for line in text.split(separator: "\n") {
            var words = line.split(separator: " ").map(String.init)
            guard words.first == "deb" else { continue }
            words.removeFirst()
            if words.first?.hasPrefix("[") == true {
                // Options: "[arch=amd64 signed-by=…]", possibly spread over several words.
                while let word = words.first {
                    words.removeFirst()
                    if word.hasSuffix("]") { break }
                }
            }
            if words.count >= 2, words[1] == suite { return words[0] }
        }
        return nil
    }

    /// Unmounts anything left mounted below `path` (debootstrap mounts /proc in its
    /// target), then deletes it without crossing into other file systems.
    static func removeTree(_ path: String) async throws {
        for target in MountInfo.targets(under: path) {
            _ = try? await ProcessRun.run("/bin/umount", ["-l", target], timeout: .seconds(60))
        }
        let result = try await ProcessRun.run("/bin/rm", ["-rf", "--one-file-system", path], timeout: .seconds(300))
        guard result.succeeded else { throw TestFailure("rm -rf \(path) failed:\n\(result)") }
    }
}

/// An exclusive flock(2) on a lock file, waited for without holding a thread.
final class FileLock: Sendable {
    private let fd: Int32

    private init(fd: Int32) { self.fd = fd }

    static func acquire(_ path: String, timeout: Duration) async throws -> FileLock {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TestFailure("open \(path): errno \(errno)") }
        let deadline = ContinuousClock.now + timeout
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, ContinuousClock.now < deadline else {
                close(fd)
                throw TestFailure("cannot lock \(path) within \(timeout): errno \(errno)")
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return FileLock(fd: fd)
    }

    /// Unlocks by closing the descriptor.
    func release() {
        close(fd)
    }
}
