import ArgumentParser
import Foundation
import Synchronization
import VeneerClient
import VeneerCore
import VeneerOS
import VeneerWire

struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Apply an OCI layer (a tar, plain, gzip or zstd) to an active snapshot whose own layer is empty.",
        discussion: """
            The layer is read from FILE, or from standard input when FILE is "-", and streamed to \
            the daemon; its compression is told from its first bytes. All or nothing: when \
            anything fails, the snapshot's layer stays empty. On a terminal, a progress line shows \
            the bytes sent and the rate.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Key of the active snapshot.") var key: String
    @Argument(help: ArgumentHelp("The layer, or - for standard input.", valueName: "file")) var file: String
    @Option(help: ArgumentHelp("Digest the layer must have (sha256:…).", valueName: "digest")) var digest: String?
    @Option(name: .customLong("diff-id"), help: ArgumentHelp("Digest its uncompressed tar must have (sha256:…).", valueName: "digest"))
    var diffID: String?

    func run() async throws {
        try await global.perform { () async throws(VeneerError) in
            let input = try LayerInput(path: file)
            let progress = Progress(label: key, total: input.size)
            let applied = try await global.client().applyLayer(
                key, compression: input.compression, digest: digest, diffID: diffID,
                read: { () throws(VeneerError) -> [UInt8] in
                    let chunk = try input.read()
                    progress.advance(chunk.count)
                    return chunk
                })
            progress.finish()
            try global.emit(applied, text: Format.applied(applied, key: key))
        }
    }
}

struct ChangesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "changes",
        abstract: "List what a snapshot's own layer added, modified and deleted against its parent.",
        discussion: """
            One line per change, sorted by path: the kind (added, modified, deleted), the type of \
            the entry (for a deletion, what the parent had) and the path. A deleted directory is \
            one line; an added one is listed with everything in it.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Key of the active or committed snapshot.") var key: String

    func run() async throws {
        try await global.perform { () async throws(VeneerError) in
            let changes = try await global.client().changes(key)
            try global.emit(ChangesResponse(changes: changes), text: Format.changes(changes))
        }
    }
}

struct RevertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revert",
        abstract: "Give paths of an active snapshot back their parent's content, undoing the snapshot's changes there.",
        discussion: """
            Afterwards each PATH, and everything below it, is as the parent has it; nothing else \
            changes. The snapshot must not be mounted. "/" reverts everything. Prints the paths \
            that had changes.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Key of the active snapshot.") var key: String
    @Argument(help: "Absolute paths in the snapshot, such as /etc/passwd.") var paths: [String]

    func validate() throws {
        if paths.isEmpty { throw ValidationError("name at least one path to revert") }
    }

    func run() async throws {
        try await global.perform { () async throws(VeneerError) in
            let reverted = try await global.client().revert(key, paths: paths)
            try global.emit(RevertResponse(reverted: reverted), text: reverted.joined(separator: "\n"))
        }
    }
}

struct DiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Export a snapshot's own changes against its parent as an OCI layer.",
        discussion: """
            Writes the layer (a PAX tar; gzip or zstd with --compression) to FILE, or to standard \
            output when it is not a terminal. FILE appears only once the whole layer is in: an \
            interrupted export leaves nothing behind. The same snapshot gives the same bytes \
            every time. For a committed snapshot, or an active one not mounted read-write.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Key of the snapshot.") var key: String
    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Write the layer to this file.", valueName: "file"))
    var output: String?
    @Option(help: ArgumentHelp("none, gzip or zstd (default: none).", valueName: "compression"))
    var compression: String = "none"

    func validate() throws {
        guard LayerCompression(rawValue: compression) != nil else {
            throw ValidationError("--compression must be none, gzip or zstd, not \(quoted(compression))")
        }
        if output == nil, Terminal.isTerminal(1) {
            throw ValidationError("standard output is a terminal; give -o FILE, or send the layer to a pipe or a file")
        }
    }

    func run() async throws {
        try await global.perform { () async throws(VeneerError) in
            let compression = LayerCompression(rawValue: compression) ?? .none
            let file = try LayerOutput(path: output)
            let progress = Progress(label: key, total: nil, enabled: output != nil && Terminal.isTerminal(2))
            do throws(VeneerError) {
                _ = try await global.client().exportLayer(key, compression: compression) { chunk in
                    try file.write(chunk)
                    progress.advance(chunk.count)
                }
                progress.finish()
                try file.commit()
            } catch {
                progress.finish()
                file.discard()
                throw error
            }
        }
    }
}

