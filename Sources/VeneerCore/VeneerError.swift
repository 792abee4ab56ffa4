/// The one error type of Veneer. Every failure that reaches a client carries
/// one of these stable codes and a message that names the object and says
/// what to do about it. Each front end maps the codes to its own statuses (HTTP in the
/// API module, gRPC in its adapter).
public struct VeneerError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable {
        case invalidArgument = "invalid_argument"
        case notFound = "not_found"
        case alreadyExists = "already_exists"
        case failedPrecondition = "failed_precondition"
        case resourceExhausted = "resource_exhausted"
        case unavailable = "unavailable"
        case `internal` = "internal"
    }

    public var code: Code
    public var message: String
    /// What failed underneath (a system call, the database), for the daemon's log; a
    /// client sees the message only.
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// Two errors are equal when their codes and messages are; causes are not compared.
    public static func == (lhs: VeneerError, rhs: VeneerError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message
    }

    public static func invalidArgument(_ message: String) -> VeneerError { .init(.invalidArgument, message) }
    public static func notFound(_ message: String) -> VeneerError { .init(.notFound, message) }
    public static func alreadyExists(_ message: String) -> VeneerError { .init(.alreadyExists, message) }
    public static func failedPrecondition(_ message: String) -> VeneerError { .init(.failedPrecondition, message) }
    public static func resourceExhausted(_ message: String) -> VeneerError { .init(.resourceExhausted, message) }
    public static func unavailable(_ message: String) -> VeneerError { .init(.unavailable, message) }
    public static func `internal`(_ message: String, cause: (any Error)? = nil) -> VeneerError {
        .init(.internal, message, cause: cause)
    }
}

/// Quotes a snapshot key for messages, so that keys with spaces or odd bytes stay readable.
public func quoted(_ key: String) -> String {
    var out = "\""
    for scalar in key.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

/// Facts about this build.
public enum Veneer {
    public static let version = "0.1.0"
}
