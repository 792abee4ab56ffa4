import VeneerCore

/// One `fieldpath [op value]` test, with the field path already resolved.
struct FilterSelector: Sendable {
    enum Field: Sendable, Equatable {
        case key
        case kind
        case parent
        /// `labels` alone.
        case anyLabel
        case label(String)
        case unknown
    }

    enum Test: Sendable {
        case present
        case equal(String)
        case notEqual(String)
        case matches(RegularExpression)
    }

    var field: Field
    var test: Test

    init(fieldpath: [String], test: Test) {
        self.field = Self.resolve(fieldpath)
        self.test = test
    }

    static func resolve(_ path: [String]) -> Field {
        guard let first = path.first else { return .unknown }
        switch first {
        case "key", "name":
            return path.count == 1 ? .key : .unknown
        case "kind":
            return path.count == 1 ? .kind : .unknown
        case "parent":
            return path.count == 1 ? .parent : .unknown
        case "labels":
            return path.count == 1 ? .anyLabel : .label(path.dropFirst().joined(separator: "."))
        default:
            return .unknown
        }
    }

    /// The field's value, or nil when the field is absent or unknown.
    func value(of info: SnapshotInfo) -> String? {
        switch field {
        case .key: info.key
        case .kind: info.kind.rawValue
        case .parent: info.parent
        case .anyLabel: info.labels.isEmpty ? nil : ""
        case .label(let name): info.labels[name]
        case .unknown: nil
        }
    }

    func matches(_ info: SnapshotInfo) -> Bool {
        let value = value(of: info)
        switch test {
        case .present:
            return value != nil
        case .equal(let expected):
            return value == expected
        case .notEqual(let expected):
            return (value ?? "") != expected
        case .matches(let pattern):
            return pattern.matches(value ?? "")
        }
    }
}
