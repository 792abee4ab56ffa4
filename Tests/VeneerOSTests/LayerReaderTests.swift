import Foundation
import Testing
import VeneerCore
import VeneerOS
import VeneerTestSupport

/// Layers made by Python's tarfile (PAX headers, xattrs, nanosecond times, devices) and
/// compressed by the gzip and zstd programs, read back through ``LayerReader``.
@Suite("Reading OCI layers with libarchive")
struct LayerReaderTests {
    /// Writes `layer.tar` in `dir` with a file, a directory, a symlink, a hard link, a fifo,
    /// a character device, an xattr and a nanosecond mtime; returns its path.
    static func makeTar(in dir: String) throws -> String {
        let script = #"""
            import io, sys, tarfile
            out = sys.argv[1]
            with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
                d = tarfile.TarInfo("etc"); d.type = tarfile.DIRTYPE; d.mode = 0o755; d.mtime = 1000
                tar.addfile(d)
                data = b"root:x:0:0::/root:/bin/sh\n" * 1000
                f = tarfile.TarInfo("etc/passwd"); f.size = len(data); f.mode = 0o4755; f.uid = 7; f.gid = 8
                f.pax_headers = {"mtime": "1700000000.123456789", "SCHILY.xattr.user.note": "hello"}
                tar.addfile(f, io.BytesIO(data))
                l = tarfile.TarInfo("etc/link"); l.type = tarfile.SYMTYPE; l.linkname = "/etc/passwd"
                tar.addfile(l)
                h = tarfile.TarInfo("etc/hard"); h.type = tarfile.LNKTYPE; h.linkname = "etc/passwd"
                tar.addfile(h)
                p = tarfile.TarInfo("etc/pipe"); p.type = tarfile.FIFOTYPE
                tar.addfile(p)
                c = tarfile.TarInfo("dev-null"); c.type = tarfile.CHRTYPE; c.devmajor = 1; c.devminor = 3
                tar.addfile(c)
                # Large and little compressible: decompression and reading of the source interleave.
                import random
                r = random.Random(7)
                big = bytes(r.getrandbits(8) for _ in range(300000))
                b = tarfile.TarInfo("big"); b.size = len(big)
                tar.addfile(b, io.BytesIO(big))
                t = tarfile.TarInfo("tail"); t.size = 4
                tar.addfile(t, io.BytesIO(b"tail"))
            """#
        let path = dir + "/layer.tar"
        let made = try ProcessRun.run("/usr/bin/python3", ["-c", script, path])
        guard made.succeeded else { throw TestFailure("python3 tarfile: \(made)") }
        return path
    }

    static func compress(_ path: String, _ compression: LayerCompression) throws -> String {
        switch compression {
        case .none: return path
        case .gzip:
            let made = try ProcessRun.run("/bin/gzip", ["-k", "-f", path])
            guard made.succeeded else { throw TestFailure("gzip: \(made)") }
            return path + ".gz"
        case .zstd:
            let made = try ProcessRun.run("/usr/bin/zstd", ["-q", "-f", "-k", path, "-o", path + ".zst"])
            guard made.succeeded else { throw TestFailure("zstd: \(made)") }
            return path + ".zst"
        }
    }

    /// A source that gives `bytes` in chunks of `chunk` bytes.
    static func source(_ bytes: [UInt8], chunk: Int = 1000) -> LayerReader.Source {
        var offset = 0
        return {
            let end = min(offset + chunk, bytes.count)
            defer { offset = end }
            return Array(bytes[offset..<end])
        }
    }

    struct Read {
        var entries: [LayerEntry] = []
        var contents: [String: [UInt8]] = [:]
        var compressed: [UInt8] = []
        var tar: [UInt8] = []
    }

    static func readAll(_ bytes: [UInt8], _ compression: LayerCompression, chunk: Int = 1000) throws -> Read {
        var compressed: [UInt8] = []
        var tar: [UInt8] = []
        var read = Read()
        do {
            let reader = try LayerReader(
                compression: compression, source: source(bytes, chunk: chunk),
                compressed: { compressed.append(contentsOf: $0) }, tar: { tar.append(contentsOf: $0) })
            while let entry = try reader.next() {
                read.entries.append(entry)
                var content: [UInt8] = []
                try reader.readContent { offset, block in
                    #expect(Int(offset) == content.count)
                    content.append(contentsOf: block)
                }
                read.contents[entry.displayPath] = content
            }
            try reader.drain()
            #expect(reader.entries == read.entries.count)
        }
        read.compressed = compressed
        read.tar = tar
        return read
    }

    @Test("every kind of entry comes out as the tar has it, and the observers see all the bytes", arguments: LayerCompression.allCases)
    func entriesAndBytes(_ compression: LayerCompression) throws {
        let tmp = try TemporaryDirectory(prefix: "vn-layer")
        defer { tmp.remove() }
        let tarPath = try Self.makeTar(in: tmp.path)
        let tarBytes = Array(try Data(contentsOf: URL(fileURLWithPath: tarPath)))
        let input = Array(try Data(contentsOf: URL(fileURLWithPath: try Self.compress(tarPath, compression))))
        // Chunks smaller than a tar block and larger than the reader's own block.
        for chunk in [100, 1000, 200_000] {
            let read = try Self.readAll(input, compression, chunk: chunk)
            // (Compared as counts first: a failed comparison of the arrays prints them whole.)
            #expect(read.compressed.count == input.count && read.compressed == input)
            #expect(read.tar.count == tarBytes.count && read.tar == tarBytes)
            #expect(read.entries.map(\.displayPath) == ["etc/", "etc/passwd", "etc/link", "etc/hard", "etc/pipe", "dev-null", "big", "tail"])
            #expect(read.entries.map(\.index) == Array(0..<8))
            #expect(read.contents["big"]?.count == 300_000)
            #expect(read.contents["tail"] == Array("tail".utf8))
            let types: [LayerEntry.FileType] = [.directory, .regular, .symlink, .hardlink, .fifo, .character, .regular, .regular]
            #expect(read.entries.map(\.type) == types)
            let passwd = read.entries[1]
            #expect(passwd.permissions == 0o4755 && passwd.uid == 7 && passwd.gid == 8)
            #expect(passwd.modified == Timestamp(nanosecondsSinceEpoch: 1_700_000_000_123_456_789))
            #expect(passwd.size == 26_000)
            #expect(passwd.xattrs == [.init(name: "user.note", value: Array("hello".utf8))])
            #expect(read.contents["etc/passwd"] == Array(String(repeating: "root:x:0:0::/root:/bin/sh\n", count: 1000).utf8))
            #expect(read.entries[2].linkTarget == Array("/etc/passwd".utf8))
            #expect(read.entries[3].linkTarget == Array("etc/passwd".utf8))
            #expect(read.entries[5].deviceMajor == 1 && read.entries[5].deviceMinor == 3)
            #expect(read.entries[0].modified == Timestamp(nanosecondsSinceEpoch: 1_000_000_000_000))
        }
    }

    @Test("names and link targets that are not ASCII keep their bytes, whatever the locale")
    func nonASCIINames() throws {
        let tmp = try TemporaryDirectory(prefix: "vn-layer")
        defer { tmp.remove() }
        let script = #"""
            import io, sys, tarfile
            with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as tar:
                f = tarfile.TarInfo("caf\u00e9/\u00fcber.txt"); f.size = 1
                tar.addfile(f, io.BytesIO(b"x"))
                l = tarfile.TarInfo("link"); l.type = tarfile.SYMTYPE; l.linkname = "caf\u00e9/\u00fcber.txt"
                tar.addfile(l)
            """#
        let made = try ProcessRun.run("/usr/bin/python3", ["-c", script, tmp("u.tar")])
        try #require(made.succeeded, "\(made)")
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: tmp("u.tar"))))
        let read = try Self.readAll(bytes, .none)
        #expect(read.entries.map(\.path) == [Array("café/über.txt".utf8), Array("link".utf8)])
        #expect(read.entries.last?.linkTarget == Array("café/über.txt".utf8))
    }

    @Test("bytes after the compressed stream are read too, so the digest covers them")
    func trailingBytesAreDrained() throws {
        let tmp = try TemporaryDirectory(prefix: "vn-layer")
        defer { tmp.remove() }
        let gz = try Self.compress(try Self.makeTar(in: tmp.path), .gzip)
        let input = Array(try Data(contentsOf: URL(fileURLWithPath: gz))) + Array(repeating: 0, count: 5000)
        let read = try Self.readAll(input, .gzip)
        #expect(read.compressed.count == input.count && read.compressed == input)
        #expect(read.entries.count == 8)
    }

    @Test("corrupt, cut and mislabelled streams fail with a message, never a crash", arguments: LayerCompression.allCases)
    func brokenStreams(_ compression: LayerCompression) throws {
        let tmp = try TemporaryDirectory(prefix: "vn-layer")
        defer { tmp.remove() }
        let input = Array(try Data(contentsOf: URL(fileURLWithPath: try Self.compress(try Self.makeTar(in: tmp.path), compression))))
        var corrupt = input
        // Without compression, the headers (a corrupt file content is no error of the tar).
        let damaged = compression == .none ? stride(from: 100, to: 1500, by: 7) : stride(from: input.count / 4, to: input.count * 3 / 4, by: 7)
        for i in damaged { corrupt[i] ^= 0x5a }
        let cut = Array(input.prefix(input.count / 2))
        let garbage = Array(repeating: UInt8(0x42), count: 4096)
        // Cut inside the compressed stream's own end (gzip's trailer, zstd's last block).
        let endCut = Array(input.dropLast(3))
        var cases = [("corrupt", corrupt), ("cut", cut), ("garbage", garbage)]
        if compression != .none { cases.append(("end cut", endCut)) }
        for (name, broken) in cases {
            #expect(throws: LayerReadError.self, "\(name)") { _ = try Self.readAll(broken, compression).entries.count }
        }
        // A gzip stream declared as zstd and the other way round.
        if compression != .none {
            let other: LayerCompression = compression == .gzip ? .zstd : .gzip
            #expect(throws: LayerReadError.self) { try Self.readAll(input, other) }
        }
    }

    @Test("a source that fails ends the read with its own error")
    func sourceFailure() throws {
        struct ClientGone: Error {}
        let tmp = try TemporaryDirectory(prefix: "vn-layer")
        defer { tmp.remove() }
        let input = Array(try Data(contentsOf: URL(fileURLWithPath: try Self.compress(try Self.makeTar(in: tmp.path), .gzip))))
        var given = 0
        let source: LayerReader.Source = {
            if given >= input.count / 2 { throw ClientGone() }
            let chunk = Array(input[given..<min(given + 512, input.count)])
            given += chunk.count
            return chunk
        }
        do {
            let reader = try LayerReader(compression: .gzip, source: source, compressed: { _ in }, tar: { _ in })
            while try reader.next() != nil { try reader.readContent { _, _ in } }
            try reader.drain()
            Issue.record("the read went through a source that failed")
        } catch let error as LayerReadError {
            #expect(error.sourceError is ClientGone, "\(error)")
        }
    }
}
