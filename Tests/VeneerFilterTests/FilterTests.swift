import Testing
import VeneerCore
import VeneerFilter

private let t0 = Timestamp(nanosecondsSinceEpoch: 1_700_000_000_000_000_000)

private func snapshot(
    _ key: String, _ kind: SnapshotKind, parent: String? = nil, labels: [String: String] = [:]
) -> SnapshotInfo {
    SnapshotInfo(key: key, kind: kind, parent: parent, labels: labels, created: t0, updated: t0)
}

/// A small chain: base <- layer-1 <- {"default/ctr 1" (active), "view-α" (view)}, plus a bare active.
private let corpus: [SnapshotInfo] = [
    snapshot("base", .committed),
    snapshot(
        "layer-1", .committed, parent: "base",
        labels: ["containerd.io/gc.root": "2024", "team": "db"]),
    snapshot(
        "default/ctr 1", .active, parent: "layer-1",
        labels: ["team": "web", "k.with.dots": "yes", "tier": "", "foo-bar": "1"]),
    snapshot(
        "view-α", .view, parent: "layer-1",
        labels: ["emoji": "🐳", "quote\"d": "v,1", "accent": "é", "tab": "a\tb"]),
    snapshot("scratch", .active),
]

private func keys(_ filters: [String]) throws -> [String] {
    let set = try SnapshotFilterSet(parsing: filters)
    return corpus.filter { set.matches($0) }.map(\.key)
}

private func keys(_ filter: String) throws -> [String] {
    let parsed = try SnapshotFilter.parse(filter)
    return corpus.filter { parsed.matches($0) }.map(\.key)
}

@Suite("Filter matching")
struct FilterMatchingTests {
    @Test func noFiltersMatchEverything() throws {
        let set = try SnapshotFilterSet(parsing: [])
        #expect(set.isEmpty)
        #expect(corpus.allSatisfy { set.matches($0) })
        #expect(try SnapshotFilterSet(parsing: ["kind==view"]).isEmpty == false)
    }

    @Test func equality() throws {
        #expect(try keys("kind==committed") == ["base", "layer-1"])
        #expect(try keys("kind==view") == ["view-α"])
        #expect(try keys("kind==frozen") == [])
        #expect(try keys("labels.team==db") == ["layer-1"])
        #expect(try keys("parent==layer-1") == ["default/ctr 1", "view-α"])
    }

    @Test func inequality() throws {
        #expect(try keys("kind!=committed") == ["default/ctr 1", "view-α", "scratch"])
        // An absent label reads as "" for !=, so unlabelled snapshots match too (as in containerd).
        #expect(try keys("labels.team!=db") == ["base", "default/ctr 1", "view-α", "scratch"])
        #expect(try keys("parent!=base") == ["base", "default/ctr 1", "view-α", "scratch"])
        // "" != "" is false: absent fields never differ from the empty value.
        #expect(try keys("labels.team!=\"\"") == ["layer-1", "default/ctr 1"])
    }

    @Test func keyAndItsAliasName() throws {
        #expect(try keys("key==base") == ["base"])
        #expect(try keys("name==base") == ["base"])
        #expect(try keys("name!=base") == ["layer-1", "default/ctr 1", "view-α", "scratch"])
        #expect(try keys("key") == corpus.map(\.key))
        #expect(try keys("name") == corpus.map(\.key))
        #expect(try keys("\"key\"==scratch") == ["scratch"])
    }

    @Test func presence() throws {
        #expect(try keys("kind") == corpus.map(\.key))
        #expect(try keys("parent") == ["layer-1", "default/ctr 1", "view-α"])
        #expect(try keys("labels.team") == ["layer-1", "default/ctr 1"])
        // A label whose value is empty is still present.
        #expect(try keys("labels.tier") == ["default/ctr 1"])
        #expect(try keys("labels.tier==\"\"") == ["default/ctr 1"])
        // `labels` alone: has at least one label.
        #expect(try keys("labels") == ["layer-1", "default/ctr 1", "view-α"])
    }

    @Test func absentParentIsNotEqualToEmpty() throws {
        #expect(try keys("parent==\"\"") == [])
        #expect(try keys("parent~=^$") == ["base", "scratch"])
    }

    @Test func unknownFieldsDoNotMatch() throws {
        #expect(try keys("size") == [])
        #expect(try keys("size==0") == [])
        #expect(try keys("Kind==active") == [])
        #expect(try keys("key.sub==base") == [])
        #expect(try keys("kind.x") == [])
        #expect(try keys("parent.x==base") == [])
        // != compares the empty string, like containerd's adaptor.
        #expect(try keys("size!=0") == corpus.map(\.key))
        #expect(try keys("size!=\"\"") == [])
    }

