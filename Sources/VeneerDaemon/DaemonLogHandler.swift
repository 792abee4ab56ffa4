import Foundation
import Logging
import Synchronization
import VeneerCore
import VeneerOS

/// The daemon's log level, changeable while running (on reload).
public final class LogLevelControl: Sendable {
    private let level: Mutex<Logger.Level>

    public init(_ level: Logger.Level) {
        self.level = Mutex(level)
    }

    public var current: Logger.Level {
        get { level.withLock { $0 } }
        set { level.withLock { $0 = newValue } }
    }
}

/// Logs to the systemd journal when standard error is connected to it (structured:
/// PRIORITY per level, metadata as fields such as SNAPSHOT_KEY and REQUEST_ID),
/// otherwise as plain text lines on standard error, one line per entry with the
/// control characters of every logged value escaped. Journal fields are sent as they
/// are: each is a field of its own, so a newline in one cannot forge an entry.
public struct DaemonLogHandler: LogHandler {
    public enum Destination: Sendable {
        case journal
        case standardError
    }

    let label: String
    let control: LogLevelControl
    let destination: Destination
    public var metadata: Logger.Metadata = [:]

    public init(label: String, control: LogLevelControl, destination: Destination) {
        self.label = label
        self.control = control
        self.destination = destination
    }

    /// Where logs go for this process: the journal if JOURNAL_STREAM names our stderr.
    public static var defaultDestination: Destination {
        Systemd.isJournalStream() ? .journal : .standardError
    }

    public var logLevel: Logger.Level {
        get { control.current }
        set { control.current = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level
        let message = event.message
        let explicit = event.metadata
        var all = metadata
        if let explicit { all.merge(explicit) { $1 } }
        switch destination {
        case .journal:
            var fields: [String: String] = ["SYSLOG_IDENTIFIER": "veneerd", "LOGGER": label]
            for (key, value) in all {
                fields[Self.journalField(key)] = "\(value)"
            }
            Systemd.journalSend(priority: Self.priority(level), message: message.description, fields: fields)
        case .standardError:
            let line = Self.textLine(
                timestamp: Self.timestamp(), level: level, label: label, message: message.description, metadata: all)
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    /// One entry as a line of text: time, level, logger, message, then the metadata
    /// sorted by key. Every part but the time and level is escaped (``LogText``), so
    /// that a client's value, such as a key with a newline, cannot start a line.
    static func textLine(
        timestamp: String, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata
    ) -> String {
        var text = timestamp + " " + level.rawValue + " " + LogText.escaped(label) + ": " + LogText.escaped(message)
        for key in metadata.keys.sorted() {
            text += " " + LogText.escaped(key) + "=" + LogText.escaped(metadata[key].map { "\($0)" } ?? "")
        }
        return text + "\n"
    }

    static func journalField(_ key: String) -> String {
        switch key {
        case "hb.request.id": "REQUEST_ID"
        default: Systemd.journalFieldName(key) ?? "FIELD"
        }
    }

    static func priority(_ level: Logger.Level) -> Systemd.Priority {
        switch level {
        case .trace, .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
    }

    private static func timestamp() -> String {
        Timestamp(nanosecondsSinceEpoch: SystemClock.realtimeNanoseconds()).rfc3339
    }
}
