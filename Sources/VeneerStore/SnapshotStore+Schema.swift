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
        // Namespaces: keys become unique per namespace, and what was there before goes to
        // the default one. SQLite cannot change a UNIQUE constraint in place, so the table
        // is made again (foreign keys are off while a migration runs, and checked before
        // it commits). Ids are kept, and so is the AUTOINCREMENT counter: ids name
        // directories and are never used twice.
        migrator.registerMigration("v4-namespaces") { db in
            try db.execute(
                sql: """
                    CREATE TABLE snapshots_new (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        namespace TEXT NOT NULL,
                        key TEXT NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
                        parent_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
                        labels TEXT NOT NULL,
                        created INTEGER NOT NULL,
                        updated INTEGER NOT NULL,
                        size INTEGER,
                        inodes INTEGER,
                        UNIQUE (namespace, key)
                    );
                    INSERT INTO snapshots_new (id, namespace, key, kind, parent_id, labels, created, updated, size, inodes)
                        SELECT id, 'default', key, kind, parent_id, labels, created, updated, size, inodes
                        FROM snapshots ORDER BY id;
                    DELETE FROM sqlite_sequence WHERE name = 'snapshots_new';
                    INSERT INTO sqlite_sequence (name, seq)
                        SELECT 'snapshots_new', seq FROM sqlite_sequence WHERE name = 'snapshots';
                    DROP TABLE snapshots;
                    ALTER TABLE snapshots_new RENAME TO snapshots;
                    CREATE INDEX snapshots_parent ON snapshots(parent_id);
                    """)
        }
        return migrator
    }
}
