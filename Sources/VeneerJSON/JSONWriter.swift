import VeneerCore

/// Writes JSON straight into bytes: the primitives (strings, string maps, arrays) that
/// the wire's hot bodies and the store's records are made of. Callers write keys in
/// sorted order, as Foundation's encoder with `.sortedKeys` would, at a fraction of the
/// cost. The primitives are inlinable: they run once per field of a 10,000-snapshot list.
public struct JSONWriter: Sendable {
    public var bytes: [UInt8] = []

    @inlinable
    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    @inlinable
    public mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    @inlinable
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

    /// An object of strings, keys sorted.
    @inlinable
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

    @inlinable
    public static func stringMap(_ map: [String: String]) -> [UInt8] {
        var writer = JSONWriter(capacity: 64)
        writer.stringMap(map)
        return writer.bytes
    }

    /// `[a,b,…]`, each element written by `element`.
    @inlinable
    public mutating func array<Element>(_ elements: [Element], _ element: (inout JSONWriter, Element) -> Void) {
        bytes.append(UInt8(ascii: "["))
        for (i, value) in elements.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            element(&self, value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// A whole answer body: what `write` writes, then a newline.
    @inlinable
    public static func body(capacity: Int = 256, _ write: (inout JSONWriter) -> Void) -> [UInt8] {
        var writer = JSONWriter(capacity: capacity)
        write(&writer)
        writer.bytes.append(UInt8(ascii: "\n"))
        return writer.bytes
    }
}
