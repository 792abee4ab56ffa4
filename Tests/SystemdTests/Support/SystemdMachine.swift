import Foundation
import Testing
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A Debian system booted with systemd as PID 1, for testing veneerd under a real
/// service manager on hosts where systemd is not PID 1. Requires root.
///
/// How it is built:
/// - the root is an overlay: the cached debootstrapped root (`DebianRoot`) as the lower
///   layer and an empty upper directory, so every boot starts from the same clean state
///   and the cache is never written;
/// - `unshare --mount --uts --ipc --net` gives the machine its own mount, host name, IPC
///   and network namespaces (only a loopback device, down); the launcher moves itself
///   into a fresh cgroup `veneer-machine-…` of the cgroup2 hierarchy, then
///   `unshare --cgroup --pid --fork` makes that cgroup the machine's cgroup root and its
///   first process PID 1;
/// - PID 1 mounts proc (with /proc/sys read-only, so the machine's systemd-sysctl
///   cannot change the host kernel), sysfs read-only (so no udev starts), cgroup2 at
///   /sys/fs/cgroup, tmpfs on /run and /tmp, a minimal /dev (null, zero, full, random,
///   urandom, tty, a private devpts), then chroots and executes /lib/systemd/systemd;
/// - a host directory is bind-mounted at /var/lib/veneer (`stateDirectory`): overlayfs,
///   the machine's root, cannot hold overlay upper directories, so veneerd's state root
///   must live on a real file system;
/// - the Swift runtime libraries of the toolchain are bind-mounted read-only at their
///   host path, so binaries from `.build` run inside unchanged.
///
/// Mounts made inside the machine (by veneerd, say) are in the machine's own mount
/// namespace and invisible in the test's; read them through `hostPath(_:)`
/// (`/proc/PID/root/…` resolves paths in the machine's namespace) or `exec`. They all
/// vanish with the namespace when the machine stops.
///
/// Always end a machine with `poweroff()` (or `destroy()` after a failure):
/// `withSystemdMachine` does it.
final class SystemdMachine: @unchecked Sendable {
    // `launcher` is only touched by the test that owns the machine, one call at a time.

    /// PATH for commands run inside the machine and for host tools.
    static let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// Host directory of this machine: upper, work, root, state, console.log.
    let directory: String
    /// Host PID of the machine's systemd (PID 1 inside).
    let pid: Int32
    /// Host directory bind-mounted at /var/lib/veneer inside the machine.
    var stateDirectory: String { directory + "/state" }
    /// Output of the launcher and of systemd's own console.
    var consoleLog: String { directory + "/console.log" }

    private let launcher: Process
    private let cgroupName: String
    private let cgroupParent: String
    private var destroyed = false

    private init(directory: String, pid: Int32, launcher: Process, cgroupName: String, cgroupParent: String) {
        self.directory = directory
        self.pid = pid
        self.launcher = launcher
        self.cgroupName = cgroupName
        self.cgroupParent = cgroupParent
    }

