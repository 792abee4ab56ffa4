import VeneerCore

/// A syntax check of JSON text per RFC 8259, stricter than Foundation's decoder:
/// no trailing commas, no comments, no duplicate names in an object, valid UTF-8 and
/// escapes, and nesting at most 64 deep. Request bodies pass it before they are decoded.
public enum StrictJSON {
    public static let maxDepth = 64

    /// Parses JSON text with the checks above.
    public static func parse(_ bytes: [UInt8]) throws(VeneerError) -> JSONValue {
        var parser = Parser(bytes: bytes)
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        if parser.index != bytes.count {
            throw parser.error("unexpected text after the JSON value")
        }
        if parser.invalidUTF8 {
            throw VeneerError.invalidArgument("the body is not valid UTF-8")
        }
        return value
    }

    /// Decodes `type` from a value ``parse(_:)`` returned. A value that does not fit
    /// `type` throws `DecodingError`, as Foundation's `JSONDecoder` does; errors that
    /// `type` throws itself pass through. Integers must be written without a fraction or exponent.
    public static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try T(from: JSONValueDecoder(value: value, codingPath: []))
    }

    /// Reads a JSON object whose values are all strings (`{"k":"v",…}`, the form in
    /// which the store keeps labels), with the same strictness as ``parse(_:)``.
    public static func stringMap(_ bytes: [UInt8]) throws(VeneerError) -> [String: String] {
        var parser = Parser(bytes: bytes)
        parser.skipSpace()
        guard parser.current == UInt8(ascii: "{") else { throw parser.error("expected an object") }
        parser.index += 1
        parser.skipSpace()
        var map: [String: String] = [:]
        if parser.current == UInt8(ascii: "}") {
            parser.index += 1
        } else {
            while true {
                parser.skipSpace()
                let name = try parser.text(what: "a quoted field name")
                parser.skipSpace()
                guard parser.current == UInt8(ascii: ":") else { throw parser.error("expected ':' after a field name") }
                parser.index += 1
                parser.skipSpace()
                let value = try parser.text(what: "a string value")
                guard map.updateValue(value, forKey: name) == nil else {
                    throw parser.error("field \(quoted(name)) appears twice")
                }
                parser.skipSpace()
                if parser.current == UInt8(ascii: ",") {
                    parser.index += 1
                    continue
                }
                guard parser.current == UInt8(ascii: "}") else { throw parser.error("expected ',' or '}'") }
                parser.index += 1
                break
            }
        }
        parser.skipSpace()
        if parser.index != bytes.count { throw parser.error("unexpected text after the JSON value") }
        return map
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0
        /// A string held bytes that are not UTF-8 (reported once the syntax is checked).
        var invalidUTF8 = false

        init(bytes: [UInt8]) { self.bytes = bytes }

        func error(_ what: String) -> VeneerError {
            .invalidArgument("malformed JSON at byte \(index): \(what)")
        }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while let c = current, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { index += 1 }
        }

        mutating func expect(_ literal: String) throws(VeneerError) {
            for byte in literal.utf8 {
                guard current == byte else { throw error("expected \(literal)") }
                index += 1
            }
        }

        mutating func value(depth: Int) throws(VeneerError) -> JSONValue {
            guard depth < StrictJSON.maxDepth else { throw error("nested deeper than \(StrictJSON.maxDepth) levels") }
            guard let c = current else { throw error("expected a value, found the end") }
            switch c {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(swiftString(try string()))
            case UInt8(ascii: "t"):
                try expect("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try expect("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try expect("null")
                return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let start = index
                try number()
                return .number(String(decoding: bytes[start..<index], as: UTF8.self))
            default: throw error("unexpected character")
            }
        }

        /// Decoded string bytes as a Swift string; bytes that are not UTF-8 are noted.
        mutating func swiftString(_ bytes: [UInt8]) -> String {
            if let text = String(validating: bytes, as: UTF8.self) { return text }
            invalidUTF8 = true
            return String(decoding: bytes, as: UTF8.self)
        }

        mutating func object(depth: Int) throws(VeneerError) -> JSONValue {
            index += 1
            skipSpace()
            var object = JSONValue.Object()
            if current == UInt8(ascii: "}") {
                index += 1
                return .object(object)
            }
            var names = Set<[UInt8]>()
            while true {
                skipSpace()
                guard current == UInt8(ascii: "\"") else { throw error("expected a quoted field name") }
                let name = try string()
                if !names.insert(name).inserted {
                    throw VeneerError.invalidArgument(
                        "malformed JSON at byte \(index): field \(quoted(String(decoding: name, as: UTF8.self))) appears twice")
                }
                skipSpace()
                guard current == UInt8(ascii: ":") else { throw error("expected ':' after a field name") }
                index += 1
                skipSpace()
                let key = swiftString(name)
                object.keys.append(key)
                object.values[key] = try value(depth: depth + 1)
                skipSpace()
                if current == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard current == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
                index += 1
                return .object(object)
            }
        }

        mutating func array(depth: Int) throws(VeneerError) -> JSONValue {
            index += 1
            skipSpace()
            var elements: [JSONValue] = []
            if current == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                skipSpace()
                elements.append(try value(depth: depth + 1))
                skipSpace()
                if current == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard current == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
                index += 1
                return .array(elements)
            }
        }

        /// A JSON string at the current position as a Swift string (escapes resolved).
        mutating func text(what: String) throws(VeneerError) -> String {
            guard current == UInt8(ascii: "\"") else { throw error("expected \(what)") }
            guard let text = String(validating: try string(), as: UTF8.self) else {
                throw error("invalid UTF-8 in a string")
            }
            return text
        }

        /// Returns the string's decoded bytes (escapes resolved), for duplicate detection.
        mutating func string() throws(VeneerError) -> [UInt8] {
            index += 1
            var out: [UInt8] = []
            while true {
                guard let c = current else { throw error("unterminated string") }
                index += 1
                switch c {
                case UInt8(ascii: "\""):
                    return out
                case UInt8(ascii: "\\"):
                    guard let e = current else { throw error("unterminated escape") }
                    index += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var value = try hex4()
                        if (0xD800...0xDBFF).contains(value) {
                            guard current == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u")
                            else { throw error("lone surrogate in a \\u escape") }
                            index += 2
                            let low = try hex4()
                            guard (0xDC00...0xDFFF).contains(low) else { throw error("lone surrogate in a \\u escape") }
                            value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(value) else { throw error("lone surrogate in a \\u escape") }
                        out.append(contentsOf: Array(String(scalar).utf8))
                    default:
                        throw error("unknown escape \\\(String(UnicodeScalar(e)))")
                    }
                case 0x00..<0x20:
                    throw error("control character in a string")
                default:
                    out.append(c)
                }
            }
        }

        mutating func hex4() throws(VeneerError) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let h = current, let digit = Self.hex(h) else { throw error("bad \\u escape") }
                value = value << 4 | UInt32(digit)
                index += 1
            }
            return value
        }

        mutating func number() throws(VeneerError) {
            if current == UInt8(ascii: "-") { index += 1 }
            guard let first = current, Self.isDigit(first) else { throw error("expected a digit") }
            index += 1
            if first != UInt8(ascii: "0") {
                while let c = current, Self.isDigit(c) { index += 1 }
            }
            if current == UInt8(ascii: ".") {
                index += 1
                guard let c = current, Self.isDigit(c) else { throw error("expected a digit after '.'") }
                while let c = current, Self.isDigit(c) { index += 1 }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard let c = current, Self.isDigit(c) else { throw error("expected a digit in the exponent") }
                while let c = current, Self.isDigit(c) { index += 1 }
            }
        }

        static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

        static func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
    }
}
