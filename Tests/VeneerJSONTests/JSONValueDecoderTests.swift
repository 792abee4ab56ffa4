import Foundation
import Testing
import VeneerCore
import VeneerJSON
import VeneerWire

/// `StrictJSON.decode` against Foundation's `JSONDecoder`, which it replaces for request
/// bodies: for each body both must give the same value, or errors of the same shape
/// (the API describes a bad field from the error's case, type and coding path).
@Suite("Decoding parsed JSON")
struct JSONValueDecoderTests {
    private struct Numbers: Decodable, Equatable {
        var count: Int
        var ratio: Double?
        var small: UInt8?
    }

    /// A decoded value, or an error in comparable words.
    private enum Outcome<T: Equatable>: Equatable, CustomStringConvertible {
        case value(T)
        case error(String)

        var description: String {
            switch self {
            case .value(let value): "value \(value)"
            case .error(let text): text
            }
        }

        func hasPrefix(_ prefix: String) -> Bool {
            if case .error(let text) = self { return text.hasPrefix(prefix) }
            return false
        }
    }

    private func outcome<T: Decodable & Equatable>(_ type: T.Type, _ decode: () throws -> T) -> Outcome<T> {
        do {
            return .value(try decode())
        } catch {
            return .error(describe(error))
        }
    }

    private func describe(_ error: any Error) -> String {
        if let error = error as? DecodingError {
            func path(_ context: DecodingError.Context) -> String {
                context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            }
            switch error {
            case .keyNotFound(let key, let context): return "keyNotFound \(key.stringValue) at \(path(context))"
            case .typeMismatch(let type, let context): return "typeMismatch \(type) at \(path(context))"
            case .valueNotFound(let type, let context): return "valueNotFound \(type) at \(path(context))"
            case .dataCorrupted(let context): return "dataCorrupted at \(path(context)): \(context.debugDescription)"
            @unknown default: return "\(error)"
            }
        }
        if let error = error as? VeneerError {
            return "VeneerError \(error.code) \(error.message)"
        }
        return "other \(error)"
    }

    private func expectSame<T: Decodable & Equatable>(
        _ type: T.Type, _ bodies: [String], sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        for body in bodies {
            let bytes = Array(body.utf8)
            let parsed = try StrictJSON.parse(bytes)
            let ours = outcome(type) { try StrictJSON.decode(type, from: parsed) }
            let foundation = outcome(type) { try JSONDecoder().decode(type, from: Data(bytes)) }
            #expect(ours == foundation, "\(T.self) from \(body)", sourceLocation: sourceLocation)
        }
    }

    @Test("prepare requests: values and errors as Foundation's")
    func prepareRequests() throws {
        try expectSame(PrepareRequest.self, [
            #"{"key":"a"}"#, #"{"key":"a","parent":"p","kind":"view","labels":{"x":"1","y":""}}"#,
            #"{"key":1}"#, #"{"key":null}"#, #"{}"#, #"[]"#, #""s""#, #"null"#, #"{"key":"a","kind":"bogus"}"#,
            #"{"key":"a","kind":3}"#, #"{"key":"a","labels":{"x":1}}"#, #"{"key":"a","labels":{"x":null}}"#,
            #"{"key":"a","labels":[]}"#, #"{"key":"a","labels":null}"#, #"{"key":"a","parent":null}"#,
            #"{"key":"a","zzz":1}"#, #"{"key":"\u00e9\n"}"#,
        ])
    }

