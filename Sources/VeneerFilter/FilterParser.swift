import VeneerCore

/// Recursive-descent parser over the filter's Unicode scalars.
struct FilterParser {
    private let text: String
    private let scalars: [Unicode.Scalar]
    private var pos = 0

    init(_ text: String) {
        self.text = text
        self.scalars = Array(text.unicodeScalars)
    }

    private var peek: Unicode.Scalar? { pos < scalars.count ? scalars[pos] : nil }

    mutating func parseFilter() throws(VeneerError) -> [FilterSelector] {
        skipSpaces()
        if peek == nil {
            throw failure(
                at: pos,
                "the filter is empty; expected at least one selector such as kind==committed or labels.NAME (leave the filter out to match everything)"
            )
        }
        var selectors = [try parseSelector(after: nil)]
        while let c = peek {
            // parseSelector consumed trailing spaces and stopped at "," or the end.
            guard c == "," else {
                throw failure(at: pos, "unexpected \(describe(c)); expected \",\" or the end of the filter")
            }
            pos += 1
            selectors.append(try parseSelector(after: ","))
        }
        return selectors
    }

    /// Parses `fieldpath [op value]` and the spaces after it; stops at "," or the end.
    private mutating func parseSelector(after separator: String?) throws(VeneerError) -> FilterSelector {
        skipSpaces()
        let path = try parseFieldpath(after: separator)
        skipSpaces()
        guard let c = peek, c != "," else {
            return FilterSelector(fieldpath: path, test: .present)
        }
        guard Self.isOperatorScalar(c) else {
            throw failure(
                at: pos,
                "unexpected \(describe(c)) after the field path; expected an operator (==, != or ~=), \",\" or the end of the filter"
            )
        }
        let opStart = pos
        while let o = peek, Self.isOperatorScalar(o) { pos += 1 }
        let op = String(String.UnicodeScalarView(scalars[opStart..<pos]))
        let test: FilterSelector.Test
        switch op {
        case "==":
            test = .equal(try parseValue(after: op, regex: false))
        case "!=":
            test = .notEqual(try parseValue(after: op, regex: false))
        case "~=":
            let valueStart = peekValueStart()
            let source = try parseValue(after: op, regex: true)
            do {
                test = .matches(try RegularExpression(source))
            } catch {
                throw failure(
                    at: valueStart,
                    "invalid regular expression \(quoted(source)) after ~=: \(error); expected a valid regular expression"
                )
            }
        default:
            let hint = op == "=" ? " (use == to test equality)" : ""
            throw failure(at: opStart, "unsupported operator \(quoted(op))\(hint); expected ==, != or ~=")
        }
        skipSpaces()
        if let c = peek, c != "," {
            throw failure(
                at: pos,
                "unexpected \(describe(c)) after the value; expected \",\" or the end of the filter (quote values that contain spaces)"
            )
        }
        return FilterSelector(fieldpath: path, test: test)
    }

    private mutating func peekValueStart() -> Int {
        skipSpaces()
        return pos
    }

    private mutating func parseFieldpath(after separator: String?) throws(VeneerError) -> [String] {
        var fields = [try parseField(after: separator)]
        while true {
            let save = pos
            skipSpaces()
            guard peek == "." else {
                pos = save
                return fields
            }
            pos += 1
            skipSpaces()
            fields.append(try parseField(after: "."))
        }
    }

    private mutating func parseField(after separator: String?) throws(VeneerError) -> String {
        let expected = "expected a field name (letters, digits, - and _) or a double-quoted string"
        guard let c = peek else {
            switch separator {
            case ",": throw failure(at: pos, "nothing follows \",\"; \(expected) to start the next selector")
            case ".": throw failure(at: pos, "nothing follows \".\"; \(expected)")
            default: throw failure(at: pos, expected)
            }
        }
        if c == "\"" {
            return try parseQuoted()
        }
        if Self.isFieldScalar(c) {
            let start = pos
            while let f = peek, Self.isFieldScalar(f) { pos += 1 }
            return String(String.UnicodeScalarView(scalars[start..<pos]))
        }
        if c == "/" || c == "|" {
            throw failure(at: pos, "fields cannot be quoted with \(describe(c)); \(expected)")
        }
        if c == "," {
            throw failure(at: pos, "empty selector; \(expected)")
        }
        if Self.isOperatorScalar(c) {
            throw failure(at: pos, "operator without a field path; \(expected)")
        }
        throw failure(at: pos, "unexpected \(describe(c)); \(expected)")
    }

    private mutating func parseValue(after op: String, regex: Bool) throws(VeneerError) -> String {
        skipSpaces()
        let emptyHint = "write \"\" for an empty value"
        guard let c = peek else {
            throw failure(at: pos, "nothing follows \(quoted(op)); expected a value (\(emptyHint))")
        }
        if c == "\"" || (regex && (c == "/" || c == "|")) {
            return try parseQuoted()
        }
        if c == "," {
            throw failure(at: pos, "found \",\" where a value was expected after \(quoted(op)); \(emptyHint)")
        }
        let start = pos
        while let v = peek, Self.isUnquotedValueScalar(v) { pos += 1 }
        if pos == start {
            throw failure(
                at: pos,
                "unexpected \(describe(c)) where a value was expected after \(quoted(op)); write it as an escape inside a double-quoted value"
            )
        }
        return String(String.UnicodeScalarView(scalars[start..<pos]))
    }

