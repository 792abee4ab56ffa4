/// One change of a snapshot's own layer against its parent, as the merged view shows
/// it: a path that the layer added, modified or deleted.
public struct LayerChange: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case added, modified, deleted
    }

    /// What is at the path: for a deletion, what the parent had there.
    public enum EntryType: String, Sendable, Codable {
        case file, directory, symlink
        /// A file that is a further name of a file listed before it (in path order).
        case hardlink
        case char, block, fifo, socket
    }

    /// Absolute, from the snapshot's root: `/etc/passwd`.
    public var path: String
    public var kind: Kind
    public var type: EntryType

    public init(path: String, kind: Kind, type: EntryType) {
        self.path = path
        self.kind = kind
        self.type = type
    }
}
