import Foundation
import GRDB
import Synchronization
import VeneerCore
import VeneerJSON

extension SnapshotStore {
    struct Index {
        var byKey: [String: SnapshotRecord] = [:]
        var keyByID: [Int64: String] = [:]
        /// Length of each snapshot's chain, itself included.
        var depthByID: [Int64: Int] = [:]
        var parentByID: [Int64: Int64] = [:]
        var mountsByTarget: [String: MountRecord] = [:]
        /// Records whose row is being written; they hold their target and count in the
        /// checks of later recordings, but are not listed.
        var mountsBeingRecorded: [String: MountRecord] = [:]

        mutating func insert(_ record: SnapshotRecord) {
            if let old = keyByID[record.id], old != record.key { byKey[old] = nil }
            byKey[record.key] = record
            keyByID[record.id] = record.key
            depthByID[record.id] = 1 + (record.parentID.flatMap { depthByID[$0] } ?? 0)
            parentByID[record.id] = record.parentID
        }

        mutating func remove(id: Int64) {
            if let key = keyByID.removeValue(forKey: id) { byKey[key] = nil }
            depthByID[id] = nil
            parentByID[id] = nil
        }
    }
}
