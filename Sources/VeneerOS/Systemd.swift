internal import CSystemd
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The daemon's side of the systemd service protocol: state notifications
/// (sd_notify), the watchdog, socket activation (sd_listen_fds) and the journal.
///
/// Every call is cheap and safe to make when the process is not run by systemd:
/// notifications are then dropped, `listenFDs()` is empty, `watchdogInterval()`
/// is nil and `isJournalStream()` is false.
public enum Systemd {
    // MARK: Notifications

    /// Sends `state` (newline-separated `KEY=value` assignments) to the service
    /// manager through `$NOTIFY_SOCKET`. The environment is left as it is, so later
    /// notifications work too. Returns true when the datagram was sent; false when
    /// `$NOTIFY_SOCKET` is not set or sending failed.
    @discardableResult
    public static func notify(_ state: String) -> Bool {
        sd_notify(0, state) > 0
    }

    /// True when `$NOTIFY_SOCKET` is set, that is, the service manager waits for
    /// notifications from this process.
    public static var isNotifySocketSet: Bool {
        guard let value = getenv("NOTIFY_SOCKET") else { return false }
        return value.pointee != 0
    }

    /// `READY=1`: start-up (or a reload) is finished and the service answers requests.
    @discardableResult
    public static func ready() -> Bool {
        notify("READY=1")
    }

    /// `STATUS=`: a one-line human-readable state shown by `systemctl status`.
    /// Line breaks in `text` become spaces.
    @discardableResult
    public static func status(_ text: String) -> Bool {
        notify("STATUS=" + singleLine(text))
    }

    /// `STOPPING=1`: shutdown has begun.
    @discardableResult
    public static func stopping() -> Bool {
        notify("STOPPING=1")
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (the CLOCK_MONOTONIC time of the
    /// reload's start, as systemd 253 and later require for `Type=notify-reload`).
    /// Send `READY=1` when the reload is done.
    @discardableResult
    public static func reloading() -> Bool {
        notify(reloadingMessage(monotonicMicroseconds: monotonicMicroseconds()))
    }

    /// `WATCHDOG=1`: the service is alive. Send it at least every
    /// `watchdogInterval()`; systemd kills (and with `Restart=` restarts) a service
    /// that misses it.
    @discardableResult
    public static func watchdog() -> Bool {
        notify("WATCHDOG=1")
    }

    /// `EXTEND_TIMEOUT_USEC=`: asks for `microseconds` more before the start-up,
    /// runtime or stop timeout fires; repeat it while long work goes on.
    @discardableResult
    public static func extendTimeout(microseconds: UInt64) -> Bool {
        notify("EXTEND_TIMEOUT_USEC=\(microseconds)")
    }

    /// `ERRNO=`: the errno-style reason of a failure, shown by `systemctl status`.
    @discardableResult
    public static func errno(_ code: Int32) -> Bool {
        notify("ERRNO=\(code)")
    }

    /// The text `reloading()` sends, for a given CLOCK_MONOTONIC time.
    static func reloadingMessage(monotonicMicroseconds: UInt64) -> String {
        "RELOADING=1\nMONOTONIC_USEC=\(monotonicMicroseconds)"
    }

    /// CLOCK_MONOTONIC in microseconds, the clock systemd's `MONOTONIC_USEC=` uses.
    public static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }

    static func singleLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }

    // MARK: Watchdog

