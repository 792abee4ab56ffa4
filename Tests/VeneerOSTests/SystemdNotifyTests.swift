import Foundation
import Testing
import VeneerTestSupport

@testable import VeneerOS

#if canImport(Glibc)
import Glibc
#endif

/// The systemd protocol code against sockets and descriptors the tests own. The
/// environment variables libsystemd reads (NOTIFY_SOCKET, WATCHDOG_*, LISTEN_*,
/// JOURNAL_STREAM) are process-wide, so these tests run one at a time and restore them.
/// Other tests may start processes meanwhile that inherit NOTIFY_SOCKET, so datagrams
/// are matched by the sender's PID (SO_PASSCRED).
@Suite(.serialized)
struct SystemdNotifyTests {
    @Test func notificationsWithoutNotifySocketAreDropped() throws {
        try SystemdEnvironment.with(["NOTIFY_SOCKET": nil]) {
            #expect(!Systemd.isNotifySocketSet)
            #expect(!Systemd.notify("READY=1"))
            #expect(!Systemd.ready())
            #expect(!Systemd.status("idle"))
        }
    }

    @Test func stateNotificationsArriveAsDatagrams() throws {
        let receiver = try NotifyReceiver()
        try SystemdEnvironment.with(["NOTIFY_SOCKET": receiver.path]) {
            #expect(Systemd.isNotifySocketSet)
            #expect(Systemd.ready())
            #expect(Systemd.status("142 snapshots (12 active, 3 views)\nsecond line"))
            #expect(Systemd.watchdog())
            #expect(Systemd.extendTimeout(microseconds: 5_000_000))
            #expect(Systemd.errno(ENOSPC))
            #expect(Systemd.stopping())
            #expect(Systemd.notify("CUSTOM=1\nOTHER=2"))
        }
        let received = try receiver.receive(count: 7)
        #expect(
            received == [
                "READY=1",
                "STATUS=142 snapshots (12 active, 3 views) second line",
                "WATCHDOG=1",
                "EXTEND_TIMEOUT_USEC=5000000",
                "ERRNO=\(ENOSPC)",
                "STOPPING=1",
                "CUSTOM=1\nOTHER=2",
            ])
    }

    @Test func reloadingCarriesTheMonotonicClock() throws {
        let receiver = try NotifyReceiver()
        let before = MonotonicClock.monotonicMicroseconds()
        try SystemdEnvironment.with(["NOTIFY_SOCKET": receiver.path]) {
            #expect(Systemd.reloading())
        }
        let after = MonotonicClock.monotonicMicroseconds()
        let received = try receiver.receive(count: 1)
        let lines = received.first?.split(separator: "\n").map(String.init) ?? []
        #expect(lines.count == 2)
        #expect(lines.first == "RELOADING=1")
        let stamp = lines.last.flatMap { $0.hasPrefix("MONOTONIC_USEC=") ? UInt64($0.dropFirst(15)) : nil }
        let usec = try #require(stamp, "\(received)")
        #expect(before <= usec && usec <= after)
    }

    @Test func abstractNotifySocketsWork() throws {
        let receiver = try NotifyReceiver(abstract: true)
        try SystemdEnvironment.with(["NOTIFY_SOCKET": "@" + receiver.path]) {
            #expect(Systemd.ready())
        }
        #expect(try receiver.receive(count: 1) == ["READY=1"])
    }

    @Test func watchdogIntervalFollowsTheEnvironment() throws {
        let me = String(getpid())
        try SystemdEnvironment.with(["WATCHDOG_USEC": "2500000", "WATCHDOG_PID": me]) {
            #expect(Systemd.watchdogInterval() == .milliseconds(2500))
        }
        try SystemdEnvironment.with(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": nil]) {
            #expect(Systemd.watchdogInterval() == .seconds(30))
        }
        // Meant for another process, off, or garbage.
        try SystemdEnvironment.with(["WATCHDOG_USEC": "2500000", "WATCHDOG_PID": String(getpid() + 1)]) {
            #expect(Systemd.watchdogInterval() == nil)
        }
        try SystemdEnvironment.with(["WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) {
            #expect(Systemd.watchdogInterval() == nil)
        }
        try SystemdEnvironment.with(["WATCHDOG_USEC": "0", "WATCHDOG_PID": me]) {
            #expect(Systemd.watchdogInterval() == nil)
        }
        try SystemdEnvironment.with(["WATCHDOG_USEC": "soon", "WATCHDOG_PID": me]) {
            #expect(Systemd.watchdogInterval() == nil)
        }
    }

    @Test func listenFDsNeedsThisProcessInListenPID() throws {
        try SystemdEnvironment.with(["LISTEN_PID": nil, "LISTEN_FDS": nil]) {
            #expect(Systemd.listenFDs().isEmpty)
            #expect(Systemd.listenFDsWithNames().isEmpty)
            let activated = try Systemd.activatedSockets()
            #expect(activated == Systemd.ActivatedSockets())
        }
        try SystemdEnvironment.with(["LISTEN_PID": String(getpid() + 1), "LISTEN_FDS": "1"]) {
            #expect(Systemd.listenFDs().isEmpty)
        }
        try SystemdEnvironment.with(["LISTEN_PID": String(getpid()), "LISTEN_FDS": "0"]) {
            #expect(Systemd.listenFDs().isEmpty)
        }
        try SystemdEnvironment.with(["LISTEN_PID": String(getpid()), "LISTEN_FDS": "x"]) {
            #expect(Systemd.listenFDs().isEmpty)
        }
    }

    /// Socket activation passes descriptors from 3 up. A test process cannot give up
    /// its descriptor 3 (the Swift runtime's event loop holds it), so these tests make
    /// sure 3 and 4 are open, never replace them, and rely on what sd_listen_fds does
    /// with them: it reports them when LISTEN_PID names this process, and only sets
    /// FD_CLOEXEC on them. Picking the right descriptor out of a real listening socket
    /// is tested in SystemdHelperTests; the booted-systemd tests do it end to end.
    @Test func listenFDsReportsDescriptorsFromThreeUp() throws {
        try SystemdSockets.withDescriptorsOpen(through: 4) {
            try SystemdEnvironment.with(["LISTEN_PID": String(getpid()), "LISTEN_FDS": "1"]) {
                #expect(Systemd.listenFDs() == [3])
            }
            try SystemdEnvironment.with(["LISTEN_PID": String(getpid()), "LISTEN_FDS": "2"]) {
                #expect(Systemd.listenFDs() == [3, 4])
            }
            try SystemdEnvironment.with([
                "LISTEN_PID": String(getpid()), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "api:grpc",
            ]) {
                let named = Systemd.listenFDsWithNames()
                #expect(named.map(\.fd) == [3, 4])
                #expect(named.map(\.name) == ["api", "grpc"])
            }
            try SystemdEnvironment.with([
                "LISTEN_PID": String(getpid()), "LISTEN_FDS": "1", "LISTEN_FDNAMES": nil,
            ]) {
                #expect(Systemd.listenFDsWithNames().map(\.name) == ["unknown"])
            }
        }
    }

    @Test func activationThatDoesNotFitIsRefused() throws {
        try SystemdSockets.withDescriptorsOpen(through: 4) {
            // Descriptor 3 is no listening Unix stream socket in a test process.
            try #require(!Systemd.isListeningUnixStreamSocket(3))
            try SystemdEnvironment.with(["LISTEN_PID": String(getpid()), "LISTEN_FDS": "1", "LISTEN_FDNAMES": nil]) {
                #expect(throws: Systemd.ActivationError.notUnixStreamListener(3)) {
                    try Systemd.activatedSockets()
                }
            }
            try SystemdEnvironment.with(["LISTEN_PID": String(getpid()), "LISTEN_FDS": "2", "LISTEN_FDNAMES": nil]) {
                #expect(throws: Systemd.ActivationError.tooManySockets(socket: "API", count: 2)) {
                    try Systemd.activatedSockets()
                }
            }
        }
    }

    @Test func journalStreamMatchesStandardError() throws {
        var st = stat()
        try #require(fstat(STDERR_FILENO, &st) == 0)
        try SystemdEnvironment.with(["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino)"]) {
            #expect(Systemd.isJournalStream())
        }
        try SystemdEnvironment.with(["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino + 1)"]) {
            #expect(!Systemd.isJournalStream())
        }
        try SystemdEnvironment.with(["JOURNAL_STREAM": nil]) {
            #expect(!Systemd.isJournalStream())
        }
    }
}

