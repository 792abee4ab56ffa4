import VeneerCore

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

    let program: [Instruction]
    /// The pattern starts with `^` or `\A` (not in multi-line mode): only the start
    /// of the text can begin a match.
    let anchoredAtStart: Bool
    let foldsCase: Bool

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

}
