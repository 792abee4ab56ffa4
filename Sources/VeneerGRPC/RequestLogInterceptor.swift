import GRPCCore
import Logging

/// One debug line per RPC, as the HTTP front end logs each request: the method, the
/// status code it ended with and how long it took (for List, until its last message).
public struct RequestLogInterceptor: ServerInterceptor {
    let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        guard logger.logLevel <= .debug else { return try await next(request, context) }
        let start = ContinuousClock.now
        let method = context.descriptor.method
        let logger = self.logger
        var response: StreamingServerResponse<Output>
        do {
            response = try await next(request, context)
        } catch {
            Self.log(logger, method, Self.code(of: error), since: start)
            throw error
        }
        switch response.accepted {
        case .failure(let error):
            Self.log(logger, method, error.code, since: start)
        case .success(var contents):
            let producer = contents.producer
            contents.producer = { writer in
                do {
                    let trailers = try await producer(writer)
                    Self.log(logger, method, nil, since: start)
                    return trailers
                } catch {
                    Self.log(logger, method, Self.code(of: error), since: start)
                    throw error
                }
            }
            response.accepted = .success(contents)
        }
        return response
    }

    static func code(of error: any Error) -> RPCError.Code {
        if let error = error as? RPCError { return error.code }
        if let error = error as? any RPCErrorConvertible { return error.rpcErrorCode }
        return .unknown
    }

    private static func log(_ logger: Logger, _ method: String, _ code: RPCError.Code?, since start: ContinuousClock.Instant) {
        let micros = Int64((ContinuousClock.now - start) / .microseconds(1))
        logger.debug(
            "rpc", metadata: ["method": "\(method)", "code": "\(code.map { "\($0)" } ?? "ok")", "duration_us": "\(micros)"])
    }
}
