import VeneerCore
import VeneerOS

/// Writes a snapshot's own layer (an overlay upper directory) as an OCI layer against
/// its lower layers: the entries that ``LayerChanges`` reports as added or modified,
/// with their parent directories before them, deletions as `.wh.NAME` and directories
/// that replace a lower one as the directory, its `.wh..wh..opq` and all it holds.
/// Entries come sorted by name within each directory, parents first; the same layer
/// gives the same entries, and so the same bytes.
///
/// Copies that overlayfs made and that change nothing are left out, entries of
/// `redirect_dir` or `metacopy` refused. Hard links within the layer are written as
/// links to the first name; sockets, which
/// tar cannot carry, are left out; extended attributes (but overlayfs's own) come with
/// files and directories.
struct LayerDiff {
    let lowers: LowerLayers
    let overlayPrefix: String
    let writer: LayerWriter
    /// Directories on the way to the current one that were not written yet.
    private var pending: [(path: [[UInt8]], directory: Descriptor, status: Descriptor.Status)] = []
    private var firstNames: [UInt64: [UInt8]] = [:]
    private(set) var entries = 0

    init(lowers: [Descriptor], writer: LayerWriter, userXattr: Bool = false) {
        overlayPrefix = userXattr ? "user.overlay." : "trusted.overlay."
        self.lowers = LowerLayers(roots: lowers, opaqueAttribute: overlayPrefix + "opaque")
        self.writer = writer
    }

    mutating func write(_ root: Descriptor) throws {
        try walk(root, path: [])
        try writer.finish()
    }

    private mutating func walk(_ directory: Descriptor, path: [[UInt8]]) throws {
        for name in try directory.entries().sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            guard let status = try directory.status(name) else { continue }
            let childPath = path + [name]
            let lower = try lowers.status(of: childPath)?.status
            if status.isWhiteout {
                if lower != nil {
                    try emitPending()
                    try add(path + [Array(".wh.".utf8) + name], type: .regular, status: status, marker: true)
                }
                continue
            }
            try LowerLayers.refuseRedirects(directory, name, status, path: childPath)
            guard status.type == .directory else {
                if lower != nil, try lowers.isUnchangedCopy(directory, name, status, at: childPath) { continue }
                try emitPending()
                try addNonDirectory(directory, name, childPath, status)
                continue
            }
            let child = try directory.openDirectory(name)
            guard let lower, lower.type == .directory else {
                try emitPending()
                try addDirectory(child, childPath, status)
                try addAll(child, path: childPath)
                continue
            }
            if try child.extendedAttribute(overlayPrefix + "opaque") == Array("y".utf8) {
                try emitPending()
                try addDirectory(child, childPath, status)
                try add(childPath + [Array(".wh..wh..opq".utf8)], type: .regular, status: status, marker: true)
                try addAll(child, path: childPath)
                continue
            }
            pending.append((childPath, child, status))
            var ownChange = status.permissions != lower.permissions || status.uid != lower.uid || status.gid != lower.gid
            if !ownChange {
                ownChange = try Self.attributes(of: child) != Self.attributes(of: try lowerDirectory(childPath))
            }
            if ownChange { try emitPending() }
            try walk(child, path: childPath)
            if let last = pending.last, last.path == childPath { pending.removeLast() }
        }
    }

    /// Everything in a directory the lower layers do not show, with nothing hidden.
    private mutating func addAll(_ directory: Descriptor, path: [[UInt8]]) throws {
        for name in try directory.entries().sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            guard let status = try directory.status(name), !status.isWhiteout else { continue }
            let childPath = path + [name]
            try LowerLayers.refuseRedirects(directory, name, status, path: childPath)
            if status.type == .directory {
                let child = try directory.openDirectory(name)
                try addDirectory(child, childPath, status)
                try addAll(child, path: childPath)
            } else {
                try addNonDirectory(directory, name, childPath, status)
            }
        }
    }

    private mutating func emitPending() throws {
        for (path, directory, status) in pending {
            try addDirectory(directory, path, status)
        }
        pending.removeAll()
    }

    private mutating func addDirectory(_ directory: Descriptor, _ path: [[UInt8]], _ status: Descriptor.Status) throws {
        try add(path, type: .directory, status: status, xattrs: Self.attributes(of: directory))
    }

    private mutating func addNonDirectory(
        _ parent: Descriptor, _ name: [UInt8], _ path: [[UInt8]], _ status: Descriptor.Status
    ) throws {
        switch status.type {
        case .regular:
            let joined = Self.join(path)
            if status.links > 1 {
                if let first = firstNames[status.inode] {
                    try add(path, type: .hardlink, status: status, linkTarget: first)
                    return
                }
                firstNames[status.inode] = joined
            }
            let file = try parent.openFile(name)
            try add(path, type: .regular, status: status, size: status.size, xattrs: Self.attributes(of: file), content: file)
        case .symlink:
            try add(path, type: .symlink, status: status, linkTarget: try parent.readLink(name))
        case .character: try add(path, type: .character, status: status)
        case .block: try add(path, type: .block, status: status)
        case .fifo: try add(path, type: .fifo, status: status)
        case .socket, .directory: return
        }
    }

    private mutating func add(
        _ path: [[UInt8]], type: LayerEntry.FileType, status: Descriptor.Status, marker: Bool = false,
        size: Int64 = 0, linkTarget: [UInt8]? = nil, xattrs: [LayerEntry.ExtendedAttribute] = [],
        content: Descriptor? = nil
    ) throws {
        // A whiteout or opaque marker is an empty file, 0644 root, of time 0: nothing of
        // it is kept but its name.
        let entry = LayerEntry(
            index: entries, path: Self.join(path), type: type, linkTarget: linkTarget,
            permissions: marker ? 0o644 : status.permissions, uid: marker ? 0 : status.uid, gid: marker ? 0 : status.gid,
            modified: marker ? Timestamp(nanosecondsSinceEpoch: 0) : status.modified, size: size,
            deviceMajor: marker ? 0 : status.deviceMajor, deviceMinor: marker ? 0 : status.deviceMinor, xattrs: xattrs)
        try writer.add(entry, content: content)
        entries += 1
    }

    private func lowerDirectory(_ path: [[UInt8]]) throws -> Descriptor? {
        guard let (parent, _) = try lowers.status(of: path), let name = path.last else { return nil }
        return try parent.openDirectory(name)
    }

    /// Extended attributes but overlayfs's own, sorted by name.
    static func attributes(of file: Descriptor?) throws -> [LayerEntry.ExtendedAttribute] {
        guard let file else { return [] }
        return try file.extendedAttributeNames().sorted()
            .filter { !$0.hasPrefix("trusted.overlay.") && !$0.hasPrefix("user.overlay.") }
            .compactMap { name in try file.extendedAttribute(name).map { .init(name: name, value: $0) } }
    }

    static func join(_ path: [[UInt8]]) -> [UInt8] {
        Array(path.joined(separator: [UInt8(ascii: "/")]))
    }
}
