import VeneerCore

/// The `code` of an error answer (`{"error": {"code", "message"}}`): the service's codes,
/// and four that only HTTP has, for requests refused before they reach the service.
public enum APIErrorCode: String, Sendable, Codable, CaseIterable {
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

    public init(_ code: VeneerError.Code) {
        switch code {
        case .invalidArgument: self = .invalidArgument
        case .notFound: self = .notFound
        case .alreadyExists: self = .alreadyExists
        case .failedPrecondition: self = .failedPrecondition
        case .resourceExhausted: self = .resourceExhausted
        case .unavailable: self = .unavailable
        case .internal: self = .internal
        }
    }

    /// The service's code for an answer with this code: itself, or for the HTTP-only
    /// codes the nearest one (a request the client should change is an invalid
    /// argument; one that did not arrive in time, unavailable).
    public var serviceCode: VeneerError.Code {
        switch self {
        case .invalidArgument, .payloadTooLarge, .unsupportedMediaType, .methodNotAllowed: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .failedPrecondition: .failedPrecondition
        case .resourceExhausted: .resourceExhausted
        case .unavailable, .requestTimeout: .unavailable
        case .internal: .internal
        }
    }
}
