import HTTPTypes
import Hummingbird
import NIOCore
import VeneerCore
import VeneerService
import VeneerWire

/// `PUT /v1/snapshots/{key}/layer`: the request's body, streamed, is the layer. Every
/// check that needs no body (key, query, media type) comes before its first byte is
/// read.
enum LayerRoute {
    static func apply(_ request: Request, key: String, snapshotter: Snapshotter) async throws -> LayerAppliedResponse {
        let query = try RequestDecoding.query(request, allowed: ["namespace", "digest", "diff_id"])
        let namespace = try RequestDecoding.namespace(query)
        let digest = try RequestDecoding.single("digest", in: query)
        let diffID = try RequestDecoding.single("diff_id", in: query)
        let compression = try compression(of: request.headers[.contentType])
        let source = BlockingSource()
        let body = request.body
        async let fed: Void = source.feed(body) { buffer in Array(buffer.readableBytesView) }
        let result: Result<LayerApplied, VeneerError>
        do {
            result = .success(
                try await snapshotter.applyLayer(
                    key: key, in: namespace, compression: compression, digest: digest, diffID: diffID,
                    source: { try source.next() }))
        } catch {
            result = .failure(error)
        }
        // The feeding stops once the layer is read (a failure may leave the rest of the
        // body unread).
        source.finishReading()
        await fed
        let applied = try result.get()
        return LayerAppliedResponse(
            digest: applied.digest, diffID: applied.diffID, size: applied.size,
            uncompressedSize: applied.uncompressedSize, entries: applied.entries)
    }

    /// `GET /v1/snapshots/{key}/diff`: the snapshot's changes as a layer, streamed.
    /// Every check is done before the answer starts; a failure after that (a file that
    /// cannot be read) ends the connection before the layer's end.
    static func diff(_ request: Request, key: String, snapshotter: Snapshotter) async throws -> Response {
        let query = try RequestDecoding.query(request, allowed: ["namespace", "compression"])
        let namespace = try RequestDecoding.namespace(query)
        let compression: LayerCompression
        switch try RequestDecoding.single("compression", in: query) ?? "none" {
        case "none": compression = .none
        case "gzip": compression = .gzip
        case "zstd": compression = .zstd
        case let other:
            throw VeneerError.invalidArgument("compression \(quoted(other)) is not known; use none, gzip or zstd")
        }
        let export = try await snapshotter.exportLayer(key: key, in: namespace, compression: compression)
        let body = ResponseBody { writer in
            let sink = BlockingSink()
            export.start(into: sink)
            do {
                while let chunk = try await sink.next() {
                    try await writer.write(ByteBuffer(bytes: chunk))
                }
            } catch {
                sink.cancel()
                throw error
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: export.mediaType], body: body)
    }

    /// The compression that the request's `Content-Type` names; 415 for anything but a
    /// layer's media type.
    static func compression(of contentType: String?) throws(APIError) -> LayerCompression {
        let accepted = LayerMediaType.accepted.joined(separator: ", ")
        guard let contentType else {
            throw APIError(
                .unsupportedMediaType,
                "the layer has no Content-Type; send the layer's media type, one of \(accepted)")
        }
        guard let compression = LayerMediaType.compression(ofContentType: contentType) else {
            throw APIError(
                .unsupportedMediaType,
                "a layer's Content-Type must be an OCI layer media type, not \(contentType); use one of \(accepted)")
        }
        return compression
    }
}
