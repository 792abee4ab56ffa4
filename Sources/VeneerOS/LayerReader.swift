internal import CArchive
import VeneerCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One entry of a layer's tar stream, as the tar has it: nothing is resolved or checked
/// here (that is the applier's work).
public struct LayerEntry: Sendable, Equatable {
    public enum FileType: String, Sendable {
        case regular, directory, symlink, hardlink, character, block, fifo, socket
    }

    /// Position in the stream, from 0.
    public var index: Int
    /// The name as stored (PAX `path` included), bytes as they are.
    public var path: [UInt8]
    public var type: FileType
    /// The target of a symbolic link or a hard link.
    public var linkTarget: [UInt8]?
    /// Permission bits with setuid, setgid and sticky (0o7777).
    public var permissions: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var modified: Timestamp
    /// Bytes of a regular file's content.
    public var size: Int64
    public var deviceMajor: UInt32
    public var deviceMinor: UInt32
    /// Extended attributes (PAX `SCHILY.xattr.*`), in the order the tar gives them.
    public var xattrs: [ExtendedAttribute]

    public struct ExtendedAttribute: Sendable, Equatable {
        public var name: String
        public var value: [UInt8]

        public init(name: String, value: [UInt8]) {
            self.name = name
            self.value = value
        }
    }

    public init(
        index: Int = 0, path: [UInt8], type: FileType, linkTarget: [UInt8]? = nil, permissions: UInt32, uid: UInt32,
        gid: UInt32, modified: Timestamp, size: Int64 = 0, deviceMajor: UInt32 = 0, deviceMinor: UInt32 = 0,
        xattrs: [ExtendedAttribute] = []
    ) {
        self.index = index
        self.path = path
        self.type = type
        self.linkTarget = linkTarget
        self.permissions = permissions
        self.uid = uid
        self.gid = gid
        self.modified = modified
        self.size = size
        self.deviceMajor = deviceMajor
        self.deviceMinor = deviceMinor
        self.xattrs = xattrs
    }

    /// The name as text for messages (invalid UTF-8 shown with replacement characters).
    public var displayPath: String { String(decoding: path, as: UTF8.self) }
}

/// What went wrong reading a layer: the stream is not a tar of the declared
/// compression, is cut short, or the source failed (then `sourceError` is its error).
public struct LayerReadError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// The entry being read, when there was one.
    public var entryIndex: Int?
    public var sourceError: (any Error)?

    public var description: String {
        if let entryIndex { return "entry \(entryIndex): \(message)" }
        return message
    }
}

/// Reads an OCI layer from a stream of bytes with libarchive: decompression as declared,
/// then the tar's entries and their contents, one at a time. Every byte taken from the
/// source is shown to `compressed`, every byte of the tar stream to `tar` (so callers can
/// hash both, for the digest and the diff ID); ``drain()`` reads what follows the tar's
/// end so that both cover the whole input.
///
/// Not thread-safe: one reader stays on one thread, as libarchive's objects must.
public final class LayerReader {
    /// Gives the next bytes of the input, or an empty array at its end. May block.
    public typealias Source = () throws -> [UInt8]

    private let feed: Feed
    private let tarArchive: OpaquePointer
    private let decompressor: OpaquePointer?
    private var entryCount = 0
    private var finished = false

    public init(
        compression: LayerCompression, source: @escaping Source,
        compressed: @escaping (UnsafeRawBufferPointer) -> Void, tar: @escaping (UnsafeRawBufferPointer) -> Void
    ) throws(LayerReadError) {
        feed = Feed(source: source, compressed: compressed, tar: tar)
        // The stream of compressed bytes, as libarchive's "raw" format behind the
        // declared filter: its one entry's data is the tar.
        if compression != .none {
            guard let archive = archive_read_new() else { throw LayerReadError(message: "out of memory") }
            switch compression {
            case .gzip: archive_read_support_filter_gzip(archive)
            case .zstd: archive_read_support_filter_zstd(archive)
            case .none: break
            }
            archive_read_support_format_raw(archive)
            decompressor = archive
            feed.decompressor = archive
        } else {
            decompressor = nil
        }
        guard let archive = archive_read_new() else {
            if let decompressor { archive_read_free(decompressor) }
            throw LayerReadError(message: "out of memory")
        }
        tarArchive = archive
        archive_read_support_format_tar(archive)
        let context = Unmanaged.passUnretained(feed).toOpaque()
        if let decompressor {
            guard archive_read_open2(decompressor, context, nil, { _, context, buffer in Feed.readSource(context, buffer) }, nil, nil) == ARCHIVE_OK else {
                throw failure(decompressor, "the layer is not \(compression.rawValue)-compressed")
            }
            var entry: OpaquePointer?
            let status = archive_read_next_header(decompressor, &entry)
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN else {
                throw failure(decompressor, "cannot read the \(compression.rawValue) stream")
            }
            guard archive_read_open2(archive, context, nil, { _, context, buffer in Feed.readDecompressed(context, buffer) }, nil, nil) == ARCHIVE_OK else {
                throw failure(archive, "the layer is not a tar stream")
            }
        } else {
            guard archive_read_open2(archive, context, nil, { _, context, buffer in Feed.readPlain(context, buffer) }, nil, nil) == ARCHIVE_OK else {
                throw failure(archive, "the layer is not a tar stream")
            }
        }
    }

