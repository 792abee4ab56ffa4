import Testing
import VeneerCore

@Suite("Rules: keys")
struct KeyRulesTests {
    @Test func emptyKeyIsRejected() {
        let error = #expect(throws: VeneerError.self) { try Rules.validateKey("") }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("must not be empty") == true)
    }

    @Test func oneByteAndLimitAreAccepted() throws {
        try Rules.validateKey("a")
        try Rules.validateKey(String(repeating: "k", count: 4096))
        #expect(Rules.maxKeyBytes == 4096)
    }

    @Test func overLimitIsRejectedWithItsSize() {
        let error = #expect(throws: VeneerError.self) {
            try Rules.validateKey(String(repeating: "k", count: 4097))
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("4097 bytes") == true, "\(String(describing: error))")
    }

    @Test func limitCountsUTF8BytesNotCharacters() throws {
        // "é" is 2 bytes, "€" 3 bytes, "🐳" 4 bytes.
        try Rules.validateKey(String(repeating: "é", count: 2048))
        try Rules.validateKey(String(repeating: "🐳", count: 1024))
        try Rules.validateKey(String(repeating: "a", count: 4093) + "€")
        #expect(throws: VeneerError.self) { try Rules.validateKey(String(repeating: "a", count: 4094) + "€") }
        #expect(throws: VeneerError.self) { try Rules.validateKey(String(repeating: "é", count: 2048) + "a") }
        // 1025 characters but 4100 bytes.
        let error = #expect(throws: VeneerError.self) { try Rules.validateKey(String(repeating: "🐳", count: 1025)) }
        #expect(error?.message.contains("4100 bytes") == true, "\(String(describing: error))")
    }

    @Test func nulIsRejectedAnywhere() {
        for key in ["\u{0}", "a\u{0}", "\u{0}b", "a\u{0}b"] {
            let error = #expect(throws: VeneerError.self) { try Rules.validateKey(key) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("NUL") == true)
        }
    }

    @Test func oddButLegalKeys() throws {
        for key in ["/", "..", ".", "a/b/../c", "with space", "tab\there", "line\nbreak", "%2F", "🐳", "\u{7F}"] {
            try Rules.validateKey(key)
        }
    }

    @Test func roleNamesTheField() {
        let error = #expect(throws: VeneerError.self) { try Rules.validateKey("", role: "parent") }
        #expect(error?.message.hasPrefix("parent") == true, "\(String(describing: error))")
    }
}

@Suite("Rules: labels")
struct LabelRulesTests {
    @Test func sizeLimitCountsNamePlusValue() throws {
        #expect(Rules.maxLabelBytes == 4096)
        try Rules.validateLabel(name: "n", value: String(repeating: "v", count: 4095))
        try Rules.validateLabel(name: String(repeating: "n", count: 4096), value: "")
        try Rules.validateLabel(name: "é", value: String(repeating: "v", count: 4094))
        let error = #expect(throws: VeneerError.self) {
            try Rules.validateLabel(name: "n", value: String(repeating: "v", count: 4096))
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("4097 bytes") == true, "\(String(describing: error))")
        #expect(throws: VeneerError.self) {
            try Rules.validateLabel(name: "é", value: String(repeating: "v", count: 4095))
        }
    }

    @Test func longNamesAreShortenedInMessages() {
        let name = String(repeating: "n", count: 5000)
        let error = #expect(throws: VeneerError.self) { try Rules.validateLabel(name: name, value: "") }
        guard let error else { return }
        #expect(error.message.utf8.count < 300, "\(error.message)")
    }

    @Test func emptyNameAndNulAreRejected() {
        #expect(throws: VeneerError.self) { try Rules.validateLabel(name: "", value: "x") }
        #expect(throws: VeneerError.self) { try Rules.validateLabel(name: "a\u{0}", value: "x") }
        #expect(throws: VeneerError.self) { try Rules.validateLabel(name: "a", value: "x\u{0}") }
    }

    @Test func validateLabelsChecksEveryEntry() throws {
        try Rules.validateLabels([:])
        try Rules.validateLabels(["a": "1", "b": "", "containerd.io/gc.root": "2024"])
        #expect(throws: VeneerError.self) { try Rules.validateLabels(["a": "1", "": "2"]) }
        #expect(throws: VeneerError.self) {
            try Rules.validateLabels(["a": "1", "big": String(repeating: "x", count: 4094)])
        }
    }
}

