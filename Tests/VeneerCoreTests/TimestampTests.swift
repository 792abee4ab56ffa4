import Foundation
import Testing
import VeneerCore

@Suite("Timestamp")
struct TimestampTests {
    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00.000000000Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (1_000_000_000, "1970-01-01T00:00:01.000000000Z"),
        (1_795_342_272_123_456_789, "2026-11-22T10:11:12.123456789Z"),
        (1_709_164_800_000_000_000, "2024-02-29T00:00:00.000000000Z"),
        (951_782_400_500_000_000, "2000-02-29T00:00:00.500000000Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (-1_000_000_000, "1969-12-31T23:59:59.000000000Z"),
        (-86_400_000_000_001, "1969-12-30T23:59:59.999999999Z"),
        (-2_208_988_800_000_000_000, "1900-01-01T00:00:00.000000000Z"),
        (Int64.max, "2262-04-11T23:47:16.854775807Z"),
        (Int64.min, "1677-09-21T00:12:43.145224192Z"),
    ])
    func formatsWithNineFractionalDigits(nanos: Int64, text: String) {
        let timestamp = Timestamp(nanosecondsSinceEpoch: nanos)
        #expect(timestamp.rfc3339 == text)
        #expect(timestamp.description == text)
        #expect(Timestamp(rfc3339: text)?.nanosecondsSinceEpoch == nanos)
    }

    @Test func roundTripsManyInstants() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<2000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let nanos = Int64(bitPattern: state)
            let text = Timestamp(nanosecondsSinceEpoch: nanos).rfc3339
            #expect(text.utf8.count == 30, "\(text)")
            #expect(Timestamp(rfc3339: text)?.nanosecondsSinceEpoch == nanos, "\(text)")
        }
    }

    @Test func agreesWithFoundationOnWholeSeconds() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        for seconds: Int64 in [0, 59, 86_399, 951_782_400, 1_709_251_199, -1, -31_536_000, -2_208_988_800, 4_102_444_800] {
            let ours = Timestamp(nanosecondsSinceEpoch: seconds * 1_000_000_000).rfc3339
            let theirs = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
            #expect(ours.replacingOccurrences(of: ".000000000", with: "") == theirs)
        }
    }

    @Test func parsesShorterFractions() {
        #expect(Timestamp(rfc3339: "1970-01-01T00:00:00Z")?.nanosecondsSinceEpoch == 0)
        #expect(Timestamp(rfc3339: "1970-01-01T00:00:00.5Z")?.nanosecondsSinceEpoch == 500_000_000)
        #expect(Timestamp(rfc3339: "1970-01-01T00:00:00.000001Z")?.nanosecondsSinceEpoch == 1_000)
        // Digits past nanoseconds are dropped, not rounded.
        #expect(Timestamp(rfc3339: "1970-01-01T00:00:00.1234567899Z")?.nanosecondsSinceEpoch == 123_456_789)
        #expect(Timestamp(rfc3339: "1970-01-01t00:00:01z")?.nanosecondsSinceEpoch == 1_000_000_000)
    }

    @Test func appliesOffsets() {
        let utc = Timestamp(rfc3339: "2024-01-01T00:00:00Z")
        #expect(utc != nil)
        #expect(Timestamp(rfc3339: "2024-01-01T01:00:00+01:00") == utc)
        #expect(Timestamp(rfc3339: "2023-12-31T19:00:00-05:00") == utc)
        #expect(Timestamp(rfc3339: "2024-01-01T05:30:00+05:30") == utc)
        #expect(Timestamp(rfc3339: "2024-01-01T00:00:00+00:00") == utc)
        #expect(Timestamp(rfc3339: "2024-01-01T00:00:00-00:00") == utc)
        #expect(Timestamp(rfc3339: "2024-01-01T01:00:00.25+01:00")?.rfc3339 == "2024-01-01T00:00:00.250000000Z")
        // Offsets crossing the epoch.
        #expect(Timestamp(rfc3339: "1969-12-31T23:00:00-01:00")?.nanosecondsSinceEpoch == 0)
        #expect(Timestamp(rfc3339: "1970-01-01T00:30:00+01:00")?.rfc3339 == "1969-12-31T23:30:00.000000000Z")
    }

    @Test func leapDays() {
        #expect(Timestamp(rfc3339: "2024-02-29T12:00:00Z")?.rfc3339 == "2024-02-29T12:00:00.000000000Z")
        #expect(Timestamp(rfc3339: "2000-02-29T00:00:00Z") != nil)
        #expect(Timestamp(rfc3339: "1968-02-29T00:00:00Z")?.rfc3339 == "1968-02-29T00:00:00.000000000Z")
        #expect(Timestamp(rfc3339: "2023-02-29T00:00:00Z") == nil)
        #expect(Timestamp(rfc3339: "1900-02-29T00:00:00Z") == nil)
        #expect(Timestamp(rfc3339: "2100-02-29T00:00:00Z") == nil)
        #expect(Timestamp(rfc3339: "2024-02-30T00:00:00Z") == nil)
        #expect(Timestamp(rfc3339: "2024-04-31T00:00:00Z") == nil)
        // The day after a leap day, one day of nanoseconds later.
        let leap = Timestamp(rfc3339: "2024-02-29T00:00:00Z")
        let march = Timestamp(rfc3339: "2024-03-01T00:00:00Z")
        if let leap, let march {
            #expect(march.nanosecondsSinceEpoch - leap.nanosecondsSinceEpoch == 86_400_000_000_000)
        } else {
            Issue.record("leap day or 1 March did not parse")
        }
        // 1 March of a non-leap year follows 28 February directly.
        #expect(Timestamp(nanosecondsSinceEpoch: 1_677_628_800_000_000_000 - 1).rfc3339 == "2023-02-28T23:59:59.999999999Z")
    }

    @Test func ordersByInstant() {
        let a = Timestamp(nanosecondsSinceEpoch: -5)
        let b = Timestamp(nanosecondsSinceEpoch: 0)
        let c = Timestamp(nanosecondsSinceEpoch: 7)
        #expect(a < b && b < c)
        #expect([c, a, b].sorted() == [a, b, c])
    }

    @Test(arguments: [
        "", "2024-01-01", "2024-01-01T00:00:00", "2024-01-01 00:00:00Z", "2024-1-01T00:00:00Z",
        "2024-13-01T00:00:00Z", "2024-00-01T00:00:00Z", "2024-01-00T00:00:00Z", "2024-01-32T00:00:00Z",
        "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z", "2024-01-01T00:00:61Z", "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00+0100", "2024-01-01T00:00:00+01", "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00+01:60", "2024-01-01T00:00:00ZZ", "2024-01-01T00:00:00Z ", "+024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.12a4Z", "９０２４-01-01T00:00:00Z",
        // Outside the nanosecond range of Int64 (1677 to 2262): nil, not a crash.
        "2263-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1677-09-21T00:12:43.145224191Z", "0001-01-01T00:00:00Z",
    ])
    func rejectsMalformedText(text: String) {
        #expect(Timestamp(rfc3339: text) == nil)
    }

    @Test func codableAsString() throws {
        let timestamp = Timestamp(nanosecondsSinceEpoch: 1_795_342_272_123_456_789)
        let data = try JSONEncoder().encode([timestamp])
        #expect(String(decoding: data, as: UTF8.self) == #"["2026-11-22T10:11:12.123456789Z"]"#)
        #expect(try JSONDecoder().decode([Timestamp].self, from: data) == [timestamp])
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([Timestamp].self, from: Data(#"["yesterday"]"#.utf8))
        }
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([Timestamp].self, from: Data("[12]".utf8))
        }
    }
}
