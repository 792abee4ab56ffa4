import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import VeneerCore
import VeneerWire

/// An error as the HTTP API answers it: a service error, or one of the refusals only
/// HTTP has (413, 415, 405, 408), made before a request reaches the service.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var code: APIErrorCode
    public var message: String

    public init(_ code: APIErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public init(_ error: VeneerError) {
        self.init(.service(error.code), error.message)
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

extension APIErrorCode {
    /// HTTP status of each error code.
    public var httpStatus: HTTPResponse.Status {
        switch self {
        case .service(.invalidArgument): .badRequest
        case .service(.notFound): .notFound
        case .service(.alreadyExists), .service(.failedPrecondition): .conflict
        case .service(.resourceExhausted): .init(code: 507, reasonPhrase: "Insufficient Storage")
        case .service(.unavailable): .serviceUnavailable
        case .service(.internal): .internalServerError
        case .payloadTooLarge: .contentTooLarge
        case .unsupportedMediaType: .unsupportedMediaType
        case .methodNotAllowed: .methodNotAllowed
        case .requestTimeout: .requestTimeout
        }
    }
}
