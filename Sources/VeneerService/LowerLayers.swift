import VeneerCore
import VeneerOS

/// The lower layers of a snapshot as overlayfs merges them, for lookups by path (a
/// path of real directories: the applier resolves links itself). A whiteout (0/0
/// device) hides what the layers below have at its name, a non-directory hides what
/// they have below it, and an opaque directory hides what they have in it.
struct LowerLayers {
    let roots: [Descriptor]
    let opaqueAttribute: String

    /// The entry at `path` in the merged lower layers and the directory of the layer
    /// that holds it, or nil when none shows one there.
    func status(of path: [[UInt8]]) throws -> (directory: Descriptor, status: Descriptor.Status)? {
        guard let name = path.last else { return nil }
        for layer in roots {
            switch try walk(layer, Array(path.dropLast())) {
            case .hidden:
                return nil
            case .absent(let blocksBelow):
                if blocksBelow { return nil }
            case .directory(let directory, let blocksBelow):
                if let status = try directory.status(name) {
                    return status.isWhiteout ? nil : (directory, status)
                }
                if blocksBelow { return nil }
            }
        }
        return nil
    }

    /// The names the merged lower layers show in the directory `path`, sorted.
    func names(in path: [[UInt8]]) throws -> [[UInt8]] {
        var decided = Set<[UInt8]>()
        var shown: [[UInt8]] = []
        for layer in roots {
            switch try walk(layer, path) {
            case .hidden:
                return shown
            case .absent(let blocksBelow):
                if blocksBelow { return shown }
            case .directory(let directory, let blocksBelow):
                for name in try directory.entries() where decided.insert(name).inserted {
                    if try directory.status(name)?.isWhiteout == false { shown.append(name) }
                }
                if blocksBelow { return shown }
            }
        }
        return shown.sorted { $0.lexicographicallyPrecedes($1) }
    }

    private enum Walked {
        /// The layer has the directory; `blocksBelow` when one of the directories on the
        /// way (itself included) is opaque, so the layers below show nothing in it.
        case directory(Descriptor, blocksBelow: Bool)
        /// The layer lacks a directory on the way; an opaque one before it still blocks.
        case absent(blocksBelow: Bool)
        /// A non-directory on the way (a file, a link, a whiteout) hides the layers below.
        case hidden
    }

    private func walk(_ layer: Descriptor, _ path: [[UInt8]]) throws -> Walked {
        var directory = layer
        var opaque = false
        for component in path {
            guard let status = try directory.status(component) else { return .absent(blocksBelow: opaque) }
            guard status.type == .directory else { return .hidden }
            directory = try directory.openDirectory(component)
            if try directory.extendedAttribute(opaqueAttribute) == Array("y".utf8) { opaque = true }
        }
        return .directory(directory, blocksBelow: opaque)
    }
}

extension Descriptor.Status {
    /// overlayfs's whiteout: a character device 0/0.
    var isWhiteout: Bool { type == .character && deviceMajor == 0 && deviceMinor == 0 }
}
