import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

/// The response parts `channel` has written so far.
func writtenParts(_ channel: EmbeddedChannel) throws -> [HTTPResponsePart] {
    var parts: [HTTPResponsePart] = []
    while let part = try channel.readOutbound(as: HTTPResponsePart.self) { parts.append(part) }
    return parts
}

/// The head and body of the one response `channel` has written so far. Records an issue
/// and returns nil unless the parts written are a head, one body part and an end.
func writtenResponse(
    _ channel: EmbeddedChannel, sourceLocation: SourceLocation = #_sourceLocation
) throws -> (head: HTTPResponse, body: ByteBuffer)? {
    let parts = try writtenParts(channel)
    guard parts.count == 3, case .head(let head) = parts[0], case .body(let body) = parts[1], case .end = parts[2]
    else {
        Issue.record("expected a head, one body part and an end, got \(parts)", sourceLocation: sourceLocation)
        return nil
    }
    return (head, body)
}
