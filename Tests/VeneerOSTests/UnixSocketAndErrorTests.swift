import Testing
import VeneerOS
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@Suite("UnixSocket")
struct UnixSocketTests {
    @Test func listeningSocketIsListening() throws {
        let tmp = try TemporaryDirectory()
        let path = tmp("s.sock")
        let fd = try Fixture.boundSocket(path, listening: true)
        defer { close(fd) }
        #expect(UnixSocket.isListening(path))
        // Asking twice works: the probe's connection does not use the socket up.
        #expect(UnixSocket.isListening(path))
    }

    @Test func staleSocketFileIsNotListening() throws {
        let tmp = try TemporaryDirectory()
        let path = tmp("stale.sock")
        let fd = try Fixture.boundSocket(path, listening: true)
        close(fd)
        // The file stays behind after its owner closed it, like after a crash.
        #expect(FileSystem.entryType(path) == .other)
        #expect(!UnixSocket.isListening(path))
    }

    @Test func boundButNotListeningIsNotListening() throws {
        let tmp = try TemporaryDirectory()
        let path = tmp("bound.sock")
        let fd = try Fixture.boundSocket(path, listening: false)
        defer { close(fd) }
        #expect(!UnixSocket.isListening(path))
    }

    @Test func missingPathsAndOtherFilesAreNotListening() throws {
        let tmp = try TemporaryDirectory()
        #expect(!UnixSocket.isListening(tmp("missing.sock")))
        try Fixture.writeFile(tmp("file"), "x")
        #expect(!UnixSocket.isListening(tmp("file")))
        #expect(!UnixSocket.isListening(tmp.path))
    }

    @Test func overlongPathIsNotListening() throws {
        let tmp = try TemporaryDirectory()
        let path = tmp("s.sock")
        let fd = try Fixture.boundSocket(path, listening: true)
        defer { close(fd) }
        // The same socket named through a path longer than sun_path allows.
        let padding = String(repeating: "./", count: (UnixSocket.maxPathBytes - tmp.path.utf8.count) / 2 + 1)
        let long = tmp.path + "/" + padding + "s.sock"
        #expect(long.utf8.count > UnixSocket.maxPathBytes)
        #expect(FileSystem.entryType(long) == .other)
        #expect(!UnixSocket.isListening(long))
    }
}

@Suite("SystemError")
struct SystemErrorTests {
    @Test func messageNamesOperationPathAndErrnoText() {
        let error = SystemError("mkdir", "/var/lib/veneer/x", errno: ENOENT)
        #expect(error.reason == "No such file or directory")
        #expect(error.description == "mkdir /var/lib/veneer/x: No such file or directory (errno \(ENOENT))")
        #expect("\(error)" == error.description)
    }

    @Test func classification() {
        #expect(SystemError("open", "/a", errno: ENOENT).isNotFound)
        #expect(!SystemError("open", "/a", errno: EACCES).isNotFound)
        #expect(SystemError("write", "/a", errno: ENOSPC).isNoSpace)
        #expect(SystemError("write", "/a", errno: EDQUOT).isNoSpace)
        #expect(!SystemError("write", "/a", errno: EIO).isNoSpace)
        #expect(SystemError("mkdir", "/a", errno: EEXIST).exists)
        #expect(!SystemError("mkdir", "/a", errno: ENOENT).exists)
        #expect(SystemError("rename", "/a", errno: EXDEV).reason == "Invalid cross-device link")
    }

    @Test func errorsFromRealCallsCarryTheirErrno() throws {
        let tmp = try TemporaryDirectory()
        try Fixture.writeFile(tmp("file"), "x")
        let error = #expect(throws: SystemError.self) { try FileSystem.makeDirectory(tmp("file/sub")) }
        #expect(error?.errno == ENOTDIR)
        #expect(error?.description == "mkdir \(tmp("file/sub")): Not a directory (errno \(ENOTDIR))")
    }
}
