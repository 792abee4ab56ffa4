import Foundation
import VeneerClient
import VeneerOS

#if canImport(Glibc)
import Glibc
#endif

/// HTTP/1.1 over the Unix socket with nothing repaired on the way: the request target
/// is sent exactly as given. `VeneerClient.send` cannot send every target: it escapes a
/// `%` not followed by two hex digits, and a path whose escapes do not decode to UTF-8
/// reaches the daemon as `/`.
public enum RawHTTP {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// One request on a connection of its own. It says `Connection: close` unless
    /// `keepAlive`, in which case reading stops once one whole response has arrived.
    public static func exchange(
        socket: String, method: String, target: String, body: [UInt8]?, headers: [(String, String)],
        keepAlive: Bool = false
    ) throws -> RawResponse {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\n"
        if !keepAlive { head += "Connection: close\r\n" }
        for (name, value) in headers {
            head += "\(name): \(value)\r\n"
        }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        let connection = try UnixStreamConnection(path: socket)
        try connection.writeAll(Array(head.utf8) + (body ?? []))
        var received: [UInt8] = []
        while true {
            if keepAlive, let response = try? parse(received),
                let length = response.header("Content-Length").flatMap(Int.init), response.body.count == length
            {
                return response
            }
            let before = received.count
            try connection.read(into: &received)
            if received.count == before { break }
        }
        return try parse(received)
    }

    public static func parse(_ data: [UInt8]) throws -> RawResponse {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = data.indices.first(where: { data[$0...].starts(with: separator) }) else {
            throw Failure(description: "no end of headers in \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
        let lines = String(decoding: data[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw Failure(description: "bad status line \(lines[0])")
        }
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var body = Array(data[(end + 4)...])
        let response = RawResponse(status: status, headers: headers, body: body)
        if response.header("Transfer-Encoding")?.lowercased() == "chunked" {
            body = try dechunk(body)
        } else if let length = response.header("Content-Length").flatMap(Int.init) {
            guard body.count >= length else { throw Failure(description: "short body: \(body.count) of \(length)") }
            body = Array(body.prefix(length))
        }
        return RawResponse(status: status, headers: headers, body: body)
    }

    private static func dechunk(_ data: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        var rest = data[...]
        while true {
            guard let lineEnd = rest.indices.first(where: { rest[$0...].starts(with: [13, 10]) }),
                let size = Int(String(decoding: rest[..<lineEnd], as: UTF8.self).split(separator: ";")[0], radix: 16)
            else { throw Failure(description: "bad chunk") }
            rest = rest[(lineEnd + 2)...]
            if size == 0 { return out }
            guard rest.count >= size + 2 else { throw Failure(description: "short chunk") }
            out += rest.prefix(size)
            rest = rest.dropFirst(size + 2)
        }
    }
}


/// A raw connection to the daemon and what it received until the daemon closed it.
public struct ClosedConnection {
    public var received: [UInt8]
    /// Seconds from the call until the end of stream.
    public var seconds: Double
    public var text: String { String(decoding: received, as: UTF8.self) }
}

extension RawHTTP {
    /// Reads until the daemon closes `connection`; fails after `limit` seconds without
    /// an end of stream.
    public static func readUntilClosed(_ connection: UnixStreamConnection, limit: Int) throws -> ClosedConnection {
        try connection.setReadTimeout(seconds: limit)
        let start = Date()
        var received: [UInt8] = []
        while true {
            let before = received.count
            do {
                try connection.read(into: &received)
            } catch {
                if error.errno == EAGAIN || error.errno == EWOULDBLOCK {
                    throw Failure(description: "the connection was still open after \(limit) s; received \(received.count) bytes")
                }
                // A reset after the answer is an end of stream too.
                if error.errno == ECONNRESET { break }
                throw error
            }
            if received.count == before { break }
            if Date().timeIntervalSince(start) > Double(limit) {
                throw Failure(description: "the connection kept sending for \(limit) s")
            }
        }
        return ClosedConnection(received: received, seconds: Date().timeIntervalSince(start))
    }

    /// Reads one whole response (with a Content-Length) from a keep-alive connection.
    public static func readResponse(_ connection: UnixStreamConnection) throws -> RawResponse {
        var received: [UInt8] = []
        while true {
            if let response = try? parse(received), let length = response.header("Content-Length").flatMap(Int.init),
                response.body.count == length
            {
                return response
            }
            let before = received.count
            try connection.read(into: &received)
            if received.count == before {
                throw Failure(description: "the connection closed after \(received.count) bytes")
            }
        }
    }

    /// `GET /v1/status` on a connection of its own; nil if it cannot be exchanged.
    public static func status(socket: String) -> Int? {
        (try? exchange(socket: socket, method: "GET", target: "/v1/status", body: nil, headers: []))?.status
    }

    /// Opens `count` connections that send nothing.
    public static func idleConnections(socket: String, count: Int) throws -> [UnixStreamConnection] {
        try (0..<count).map { _ in try UnixStreamConnection(path: socket) }
    }
}
