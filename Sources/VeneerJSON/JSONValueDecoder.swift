import VeneerCore

/// A JSON value parsed by ``StrictJSON``.
public enum JSONValue: Sendable {
    /// An object's fields, in the order they were written.
    public struct Object: Sendable {
        var keys: [String] = []
        var values: [String: JSONValue] = [:]

        /// The fields, in the order they were written.
        public var fields: [(name: String, value: JSONValue)] {
            keys.compactMap { key in values[key].map { (key, $0) } }
        }

        public subscript(name: String) -> JSONValue? { values[name] }
    }

    case null
    case bool(Bool)
    /// The number's text as written (already checked against the JSON grammar).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(Object)

    /// How Foundation's decoder names the value in a type mismatch.
    var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "dictionary"
        }
    }
}

/// A `Decoder` over a parsed ``JSONValue``. It throws the `DecodingError`s Foundation's
/// `JSONDecoder` throws for the same input (the same cases, types and coding paths), so
/// that the API describes a bad field in the same words; it is several times faster on
/// the small bodies of API requests. One difference: a number that does not fit the
/// integer type asked for is reported at its field, where Foundation reports the
/// whole document as invalid.
struct JSONValueDecoder: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else {
            throw Self.mismatchError([String: Any].self, value, at: codingPath)
        }
        return KeyedDecodingContainer(Keyed<Key>(object: object, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let elements) = value else {
            throw Self.mismatchError([Any].self, value, at: codingPath)
        }
        return Unkeyed(elements: elements, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        Single(value: value, codingPath: codingPath)
    }

    // MARK: - Values

    static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue, at path: [any CodingKey]) throws -> T {
        // The common leaves without a decoder of their own.
        if T.self == String.self, let text = try string(value, at: path) as? T { return text }
        if T.self == Bool.self, let flag = try bool(value, at: path) as? T { return flag }
        return try T(from: JSONValueDecoder(value: value, codingPath: path))
    }

    static func string(_ value: JSONValue, at path: [any CodingKey]) throws -> String {
        if case .string(let text) = value { return text }
        throw mismatchError(String.self, value, at: path)
    }

    static func bool(_ value: JSONValue, at path: [any CodingKey]) throws -> Bool {
        if case .bool(let flag) = value { return flag }
        throw mismatchError(Bool.self, value, at: path)
    }

    /// A number as `T`; an integer type takes only digits that fit.
    static func number<T: LosslessStringConvertible>(_ type: T.Type, _ value: JSONValue, at path: [any CodingKey]) throws -> T {
        guard case .number(let text) = value else { throw mismatchError(T.self, value, at: path) }
        guard let number = T(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: path, debugDescription: "Parsed JSON number <\(text)> does not fit in \(T.self)."))
        }
        return number
    }

    /// null where a value is required is `valueNotFound`; any other kind is a mismatch.
    static func mismatchError(_ type: Any.Type, _ value: JSONValue, at path: [any CodingKey]) -> DecodingError {
        if case .null = value {
            return .valueNotFound(
                type, .init(codingPath: path, debugDescription: "Cannot get \(type) -- found null value instead"))
        }
        return .typeMismatch(type, mismatch("\(type)", found: value, at: path))
    }

    static func mismatch(_ expected: String, found value: JSONValue, at path: [any CodingKey]) -> DecodingError.Context {
        .init(codingPath: path, debugDescription: "Expected to decode \(expected) but found \(value.kindName) instead.")
    }

    // MARK: - Containers

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let object: JSONValue.Object
        let codingPath: [any CodingKey]

        var allKeys: [Key] { object.keys.compactMap { Key(stringValue: $0) } }

        func contains(_ key: Key) -> Bool { object.values[key.stringValue] != nil }

        private func value(_ key: Key) throws -> JSONValue {
            guard let value = object.values[key.stringValue] else {
                throw DecodingError.keyNotFound(
                    key,
                    .init(codingPath: codingPath, debugDescription: "No value associated with key \(key) (\"\(key.stringValue)\")."))
            }
            return value
        }

        func decodeNil(forKey key: Key) throws -> Bool {
            if case .null = try value(key) { return true }
            return false
        }

        // The leaves of request bodies, without a generic detour.
        func decode(_ type: String.Type, forKey key: Key) throws -> String {
            try JSONValueDecoder.string(try value(key), at: codingPath + [key])
        }

        func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
            try JSONValueDecoder.bool(try value(key), at: codingPath + [key])
        }

        func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? {
            guard let value = object.values[key.stringValue] else { return nil }
            if case .null = value { return nil }
            return try JSONValueDecoder.string(value, at: codingPath + [key])
        }

        func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? {
            guard let value = object.values[key.stringValue] else { return nil }
            if case .null = value { return nil }
            return try JSONValueDecoder.bool(value, at: codingPath + [key])
        }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            try JSONValueDecoder.decode(type, from: try value(key), at: codingPath + [key])
        }

        func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
            guard let value = object.values[key.stringValue] else { return nil }
            if case .null = value { return nil }
            return try JSONValueDecoder.decode(type, from: value, at: codingPath + [key])
        }

        func nestedContainer<NestedKey: CodingKey>(
            keyedBy type: NestedKey.Type, forKey key: Key
        ) throws -> KeyedDecodingContainer<NestedKey> {
            try JSONValueDecoder(value: try value(key), codingPath: codingPath + [key]).container(keyedBy: type)
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            try JSONValueDecoder(value: try value(key), codingPath: codingPath + [key]).unkeyedContainer()
        }

        func superDecoder() throws -> any Decoder {
            JSONValueDecoder(value: object.values["super"] ?? .null, codingPath: codingPath + [IndexKey(stringValue: "super")])
        }

        func superDecoder(forKey key: Key) throws -> any Decoder {
            JSONValueDecoder(value: object.values[key.stringValue] ?? .null, codingPath: codingPath + [key])
        }
    }

    /// Array positions in coding paths, named as Foundation names them.
    struct IndexKey: CodingKey {
        var stringValue: String
        var intValue: Int?

        init(stringValue: String) {
            self.stringValue = stringValue
            intValue = nil
        }

        init(intValue: Int) {
            stringValue = "Index \(intValue)"
            self.intValue = intValue
        }
    }

    struct Unkeyed: UnkeyedDecodingContainer {
        let elements: [JSONValue]
        let codingPath: [any CodingKey]
        var currentIndex = 0

        init(elements: [JSONValue], codingPath: [any CodingKey]) {
            self.elements = elements
            self.codingPath = codingPath
        }

        var count: Int? { elements.count }
        var isAtEnd: Bool { currentIndex >= elements.count }

        private mutating func next(_ type: Any.Type) throws -> (JSONValue, [any CodingKey]) {
            let path = codingPath + [IndexKey(intValue: currentIndex)]
            guard !isAtEnd else {
                throw DecodingError.valueNotFound(
                    type, .init(codingPath: path, debugDescription: "Unkeyed container is at end."))
            }
            defer { currentIndex += 1 }
            return (elements[currentIndex], path)
        }

        mutating func decodeNil() throws -> Bool {
            guard !isAtEnd else { return false }
            if case .null = elements[currentIndex] {
                currentIndex += 1
                return true
            }
            return false
        }

        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            let (value, path) = try next(type)
            return try JSONValueDecoder.decode(type, from: value, at: path)
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
            let (value, path) = try next([String: Any].self)
            return try JSONValueDecoder(value: value, codingPath: path).container(keyedBy: type)
        }

        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
            let (value, path) = try next([Any].self)
            return try JSONValueDecoder(value: value, codingPath: path).unkeyedContainer()
        }

        mutating func superDecoder() throws -> any Decoder {
            let (value, path) = try next(Any.self)
            return JSONValueDecoder(value: value, codingPath: path)
        }
    }

    struct Single: SingleValueDecodingContainer {
        let value: JSONValue
        let codingPath: [any CodingKey]

        func decodeNil() -> Bool {
            if case .null = value { return true }
            return false
        }

        func decode(_ type: Bool.Type) throws -> Bool { try JSONValueDecoder.bool(value, at: codingPath) }
        func decode(_ type: String.Type) throws -> String { try JSONValueDecoder.string(value, at: codingPath) }
        func decode(_ type: Double.Type) throws -> Double { try JSONValueDecoder.number(type, value, at: codingPath) }
        func decode(_ type: Float.Type) throws -> Float { try JSONValueDecoder.number(type, value, at: codingPath) }
        func decode(_ type: Int.Type) throws -> Int { try JSONValueDecoder.number(type, value, at: codingPath) }
        func decode(_ type: Int8.Type) throws -> Int8 { try JSONValueDecoder.number(type, value, at: codingPath) }
        func decode(_ type: Int16.Type) throws -> Int16 { try JSONValueDecoder.number(type, value, at: codingPath) }
        func decode(_ type: Int32.Type) throws -> Int32 { try JSONValueDecoder.number(type, value, at: codingPath) }
        func decode(_ type: Int64.Type) throws -> Int64 { try JSONValueDecoder.number(type, value, at: codingPath) }
        func decode(_ type: UInt.Type) throws -> UInt { try JSONValueDecoder.number(type, value, at: codingPath) }
        func decode(_ type: UInt8.Type) throws -> UInt8 { try JSONValueDecoder.number(type, value, at: codingPath) }
        func decode(_ type: UInt16.Type) throws -> UInt16 { try JSONValueDecoder.number(type, value, at: codingPath) }
        func decode(_ type: UInt32.Type) throws -> UInt32 { try JSONValueDecoder.number(type, value, at: codingPath) }
        func decode(_ type: UInt64.Type) throws -> UInt64 { try JSONValueDecoder.number(type, value, at: codingPath) }

        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            try JSONValueDecoder.decode(type, from: value, at: codingPath)
        }
    }
}