@Suite("Rules: label updates")
struct LabelUpdateTests {
    let current = ["keep": "1", "change": "old", "drop": "x"]

    @Test func noFieldpathsReplacesAllLabels() throws {
        let result = try Rules.updatedLabels(current: current, new: ["change": "new", "add": "a"], fieldpaths: [])
        #expect(result == ["change": "new", "add": "a"])
        #expect(try Rules.updatedLabels(current: current, new: [:], fieldpaths: []) == [:])
    }

    @Test func labelsFieldpathReplacesAllLabels() throws {
        let result = try Rules.updatedLabels(current: current, new: ["only": "this"], fieldpaths: ["labels"])
        #expect(result == ["only": "this"])
    }

    @Test func replacingDropsEmptyValues() throws {
        #expect(try Rules.updatedLabels(current: current, new: ["a": "", "b": "2"], fieldpaths: []) == ["b": "2"])
        #expect(try Rules.updatedLabels(current: current, new: ["a": ""], fieldpaths: ["labels"]) == [:])
    }

    @Test func labelFieldpathSetsOneLabel() throws {
        let result = try Rules.updatedLabels(
            current: current, new: ["change": "new", "ignored": "z"], fieldpaths: ["labels.change"])
        #expect(result == ["keep": "1", "change": "new", "drop": "x"])
        let added = try Rules.updatedLabels(current: current, new: ["add": "a"], fieldpaths: ["labels.add"])
        #expect(added == ["keep": "1", "change": "old", "drop": "x", "add": "a"])
    }

    @Test func labelFieldpathWithDotsInTheName() throws {
        let result = try Rules.updatedLabels(
            current: [:], new: ["containerd.io/gc.ref.snapshot": "k"],
            fieldpaths: ["labels.containerd.io/gc.ref.snapshot"])
        #expect(result == ["containerd.io/gc.ref.snapshot": "k"])
    }

    @Test func emptyOrMissingValueDeletesTheLabel() throws {
        #expect(
            try Rules.updatedLabels(current: current, new: ["drop": ""], fieldpaths: ["labels.drop"])
                == ["keep": "1", "change": "old"])
        #expect(
            try Rules.updatedLabels(current: current, new: [:], fieldpaths: ["labels.drop"])
                == ["keep": "1", "change": "old"])
        // Deleting a label that is not there is not an error.
        #expect(try Rules.updatedLabels(current: current, new: [:], fieldpaths: ["labels.absent"]) == current)
    }

    @Test func severalFieldpathsApplyInOrder() throws {
        let result = try Rules.updatedLabels(
            current: current, new: ["change": "new", "add": "a"],
            fieldpaths: ["labels.change", "labels.drop", "labels.add"])
        #expect(result == ["keep": "1", "change": "new", "add": "a"])
        // "labels" after a single-label path replaces everything.
        let replaced = try Rules.updatedLabels(
            current: current, new: ["add": "a"], fieldpaths: ["labels.keep", "labels"])
        #expect(replaced == ["add": "a"])
    }

    @Test(arguments: ["parent", "kind", "name", "key", "created", "labelsX", "Labels.a", ""])
    func otherFieldpathsAreRejected(path: String) {
        let error = #expect(throws: VeneerError.self) {
            try Rules.updatedLabels(current: current, new: ["a": "1"], fieldpaths: [path])
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(quoted(path)) == true, "\(String(describing: error))")
    }

    @Test func labelsDotWithoutNameIsRejected() {
        let error = #expect(throws: VeneerError.self) {
            try Rules.updatedLabels(current: current, new: [:], fieldpaths: ["labels."])
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test func rejectedPathAfterValidOnesStillFails() {
        #expect(throws: VeneerError.self) {
            try Rules.updatedLabels(current: current, new: ["add": "a"], fieldpaths: ["labels.add", "parent"])
        }
    }

    @Test func newLabelsAreValidated() {
        #expect(throws: VeneerError.self) {
            try Rules.updatedLabels(
                current: [:], new: ["big": String(repeating: "x", count: 4094)], fieldpaths: ["labels.big"])
        }
        #expect(throws: VeneerError.self) {
            try Rules.updatedLabels(current: [:], new: ["a": "x\u{0}"], fieldpaths: [])
        }
    }
}

