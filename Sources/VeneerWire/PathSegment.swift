import VeneerCore

/// Percent-encoding of a key as one path segment: everything but ASCII letters,
/// digits, `-`, `_` and `~` is encoded, so `.`, `..` and `/` survive any client.
public enum PathSegment {
    public static func encode(_ key: String) -> String {
        var out = ""
        out.reserveCapacity(key.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in key.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            default:
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(UnicodeScalar(hex[Int(byte >> 4)]))
                out.unicodeScalars.append(UnicodeScalar(hex[Int(byte & 0xF)]))
            }
        }
        return out
    }

    /// Strict decoding of a `{key}` path segment: malformed escapes and invalid UTF-8
    /// are errors.
    public static func decode(_ segment: Substring) throws(VeneerError) -> String {
        switch percentDecoded(segment) {
        case .success(let text):
            return text
        case .failure(.malformedEscape):
            throw .invalidArgument("malformed percent-encoding in path segment \(quoted(String(segment)))")
        case .failure(.notUTF8):
            throw .invalidArgument("key in path segment \(quoted(String(segment))) is not valid UTF-8")
        }
    }

    /// Strict decoding of a part of a query string: the name of a parameter
    /// (`parameter` nil) or the value of the parameter `parameter`.
    public static func decodeQuery(_ part: Substring, parameter: String?) throws(VeneerError) -> String {
        switch percentDecoded(part) {
        case .success(let text):
            return text
        case .failure(let failure):
            let what = failure == .malformedEscape ? "has a malformed percent-encoding" : "is not valid percent-encoded UTF-8"
            if let parameter {
                throw .invalidArgument(
                    "query parameter \(parameter) \(what): \(quoted(String(part))); percent-encode each byte of its UTF-8 as %XX")
            }
            throw .invalidArgument(
                "the name of a query parameter \(what): \(quoted(String(part))); percent-encode each byte of its UTF-8 as %XX")
        }
    }

    enum DecodingFailure: Error {
        case malformedEscape
        case notUTF8
    }

    static func percentDecoded(_ part: Substring) -> Result<String, DecodingFailure> {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(part.utf8.count)
        var it = part.utf8.makeIterator()
        func hexValue(_ c: UInt8?) -> UInt8? {
            guard let c else { return nil }
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        while let c = it.next() {
            if c == UInt8(ascii: "%") {
                guard let hi = hexValue(it.next()), let lo = hexValue(it.next()) else { return .failure(.malformedEscape) }
                bytes.append(hi << 4 | lo)
            } else {
                bytes.append(c)
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { return .failure(.notUTF8) }
        return .success(text)
    }
}
