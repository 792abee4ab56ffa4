// Regular expressions for `~=` filters.
//
// containerd evaluates `~=` with Go's regexp package: RE2 syntax, matched in time
// linear in the input. A backtracking engine (Swift's `Regex`, PCRE, ICU) takes
// exponential time on patterns such as `(a*)*b`: one filter could keep a daemon
// thread busy for hours. This engine parses the RE2 syntax, compiles it to a small
// automaton (Thompson's construction) and runs every state of the automaton at once
// over the input, one Unicode scalar at a time, so a match costs at most
// (input length + 1) × (program size) steps, whatever the pattern.

/// A regular expression in RE2 syntax, as containerd's filters take it, matched without
/// backtracking.
///
/// Supported: literals; `.`; bracket classes with ranges, negation, `\d \w \s` and
/// their negations, and ASCII classes such as `[[:alpha:]]`; `\d \D \w \W \s \S`;
/// anchors `^ $ \A \z`; word boundaries `\b \B`; groups `( )`, `(?: )`,
/// `(?P<name> )`, `(?<name> )`; alternation `|`; repetition `* + ? {n} {n,} {n,m}`
/// (counts of nested repetitions multiply to at most 1000), each optionally lazy
/// (`*?`); flags `(?i)`, `(?m)`, `(?s)`, `(?U)`
/// and `(?flags:re)`; escapes `\a \f \t \n \r \v`, octal `\123`, `\x7F`, `\x{10FFFF}`,
/// `\Q…\E` and any escaped ASCII punctuation.
///
/// Not supported, and rejected with a ``SyntaxError``: what RE2 rejects too
/// (backreferences, lookaround) and Unicode classes (`\p{…}`, `[[:^…:]]` is fine).
///
/// `.` does not match a line feed unless `(?s)`; `^` and `$` match at the start and end
/// of the text unless `(?m)`; `\w`, `\d`, `\s` and `\b` are ASCII-only, as in RE2;
/// `(?i)` takes as equal the scalars of one case orbit (k, K and the Kelvin sign K).
public struct RegularExpression: Sendable {
    /// Why a pattern was rejected.
    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The largest count a repetition may give, as in RE2.
    public static let maxRepeatCount = 1000
    /// The most instructions a compiled pattern may have, its repetitions expanded.
    public static let maxProgramSize = 10_000

    private let program: [Instruction]
    /// The pattern starts with `^` or `\A` (not in multi-line mode): only the start
    /// of the text can begin a match.
    private let anchoredAtStart: Bool
    private let foldsCase: Bool

    public init(_ pattern: String) throws(SyntaxError) {
        var parser = Parser(pattern)
        let tree = try parser.parse()
        var compiler = Compiler()
        try compiler.emit(tree)
        try compiler.append(.match)
        program = compiler.program
        if case .assertion(.beginText) = program[0] { anchoredAtStart = true } else { anchoredAtStart = false }
        foldsCase = program.contains { if case .scalar(let set) = $0 { return set.foldsCase } else { return false } }
    }

