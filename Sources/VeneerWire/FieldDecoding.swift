import VeneerCore

// Decoding helpers for the v1 request bodies: unknown fields and nulls are refused
// with a message that names the field.

/// Decoding helper: rejects fields that the type does not know.
public struct AnyCodingKey: CodingKey, Sendable {
    public var stringValue: String
    public var intValue: Int?
    public init(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

extension Decoder {
    /// Throws when the JSON object holds a field outside `known`.
    public func rejectUnknownFields(_ known: Set<String>, in object: String) throws {
        let container = try self.container(keyedBy: AnyCodingKey.self)
        for key in container.allKeys where !known.contains(key.stringValue) {
            throw VeneerError.invalidArgument(
                "unknown field \(quoted(key.stringValue)) in \(object); known fields: \(known.sorted().joined(separator: ", "))")
        }
    }
}

extension KeyedDecodingContainer {
    /// An optional field: nil when it is absent. A null is refused like any other value
    /// of the wrong type (`decodeIfPresent` would take it for an absent field), with a
    /// message that names the field and what it must be.
    func decodeOptional<T: Decodable>(_ type: T.Type, forKey key: Key, mustBe what: String, in object: String) throws -> T? {
        guard contains(key) else { return nil }
        if try decodeNil(forKey: key) {
            throw VeneerError.invalidArgument(
                "field \(key.stringValue) in \(object) must be \(what), not null; leave the field out instead")
        }
        return try decode(type, forKey: key)
    }
}
