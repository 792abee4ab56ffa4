/// Random text for round-trip tests: mostly ASCII, with controls, quotes, backslashes,
/// percent signs, slashes and scalars beyond the BMP mixed in.
public enum RandomText {
    static let specials: [Unicode.Scalar] = [
        "\u{0}", "\u{1}", "\u{1F}", "\u{7F}", "\"", "\\", "/", "%", ".", " ", "\n", "\t", "é", "€", "\u{FEFF}",
        "\u{10FFFF}", "🙂",
    ]

    /// A string of up to `maxLength` scalars.
    public static func string(_ random: inout SplitMix64, maxLength: Int = 24) -> String {
        let length = Int(random.next() % UInt64(maxLength + 1))
        var text = String.UnicodeScalarView()
        for _ in 0..<length {
            if random.next() % 4 == 0 {
                text.append(specials[Int(random.next() % UInt64(specials.count))])
            } else if let scalar = Unicode.Scalar(UInt32(0x20 + random.next() % 0x5F)) {
                text.append(scalar)
            }
        }
        return String(text)
    }
}
