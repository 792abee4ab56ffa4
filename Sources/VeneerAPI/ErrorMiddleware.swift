import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import VeneerCore
import VeneerWire

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
                case 400..<500: .service(.invalidArgument)
                case 503: .service(.unavailable)
                default: .service(.internal)
                }
            return JSON.error(APIError(code, "request failed: \(error.status)"))
        } catch {
            context.logger.error("unexpected error", metadata: ["error": "\(error)"])
            return JSON.error(.internal("unexpected error: \(error)"))
        }
    }
}