    /// Whether the expression matches anywhere in `text` (an unanchored search, as Go's
    /// `regexp.MatchString`).
    public func matches(_ text: String) -> Bool {
        // Two state sets (index and members, `size` each) and the closure's stack (at
        // most two pushes per state added, plus the start), in one temporary buffer.
        let size = program.count
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 6 * size + 2) { buffer -> Bool in
            guard let base = buffer.baseAddress else { return false }
            base.initialize(repeating: 0, count: 6 * size + 2)
            var current = StateSet(index: base, members: base + size)
            var next = StateSet(index: base + 2 * size, members: base + 3 * size)
            let stack = base + 4 * size
            return program.withUnsafeBufferPointer { program -> Bool in
                var scalars = text.unicodeScalars.makeIterator()
                var previous: UInt32? = nil
                var here: UInt32? = scalars.next()?.value
                var atStart = true
                while true {
                    if atStart || !anchoredAtStart {
                        if Self.addClosure(program, 0, to: &current, previous: previous, here: here, stack: stack) { return true }
                    }
                    guard let scalar = here, current.count > 0 else { return false }
                    let orbit = foldsCase ? Self.caseOrbit(scalar) : []
                    let following = scalars.next()?.value
                    next.count = 0
                    for i in 0..<current.count {
                        let pc = current.members[i]
                        guard case .scalar(let set) = program[pc], set.matches(scalar, orbit: orbit) else { continue }
                        if Self.addClosure(program, pc + 1, to: &next, previous: scalar, here: following, stack: stack) { return true }
                    }
                    swap(&current, &next)
                    previous = scalar
                    here = following
                    atStart = false
                }
            }
        }
    }

    /// Adds `start` and every state reachable from it without reading a scalar, at a
    /// position between `previous` and `here`; true when that reaches the match.
    private static func addClosure(
        _ program: UnsafeBufferPointer<Instruction>, _ start: Int, to set: inout StateSet, previous: UInt32?, here: UInt32?,
        stack: UnsafeMutablePointer<Int>
    ) -> Bool {
        var depth = 1
        stack[0] = start
        while depth > 0 {
            depth -= 1
            let pc = stack[depth]
            guard set.insert(pc) else { continue }
            switch program[pc] {
            case .match:
                return true
            case .jump(let target):
                stack[depth] = target
                depth += 1
            case .split(let first, let second):
                stack[depth] = second
                stack[depth + 1] = first
                depth += 2
            case .assertion(let assertion):
                if assertion.holds(previous: previous, here: here) {
                    stack[depth] = pc + 1
                    depth += 1
                }
            case .scalar:
                break
            }
        }
        return false
    }

    /// The scalars a case-insensitive match takes as equal to `value`, other than
    /// itself: the rest of its case orbit (k: K and the Kelvin sign; σ: Σ and ς).
    static func caseOrbit(_ value: UInt32) -> [UInt32] {
        caseOrbits[value] ?? []
    }

    /// Every cased scalar below U+20000 (where all cased scripts are), with the others
    /// of its orbit: the scalars that map to the same one through uppercase, then
    /// lowercase, mappings of one scalar. Dotless ı and dotted İ stay alone, as in the
    /// simple case folding RE2 uses. Built on first use, in a few milliseconds.
    private static let caseOrbits: [UInt32: [UInt32]] = {
        func single(_ mapped: String, else value: UInt32) -> UInt32 {
            let scalars = mapped.unicodeScalars
            return scalars.count == 1 ? scalars[scalars.startIndex].value : value
        }
        var groups: [UInt32: [UInt32]] = [:]
        for value in UInt32(0)..<0x20000 where value != 0x130 && value != 0x131 {
            guard let scalar = Unicode.Scalar(value) else { continue }
            let upper = single(scalar.properties.uppercaseMapping, else: value)
            let lower = single(scalar.properties.lowercaseMapping, else: value)
            guard upper != value || lower != value else { continue }
            let canonical = Unicode.Scalar(upper).map { single($0.properties.lowercaseMapping, else: upper) } ?? upper
            groups[canonical, default: []].append(value)
        }
        var orbits: [UInt32: [UInt32]] = [:]
        for (canonical, members) in groups {
            let orbit = Set(members + [canonical])
            for member in orbit { orbits[member] = orbit.filter { $0 != member }.sorted() }
        }
        return orbits
    }()
}

// MARK: - Program

extension RegularExpression {
    enum Assertion: Sendable, Equatable {
        case beginText, endText, beginLine, endLine, wordBoundary, notWordBoundary

        func holds(previous: UInt32?, here: UInt32?) -> Bool {
            switch self {
            case .beginText: return previous == nil
            case .endText: return here == nil
            case .beginLine: return previous == nil || previous == 0x0A
            case .endLine: return here == nil || here == 0x0A
            case .wordBoundary: return Self.isWord(previous) != Self.isWord(here)
            case .notWordBoundary: return Self.isWord(previous) == Self.isWord(here)
            }
        }

        private static func isWord(_ value: UInt32?) -> Bool {
            guard let value else { return false }
            return ScalarSet.word.ranges.contains { $0.contains(value) }
        }
    }

    /// A set of scalars, as sorted, disjoint ranges.
    struct ScalarSet: Sendable, Equatable {
        var ranges: [ClosedRange<UInt32>]
        var negated = false
        var foldsCase = false

        static let maxScalar: UInt32 = 0x10FFFF
        static let digit = ScalarSet(ranges: [0x30...0x39])
        static let word = ScalarSet(ranges: [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A])
        static let space = ScalarSet(ranges: [0x09...0x0A, 0x0C...0x0D, 0x20...0x20])

        static func single(_ value: UInt32) -> ScalarSet { ScalarSet(ranges: [value...value]) }

        /// The ranges, sorted and merged.
        static func normalized(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
            var merged: [ClosedRange<UInt32>] = []
            for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
                if let last = merged.last, range.lowerBound <= last.upperBound &+ 1 {
                    merged[merged.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
                } else {
                    merged.append(range)
                }
            }
            return merged
        }

        /// Every scalar value not in `ranges` (which must be normalized).
        static func complement(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
            var result: [ClosedRange<UInt32>] = []
            var next: UInt32 = 0
            for range in ranges {
                if range.lowerBound > next { result.append(next...(range.lowerBound - 1)) }
                if range.upperBound >= maxScalar { return result }
                next = range.upperBound + 1
            }
            result.append(next...maxScalar)
            return result
        }

