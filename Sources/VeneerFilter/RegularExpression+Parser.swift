import VeneerCore

extension RegularExpression {
    struct Flags {
        var caseInsensitive = false
        var multiLine = false
        var dotMatchesNewline = false
    }

    struct Parser {
        private let scalars: [Unicode.Scalar]
        private var position = 0
        private var flags = Flags()
        private var depth = 0
        private static let maxDepth = 1000

        init(_ pattern: String) {
            scalars = Array(pattern.unicodeScalars)
        }

        private var peek: Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }

        private func failure(_ message: String) -> SyntaxError {
            SyntaxError(message: message)
        }

        private func text(_ range: Range<Int>) -> String {
            String(String.UnicodeScalarView(scalars[max(range.lowerBound, 0)..<min(range.upperBound, scalars.count)]))
        }

        mutating func parse() throws(SyntaxError) -> Node {
            let tree = try parseAlternation()
            if peek == ")" { throw failure("unexpected ): no group is open there") }
            return tree
        }

        private mutating func parseAlternation() throws(SyntaxError) -> Node {
            var branches = [try parseConcatenation()]
            while peek == "|" {
                position += 1
                branches.append(try parseConcatenation())
            }
            return branches.count == 1 ? branches[0] : .alternation(branches)
        }

        private mutating func parseConcatenation() throws(SyntaxError) -> Node {
            var items: [Node] = []
            while let c = peek, c != "|", c != ")" {
                var atom: Node?
                if c == "\\", position + 1 < scalars.count, scalars[position + 1] == "Q" {
                    // \Q…\E: literal scalars, a repetition after it applies to the last.
                    var literals = parseQuotedLiterals()
                    atom = literals.popLast()
                    items += literals
                } else {
                    atom = try parseAtom()
                }
                if let atom {
                    items.append(try parseRepetitions(of: atom))
                } else if startsRepetition() {
                    // After a flag group or an empty \Q\E, a repetition applies to what
                    // came before it, as in RE2: a(?i)* is a*.
                    guard let previous = items.popLast() else {
                        throw failure("missing argument to repetition operator \(repetitionText())")
                    }
                    items.append(try parseRepetitions(of: previous))
                }
            }
            switch items.count {
            case 0: return .empty
            case 1: return items[0]
            default: return .concatenation(items)
            }
        }

        /// The repetition operators after an atom: one, optionally lazy; a second one
        /// is an error, as in RE2.
        private mutating func parseRepetitions(of atom: Node) throws(SyntaxError) -> Node {
            let start = position
            let braces = peek == "{"
            guard let (min, max) = try parseRepetitionOperator() else { return atom }
            let written = text(start..<position)
            if peek == "?" { position += 1 }
            if try parseRepetitionOperator() != nil {
                throw failure("invalid nested repetition operator \(text(start..<position))")
            }
            let repetition = Node.repetition(atom, min: min, max: max, braces: braces)
            if braces && (min >= 2 || (max ?? 0) >= 2) && !repetition.repeatCountsFit(RegularExpression.maxRepeatCount) {
                throw failure(
                    "invalid repeat count \(written): nested repetitions multiply to more than \(RegularExpression.maxRepeatCount)")
            }
            return repetition
        }

        /// Whether a repetition operator starts at the position.
        private func startsRepetition() -> Bool {
            switch peek {
            case "*", "+", "?": return true
            case "{": return braceRepetition(at: position) != nil
            default: return false
            }
        }

        /// The repetition operator at the position, as written.
        private func repetitionText() -> String {
            if peek == "{", let (_, _, end) = braceRepetition(at: position) { return text(position..<end) }
            return text(position..<position + 1)
        }

        /// The scalars of `\Q…\E` (or `\Q…` to the end) at the position, consumed.
        private mutating func parseQuotedLiterals() -> [Node] {
            position += 2
            var literals: [Node] = []
            while let q = peek {
                if q == "\\", position + 1 < scalars.count, scalars[position + 1] == "E" {
                    position += 2
                    break
                }
                literals.append(literal(q.value))
                position += 1
            }
            return literals
        }

