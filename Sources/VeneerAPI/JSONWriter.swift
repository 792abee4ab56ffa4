import VeneerCore

/// Writes the API's hot response bodies (snapshots, lists, mounts) straight into
/// bytes. Keys come out sorted, as Foundation's encoder with `.sortedKeys` would
/// write them, at a fraction of the cost; lists of 10,000 snapshots stay cheap.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings need no escaping: copy them in one go.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0x7F }) {
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

    mutating func info(_ info: SnapshotInfo) {
        raw("{\"created\":\"")
        info.created.appendRFC3339(to: &bytes)
        raw("\"")
        raw(",\"key\":")
        string(info.key)
        raw(",\"kind\":")
        string(info.kind.rawValue)
        raw(",\"labels\":{")
        var first = true
        for name in info.labels.keys.sorted() {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            string(name)
            bytes.append(UInt8(ascii: ":"))
            string(info.labels[name] ?? "")
        }
        raw("}")
        if let parent = info.parent {
            raw(",\"parent\":")
            string(parent)
        }
        raw(",\"updated\":\"")
        info.updated.appendRFC3339(to: &bytes)
        raw("\"}")
    }

    mutating func mount(_ mount: Mount) {
        raw("{\"options\":[")
        for (i, option) in mount.options.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            string(option)
        }
        raw("],\"source\":")
        string(mount.source)
        raw(",\"type\":")
        string(mount.type)
        raw("}")
    }

    mutating func mounts(_ mounts: [Mount]) {
        raw("[")
        for (i, m) in mounts.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            mount(m)
        }
        raw("]")
    }

    static func info(_ value: SnapshotInfo) -> [UInt8] {
        var writer = JSONWriter()
        writer.info(value)
        writer.bytes.append(UInt8(ascii: "\n"))
        return writer.bytes
    }

    static func list(_ infos: [SnapshotInfo]) -> [UInt8] {
        var writer = JSONWriter(capacity: 64 + infos.count * 200)
        writer.raw("{\"snapshots\":[")
        for (i, info) in infos.enumerated() {
            if i > 0 { writer.bytes.append(UInt8(ascii: ",")) }
            writer.info(info)
        }
        writer.raw("]}\n")
        return writer.bytes
    }

    static func prepared(_ info: SnapshotInfo, _ mounts: [Mount]) -> [UInt8] {
        var writer = JSONWriter()
        writer.raw("{\"mounts\":")
        writer.mounts(mounts)
        writer.raw(",\"snapshot\":")
        writer.info(info)
        writer.raw("}\n")
        return writer.bytes
    }

    static func mountList(_ mounts: [Mount]) -> [UInt8] {
        var writer = JSONWriter()
        writer.raw("{\"mounts\":")
        writer.mounts(mounts)
        writer.raw("}\n")
        return writer.bytes
    }
}
