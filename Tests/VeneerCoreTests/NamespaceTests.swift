import Testing
import VeneerCore

@Suite("Namespace names")
struct NamespaceNameTests {
    @Test func namespaceNamesFollowContainerdsRule() throws {
        for good in ["default", "containerd", "k8s.io", "a", "a-b_c.d", String(repeating: "x", count: 76)] {
            #expect(try Namespace(validating: good).name == good)
        }
        for bad in ["", ".a", "a.", "a..b", "a/b", "a b", "ä", "a-", String(repeating: "x", count: 77)] {
            #expect(throws: VeneerError.self) { try Namespace(validating: bad) }
        }
    }
}
