import Foundation
import Hummingbird
import Logging
import VeneerCore
import VeneerJSON
import VeneerService
import VeneerWire

/// One debug line per request: method, path, status, duration.
struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard context.logger.logLevel <= .debug else {
            return try await next(request, context)
        }
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let micros = Int64((ContinuousClock.now - start) / .microseconds(1))
        context.logger.debug(
            "request",
            metadata: [
                "method": "\(request.method)", "path": "\(request.uri.path)",
                "status": "\(response.status.code)", "duration_us": "\(micros)",
            ])
        return response
    }
}
