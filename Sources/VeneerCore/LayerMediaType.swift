/// How the bytes of a layer are compressed (the suffix of its media type).
public enum LayerCompression: String, Sendable, CaseIterable {
    case none
    case gzip
    case zstd
}

/// The OCI media types of layers (image-spec `media-types.md`): a tar, plain or
/// compressed, and the deprecated non-distributable variants of each.
public enum LayerMediaType {
    public static let tar = "application/vnd.oci.image.layer.v1.tar"
    public static let nondistributableTar = "application/vnd.oci.image.layer.nondistributable.v1.tar"

    /// The media type a layer of `compression` is exported with.
    public static func name(of compression: LayerCompression) -> String {
        switch compression {
        case .none: tar
        case .gzip: tar + "+gzip"
        case .zstd: tar + "+zstd"
        }
    }

    /// Every media type a layer may be sent with.
    public static let accepted: [String] = [tar, nondistributableTar].flatMap { base in
        [base, base + "+gzip", base + "+zstd"]
    }

    /// The compression of a layer that starts with `prefix` (its first bytes, at least
    /// six when it has that many): gzip and zstd by their magic numbers, anything else
    /// a plain tar. Throws for the compressions OCI layers do not use (bzip2, xz).
    public static func compression(startingWith prefix: [UInt8]) throws(VeneerError) -> LayerCompression {
        if prefix.starts(with: [0x1f, 0x8b]) { return .gzip }
        if prefix.starts(with: [0x28, 0xb5, 0x2f, 0xfd]) { return .zstd }
        if prefix.starts(with: Array("BZh".utf8)) || prefix.starts(with: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) {
            throw .invalidArgument(
                "the layer is compressed with bzip2 or xz, which OCI layers do not use; decompress it first (a tar, gzip or zstd)")
        }
        return .none
    }

    /// The compression that a `Content-Type` value names: its media type (before any
    /// parameter, without surrounding spaces, in any case) must be one of ``accepted``;
    /// nil otherwise.
    public static func compression(ofContentType value: String) -> LayerCompression? {
        let mediaType = value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let trimmed = mediaType.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed()
        let lowered = String(trimmed).lowercased()
        for base in [tar, nondistributableTar] {
            switch lowered {
            case base: return LayerCompression.none
            case base + "+gzip": return .gzip
            case base + "+zstd": return .zstd
            default: continue
            }
        }
        return nil
    }
}