    deinit {
        archive_read_free(tarArchive)
        if let decompressor { archive_read_free(decompressor) }
    }

    /// Entries read so far.
    public var entries: Int { entryCount }

    /// The next entry, or nil after the last one. Whatever of the previous entry's
    /// content was not read is skipped.
    public func next() throws(LayerReadError) -> LayerEntry? {
        if finished { return nil }
        var entry: OpaquePointer?
        let status = archive_read_next_header(tarArchive, &entry)
        if status == ARCHIVE_EOF {
            finished = true
            return nil
        }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
            throw failure(tarArchive, "cannot read the header of entry \(entryCount)", entry: entryCount)
        }
        defer { entryCount += 1 }
        return Self.describe(entry, index: entryCount)
    }

    /// The content of the current entry, in blocks at their offsets (a sparse file's
    /// holes are skipped); `body` sees each block once.
    public func readContent(_ body: (_ offset: Int64, _ bytes: UnsafeRawBufferPointer) throws -> Void) throws {
        while true {
            var buffer: UnsafeRawPointer?
            var size = 0
            var offset: la_int64_t = 0
            let status = archive_read_data_block(tarArchive, &buffer, &size, &offset)
            if status == ARCHIVE_EOF { return }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN else {
                throw failure(tarArchive, "cannot read the content of entry \(entryCount - 1)", entry: entryCount - 1)
            }
            if size > 0, let buffer {
                try body(Int64(offset), UnsafeRawBufferPointer(start: buffer, count: size))
            }
        }
    }

    /// Reads the input to its end after the last entry (the tar's padding, anything
    /// after the compressed stream), so that the observers saw all of it.
    public func drain() throws(LayerReadError) {
        while try next() != nil {}
        if let decompressor {
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let count = chunk.withUnsafeMutableBytes { archive_read_data(decompressor, $0.baseAddress, $0.count) }
                if count == 0 { break }
                guard count > 0 else { throw failure(decompressor, "cannot read the end of the compressed stream") }
                chunk.withUnsafeBytes { feed.tar(UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
            }
        }
        do {
            // Without compression the source is the tar stream itself.
            try feed.drainSource(observeTar: decompressor == nil)
        } catch {
            throw LayerReadError(message: "reading the layer failed: \(error)", sourceError: error)
        }
    }

    private func failure(_ archive: OpaquePointer, _ what: String, entry: Int? = nil) -> LayerReadError {
        if let error = feed.sourceError {
            return LayerReadError(message: "reading the layer failed: \(error)", entryIndex: entry, sourceError: error)
        }
        let detail = feed.decompressionError ?? archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
        return LayerReadError(message: "\(what): \(detail)", entryIndex: entry)
    }

    private static func describe(_ entry: OpaquePointer, index: Int) -> LayerEntry {
        let path = Self.bytes(archive_entry_pathname(entry))
        let hardlink = archive_entry_hardlink(entry).map { Self.bytes($0) }
        let type: LayerEntry.FileType
        var linkTarget: [UInt8]?
        if let hardlink {
            type = .hardlink
            linkTarget = hardlink
        } else {
            // libarchive's AE_IF* values are POSIX's.
            switch UInt32(archive_entry_filetype(entry)) & 0o170000 {
            case 0o040000: type = .directory
            case 0o120000:
                type = .symlink
                linkTarget = Self.bytes(archive_entry_symlink(entry))
            case 0o020000: type = .character
            case 0o060000: type = .block
            case 0o010000: type = .fifo
            case 0o140000: type = .socket
            default: type = .regular
            }
        }
        var xattrs: [LayerEntry.ExtendedAttribute] = []
        if archive_entry_xattr_reset(entry) > 0 {
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK {
                guard let name else { continue }
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                xattrs.append(.init(name: String(cString: name), value: bytes))
            }
        }
        let seconds = Int64(archive_entry_mtime(entry))
        let nanoseconds = Int64(archive_entry_mtime_is_set(entry) != 0 ? archive_entry_mtime_nsec(entry) : 0)
        return LayerEntry(
            index: index, path: path, type: type, linkTarget: linkTarget,
            permissions: UInt32(archive_entry_mode(entry)) & 0o7777,
            uid: UInt32(truncatingIfNeeded: archive_entry_uid(entry)),
            gid: UInt32(truncatingIfNeeded: archive_entry_gid(entry)),
            modified: Timestamp(nanosecondsSinceEpoch: seconds &* 1_000_000_000 &+ nanoseconds),
            size: type == .regular ? Int64(archive_entry_size(entry)) : 0,
            deviceMajor: UInt32(truncatingIfNeeded: archive_entry_rdevmajor(entry)),
            deviceMinor: UInt32(truncatingIfNeeded: archive_entry_rdevminor(entry)),
            xattrs: xattrs)
    }

    private static func bytes(_ text: UnsafePointer<CChar>?) -> [UInt8] {
        guard let text else { return [] }
        return Array(UnsafeRawBufferPointer(start: text, count: strlen(text)))
    }
}

