import VeneerCore
import VeneerOS

/// Lists the changes of a snapshot's own layer (an overlay upper directory) against its
/// lower layers, as the merged view shows them. It walks the layer and looks at the
/// lower layers only for the names the layer has, so its cost follows the size of the
/// change, not of the image.
///
/// - A whiteout is a deletion of what the lower layers show at its name (one entry,
///   even for a directory); a whiteout of nothing is no change.
/// - A directory the lower layers do not have (or where they have a non-directory) is
///   listed with everything in it. A directory they have is a change of its own only
///   when its own metadata differs (permissions, owner, extended attributes other than
///   overlayfs's own); its modification time alone, which changes with its children,
///   is not.
/// - In an opaque directory (and below it), what the lower layers show and the layer
///   lacks is deleted.
/// - A non-directory is added, or modified when the lower layers show something at its
///   path, unless it is a copy that changed nothing (``LowerLayers/isUnchangedCopy``).
///   Entries that overlayfs's `redirect_dir` or `metacopy` made are refused. A file
///   with several links is a `file` at its first path and a `hardlink` at
///   the others.
struct LayerChanges {
    let lowers: LowerLayers
    let overlayPrefix: String
    private var changes: [LayerChange] = []
    private var seenInodes = Set<UInt64>()

    init(lowers: [Descriptor], userXattr: Bool = false) {
        overlayPrefix = userXattr ? "user.overlay." : "trusted.overlay."
        self.lowers = LowerLayers(roots: lowers, opaqueAttribute: overlayPrefix + "opaque")
    }

    /// The changes of the layer whose root is `root`, sorted by path.
    mutating func list(_ root: Descriptor) throws -> [LayerChange] {
        changes = []
        seenInodes = []
        try walk(root, path: [], lowerIsDirectory: true, hidesLower: false)
        return changes.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
    }

    private mutating func walk(
        _ directory: Descriptor, path: [[UInt8]], lowerIsDirectory: Bool, hidesLower: Bool
    ) throws {
        let names = try directory.entries().sorted { $0.lexicographicallyPrecedes($1) }
        for name in names {
            guard let status = try directory.status(name) else { continue }
            let childPath = path + [name]
            let lower = lowerIsDirectory ? try lowers.status(of: childPath)?.status : nil
            if status.isWhiteout {
                if let lower { record(childPath, .deleted, Self.type(of: lower)) }
                continue
            }
            try LowerLayers.refuseRedirects(directory, name, status, path: childPath)
            guard status.type == .directory else {
                if lower != nil, try lowers.isUnchangedCopy(directory, name, status, at: childPath) { continue }
                record(childPath, lower == nil ? .added : .modified, entryType(of: status))
                continue
            }
            let child = try directory.openDirectory(name)
            guard let lower, lower.type == .directory else {
                record(childPath, lower == nil ? .added : .modified, .directory)
                try addAll(child, path: childPath)
                continue
            }
            if try ownMetadataDiffers(child, status, from: childPath, lower) {
                record(childPath, .modified, .directory)
            }
            let opaque = try child.extendedAttribute(overlayPrefix + "opaque") == Array("y".utf8)
            try walk(child, path: childPath, lowerIsDirectory: true, hidesLower: hidesLower || opaque)
        }
        if hidesLower && lowerIsDirectory {
            let present = Set(names)
            for name in try lowers.names(in: path) where !present.contains(name) {
                let childPath = path + [name]
                if let lower = try lowers.status(of: childPath)?.status {
                    record(childPath, .deleted, Self.type(of: lower))
                }
            }
        }
    }

    /// Everything below a directory the lower layers do not have, as added (a stray
    /// whiteout in it hides nothing and is left out).
    private mutating func addAll(_ directory: Descriptor, path: [[UInt8]]) throws {
        for name in try directory.entries().sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            guard let status = try directory.status(name), !status.isWhiteout else { continue }
            let childPath = path + [name]
            try LowerLayers.refuseRedirects(directory, name, status, path: childPath)
            if status.type == .directory {
                record(childPath, .added, .directory)
                try addAll(try directory.openDirectory(name), path: childPath)
            } else {
                record(childPath, .added, entryType(of: status))
            }
        }
    }

    private func ownMetadataDiffers(
        _ directory: Descriptor, _ status: Descriptor.Status, from path: [[UInt8]], _ lower: Descriptor.Status
    ) throws -> Bool {
        if status.permissions != lower.permissions || status.uid != lower.uid || status.gid != lower.gid {
            return true
        }
        guard let (lowerParent, _) = try lowers.status(of: path), let name = path.last else { return false }
        let lowerDirectory = try lowerParent.openDirectory(name)
        return try LowerLayers.attributes(of: directory) != LowerLayers.attributes(of: lowerDirectory)
    }

    private mutating func entryType(of status: Descriptor.Status) -> LayerChange.EntryType {
        if status.type == .regular, status.links > 1, !seenInodes.insert(status.inode).inserted {
            return .hardlink
        }
        return Self.type(of: status)
    }

    static func type(of status: Descriptor.Status) -> LayerChange.EntryType {
        switch status.type {
        case .regular: .file
        case .directory: .directory
        case .symlink: .symlink
        case .character: .char
        case .block: .block
        case .fifo: .fifo
        case .socket: .socket
        }
    }

    private mutating func record(_ path: [[UInt8]], _ kind: LayerChange.Kind, _ type: LayerChange.EntryType) {
        let text = "/" + path.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
        changes.append(LayerChange(path: text, kind: kind, type: type))
    }
}
