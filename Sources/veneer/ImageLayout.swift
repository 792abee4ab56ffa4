import Crypto
import Foundation
import VeneerCore
import VeneerOS

/// An OCI image layout (image-spec `image-layout.md`) on disk: `index.json` and
/// `blobs/<algorithm>/<hex>`, as `skopeo copy … oci:DIR` and `ctr images export` write
/// it. Every blob read through it is checked against its digest.
struct ImageLayout {
    let root: String

    /// One image of the layout: its manifest's digest, its layers with their diff IDs,
    /// and the name it is known by, when the index gives one.
    struct Image {
        var name: String?
        var manifestDigest: String
        var layers: [Layer]
    }

    struct Layer {
        var digest: String
        var diffID: String
        var size: Int64
        /// Its chain ID: the name of the committed snapshot that ends with it.
        var chainID: String
    }

    static let nameAnnotations = ["io.containerd.image.name", "org.opencontainers.image.ref.name"]

    /// A layout directory, or a tar of one unpacked into `scratch` (only `index.json`,
    /// `oci-layout` and blobs are taken; no other name is written).
    static func open(_ path: String, scratch: String) throws(VeneerError) -> ImageLayout {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .invalidArgument("\(path) does not exist; give an OCI image layout directory or a tar of one")
        }
        if isDirectory.boolValue { return ImageLayout(root: path) }
        try unpack(path, into: scratch)
        return ImageLayout(root: scratch)
    }

    /// The image named `name`, or the only one when no name is given.
    func image(named name: String?) throws(VeneerError) -> Image {
        let index = try json(at: root + "/index.json", what: "index.json")
        let descriptors = index["manifests"] as? [[String: Any]] ?? []
        let candidates: [[String: Any]]
        if let name {
            candidates = descriptors.filter { descriptor in
                let annotations = descriptor["annotations"] as? [String: String] ?? [:]
                return Self.nameAnnotations.contains { annotations[$0] == name }
            }
            guard !candidates.isEmpty else {
                throw .notFound("the layout has no image named \(quoted(name)); it has: \(Self.names(descriptors))")
            }
        } else {
            candidates = descriptors
            guard candidates.count == 1 else {
                throw .invalidArgument(
                    "the layout has \(descriptors.count) images; name one with --name (it has: \(Self.names(descriptors)))")
            }
        }
        let chosen = candidates[0]
        let annotations = chosen["annotations"] as? [String: String] ?? [:]
        let imageName = name ?? Self.nameAnnotations.lazy.compactMap { annotations[$0] }.first
        let manifestDigest = try manifest(for: chosen)
        let manifest = try json(blob: manifestDigest, what: "the manifest")
        guard let config = manifest["config"] as? [String: Any], let configDigest = config["digest"] as? String,
            let layers = manifest["layers"] as? [[String: Any]]
        else {
            throw .invalidArgument("the manifest \(manifestDigest) has no config or no layers; is it an image manifest?")
        }
        let configuration = try json(blob: configDigest, what: "the image config")
        let rootfs = configuration["rootfs"] as? [String: Any]
        guard let diffIDs = rootfs?["diff_ids"] as? [String], diffIDs.count == layers.count else {
            throw .invalidArgument(
                "the image config \(configDigest) does not give one diff_id per layer (\(layers.count) layers)")
        }
        var result: [Layer] = []
        var chain: String?
        for (layer, diffID) in zip(layers, diffIDs) {
            guard let digest = layer["digest"] as? String else {
                throw .invalidArgument("a layer of manifest \(manifestDigest) has no digest")
            }
            if let urls = layer["urls"] as? [String], !urls.isEmpty, !FileManager.default.fileExists(atPath: path(of: digest)) {
                throw .invalidArgument("layer \(digest) is not in the layout (it is to be fetched from \(urls[0])); copy it in first")
            }
            let next = chain.map { Self.sha256(Array("\($0) \(diffID)".utf8)) } ?? diffID
            chain = next
            result.append(Layer(digest: digest, diffID: diffID, size: (layer["size"] as? NSNumber)?.int64Value ?? 0, chainID: next))
        }
        return Image(name: imageName, manifestDigest: manifestDigest, layers: result)
    }

    /// The manifest a descriptor of the index leads to: itself, or the one for this
    /// machine's platform in an image index.
    private func manifest(for descriptor: [String: Any]) throws(VeneerError) -> String {
        guard let digest = descriptor["digest"] as? String else { throw .invalidArgument("index.json has a manifest without a digest") }
        let mediaType = descriptor["mediaType"] as? String ?? ""
        guard mediaType.hasSuffix("image.index.v1+json") || mediaType.hasSuffix("manifest.list.v2+json") else { return digest }
        let index = try json(blob: digest, what: "the image index")
        let architecture = Self.architecture
        for entry in index["manifests"] as? [[String: Any]] ?? [] {
            let platform = entry["platform"] as? [String: Any] ?? [:]
            if platform["os"] as? String == "linux", platform["architecture"] as? String == architecture {
                return try manifest(for: entry)
            }
        }
        throw .notFound("the image index \(digest) has no manifest for linux/\(architecture)")
    }

    static var architecture: String {
        #if arch(x86_64)
        "amd64"
        #elseif arch(arm64)
        "arm64"
        #else
        "unknown"
        #endif
    }

    func path(of digest: String) -> String {
        let parts = digest.split(separator: ":", maxSplits: 1)
        return root + "/blobs/" + (parts.first ?? "") + "/" + (parts.count > 1 ? parts[1] : "")
    }

    /// The blob's bytes, checked against its digest.
    private func json(blob digest: String, what: String) throws(VeneerError) -> [String: Any] {
        try Self.checkDigestSyntax(digest)
        let bytes = try Self.read(path(of: digest), what: "\(what) \(digest)")
        let actual = Self.sha256(bytes)
        guard actual == digest else {
            throw .invalidArgument("\(what) blob \(digest) has digest \(actual); the layout is damaged")
        }
        return try Self.object(bytes, what: "\(what) \(digest)")
    }

    private func json(at path: String, what: String) throws(VeneerError) -> [String: Any] {
        try Self.object(try Self.read(path, what: what), what: what)
    }

    private static func read(_ path: String, what: String) throws(VeneerError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalidArgument("cannot read \(what) at \(path); is this an OCI image layout?")
        }
        return Array(data)
    }

    private static func object(_ bytes: [UInt8], what: String) throws(VeneerError) -> [String: Any] {
        guard let value = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw .invalidArgument("\(what) is not a JSON object")
        }
        return value
    }

    static func checkDigestSyntax(_ digest: String) throws(VeneerError) {
        let hex = digest.utf8.dropFirst("sha256:".count)
        guard digest.hasPrefix("sha256:"), hex.count == 64, hex.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            throw .invalidArgument("\(quoted(digest)) is not a sha256 digest; only sha256 layouts are supported")
        }
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        "sha256:" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    private static func names(_ descriptors: [[String: Any]]) -> String {
        let names = descriptors.compactMap { descriptor -> String? in
            let annotations = descriptor["annotations"] as? [String: String] ?? [:]
            return nameAnnotations.lazy.compactMap { annotations[$0] }.first
        }
        return names.isEmpty ? "no names" : names.map { quoted($0) }.joined(separator: ", ")
    }

    /// Unpacks the layout entries of a tar: `index.json`, `oci-layout` and
    /// `blobs/sha256/<hex>`, regular files only (with or without a leading `./`).
    private static func unpack(_ tar: String, into directory: String) throws(VeneerError) {
        guard let handle = FileHandle(forReadingAtPath: tar) else {
            throw .invalidArgument("cannot open \(tar); give an OCI image layout directory or a tar of one")
        }
        defer { try? handle.close() }
        do {
            try FileManager.default.createDirectory(atPath: directory + "/blobs/sha256", withIntermediateDirectories: true)
            let reader = try LayerReader(
                compression: .none, source: { Array(try handle.read(upToCount: 1 << 20) ?? Data()) },
                compressed: { _ in }, tar: { _ in })
            while let entry = try reader.next() {
                var name = entry.displayPath
                if name.hasPrefix("./") { name.removeFirst(2) }
                let wanted = name == "index.json" || name == "oci-layout"
                    || (name.hasPrefix("blobs/sha256/") && (try? checkDigestSyntax("sha256:" + name.dropFirst(13))) != nil)
                guard wanted, entry.type == .regular else { continue }
                let path = directory + "/" + name
                _ = FileManager.default.createFile(atPath: path, contents: nil)
                guard let out = FileHandle(forWritingAtPath: path) else {
                    throw VeneerError.unavailable("cannot write \(path) while unpacking \(tar)")
                }
                defer { try? out.close() }
                try reader.readContent { offset, bytes in
                    try out.seek(toOffset: UInt64(offset))
                    try out.write(contentsOf: Data(bytes))
                }
            }
        } catch let error as VeneerError {
            throw error
        } catch {
            throw .invalidArgument("cannot read \(tar) as a tar of an OCI image layout: \(error)")
        }
    }
}
