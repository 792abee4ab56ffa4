import Logging

/// Loggers for code under test.
public enum TestLoggers {
    /// A logger that drops everything.
    public static func quiet(_ label: String = "veneer.test") -> Logger {
        Logger(label: label) { _ in SwiftLogNoOpLogHandler() }
    }
}
