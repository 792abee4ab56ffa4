import Testing
import VeneerCore
import VeneerTestSupport

@Suite("Timestamps of random instants")
struct TimestampRoundTripTests {
    @Test("RFC 3339 text reads back as the same nanosecond, from 1970 to 2262")
    func randomInstants() {
        var random = SplitMix64(seed: 0x5EED_0004)
        for _ in 0..<10_000 {
            let time = Timestamp(nanosecondsSinceEpoch: Int64(random.next() % UInt64(Int64.max)))
            #expect(Timestamp(rfc3339: time.rfc3339) == time, "\(time.rfc3339)")
            var bytes: [UInt8] = []
            time.appendRFC3339(to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == time.rfc3339)
        }
    }
}
