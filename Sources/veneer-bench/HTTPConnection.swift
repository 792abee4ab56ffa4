import Foundation
import VeneerOS

/// A minimal keep-alive HTTP/1.1 client over one Unix-socket connection. The
/// benchmark uses it so that the figures measure the daemon, not a client library.
final class HTTPConnection {
    private let connection: UnixStreamConnection
    private var buffer: [UInt8] = []

    init(socket: String) throws {
        connection = try UnixStreamConnection(path: socket)
    }

    struct Response {
        var status: Int
        var body: [UInt8]
    }

    func request(_ method: String, _ path: String, json: String? = nil) throws -> Response {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: veneer\r\n"
        if let json {
            head += "Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n" + json
        } else {
            head += "Content-Length: 0\r\n\r\n"
        }
        try connection.writeAll(Array(head.utf8))
        return try readResponse()
    }

    /// A request whose body is the file at `path`, sent in 1 MiB pieces as it is read.
    func upload(_ method: String, _ target: String, contentType: String, file path: String) throws -> Response {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw BenchError("cannot open \(path)") }
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        try handle.seek(toOffset: 0)
        let head = "\(method) \(target) HTTP/1.1\r\nHost: veneer\r\nContent-Type: \(contentType)\r\nContent-Length: \(size)\r\n\r\n"
        try connection.writeAll(Array(head.utf8))
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            try connection.writeAll(Array(chunk))
        }
        return try readResponse()
    }

    private func readResponse() throws -> Response {
        // Head.
        var headEnd: Int?
        while headEnd == nil {
            headEnd = Self.find(buffer, [13, 10, 13, 10])
            if headEnd == nil { try fill() }
        }
        guard let end = headEnd else { throw BenchError("no response head") }
        let head = String(decoding: buffer[..<end], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let statusLine = lines.first else { throw BenchError("empty response") }
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw BenchError("bad status line \(statusLine)") }
        var length = 0
        var chunked = false
        for line in lines.dropFirst() {
            let pair = line.split(separator: ":", maxSplits: 1)
            if pair.count == 2, pair[0].lowercased() == "content-length" {
                length = Int(pair[1].trimmingSpaces) ?? 0
            }
            if pair.count == 2, pair[0].lowercased() == "transfer-encoding", pair[1].lowercased().contains("chunked") {
                chunked = true
            }
        }
        if chunked {
            buffer.removeFirst(end + 4)
            return Response(status: status, body: try readChunks())
        }
        let bodyStart = end + 4
        while buffer.count < bodyStart + length { try fill() }
        let body = Array(buffer[bodyStart..<(bodyStart + length)])
        buffer.removeFirst(bodyStart + length)
        return Response(status: status, body: body)
    }

    /// A chunked body, to its last chunk (trailers are not expected).
    private func readChunks() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            var lineEnd = Self.find(buffer, [13, 10])
            while lineEnd == nil {
                try fill()
                lineEnd = Self.find(buffer, [13, 10])
            }
            guard let sizeEnd = lineEnd else { throw BenchError("bad chunk") }
            let sizeText = String(decoding: buffer[..<sizeEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText, radix: 16) else { throw BenchError("bad chunk size \(sizeText)") }
            while buffer.count < sizeEnd + 2 + size + 2 { try fill() }
            body += buffer[(sizeEnd + 2)..<(sizeEnd + 2 + size)]
            buffer.removeFirst(sizeEnd + 2 + size + 2)
            if size == 0 { return body }
        }
    }

    private func fill() throws {
        let before = buffer.count
        try connection.read(into: &buffer)
        if buffer.count == before { throw BenchError("connection closed by the daemon") }
    }

    private static func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        return haystack.withUnsafeBufferPointer { h in
            needle.withUnsafeBufferPointer { n in
                var i = 0
                let last = h.count - n.count
                while i <= last {
                    if h[i] == n[0] {
                        var j = 1
                        while j < n.count && h[i + j] == n[j] { j += 1 }
                        if j == n.count { return i }
                    }
                    i += 1
                }
                return nil
            }
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }
}
