import Testing
import VeneerCore

@Suite("Lifecycle rules")
struct LifecycleTests {
    @Test func prepareOnACommittedParentOrWithoutParent() throws {
        try Lifecycle.checkPrepare(key: "k", kind: .active, existing: nil, parent: nil)
        try Lifecycle.checkPrepare(key: "k", kind: .view, existing: nil, parent: nil)
        try Lifecycle.checkPrepare(key: "k", kind: .active, existing: nil, parent: (key: "p", kind: .committed))
        try Lifecycle.checkPrepare(key: "k", kind: .view, existing: nil, parent: (key: "p", kind: .committed))
    }

    @Test func prepareCommittedIsInvalid() {
        let error = #expect(throws: VeneerError.self) {
            try Lifecycle.checkPrepare(key: "k", kind: .committed, existing: nil, parent: nil)
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test(arguments: SnapshotKind.allCases)
    func prepareOverAnExistingKeyAlreadyExists(existing: SnapshotKind) {
        let error = #expect(throws: VeneerError.self) {
            try Lifecycle.checkPrepare(key: "k", kind: .active, existing: existing, parent: nil)
        }
        #expect(error?.code == .alreadyExists)
        #expect(error?.message.contains(existing.rawValue) == true)
    }

    @Test func prepareOnAMissingParentIsNotFound() {
        let error = #expect(throws: VeneerError.self) {
            try Lifecycle.checkPrepare(key: "k", kind: .active, existing: nil, parent: (key: "gone", kind: nil))
        }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("\"gone\"") == true)
    }

    @Test(arguments: [SnapshotKind.active, .view])
    func prepareOnAnUncommittedParentIsInvalid(parentKind: SnapshotKind) {
        let error = #expect(throws: VeneerError.self) {
            try Lifecycle.checkPrepare(key: "k", kind: .view, existing: nil, parent: (key: "p", kind: parentKind))
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test func commit() throws {
        try Lifecycle.checkCommit(name: "n", nameTaken: nil, key: "k", kind: .active)
        let taken = #expect(throws: VeneerError.self) {
            try Lifecycle.checkCommit(name: "n", nameTaken: .committed, key: "k", kind: .active)
        }
        #expect(taken?.code == .alreadyExists)
        let missing = #expect(throws: VeneerError.self) {
            try Lifecycle.checkCommit(name: "n", nameTaken: nil, key: "k", kind: nil)
        }
        #expect(missing?.code == .notFound)
        for kind in [SnapshotKind.view, .committed] {
            let wrong = #expect(throws: VeneerError.self) {
                try Lifecycle.checkCommit(name: "n", nameTaken: nil, key: "k", kind: kind)
            }
            #expect(wrong?.code == .failedPrecondition)
        }
    }

    @Test func remove() throws {
        try Lifecycle.checkRemove(key: "k", kind: .committed, childCount: 0, someChildren: [])
        let missing = #expect(throws: VeneerError.self) {
            try Lifecycle.checkRemove(key: "k", kind: nil, childCount: 0, someChildren: [])
        }
        #expect(missing?.code == .notFound)
        let busy = #expect(throws: VeneerError.self) {
            try Lifecycle.checkRemove(key: "k", kind: .committed, childCount: 5, someChildren: ["a", "b", "c", "d"])
        }
        #expect(busy?.code == .failedPrecondition)
        #expect(busy?.message.contains("\"a\", \"b\", \"c\" and 2 more") == true, "\(String(describing: busy))")
        #expect(Lifecycle.notFound("k").code == .notFound)
    }
}
