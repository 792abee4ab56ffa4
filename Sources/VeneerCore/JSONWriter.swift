/// Writes the API's hot response bodies (snapshots, lists, mounts) and the store's
/// records of mounts straight into bytes. Keys come out sorted, as Foundation's
/// encoder with `.sortedKeys` would write them, at a fraction of the cost; lists of
/// 10,000 snapshots and mounts of 500-layer overlays stay cheap.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    public mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings need no escaping: copy them in one go. A native string's bytes are
        // contiguous, so both the scan and the copy run over a plain buffer (a 500-layer
        // lowerdir option is about 30 KB).
        let copied = value.utf8.withContiguousStorageIfAvailable { utf8 -> Bool in
            for byte in utf8 where byte < 0x20 || byte == 0x22 || byte == 0x5C || byte == 0x7F { return false }
            bytes.append(contentsOf: utf8)
            return true
        }
        if copied == true {
            bytes.append(UInt8(ascii: "\""))
            return
        }
        if copied == nil, !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0x7F }) {
            bytes.append(contentsOf: value.utf8)
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0x00..<0x20, 0x7F:
                raw("\\u00")
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    public mutating func info(_ info: SnapshotInfo) {
        raw("{\"created\":\"")
        info.created.appendRFC3339(to: &bytes)
        raw("\"")
        raw(",\"key\":")
        string(info.key)
        raw(",\"kind\":")
        string(info.kind.rawValue)
        raw(",\"labels\":")
        stringMap(info.labels)
        if let parent = info.parent {
            raw(",\"parent\":")
            string(parent)
        }
        raw(",\"updated\":\"")
        info.updated.appendRFC3339(to: &bytes)
        raw("\"}")
    }

    /// An object of strings, keys sorted.
    public mutating func stringMap(_ map: [String: String]) {
        bytes.append(UInt8(ascii: "{"))
        var first = true
        for name in map.keys.sorted() {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            string(name)
            bytes.append(UInt8(ascii: ":"))
            string(map[name] ?? "")
        }
        bytes.append(UInt8(ascii: "}"))
    }

    public static func stringMap(_ map: [String: String]) -> [UInt8] {
        var writer = JSONWriter(capacity: 64)
        writer.stringMap(map)
        return writer.bytes
    }

    /// `[a,b,…]`, each element written by `element`.
    public mutating func array<Element>(_ elements: [Element], _ element: (inout JSONWriter, Element) -> Void) {
        bytes.append(UInt8(ascii: "["))
        for (i, value) in elements.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            element(&self, value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    public mutating func mount(_ mount: Mount) {
        raw("{\"options\":")
        array(mount.options) { $0.string($1) }
        raw(",\"source\":")
        string(mount.source)
        raw(",\"type\":")
        string(mount.type)
        raw("}")
    }

    public mutating func mounts(_ mounts: [Mount]) {
        array(mounts) { $0.mount($1) }
    }

    public static func info(_ value: SnapshotInfo) -> [UInt8] {
        var writer = JSONWriter()
        writer.info(value)
        writer.bytes.append(UInt8(ascii: "\n"))
        return writer.bytes
    }

    public static func list(_ infos: [SnapshotInfo]) -> [UInt8] {
        var writer = JSONWriter(capacity: 64 + infos.count * 200)
        writer.raw("{\"snapshots\":")
        writer.array(infos) { $0.info($1) }
        writer.raw("}\n")
        return writer.bytes
    }

    public static func prepared(_ info: SnapshotInfo, _ mounts: [Mount]) -> [UInt8] {
        var writer = JSONWriter(capacity: 512 + estimatedSize(mounts))
        writer.raw("{\"mounts\":")
        writer.mounts(mounts)
        writer.raw(",\"snapshot\":")
        writer.info(info)
        writer.raw("}\n")
        return writer.bytes
    }

    /// `mountsJSON`, when given, is `live.mounts` as ``mountArray(_:)`` writes them.
    public mutating func liveMount(_ live: LiveMount, mountsJSON: [UInt8]? = nil) {
        raw("{\"key\":")
        string(live.key)
        raw(",\"mounted_at\":\"")
        live.mountedAt.appendRFC3339(to: &bytes)
        raw("\",\"mounts\":")
        if let mountsJSON {
            bytes.append(contentsOf: mountsJSON)
        } else {
            mounts(live.mounts)
        }
        raw(live.readonly ? ",\"readonly\":true" : ",\"readonly\":false")
        raw(",\"target\":")
        string(live.target)
        raw("}")
    }

    public static func liveMount(_ live: LiveMount, mountsJSON: [UInt8]? = nil) -> [UInt8] {
        var writer = JSONWriter(capacity: 512 + (mountsJSON?.count ?? estimatedSize(live.mounts)))
        writer.liveMount(live, mountsJSON: mountsJSON)
        writer.bytes.append(UInt8(ascii: "\n"))
        return writer.bytes
    }

    public static func liveMounts(_ mounts: [LiveMount]) -> [UInt8] {
        var writer = JSONWriter(capacity: 64 + mounts.count * 512)
        writer.raw("{\"mounts\":")
        writer.array(mounts) { $0.liveMount($1) }
        writer.raw("}\n")
        return writer.bytes
    }

    /// Bytes the mounts' strings take, so that a long overlay option is written into a
    /// buffer allocated once.
    static func estimatedSize(_ mounts: [Mount]) -> Int {
        var size = 0
        for mount in mounts {
            size += 64 + mount.source.utf8.count
            for option in mount.options { size += 3 + option.utf8.count }
        }
        return size
    }

    /// A list of mounts alone, without a trailing newline (as the store keeps it).
    public static func mountArray(_ mounts: [Mount]) -> [UInt8] {
        var writer = JSONWriter(capacity: 256 + estimatedSize(mounts))
        writer.mounts(mounts)
        return writer.bytes
    }

    public static func mountList(_ mounts: [Mount]) -> [UInt8] {
        var writer = JSONWriter(capacity: 256 + estimatedSize(mounts))
        writer.raw("{\"mounts\":")
        writer.mounts(mounts)
        writer.raw("}\n")
        return writer.bytes
    }
}
