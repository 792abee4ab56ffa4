import HTTPTypes
import VeneerCore
import VeneerWire

/// Whole HTTP/1.1 responses, as bytes, for connections the daemon answers and closes
/// before any request on them reaches the HTTP codec or the router: a connection over
/// the connection limit, a request whose head did not arrive in time. They carry the
/// API's JSON error body and `Connection: close`.
public enum ConnectionAnswers {
    /// A `503` `unavailable`: the daemon holds `limit` connections already.
    public static func overCapacity(limit: Int, serverName: String?) -> [UInt8] {
        raw(
            .unavailable(
                "veneerd already serves \(limit) connections (max_connections); retry after a moment, or close idle connections and raise max_connections"),
            serverName: serverName)
    }

    /// A `408`: the head of a request did not arrive within `seconds`.
    public static func requestTimeout(seconds: Int, serverName: String?) -> [UInt8] {
        raw(
            APIError(
                .requestTimeout,
                "the request's head did not arrive within \(seconds) s (read_timeout); send each request whole, and promptly; the connection is closed"),
            serverName: serverName)
    }

    static func raw(_ error: VeneerError, serverName: String?) -> [UInt8] {
        raw(APIError(error), serverName: serverName)
    }

    static func raw(_ error: APIError, serverName: String?) -> [UInt8] {
        let status = error.code.httpStatus
        let body = JSON.errorBody(error)
        var head = "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\n"
        head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        if let serverName { head += "Server: \(serverName)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }
}
