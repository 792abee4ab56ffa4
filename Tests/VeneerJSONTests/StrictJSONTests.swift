import Testing
import VeneerCore
import VeneerJSON

@Suite("Strict JSON syntax")
struct StrictJSONTests {
    private func accepts(_ text: String) -> Bool {
        (try? StrictJSON.parse(Array(text.utf8))) != nil
    }

    @Test(arguments: [
        #"{}"#, #"[]"#, #"{"key":"x","labels":{"a":"b"}}"#, #" { "a" : [1, -2.5e3, true, false, null] } "#,
        #"{"a":"\u00e9\ud83d\ude42\n\"\\\/"}"#, #""plain""#, #"0"#, #"{"a":{"a":{"a":1}}}"#,
    ])
    func validDocumentsPass(_ text: String) {
        #expect(accepts(text), "\(text)")
    }

    @Test(arguments: [
        #"{"key":"x",}"#, #"[1,]"#, #"{"a":1 "b":2}"#, #"{a:1}"#, #"{'a':1}"#, #"{"a":01}"#, #"{"a":1.}"#,
        #"{"a":.5}"#, #"{"a":+1}"#, #"{"a":tru}"#, #"{"a":"\x"}"#, #"{"a":"\u12"}"#, #"{"a":"\ud83d"}"#,
        "{\"a\":\"line\nbreak\"}", #"{"a":1} extra"#, #"// comment"#, "", #"{"a":1"#, #"{"a":"open}"#,
    ])
    func malformedDocumentsFail(_ text: String) {
        #expect(!accepts(text), "\(text)")
    }

    @Test func duplicateNamesAreRefusedEvenWhenSpelledDifferently() throws {
        #expect(!accepts(#"{"key":"a","key":"b"}"#))
        #expect(!accepts(#"{"labels":{"a":"b","a":"c"}}"#))
        #expect(!accepts(#"{"a":1,"\u0061":2}"#))
        #expect(accepts(#"{"a":{"a":1},"b":{"a":1}}"#))
        let error = #expect(throws: VeneerError.self) { try StrictJSON.parse(Array(#"{"key":"a","key":"b"}"#.utf8)) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("\"key\" appears twice") == true)
    }

    @Test func nestingIsBounded() {
        #expect(accepts(String(repeating: "[", count: 60) + String(repeating: "]", count: 60)))
        #expect(!accepts(String(repeating: "[", count: 100) + String(repeating: "]", count: 100)))
    }

    @Test func invalidUTF8IsRefused() {
        #expect(throws: VeneerError.self) { try StrictJSON.parse([0x22, 0xFF, 0x22]) }
    }
}
