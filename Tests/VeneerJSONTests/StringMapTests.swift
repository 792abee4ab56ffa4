import Foundation
import Testing
import VeneerCore
import VeneerJSON

/// Labels as the store keeps them: written by `JSONWriter.stringMap`, read by
/// `StrictJSON.stringMap`.
@Suite struct StringMapTests {
    private func parse(_ text: String) -> [String: String]? {
        try? StrictJSON.stringMap(Array(text.utf8))
    }

    @Test(arguments: [
        [:],
        ["a": "b"],
        ["containerd.io/gc.ref": "sha256:abc", "empty": "", "x": "y"],
        ["quote\"back\\slash": "tab\tnewline\ncontrol\u{1}del\u{7F}"],
        ["ü": "日本語", "emoji 🐳": "🐳🐳", "slash/es": "/a/b"],
    ])
    func roundTripsWhatTheWriterWrites(_ labels: [String: String]) throws {
        let text = String(decoding: JSONWriter.stringMap(labels), as: UTF8.self)
        #expect(parse(text) == labels)
        // The writer's output is standard JSON that Foundation reads the same way.
        let foundation = try JSONDecoder().decode([String: String].self, from: Data(text.utf8))
        #expect(foundation == labels)
    }

    @Test func readsWhatFoundationsEncoderWrites() throws {
        let labels = ["a/b": "c/d", "quote": "\"", "smile": "😀", "ctl": "\u{8}\u{C}"]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let text = String(decoding: try encoder.encode(labels), as: UTF8.self)
        #expect(parse(text) == labels)
    }

    @Test func resolvesEscapesAndSurrogatePairs() {
        #expect(parse(#"{"k":"\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\"}"#) == ["k": "é😀/\u{8}\u{C}\n\r\t\"\\"])
        #expect(parse(" { \"a\" : \"1\" ,\n\"b\":\"2\" } ") == ["a": "1", "b": "2"])
    }

    @Test(arguments: [
        "", "[]", "{", "{\"a\"}", "{\"a\":1}", "{\"a\":\"b\",}", "{\"a\":\"b\"} x", "{\"a\":\"b\",\"a\":\"c\"}",
        "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"line\nbreak\"}",
        "{\"a\":\"b\"", "{'a':'b'}",
    ])
    func refusesAnythingElse(_ text: String) {
        #expect(parse(text) == nil)
    }

    @Test func refusesInvalidUTF8() {
        let bytes: [UInt8] = Array("{\"a\":\"".utf8) + [0xC3, 0x28] + Array("\"}".utf8)
        #expect((try? StrictJSON.stringMap(bytes)) == nil)
    }
}
