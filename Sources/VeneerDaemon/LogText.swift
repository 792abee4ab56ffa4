/// Text that goes into a plain-text log line. Values logged come from clients (keys,
/// labels, paths), so every character that could end the line early, forge another one
/// or drive a terminal is written as an escape instead.
public enum LogText {
    /// `text` with backslash, the C0 controls, DEL and the C1 controls escaped: `\n`,
    /// `\r`, `\t`, `\\`, and `\u{1b}` for the others. Everything else is kept as it is,
    /// so a line holds exactly one log entry and reads back unambiguously.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count + 8)
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                out.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\\": out += "\\\\"
            default: out += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return out
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00..<0x20, 0x7F..<0xA0, 0x5C: true
        default: false
        }
    }
}
