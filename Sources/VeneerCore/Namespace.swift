/// A namespace: a key space of its own. Keys, parents, lists and cleanups of one
/// namespace never see the snapshots of another. HTTP clients use ``default`` unless they
/// name one; everything containerd asks for over gRPC lives in ``containerd``, because
/// containerd's garbage collector removes every snapshot of its backend it does not know.
///
/// A name follows containerd's rule for its own namespaces: 1 to 76 characters, letters
/// and digits in runs joined by single `.`, `_` or `-`.
public struct Namespace: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let name: String

    public static let `default` = Namespace(trusted: "default")
    public static let containerd = Namespace(trusted: "containerd")

    public static let maxLength = 76

    private init(trusted name: String) {
        self.name = name
    }

    public init(validating name: String) throws(VeneerError) {
        guard Self.isValid(name) else {
            throw .invalidArgument(
                "namespace \(quoted(name)) is not a valid name; use 1 to \(Self.maxLength) letters and digits, runs joined by single '.', '_' or '-' (such as \"default\" or \"containerd\")")
        }
        self.name = name
    }

    public var description: String { name }

    public static func < (lhs: Namespace, rhs: Namespace) -> Bool { lhs.name < rhs.name }

    static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= maxLength else { return false }
        var previousWasSeparator = true
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                previousWasSeparator = false
            case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                if previousWasSeparator { return false }
                previousWasSeparator = true
            default:
                return false
            }
        }
        return !previousWasSeparator
    }
}