        /// `*`, `+`, `?` or a well-formed `{n}`, `{n,}`, `{n,m}` at the position (then
        /// consumed), or nil.
        private mutating func parseRepetitionOperator() throws(SyntaxError) -> (Int, Int?)? {
            switch peek {
            case "*":
                position += 1
                return (0, nil)
            case "+":
                position += 1
                return (1, nil)
            case "?":
                position += 1
                return (0, 1)
            case "{":
                guard let (min, max, end) = braceRepetition(at: position) else { return nil }
                let written = text(position..<end)
                if min > RegularExpression.maxRepeatCount || (max ?? 0) > RegularExpression.maxRepeatCount {
                    throw failure("invalid repeat count \(written): at most \(RegularExpression.maxRepeatCount)")
                }
                if let max, max < min { throw failure("invalid repeat count \(written): the maximum is below the minimum") }
                position = end
                return (min, max)
            default:
                return nil
            }
        }

        /// Reads `{n}`, `{n,}` or `{n,m}` at `start` without consuming it: the counts and
        /// the index after `}`; nil when the text there is not of that form (then `{` is
        /// a literal, as in RE2).
        private func braceRepetition(at start: Int) -> (Int, Int?, Int)? {
            var index = start + 1
            var wellFormed = true
            /// A count: decimal digits, without a leading zero unless it is just 0.
            func number() -> Int? {
                var value = 0
                let first = index
                while index < scalars.count, ("0"..."9").contains(scalars[index]) {
                    value = min(value * 10 + Int(scalars[index].value - 0x30), 1_000_000)
                    index += 1
                }
                if index - first > 1 && scalars[first] == "0" { wellFormed = false }
                return index > first ? value : nil
            }
            guard let min = number() else { return nil }
            var max: Int? = min
            if index < scalars.count, scalars[index] == "," {
                index += 1
                max = number()
            }
            guard wellFormed, index < scalars.count, scalars[index] == "}" else { return nil }
            return (min, max, index + 1)
        }

        /// One atom, or nil for a flag group such as `(?i)` that only changes flags.
        private mutating func parseAtom() throws(SyntaxError) -> Node? {
            guard let c = peek else { return nil }
            if startsRepetition() { throw failure("missing argument to repetition operator \(repetitionText())") }
            switch c {
            case "(":
                return try parseGroup()
            case "[":
                return .scalar(try parseClass())
            case ".":
                position += 1
                var set = flags.dotMatchesNewline
                    ? ScalarSet(ranges: [0...ScalarSet.maxScalar]) : ScalarSet.single(0x0A)
                set.negated = !flags.dotMatchesNewline
                return .scalar(set)
            case "^":
                position += 1
                return .assertion(flags.multiLine ? .beginLine : .beginText)
            case "$":
                position += 1
                return .assertion(flags.multiLine ? .endLine : .endText)
            case "\\":
                return try parseEscapeOutsideClass()
            default:
                position += 1
                return literal(c.value)
            }
        }

        /// One scalar; in case-insensitive mode, any of its case orbit.
        private func literal(_ value: UInt32) -> Node {
            guard flags.caseInsensitive else { return .scalar(.single(value)) }
            var set = ScalarSet(ranges: ScalarSet.normalized(([value] + RegularExpression.caseOrbit(value)).map { $0...$0 }))
            set.foldsCase = true
            return .scalar(set)
        }

        private mutating func parseGroup() throws(SyntaxError) -> Node? {
            let start = position
            position += 1
            let saved = flags
            if peek == "?" {
                position += 1
                if peek == "<", position + 1 < scalars.count, scalars[position + 1] == "=" || scalars[position + 1] == "!" {
                    throw unsupportedGroup(text(start..<position + 2))
                }
                if peek == "P" || peek == "<" {
                    if peek == "P" { position += 1 }
                    guard peek == "<" else { throw failure("invalid named group \(text(start..<position + 1))") }
                    position += 1
                    let nameStart = position
                    while let n = peek, n.isASCII, n.properties.isAlphabetic || n == "_" || ("0"..."9").contains(n) {
                        position += 1
                    }
                    guard position > nameStart, peek == ">" else {
                        throw failure("invalid named group \(text(start..<position + 1)): expected a name of letters, digits and _, then >")
                    }
                    position += 1
                } else {
                    // Flags: (?i) holds until the enclosing group closes, (?i:re) within re.
                    var negate = false
                    var sawNegatedFlag = false
                    loop: while true {
                        guard let f = peek else { throw failure("missing closing ) after \(text(start..<position))") }
                        position += 1
                        switch f {
                        case "i": flags.caseInsensitive = !negate
                        case "m": flags.multiLine = !negate
                        case "s": flags.dotMatchesNewline = !negate
                        case "U": break  // laziness does not change whether an expression matches
                        case "-":
                            if negate { throw failure("invalid flags \(text(start..<position))") }
                            negate = true
                            continue loop
                        case ")", ":":
                            if negate && !sawNegatedFlag {
                                throw failure("invalid flags \(text(start..<position))")
                            }
                            if f == ")" { return nil }
                            break loop
                        default:
                            throw unsupportedGroup(text(start..<position))
                        }
                        if negate { sawNegatedFlag = true }
                    }
                }
            }
            depth += 1
            if depth > Self.maxDepth { throw failure("the expression nests groups more than \(Self.maxDepth) deep") }
            let inner = try parseAlternation()
            guard peek == ")" else { throw failure("missing closing ) for the group at offset \(start)") }
            position += 1
            depth -= 1
            flags = saved
            return inner
        }