    @Test("commit, update and mount requests: values and errors as Foundation's")
    func otherRequests() throws {
        try expectSame(CommitRequest.self, [#"{"name":"n"}"#, #"{"name":["n"]}"#, #"{"labels":{"a":"b"}}"#, #"{"name":"n","labels":"x"}"#])
        try expectSame(UpdateRequest.self, [
            #"{"labels":{}}"#, #"{"labels":{"a":"b"},"fieldpaths":["labels.a"]}"#, #"{"fieldpaths":[1]}"#,
            #"{"fieldpaths":["a",null]}"#, #"{"fieldpaths":{}}"#, #"{}"#, #"{"fieldpaths":[]}"#,
        ])
        try expectSame(MountRequest.self, [
            #"{"key":"k","target":"/t","readonly":true}"#, #"{"key":"k","target":"/t","readonly":1}"#,
            #"{"key":"k","target":"/t","readonly":"true"}"#, #"{"key":"k","target":"/t","readonly":null}"#,
            #"{"key":"k"}"#, #"{"target":"/t"}"#, #"{"key":"k","target":false}"#,
        ])
    }

    @Test("numbers: integers, fractions, ranges and wrong kinds as Foundation's")
    func numbers() throws {
        try expectSame(Numbers.self, [
            #"{"count":1}"#, #"{"count":-7,"ratio":1.5,"small":255}"#, #"{"count":"1"}"#,
            #"{"count":1,"ratio":true}"#, #"{"count":null}"#, #"{"count":1,"ratio":2}"#,
            // decodeIfPresent itself keeps Foundation's reading of null: absent.
            #"{"count":1,"ratio":null,"small":null}"#,
        ])
        // Where Foundation calls the whole document invalid, the field is named.
        for (body, field, text) in [
            (#"{"count":1.5}"#, "count", "1.5"), (#"{"count":1,"small":256}"#, "small", "256"),
            (#"{"count":1,"small":-1}"#, "small", "-1"), (#"{"count":1e2}"#, "count", "1e2"),
        ] {
            let parsed = try StrictJSON.parse(Array(body.utf8))
            #expect(
                outcome(Numbers.self) { try StrictJSON.decode(Numbers.self, from: parsed) }.hasPrefix(
                    "dataCorrupted at \(field): Parsed JSON number <\(text)> does not fit"), "\(body)")
        }
    }

    @Test("null in an optional field of a request is refused, by both decoders, naming the field")
    func nullOptionalFieldsAreRefused() throws {
        // The request types refuse null themselves, so Foundation's decoder and ours
        // agree; each case is compared, then the refusal itself is checked.
        let cases: [(body: String, field: String, decode: (JSONValue) throws -> Void, foundation: (Data) throws -> Void)] = [
            (#"{"key":"a","labels":null}"#, "labels",
             { _ = try StrictJSON.decode(PrepareRequest.self, from: $0) }, { _ = try JSONDecoder().decode(PrepareRequest.self, from: $0) }),
            (#"{"key":"a","parent":null}"#, "parent",
             { _ = try StrictJSON.decode(PrepareRequest.self, from: $0) }, { _ = try JSONDecoder().decode(PrepareRequest.self, from: $0) }),
            (#"{"key":"a","kind":null}"#, "kind",
             { _ = try StrictJSON.decode(PrepareRequest.self, from: $0) }, { _ = try JSONDecoder().decode(PrepareRequest.self, from: $0) }),
            (#"{"name":"n","labels":null}"#, "labels",
             { _ = try StrictJSON.decode(CommitRequest.self, from: $0) }, { _ = try JSONDecoder().decode(CommitRequest.self, from: $0) }),
            (#"{"labels":null}"#, "labels",
             { _ = try StrictJSON.decode(UpdateRequest.self, from: $0) }, { _ = try JSONDecoder().decode(UpdateRequest.self, from: $0) }),
            (#"{"labels":{},"fieldpaths":null}"#, "fieldpaths",
             { _ = try StrictJSON.decode(UpdateRequest.self, from: $0) }, { _ = try JSONDecoder().decode(UpdateRequest.self, from: $0) }),
            (#"{"key":"k","target":"/t","readonly":null}"#, "readonly",
             { _ = try StrictJSON.decode(MountRequest.self, from: $0) }, { _ = try JSONDecoder().decode(MountRequest.self, from: $0) }),
        ]
        for (body, field, decode, foundation) in cases {
            let parsed = try StrictJSON.parse(Array(body.utf8))
            let ours = #expect(throws: VeneerError.self, "\(body)") { try decode(parsed) }
            let theirs = #expect(throws: VeneerError.self, "\(body)") { try foundation(Data(body.utf8)) }
            #expect(ours == theirs, "\(body)")
            #expect(ours?.code == .invalidArgument)
            #expect(ours?.message.hasPrefix("field \(field) in the ") == true, "\(ours?.message ?? "")")
            #expect(ours?.message.contains("not null; leave the field out") == true, "\(ours?.message ?? "")")
        }
    }

    @Test("a null where an object or array is required is a missing value, as in Foundation")
    func nullContainers() throws {
        try expectSame(PrepareRequest.self, ["null"])
        try expectSame(UpdateRequest.self, [#"{"labels":{"a":"b"},"fieldpaths":[null]}"#])
        try expectSame([[String]].self, ["[null]", "[[null]]", "[{}]", "[[\"a\"]]"])
    }

    @Test("an unknown field is named in the order the fields were written")
    func unknownFieldsInOrder() throws {
        let parsed = try StrictJSON.parse(Array(#"{"key":"a","target":"/t","b":1,"a":2}"#.utf8))
        let error = #expect(throws: VeneerError.self) { try StrictJSON.decode(MountRequest.self, from: parsed) }
        #expect(error?.message.hasPrefix(#"unknown field "b" in the mount request"#) == true)
    }
}

@Suite("Answers written with JSONWriter")
struct JSONWriterAnswerTests {
    @Test("a live mount written with its mounts' recorded JSON is the same as written in full, and decodes back")
    func liveMountWithRecordedMounts() throws {
        let mounts = [
            Mount(
                type: "overlay", source: "overlay",
                options: ["workdir=/r/s/2/work", "upperdir=/r/s/2/fs", "lowerdir=/r/s/1/fs:/r/s/\"q\"/fs", "index=off"]),
            Mount(type: "bind", source: "/r/s/3/fs", options: ["ro", "rbind"]),
        ]
        let live = LiveMount(
            key: "ctr \u{e9}", target: "/mnt/a\\b", readonly: true, mounts: mounts,
            mountedAt: Timestamp(nanosecondsSinceEpoch: 1_790_000_000_123_456_789))
        let full = JSONWriter.liveMount(live)
        #expect(JSONWriter.liveMount(live, mountsJSON: JSONWriter.mountArray(mounts)) == full)
        #expect(try JSONDecoder().decode(LiveMount.self, from: Data(full)) == live)
    }
}
