import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerOS
import VeneerTestSupport
import VeneerWire

#if canImport(Glibc)
import Glibc
#endif

@Suite("gRPC socket of veneerd", .serialized)
struct GRPCSocketTests {
    func veneerd(_ arguments: [String]) async throws -> RunResult {
        try await runTool(BuildProducts.veneerd, arguments, timeout: .seconds(30))
    }

    @Test("by default grpc.sock beside the API socket: mode 0660, HTTP/2, in the status, removed on SIGTERM")
    func defaultSocket() async throws {
        try await withDaemon { daemon in
            #expect(daemon.grpcSocket == daemon.temp.path + "/grpc.sock")
            #expect(try FileSystem.mode(daemon.grpcSocket) & 0o777 == 0o660)
            let frame = try await HTTP2Probe.firstFrame(daemon.grpcSocket)
            #expect(frame.count == 9 && frame[3] == 4, "not an HTTP/2 SETTINGS frame: \(frame)")
            #expect(try await daemon.client.status().grpcSocket == daemon.grpcSocket)
            #expect(try await daemon.stop() == 0)
            #expect(FileSystem.entryType(daemon.grpcSocket) == .missing)
            #expect(FileSystem.entryType(daemon.socket) == .missing)
        }
    }

    @Test("--grpc-socket \"\" serves no gRPC; grpc_socket in the file names another path; the flag wins")
    func disabledAndConfigured() async throws {
        try await withDaemon(arguments: ["--grpc-socket", ""]) { daemon async throws in
            #expect(FileSystem.entryType(daemon.grpcSocket) == .missing)
            #expect(try await daemon.client.status().grpcSocket == nil)
        }
        try await withScratch { scratch in
            let config = scratch + "/veneerd.toml"
            try "grpc_socket = \"\(scratch)/sub/ctrd.sock\"\n".write(toFile: config, atomically: true, encoding: .utf8)
            try await withDaemon(arguments: ["--config", config]) { daemon async throws in
                // The directory is made when missing.
                #expect(FileSystem.entryType(scratch + "/sub/ctrd.sock") == .other)
                #expect(try await daemon.client.status().grpcSocket == scratch + "/sub/ctrd.sock")
                #expect(FileSystem.entryType(daemon.grpcSocket) == .missing)
            }
            try await withDaemon(arguments: ["--config", config, "--grpc-socket", scratch + "/flag.sock"]) { daemon async throws in
                #expect(try await daemon.client.status().grpcSocket == scratch + "/flag.sock")
            }
        }
    }

    @Test("a client that pings as gRPC's Go implementation does (far more than 200 PINGs in 30 s) keeps its connection, every PING answered")
    func pingsDoNotCloseTheConnection() async throws {
        try await withDaemon { daemon in
            let path = daemon.grpcSocket
            let (acks, goAway) = try await Task.detached { () throws -> (Int, Bool) in
                let connection = try UnixStreamConnection(path: path)
                try connection.setReadTimeout(seconds: 10)
                var out = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
                for n in 0..<1000 {
                    out += [0, 0, 8, 6, 0, 0, 0, 0, 0] + withUnsafeBytes(of: UInt64(n).bigEndian, Array.init)
                }
                try connection.writeAll(out)
                // Frames back: SETTINGS, the ACK of ours, and one PING ACK for each PING.
                var bytes: [UInt8] = []
                var acks = 0
                var goAway = false
                var at = 0
                while acks < 1000 && !goAway {
                    var chunk: [UInt8] = []
                    try connection.read(into: &chunk, max: 65536)
                    if chunk.isEmpty { break }
                    bytes += chunk
                    while bytes.count - at >= 9 {
                        let length = Int(bytes[at]) << 16 | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2])
                        guard bytes.count - at >= 9 + length else { break }
                        if bytes[at + 3] == 6 && bytes[at + 4] & 1 == 1 { acks += 1 }
                        if bytes[at + 3] == 7 { goAway = true }
                        at += 9 + length
                    }
                }
                return (acks, goAway)
            }.value
            #expect(acks == 1000)
            #expect(!goAway)
        }
    }

    @Test("a relative gRPC socket, or the API socket's own path, is refused before anything is made")
    func badPaths() async throws {
        try await withScratch { scratch in
            let socket = scratch + "/api.sock"
            let relative = try await veneerd(["--root", scratch + "/root", "--socket", socket, "--grpc-socket", "g.sock"])
            #expect(relative.failedCleanly && relative.stderr.contains("g.sock"), "\(relative)")
            let same = try await veneerd(["--root", scratch + "/root", "--socket", socket, "--grpc-socket", socket])
            #expect(same.failedCleanly && same.stderr.contains("grpc_socket"), "\(same)")
            #expect(FileSystem.entryType(socket) == .missing)
            #expect(FileSystem.entryType(scratch + "/root") == .missing)
        }
    }

    @Test("a gRPC socket someone else listens on stops the start with a message naming it; a stale one is replaced")
    func busyAndStaleSockets() async throws {
        try await withScratch { scratch in
            let grpc = scratch + "/grpc.sock"
            let listener = try UnixSocket.bindListening(path: grpc, mode: 0o600)
            let busy = try await veneerd(["--root", scratch + "/root", "--socket", scratch + "/api.sock", "--grpc-socket", grpc])
            #expect(busy.failedCleanly, "\(busy)")
            #expect(busy.stderr.contains(grpc) && busy.stderr.contains("--grpc-socket"), "\(busy)")
            #expect(FileSystem.entryType(scratch + "/api.sock") == .missing)
            // Closed: the file stays, with nobody listening, as after a crash.
            close(listener)
            #expect(FileSystem.entryType(grpc) == .other)
        }
        try await withDaemon { daemon in
            try await daemon.crash()
            #expect(FileSystem.entryType(daemon.grpcSocket) == .other, "SIGKILL should leave the socket file")
            try await daemon.start()
            let frame = try await HTTP2Probe.firstFrame(daemon.grpcSocket)
            #expect(frame.count == 9 && frame[3] == 4)
        }
    }
}
