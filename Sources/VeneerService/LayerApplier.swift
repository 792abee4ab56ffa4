import VeneerCore
import VeneerOS

/// Writes the entries of an OCI layer into a directory that starts empty (the layer of
/// a snapshot being built), by image-spec's rules, through descriptors only.
///
/// - Every name is resolved inside the directory: parents are walked one name at a
///   time without following links, except symbolic links this layer made, which are
///   followed the way `RESOLVE_IN_ROOT` would (an absolute target starts at the
///   directory, `..` stops at it). Missing parents are made (0755, root).
/// - Whiteouts become overlayfs whiteouts (character devices 0/0) unless this layer
///   already has the name (whiteouts apply to lower layers only); opaque markers set
///   `<prefix>opaque=y` on their directory, which keeps what this layer put there.
/// - A later entry replaces an earlier one of the same name; a directory entry over an
///   existing directory only changes its metadata.
/// - Owners, modes (setuid and setgid kept: the mode is set after the owner), xattrs
///   (but `trusted.*` and `user.overlay.*`), nanosecond mtimes; directories' mtimes are
///   set by ``finish()``, after all their children.
///
/// The lower layers (the parent's chain, nearest first) are consulted as the merged view
/// would show them: a parent that only they have is copied up (a directory with their
/// mode, owner and xattrs) or followed (a symbolic link, as usrmerge's `/lib ->
/// usr/lib`); a hard link to a file only they have copies the file up first; an
/// opaque marker on the root whiteouts the lower layers' top-level names.
final class LayerApplier {
    private let root: Descriptor
    private let lowers: LowerLayers
    /// `trusted.overlay.` or, for mounts with `userxattr`, `user.overlay.`.
    private let overlayPrefix: String
    /// Directories whose mtime ``finish()`` sets, with it.
    private var directoryTimes: [(path: [[UInt8]], modified: Timestamp)] = []
    /// Most links followed while resolving one name, as the kernel's limit.
    static let maxLinks = 40

    init(root: Descriptor, lowers: [Descriptor] = [], userXattr: Bool = false) {
        self.root = root
        self.overlayPrefix = userXattr ? "user.overlay." : "trusted.overlay."
        self.lowers = LowerLayers(roots: lowers, opaqueAttribute: overlayPrefix + "opaque")
    }

    /// Applies `entry`; a regular file's content comes from `reader`. Throws a
    /// `VeneerError`, or the reader's `LayerReadError` when reading the content failed.
    func apply(_ entry: LayerEntry, from reader: LayerReader) throws {
        let name = try LayerName.parse(entry.path, index: entry.index)
        do {
            switch name {
            case .root:
                if entry.type == .directory {
                    try setAttributes(of: root, entry)
                    directoryTimes.append(([], entry.modified))
                }
            case .whiteout(let directory, let hidden):
                let (parent, _) = try resolveDirectory(directory, entry: entry)
                if try parent.status(hidden) == nil {
                    try parent.makeNode(hidden, type: .character, permissions: 0)
                }
            case .opaque(let directory):
                let (parent, path) = try resolveDirectory(directory, entry: entry)
                if path.isEmpty {
                    // overlayfs does not take the root of the upper layer as opaque:
                    // each name the lower layers have there is deleted instead.
                    for name in try lowers.names(in: []) where try parent.status(name) == nil {
                        try parent.makeNode(name, type: .character, permissions: 0)
                    }
                } else {
                    try parent.setExtendedAttribute(overlayPrefix + "opaque", Array("y".utf8))
                }
            case .path(let components):
                try create(entry, at: components, from: reader)
            }
        } catch let error as SystemError {
            throw Self.mapped(error, entry)
        } catch let error as VeneerError {
            throw error
        } catch let error as LayerReadError {
            throw error
        } catch {
            throw VeneerError.internal("layer entry \(entry.index) (\(quoted(entry.displayPath))): \(error)", cause: error)
        }
    }

    /// Sets the directories' mtimes, deepest first.
    func finish() throws(VeneerError) {
        for (path, modified) in directoryTimes.sorted(by: { $0.path.count > $1.path.count }) {
            do {
                var directory = root
                for component in path { directory = try directory.openDirectory(component) }
                try directory.setModified(modified)
            } catch {
                throw .internal("cannot set the time of directory \(quoted(Self.text(path))): \(error)", cause: error)
            }
        }
    }