        private func unsupportedGroup(_ written: String) -> SyntaxError {
            failure("invalid or unsupported syntax \(written): lookaround and other Perl groups are not supported")
        }

        private static let assertionEscapes: [Unicode.Scalar: Assertion] = [
            "A": .beginText, "z": .endText, "b": .wordBoundary, "B": .notWordBoundary,
        ]

        private mutating func parseEscapeOutsideClass() throws(SyntaxError) -> Node {
            if position + 1 < scalars.count, let assertion = Self.assertionEscapes[scalars[position + 1]] {
                position += 2
                return .assertion(assertion)
            }
            if let set = try parsePerlClass() { return .scalar(set) }
            return literal(try parseEscapedScalar())
        }

        /// `\d \D \w \W \s \S` at the position (consumed), or nil.
        private mutating func parsePerlClass() throws(SyntaxError) -> ScalarSet? {
            guard position + 1 < scalars.count else { return nil }
            var set: ScalarSet
            switch scalars[position + 1] {
            case "d", "D": set = .digit
            case "w", "W": set = .word
            case "s", "S": set = .space
            case "p", "P":
                throw failure("Unicode classes (\(text(position..<position + 2))) are not supported; use a bracket class such as [a-zA-Z]")
            default: return nil
            }
            let name = scalars[position + 1]
            position += 2
            if name.properties.isUppercase { set.ranges = complementFoldingFirst(set.ranges) }
            set.foldsCase = flags.caseInsensitive
            return set
        }

        /// An escape that stands for one scalar; the position is at the backslash.
        private mutating func parseEscapedScalar() throws(SyntaxError) -> UInt32 {
            let start = position
            guard position + 1 < scalars.count else { throw failure("trailing backslash at the end of the expression") }
            let c = scalars[position + 1]
            position += 2
            switch c {
            case "a": return 0x07
            case "f": return 0x0C
            case "t": return 0x09
            case "n": return 0x0A
            case "r": return 0x0D
            case "v": return 0x0B
            case "0"..."7":
                // Octal: \0 to \0NN, or \1 … \7 followed by one or two more octal digits;
                // a lone \1 … \9 is a backreference.
                var value = c.value - 0x30
                var digits = 1
                while digits < 3, let d = peek, ("0"..."7").contains(d) {
                    value = value * 8 + (d.value - 0x30)
                    position += 1
                    digits += 1
                }
                if c != "0" && digits == 1 {
                    throw failure("backreferences such as \(text(start..<position)) are not supported")
                }
                return value
            case "8", "9":
                throw failure("backreferences such as \(text(start..<position)) are not supported")
            case "x":
                return try parseHexEscape(start: start)
            default:
                if c.isASCII && !c.properties.isAlphabetic && !("0"..."9").contains(c) { return c.value }
                throw failure("invalid escape sequence \(text(start..<position))")
            }
        }

        private mutating func parseHexEscape(start: Int) throws(SyntaxError) -> UInt32 {
            func hexDigit(_ s: Unicode.Scalar) -> UInt32? {
                switch s {
                case "0"..."9": return s.value - 0x30
                case "a"..."f": return s.value - 0x61 + 10
                case "A"..."F": return s.value - 0x41 + 10
                default: return nil
                }
            }
            if peek == "{" {
                position += 1
                var value: UInt32 = 0
                var digits = 0
                while let s = peek, let d = hexDigit(s) {
                    value = min(value * 16 + d, ScalarSet.maxScalar + 1)
                    digits += 1
                    position += 1
                }
                guard digits > 0, peek == "}", value <= ScalarSet.maxScalar else {
                    throw failure("invalid escape sequence \(text(start..<position + 1)): expected \\x{HEX} of at most 10FFFF")
                }
                position += 1
                return value
            }
            guard position + 1 < scalars.count, let high = hexDigit(scalars[position]), let low = hexDigit(scalars[position + 1]) else {
                throw failure("invalid escape sequence \(text(start..<position + 2)): expected \\xHH or \\x{HEX}")
            }
            position += 2
            return high * 16 + low
        }

