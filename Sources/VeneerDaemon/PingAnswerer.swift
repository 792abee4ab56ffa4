import NIOCore

/// Answers a peer's HTTP/2 PING frames itself, in front of the HTTP/2 handler, on a gRPC
/// connection.
///
/// gRPC's Go implementation, which containerd uses on both ends, sends a PING for about
/// every burst of data it receives, to estimate the bandwidth-delay product of the
/// connection. SwiftNIO's HTTP/2 handler takes more than 200 PING frames in 30 seconds
/// for a flood and closes the connection (`ENHANCE_YOUR_CALM`), which with containerd
/// under load happens within a second: its calls in flight fail, and it dials again. This
/// handler sits between the socket and the HTTP/2 handler, splits the inbound bytes into
/// frames, answers each PING that is not an acknowledgement with its acknowledgement
/// (what RFC 9113 §6.7 asks of the receiver, with the same eight bytes) and passes every
/// other frame on untouched. PING acknowledgements, the answers to pings of our own side,
/// pass on too.
///
/// Writes are whole frames, made on the event loop from `channelRead`, so an answer never
/// falls inside a frame or between a HEADERS frame and its CONTINUATION frames, which the
/// HTTP/2 handler writes in one go.
public final class PingAnswerer: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// Which side of the connection this is: a server first reads the client's 24-byte
    /// connection preface, which is not a frame.
    public enum Side: Sendable {
        case client
        case server
    }

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let frameHeaderLength = 9
    static let pingType: UInt8 = 6
    static let ackFlag: UInt8 = 1

    private var prefaceLeft: Int
    private var buffered: ByteBuffer?

    public init(side: Side) {
        prefaceLeft = side == .server ? Self.preface.count : 0
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var pending = buffered {
            buffered = nil
            pending.writeBuffer(&bytes)
            bytes = pending
        }
        if prefaceLeft > 0 {
            let count = min(prefaceLeft, bytes.readableBytes)
            if let slice = bytes.readSlice(length: count) {
                context.fireChannelRead(wrapInboundOut(slice))
            }
            prefaceLeft -= count
            if prefaceLeft > 0 { return }
        }
        // Everything up to the first PING to answer goes on as one buffer, so the
        // HTTP/2 handler sees reads as large as they came. (A ByteBuffer gives no bytes
        // before its reader index, so the scan uses a cursor of its own.)
        var cursor = bytes.readerIndex
        while let header = bytes.getBytes(at: cursor, length: Self.frameHeaderLength) {
            let length = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
            let total = Self.frameHeaderLength + length
            guard bytes.writerIndex - cursor >= total else { break }
            let isPing = header[3] == Self.pingType && header[4] & Self.ackFlag == 0 && length == 8
                && header[5] & 0x7f == 0 && header[6] == 0 && header[7] == 0 && header[8] == 0
            guard isPing else {
                cursor += total
                continue
            }
            let before = cursor - bytes.readerIndex
            if before > 0, let slice = bytes.readSlice(length: before) {
                context.fireChannelRead(wrapInboundOut(slice))
            }
            bytes.moveReaderIndex(forwardBy: Self.frameHeaderLength)
            var ack = context.channel.allocator.buffer(capacity: total)
            ack.writeBytes([0, 0, 8, Self.pingType, Self.ackFlag, 0, 0, 0, 0])
            if var opaque = bytes.readSlice(length: 8) { ack.writeBuffer(&opaque) }
            context.writeAndFlush(wrapOutboundOut(ack), promise: nil)
            cursor = bytes.readerIndex
        }
        let complete = cursor - bytes.readerIndex
        if complete > 0, let slice = bytes.readSlice(length: complete) {
            context.fireChannelRead(wrapInboundOut(slice))
        }
        // A partial frame waits for the rest of its bytes.
        if bytes.readableBytes > 0 {
            buffered = bytes.slice()
        }
    }
}