@Suite("Rules: total size of a snapshot's labels")
struct LabelTotalTests {
    /// `count` labels of exactly `Rules.maxLabelBytes` bytes each, named `l00`, `l01`, ….
    static func fullLabels(_ count: Int) -> [String: String] {
        var labels: [String: String] = [:]
        for index in 0..<count {
            let name = "l" + (index < 10 ? "0" : "") + String(index)
            labels[name] = String(repeating: "v", count: Rules.maxLabelBytes - name.utf8.count)
        }
        return labels
    }

    @Test func limitIs64KiBOfNamesAndValues() throws {
        #expect(Rules.maxTotalLabelBytes == 65536)
        let full = Self.fullLabels(16)
        try Rules.validateLabels(full)
        var over = full
        over["x"] = ""
        let error = #expect(throws: VeneerError.self) { try Rules.validateLabels(over) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("65537 bytes") == true, "\(String(describing: error))")
        #expect(error?.message.contains("65536") == true, "\(String(describing: error))")
    }

    @Test func multiByteCharactersCountAsTheirUTF8Bytes() throws {
        // 16 labels of 3 + 2 × 2046 = 4095 bytes: 65520 in all, 16 bytes left.
        var labels: [String: String] = [:]
        for index in 10..<26 {
            labels["n" + String(index)] = String(repeating: "é", count: 2046)
        }
        // "x" and seven é (two bytes each) fit: 65535 bytes, far fewer characters.
        labels["x"] = String(repeating: "é", count: 7)
        try Rules.validateLabels(labels)
        labels["x"] = String(repeating: "é", count: 8)
        #expect(throws: VeneerError.self) { try Rules.validateLabels(labels) }
    }

    @Test func anUpdateIsCheckedOnTheLabelsItLeaves() throws {
        let current = Self.fullLabels(16)
        // Adding one more label goes over, whichever way it is added.
        #expect(throws: VeneerError.self) {
            try Rules.updatedLabels(current: current, new: ["x": "y"], fieldpaths: ["labels.x"])
        }
        // Replacing one label with a shorter one, or all labels at once, stays within.
        let shorter = try Rules.updatedLabels(current: current, new: ["l00": "short"], fieldpaths: ["labels.l00"])
        #expect(shorter["l00"] == "short")
        var grown = shorter
        grown["x"] = "y"
        #expect(try Rules.updatedLabels(current: shorter, new: ["x": "y"], fieldpaths: ["labels.x"]) == grown)
        #expect(try Rules.updatedLabels(current: current, new: ["a": "b"], fieldpaths: []) == ["a": "b"])
        // Deleting labels of a snapshot over the limit (set before it existed) is allowed.
        var legacy = current
        legacy["x"] = "y"
        let trimmed = try Rules.updatedLabels(current: legacy, new: [:], fieldpaths: ["labels.x"])
        #expect(trimmed == current)
    }
}

@Suite struct FieldPathBytesTests {
    @Test func aLabelNameStartingWithACombiningMarkIsAFieldPath() throws {
        let name = "\u{1F3FB}x"
        let result = try Rules.updatedLabels(current: ["a": "1"], new: [name: "v"], fieldpaths: ["labels." + name])
        #expect(result == ["a": "1", name: "v"])
    }
}
