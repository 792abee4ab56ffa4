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
        self.init(APIErrorCode(error.code), error.message)
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

extension APIErrorCode {
    /// HTTP status of each error code.
    public var httpStatus: HTTPResponse.Status {
        switch self {
        case .invalidArgument: .badRequest
        case .notFound: .notFound
        case .alreadyExists: .conflict
        case .failedPrecondition: .conflict
        case .resourceExhausted: .init(code: 507, reasonPhrase: "Insufficient Storage")
        case .unavailable: .serviceUnavailable
        case .internal: .internalServerError
        case .payloadTooLarge: .contentTooLarge
        case .unsupportedMediaType: .unsupportedMediaType
        case .methodNotAllowed: .methodNotAllowed
        case .requestTimeout: .requestTimeout
        }
    }
}

enum JSON {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try encoder.encode(value)
        var buffer = ByteBufferAllocator().buffer(capacity: data.count + 1)
        buffer.writeBytes(data)
        buffer.writeInteger(UInt8(ascii: "\n"))
        return Response(
            status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
    }

    /// A response whose body was written by `JSONWriter`.
    static func response(bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func error(_ error: APIError) -> Response {
        response(bytes: errorBody(error), status: error.code.httpStatus)
    }

    static func error(_ error: VeneerError) -> Response { self.error(APIError(error)) }

    /// An error as the API answers it, whichever path answers: internal errors are
    /// logged with their cause (they are the daemon's fault, not the client's), then
    /// the status and body.
    static func answer(_ error: VeneerError, logger: Logger) -> (HTTPResponse.Status, [UInt8]) {
        if error.code == .internal {
            var metadata: Logger.Metadata = ["error": "\(error.message)"]
            if let cause = error.cause { metadata["cause"] = "\(cause)" }
            logger.error("internal error", metadata: metadata)
        }
        return answer(APIError(error))
    }

    static func answer(_ error: APIError) -> (HTTPResponse.Status, [UInt8]) {
        (error.code.httpStatus, errorBody(error))
    }

    static func errorBody(_ error: VeneerError) -> [UInt8] { errorBody(APIError(error)) }

    /// The `{"error": {"code", "message"}}` body of `error`, newline-terminated.
    static func errorBody(_ error: APIError) -> [UInt8] {
        // Encoding two strings cannot fail; fall back to a fixed body all the same.
        guard let data = try? encoder.encode(ErrorResponse(code: error.code.rawValue, message: error.message)) else {
            return Array(#"{"error":{"code":"internal","message":"cannot encode an error"}}"#.utf8) + [UInt8(ascii: "\n")]
        }
        return Array(data) + [UInt8(ascii: "\n")]
    }
}

/// Turns every error a handler throws into the `{"error": {"code", "message"}}` body,
/// and answers unknown routes and methods in the same shape.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPParserError {
            // A malformed request body: the connection answers it (see
            // ``ParseErrorAnswerHandler``) and closes, since nothing after it can be read.
            throw error
        } catch let error as VeneerError {
            let (status, body) = JSON.answer(error, logger: context.logger)
            return JSON.response(bytes: body, status: status)
        } catch let error as APIError {
            let (status, body) = JSON.answer(error)
            return JSON.response(bytes: body, status: status)
        } catch let error as HTTPError where error.status == .notFound {
            return JSON.error(.notFound(
                "no route for \(request.method) \(request.uri.path); see api/openapi.yaml for the endpoints"))
        } catch is NIOTooManyBytesError {
            return JSON.error(APIError(.payloadTooLarge, "request body is larger than 1 MiB; send a smaller body"))
        } catch let error as HTTPResponseError {
            let code: APIErrorCode =
                switch error.status.code {
                case 413: .payloadTooLarge
                case 415: .unsupportedMediaType
                case 400..<500: .invalidArgument
                case 503: .unavailable
                default: .internal
                }
            return JSON.error(APIError(code, "request failed: \(error.status)"))
        } catch {
            context.logger.error("unexpected error", metadata: ["error": "\(error)"])
            return JSON.error(.internal("unexpected error: \(error)"))
        }
    }
}