    @Test func selectorsJoinedByCommaAreAnd() throws {
        #expect(try keys("kind==committed,labels.team==db") == ["layer-1"])
        #expect(try keys("kind==committed,labels.team==web") == [])
        #expect(try keys("parent==layer-1,kind==active,labels.team") == ["default/ctr 1"])
        #expect(try keys("labels.team,labels") == ["layer-1", "default/ctr 1"])
    }

    @Test func severalFiltersAreOr() throws {
        #expect(try keys(["kind==view", "labels.team==db"]) == ["layer-1", "view-α"])
        #expect(try keys(["key==base", "key==scratch", "key==nothing"]) == ["base", "scratch"])
        #expect(try keys(["kind==committed,labels.team==db", "kind==active,parent"]) == ["layer-1", "default/ctr 1"])
        #expect(try keys(["key==nothing"]) == [])
    }

    @Test func regularExpressions() throws {
        #expect(try keys("key~=^layer-[0-9]+$") == ["layer-1"])
        // Unanchored, like Go's MatchString.
        #expect(try keys("key~=a") == ["base", "layer-1", "default/ctr 1", "scratch"])
        #expect(try keys("labels.team~=^(db|web)$") == ["layer-1", "default/ctr 1"])
        #expect(try keys("key~=\\d") == ["layer-1", "default/ctr 1"])
        #expect(try keys("key~=(?i)^BASE$") == ["base"])
        // Absent fields are matched as "".
        #expect(try keys("labels.team~=^$") == ["base", "view-α", "scratch"])
        // One Unicode scalar per `.`, like Go's runes.
        #expect(try keys("key~=^view-.$") == ["view-α"])
        #expect(try keys("labels.emoji~=^.$") == ["view-α"])
    }

    @Test func regexAlternativeQuotes() throws {
        #expect(try keys("key~=/^(base|scratch)$/") == ["base", "scratch"])
        #expect(try keys("key~=|^default/|") == ["default/ctr 1"])
        #expect(try keys("key~=/^default\\/ctr/") == ["default/ctr 1"])
        #expect(try keys("key~=\"^default/ctr 1$\"") == ["default/ctr 1"])
        // The comma inside quotes belongs to the pattern, not to the selector list.
        #expect(try keys("labels.\"quote\\\"d\"~=/^v,[0-9]{1,2}$/") == ["view-α"])
        #expect(try keys("key~=/a{1,2}/,kind==committed") == ["base", "layer-1"])
        // A raw " needs no escape inside /.../.
        #expect(try keys("labels.\"quote\\\"d\"~=/\"|,/") == ["view-α"])
    }

    @Test func slashesAreOrdinaryCharactersInEqualityValues() throws {
        #expect(try keys("key==default/ctr") == [])
        #expect(try keys("labels.\"containerd.io/gc.root\"==2024") == ["layer-1"])
        #expect(try keys("key==/base/") == [])
        #expect(try SnapshotFilter.parse("key==|x|").matches(snapshot("|x|", .active)))
        #expect(try SnapshotFilter.parse("key==/abs/path").matches(snapshot("/abs/path", .active)))
    }

    @Test func dottedLabelNames() throws {
        #expect(try keys("labels.\"k.with.dots\"==yes") == ["default/ctr 1"])
        // As in containerd, the fields after `labels` are joined back with ".".
        #expect(try keys("labels.k.with.dots==yes") == ["default/ctr 1"])
        #expect(try keys("labels.\"k.with\".dots") == ["default/ctr 1"])
        // "/" is not a field character: such names must be quoted.
        #expect(throws: VeneerError.self) { try SnapshotFilter.parse("labels.containerd.io/gc.root") }
        #expect(try keys("labels.\"containerd.io/gc.root\"") == ["layer-1"])
    }

    @Test func quotedValues() throws {
        #expect(try keys("key==\"default/ctr 1\"") == ["default/ctr 1"])
        #expect(try keys("labels.\"quote\\\"d\"==\"v,1\"") == ["view-α"])
        #expect(try keys("key==\"view-α\"") == ["view-α"])
        #expect(try keys("labels.tab==\"a\\tb\"") == ["view-α"])
        #expect(try keys("labels.\"foo-bar\"==\"1\"") == ["default/ctr 1"])
    }

    @Test(arguments: [
        "labels.accent==\"\\u00e9\"",
        "labels.accent==\"\\U000000E9\"",
        "labels.accent==\"\\xc3\\xa9\"",
        "labels.accent==\"\\303\\251\"",
        "labels.accent==é",
        "labels.accent==\"é\"",
    ])
    func escapesInQuotedValues(filter: String) throws {
        #expect(try keys(filter) == ["view-α"])
    }