    private func create(_ entry: LayerEntry, at components: [[UInt8]], from reader: LayerReader) throws {
        guard let name = components.last else { return }
        let (parent, parentPath) = try resolveDirectory(Array(components.dropLast()), entry: entry)
        let existing = try parent.status(name)
        if entry.type == .directory {
            if let existing, existing.type != .directory { try parent.removeTree(name) }
            if existing?.type != .directory { try parent.makeDirectory(name, permissions: 0o700) }
            let directory = try parent.openDirectory(name)
            // A directory over this layer's whiteout of a lower one starts empty.
            if existing?.isWhiteout == true {
                try directory.setExtendedAttribute(overlayPrefix + "opaque", Array("y".utf8))
            }
            try setAttributes(of: directory, entry)
            directoryTimes.append((parentPath + [name], entry.modified))
            return
        }
        if existing != nil { try parent.removeTree(name) }
        switch entry.type {
        case .regular:
            let file = try parent.createFile(name, permissions: 0o600)
            var written: Int64 = 0
            try reader.readContent { offset, bytes in
                try file.write(bytes, at: offset)
                written = max(written, offset + Int64(bytes.count))
            }
            if written < entry.size { try file.truncate(entry.size) }
            try setAttributes(of: file, entry)
        case .symlink:
            try parent.makeSymlink(name, target: entry.linkTarget ?? [])
            try parent.setOwner(name, uid: entry.uid, gid: entry.gid)
            try parent.setModified(name, entry.modified)
        case .hardlink:
            let target = try LayerName.parse(entry.linkTarget ?? [], index: entry.index)
            guard case .path(let targetComponents) = target, let targetName = targetComponents.last else {
                throw VeneerError.invalidArgument(
                    "layer entry \(entry.index) (\(quoted(entry.displayPath))) is refused: its hard-link target \(quoted(String(decoding: entry.linkTarget ?? [], as: UTF8.self))) is not a file of the layer")
            }
            let (targetParent, targetPath) = try resolveDirectory(
                Array(targetComponents.dropLast()), entry: entry, creating: false)
            if try targetParent.status(targetName) == nil, let (lowerParent, status) = try lowers.status(of: targetPath + [targetName]),
                status.type == .regular
            {
                try copyUp(targetName, from: lowerParent, status, into: targetParent)
            }
            guard let status = try targetParent.status(targetName), status.type != .directory, !status.isWhiteout else {
                throw VeneerError.invalidArgument(
                    "layer entry \(entry.index) (\(quoted(entry.displayPath))) is refused: its hard-link target \(quoted(Self.text(targetComponents))) is not in the layer before it, or is a directory")
            }
            try parent.makeHardLink(name, to: targetName, in: targetParent)
        case .character, .block, .fifo, .socket:
            let type: Descriptor.NodeType =
                switch entry.type {
                case .character: .character
                case .block: .block
                case .fifo: .fifo
                default: .socket
                }
            try parent.makeNode(
                name, type: type, permissions: 0o600, major: entry.deviceMajor, minor: entry.deviceMinor)
            try parent.setOwner(name, uid: entry.uid, gid: entry.gid)
            try parent.setPermissions(name, entry.permissions)
            try parent.setModified(name, entry.modified)
        case .directory:
            break
        }
    }

    /// Owner, then mode (a change of owner clears setuid and setgid), then xattrs (a
    /// change of owner also clears `security.capability`), then the mtime.
    private func setAttributes(of file: Descriptor, _ entry: LayerEntry) throws {
        try file.setOwner(uid: entry.uid, gid: entry.gid)
        try file.setPermissions(entry.permissions)
        for xattr in entry.xattrs where Self.keeps(xattr.name) {
            try file.setExtendedAttribute(xattr.name, xattr.value)
        }
        if entry.type != .directory { try file.setModified(entry.modified) }
    }

    /// Extended attributes a layer may set: not the overlay's own, nor `trusted.*`.
    static func keeps(_ name: String) -> Bool {
        !name.hasPrefix("trusted.") && !name.hasPrefix("user.overlay.")
    }

