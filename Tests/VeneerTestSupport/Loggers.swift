import Logging
import Synchronization

/// Loggers for code under test.
public enum TestLoggers {
    /// A logger that drops everything.
    public static func quiet(_ label: String = "veneer.test") -> Logger {
        Logger(label: label) { _ in SwiftLogNoOpLogHandler() }
    }

    /// A logger, at `level`, that keeps what it is given in `entries`.
    public static func capturing(
        _ label: String = "veneer.test", level: Logger.Level = .info
    ) -> (logger: Logger, entries: LogEntries) {
        let entries = LogEntries()
        var logger = Logger(label: label) { _ in CapturingLogHandler(entries: entries) }
        logger.logLevel = level
        return (logger, entries)
    }
}

/// What a capturing logger was given: level, message and metadata, rendered as text.
public final class LogEntries: Sendable {
    public struct Entry: Sendable, Equatable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
    }

    private let kept = Mutex<[Entry]>([])

    public var all: [Entry] { kept.withLock { $0 } }

    func append(_ entry: Entry) { kept.withLock { $0.append(entry) } }
}

struct CapturingLogHandler: LogHandler {
    let entries: LogEntries
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        entries.append(.init(
            level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
    }
}
