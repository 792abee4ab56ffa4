import Foundation
import GRDB
import Synchronization
import VeneerCore
import VeneerJSON

extension SnapshotStore {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE snapshots (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        key TEXT NOT NULL UNIQUE,
                        kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
                        parent_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
                        labels TEXT NOT NULL,
                        created INTEGER NOT NULL,
                        updated INTEGER NOT NULL,
                        size INTEGER,
                        inodes INTEGER
                    );
                    CREATE INDEX snapshots_parent ON snapshots(parent_id);
                    """)
        }
        migrator.registerMigration("v2-mounts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE mounts (
                        target TEXT PRIMARY KEY,
                        snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE RESTRICT,
                        readonly INTEGER NOT NULL,
                        mounts TEXT NOT NULL,
                        mounted_at INTEGER NOT NULL
                    );
                    CREATE INDEX mounts_snapshot ON mounts(snapshot_id);
                    """)
        }
        migrator.registerMigration("v3-mount-identity") { db in
            try db.execute(
                sql: """
                    ALTER TABLE mounts ADD COLUMN mount_id INTEGER;
                    ALTER TABLE mounts ADD COLUMN device TEXT;
                    """)
        }
        return migrator
    }
}
