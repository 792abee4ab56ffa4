import Testing
import VeneerDaemon

@Suite("Log text")
struct LogTextTests {
    @Test func plainTextIsKept() {
        for text in ["", "ctr-1", "a b=c", "sha256:0123", "é 🐳 e\u{301}", "/mnt/a\"b'"] {
            #expect(LogText.escaped(text) == text)
        }
    }

    @Test func lineBreaksAndTerminalControlsAreEscaped() {
        #expect(LogText.escaped("a\nb") == #"a\nb"#)
        #expect(LogText.escaped("a\r\nb") == #"a\r\nb"#)
        #expect(LogText.escaped("tab\there") == #"tab\there"#)
        #expect(LogText.escaped("\u{1B}[31mred") == #"\u{1b}[31mred"#)
        #expect(LogText.escaped("nul\u{0}") == #"nul\u{0}"#)
        #expect(LogText.escaped("del\u{7F}") == #"del\u{7f}"#)
        // C1 controls: NEL (U+0085) ends a line for some readers, CSI (U+009B) drives terminals.
        #expect(LogText.escaped("a\u{85}b\u{9B}c") == #"a\u{85}b\u{9b}c"#)
        // A backslash is escaped too, so that an escape in the log cannot be forged either.
        #expect(LogText.escaped(#"a\nb"#) == #"a\\nb"#)
        #expect(LogText.escaped("\u{A0}") == "\u{A0}")
    }

    @Test func noEscapedTextHoldsAControlCharacter() {
        var all = ""
        for value in UInt32(0)...0xFF {
            if let scalar = Unicode.Scalar(value) { all.unicodeScalars.append(scalar) }
        }
        let escaped = LogText.escaped(all)
        #expect(!escaped.unicodeScalars.contains { $0.value < 0x20 || (0x7F..<0xA0).contains($0.value) })
    }
}
