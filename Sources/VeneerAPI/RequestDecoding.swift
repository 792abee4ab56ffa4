import Foundation
import Hummingbird
import NIOCore
import VeneerCore
import VeneerJSON
import VeneerWire

/// Largest request body accepted.
public let maxRequestBodyBytes = 1 << 20

enum RequestDecoding {
    /// Reads and decodes a JSON body. Bodies over 1 MiB, other media types, malformed
    /// JSON, wrong types and unknown fields are rejected with a 4xx error.
    static func body<T: Decodable>(_ type: T.Type, from request: Request, what: String) async throws -> T {
        // The media type is checked before the body is read.
        try checkMediaType(request.headers[.contentType], what: what)
        var request = request
        let buffer = try await request.collectBody(upTo: maxRequestBodyBytes)
        return try decode(
            type, contentType: request.headers[.contentType],
            bytes: buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? [], what: what)
    }

    /// Decodes a JSON body already read (at most ``maxRequestBodyBytes``), with the
    /// checks and errors of ``body(_:from:what:)``.
    static func decode<T: Decodable>(
        _ type: T.Type, contentType: String?, bytes: [UInt8], what: String
    ) throws(APIError) -> T {
        try checkMediaType(contentType, what: what)
        if bytes.isEmpty {
            throw APIError(.invalidArgument("\(what) needs a JSON body"))
        }
        if contentType == nil {
            throw APIError(
                .unsupportedMediaType, "\(what) has no Content-Type; send Content-Type: application/json")
        }
        let value: JSONValue
        do {
            value = try StrictJSON.parse(bytes)
        } catch {
            throw APIError(.invalidArgument("\(what) is not valid: \(error.message)"))
        }
        do {
            return try StrictJSON.decode(T.self, from: value)
        } catch let error as VeneerError {
            throw APIError(error)
        } catch let error as DecodingError {
            throw APIError(.invalidArgument("\(what) is not valid: \(describe(error))"))
        } catch {
            throw APIError(.invalidArgument("\(what) is not valid JSON: \(error)"))
        }
    }

    /// A body, when it says what it is, must say JSON.
    private static func checkMediaType(_ contentType: String?, what: String) throws(APIError) {
        guard let contentType else { return }
        // The media type before any parameter, without the spaces around it; its case
        // does not matter.
        let mediaType = contentType.utf8.prefix { $0 != UInt8(ascii: ";") }
            .drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            .reversed().drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }.reversed()
        let json = "application/json".utf8
        let isJSON = mediaType.count == json.count
            && zip(mediaType, json).allSatisfy { pair in
                let (byte, expected) = pair
                return byte == expected || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") && byte + 32 == expected)
            }
        if !isJSON {
            throw APIError(
                .unsupportedMediaType, "\(what) must be JSON, not \(contentType); send Content-Type: application/json")
        }
    }

    /// Rejects a body on requests that take none.
    static func noBody(_ request: Request, what: String) async throws {
        var request = request
        let buffer = try await request.collectBody(upTo: maxRequestBodyBytes)
        if buffer.readableBytes > 0 {
            throw VeneerError.invalidArgument("\(what) takes no body")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.isEmpty ? "the body" : "field " + codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = context.codingPath.isEmpty ? "" : " of \(path(context.codingPath))"
            return "missing field \(quoted(key.stringValue))\(parent)"
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)) must be \(typeName(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)) must be \(typeName(type)), not null"
        case .dataCorrupted(let context):
            if let underlying = context.underlyingError as? VeneerError { return underlying.message }
            if context.codingPath.isEmpty {
                return "malformed JSON (\(context.debugDescription))"
            }
            return "\(path(context.codingPath)) is invalid: \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is [String].Type: "an array of strings"
        case is [String: String].Type: "an object of strings"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type: "an integer"
        case is [String: Any].Type: "an object"
        case is [Any].Type: "an array"
        default: "of type \(type)"
        }
    }

    /// Decodes the `{key}` path segment strictly.
    static func key(_ context: some RequestContext) throws -> String {
        guard let raw = context.parameters.get("key") else {
            throw VeneerError.invalidArgument("the request names no snapshot key")
        }
        let key = try PathSegment.decode(Substring(raw))
        try Rules.validateKey(key)
        return key
    }

    /// The namespace a request names with `?namespace=`, given at most once; the default
    /// namespace when it names none.
    static func namespace(_ query: [(String, String)]) throws -> Namespace {
        let values = query.filter { $0.0 == "namespace" }
        guard values.count <= 1 else {
            throw VeneerError.invalidArgument("give the namespace query parameter at most once")
        }
        guard let value = values.first?.1 else { return .default }
        return try Namespace(validating: value)
    }

    /// The value of query parameter `name`, given at most once; nil when not given.
    static func single(_ name: String, in query: [(String, String)]) throws(VeneerError) -> String? {
        let values = query.filter { $0.0 == name }
        guard values.count <= 1 else {
            throw VeneerError.invalidArgument("give the \(name) query parameter at most once")
        }
        return values.first?.1
    }

    /// Parses the query string strictly: each name must be in `allowed`; values are
    /// percent-decoded (`+` stays a plus sign).
    static func query(_ request: Request, allowed: Set<String>) throws -> [(String, String)] {
        guard let query = request.uri.query, !query.isEmpty else { return [] }
        var result: [(String, String)] = []
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = try PathSegment.decodeQuery(pieces[0], parameter: nil)
            guard allowed.contains(name) else {
                let known = allowed.isEmpty ? "this endpoint takes no query parameters" : "known: \(allowed.sorted().joined(separator: ", "))"
                throw VeneerError.invalidArgument("unknown query parameter \(quoted(name)); \(known)")
            }
            let value = pieces.count > 1 ? try PathSegment.decodeQuery(pieces[1], parameter: name) : ""
            result.append((name, value))
        }
        return result
    }
}
