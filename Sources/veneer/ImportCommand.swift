import ArgumentParser
import Foundation
import VeneerClient
import VeneerCore
import VeneerWire

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import an image from an OCI image layout as a chain of committed snapshots.",
        discussion: """
            LAYOUT is a directory or a tar of one (as `skopeo copy … oci:DIR` or `ctr images export` \
            write them). Each layer becomes a committed snapshot named by its chain ID, as \
            containerd names them; layers already present are reused. Every digest is checked: \
            the manifest's, the config's, each layer's and its diff ID. The top snapshot is \
            labelled veneer.image/REF with the manifest's digest, so that `veneer prepare KEY REF` \
            works; its name is printed. On a terminal, a progress line shows the layer, the bytes \
            and the rate.
            """)

    static let labelPrefix = "veneer.image/"

    @OptionGroup var global: GlobalOptions
    @Argument(help: ArgumentHelp("An OCI image layout directory, or a tar of one.", valueName: "layout")) var layout: String
    @Option(help: ArgumentHelp("The image to import, when the layout has several (its io.containerd.image.name or org.opencontainers.image.ref.name).", valueName: "ref"))
    var name: String?

    func run() async throws {
        try await global.perform { () async throws(VeneerError) in
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("veneer-import-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let layout = try ImageLayout.open(layout, scratch: scratch)
            let image = try layout.image(named: name)
            guard let top = image.layers.last else {
                throw VeneerError.invalidArgument("the image has no layers")
            }
            let client = global.client()
            var parent: String?
            for (index, layer) in image.layers.enumerated() {
                defer { parent = layer.chainID }
                if try await Self.exists(layer.chainID, client: client) { continue }
                try await Self.importLayer(
                    layer, parent: parent, from: layout, client: client,
                    label: "layer \(index + 1) of \(image.layers.count)")
            }
            var imported = try await client.stat(top.chainID)
            if let reference = image.name {
                imported = try await client.update(
                    top.chainID,
                    UpdateRequest(labels: [Self.labelPrefix + reference: image.manifestDigest], fieldpaths: ["labels." + Self.labelPrefix + reference]))
            }
            try global.emit(imported, text: top.chainID)
        }
    }

    static func exists(_ key: String, client: VeneerClient) async throws(VeneerError) -> Bool {
        do {
            return try await client.stat(key).kind == .committed
        } catch where error.code == .notFound {
            return false
        }
    }

    /// Prepares a snapshot on `parent`, applies the layer (checked against its digest and
    /// diff ID) and commits it under its chain ID; removes the snapshot when anything fails.
    static func importLayer(
        _ layer: ImageLayout.Layer, parent: String?, from layout: ImageLayout, client: VeneerClient, label: String
    ) async throws(VeneerError) {
        let work = "import-\(layer.chainID)-\(UUID().uuidString.prefix(8))"
        _ = try await client.prepare(
            PrepareRequest(key: work, parent: parent, kind: .active, labels: ["veneer.import": layer.digest]))
        do throws(VeneerError) {
            try ImageLayout.checkDigestSyntax(layer.digest)
            let input = try LayerInput(path: layout.path(of: layer.digest))
            let progress = Progress(label: label, total: input.size ?? layer.size)
            _ = try await client.applyLayer(
                work, compression: input.compression, digest: layer.digest, diffID: layer.diffID,
                read: { () throws(VeneerError) -> [UInt8] in
                    let chunk = try input.read()
                    progress.advance(chunk.count)
                    return chunk
                })
            progress.finish()
            do {
                _ = try await client.commit(work, CommitRequest(name: layer.chainID))
            } catch where error.code == .alreadyExists {
                // Imported meanwhile by someone else: theirs is the same layer.
                try await client.remove(work)
            }
        } catch {
            try? await client.remove(work)
            throw error
        }
    }
}