        private func contains(_ value: UInt32) -> Bool {
            var low = 0
            var high = ranges.count
            while low < high {
                let middle = (low + high) / 2
                if ranges[middle].upperBound < value {
                    low = middle + 1
                } else if ranges[middle].lowerBound > value {
                    high = middle
                } else {
                    return true
                }
            }
            return false
        }

        /// Whether the set holds `value`, or, when it folds case, one of the scalars of
        /// `orbit`, the others of its case orbit.
        func matches(_ value: UInt32, orbit: [UInt32]) -> Bool {
            let found = contains(value) || (foldsCase && orbit.contains { contains($0) })
            return found != negated
        }
    }

    enum Instruction: Sendable {
        case scalar(ScalarSet)
        case split(Int, Int)
        case jump(Int)
        case assertion(Assertion)
        case match
    }

    indirect enum Node {
        case empty
        case scalar(ScalarSet)
        case concatenation([Node])
        case alternation([Node])
        /// `braces`: written `{n}`, `{n,}` or `{n,m}`, whose counts multiply along a
        /// nesting (at most ``RegularExpression/maxRepeatCount`` in all, as in RE2).
        case repetition(Node, min: Int, max: Int?, braces: Bool)
        case assertion(Assertion)

        /// Whether the counts of nested brace repetitions multiply to at most `budget`
        /// along every path (RE2's rule; `{0}` and `{0,0}` end the path).
        func repeatCountsFit(_ budget: Int) -> Bool {
            switch self {
            case .empty, .scalar, .assertion:
                return true
            case .concatenation(let nodes), .alternation(let nodes):
                return nodes.allSatisfy { $0.repeatCountsFit(budget) }
            case .repetition(let node, let min, let max, let braces):
                guard braces else { return node.repeatCountsFit(budget) }
                let count = max ?? min
                if count == 0 { return true }
                if count > budget { return false }
                return node.repeatCountsFit(budget / count)
            }
        }
    }

    /// Thompson's construction: one instruction per scalar set and assertion, splits
    /// and jumps for alternation and repetition.
    struct Compiler {
        var program: [Instruction] = []

        mutating func append(_ instruction: Instruction) throws(SyntaxError) {
            if program.count >= RegularExpression.maxProgramSize {
                throw SyntaxError(
                    message: "the expression is too large: more than \(RegularExpression.maxProgramSize) steps once its repetitions are expanded; use smaller repeat counts")
            }
            program.append(instruction)
        }

        mutating func emit(_ node: Node) throws(SyntaxError) {
            switch node {
            case .empty:
                break
            case .scalar(let set):
                try append(.scalar(set))
            case .assertion(let assertion):
                try append(.assertion(assertion))
            case .concatenation(let nodes):
                for node in nodes { try emit(node) }
            case .alternation(let branches):
                var jumpsToEnd: [Int] = []
                for (index, branch) in branches.enumerated() {
                    if index < branches.count - 1 {
                        let split = program.count
                        try append(.split(split + 1, 0))
                        try emit(branch)
                        jumpsToEnd.append(program.count)
                        try append(.jump(0))
                        program[split] = .split(split + 1, program.count)
                    } else {
                        try emit(branch)
                    }
                }
                for jump in jumpsToEnd { program[jump] = .jump(program.count) }
            case .repetition(let node, let min, let max, _):
                for _ in 0..<min { try emit(node) }
                if let max {
                    // x{min,max}: max − min optional copies, each of which may end the run.
                    var splitsToEnd: [Int] = []
                    for _ in min..<max {
                        splitsToEnd.append(program.count)
                        try append(.split(program.count + 1, 0))
                        try emit(node)
                    }
                    for split in splitsToEnd { program[split] = .split(split + 1, program.count) }
                } else {
                    // x*: try x, then come back; or leave.
                    let loop = program.count
                    try append(.split(loop + 1, 0))
                    try emit(node)
                    try append(.jump(loop))
                    program[loop] = .split(loop + 1, program.count)
                }
            }
        }
    }
}

// MARK: - Parser

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

// MARK: - State sets

/// The states of the automaton active at one position: a sparse set over caller-owned
/// memory, cleared in constant time, that keeps the order of insertion.
private struct StateSet {
    let index: UnsafeMutablePointer<Int>
    let members: UnsafeMutablePointer<Int>
    var count = 0

    init(index: UnsafeMutablePointer<Int>, members: UnsafeMutablePointer<Int>) {
        self.index = index
        self.members = members
    }

    /// Inserts `state`; false when it was already there.
    mutating func insert(_ state: Int) -> Bool {
        let slot = index[state]
        if slot < count && members[slot] == state { return false }
        index[state] = count
        members[count] = state
        count += 1
        return true
    }
}
