import Foundation
import Testing
import VeneerClient
import VeneerCore

/// veneerd logs client values (keys, targets) in its text log on standard error. A value
/// with a line break or a terminal control must not start a line of its own or reach
/// the terminal raw.
@Suite("Log injection")
struct LogInjectionTests {
    @Test("keys with newlines, carriage returns and escapes are logged escaped, on the line of their entry")
    func controlCharactersInKeysAreEscaped() async throws {
        try await withDaemon { daemon in
            let forged = "2026-01-01T00:00:00.000000000Z info veneerd: forged entry"
            let keys = [
                "evil\n" + forged,
                "cr\r" + forged,
                "esc\u{1B}[2Kred",
                "nel\u{85}c1",
                "del\u{7F}",
            ]
            let api = CheckedAPI(daemon)
            for key in keys {
                try await api.prepared(key)
                #expect(try await api.update(key, labels: ["a": "b"]).status == 200)
                #expect(try await api.remove(key).status == 204)
            }
            let log = daemon.log
            // Every line is an entry of veneerd's own: it starts with a timestamp.
            let lines = log.split(separator: "\n", omittingEmptySubsequences: true)
            for line in lines {
                #expect(!line.hasPrefix("2026-01-01T00:00:00"), "forged line: \(line)")
                #expect(line.first?.isNumber == true, "a line that is not an entry: \(line)")
            }
            #expect(!log.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "a raw control character in the log")
            #expect(!log.unicodeScalars.contains { (0x7F..<0xA0).contains($0.value) }, "a raw DEL or C1 control in the log")
            // The keys are there, escaped, in the entries of their operations.
            for (escaped, count) in [
                (#"snapshot.key=evil\n2026-01-01T00:00:00.000000000Z info veneerd: forged entry"#, 3),
                (#"snapshot.key=cr\r2026-01-01T00:00:00.000000000Z"#, 3),
                (#"snapshot.key=esc\u{1b}[2Kred"#, 3),
                (#"snapshot.key=nel\u{85}c1"#, 3),
                (#"snapshot.key=del\u{7f}"#, 3),
            ] {
                let found = lines.filter { $0.contains(escaped) }
                #expect(found.count == count, "\(escaped): \(found)")
            }
        }
    }
}
