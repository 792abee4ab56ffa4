import VeneerCore

// Mounts as JSON: `{"options":[…],"source":…,"type":…}`, keys sorted. One writer for the
// wire's bodies and the store's mounts column, so that a recorded mount list goes into
// an answer as the row holds it.
extension JSONWriter {
    @inlinable
    public mutating func mount(_ mount: Mount) {
        raw("{\"options\":")
        array(mount.options) { $0.string($1) }
        raw(",\"source\":")
        string(mount.source)
        raw(",\"type\":")
        string(mount.type)
        raw("}")
    }

    @inlinable
    public mutating func mounts(_ mounts: [Mount]) {
        array(mounts) { $0.mount($1) }
    }

    /// Bytes the mounts' strings take, so that a long overlay option is written into a
    /// buffer allocated once.
    @inlinable
    public static func estimatedSize(_ mounts: [Mount]) -> Int {
        var size = 0
        for mount in mounts {
            size += 64 + mount.source.utf8.count
            for option in mount.options { size += 3 + option.utf8.count }
        }
        return size
    }

    /// A list of mounts alone, without a trailing newline (as the store keeps it).
    @inlinable
    public static func mountArray(_ mounts: [Mount]) -> [UInt8] {
        var writer = JSONWriter(capacity: 256 + estimatedSize(mounts))
        writer.mounts(mounts)
        return writer.bytes
    }
}