/// The input side of a ``LayerReader``: libarchive's read callbacks. The block each
/// callback hands out lives in memory of the feed's own, valid until the next call.
private final class Feed {
    static let blockSize = 64 * 1024

    let source: LayerReader.Source
    let compressed: (UnsafeRawBufferPointer) -> Void
    let tar: (UnsafeRawBufferPointer) -> Void
    var decompressor: OpaquePointer?
    /// The error the source threw, which ends the read.
    var sourceError: (any Error)?
    /// What the decompressor said when it failed under the tar reader.
    var decompressionError: String?
    /// What the source gave last, as handed to the first reader.
    private var block: UnsafeMutableRawBufferPointer
    /// What the decompressor gave last, as handed to the tar reader: a block of its own,
    /// since filling it makes the decompressor read the source into `block`.
    private let tarBlock: UnsafeMutableRawBufferPointer
    private var sourceEnded = false

    init(
        source: @escaping LayerReader.Source, compressed: @escaping (UnsafeRawBufferPointer) -> Void,
        tar: @escaping (UnsafeRawBufferPointer) -> Void
    ) {
        self.source = source
        self.compressed = compressed
        self.tar = tar
        block = .allocate(byteCount: Self.blockSize, alignment: 16)
        tarBlock = .allocate(byteCount: Self.blockSize, alignment: 16)
    }

    deinit {
        block.deallocate()
        tarBlock.deallocate()
    }

    /// The next chunk of the source, shown to `compressed`; empty at the end.
    func nextChunk() throws -> [UInt8] {
        if sourceEnded { return [] }
        let chunk = try source()
        if chunk.isEmpty { sourceEnded = true }
        chunk.withUnsafeBytes { compressed($0) }
        return chunk
    }

    func drainSource(observeTar: Bool) throws {
        while true {
            let chunk = try nextChunk()
            if chunk.isEmpty { return }
            if observeTar { chunk.withUnsafeBytes { tar($0) } }
        }
    }

    static func readSource(_ context: UnsafeMutableRawPointer?, _ buffer: UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int {
        guard let context, let buffer else { return -1 }
        return Unmanaged<Feed>.fromOpaque(context).takeUnretainedValue().handOutChunk(buffer, observeTar: false)
    }

    static func readPlain(_ context: UnsafeMutableRawPointer?, _ buffer: UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int {
        guard let context, let buffer else { return -1 }
        return Unmanaged<Feed>.fromOpaque(context).takeUnretainedValue().handOutChunk(buffer, observeTar: true)
    }

    static func readDecompressed(_ context: UnsafeMutableRawPointer?, _ buffer: UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int {
        guard let context, let buffer else { return -1 }
        return Unmanaged<Feed>.fromOpaque(context).takeUnretainedValue().handOutDecompressed(buffer)
    }

    private func handOutChunk(_ buffer: UnsafeMutablePointer<UnsafeRawPointer?>, observeTar: Bool) -> Int {
        let chunk: [UInt8]
        do {
            chunk = try nextChunk()
        } catch {
            sourceError = error
            return -1
        }
        if chunk.count > block.count {
            block.deallocate()
            block = .allocate(byteCount: chunk.count, alignment: 16)
        }
        chunk.withUnsafeBytes { block.copyMemory(from: $0) }
        let handed = UnsafeRawBufferPointer(rebasing: block.prefix(chunk.count))
        if observeTar { tar(handed) }
        buffer.pointee = UnsafeRawPointer(block.baseAddress)
        return chunk.count
    }

    private func handOutDecompressed(_ buffer: UnsafeMutablePointer<UnsafeRawPointer?>) -> Int {
        guard let decompressor else { return -1 }
        let count = archive_read_data(decompressor, tarBlock.baseAddress, tarBlock.count)
        if count < 0 {
            decompressionError = archive_error_string(decompressor).map { String(cString: $0) } ?? "decompression failed"
            return -1
        }
        tar(UnsafeRawBufferPointer(rebasing: tarBlock.prefix(count)))
        buffer.pointee = UnsafeRawPointer(tarBlock.baseAddress)
        return count
    }
}
