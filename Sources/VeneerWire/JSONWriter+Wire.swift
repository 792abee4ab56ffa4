import VeneerCore
import VeneerJSON

// The API's hot response bodies (snapshots, lists, mounts), written with ``JSONWriter``
// field by field, keys sorted: byte for byte what Foundation's encoder with
// `.sortedKeys` writes for the same ``Codable`` types.
extension JSONWriter {
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

    public static func info(_ value: SnapshotInfo) -> [UInt8] {
        body { $0.info(value) }
    }

    public static func list(_ infos: [SnapshotInfo]) -> [UInt8] {
        body(capacity: 64 + infos.count * 200) { writer in
            writer.raw("{\"snapshots\":")
            writer.array(infos) { $0.info($1) }
            writer.raw("}")
        }
    }

    public static func prepared(_ info: SnapshotInfo, _ mounts: [Mount]) -> [UInt8] {
        body(capacity: 512 + estimatedSize(mounts)) { writer in
            writer.raw("{\"mounts\":")
            writer.mounts(mounts)
            writer.raw(",\"snapshot\":")
            writer.info(info)
            writer.raw("}")
        }
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
        body(capacity: 512 + (mountsJSON?.count ?? estimatedSize(live.mounts))) {
            $0.liveMount(live, mountsJSON: mountsJSON)
        }
    }

    public static func liveMounts(_ mounts: [LiveMount]) -> [UInt8] {
        body(capacity: 64 + mounts.count * 512) { writer in
            writer.raw("{\"mounts\":")
            writer.array(mounts) { $0.liveMount($1) }
            writer.raw("}")
        }
    }

    public static func mountList(_ mounts: [Mount]) -> [UInt8] {
        body(capacity: 256 + estimatedSize(mounts)) { writer in
            writer.raw("{\"mounts\":")
            writer.mounts(mounts)
            writer.raw("}")
        }
    }
}