/// Where an exported layer goes: standard output, or a file that is written beside its
/// final name and renamed into place once complete.
final class LayerOutput: Sendable {
    private let handle: FileHandle
    private let path: String?
    private let partial: String?

    init(path: String?) throws(VeneerError) {
        self.path = path
        guard let path else {
            handle = FileHandle.standardOutput
            partial = nil
            return
        }
        let partial = path + ".partial-\(ProcessInfo.processInfo.processIdentifier)"
        guard FileManager.default.createFile(atPath: partial, contents: nil),
            let handle = FileHandle(forWritingAtPath: partial)
        else {
            throw .invalidArgument("cannot write \(path): cannot create \(partial); check the directory")
        }
        self.handle = handle
        self.partial = partial
    }

    func write(_ bytes: [UInt8]) throws(VeneerError) {
        do {
            try handle.write(contentsOf: bytes)
        } catch {
            throw .unavailable("cannot write the layer to \(path ?? "standard output"): \(error)")
        }
    }

    /// Puts the file in place, on disk.
    func commit() throws(VeneerError) {
        guard let path, let partial else { return }
        do {
            try handle.synchronize()
            try handle.close()
            // One rename: the file at `path`, if any, is replaced whole.
            try FileSystem.rename(partial, to: path)
        } catch {
            discard()
            throw .unavailable("cannot write the layer to \(path): \(error)")
        }
    }

    func discard() {
        guard let partial else { return }
        try? handle.close()
        try? FileManager.default.removeItem(atPath: partial)
    }
}

/// A layer read from a file or standard input, its first chunk read ahead to tell its
/// compression.
final class LayerInput: Sendable {
    static let chunkSize = 1 << 20

    private let handle: FileHandle
    private let path: String
    private let first: Mutex<[UInt8]?>
    let compression: LayerCompression
    /// Bytes in the file, when it is a regular file.
    let size: Int64?

    init(path: String) throws(VeneerError) {
        self.path = path
        if path == "-" {
            handle = FileHandle.standardInput
            size = nil
        } else {
            guard let opened = FileHandle(forReadingAtPath: path) else {
                throw .invalidArgument("cannot open the layer \(path); name a readable file, or - for standard input")
            }
            handle = opened
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            size = (attributes?[.type] as? FileAttributeType) == .typeRegular
                ? (attributes?[.size] as? NSNumber)?.int64Value : nil
        }
        let head = try Self.read(handle, path: path)
        first = Mutex(head)
        compression = try LayerMediaType.compression(startingWith: Array(head.prefix(8)))
    }

    /// The next chunk; empty at the end.
    func read() throws(VeneerError) -> [UInt8] {
        if let head = first.withLock({ value -> [UInt8]? in defer { value = nil }; return value }) {
            return head
        }
        return try Self.read(handle, path: path)
    }

    private static func read(_ handle: FileHandle, path: String) throws(VeneerError) -> [UInt8] {
        do {
            return Array(try handle.read(upToCount: chunkSize) ?? Data())
        } catch {
            throw .invalidArgument("cannot read the layer \(path == "-" ? "from standard input" : path): \(error)")
        }
    }
}

/// A progress line on standard error, shown only when it is a terminal: bytes so far
/// (of the total, when known) and the rate, redrawn at most five times a second.
final class Progress: Sendable {
    private struct State {
        var bytes: Int64 = 0
        var lastDrawn: UInt64 = 0
    }

    private let label: String
    private let total: Int64?
    private let enabled: Bool
    private let started = DispatchTime.now().uptimeNanoseconds
    private let state = Mutex(State())

    init(label: String, total: Int64?, enabled: Bool = Terminal.isTerminal(2)) {
        self.label = label
        self.total = total
        self.enabled = enabled
    }

    func advance(_ count: Int) {
        guard enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        let line = state.withLock { state -> String? in
            state.bytes += Int64(count)
            guard now - state.lastDrawn >= 200_000_000 || count == 0 else { return nil }
            state.lastDrawn = now
            return Format.progress(
                label: label, bytes: state.bytes, total: total, seconds: Double(now - started) / 1e9)
        }
        if let line { FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8)) }
    }

    /// Clears the line.
    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
