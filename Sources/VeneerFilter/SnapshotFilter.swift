import VeneerCore

// Snapshot filters in containerd's filter syntax.
//
// A filter is a comma-separated list of selectors; a snapshot matches a filter
// when it matches every selector. Several filters given together match a
// snapshot when any one of them does.
//
//     filter    := selector ("," selector)*
//     selector  := fieldpath (operator value)?
//     fieldpath := field ("." field)*
//     field     := [A-Za-z0-9_-]+ | "double-quoted"
//     operator  := "==" | "!=" | "~="
//     value     := "double-quoted" | unquoted
//                | /regex-quoted/ | |regex-quoted|     (after ~= only)
//
// Whitespace may stand between tokens. Quoted strings use Go's escapes.

/// One filter in containerd's syntax, parsed once and matched against many snapshots.
///
/// ## Selectors
/// `fieldpath` alone tests that the field is present; `fieldpath==value` that it is
/// present and equal; `fieldpath!=value` that it differs; `fieldpath~=regex` that
/// the regular expression matches somewhere in the field (unanchored, as Go's
/// `regexp.MatchString`; use `^` and `$` to anchor). Regular expressions use RE2
/// syntax, as Go's do, and match Unicode scalars one at a time, as Go matches runes,
/// in time linear in the field's length (see ``RegularExpression``).
///
/// ## Field paths
/// Fields are joined by `.`. A field is a run of ASCII letters, digits, `-` and `_`
/// (the characters containerd's scanner accepts, a superset of the identifier
/// grammar in its documentation), or a double-quoted string with Go escapes
/// (`\a \b \f \n \r \t \v \\ \" \NNN \xHH \uHHHH \UHHHHHHHH`). Everything after
/// `labels.` names one label, its fields joined back with `.` as containerd does:
/// `labels."k.with.dots"` and `labels.k.with.dots` both name the label `k.with.dots`.
///
/// ## Values
/// A value is a double-quoted string, or an unquoted run of any characters but `,`,
/// white space and control characters (containerd accepts fewer: no leading `.`,
/// for example). After `~=` a value may also be quoted with `/.../` or `|...|`,
/// which spares escaping `"` in patterns; inside them the delimiter is escaped
/// with a backslash. An empty value must be written `""`.
///
/// ## Fields of a snapshot
/// - `key`, and its alias `name` (containerd's name for it): always present.
/// - `kind`: `active`, `view` or `committed`; always present.
/// - `parent`: the parent's key; absent when the snapshot has no parent, so that
///   `parent` alone selects the snapshots that have one. (containerd's adaptor
///   reports a missing parent as present with an empty value.)
/// - `labels.NAME`: the value of label NAME; absent when the label is not set.
/// - `labels` alone: present when the snapshot has at least one label; its value
///   is the empty string. containerd's adaptor instead looks up a label with an
///   empty name, which Veneer cannot store, so that reading would never match;
///   "has any label" is the useful meaning of the same text.
///
/// ## Absent and unknown fields
/// Any other field path (`size`, `Kind`, `key.x`, `kind.x`...) is unknown; field
/// names are case-sensitive, and a quoted field means the same as the bare one
/// (`"kind"` is `kind`). containerd's adaptor only looks at the first field of
/// `name.x`; Veneer does not guess and treats such paths as unknown.
///
/// Unknown fields behave exactly like absent ones, as in containerd's adaptor:
/// presence and `==` never match them, while `!=` and `~=` compare the empty
/// string. So `labels.team!=db` also matches snapshots without a `team` label,
/// `labels.team~=^$` matches those without one (or with an empty one), and
/// `nosuchfield!=x` matches every snapshot. Misspelt fields are not rejected,
/// because containerd does not reject them either.
///
/// ## Errors
/// A filter that is empty or malformed is rejected with `invalid_argument`; the
/// message quotes the filter, gives the position (1-based, counted in Unicode
/// scalars), shows the text found there and says what was expected. (containerd
/// treats an empty filter as matching everything; Veneer asks callers to leave
/// the filter out instead.)
///
/// ## Cost
/// Parsing compiles each regular expression once; matching is then a few string
/// comparisons per selector, and a `~=` test runs ``RegularExpression``'s automaton,
/// which never backtracks: its time is linear in the length of the value.
public struct SnapshotFilter: Sendable {
    /// The filter as written.
    let text: String
    /// All of these must match.
    let selectors: [FilterSelector]

    /// Parses one filter. Regular expressions are compiled here, once.
    public static func parse(_ text: String) throws(VeneerError) -> SnapshotFilter {
        var parser = FilterParser(text)
        return SnapshotFilter(text: text, selectors: try parser.parseFilter())
    }

    /// Whether the snapshot satisfies every selector of the filter.
    public func matches(_ info: SnapshotInfo) -> Bool {
        for selector in selectors where !selector.matches(info) {
            return false
        }
        return true
    }
}

/// Several filters, any of which may match; no filters match every snapshot.
public struct SnapshotFilterSet: Sendable {
    let filters: [SnapshotFilter]

    /// Parses every filter; the first malformed one is reported.
    public init(parsing filters: [String]) throws(VeneerError) {
        var parsed: [SnapshotFilter] = []
        parsed.reserveCapacity(filters.count)
        for text in filters {
            parsed.append(try SnapshotFilter.parse(text))
        }
        self.filters = parsed
    }

    /// True when the set is empty or any one of its filters matches.
    public func matches(_ info: SnapshotInfo) -> Bool {
        if filters.isEmpty { return true }
        for filter in filters where filter.matches(info) {
            return true
        }
        return false
    }

    /// True when no filter was given, so that everything matches.
    public var isEmpty: Bool { filters.isEmpty }
}
