//! The embedded SQLite store: created and migrated when the server starts.

use std::path::Path;

use rusqlite::Connection;

/// Versioned schema migrations, applied in order; each runs once, inside a transaction.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS gateway_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
)];

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
        let (conn, v) = open(&path).unwrap();
        assert_eq!(v, 1);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        let (conn, v) = open(&path).unwrap();
        assert_eq!(v, 1);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "a migration runs once");
        let _ = std::fs::remove_dir_all(dir);
    }
}
