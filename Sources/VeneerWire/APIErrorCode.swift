import VeneerCore

/// The `code` of an error answer (`{"error": {"code", "message"}}`): one of the service's
/// codes, or one of four that only HTTP has, for requests refused before they reach the
/// service.
public enum APIErrorCode: Sendable, Hashable, CaseIterable, RawRepresentable {
    case service(VeneerError.Code)
    /// A request body over the size limit (HTTP 413).
    case payloadTooLarge
    /// A request body that is not JSON (HTTP 415).
    case unsupportedMediaType
    /// A method that an existing path does not answer (HTTP 405).
    case methodNotAllowed
    /// A request that did not arrive in time (HTTP 408); the connection is closed.
    case requestTimeout

    public static let allCases: [APIErrorCode] =
        VeneerError.Code.allCases.map(APIErrorCode.service)
        + [.payloadTooLarge, .unsupportedMediaType, .methodNotAllowed, .requestTimeout]

    public init?(rawValue: String) {
        if let code = VeneerError.Code(rawValue: rawValue) {
            self = .service(code)
            return
        }
        switch rawValue {
        case "payload_too_large": self = .payloadTooLarge
        case "unsupported_media_type": self = .unsupportedMediaType
        case "method_not_allowed": self = .methodNotAllowed
        case "request_timeout": self = .requestTimeout
        default: return nil
        }
    }

    public var rawValue: String {
        switch self {
        case .service(let code): code.rawValue
        case .payloadTooLarge: "payload_too_large"
        case .unsupportedMediaType: "unsupported_media_type"
        case .methodNotAllowed: "method_not_allowed"
        case .requestTimeout: "request_timeout"
        }
    }

    /// The service's code for an answer with this code: its own, or for the HTTP-only
    /// codes the nearest one (a request the client should change is an invalid argument;
    /// one that did not arrive in time, unavailable).
    public var serviceCode: VeneerError.Code {
        switch self {
        case .service(let code): code
        case .payloadTooLarge, .unsupportedMediaType, .methodNotAllowed: .invalidArgument
        case .requestTimeout: .unavailable
        }
    }
}
