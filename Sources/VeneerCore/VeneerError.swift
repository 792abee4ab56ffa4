/// The one error type of Veneer. Every failure that reaches a client carries
/// one of these stable codes and a message that names the object and says
/// what to do about it.
public struct VeneerError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Codable, CaseIterable {
        case invalidArgument = "invalid_argument"
        case notFound = "not_found"
        case alreadyExists = "already_exists"
        case failedPrecondition = "failed_precondition"
        case resourceExhausted = "resource_exhausted"
        case unavailable = "unavailable"
        case `internal` = "internal"
        /// A request body over the size limit (HTTP 413).
        case payloadTooLarge = "payload_too_large"
        /// A request body that is not JSON (HTTP 415).
        case unsupportedMediaType = "unsupported_media_type"
        /// A method that an existing path does not answer (HTTP 405).
        case methodNotAllowed = "method_not_allowed"
        /// A request that did not arrive in time (HTTP 408); the connection is closed.
        case requestTimeout = "request_timeout"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public static func invalidArgument(_ message: String) -> VeneerError { .init(.invalidArgument, message) }
    public static func notFound(_ message: String) -> VeneerError { .init(.notFound, message) }
    public static func alreadyExists(_ message: String) -> VeneerError { .init(.alreadyExists, message) }
    public static func failedPrecondition(_ message: String) -> VeneerError { .init(.failedPrecondition, message) }
    public static func resourceExhausted(_ message: String) -> VeneerError { .init(.resourceExhausted, message) }
    public static func unavailable(_ message: String) -> VeneerError { .init(.unavailable, message) }
    public static func `internal`(_ message: String) -> VeneerError { .init(.internal, message) }
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