/// The parts that need no environment.
struct SystemdHelperTests {
    @Test func onlyListeningUnixStreamSocketsQualify() throws {
        let directory = try TemporaryDirectory(prefix: "veneer-sd")
        let listening = try SystemdSockets.unixStream(directory.path + "/a.sock", listening: true)
        defer { close(listening) }
        let listening2 = try SystemdSockets.unixStream(directory.path + "/c.sock", listening: true)
        defer { close(listening2) }
        let bound = try SystemdSockets.unixStream(directory.path + "/b.sock", listening: false)
        defer { close(bound) }
        let datagram = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(datagram) }
        let file = open(directory.path + "/file", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        defer { close(file) }
        #expect(Systemd.isListeningUnixStreamSocket(listening))
        #expect(!Systemd.isListeningUnixStreamSocket(bound))
        #expect(!Systemd.isListeningUnixStreamSocket(datagram))
        #expect(!Systemd.isListeningUnixStreamSocket(file))
        #expect(!Systemd.isListeningUnixStreamSocket(-1))

        let none = try Systemd.activatedSockets(from: [])
        #expect(none == Systemd.ActivatedSockets())
        let one = try Systemd.activatedSockets(from: [(listening, "veneerd.socket")])
        #expect(one == Systemd.ActivatedSockets(api: listening))
        let both = try Systemd.activatedSockets(from: [(listening, "grpc"), (listening2, "api")])
        #expect(both == Systemd.ActivatedSockets(api: listening2, grpc: listening))
        let grpcOnly = try Systemd.activatedSockets(from: [(listening, "grpc")])
        #expect(grpcOnly == Systemd.ActivatedSockets(grpc: listening))
        #expect(throws: Systemd.ActivationError.tooManySockets(socket: "API", count: 2)) {
            try Systemd.activatedSockets(from: [(listening, "unknown"), (listening2, "unknown")])
        }
        #expect(throws: Systemd.ActivationError.tooManySockets(socket: "gRPC", count: 2)) {
            try Systemd.activatedSockets(from: [(listening, "grpc"), (listening2, "grpc")])
        }
        #expect(throws: Systemd.ActivationError.notUnixStreamListener(bound)) {
            try Systemd.activatedSockets(from: [(bound, "unknown")])
        }
        #expect(throws: Systemd.ActivationError.notUnixStreamListener(bound)) {
            try Systemd.activatedSockets(from: [(listening, "api"), (bound, "grpc")])
        }
    }

    @Test func journalStreamNamesDeviceAndInode() throws {
        let directory = try TemporaryDirectory(prefix: "veneer-sd")
        let fd = open(directory.path + "/stream", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        var st = stat()
        try #require(fstat(fd, &st) == 0)
        #expect(Systemd.journalStream("\(st.st_dev):\(st.st_ino)", matches: fd))
        #expect(!Systemd.journalStream("\(st.st_dev + 1):\(st.st_ino)", matches: fd))
        #expect(!Systemd.journalStream("\(st.st_dev):\(st.st_ino):1", matches: fd))
        #expect(!Systemd.journalStream("\(st.st_ino)", matches: fd))
        #expect(!Systemd.journalStream("", matches: fd))
        #expect(!Systemd.journalStream("\(st.st_dev):\(st.st_ino)", matches: -1))
    }

    @Test func journalFieldNamesAreNormalised() {
        #expect(Systemd.journalFieldName("SNAPSHOT_KEY") == "SNAPSHOT_KEY")
        #expect(Systemd.journalFieldName("snapshot.key") == "SNAPSHOT_KEY")
        #expect(Systemd.journalFieldName("hb.request.id") == "HB_REQUEST_ID")
        #expect(Systemd.journalFieldName("request-id") == "REQUEST_ID")
        #expect(Systemd.journalFieldName("_PID") == "PID")
        #expect(Systemd.journalFieldName("2fast") == "FAST")
        #expect(Systemd.journalFieldName("__") == nil)
        #expect(Systemd.journalFieldName("") == nil)
        #expect(Systemd.journalFieldName("ключ") == nil)
        let long = String(repeating: "a", count: 80)
        #expect(Systemd.journalFieldName(long) == String(repeating: "A", count: 64))
    }

    @Test func journalEntriesHaveMessagePriorityAndSortedFields() {
        let entry = Systemd.journalEntry(
            priority: .warning, message: "disk almost full\nsecond line",
            fields: ["snapshot.key": "k1", "request_id": "r-7", "message": "ignored", "...": "dropped"])
        #expect(
            entry == [
                "MESSAGE=disk almost full\nsecond line",
                "PRIORITY=4",
                "REQUEST_ID=r-7",
                "SNAPSHOT_KEY=k1",
            ])
        #expect(Systemd.Priority.allCases.map(\.rawValue) == Array(0...7))
    }

    @Test func messageFormats() {
        #expect(Systemd.reloadingMessage(monotonicMicroseconds: 1234) == "RELOADING=1\nMONOTONIC_USEC=1234")
        #expect(Systemd.singleLine("a\nb\r\nc") == "a b c")
    }
}

