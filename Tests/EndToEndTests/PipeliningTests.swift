import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerOS
import VeneerTestSupport
import VeneerWire

extension RawHTTP {
    /// Sends `requests` (complete HTTP/1.1 requests) in one write on one connection and
    /// reads responses until the daemon closes it (the last request should say
    /// `Connection: close`). Every response but a 204 must carry a Content-Length.
    static func pipelined(socket: String, _ requests: [String]) throws -> [RawResponse] {
        let connection = try UnixStreamConnection(path: socket)
        try connection.writeAll(Array(requests.joined().utf8))
        var received: [UInt8] = []
        while true {
            let before = received.count
            try connection.read(into: &received)
            if received.count == before { break }
        }
        var responses: [RawResponse] = []
        var rest = received[...]
        let separator: [UInt8] = [13, 10, 13, 10]
        while !rest.isEmpty {
            guard let headEnd = rest.indices.first(where: { rest[$0...].starts(with: separator) }) else {
                throw Failure(description: "no end of headers in \(String(decoding: rest.prefix(200), as: UTF8.self))")
            }
            let head = String(decoding: rest[..<headEnd], as: UTF8.self).lowercased()
            let lines = head.components(separatedBy: "\r\n")
            let length: Int
            if let lengthLine = lines.first(where: { $0.hasPrefix("content-length:") }),
                let value = Int(lengthLine.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
            {
                length = value
            } else if lines[0].split(separator: " ").dropFirst().first == "204" {
                length = 0
            } else {
                throw Failure(description: "response without Content-Length: \(head)")
            }
            let end = headEnd + 4 + length
            guard end <= rest.endIndex else { throw Failure(description: "short body") }
            responses.append(try parse(Array(rest[rest.startIndex..<end])))
            rest = rest[end...]
        }
        return responses
    }

    static func request(_ method: String, _ target: String, json: String? = nil, close: Bool = false) -> String {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\n"
        if close { text += "Connection: close\r\n" }
        if let json {
            text += "Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)"
        } else {
            text += "\r\n"
        }
        return text
    }
}

@Suite("Pipelined requests")
struct PipeliningTests {
    @Test("responses come back in request order, whether the router or the event loop answers")
    func responsesInOrder() async throws {
        try await withAPI { daemon, api in
            try await api.prepared("q")
            let path = APIPath.snapshot("p")
            let other = APIPath.snapshot("q")
            let responses = try RawHTTP.pipelined(
                socket: daemon.socket,
                [
                    // Answered directly, twice, then passed on behind a write.
                    RawHTTP.request("GET", other),
                    RawHTTP.request("GET", other),
                    RawHTTP.request("GET", path),
                    RawHTTP.request("POST", APIPath.snapshots, json: #"{"key":"p"}"#),
                    RawHTTP.request("GET", path),
                    RawHTTP.request("DELETE", other),
                    RawHTTP.request("GET", other),
                    RawHTTP.request("GET", path, close: true),
                ])
            #expect(responses.map(\.status) == [200, 200, 404, 201, 200, 204, 404, 200])
            guard responses.count == 8 else { return }
            let q = try JSONDecoder().decode(SnapshotInfo.self, from: Data(responses[0].body))
            #expect(q.key == "q")
            #expect(responses[1].body == responses[0].body)
            let made = try JSONDecoder().decode(PrepareResponse.self, from: Data(responses[3].body))
            for index in [4, 7] {
                #expect(try JSONDecoder().decode(SnapshotInfo.self, from: Data(responses[index].body)) == made.snapshot)
            }
            #expect(responses[6].header("Content-Type") == "application/json")
            #expect(String(decoding: responses[6].body, as: UTF8.self).contains("not_found"))
        }
    }
}
