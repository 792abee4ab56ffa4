import Foundation
import VeneerOS

/// Talking HTTP/2 the way a gRPC client starts.
public enum HTTP2Probe {
    /// The first frame the server sends on an HTTP/2 connection to `path`, after the
    /// client preface and an empty SETTINGS frame (what containerd's gRPC client sends
    /// first): a SETTINGS frame (type 4) from a gRPC server.
    public static func firstFrame(_ path: String, timeoutSeconds: Int = 10) async throws -> [UInt8] {
        try await Task.detached { () throws -> [UInt8] in
            let connection = try UnixStreamConnection(path: path)
            try connection.setReadTimeout(seconds: timeoutSeconds)
            try connection.writeAll(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0])
            var frame: [UInt8] = []
            while frame.count < 9 {
                var chunk: [UInt8] = []
                try connection.read(into: &chunk, max: 9 - frame.count)
                if chunk.isEmpty { break }
                frame += chunk
            }
            return frame
        }.value
    }
}