// MARK: Helpers (libc only, independent of the code under test)

private enum MonotonicClock {
    static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }
}

/// Sets environment variables (nil unsets) for the duration of `body`, then restores them.
private enum SystemdEnvironment {
    static func with(_ values: [String: String?], _ body: () throws -> Void) throws {
        var saved: [String: String?] = [:]
        for name in values.keys {
            saved[name] = getenv(name).map { String(cString: $0) }
        }
        defer { apply(saved) }
        apply(values)
        try body()
    }

    private static func apply(_ values: [String: String?]) {
        for (name, value) in values {
            if let value {
                setenv(name, value, 1)
            } else {
                unsetenv(name)
            }
        }
    }
}


private enum SystemdSockets {
    static func address(_ name: [UInt8]) throws -> (sockaddr_un, socklen_t) {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        guard name.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw TestFailure("socket name too long")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in name.enumerated() { raw[i] = b }
        }
        let length = MemoryLayout<sa_family_t>.size + name.count + (name.first == 0 ? 0 : 1)
        return (addr, socklen_t(length))
    }

    static func bind(_ fd: Int32, _ name: [UInt8]) throws {
        var (addr, length) = try address(name)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        guard rc == 0 else { throw TestFailure("bind: errno \(errno)") }
    }

    /// A Unix stream socket bound at `path`, listening when asked. The caller closes it.
    static func unixStream(_ path: String, listening: Bool) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        do {
            try bind(fd, Array(path.utf8))
            if listening, listen(fd, 8) != 0 { throw TestFailure("listen: errno \(errno)") }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Runs `body` with descriptors 3 through `last` open: those already open are left
    /// alone, free ones are filled with /dev/null (F_DUPFD hands out the lowest free
    /// descriptor, so nothing else is replaced) and closed afterwards.
    static func withDescriptorsOpen(through last: Int32, _ body: () throws -> Void) throws {
        // May itself become descriptor 3; it stays open until `body` returns.
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard null >= 0 else { throw TestFailure("open /dev/null: errno \(errno)") }
        var opened = [null]
        defer { opened.forEach { close($0) } }
        for fd in 3...last where fcntl(fd, F_GETFD) < 0 {
            let duplicate = fcntl(null, F_DUPFD_CLOEXEC, fd)
            guard duplicate >= 0 else { throw TestFailure("F_DUPFD: errno \(errno)") }
            // Above `fd` when another thread opened `fd` meanwhile: it is open either way.
            opened.append(duplicate)
        }
        try body()
    }
}

