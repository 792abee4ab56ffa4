/// What the name of an entry in an OCI layer means (image-spec `layer.md`): a path
/// inside the snapshot, a whiteout of a lower layer's entry, or an opaque marker.
///
/// Names are byte strings, as tar stores them. Parsing is lexical only; resolving a
/// path against the snapshot's directories (and the symbolic links on the way) is the
/// applier's work.
public enum LayerName: Equatable, Sendable {
    /// The snapshot's root directory itself (`./`, `/`).
    case root
    /// An entry at `components` (never empty; no component is empty, `.` or `..`).
    case path([[UInt8]])
    /// `dir/.wh.NAME`: NAME in `dir` of the lower layers is deleted.
    case whiteout(directory: [[UInt8]], name: [UInt8])
    /// `dir/.wh..wh..opq`: what the lower layers have in `dir` is hidden; what this
    /// layer puts there stays, wherever the marker appears in the stream.
    case opaque(directory: [[UInt8]])

    /// The prefix of whiteout names.
    public static let whiteoutPrefix = Array(".wh.".utf8)
    /// The name of the opaque marker.
    public static let opaqueMarker = Array(".wh..wh..opq".utf8)
    /// Longest component a Linux file system takes.
    public static let maxComponentBytes = 255

    /// The meaning of `name`, the entry at `index` of the stream. A leading `/` and `.`
    /// components are dropped, as tar does; a name that climbs with `..`, a component
    /// longer than 255 bytes, a bare `.wh.`, a whiteout of `.` or `..`, a reserved
    /// `.wh..wh.` name other than the opaque marker, and a path through a whiteout
    /// name are refused (`invalid_argument`, naming the entry and its index).
    public static func parse(_ name: [UInt8], index: Int) throws(VeneerError) -> LayerName {
        var components: [[UInt8]] = []
        for part in name.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            let component = Array(part)
            if component == [UInt8(ascii: ".")] { continue }
            if component == [UInt8(ascii: "."), UInt8(ascii: ".")] {
                throw refused(name, index, "it climbs out with \"..\"; layer entries must stay inside the layer")
            }
            if component.count > maxComponentBytes {
                throw refused(
                    name, index,
                    "a component is \(component.count) bytes long; file systems take at most \(maxComponentBytes)")
            }
            components.append(component)
        }
        guard let last = components.popLast() else { return .root }
        if let through = components.first(where: { $0.starts(with: whiteoutPrefix) }) {
            throw refused(
                name, index,
                "it goes through \(quoted(String(decoding: through, as: UTF8.self))), a whiteout name; whiteouts are files")
        }
        guard last.starts(with: whiteoutPrefix) else { return .path(components + [last]) }
        if last == opaqueMarker { return .opaque(directory: components) }
        let hidden = Array(last.dropFirst(whiteoutPrefix.count))
        if hidden.isEmpty {
            throw refused(name, index, "a bare \".wh.\" names nothing to delete")
        }
        if hidden == [UInt8(ascii: ".")] || hidden == [UInt8(ascii: "."), UInt8(ascii: ".")] {
            throw refused(name, index, "a whiteout cannot delete \".\" or \"..\"")
        }
        if hidden.starts(with: whiteoutPrefix) {
            throw refused(name, index, "names beginning \".wh..wh.\" are reserved; only \".wh..wh..opq\" has a meaning")
        }
        return .whiteout(directory: components, name: hidden)
    }

    private static func refused(_ name: [UInt8], _ index: Int, _ why: String) -> VeneerError {
        let shown = String(decoding: name.prefix(256), as: UTF8.self) + (name.count > 256 ? "…" : "")
        return .invalidArgument("layer entry \(index) (\(quoted(shown))) is refused: \(why)")
    }
}