    /// Boots a machine and waits until `systemctl is-system-running` answers `running`
    /// or `degraded`.
    static func boot(timeout: Duration = .seconds(60)) async throws -> SystemdMachine {
        guard geteuid() == 0 else { throw TestFailure("booting a systemd machine requires root") }
        let lower = try await DebianRoot.prepared()
        guard let unshare = ProcessRun.find(["/usr/bin/unshare", "/bin/unshare"]),
            let chroot = ProcessRun.find(["/usr/sbin/chroot", "/usr/bin/chroot"])
        else { throw TestFailure("unshare or chroot missing (util-linux, coreutils)") }
        let swiftRuntime = try swiftRuntimeDirectory()
        let cgroupParent = try cgroupHierarchy()
        removeStaleCgroups(in: cgroupParent)

        let directory = try TemporaryDirectory.make(prefix: "vsm")
        for name in ["upper", "work", "root", "state", "cg"] {
            try FileManager.default.createDirectory(atPath: directory + "/" + name, withIntermediateDirectories: true)
        }
        let cgroupName = "veneer-machine-" + String(directory.split(separator: ".").last ?? "x")

        let process = Process()
        process.executableURL = URL(fileURLWithPath: unshare)
        process.arguments = [
            "--mount", "--propagation", "private", "--uts", "--ipc", "--net",
            "/bin/sh", "-eu", "-c", outerScript, "launcher",
            directory, lower, cgroupName, swiftRuntime, unshare, chroot, innerScript,
        ]
        process.environment = ["PATH": path]
        _ = FileManager.default.createFile(atPath: directory + "/console.log", contents: nil)
        let console = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/console.log"))
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = console
        process.standardError = console
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        try? console.close()

        // The machine's PID 1 is the launcher's child once it has executed systemd.
        let deadline = ContinuousClock.now + timeout
        var systemdPID: Int32 = 0
        while systemdPID == 0 {
            if let child = children(of: process.processIdentifier).first,
                FileText.read("/proc/\(child)/comm") == "systemd\n"
            {
                systemdPID = child
            } else if !process.isRunning || ContinuousClock.now > deadline {
                let log = (try? String(contentsOfFile: directory + "/console.log", encoding: .utf8)) ?? ""
                let partial = SystemdMachine(
                    directory: directory, pid: 0, launcher: process, cgroupName: cgroupName,
                    cgroupParent: cgroupParent)
                await partial.destroy()
                throw TestFailure("the machine's systemd did not start:\n\(log.suffix(3000))")
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let machine = SystemdMachine(
            directory: directory, pid: systemdPID, launcher: process, cgroupName: cgroupName,
            cgroupParent: cgroupParent)
        do {
            try await machine.waitUntilRunning(deadline: deadline)
        } catch {
            await machine.destroy()
            throw error
        }
        return machine
    }

    /// Runs in the launcher's private mount namespace, as root of the host's cgroup tree.
    private static let outerScript = #"""
        D=$1 LOWER=$2 CG=$3 SWIFTLIB=$4 UNSHARE=$5 CHROOT=$6 INNER=$7
        mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$D/upper,workdir=$D/work" "$D/root"
        mount -t cgroup2 cgroup2 "$D/cg"
        mkdir "$D/cg/$CG"
        echo $$ > "$D/cg/$CG/cgroup.procs"
        umount "$D/cg"
        exec "$UNSHARE" --cgroup --pid --fork /bin/sh -eu -c "$INNER" init "$D" "$SWIFTLIB" "$CHROOT"
        """#

    /// Runs as PID 1 of the machine's PID namespace, before systemd replaces it.
    private static let innerScript = #"""
        D=$1 SWIFTLIB=$2 CHROOT=$3 R=$1/root
        mount -t proc proc "$R/proc"
        mount --bind "$R/proc/sys" "$R/proc/sys"
        mount -o remount,bind,ro "$R/proc/sys"
        if [ -e "$R/proc/sysrq-trigger" ]; then mount --bind /dev/null "$R/proc/sysrq-trigger"; fi
        mount -t sysfs -o ro sysfs "$R/sys"
        mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
        mount -t tmpfs -o mode=0755 tmpfs "$R/run"
        mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
        mount -t tmpfs -o mode=0755 tmpfs "$R/dev"
        for n in null zero full random urandom tty; do
            touch "$R/dev/$n"
            mount --bind "/dev/$n" "$R/dev/$n"
        done
        mkdir "$R/dev/pts" "$R/dev/shm"
        mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
        ln -s pts/ptmx "$R/dev/ptmx"
        mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
        ln -s /proc/self/fd "$R/dev/fd"
        ln -s /proc/self/fd/0 "$R/dev/stdin"
        ln -s /proc/self/fd/1 "$R/dev/stdout"
        ln -s /proc/self/fd/2 "$R/dev/stderr"
        mkdir -p "$R/var/lib/veneer" "$R$SWIFTLIB"
        mount --bind "$D/state" "$R/var/lib/veneer"
        mount --bind "$SWIFTLIB" "$R$SWIFTLIB"
        mount -o remount,bind,ro "$R$SWIFTLIB"
        exec env -i container=veneer-test "$CHROOT" "$R" /lib/systemd/systemd
        """#

    private func waitUntilRunning(deadline: ContinuousClock.Instant) async throws {
        var last = RunResult(status: -1, stdout: "", stderr: "")
        while ContinuousClock.now < deadline {
            last = try await exec(["systemctl", "is-system-running"])
            switch last.output {
            case "running", "degraded": return
            case "maintenance", "stopping":
                throw TestFailure("machine entered \(last.output) while booting:\n\(try await bootLog())")
            default:
                // Includes "offline": systemctl's answer while the manager does not yet
                // accept connections early in the boot.
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        throw TestFailure("machine did not finish booting (last answer: \(last)):\n\(try await bootLog())")
    }

    // MARK: Using the machine

    /// Runs a command inside the machine (all of its namespaces, its root and working
    /// directory /) with a clean environment.
    @discardableResult
    func exec(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> RunResult {
        guard let nsenter = ProcessRun.find(["/usr/bin/nsenter", "/bin/nsenter"]) else {
            throw TestFailure("nsenter missing (util-linux)")
        }
        return try await ProcessRun.run(
            nsenter, ["-t", String(pid), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w", "--"] + arguments,
            environment: ["PATH": Self.path, "LANG": "C", "SYSTEMD_PAGER": "cat", "SYSTEMD_COLORS": "0"],
            timeout: timeout)
    }

    /// Like `exec`, but fails unless the command exits with status 0.
    @discardableResult
    func run(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> RunResult {
        let result = try await exec(arguments, timeout: timeout)
        guard result.succeeded else {
            throw TestFailure("in the machine: \(arguments.joined(separator: " ")):\n\(result)")
        }
        return result
    }

    /// The host path of `path` inside the machine (its mounts included).
    func hostPath(_ path: String) -> String {
        "/proc/\(pid)/root" + (path.hasPrefix("/") ? path : "/" + path)
    }

    /// Writes a file inside the machine, creating its parent directories.
    func writeFile(_ path: String, _ contents: String, mode: Int = 0o644) throws {
        try writeFile(path, Data(contents.utf8), mode: mode)
    }

    func writeFile(_ path: String, _ contents: Data, mode: Int = 0o644) throws {
        let target = hostPath(path)
        let parent = (target as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        let temporary = target + ".veneer-test-new"
        guard FileManager.default.createFile(atPath: temporary, contents: contents, attributes: [.posixPermissions: mode])
        else { throw TestFailure("cannot write \(temporary)") }
        guard rename(temporary, target) == 0 else { throw TestFailure("rename to \(target): errno \(errno)") }
    }

    /// Copies a host file into the machine.
    func install(_ hostFile: String, at path: String, mode: Int = 0o644) throws {
        guard let data = FileManager.default.contents(atPath: hostFile) else {
            throw TestFailure("cannot read \(hostFile)")
        }
        try writeFile(path, data, mode: mode)
    }

    /// Installs veneerd from the build directory as /usr/local/bin/veneerd, the units
    /// from `systemd/` into /etc/systemd/system and the example configuration as
    /// /etc/veneer/veneerd.toml, then reloads systemd.
    func installVeneer() async throws {
        try install(BuildProducts.veneerd, at: "/usr/local/bin/veneerd", mode: 0o755)
        for unit in ["veneerd.service", "veneerd.socket", "veneerd-grpc.socket"] {
            try install(BuildProducts.packageRoot.path + "/systemd/" + unit, at: "/etc/systemd/system/" + unit)
        }
        try install(BuildProducts.packageRoot.path + "/systemd/veneerd.toml.example", at: "/etc/veneer/veneerd.toml")
        try await run(["systemctl", "daemon-reload"])
    }

    /// The machine's journal so far (`journalctl -b`), or of one unit.
    func journal(unit: String? = nil) async throws -> String {
        var arguments = ["journalctl", "-b", "--no-pager", "-o", "short-precise"]
        if let unit { arguments += ["-u", unit] }
        return try await exec(arguments).stdout
    }

    private func bootLog() async throws -> String {
        let failed = (try? await exec(["systemctl", "--failed", "--no-legend"]).stdout) ?? ""
        let journal = (try? await journal()) ?? ""
        let console = (try? String(contentsOfFile: consoleLog, encoding: .utf8)) ?? ""
        return "failed units:\n\(failed)\njournal:\n\(journal.suffix(4000))\nconsole:\n\(console.suffix(2000))"
    }

    // MARK: Stopping

    /// `systemctl poweroff`, then waits until the machine's systemd has exited and
    /// cleans up. Throws when the machine did not stop by itself (it is killed then).
    func poweroff(timeout: Duration = .seconds(30)) async throws {
        _ = try? await exec(["systemctl", "poweroff"])
        let deadline = ContinuousClock.now + timeout
        while launcher.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let stoppedByItself = !launcher.isRunning
        await destroy()
        guard stoppedByItself else { throw TestFailure("the machine did not power off within \(timeout)") }
    }

    /// Kills whatever is left of the machine and removes its directory and cgroup.
    /// Safe to call more than once and after a failed boot.
    func destroy() async {
        guard !destroyed else { return }
        destroyed = true
        if launcher.isRunning {
            // Killing PID 1 of the namespace kills every process in it.
            if pid > 0 { kill(pid, SIGKILL) }
            kill(launcher.processIdentifier, SIGKILL)
            let deadline = ContinuousClock.now + .seconds(10)
            while launcher.isRunning && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        await Self.removeCgroup(cgroupParent + "/" + cgroupName)
        try? await DebianRoot.removeTree(directory)
    }

    // MARK: Host facts

    /// Where the cgroup2 hierarchy is mounted on the host (the unified hierarchy of a
    /// hybrid set-up included).
    private static func cgroupHierarchy() throws -> String {
        guard let target = MountInfo.firstTarget(ofType: "cgroup2") else {
            throw TestFailure("no cgroup2 hierarchy is mounted on this host")
        }
        return target
    }

    /// The directory of the Swift runtime libraries this test binary runs with.
    private static func swiftRuntimeDirectory() throws -> String {
        let maps = FileText.read("/proc/self/maps") ?? ""
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let file = String(line[slash...])
            if file.hasSuffix("/libswiftCore.so") {
                return (file as NSString).deletingLastPathComponent
            }
        }
        throw TestFailure("cannot find libswiftCore.so in /proc/self/maps")
    }

    private static func children(of parent: Int32) -> [Int32] {
        let text = FileText.read("/proc/\(parent)/task/\(parent)/children") ?? ""
        return text.split(separator: " ").compactMap { Int32($0) }
    }

    /// Removes a machine's cgroup and the ones systemd made below it. The kernel frees
    /// a cgroup a moment after its last process exits, so it retries for a while.
    private static func removeCgroup(_ path: String) async {
        let deadline = ContinuousClock.now + .seconds(5)
        while !removeCgroupTree(path) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// rmdir of a cgroup and its descendants, deepest first; true when it is gone.
    private static func removeCgroupTree(_ path: String) -> Bool {
        var directories: [String] = []
        if let walker = FileManager.default.enumerator(atPath: path) {
            while let entry = walker.nextObject() as? String {
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: path + "/" + entry, isDirectory: &isDirectory),
                    isDirectory.boolValue
                {
                    directories.append(path + "/" + entry)
                }
            }
        }
        for directory in directories.sorted(by: { $0.count > $1.count }) + [path] {
            rmdir(directory)
        }
        return !FileManager.default.fileExists(atPath: path)
    }

    /// Empty cgroups left by machines of runs that were killed.
    private static func removeStaleCgroups(in parent: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        where name.hasPrefix("veneer-machine-") {
            let machineDirectory = "/tmp/vsm." + name.dropFirst("veneer-machine-".count)
            // A machine whose directory still exists may be running in another process.
            if !FileManager.default.fileExists(atPath: machineDirectory) {
                _ = removeCgroupTree(parent + "/" + name)
            }
        }
    }
}

/// Boots a machine, runs `body`, and always stops the machine; on failure the boot
/// journal is attached to the test's issues.
func withSystemdMachine<T>(_ body: (SystemdMachine) async throws -> T) async throws -> T {
    let machine = try await SystemdMachine.boot()
    do {
        let result = try await body(machine)
        try await machine.poweroff()
        return result
    } catch {
        let journal = (try? await machine.journal()) ?? ""
        Issue.record("machine journal:\n\(journal.suffix(6000))")
        await machine.destroy()
        throw error
    }
}
