import Testing
import VeneerCore
import VeneerFilter
import VeneerTestSupport

@Suite("Regular expressions of ~= filters (RE2 syntax, no backtracking)")
struct RegularExpressionTests {
    private func matches(_ pattern: String, _ text: String) throws -> Bool {
        try RegularExpression(pattern).matches(text)
    }

    @Test("each construct of the syntax matches what RE2 matches", arguments: [
        // literals, unanchored search
        ("abc", "xxabcxx", true), ("abc", "abx", false), ("", "anything", true), ("", "", true),
        // anchors
        ("^abc", "abcd", true), ("^abc", "xabc", false), ("abc$", "xabc", true), ("abc$", "abcx", false),
        ("^$", "", true), ("^$", "x", false), ("\\Aab\\z", "ab", true), ("\\Aab\\z", "abc", false),
        ("^b", "a\nb", false), ("(?m)^b", "a\nb", true), ("a$", "a\nb", false), ("(?m)a$", "a\nb", true),
        // dot
        ("a.c", "abc", true), ("a.c", "a\nc", false), ("(?s)a.c", "a\nc", true), ("^.$", "α", true),
        ("^..$", "α", false),
        // classes
        ("^[abc]+$", "cab", true), ("^[abc]+$", "cad", false), ("^[a-c0-2]+$", "b1", true),
        ("^[^a-c]$", "d", true), ("^[^a-c]$", "b", false), ("^[]a]+$", "]a", true), ("^[a-]+$", "-a", true),
        ("^[\\d.]+$", "1.2", true), ("^[\\D]$", "x", true), ("^[\\D]$", "7", false),
        ("^[[:alpha:]]+$", "abZ", true), ("^[[:alpha:]]+$", "ab1", false), ("^[[:^digit:]]+$", "ab", true),
        ("^[[:xdigit:]]+$", "09afAF", true), ("^[\\x{3b1}-\\x{3c9}]+$", "αβω", true),
        // Perl classes are ASCII, as in RE2
        ("^\\d+$", "0123456789", true), ("^\\d$", "٣", false), ("^\\w+$", "a_Z9", true), ("^\\w$", "é", false),
        ("^\\W$", "é", true), ("^\\s$", "\t", true), ("^\\S+$", "ab", true), ("\\s", "ab", false),
        // word boundaries
        ("\\bfoo\\b", "a foo b", true), ("\\bfoo\\b", "afoo", false), ("\\Boo", "foo", true), ("\\Bfoo", "foo", false),
        // groups and alternation
        ("^(db|web)$", "web", true), ("^(db|web)$", "dbweb", false), ("^(?:a|b)c$", "bc", true),
        ("^(?P<name>x+)y$", "xxy", true), ("^(?<name>x+)y$", "xy", true), ("^(|a)b$", "b", true), ("a|", "zzz", true),
        // repetition
        ("^a*$", "", true), ("^a+$", "", false), ("^ab?c$", "ac", true), ("^a{3}$", "aaa", true),
        ("^a{3}$", "aa", false), ("^a{2,}$", "aaaaa", true), ("^a{2,3}$", "aaaa", false), ("^a{0}b$", "b", true),
        ("^(ab){2}$", "abab", true), ("^a*?b+?$", "aab", true), ("a{", "a{", true), ("a{x}", "a{x}", true),
        ("^a{,2}$", "a{,2}", true), ("^(a*)*$", "aaa", true), ("^(a|b)*c$", "ababc", true),
        // flags
        ("(?i)^base$", "BaSe", true), ("^(?i:b)ase$", "Base", true), ("^(?i:b)ase$", "BASE", false),
        ("(?i)^[a-c]+$", "ABC", true), ("(?i)^[^a]$", "A", false), ("a(?i)b|c", "C", true), ("(?i)(?-i)a", "A", false),
        ("(?i)^σ$", "Σ", true), ("(?U)^a+$", "aa", true),
        // escapes
        ("^\\.$", ".", true), ("^\\.$", "x", false), ("^a\\/b$", "a/b", true), ("^\\x41\\x{42}$", "AB", true),
        ("^\\101$", "A", true), ("^\\0$", "\u{0}", true), ("^\\t\\n$", "\t\n", true), ("^\\Qa.b\\E$", "a.b", true),
        ("^\\Qa.b\\E$", "axb", false), ("^\\Qa.b", "a.b", true),
        // a repetition after \Q…\E applies to its last scalar; after a flag group or an
        // empty \Q\E, to what came before
        ("^\\Qab\\E{2}$", "abb", true), ("^\\Qab\\E{2}$", "abab", false), ("^a\\Q\\E*$", "", true),
        ("^a(?i)*$", "aaa", true), ("^a(?)b$", "ab", true),
        // counts with a leading zero are not counts: the brace is literal
        ("^a{01}$", "a{01}", true), ("^a{01}$", "a", false), ("^a{0,01}$", "a{0,01}", true),
        // case-insensitive: complements fold first, orbits hold more than two scalars
        ("(?i)[[:^lower:]]", "a", false), ("(?i)[[:^lower:]]", "A", false), ("(?i)[^[:^lower:]]", "A", true),
        ("(?i)\\W", "\u{212A}", false), ("(?i)^k$", "\u{212A}", true), ("(?i)^\u{212A}$", "k", true),
        ("(?i)^s$", "ſ", true), ("(?i)^ς$", "σ", true), ("(?i)^[a-z]$", "ſ", true), ("(?i)^µ$", "Μ", true),
        ("(?i)^i$", "ı", false), ("(?i)^ß$", "ẞ", true),
        // a POSIX class name runs to the first ":]"
        ("^[[:alpha:]x]+$", "ax", true),
    ] as [(String, String, Bool)])
    func construct(_ pattern: String, _ text: String, _ expected: Bool) throws {
        #expect(try matches(pattern, text) == expected, "\(pattern) against \(text.debugDescription)")
    }