    /// The watchdog period systemd expects `WATCHDOG=1` within (`$WATCHDOG_USEC`,
    /// honoured only when `$WATCHDOG_PID` is unset or this process), or nil when
    /// the watchdog is off. Ping at half this period.
    public static func watchdogInterval() -> Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(clamping: usec))
    }

    // MARK: Socket activation

    /// The file descriptors passed by socket activation (`$LISTEN_FDS` starting at
    /// `SD_LISTEN_FDS_START`, honoured only when `$LISTEN_PID` is this process), in
    /// order; empty without activation. The descriptors get FD_CLOEXEC. The
    /// environment is left as it is: the variables name this process, so children
    /// ignore them.
    public static func listenFDs() -> [Int32] {
        let count = sd_listen_fds(0)
        guard count > 0 else { return [] }
        let start = Int32(SD_LISTEN_FDS_START)
        return Array(start..<(start + count))
    }

    /// ``listenFDs()`` with the name each was given (`FileDescriptorName=` of its socket
    /// unit; `$LISTEN_FDNAMES`), `unknown` where systemd gave none.
    public static func listenFDsWithNames() -> [(fd: Int32, name: String)] {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let count = sd_listen_fds_with_names(0, &names)
        defer {
            if let names {
                var at = names
                while let name = at.pointee {
                    free(name)
                    at += 1
                }
                free(names)
            }
        }
        guard count > 0 else { return [] }
        let start = Int32(SD_LISTEN_FDS_START)
        return (0..<count).map { index in
            let name = names.flatMap { $0[Int(index)] }.map { String(cString: $0) } ?? "unknown"
            return (start + index, name)
        }
    }

    /// True when `fd` is a listening AF_UNIX stream socket, the only kind veneerd
    /// serves on.
    public static func isListeningUnixStreamSocket(_ fd: Int32) -> Bool {
        sd_is_socket_unix(fd, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0
    }

    public enum ActivationError: Error, Sendable, Equatable, CustomStringConvertible {
        /// More than one descriptor was passed for one socket: `api` (any name but
        /// `grpc`) or `grpc`.
        case tooManySockets(socket: String, count: Int)
        /// The descriptor is not a listening AF_UNIX stream socket.
        case notUnixStreamListener(Int32)

        public var description: String {
            switch self {
            case .tooManySockets(let socket, let count):
                return "socket activation passed \(count) descriptors for the \(socket) socket; give each socket unit one ListenStream= with a path, and the gRPC one FileDescriptorName=grpc"
            case .notUnixStreamListener(let fd):
                return "socket activation passed descriptor \(fd), which is not a listening Unix stream socket; use ListenStream= with a path"
            }
        }
    }

    /// The listening sockets socket activation passed, by what they serve.
    public struct ActivatedSockets: Sendable, Equatable {
        /// The HTTP API's socket.
        public var api: Int32?
        /// containerd's gRPC socket: the descriptor named `grpc`.
        public var grpc: Int32?

        public init(api: Int32? = nil, grpc: Int32? = nil) {
            self.api = api
            self.grpc = grpc
        }
    }

    /// The name that marks the gRPC socket among the activated ones.
    public static let grpcSocketName = "grpc"

    /// The listening Unix stream sockets systemd passed: the one named
    /// ``grpcSocketName`` serves gRPC, the other one the API; none when the process was
    /// not socket-activated. Throws when the activation does not fit (two descriptors
    /// for one socket, or the wrong kind of socket).
    public static func activatedSockets() throws(ActivationError) -> ActivatedSockets {
        try activatedSockets(from: listenFDsWithNames())
    }

    static func activatedSockets(from fds: [(fd: Int32, name: String)]) throws(ActivationError) -> ActivatedSockets {
        let grpc = fds.filter { $0.name == grpcSocketName }
        let api = fds.filter { $0.name != grpcSocketName }
        if api.count > 1 { throw .tooManySockets(socket: "API", count: api.count) }
        if grpc.count > 1 { throw .tooManySockets(socket: "gRPC", count: grpc.count) }
        for (fd, _) in fds where !isListeningUnixStreamSocket(fd) { throw .notUnixStreamListener(fd) }
        return ActivatedSockets(api: api.first?.fd, grpc: grpc.first?.fd)
    }

    // MARK: Journal

    /// True when standard error is connected to the journal: `$JOURNAL_STREAM`
    /// (`device:inode`, set by systemd for `StandardError=journal`) names the
    /// file standard error is open on. A child of the service that redirected its
    /// stderr elsewhere sees false.
    public static func isJournalStream() -> Bool {
        guard let raw = getenv("JOURNAL_STREAM") else { return false }
        return journalStream(String(cString: raw), matches: STDERR_FILENO)
    }

    /// True when `value` (`device:inode`, decimal) names the file open on `fd`.
    static func journalStream(_ value: String, matches fd: Int32) -> Bool {
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        return UInt64(st.st_dev) == device && UInt64(st.st_ino) == inode
    }

    /// syslog(3) priorities as the journal's `PRIORITY=` field uses them.
    public enum Priority: Int32, Sendable, CaseIterable {
        case emergency = 0
        case alert = 1
        case critical = 2
        case error = 3
        case warning = 4
        case notice = 5
        case info = 6
        case debug = 7
    }

    /// Sends one structured entry to the journal: `MESSAGE=`, `PRIORITY=` and
    /// `fields` (names are normalised by `journalFieldName`; fields whose name
    /// cannot be made valid are dropped). Values may hold any text, line breaks
    /// included. Returns false when the journal cannot be reached.
    @discardableResult
    public static func journalSend(
        priority: Priority, message: String, fields: [String: String] = [:]
    ) -> Bool {
        let entry = journalEntry(priority: priority, message: message, fields: fields)
        var joined: [UInt8] = []
        var spans: [(offset: Int, length: Int)] = []
        for item in entry {
            spans.append((joined.count, item.utf8.count))
            joined.append(contentsOf: item.utf8)
        }
        return joined.withUnsafeMutableBytes { raw -> Bool in
            guard let base = raw.baseAddress else { return false }
            let vectors = spans.map { iovec(iov_base: base + $0.offset, iov_len: $0.length) }
            return vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) >= 0 }
        }
    }

    /// The `NAME=value` items of a journal entry, in a stable order: MESSAGE,
    /// PRIORITY, then the fields sorted by name.
    static func journalEntry(priority: Priority, message: String, fields: [String: String]) -> [String] {
        var items = ["MESSAGE=" + message, "PRIORITY=\(priority.rawValue)"]
        var named: [String: String] = [:]
        for (name, value) in fields {
            guard let field = journalFieldName(name), field != "MESSAGE", field != "PRIORITY" else { continue }
            named[field] = value
        }
        for name in named.keys.sorted() {
            items.append(name + "=" + (named[name] ?? ""))
        }
        return items
    }

    /// A valid journal field name for `name`: ASCII letters upper-cased, every
    /// other character except digits becomes `_`, leading underscores and digits
    /// (reserved or invalid) are dropped, at most 64 characters. Nil when nothing
    /// is left. `snapshot.key` becomes `SNAPSHOT_KEY`.
    public static func journalFieldName(_ name: String) -> String? {
        var bytes: [UInt8] = []
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                bytes.append(byte)
            case UInt8(ascii: "a")...UInt8(ascii: "z"):
                bytes.append(byte - 32)
            default:
                bytes.append(UInt8(ascii: "_"))
            }
        }
        let leading = bytes.prefix { $0 == UInt8(ascii: "_") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        bytes.removeFirst(leading.count)
        guard !bytes.isEmpty else { return nil }
        return String(decoding: bytes.prefix(64), as: UTF8.self)
    }
}
