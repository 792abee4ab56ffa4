import NIOCore
import NIOEmbedded
import Testing

@testable import VeneerDaemon

@Suite("PING frames answered in front of the HTTP/2 handler")
struct PingAnswererTests {
    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8]) -> [UInt8] {
        let n = payload.count
        return [UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff), type, flags,
                UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)] + payload
    }

    @Test func pingsAreAnsweredAndEverythingElsePassesInOrder() throws {
        let channel = EmbeddedChannel(handler: PingAnswerer(side: .server))
        let settings = Self.frame(type: 4, payload: [])
        let headers = Self.frame(type: 1, flags: 4, stream: 1, payload: Array(repeating: 7, count: 40))
        let ping1 = Self.frame(type: 6, payload: [1, 2, 3, 4, 5, 6, 7, 8])
        let ack = Self.frame(type: 6, flags: 1, payload: [9, 9, 9, 9, 9, 9, 9, 9])
        let data = Self.frame(type: 0, flags: 1, stream: 1, payload: Array(repeating: 3, count: 100))
        let ping2 = Self.frame(type: 6, payload: [8, 7, 6, 5, 4, 3, 2, 1])
        let all = PingAnswerer.preface + settings + headers + ping1 + ack + data + ping2
        // Fed in awkward pieces: frames and the preface split across reads.
        var at = 0
        for size in [5, 30, 3, 60, 1, 9, 50, 200, 1000] {
            guard at < all.count else { break }
            let end = min(all.count, at + size)
            try channel.writeInbound(channel.allocator.buffer(bytes: all[at..<end]))
            at = end
        }
        var passed: [UInt8] = []
        while let part = try channel.readInbound(as: ByteBuffer.self) { passed += Array(part.readableBytesView) }
        #expect(passed == PingAnswerer.preface + settings + headers + ack + data)
        var written: [UInt8] = []
        while let part = try channel.readOutbound(as: ByteBuffer.self) { written += Array(part.readableBytesView) }
        #expect(written == Self.frame(type: 6, flags: 1, payload: [1, 2, 3, 4, 5, 6, 7, 8]) + Self.frame(type: 6, flags: 1, payload: [8, 7, 6, 5, 4, 3, 2, 1]))
        _ = try channel.finish()
    }
}
