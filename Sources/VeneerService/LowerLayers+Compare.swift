import VeneerCore
import VeneerOS

extension LowerLayers {
    /// Whether the layer's non-directory `name` in `directory` is what the lower layers
    /// show at `path`: a copy overlayfs made (on an open for writing, a change of owner
    /// or mode put back, an extended attribute set and removed) that changed nothing.
    /// Same type, permissions, owner, size, modification time and extended attributes,
    /// and the same content, link target or device.
    func isUnchangedCopy(
        _ directory: Descriptor, _ name: [UInt8], _ status: Descriptor.Status, at path: [[UInt8]]
    ) throws -> Bool {
        guard let (lowerDirectory, lower) = try self.status(of: path) else { return false }
        guard status.type == lower.type, status.permissions == lower.permissions, status.uid == lower.uid,
            status.gid == lower.gid, status.size == lower.size, status.modified == lower.modified
        else { return false }
        switch status.type {
        case .symlink:
            return try directory.readLink(name) == lowerDirectory.readLink(name)
        case .character, .block:
            return status.deviceMajor == lower.deviceMajor && status.deviceMinor == lower.deviceMinor
        case .fifo, .socket:
            return true
        case .directory:
            return false
        case .regular:
            let upperFile = try directory.openFile(name)
            let lowerFile = try lowerDirectory.openFile(name)
            guard try Self.attributes(of: upperFile) == Self.attributes(of: lowerFile) else { return false }
            return try Self.sameContent(upperFile, lowerFile)
        }
    }

    /// Extended attributes but overlayfs's own, by name.
    static func attributes(of file: Descriptor) throws -> [String: [UInt8]] {
        var attributes: [String: [UInt8]] = [:]
        for name in try file.extendedAttributeNames() where !name.hasPrefix("trusted.overlay.") && !name.hasPrefix("user.overlay.") {
            attributes[name] = try file.extendedAttribute(name)
        }
        return attributes
    }

    private static func sameContent(_ first: Descriptor, _ second: Descriptor) throws -> Bool {
        let size = 64 * 1024
        let a = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer {
            a.deallocate()
            b.deallocate()
        }
        while true {
            let count = try fill(first, a)
            guard try fill(second, b) == count else { return false }
            if count == 0 { return true }
            guard UnsafeRawBufferPointer(rebasing: a[..<count]).elementsEqual(UnsafeRawBufferPointer(rebasing: b[..<count])) else {
                return false
            }
        }
    }

    /// Reads until `buffer` is full or the file ends.
    private static func fill(_ file: Descriptor, _ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            let count = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            if count == 0 { break }
            filled += count
        }
        return filled
    }

    /// Refuses a layer entry that overlayfs's `redirect_dir` or `metacopy` made: its
    /// content is elsewhere, which neither a list of changes nor a tar can say.
    static func refuseRedirects(_ directory: Descriptor, _ name: [UInt8], _ status: Descriptor.Status, path: [[UInt8]]) throws {
        let attribute: String
        switch status.type {
        case .directory: attribute = "trusted.overlay.redirect"
        case .regular: attribute = "trusted.overlay.metacopy"
        default: return
        }
        if try directory.extendedAttribute(attribute, of: name) != nil {
            let shown = "/" + path.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
            throw VeneerError.failedPrecondition(
                "\(shown) was written by an overlay mounted with \(status.type == .directory ? "redirect_dir" : "metacopy")=on, whose entries point into the lower layers; mount with redirect_dir=off and metacopy=off (veneerd's default) to list or export changes")
        }
    }
}
