internal import CArchive
import VeneerCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Writes an OCI layer with libarchive: a PAX tar, compressed as asked, handed to `sink`
/// in blocks of 64 KiB (the last one shorter, never padded). The same entries give the
/// same bytes: no user or group names, no access or change times, and gzip without a
/// time stamp.
///
/// Not thread-safe: one writer stays on one thread, as libarchive's objects must.
public final class LayerWriter {
    /// Takes the next bytes of the layer. May block; an error ends the writing.
    public typealias Sink = (UnsafeRawBufferPointer) throws -> Void

    private let archive: OpaquePointer
    private let output: Output
    private var closed = false

    public init(compression: LayerCompression, sink: @escaping Sink) throws(LayerWriteError) {
        guard let archive = archive_write_new() else { throw LayerWriteError(message: "out of memory") }
        self.archive = archive
        output = Output(sink: sink)
        archive_write_set_format_pax(archive)
        switch compression {
        case .none: break
        case .gzip:
            archive_write_add_filter_gzip(archive)
            // The header's time stamp would make each export differ.
            archive_write_set_filter_option(archive, "gzip", "timestamp", nil)
        case .zstd: archive_write_add_filter_zstd(archive)
        }
        archive_write_set_bytes_per_block(archive, 64 * 1024)
        archive_write_set_bytes_in_last_block(archive, 1)
        let context = Unmanaged.passUnretained(output).toOpaque()
        let opened = archive_write_open2(
            archive, context, nil,
            { _, context, buffer, length in Output.write(context, buffer, length) }, nil, nil)
        guard opened == ARCHIVE_OK else { throw failure("cannot start the layer") }
    }

    deinit {
        archive_write_free(archive)
    }

    /// Adds `entry` (its `index` is not used); a regular file's `size` bytes come from
    /// `content`, read from its current offset.
    public func add(_ entry: LayerEntry, content: Descriptor? = nil) throws(LayerWriteError) {
        guard let header = archive_entry_new() else { throw LayerWriteError(message: "out of memory") }
        defer { archive_entry_free(header) }
        entry.path.withUnsafeBufferPointer { name in
            let text = [CChar](unsafeUninitializedCapacity: name.count + 1) { buffer, count in
                for (index, byte) in name.enumerated() { buffer[index] = CChar(bitPattern: byte) }
                buffer[name.count] = 0
                count = name.count + 1
            }
            archive_entry_copy_pathname(header, text)
        }
        let type: UInt32
        switch entry.type {
        case .regular, .hardlink: type = 0o100000
        case .directory: type = 0o040000
        case .symlink: type = 0o120000
        case .character: type = 0o020000
        case .block: type = 0o060000
        case .fifo: type = 0o010000
        case .socket: type = 0o140000
        }
        archive_entry_set_filetype(header, type)
        archive_entry_set_perm(header, mode_t(entry.permissions & 0o7777))
        archive_entry_set_uid(header, la_int64_t(entry.uid))
        archive_entry_set_gid(header, la_int64_t(entry.gid))
        let nanoseconds = entry.modified.nanosecondsSinceEpoch
        let seconds = nanoseconds >= 0 ? nanoseconds / 1_000_000_000 : (nanoseconds - 999_999_999) / 1_000_000_000
        archive_entry_set_mtime(header, time_t(seconds), Int(nanoseconds - seconds * 1_000_000_000))
        if let target = entry.linkTarget {
            let text = Self.cString(target)
            if entry.type == .hardlink {
                archive_entry_copy_hardlink(header, text)
            } else {
                archive_entry_copy_symlink(header, text)
            }
        }
        if entry.type == .character || entry.type == .block {
            archive_entry_set_rdevmajor(header, dev_t(entry.deviceMajor))
            archive_entry_set_rdevminor(header, dev_t(entry.deviceMinor))
        }
        archive_entry_set_size(header, entry.type == .regular ? la_int64_t(entry.size) : 0)
        for attribute in entry.xattrs {
            attribute.value.withUnsafeBytes { value in
                archive_entry_xattr_add_entry(header, attribute.name, value.baseAddress, value.count)
            }
        }
        guard archive_write_header(archive, header) == ARCHIVE_OK else {
            throw failure("cannot write the header of \(entry.displayPath)")
        }
        guard entry.type == .regular, entry.size > 0, let content else { return }
        var remaining = entry.size
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        while remaining > 0 {
            let count: Int
            do {
                count = try content.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer.prefix(Int(min(remaining, Int64(buffer.count))))))
            } catch {
                throw LayerWriteError(message: "cannot read \(entry.displayPath): \(error)", fileError: error)
            }
            guard count > 0 else {
                throw LayerWriteError(message: "\(entry.displayPath) became shorter while it was written; it changed under the export")
            }
            guard archive_write_data(archive, buffer.baseAddress, count) == count else {
                throw failure("cannot write the content of \(entry.displayPath)")
            }
            remaining -= Int64(count)
        }
    }

    /// Ends the tar (and the compressed stream) and hands out what is left.
    public func finish() throws(LayerWriteError) {
        guard !closed else { return }
        closed = true
        guard archive_write_close(archive) == ARCHIVE_OK else { throw failure("cannot end the layer") }
    }

    private func failure(_ what: String) -> LayerWriteError {
        if let error = output.sinkError {
            return LayerWriteError(message: "\(what): the layer could not be handed on: \(error)", sinkError: error)
        }
        let detail = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
        return LayerWriteError(message: "\(what): \(detail)")
    }

    private static func cString(_ bytes: [UInt8]) -> [CChar] {
        bytes.map { CChar(bitPattern: $0) } + [0]
    }
}

/// What went wrong writing a layer: libarchive failed, a file could not be read
/// (`fileError`), or the sink threw (`sinkError`).
public struct LayerWriteError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var fileError: SystemError?
    public var sinkError: (any Error)?

    public var description: String { message }
}

/// The output side of a ``LayerWriter``: libarchive's write callback.
private final class Output {
    let sink: LayerWriter.Sink
    var sinkError: (any Error)?

    init(sink: @escaping LayerWriter.Sink) {
        self.sink = sink
    }

    static func write(_ context: UnsafeMutableRawPointer?, _ buffer: UnsafeRawPointer?, _ length: Int) -> la_ssize_t {
        guard let context else { return -1 }
        let output = Unmanaged<Output>.fromOpaque(context).takeUnretainedValue()
        do {
            try output.sink(UnsafeRawBufferPointer(start: buffer, count: length))
            return la_ssize_t(length)
        } catch {
            output.sinkError = error
            return -1
        }
    }
}
