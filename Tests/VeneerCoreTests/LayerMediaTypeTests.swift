import Testing
import VeneerCore

@Suite("Layer media types")
struct LayerMediaTypeTests {
    @Test("Content-Type values name a compression whatever their case and parameters; others name none")
    func contentTypes() {
        #expect(LayerMediaType.compression(ofContentType: "application/vnd.oci.image.layer.v1.tar") == LayerCompression.none)
        #expect(LayerMediaType.compression(ofContentType: " Application/Vnd.OCI.Image.Layer.V1.Tar+GZIP ; q=1") == .gzip)
        #expect(LayerMediaType.compression(ofContentType: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd") == .zstd)
        for other in ["application/json", "", "application/vnd.oci.image.layer.v1.tar+bzip2", "application/vnd.oci.image.layer.v1.tarx",
            "application/vnd.docker.image.rootfs.diff.tar.gzip"]
        {
            #expect(LayerMediaType.compression(ofContentType: other) == nil, "\(other)")
        }
        #expect(LayerMediaType.accepted.count == 6)
        for compression in LayerCompression.allCases {
            #expect(LayerMediaType.compression(ofContentType: LayerMediaType.name(of: compression)) == compression)
        }
    }

    @Test("the first bytes tell gzip and zstd; bzip2 and xz are refused; anything else is a tar")
    func magic() throws {
        #expect(try LayerMediaType.compression(startingWith: [0x1f, 0x8b, 8, 0]) == .gzip)
        #expect(try LayerMediaType.compression(startingWith: [0x28, 0xb5, 0x2f, 0xfd, 0]) == .zstd)
        #expect(try LayerMediaType.compression(startingWith: Array("etc/".utf8)) == LayerCompression.none)
        #expect(try LayerMediaType.compression(startingWith: []) == LayerCompression.none)
        for refused in [Array("BZh9".utf8), [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0]] {
            #expect(throws: VeneerError.self) { try LayerMediaType.compression(startingWith: refused) }
        }
    }
}
