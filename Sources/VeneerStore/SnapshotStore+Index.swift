import Foundation
import GRDB
import Synchronization
import VeneerCore
import VeneerJSON

extension SnapshotStore {
    struct Index {
        var byName: [SnapshotName: SnapshotRecord] = [:]
        var nameByID: [Int64: SnapshotName] = [:]
        /// Length of each snapshot's chain, itself included.
        var depthByID: [Int64: Int] = [:]
        var parentByID: [Int64: Int64] = [:]
        var mountsByTarget: [String: MountRecord] = [:]
        /// Records whose row is being written; they hold their target and count in the
        /// checks of later recordings, but are not listed.
        var mountsBeingRecorded: [String: MountRecord] = [:]

        mutating func insert(_ record: SnapshotRecord) {
            let name = record.name
            if let old = nameByID[record.id], old != name { byName[old] = nil }
            byName[name] = record
            nameByID[record.id] = name
            depthByID[record.id] = 1 + (record.parentID.flatMap { depthByID[$0] } ?? 0)
            parentByID[record.id] = record.parentID
        }

        mutating func remove(id: Int64) {
            if let name = nameByID.removeValue(forKey: id) { byName[name] = nil }
            depthByID[id] = nil
            parentByID[id] = nil
        }
    }
}
