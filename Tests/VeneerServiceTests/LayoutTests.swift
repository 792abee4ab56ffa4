import Testing
import VeneerService

@Suite("Layout")
struct LayoutTests {
    @Test(
        "a layer's fs path written byte by byte equals the one built from its parts",
        arguments: ["/var/lib/veneer", "/tmp/a root with spaces/ünïcödé", "/"])
    func fsDirectory(root: String) {
        let layout = Layout(root: root)
        for id: Int64 in [0, 1, 9, 10, 99, 100, 101, 65_536, 123_456_789, Int64.max, -1, Int64.min] {
            #expect(layout.fsDirectory(id) == layout.directories(id).fs)
            #expect(layout.fsDirectory(id) == root + "/snapshots/\(id)/fs")
        }
    }
}
