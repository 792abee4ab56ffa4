import Testing
import VeneerJSON
import VeneerTestSupport

/// What `JSONWriter` writes, `StrictJSON` reads back unchanged.
@Suite("JSON: writer and parser agree")
struct WriterParserRoundTripTests {
    @Test("10,000 random label maps survive writing and parsing", arguments: [UInt64(0x5EED_0001), 0x5EED_0002])
    func labelMaps(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        for _ in 0..<5_000 {
            var labels: [String: String] = [:]
            for _ in 0..<Int(random.next() % 5) {
                labels[RandomText.string(&random)] = RandomText.string(&random)
            }
            let bytes = JSONWriter.stringMap(labels)
            #expect(try StrictJSON.stringMap(bytes) == labels, "\(String(decoding: bytes, as: UTF8.self))")
            guard case .object(let object) = try StrictJSON.parse(bytes) else {
                Issue.record("not an object: \(String(decoding: bytes, as: UTF8.self))")
                continue
            }
            #expect(object.fields.map(\.name) == labels.keys.sorted())
        }
    }
}