    /// Parses a string quoted with `"`, `/` or `|` (the scalar at `pos`) with Go's escapes.
    private mutating func parseQuoted() throws(VeneerError) -> String {
        let start = pos
        let quote = scalars[pos]
        pos += 1
        var bytes: [UInt8] = []
        while true {
            guard let c = peek else {
                throw failure(
                    at: start,
                    "unterminated quoted string; expected a closing \(describe(quote)) before the end of the filter")
            }
            if c == quote {
                pos += 1
                break
            }
            if c == "\n" {
                throw failure(at: pos, "line break inside a quoted string; expected \\n instead")
            }
            if c == "\u{0}" {
                throw failure(at: pos, "NUL character inside a quoted string; expected \\x00 instead")
            }
            if c == "\\" {
                try parseEscape(quote: quote, into: &bytes)
            } else {
                bytes.append(contentsOf: String(c).utf8)
                pos += 1
            }
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw failure(at: start, "the quoted string's escapes do not form valid UTF-8; expected UTF-8 byte sequences")
        }
        return decoded
    }

    /// Parses one escape sequence; `pos` is at the backslash.
    private mutating func parseEscape(quote: Unicode.Scalar, into bytes: inout [UInt8]) throws(VeneerError) {
        let escapeStart = pos
        let valid = "expected one of \\a \\b \\f \\n \\r \\t \\v \\\\ \\\(quote) \\NNN (octal) \\xHH \\uHHHH \\UHHHHHHHH"
        pos += 1
        guard let e = peek else {
            throw failure(at: escapeStart, "unterminated escape sequence at the end of the filter; \(valid)")
        }
        pos += 1
        switch e {
        case "a": bytes.append(0x07)
        case "b": bytes.append(0x08)
        case "f": bytes.append(0x0C)
        case "n": bytes.append(0x0A)
        case "r": bytes.append(0x0D)
        case "t": bytes.append(0x09)
        case "v": bytes.append(0x0B)
        case "\\": bytes.append(0x5C)
        case "0"..."7":
            pos -= 1
            let value = try readDigits(count: 3, radix: 8, escapeStart: escapeStart, what: "three octal digits")
            guard value <= 0xFF else {
                throw failure(at: escapeStart, "octal escape \\\(String(value, radix: 8)) is above \\377; \(valid)")
            }
            bytes.append(UInt8(value))
        case "x":
            let value = try readDigits(count: 2, radix: 16, escapeStart: escapeStart, what: "two hex digits after \\x")
            bytes.append(UInt8(value))
        case "u", "U":
            let count = e == "u" ? 4 : 8
            let value = try readDigits(
                count: count, radix: 16, escapeStart: escapeStart, what: "\(count) hex digits after \\\(e)")
            guard let scalar = Unicode.Scalar(value) else {
                throw failure(
                    at: escapeStart,
                    "escape \\\(e)\(String(value, radix: 16, uppercase: true)) is not a Unicode scalar value; expected a code point up to 10FFFF outside D800-DFFF"
                )
            }
            bytes.append(contentsOf: String(scalar).utf8)
        default:
            if e == quote {
                bytes.append(contentsOf: String(e).utf8)
            } else {
                throw failure(at: escapeStart, "invalid escape sequence \\\(e) in a quoted string; \(valid)")
            }
        }
    }

    private mutating func readDigits(count: Int, radix: UInt32, escapeStart: Int, what: String) throws(VeneerError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<count {
            guard let d = peek, let digit = Self.digitValue(d), digit < radix else {
                throw failure(at: escapeStart, "malformed escape sequence; expected \(what)")
            }
            value = value * radix + digit
            pos += 1
        }
        return value
    }

    private mutating func skipSpaces() {
        while let c = peek, c.properties.isWhitespace { pos += 1 }
    }

    // MARK: Character classes

    private static func isFieldScalar(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9", "_", "-": true
        default: false
        }
    }

    private static func isOperatorScalar(_ c: Unicode.Scalar) -> Bool {
        c == "=" || c == "!" || c == "~"
    }

    private static func isUnquotedValueScalar(_ c: Unicode.Scalar) -> Bool {
        c != "," && !c.properties.isWhitespace && c.properties.generalCategory != .control
    }

    private static func digitValue(_ c: Unicode.Scalar) -> UInt32? {
        switch c {
        case "0"..."9": c.value - 0x30
        case "a"..."f": c.value - 0x61 + 10
        case "A"..."F": c.value - 0x41 + 10
        default: nil
        }
    }

    // MARK: Errors

    private func describe(_ c: Unicode.Scalar) -> String {
        if c.properties.isWhitespace || c.properties.generalCategory == .control {
            return "U+" + String(c.value, radix: 16, uppercase: true).leftPadded(to: 4)
        }
        return quoted(String(c))
    }

    private func failure(at index: Int, _ message: String) -> VeneerError {
        let place: String
        if index >= scalars.count {
            place = "at position \(index + 1) (the end of the filter)"
        } else {
            let end = min(scalars.count, index + 16)
            let excerpt = String(String.UnicodeScalarView(scalars[index..<end]))
            place = "at position \(index + 1) (\(quoted(excerpt))\(end < scalars.count ? "..." : ""))"
        }
        return .invalidArgument("invalid filter \(quoted(text)) \(place): \(message)")
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
