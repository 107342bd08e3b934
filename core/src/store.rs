//! The embedded SQLite store: opened and migrated by whoever needs it (the server at start,
//! the usage ledger's [`SqliteSink`](crate::accounting::SqliteSink)).

use std::path::Path;

use rusqlite::Connection;

/// Versioned schema migrations, applied in order; each runs once, inside a transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS gateway_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    ),
    // The usage ledger: one row per request id, settled in place. Token counts are u64 in
    // Rust and checked on the way in and out (SQLite integers are i64). Costs may be NULL
    // because SQLite stores NaN as NULL; a NOT NULL there would fail a whole batch.
    // `attempts` and `tags` keep the record's own JSON for a lossless round trip; tags are
    // also one row each in `usage_tags`, which is what filters and groups by tag.
    (
        2,
        r#"CREATE TABLE usage_records (
            id TEXT PRIMARY KEY NOT NULL,
            instance TEXT NOT NULL,
            started_at_ms INTEGER NOT NULL,
            ended_at_ms INTEGER,
            endpoint TEXT NOT NULL,
            stream INTEGER NOT NULL,
            "key" TEXT,
            "user" TEXT,
            model TEXT NOT NULL,
            provider TEXT,
            provider_model TEXT,
            status TEXT NOT NULL,
            http_status INTEGER,
            error_type TEXT,
            error_message TEXT,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cached_tokens INTEGER NOT NULL,
            cache_write_tokens INTEGER NOT NULL,
            reasoning_tokens INTEGER NOT NULL,
            estimated INTEGER NOT NULL,
            provider_cost_usd REAL,
            fee_usd REAL,
            total_cost_usd REAL,
            latency_ms INTEGER,
            ttft_ms INTEGER,
            attempts TEXT NOT NULL,
            tags TEXT NOT NULL
        );
        -- (started_at_ms, id) is the listing order, so a newest-first page needs no sort.
        CREATE INDEX usage_records_started ON usage_records (started_at_ms, id);
        -- Recovery looks for the instances that still have pending records.
        CREATE INDEX usage_records_status ON usage_records (status, instance);
        CREATE INDEX usage_records_key ON usage_records ("key");
        CREATE INDEX usage_records_user ON usage_records ("user");
        CREATE TABLE usage_tags (
            record_id TEXT NOT NULL REFERENCES usage_records (id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            PRIMARY KEY (record_id, tag)
        ) WITHOUT ROWID;
        CREATE INDEX usage_tags_tag ON usage_tags (tag);"#,
    ),
    // Request and response bodies, written only with `server.log_bodies: true`; deleted with
    // their record (retention).
    (
        3,
        "CREATE TABLE request_bodies (
            record_id TEXT PRIMARY KEY NOT NULL REFERENCES usage_records (id) ON DELETE CASCADE,
            request TEXT,
            response TEXT
        );",
    ),
    // API keys (crate::keys): only the SHA-256 of a secret is kept. `hash_head` (its first 16
    // bits) is what lookups go through, so the full hash is compared in constant time rather
    // than by the index. Revoked keys stay, so usage remains attributable.
    (
        4,
        r#"CREATE TABLE api_keys (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,
            secret_hash BLOB NOT NULL,
            hash_head INTEGER NOT NULL,
            rpm INTEGER,
            tpm INTEGER,
            budget_usd REAL,
            budget_period TEXT NOT NULL DEFAULT 'total',
            models TEXT NOT NULL DEFAULT '[]',
            created_at_ms INTEGER NOT NULL,
            revoked_at_ms INTEGER
        );
        CREATE INDEX api_keys_head ON api_keys (hash_head);"#,
    ),
    // Every request writes its row twice (pending, then settled), and each index it is in costs
    // a page in the commit of each write. Partial indexes hold only the rows they are searched
    // for: recovery looks for pending rows only, and key and user lookups (`"key" = ?` implies
    // NOT NULL, so SQLite uses these) never for the NULL of a request without one.
    (
        5,
        r#"DROP INDEX usage_records_status;
        CREATE INDEX usage_records_pending ON usage_records (instance) WHERE status = 'pending';
        DROP INDEX usage_records_key;
        CREATE INDEX usage_records_key ON usage_records ("key") WHERE "key" IS NOT NULL;
        DROP INDEX usage_records_user;
        CREATE INDEX usage_records_user ON usage_records ("user") WHERE "user" IS NOT NULL;"#,
    ),
    // A record's tag rows follow its `tags` list. Deleting the stale ones on every write cost
    // a temporary b-tree per statement (SQLite collects the keys to delete first), though a
    // settled record almost always has the tags it was opened with; the trigger runs only when
    // a rewrite changes the list.
    (
        6,
        r#"CREATE TRIGGER usage_records_tags_changed AFTER UPDATE OF tags ON usage_records
        WHEN old.tags IS NOT new.tags
        BEGIN
            DELETE FROM usage_tags WHERE record_id = new.id
            AND tag NOT IN (SELECT value FROM json_each(new.tags));
        END;"#,
    ),
];

