/// A point in time with nanosecond precision, written as RFC 3339 UTC with
/// nine fractional digits: `2026-11-22T10:11:12.123456789Z`.
public struct Timestamp: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    public var nanosecondsSinceEpoch: Int64

    public init(nanosecondsSinceEpoch: Int64) {
        self.nanosecondsSinceEpoch = nanosecondsSinceEpoch
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch
    }

    public var description: String { rfc3339 }

    public var rfc3339: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(30)
        appendRFC3339(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the RFC 3339 form (30 bytes for years 0000-9999) to `bytes`.
    public func appendRFC3339(to bytes: inout [UInt8]) {
        let ns = nanosecondsSinceEpoch
        var seconds = ns / 1_000_000_000
        var fraction = ns % 1_000_000_000
        if fraction < 0 {
            fraction += 1_000_000_000
            seconds -= 1
        }
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        let (year, month, day) = Self.civil(fromDays: days)
        guard (0...9999).contains(year) else {
            // Outside four-digit years: the slow path, same shape with a longer year.
            bytes.append(contentsOf: String(year).utf8)
            var rest: [UInt8] = []
            Timestamp(nanosecondsSinceEpoch: Self.days(fromCivil: 2000, month, day) * 86_400_000_000_000
                + secondOfDay * 1_000_000_000 + fraction).appendRFC3339(to: &rest)
            bytes.append(contentsOf: rest.dropFirst(4))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 30) { out in
            func put(_ value: Int64, _ width: Int, at offset: Int) {
                var v = value
                var i = offset + width - 1
                while i >= offset {
                    out[i] = UInt8(truncatingIfNeeded: 48 + v % 10)
                    v /= 10
                    i -= 1
                }
            }
            put(year, 4, at: 0)
            out[4] = UInt8(ascii: "-")
            put(month, 2, at: 5)
            out[7] = UInt8(ascii: "-")
            put(day, 2, at: 8)
            out[10] = UInt8(ascii: "T")
            put(secondOfDay / 3600, 2, at: 11)
            out[13] = UInt8(ascii: ":")
            put((secondOfDay % 3600) / 60, 2, at: 14)
            out[16] = UInt8(ascii: ":")
            put(secondOfDay % 60, 2, at: 17)
            out[19] = UInt8(ascii: ".")
            put(fraction, 9, at: 20)
            out[29] = UInt8(ascii: "Z")
            bytes.append(contentsOf: UnsafeBufferPointer(out))
        }
    }

    /// Parses RFC 3339 (`Z` or `±hh:mm` offsets, 0 to 9 fractional digits).
    public init?(rfc3339 text: String) {
        let b = Array(text.utf8)
        func digits(_ start: Int, _ count: Int) -> Int64? {
            guard start + count <= b.count else { return nil }
            var v: Int64 = 0
            for i in start..<(start + count) {
                guard b[i] >= 48 && b[i] <= 57 else { return nil }
                v = v * 10 + Int64(b[i] - 48)
            }
            return v
        }
        guard b.count >= 20,
            let year = digits(0, 4), b[4] == UInt8(ascii: "-"),
            let month = digits(5, 2), b[7] == UInt8(ascii: "-"),
            let day = digits(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
            let hour = digits(11, 2), b[13] == UInt8(ascii: ":"),
            let minute = digits(14, 2), b[16] == UInt8(ascii: ":"),
            let second = digits(17, 2),
            (1...12).contains(month), (1...Self.daysInMonth(year, month)).contains(day),
            hour < 24, minute < 60, second < 61
        else { return nil }
        var i = 19
        var fraction: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var n = 0
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                if n < 9 {
                    fraction = fraction * 10 + Int64(b[i] - 48)
                }
                n += 1
                i += 1
            }
            guard n > 0 else { return nil }
            for _ in n..<max(n, 9) { fraction *= 10 }
        }
        guard i < b.count else { return nil }
        var offset: Int64 = 0
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            guard let oh = digits(i + 1, 2), i + 3 < b.count, b[i + 3] == UInt8(ascii: ":"),
                let om = digits(i + 4, 2), oh < 24, om < 60
            else { return nil }
            offset = (oh * 3600 + om * 60) * (b[i] == UInt8(ascii: "+") ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = Self.days(fromCivil: year, month, day)
        var secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        if secs < 0 && fraction > 0 {
            // Keeps the earliest representable instant (1677-09-21) from overflowing below.
            secs += 1
            fraction -= 1_000_000_000
        }
        let (whole, overflow) = secs.multipliedReportingOverflow(by: 1_000_000_000)
        let (total, overflowAdding) = whole.addingReportingOverflow(fraction)
        guard !overflow, !overflowAdding else { return nil }
        self.nanosecondsSinceEpoch = total
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let parsed = Timestamp(rfc3339: text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not an RFC 3339 timestamp: \(text)"))
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rfc3339)
    }


    private static func daysInMonth(_ year: Int64, _ month: Int64) -> Int64 {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    // Days since the epoch <-> proleptic Gregorian date (Howard Hinnant's algorithms).
    private static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    private static func days(fromCivil y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