    @Test("patterns RE2 rejects, or that this engine does not support, fail with a reason", arguments: [
        ("(", "missing closing )"), ("a)", "unexpected )"), ("[a", "missing closing ]"), ("[z-a]", "invalid character class range z-a"),
        ("*a", "missing argument to repetition operator *"), ("a**", "invalid nested repetition operator **"),
        ("a+*", "invalid nested repetition operator +*"), ("{2}", "missing argument to repetition operator {2}"),
        ("a{1001}", "invalid repeat count {1001}"), ("a{3,2}", "invalid repeat count {3,2}"),
        ("(a)\\1", "backreferences such as \\1 are not supported"), ("(?=a)", "invalid or unsupported syntax (?="),
        ("(?<!a)", "invalid or unsupported syntax (?<!"), ("(?P<a-b>x)", "invalid named group"), ("\\pL", "Unicode classes (\\p) are not supported"),
        ("[\\p{Greek}]", "Unicode classes (\\p) are not supported"), ("\\q", "invalid escape sequence \\q"),
        ("\\", "trailing backslash"), ("\\x4", "invalid escape sequence \\x4"), ("\\x{110000}", "invalid escape sequence"),
        ("[[:alpah:]]", "invalid character class [:alpah:]"), ("(?-)", "invalid flags (?-)"), ("(?i-)", "invalid flags (?i-)"),
        ("(?z)", "invalid or unsupported syntax (?z"), ("(a{1000}){1000}", "invalid repeat count {1000}"),
        ("(?:a{10}){101}", "invalid repeat count {101}: nested repetitions multiply to more than 1000"),
        ("(?:(a{2})*){501}", "invalid repeat count {501}"), ("(?i)*", "missing argument to repetition operator *"),
        ("\\Q\\E+", "missing argument to repetition operator +"), ("[[:alpha]x:]]", "invalid character class [:alpha]x:]"),
        ("a{1000}b{1000}c{1000}d{1000}e{1000}f{1000}g{1000}h{1000}i{1000}j{1000}k{1000}", "the expression is too large"),
    ])
    func rejected(_ pattern: String, _ reason: String) {
        #expect {
            _ = try RegularExpression(pattern)
        } throws: { error in
            guard let error = error as? RegularExpression.SyntaxError else { return false }
            return error.message.hasPrefix(reason)
        }
    }

    @Test("agrees with Swift's Regex where both syntaxes mean the same")
    func agreesWithSwiftRegex() throws {
        let patterns = [
            "a", "^a", "a$", "^a$", "ab|cd", "^(ab|cd)+$", "a*b", "a+b+", "^a?b?$", "(a|b)*abb", "^[0-9]+(\\.[0-9]+)*$",
            "^[a-z]+-[0-9]{1,3}$", "x{2,4}", "^(x{2}){2}$", "[^abc]", "^[^abc]+$", "\\d\\d", "^\\w+$", "\\s", "c.t",
            "^(a|ab)(c|bcd)(d*)$", "(a*)+b", "^(?:a|b|c)*$", "^a.*z$", "(?i)^abc$", "^(?i:a)bc$", "\\bcat\\b",
            "^(a+|b+)*$", "ca?t", "^$", "^.{3}$", "(ab)?c", "^[-a-c]+$", "^\\.+$",
        ]
        let inputs = [
            "", "a", "b", "ab", "abb", "aabb", "cd", "abcd", "abab", "12", "1.25", "1..2", "ab-12", "ab-1234", "xx", "xxxx",
            "xxxxx", "abc", "d", "de", "a b", "cat", "ct", "caat", "the cat sat", "concat", "abcd", "abbcd", "abcdd",
            "AbC", "aBC", "aaaaz", "az", "a.z", "...", "-ab", "xyz",
        ]
        for pattern in patterns {
            let ours = try RegularExpression(pattern)
            let theirs = try Regex(pattern).matchingSemantics(.unicodeScalar)
            for input in inputs {
                #expect(ours.matches(input) == input.contains(theirs), "\(pattern) against \(input.debugDescription)")
            }
        }
    }

    @Test("agrees with Swift's Regex on 3,000 random patterns over 40 random inputs each")
    func agreesOnRandomPatterns() throws {
        var random = SplitMix64(seed: 0x5EED_2026)
        var checked = 0
        for _ in 0..<3_000 {
            let pattern = randomPattern(&random, depth: 2)
            let ours = try RegularExpression(pattern)
            let theirs = try Regex(pattern).matchingSemantics(.unicodeScalar)
            for _ in 0..<40 {
                let length = Int(random.next() % 7)
                let input = String((0..<length).map { _ in Character(["a", "b", "c", "1", "-"][Int(random.next() % 5)]) })
                #expect(ours.matches(input) == input.contains(theirs), "\(pattern) against \(input.debugDescription)")
                checked += 1
            }
        }
        #expect(checked == 120_000)
    }

    /// A pattern of constructs both syntaxes read the same way: literals, `.`, simple
    /// classes, `\d`, groups, alternation, anchors and small repetitions.
    private func randomPattern(_ random: inout SplitMix64, depth: Int) -> String {
        let count = 1 + Int(random.next() % 2)
        var pattern = ""
        for _ in 0..<count {
            var atom: String
            switch random.next() % (depth > 0 ? 10 : 7) {
            case 0, 1, 2: atom = ["a", "b", "c", "-"][Int(random.next() % 4)]
            case 3: atom = "."
            case 4: atom = ["[ab]", "[^a]", "[a-c]", "[-1]", "\\d", "\\w"][Int(random.next() % 6)]
            case 5: atom = ["^", "$"][Int(random.next() % 2)]
            case 6: atom = ""
            case 7: atom = "(" + randomPattern(&random, depth: depth - 1) + ")"
            case 8: atom = "(?:" + randomPattern(&random, depth: depth - 1) + "|" + randomPattern(&random, depth: depth - 1) + ")"
            default: atom = "(" + randomPattern(&random, depth: depth - 1) + ")"
            }
            if !atom.isEmpty && atom != "^" && atom != "$" {
                atom += ["", "", "*", "+", "?", "{2}", "{0,2}", "{1,}", "*?", "+?"][Int(random.next() % 10)]
            }
            pattern += atom
        }
        return random.next() % 4 == 0 ? pattern + "|" + randomPattern(&random, depth: depth - 1) : pattern
    }

    /// Patterns that make a backtracking engine take time exponential in the input
    /// (here, years); this engine answers after (input + 1) × (program size) steps.
    @Test("patterns that make backtracking engines explode answer at once", .timeLimit(.minutes(1)), arguments: [
        ("(a*)*b", String(repeating: "a", count: 5_000), false),
        ("^(a|aa)+$", String(repeating: "a", count: 5_000) + "b", false),
        ("(x+x+)+y", String(repeating: "x", count: 5_000), false),
        ("^(\\w+\\s?)*$", String(repeating: "word ", count: 1_000) + "!", false),
        ("(a*)*b", String(repeating: "a", count: 5_000) + "b", true),
    ])
    func noBacktracking(_ pattern: String, _ text: String, _ expected: Bool) throws {
        #expect(try matches(pattern, text) == expected)
    }
}