/// A datagram socket standing in for systemd's notification socket; it reports only
/// datagrams sent by this process.
private final class NotifyReceiver {
    let path: String
    private let fd: Int32
    private let directory: TemporaryDirectory?

    /// A socket in a scratch directory, or in the abstract namespace (`path` is then
    /// the name without the leading NUL).
    init(abstract: Bool = false) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        if abstract {
            directory = nil
            path = "veneer-notify-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        } else {
            let scratch = try TemporaryDirectory(prefix: "veneer-sd")
            directory = scratch
            path = scratch.path + "/notify"
        }
        var one: Int32 = 1
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        guard setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, socklen_t(MemoryLayout<Int32>.size)) == 0,
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0
        else {
            close(fd)
            throw TestFailure("setsockopt: errno \(errno)")
        }
        do {
            try SystemdSockets.bind(fd, abstract ? [0] + Array(path.utf8) : Array(path.utf8))
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// The next `count` datagrams this process sent; fails after 5 s without one.
    func receive(count: Int) throws -> [String] {
        var texts: [String] = []
        while texts.count < count {
            let (text, sender) = try receiveOne()
            if sender == getpid() { texts.append(text) }
        }
        return texts
    }

    private func receiveOne() throws -> (String, pid_t) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        // cmsghdr, then struct ucred, with room to spare.
        var control = [UInt8](repeating: 0, count: 128)
        let received = buffer.withUnsafeMutableBytes { data -> Int in
            control.withUnsafeMutableBytes { controlBytes -> Int in
                var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer -> Int in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    message.msg_control = controlBytes.baseAddress
                    message.msg_controllen = controlBytes.count
                    return recvmsg(fd, &message, 0)
                }
            }
        }
        guard received >= 0 else { throw TestFailure("no notification within 5 s (errno \(errno))") }
        let text = String(decoding: buffer.prefix(received), as: UTF8.self)
        return (text, senderPID(control))
    }

    /// The PID from the SCM_CREDENTIALS message the kernel attaches with SO_PASSCRED.
    private func senderPID(_ control: [UInt8]) -> pid_t {
        let header = MemoryLayout<cmsghdr>.size
        let level = control.withUnsafeBytes { $0.load(fromByteOffset: MemoryLayout<Int>.size, as: Int32.self) }
        let type = control.withUnsafeBytes { $0.load(fromByteOffset: MemoryLayout<Int>.size + 4, as: Int32.self) }
        guard level == SOL_SOCKET, type == 2 /* SCM_CREDENTIALS */ else { return 0 }
        return control.withUnsafeBytes { $0.load(fromByteOffset: header, as: pid_t.self) }
    }
}