/// A failure to open or migrate the store.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the store at {path}: {source}")]
pub struct StoreError {
    path: String,
    source: rusqlite::Error,
}

/// Opens (creating if needed) the SQLite file in WAL mode and applies pending migrations.
/// Returns the schema version now in force.
pub fn open(path: &Path) -> Result<(Connection, i64), StoreError> {
    let wrap = |source| StoreError {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // A missing directory surfaces as the open error below, which names the path.
        let _ = std::fs::create_dir_all(dir);
    }
    let mut conn = Connection::open(path).map_err(wrap)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(wrap)?;
    // In WAL mode NORMAL loses nothing when the process crashes or is killed, only on a power
    // loss or OS crash (the last commits), and spares an fsync per commit.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(wrap)?;
    // Per connection, and off by default in SQLite; usage_tags references usage_records.
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(wrap)?;
    conn.pragma_update(None, "busy_timeout", 5000)
        .map_err(wrap)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        );",
    )
    .map_err(wrap)?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(wrap)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction().map_err(wrap)?;
        tx.execute_batch(sql).map_err(wrap)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES (?1)",
            [version],
        )
        .map_err(wrap)?;
        tx.commit().map_err(wrap)?;
    }
    let version = MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0).max(current);
    Ok((conn, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_and_reopens() {
        let dir = std::env::temp_dir().join(format!("ogw-store-{}", std::process::id()));
        let path = dir.join("nested/gw.db");
        let latest = MIGRATIONS.len() as i64;
        let (conn, v) = open(&path).unwrap();
        assert_eq!(v, latest);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1, "synchronous=NORMAL");
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        drop(conn);
        let (conn, v) = open(&path).unwrap();
        assert_eq!(v, latest);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, latest, "each migration runs once");
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'
                 AND name IN ('gateway_info', 'usage_records', 'usage_tags', 'request_bodies',
                              'api_keys')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 5);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The partial indexes of migration 5 serve the lookups they were made for.
    #[test]
    fn lookups_use_the_partial_indexes() {
        let dir = std::env::temp_dir().join(format!("ogw-store-plan-{}", std::process::id()));
        let (conn, _) = open(&dir.join("gw.db")).unwrap();
        let plan = |sql: &str| -> String {
            let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = statement
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap();
            rows.join("; ")
        };
        let cases = [
            (
                r#"SELECT COUNT(*) FROM usage_records WHERE "key" = 'k'"#,
                "usage_records_key",
            ),
            (
                r#"SELECT COUNT(*) FROM usage_records r WHERE r."user" = 'u'"#,
                "usage_records_user",
            ),
            (
                "SELECT DISTINCT instance FROM usage_records WHERE status = 'pending' AND instance <> 'i'",
                "usage_records_pending",
            ),
            (
                "UPDATE usage_records SET status = 'interrupted' WHERE instance = 'i' AND status = 'pending'",
                "usage_records_pending",
            ),
        ];
        for (sql, index) in cases {
            let shown = plan(sql);
            assert!(shown.contains(index), "{sql}: {shown}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
