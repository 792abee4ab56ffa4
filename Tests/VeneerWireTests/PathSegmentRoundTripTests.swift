import Testing
import VeneerTestSupport
import VeneerWire

@Suite("Wire: path segments of random keys")
struct PathSegmentRoundTripTests {
    @Test("an encoded key is one plain segment and decodes to the key")
    func randomKeys() throws {
        var random = SplitMix64(seed: 0x5EED_0003)
        for _ in 0..<10_000 {
            let key = RandomText.string(&random)
            let segment = PathSegment.encode(key)
            #expect(segment.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }, "\(segment)")
            #expect(try PathSegment.decode(Substring(segment)) == key)
        }
    }
}
