import Testing
import VeneerCore

@Suite("Layer entry names (image-spec layer.md)")
struct LayerNameTests {
    static func parse(_ name: String, index: Int = 0) throws -> LayerName {
        try LayerName.parse(Array(name.utf8), index: index)
    }

    static func components(_ path: String) -> [[UInt8]] {
        path.split(separator: "/").map { Array($0.utf8) }
    }

    @Test(
        "paths lose a leading slash, . components and repeated slashes",
        arguments: [
            ("etc/passwd", "etc/passwd"), ("/etc/passwd", "etc/passwd"), ("./etc/passwd", "etc/passwd"),
            ("etc//passwd", "etc/passwd"), ("etc/./passwd/", "etc/passwd"), ("usr/lib/", "usr/lib"),
            ("a/.wh/b", "a/.wh/b"), ("a/x.wh.y", "a/x.wh.y"), ("..a/b..", "..a/b.."),
        ])
    func paths(_ name: String, _ expected: String) throws {
        #expect(try Self.parse(name) == .path(Self.components(expected)))
    }

    @Test("the root is the root", arguments: [".", "./", "/", "//", "./."])
    func root(_ name: String) throws {
        #expect(try Self.parse(name) == .root)
    }

    @Test("whiteouts and opaque markers, at the top and deeper")
    func whiteouts() throws {
        #expect(try Self.parse("etc/.wh.passwd") == .whiteout(directory: Self.components("etc"), name: Array("passwd".utf8)))
        #expect(try Self.parse(".wh.etc") == .whiteout(directory: [], name: Array("etc".utf8)))
        #expect(try Self.parse("./a/b/.wh..hidden") == .whiteout(directory: Self.components("a/b"), name: Array(".hidden".utf8)))
        #expect(try Self.parse("var/.wh..wh..opq") == .opaque(directory: Self.components("var")))
        #expect(try Self.parse(".wh..wh..opq") == .opaque(directory: []))
    }

    @Test(
        "names that climb, reserved whiteout names and paths through whiteouts are refused with the entry's index",
        arguments: [
            ("../etc/passwd", "\"..\""), ("a/../../b", "\"..\""), ("/..", "\"..\""), ("a/..", "\"..\""),
            ("etc/.wh.", "bare"), (".wh.", "bare"), ("a/.wh..", "\".\" or \"..\""), ("a/.wh...", "\".\" or \"..\""),
            ("a/.wh..wh.x", "reserved"), ("a/.wh..wh..opq.x", "reserved"),
            (".wh.a/b", "whiteout name"), ("x/.wh..wh..opq/y", "whiteout name"),
        ])
    func refused(_ name: String, _ reason: String) {
        let error = #expect(throws: VeneerError.self) { try Self.parse(name, index: 41) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("layer entry 41") == true, "\(String(describing: error))")
        #expect(error?.message.contains(reason) == true, "\(String(describing: error))")
    }

    @Test("components up to 255 bytes pass, longer ones are refused; long paths of short components pass")
    func lengths() throws {
        let longest = String(repeating: "n", count: 255)
        #expect(try Self.parse("a/" + longest) == .path(Self.components("a/" + longest)))
        let error = #expect(throws: VeneerError.self) { try Self.parse("a/" + longest + "n") }
        #expect(error?.message.contains("256 bytes") == true)
        let deep = Array(repeating: "d", count: 2048).joined(separator: "/")
        #expect(try Self.parse(deep) == .path(Self.components(deep)))
    }

    @Test("names that are not UTF-8 keep their bytes")
    func rawBytes() throws {
        let name: [UInt8] = [0x61, 0x2F, 0xFF, 0xFE]
        #expect(try LayerName.parse(name, index: 0) == .path([[0x61], [0xFF, 0xFE]]))
    }
}
