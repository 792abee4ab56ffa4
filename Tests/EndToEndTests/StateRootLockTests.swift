import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

@Suite("One daemon per state root")
struct StateRootLockTests {
    @Test("a second veneerd on the same root exits 75 and the first keeps serving")
    func secondDaemonOnTheSameRootIsRefused() async throws {
        try await withDaemon { daemon in
            _ = try await daemon.client.prepare(PrepareRequest(key: "kept"))
            let otherSocket = daemon.temp.path + "/other.sock"
            let second = try ProcessRun.run(BuildProducts.veneerd, ["--root", daemon.root, "--socket", otherSocket])
            #expect(second.status == 75, "stderr: \(second.stderr)")
            #expect(second.stderr.contains("another veneerd is using the state root \(daemon.root)"), "\(second.stderr)")
            #expect(FileManager.default.fileExists(atPath: otherSocket) == false)
            #expect(try await daemon.client.stat("kept").key == "kept")
            // Once the first daemon is gone, the root is free again.
            try await daemon.stop()
            try await daemon.start()
            #expect(try await daemon.client.stat("kept").key == "kept")
        }
    }
}