    /// The directory at `components` below the root and its resolved path: symbolic
    /// links met on the way are followed inside the root, missing directories made
    /// (unless `creating` is false, when they are an error).
    private func resolveDirectory(
        _ components: [[UInt8]], entry: LayerEntry, creating: Bool = true
    ) throws -> (Descriptor, [[UInt8]]) {
        var stack: [Descriptor] = [root]
        var path: [[UInt8]] = []
        var pending = components[...]
        var followed = 0
        while let component = pending.first {
            pending = pending.dropFirst()
            if component == [UInt8(ascii: ".")] { continue }
            if component == [UInt8(ascii: "."), UInt8(ascii: ".")] {
                if stack.count > 1 {
                    stack.removeLast()
                    path.removeLast()
                }
                continue
            }
            guard let current = stack.last else { break }
            let upper = try current.status(component)
            // What the merged view has here: this layer's entry, else the lower layers'.
            var lower: (directory: Descriptor, status: Descriptor.Status)?
            if upper == nil { lower = try lowers.status(of: path + [component]) }
            // This layer's whiteout of the name counts as nothing there.
            let overWhiteout = upper?.isWhiteout == true
            switch overWhiteout ? nil : upper?.type ?? lower?.status.type {
            case .directory?:
                if upper == nil, let lower {
                    try copyUpDirectory(component, from: lower.directory, lower.status, into: current)
                }
                stack.append(try current.openDirectory(component))
                path.append(component)
            case .symlink?:
                followed += 1
                if followed > Self.maxLinks {
                    throw VeneerError.invalidArgument(
                        "layer entry \(entry.index) (\(quoted(entry.displayPath))) is refused: more than \(Self.maxLinks) symbolic links on its path")
                }
                let target = try (upper != nil ? current : lower?.directory ?? current).readLink(component)
                let parts = target.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true).map { Array($0) }
                if target.first == UInt8(ascii: "/") {
                    stack = [root]
                    path = []
                }
                pending = (parts + pending)[...]
            case nil:
                guard creating else {
                    throw VeneerError.invalidArgument(
                        "layer entry \(entry.index) (\(quoted(entry.displayPath))) is refused: \(quoted(Self.text(path + [component]))) is not in the layer")
                }
                if overWhiteout { try current.remove(component, directory: false) }
                try current.makeDirectory(component, permissions: 0o755)
                let made = try current.openDirectory(component)
                // Under this layer's whiteout, the lower layers' directory stays deleted.
                if overWhiteout { try made.setExtendedAttribute(overlayPrefix + "opaque", Array("y".utf8)) }
                stack.append(made)
                path.append(component)
            case .some:
                throw VeneerError.invalidArgument(
                    "layer entry \(entry.index) (\(quoted(entry.displayPath))) is refused: \(quoted(Self.text(path + [component]))) on its path is not a directory")
            }
        }
        guard let directory = stack.last else { return (root, []) }
        return (directory, path)
    }

    /// Makes `name` in `upper` as the directory the lower layer has (mode, owner, kept
    /// xattrs, mtime), empty: the merged view shows the lower content through it.
    private func copyUpDirectory(
        _ name: [UInt8], from lowerParent: Descriptor, _ status: Descriptor.Status, into upper: Descriptor
    ) throws {
        try upper.makeDirectory(name, permissions: 0o700)
        let made = try upper.openDirectory(name)
        try made.setOwner(uid: status.uid, gid: status.gid)
        try made.setPermissions(status.permissions)
        let source = try lowerParent.openDirectory(name)
        for attribute in try source.extendedAttributeNames() where Self.keeps(attribute) {
            if let value = try source.extendedAttribute(attribute) { try made.setExtendedAttribute(attribute, value) }
        }
        try made.setModified(status.modified)
    }

    /// Copies the regular file `name` of a lower layer into `upper`, content and
    /// attributes, as overlayfs's copy-up would.
    private func copyUp(
        _ name: [UInt8], from lowerParent: Descriptor, _ status: Descriptor.Status, into upper: Descriptor
    ) throws {
        let source = try lowerParent.openFile(name)
        let copy = try upper.createFile(name, permissions: 0o600)
        try source.copyContent(to: copy)
        try copy.setOwner(uid: status.uid, gid: status.gid)
        try copy.setPermissions(status.permissions)
        for attribute in try source.extendedAttributeNames() where Self.keeps(attribute) {
            if let value = try source.extendedAttribute(attribute) { try copy.setExtendedAttribute(attribute, value) }
        }
        try copy.setModified(status.modified)
    }

    static func mapped(_ error: SystemError, _ entry: LayerEntry) -> VeneerError {
        let what = "layer entry \(entry.index) (\(quoted(entry.displayPath)))"
        if error.isNoSpace { return .resourceExhausted("\(what) does not fit: \(error); free space on the state root") }
        if error.isRefusal { return .invalidArgument("\(what) is refused: \(error)") }
        return .internal("\(what) could not be written: \(error)", cause: error)
    }

    static func text(_ path: [[UInt8]]) -> String {
        path.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
    }
}
