import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import VeneerCore
import VeneerWire

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