    @Test func escapesInQuotedFields() throws {
        #expect(try keys("labels.\"\\x74eam\"==db") == ["layer-1"])
        #expect(try keys("labels.\"\\u0074eam\"==db") == ["layer-1"])
        #expect(try keys("labels.\"quote\\x22d\"") == ["view-α"])
        #expect(try keys("labels.\"\\U0001F433\"") == [])
        #expect(try keys("labels.emoji==\"\\U0001F433\"") == ["view-α"])
        let special = snapshot("s", .active, labels: ["a\\b": "\u{7}\u{8}\u{c}\n\r\t\u{b}"])
        #expect(try SnapshotFilter.parse(#"labels."a\\b"=="\a\b\f\n\r\t\v""#).matches(special))
    }

    @Test func unquotedValuesArePermissive() throws {
        #expect(try keys("labels.emoji==🐳") == ["view-α"])
        #expect(try keys("key==view-α") == ["view-α"])
        let odd = snapshot(".hidden", .active, labels: ["x": "a=b", "y": "say\"hi\"", "z": "(*)", "w": "a~=b"])
        #expect(try SnapshotFilter.parse("key==.hidden").matches(odd))
        #expect(try SnapshotFilter.parse("labels.x==a=b").matches(odd))
        #expect(try SnapshotFilter.parse("labels.y==say\"hi\"").matches(odd))
        #expect(try SnapshotFilter.parse("labels.z==(*)").matches(odd))
        #expect(try SnapshotFilter.parse("labels.w==a~=b").matches(odd))
        // A zero-width joiner inside an emoji sequence (containerd would stop there).
        let family = snapshot("👩‍👧", .active)
        #expect(try SnapshotFilter.parse("key==👩‍👧").matches(family))
    }

    @Test func fieldCharactersFollowContainerdScanner() throws {
        #expect(try keys("labels.foo-bar==1") == ["default/ctr 1"])
        let s = snapshot("s", .active, labels: ["1x": "a", "_y": "b", "Z_9-": "c"])
        #expect(try SnapshotFilter.parse("labels.1x==a,labels._y==b,labels.Z_9-==c").matches(s))
    }

    @Test func whitespaceBetweenTokens() throws {
        #expect(try keys("  kind == committed , labels.team == db  ") == ["layer-1"])
        #expect(try keys("labels. team") == ["layer-1", "default/ctr 1"])
        #expect(try keys("\tkind\t!=\tcommitted\t") == ["default/ctr 1", "view-α", "scratch"])
        #expect(try keys("key ~= /^s/ ") == ["scratch"])
    }

    @Test func matchingIsSafeFromManyTasks() async throws {
        let filter = try SnapshotFilter.parse("key~=^(layer|view)-,kind!=active")
        let expected = corpus.filter { filter.matches($0) }.map(\.key)
        #expect(expected == ["layer-1", "view-α"])
        let results = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<8 {
                group.addTask { corpus.filter { filter.matches($0) }.map(\.key) }
            }
            var all: [[String]] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results.count == 8)
        #expect(results.allSatisfy { $0 == expected })
    }

    @Test func tenThousandSnapshotsThroughARegexStayFast() throws {
        let many = (0..<10_000).map { i in
            snapshot("default/\(i)/sha256:\(String(i, radix: 16))", i % 3 == 0 ? .committed : .active,
                labels: ["index": String(i)])
        }
        let set = try SnapshotFilterSet(parsing: ["key~=^default/[0-9]*7/,labels.index~=3"])
        let clock = ContinuousClock()
        var count = 0
        let elapsed = clock.measure {
            for info in many where set.matches(info) { count += 1 }
        }
        // Keys ending in 7 whose index contains a 3.
        let expected = (0..<10_000).filter { $0 % 10 == 7 && String($0).contains("3") }.count
        #expect(count == expected)
        #expect(elapsed < .seconds(2), "matching 10,000 snapshots took \(elapsed)")
    }

    /// Under a backtracking engine this filter takes time exponential in the label's
    /// length: years for these 2,000 scalars.
    @Test(.timeLimit(.minutes(1))) func aRegexThatMakesBacktrackingExplodeIsAnswered() throws {
        let filter = try SnapshotFilter.parse("labels.note~=^(a|aa)+$")
        #expect(!filter.matches(snapshot("long", .active, labels: ["note": String(repeating: "a", count: 2_000) + "!"])))
        #expect(filter.matches(snapshot("long", .active, labels: ["note": String(repeating: "a", count: 2_000)])))
    }
}

