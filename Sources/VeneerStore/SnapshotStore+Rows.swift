import Foundation
import GRDB
import Synchronization
import VeneerCore
import VeneerJSON

// Reading and writing rows of the snapshots table.

extension SnapshotStore {
    /// Targets where the snapshot `id` is mounted, for refusing commit and remove.
    static func mountTargets(_ db: Database, snapshotID: Int64) throws -> [String] {
        try String.fetchAll(
            db.cachedStatement(sql: "SELECT target FROM mounts WHERE snapshot_id = ? ORDER BY target"),
            arguments: [snapshotID])
    }

    static func refuseIfMounted(_ db: Database, _ record: SnapshotRecord, doing what: String) throws {
        let targets = try mountTargets(db, snapshotID: record.id)
        if !targets.isEmpty {
            throw VeneerError.failedPrecondition(
                "snapshot \(quoted(record.key)) is mounted at \(targets.joined(separator: ", ")); unmount it before \(what)")
        }
    }

    static let selectColumns = """
        SELECT s.id, s.key, s.kind, s.parent_id, p.key AS parent_key, s.labels, s.created, s.updated, s.size, s.inodes,
            s.namespace
        FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id
        """

    static func record(_ row: Row) throws -> SnapshotRecord {
        let kindText: String = row[2]
        guard let kind = SnapshotKind(rawValue: kindText) else {
            throw VeneerError.internal("database holds unknown snapshot kind \(kindText)")
        }
        let labelsText: String = row[5]
        let labels: [String: String]
        do {
            labels = try StrictJSON.stringMap(Array(labelsText.utf8))
        } catch {
            throw VeneerError.internal("database holds labels that are not a JSON object of strings: \(error)", cause: error)
        }
        let size: Int64? = row[8]
        let inodes: Int64? = row[9]
        return SnapshotRecord(
            id: row[0], namespace: try namespace(row[10]), key: row[1], kind: kind, parentID: row[3], parentKey: row[4], labels: labels,
            created: Timestamp(nanosecondsSinceEpoch: row[6]),
            updated: Timestamp(nanosecondsSinceEpoch: row[7]),
            usage: size.flatMap { s in inodes.map { Usage(size: s, inodes: $0) } })
    }

    static func namespace(_ text: String) throws -> Namespace {
        do {
            return try Namespace(validating: text)
        } catch {
            throw VeneerError.internal("database holds a snapshot in namespace \(quoted(text)), which is not a valid name")
        }
    }

    static func encodeLabels(_ labels: [String: String]) -> String {
        String(decoding: JSONWriter.stringMap(labels), as: UTF8.self)
    }

    static func fetch(_ db: Database, _ name: SnapshotName) throws -> SnapshotRecord? {
        try Row.fetchOne(
            db.cachedStatement(sql: selectColumns + " WHERE s.namespace = ? AND s.key = ?"),
            arguments: [name.namespace.name, name.key]
        ).map(record)
    }

    static func fetchKind(_ db: Database, _ name: SnapshotName) throws -> (id: Int64, kind: SnapshotKind)? {
        guard let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT id, kind FROM snapshots WHERE namespace = ? AND key = ?"),
            arguments: [name.namespace.name, name.key])
        else { return nil }
        let kindText: String = row[1]
        guard let kind = SnapshotKind(rawValue: kindText) else {
            throw VeneerError.internal("database holds unknown snapshot kind \(kindText)")
        }
        return (row[0], kind)
    }
}