        private static let asciiClasses: [String: [ClosedRange<UInt32>]] = [
            "alnum": [0x30...0x39, 0x41...0x5A, 0x61...0x7A],
            "alpha": [0x41...0x5A, 0x61...0x7A],
            "ascii": [0x00...0x7F],
            "blank": [0x09...0x09, 0x20...0x20],
            "cntrl": [0x00...0x1F, 0x7F...0x7F],
            "digit": [0x30...0x39],
            "graph": [0x21...0x7E],
            "lower": [0x61...0x7A],
            "print": [0x20...0x7E],
            "punct": [0x21...0x2F, 0x3A...0x40, 0x5B...0x60, 0x7B...0x7E],
            "space": [0x09...0x0D, 0x20...0x20],
            "upper": [0x41...0x5A],
            "word": [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A],
            "xdigit": [0x30...0x39, 0x41...0x46, 0x61...0x66],
        ]

        /// A bracket class; the position is at `[`.
        private mutating func parseClass() throws(SyntaxError) -> ScalarSet {
            let start = position
            position += 1
            var negated = false
            if peek == "^" {
                negated = true
                position += 1
            }
            var ranges: [ClosedRange<UInt32>] = []
            var first = true
            while true {
                guard let c = peek else { throw failure("missing closing ] for the class at offset \(start)") }
                if c == "]" && !first { break }
                first = false
                if c == "[", position + 1 < scalars.count, scalars[position + 1] == ":" {
                    if let named = try parseASCIIClass() {
                        ranges += named
                        continue
                    }
                }
                if c == "\\", let set = try parsePerlClass() {
                    ranges += set.ranges
                    continue
                }
                let itemStart = position
                let low = try parseClassScalar()
                if peek == "-", position + 1 < scalars.count, scalars[position + 1] != "]" {
                    position += 1
                    let high = try parseClassScalar()
                    if high < low { throw failure("invalid character class range \(text(itemStart..<position))") }
                    ranges.append(low...high)
                } else {
                    ranges.append(low...low)
                }
            }
            position += 1
            var set = ScalarSet(ranges: ScalarSet.normalized(ranges))
            set.negated = negated
            set.foldsCase = flags.caseInsensitive
            return set
        }

        /// `[:name:]` or `[:^name:]` at the position (consumed), or nil when the text
        /// there is not of that form.
        private mutating func parseASCIIClass() throws(SyntaxError) -> [ClosedRange<UInt32>]? {
            var index = position + 2
            var negated = false
            if index < scalars.count, scalars[index] == "^" {
                negated = true
                index += 1
            }
            let nameStart = index
            while index + 1 < scalars.count, !(scalars[index] == ":" && scalars[index + 1] == "]") { index += 1 }
            guard index + 1 < scalars.count else { return nil }
            let name = text(nameStart..<index)
            guard let ranges = Self.asciiClasses[name] else {
                throw failure("invalid character class \(text(position..<index + 2))")
            }
            position = index + 2
            return negated ? complementFoldingFirst(ranges) : ranges
        }

        /// The complement of an ASCII class; in case-insensitive mode, of the class with
        /// both cases of its letters (and the Kelvin sign and long s with k and s), as
        /// RE2 folds case before it complements: `(?i)[[:^lower:]]` matches no letter.
        private func complementFoldingFirst(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
            guard flags.caseInsensitive else { return ScalarSet.complement(ranges) }
            var closed = ranges
            for range in ranges {
                for (lower, upper) in [(UInt32(0x61), UInt32(0x7A)), (0x41, 0x5A)] {
                    let low = max(range.lowerBound, lower)
                    let high = min(range.upperBound, upper)
                    if low <= high { closed.append((low ^ 0x20)...(high ^ 0x20)) }
                }
                if range.contains(0x6B) || range.contains(0x4B) { closed.append(0x212A...0x212A) }
                if range.contains(0x73) || range.contains(0x53) { closed.append(0x17F...0x17F) }
            }
            return ScalarSet.complement(ScalarSet.normalized(closed))
        }

        private mutating func parseClassScalar() throws(SyntaxError) -> UInt32 {
            guard let c = peek else { throw failure("missing closing ] at the end of the expression") }
            if c == "\\" { return try parseEscapedScalar() }
            position += 1
            return c.value
        }
    }
}