@Suite("Filter parse errors")
struct FilterErrorTests {
    /// (filter, 1-based position reported, text the message must contain)
    @Test(arguments: [
        ("", 1, "empty"),
        ("   ", 4, "empty"),
        ("kind==", 7, "nothing follows \"==\""),
        ("kind!=  ", 9, "nothing follows \"!=\""),
        ("key~=", 6, "nothing follows \"~=\""),
        ("kind==active,", 14, "nothing follows \",\""),
        (",kind==active", 1, "empty selector"),
        ("kind==active,,name==x", 14, "empty selector"),
        ("kind==active, ,name==x", 15, "empty selector"),
        ("labels.", 8, "nothing follows \".\""),
        ("labels..x", 8, "expected a field name"),
        ("==active", 1, "operator without a field path"),
        ("kind=active", 5, "unsupported operator \"=\""),
        ("kind===active", 5, "unsupported operator \"===\""),
        ("kind~active", 5, "unsupported operator \"~\""),
        ("kind!~=active", 5, "unsupported operator \"!~=\""),
        ("kind<active", 5, "unexpected \"<\" after the field path"),
        ("labels.a b", 10, "unexpected \"b\" after the field path"),
        ("ké==x", 2, "unexpected \"é\""),
        ("kind==active extra", 14, "unexpected \"e\" after the value"),
        ("key==\"a\"b", 9, "unexpected \"b\" after the value"),
        ("key==,kind", 6, "found \",\" where a value was expected"),
        ("key==\u{1}", 6, "U+0001"),
        ("labels.\"abc==x", 8, "unterminated quoted string"),
        ("key==\"abc", 6, "unterminated quoted string"),
        ("key~=/abc", 6, "unterminated quoted string"),
        ("key~=|abc", 6, "unterminated quoted string"),
        ("key==\"a\\qb\"", 8, "invalid escape sequence \\q"),
        ("key==\"\\'\"", 7, "invalid escape sequence \\'"),
        ("key~=/\\d/", 7, "invalid escape sequence \\d"),
        ("key==\"a\\x4\"", 8, "two hex digits"),
        ("key==\"\\u12\"", 7, "4 hex digits"),
        ("key==\"\\U0001F4\"", 7, "8 hex digits"),
        ("key==\"\\12\"", 7, "three octal digits"),
        ("key==\"\\400\"", 7, "above \\377"),
        ("key==\"\\uD800\"", 7, "not a Unicode scalar value"),
        ("key==\"\\U00110000\"", 7, "not a Unicode scalar value"),
        ("key==\"\\xff\"", 6, "valid UTF-8"),
        ("key==\"abc\\", 10, "unterminated escape sequence"),
        ("key==\"a\nb\"", 8, "line break"),
        ("key==\"a\u{0}b\"", 8, "NUL"),
        ("labels.|foo|==x", 8, "cannot be quoted with \"|\""),
        ("labels./foo/", 8, "cannot be quoted with \"/\""),
        ("key==/abc/ x", 12, "after the value"),
        ("key~=(", 6, "invalid regular expression \"(\""),
        ("key~=/[z-a]/", 6, "invalid regular expression \"[z-a]\""),
        ("kind==active,key~=a(b", 19, "invalid regular expression"),
        ("*", 1, "unexpected \"*\""),
        ("labels.*", 8, "unexpected \"*\""),
        ("kind==committed\u{A0}x", 17, "after the value"),
    ])
    func malformedFilter(filter: String, position: Int, fragment: String) {
        let error = #expect(throws: VeneerError.self) { try SnapshotFilter.parse(filter) }
        guard let error else { return }
        #expect(error.code == .invalidArgument)
        #expect(error.message.hasPrefix("invalid filter \(quoted(filter)) at position \(position)"), "\(error.message)")
        #expect(error.message.contains(fragment), "\(error.message)")
        #expect(error.message.contains("expected"), "\(error.message)")
    }

    @Test func endOfFilterIsNamedAsSuch() {
        let error = #expect(throws: VeneerError.self) { try SnapshotFilter.parse("kind==") }
        #expect(error?.message.contains("at position 7 (the end of the filter)") == true, "\(String(describing: error))")
    }

    @Test func setReportsTheMalformedFilter() {
        let error = #expect(throws: VeneerError.self) {
            try SnapshotFilterSet(parsing: ["kind==view", "labels.x==", "key==a"])
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("\"labels.x==\"") == true, "\(String(describing: error))")
    }

    @Test func emptyFilterInASetIsRejected() {
        #expect(throws: VeneerError.self) { try SnapshotFilterSet(parsing: ["kind==view", ""]) }
    }

    @Test func wellFormedCornerCasesParse() throws {
        // These look odd but are valid, and must not throw.
        for text in [
            "labels.\"\"", "key==\"\"", "key~=\"\"", "key~=//", "key~=||", "a-b_c", "\"weird field\"==1",
            "key==a,key==b,key==c", "key==\"\\\\\"", "key~=\\.",
        ] {
            _ = try SnapshotFilter.parse(text)
        }
        // A backslash does not escape "," in an unquoted value: the pattern here is `a\`.
        let error = #expect(throws: VeneerError.self) { try SnapshotFilter.parse("key~=a\\,kind") }
        #expect(error?.message.contains("invalid regular expression \"a\\\\\"") == true, "\(String(describing: error))")
    }
}
