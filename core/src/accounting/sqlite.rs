//! The durable ledger store: records in the gateway's SQLite file (see [`crate::store`]),
//! filtered, grouped and summed in SQL with the same results as [`aggregate`].
//!
//! Several processes may share one file (a server, a CLI listing usage). Each sink holds an
//! exclusive lock on a file named after its instance for as long as it lives; the operating
//! system releases that lock when the process ends, however it ends (even `kill -9`), which
//! is how [`SqliteSink::recover`] tells a crashed instance from a running one.
//!
//! [`aggregate`]: super::aggregate

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, mpsc};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, Row, TransactionBehavior, params, params_from_iter};

use super::bodies::RequestBodies;
use super::journal::{self, Journal};
use super::query::{GroupBy, UsageFilter, UsageQuery, UsageTotals};
use super::record::{RecordStatus, TokenCounts, UsageRecord};
use super::sink::{LedgerError, LedgerSink};
use crate::pricing::Cost;
use crate::store;

/// The columns of `usage_records`, in the order `write` binds them.
const COLUMNS: [&str; 28] = [
    "id",
    "instance",
    "started_at_ms",
    "ended_at_ms",
    "endpoint",
    "stream",
    "\"key\"",
    "\"user\"",
    "model",
    "provider",
    "provider_model",
    "status",
    "http_status",
    "error_type",
    "error_message",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "estimated",
    "provider_cost_usd",
    "fee_usd",
    "total_cost_usd",
    "latency_ms",
    "ttft_ms",
    "attempts",
    "tags",
];

/// A new record's row. Opening and settling a record write it with a plain `INSERT` and a
/// plain `UPDATE`: unlike an upsert, neither needs a statement journal (a copy of every page
/// it touches), and `INSERT OR REPLACE` would delete the row and cascade to its tags.
static INSERT: LazyLock<String> = LazyLock::new(|| {
    let placeholders: Vec<String> = (1..=COLUMNS.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO usage_records ({}) VALUES ({})",
        COLUMNS.join(", "),
        placeholders.join(", ")
    )
});

/// Every column of the row with the record's id (`?1`), in [`COLUMNS`] order.
static UPDATE: LazyLock<String> = LazyLock::new(|| {
    let updates: Vec<String> = COLUMNS
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, c)| format!("{c} = ?{}", i + 1))
        .collect();
    format!(
        "UPDATE usage_records SET {} WHERE id = ?1",
        updates.join(", ")
    )
});

/// The columns a record's settling leaves as they were when it was opened (`Ticket::settle`
/// writes none of them).
const OPENED_COLUMNS: [&str; 9] = [
    "id",
    "instance",
    "started_at_ms",
    "endpoint",
    "stream",
    "\"key\"",
    "\"user\"",
    "model",
    "tags",
];

/// A settled record over its pending row when the columns of [`OPENED_COLUMNS`] are unchanged
/// (`?N` in [`COLUMNS`] order, as for [`UPDATE`]). SQLite maintains only the indexes over
/// columns an `UPDATE` sets, so this one leaves the id, time, key and user indexes and the
/// tags trigger alone; it matches no row when any of those columns differs, and the full
/// [`UPDATE`] then writes the record.
static SETTLE: LazyLock<String> = LazyLock::new(|| {
    let mut sets = Vec::new();
    let mut unchanged = Vec::new();
    for (i, c) in COLUMNS.iter().enumerate() {
        if i == 0 {
            unchanged.push(format!("{c} = ?1"));
        } else if OPENED_COLUMNS.contains(c) {
            unchanged.push(format!("{c} IS ?{}", i + 1));
        } else {
            sets.push(format!("{c} = ?{}", i + 1));
        }
    }
    format!(
        "UPDATE usage_records SET {} WHERE {}",
        sets.join(", "),
        unchanged.join(" AND ")
    )
});

/// The ledger kept in SQLite: survives the process, shared by every process on the file.
#[derive(Debug)]
pub struct SqliteSink {
    /// Writes and recovery; one writer at a time is all SQLite allows anyway.
    writer: Mutex<Connection>,
    /// Listings and totals, on a connection of their own so that WAL lets them run while a
    /// batch is being written.
    reader: Mutex<Connection>,
    /// Where every instance's lock file lives: `<db file name>.instances/`.
    locks_dir: PathBuf,
    /// This instance's lock file, removed on drop.
    lock_path: PathBuf,
    /// Held locked for the sink's whole life: the proof, to other processes, that it runs.
    lock: File,
    /// Stops the checkpoint thread when the sink goes (its receiver sees the sender dropped).
    _checkpoints: mpsc::Sender<()>,
    /// Set by the checkpoint thread when the log should start over (see `spawn_checkpoints`).
    wal_restart: Arc<AtomicBool>,
    /// Opened records not yet in the database (see [`journal`]).
    journal: Mutex<Journal>,
}

/// How often the checkpoint thread copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// WAL frames (pages) past which the writer finishes the checkpoint itself, so that its next
/// commit writes from the start of the log again: about 8 MB.
const WAL_RESTART_FRAMES: i64 = 2048;

/// The most bytes the WAL file keeps once it starts over (SQLite truncates it to this).
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Runs the WAL checkpoints on a connection of their own, so a batch never waits behind one:
/// SQLite's automatic checkpoint runs inside the commit that crosses its threshold, and with it
/// an fsync, which stalled the requests waiting on that commit (their records) by milliseconds.
///
/// A passive checkpoint waits for no reader or writer, but under steady load it never catches
/// up with a writer that commits meanwhile, and SQLite writes from the start of the log again
/// only once a checkpoint has copied all of it: the log grew without bound (900 MB after 20 s
/// of load, beside a 25 MB database), every commit extending the file. So once the log is past
/// [`WAL_RESTART_FRAMES`], this thread asks the writer (through `restart`) to finish the job
/// between two batches, after it has answered the last one (`LedgerSink::maintain`): it then
/// copies only the frames committed since this thread's pass.
fn spawn_checkpoints(
    path: &Path,
    restart: Arc<AtomicBool>,
) -> Result<mpsc::Sender<()>, LedgerError> {
    let (conn, _) = store::open(path).map_err(|e| LedgerError(e.to_string()))?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("ogw-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                match checkpoint(&conn) {
                    // Even a pass that copied every frame leaves the log to grow on: the
                    // writer commits after it and before its next commit could start over.
                    Ok((_, log_frames, _)) => {
                        if log_frames > WAL_RESTART_FRAMES {
                            restart.store(true, Ordering::Release);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "ledger checkpoint failed"),
                }
            }
        })
        .map_err(|e| LedgerError(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(stop)
}

/// Runs one passive checkpoint: (whether it was blocked, frames in the log, frames copied).
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    })
}

impl SqliteSink {
    /// Opens (creating and migrating if needed) the SQLite file at `path` as the ledger of
    /// `instance`, which must be unique to this process's life (a random id, not a host
    /// name): recovery treats every other instance without a held lock as crashed.
    ///
    /// Fails if another live sink already holds `instance`. Liveness is a file lock, so every
    /// process sharing the file must run on the same host (which SQLite's WAL mode requires
    /// anyway).
    pub fn open(path: &Path, instance: &str) -> Result<Self, LedgerError> {
        let (writer, _) = store::open(path).map_err(|e| LedgerError(e.to_string()))?;
        // The checkpoint thread does the checkpoints (see `spawn_checkpoints`).
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let (reader, _) = store::open(path).map_err(|e| LedgerError(e.to_string()))?;
        reader.pragma_update(None, "query_only", true)?;

        let locks_dir = locks_dir(path)?;
        std::fs::create_dir_all(&locks_dir)
            .map_err(|e| LedgerError(format!("cannot create {}: {e}", locks_dir.display())))?;
        let stem = instance_stem(instance);
        let lock_path = locks_dir.join(format!("{stem}.lock"));
        let lock = open_lock_file(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LedgerError(format!(
                    "instance `{instance}` is already open by a running ledger on {}",
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(LedgerError(format!(
                    "cannot lock {}: {e}",
                    lock_path.display()
                )));
            }
        }
        let wal_restart = Arc::new(AtomicBool::new(false));
        let checkpoints = spawn_checkpoints(path, wal_restart.clone())?;
        Ok(SqliteSink {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            lock_path,
            lock,
            _checkpoints: checkpoints,
            wal_restart,
            journal: Mutex::new(Journal::new(locks_dir.clone(), stem)),
            locks_dir,
        })
    }
}

impl Drop for SqliteSink {
    fn drop(&mut self) {
        let journal = self
            .journal
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        // With an entry unspent (a write that failed) the files stay for a recovery to read.
        if journal.all_spent() {
            journal.remove_files();
        }
        // Removed while still locked, so a concurrent recovery either sees the lock held or
        // finds no file: both are right (the latter means this instance is gone).
        let _ = std::fs::remove_file(&self.lock_path);
        let _ = self.lock.unlock();
    }
}

impl LedgerSink for SqliteSink {
    fn write(&self, batch: &[UsageRecord]) -> Result<(), LedgerError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // Cached statements rather than rusqlite's `Transaction`, which parses its BEGIN and
        // COMMIT again for every batch. IMMEDIATE takes the write lock up front: a deferred
        // transaction that upgrades from read to write can fail with SQLITE_BUSY without
        // waiting for busy_timeout.
        let fresh = self
            .journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwritten(batch.iter().map(|r| r.id.as_str()));
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let written = write_rows(&conn, batch, &fresh)
            .and_then(|()| Ok(conn.prepare_cached("COMMIT")?.execute([])?));
        if written.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        drop(conn);
        written?;
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spend(batch.iter().map(|r| r.id.as_str()));
        Ok(())
    }

    /// Appends the record to this instance's journal file (see [`journal`]).
    fn journal(&self, record: &UsageRecord) -> Result<bool, LedgerError> {
        let line = journal::entry_line(record)?;
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(&record.id, &line)?;
        Ok(true)
    }

    /// Finishes the checkpoint thread's work when it asked for it (see `spawn_checkpoints`).
    fn maintain(&self) {
        if self.wal_restart.swap(false, Ordering::AcqRel) {
            let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(e) = checkpoint(&conn) {
                tracing::warn!(error = %e, "ledger checkpoint failed");
            }
        }
    }

    /// Marks `interrupted` the pending records of every instance other than `own_instance`
    /// whose lock is not held (its process ended) or whose lock file does not exist, then
    /// removes that lock file; returns how many records were marked. `ended_at_ms` stays
    /// empty: when the process died is not known.
    ///
    /// Only the process that serves requests calls this, at start: a process that merely
    /// reads the ledger (a CLI listing usage) must not, since it has no business settling
    /// other processes' records.
    fn recover(&self, own_instance: &str) -> Result<u64, LedgerError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // Every other instance that may have left something behind, by file-name stem: pending
        // rows in the database, and journal files (records opened but not yet written).
        let mut left: BTreeMap<String, LeftBehind> = BTreeMap::new();
        let instances: Vec<String> = conn
            .prepare(
                "SELECT DISTINCT instance FROM usage_records
                 WHERE status = 'pending' AND instance <> ?1",
            )?
            .query_map([own_instance], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for instance in instances {
            let entry = left.entry(instance_stem(&instance)).or_default();
            entry.instances.push(instance);
        }
        let own_stem = instance_stem(own_instance);
        let dir = std::fs::read_dir(&self.locks_dir)
            .map_err(|e| LedgerError(format!("cannot list {}: {e}", self.locks_dir.display())))?;
        for entry in dir.flatten() {
            let name = entry.file_name();
            if let Some(stem) = name.to_str().and_then(journal::journal_stem)
                && stem != own_stem
            {
                let entry_path = entry.path();
                left.entry(stem.to_owned())
                    .or_default()
                    .journals
                    .push(entry_path);
            }
        }
        let mut marked = 0;
        for (stem, found) in left {
            let path = self.locks_dir.join(format!("{stem}.lock"));
            // Created if missing: an instance without a lock file is not running either.
            let lock = match open_lock_file(&path) {
                Ok(lock) => lock,
                Err(e) => {
                    tracing::warn!(instance = %stem, error = %e, "ledger recovery skips an instance");
                    continue;
                }
            };
            match lock.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => {
                    tracing::warn!(instance = %stem, error = %e, "ledger recovery skips an instance");
                    continue;
                }
            }
            // Still holding the dead instance's lock: nobody can take its id meanwhile.
            marked += recover_instance(&conn, &found)?;
            for journal in &found.journals {
                journal::remove_file(journal, "a dead instance's journal");
            }
            journal::remove_file(&path, "a dead instance's lock file");
        }
        Ok(marked)
    }

    fn records(&self, filter: &UsageFilter, limit: usize) -> Result<Vec<UsageRecord>, LedgerError> {
        let (where_sql, mut values) = filter_sql(filter);
        let sql = format!(
            "SELECT {} FROM usage_records r{where_sql}
             ORDER BY r.started_at_ms DESC, r.id DESC LIMIT ?",
            COLUMNS.join(", ")
        );
        values.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(values.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(record_from_row(row)?);
        }
        Ok(out)
    }

    fn totals(&self, query: &UsageQuery) -> Result<Vec<UsageTotals>, LedgerError> {
        let dims = query.group_by.len();
        let mut select = String::new();
        let mut joins = String::new();
        for (i, by) in query.group_by.iter().enumerate() {
            let expr = match by {
                GroupBy::Model => {
                    "CASE WHEN r.provider IS NOT NULL AND r.provider_model IS NOT NULL \
                     THEN r.provider || '/' || r.provider_model ELSE r.model END"
                        .to_owned()
                }
                GroupBy::Provider => "r.provider".to_owned(),
                GroupBy::Key => "r.\"key\"".to_owned(),
                GroupBy::User => "r.\"user\"".to_owned(),
                GroupBy::Tag => {
                    // One join per occurrence, so that grouping by tag twice pairs every tag
                    // with every tag, as `aggregate` does.
                    let _ = write!(joins, " LEFT JOIN usage_tags t{i} ON t{i}.record_id = r.id");
                    format!("t{i}.tag")
                }
                GroupBy::Status => "r.status".to_owned(),
                GroupBy::Hour => time_bucket("%Y-%m-%dT%H"),
                GroupBy::Day => time_bucket("%Y-%m-%d"),
                GroupBy::Month => time_bucket("%Y-%m"),
            };
            let _ = write!(select, "{expr} AS g{i}, ");
        }
        let group_by = if dims == 0 {
            String::new()
        } else {
            let names: Vec<String> = (0..dims).map(|i| format!("g{i}")).collect();
            let order: Vec<String> = names.iter().map(|n| format!("{n} NULLS FIRST")).collect();
            format!(
                " GROUP BY {} ORDER BY {}",
                names.join(", "),
                order.join(", ")
            )
        };
        let (where_sql, values) = filter_sql(&query.filter);
        let sql = format!(
            "SELECT {select}COUNT(*),
                SUM(r.status = 'ok'), SUM(r.status = 'error'),
                SUM(r.status = 'cancelled'), SUM(r.status = 'interrupted'), SUM(r.estimated),
                SUM(r.prompt_tokens), SUM(r.completion_tokens), SUM(r.cached_tokens),
                SUM(r.cache_write_tokens), SUM(r.reasoning_tokens),
                {}, {}, {}
             FROM usage_records r{joins}{where_sql}{group_by}",
            cost_sum("provider_cost_usd"),
            cost_sum("fee_usd"),
            cost_sum("total_cost_usd"),
        );
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(values.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let requests = count(row, dims)?;
            // Without GROUP BY, SQL answers one row even when nothing matched; `aggregate`
            // answers none.
            if requests == 0 {
                continue;
            }
            let mut group = std::collections::BTreeMap::new();
            for (i, by) in query.group_by.iter().enumerate() {
                group.insert(*by, row.get::<_, Option<String>>(i)?);
            }
            let cost = |i: usize| -> Result<f64, LedgerError> {
                Ok(row.get::<_, Option<f64>>(dims + i)?.unwrap_or(f64::NAN))
            };
            out.push(UsageTotals {
                group,
                requests,
                ok: count(row, dims + 1)?,
                errors: count(row, dims + 2)?,
                cancelled: count(row, dims + 3)?,
                interrupted: count(row, dims + 4)?,
                estimated: count(row, dims + 5)?,
                prompt_tokens: count(row, dims + 6)?,
                completion_tokens: count(row, dims + 7)?,
                cached_tokens: count(row, dims + 8)?,
                cache_write_tokens: count(row, dims + 9)?,
                reasoning_tokens: count(row, dims + 10)?,
                provider_cost_usd: cost(11)?,
                fee_usd: cost(12)?,
                total_cost_usd: cost(13)?,
            });
        }
        Ok(out)
    }

    fn durable(&self) -> bool {
        true
    }

    fn record(&self, id: &str) -> Result<Option<UsageRecord>, LedgerError> {
        let sql = format!(
            "SELECT {} FROM usage_records WHERE id = ?1",
            COLUMNS.join(", ")
        );
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([id])?;
        match rows.next()? {
            Some(row) => Ok(Some(record_from_row(row)?)),
            None => Ok(None),
        }
    }

    fn write_bodies(&self, batch: &[RequestBodies]) -> Result<(), LedgerError> {
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            // Only beside a record that exists (retention may have deleted it meanwhile).
            let mut upsert = tx.prepare_cached(
                "INSERT INTO request_bodies (record_id, request, response)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM usage_records WHERE id = ?1)
                 ON CONFLICT (record_id) DO UPDATE SET
                    request = excluded.request, response = excluded.response",
            )?;
            for b in batch {
                upsert.execute(params![b.id, b.request, b.response])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn bodies(&self, id: &str) -> Result<Option<RequestBodies>, LedgerError> {
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn
            .prepare_cached("SELECT request, response FROM request_bodies WHERE record_id = ?1")?;
        let mut rows = stmt.query([id])?;
        match rows.next()? {
            Some(row) => Ok(Some(RequestBodies {
                id: id.to_owned(),
                request: row.get(0)?,
                response: row.get(1)?,
            })),
            None => Ok(None),
        }
    }

    fn purge_before(&self, cutoff_ms: i64) -> Result<u64, LedgerError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // Tags and bodies go with their record (ON DELETE CASCADE, foreign_keys is on).
        let n = conn.execute(
            "DELETE FROM usage_records WHERE started_at_ms < ?1",
            [cutoff_ms],
        )?;
        Ok(n as u64)
    }
}

/// What a dead instance may have left: pending rows (under these instance ids) and journals.
#[derive(Default)]
struct LeftBehind {
    instances: Vec<String>,
    journals: Vec<PathBuf>,
}

/// Marks `interrupted`, in one transaction, what a dead instance left pending: the records its
/// journals hold that the database does not (stored whole, as opened), and its pending rows.
/// Returns how many records that marked.
fn recover_instance(conn: &Connection, left: &LeftBehind) -> Result<u64, LedgerError> {
    let tx = conn.unchecked_transaction()?;
    let mut marked = 0;
    {
        let mut known = tx.prepare_cached("SELECT 1 FROM usage_records WHERE id = ?1")?;
        let mut unwritten = Vec::new();
        for journal in &left.journals {
            for mut record in journal::read_records(journal)? {
                if record.status == RecordStatus::Pending && !known.exists([&record.id])? {
                    record.status = RecordStatus::Interrupted;
                    unwritten.push(record);
                }
            }
        }
        // A record journaled twice (it cannot be, but a file is data) is stored once.
        unwritten.sort_by(|a, b| a.id.cmp(&b.id));
        unwritten.dedup_by(|a, b| a.id == b.id);
        let fresh = vec![true; unwritten.len()];
        write_rows(&tx, &unwritten, &fresh)?;
        marked += unwritten.len() as u64;
        let mut mark = tx.prepare_cached(
            "UPDATE usage_records SET status = 'interrupted'
             WHERE instance = ?1 AND status = 'pending'",
        )?;
        for instance in &left.instances {
            marked += mark.execute([instance])? as u64;
        }
    }
    tx.commit()?;
    Ok(marked)
}

/// `<dir>/<db file name>.instances`, next to the database.
fn locks_dir(db: &Path) -> Result<PathBuf, LedgerError> {
    let name = db
        .file_name()
        .ok_or_else(|| LedgerError(format!("`{}` names no file", db.display())))?;
    let mut dir = name.to_os_string();
    dir.push(".instances");
    Ok(db.with_file_name(dir))
}

/// The name an instance's files (its lock, its journal) start with. Bytes outside
/// `[A-Za-z0-9_-]` are escaped as `%XX` so that any id is one safe file name (no `/`, no `..`)
/// and two ids never share one.
fn instance_stem(instance: &str) -> String {
    let mut name = String::with_capacity(instance.len() + 5);
    for b in instance.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            name.push(char::from(b));
        } else {
            let _ = write!(name, "%{b:02X}");
        }
    }
    name
}

/// Opens (creating if needed) a lock file without touching its content.
fn open_lock_file(path: &Path) -> Result<File, LedgerError> {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| LedgerError(format!("cannot open {}: {e}", path.display())))
}

/// The filter as a WHERE clause on `usage_records r` and its parameters, in order.
fn filter_sql(filter: &UsageFilter) -> (String, Vec<Value>) {
    let mut clauses: Vec<&str> = Vec::new();
    let mut values = Vec::new();
    if let Some(t) = filter.since_ms {
        clauses.push("r.started_at_ms >= ?");
        values.push(Value::Integer(t));
    }
    if let Some(t) = filter.until_ms {
        clauses.push("r.started_at_ms < ?");
        values.push(Value::Integer(t));
    }
    if let Some(key) = &filter.key {
        clauses.push("r.\"key\" = ?");
        values.push(Value::Text(key.clone()));
    }
    if let Some(user) = &filter.user {
        clauses.push("r.\"user\" = ?");
        values.push(Value::Text(user.clone()));
    }
    if let Some(provider) = &filter.provider {
        clauses.push("r.provider = ?");
        values.push(Value::Text(provider.clone()));
    }
    if let Some(model) = &filter.model {
        // The billed model is provider/provider_model when both are set (else the concat is
        // NULL and only the model asked can match), as in `UsageRecord::billed_model`.
        clauses.push("(r.model = ? OR r.provider || '/' || r.provider_model = ?)");
        values.push(Value::Text(model.clone()));
        values.push(Value::Text(model.clone()));
    }
    if let Some(tag) = &filter.tag {
        clauses
            .push("EXISTS (SELECT 1 FROM usage_tags ft WHERE ft.record_id = r.id AND ft.tag = ?)");
        values.push(Value::Text(tag.clone()));
    }
    if let Some(status) = filter.status {
        clauses.push("r.status = ?");
        values.push(Value::Text(status.as_str().to_owned()));
    }
    if clauses.is_empty() {
        (String::new(), values)
    } else {
        (format!(" WHERE {}", clauses.join(" AND ")), values)
    }
}

/// The UTC bucket of `started_at_ms` as `format`, like `query::time_bucket` (chrono). The
/// seconds are floored (SQLite's `/` truncates toward zero) so that instants before 1970
/// fall in the same bucket as chrono puts them.
fn time_bucket(format: &str) -> String {
    format!(
        "strftime('{format}', (r.started_at_ms - ((r.started_at_ms % 1000) + 1000) % 1000) / 1000, 'unixepoch')"
    )
}

/// The sum of a cost column, NULL (read as NaN) when a record's cost is NULL, i.e. was NaN:
/// `SUM` would skip it where `aggregate`'s sum turns NaN.
fn cost_sum(column: &str) -> String {
    format!("CASE WHEN COUNT(r.{column}) = COUNT(*) THEN SUM(r.{column}) END")
}

/// Writes each record's row and tags inside the caller's transaction: a pending record is
/// normally new (`INSERT`), a settled one normally there already, as it was opened (`SETTLE`,
/// else `UPDATE`), unless `fresh` says its id was never written (its opening was journaled and
/// the settled form came before the pending one was stored: `INSERT`); each falls back to the
/// others when the row is not as expected.
fn write_rows(conn: &Connection, batch: &[UsageRecord], fresh: &[bool]) -> Result<(), LedgerError> {
    let mut insert = conn.prepare_cached(&INSERT)?;
    let mut update = conn.prepare_cached(&UPDATE)?;
    let mut settle = conn.prepare_cached(&SETTLE)?;
    let mut add_tag =
        conn.prepare_cached("INSERT OR IGNORE INTO usage_tags (record_id, tag) VALUES (?1, ?2)")?;
    for (i, r) in batch.iter().enumerate() {
        super::ledger::give_way();
        let attempts = json(&r.attempts)?;
        let tags = json(&r.tags)?;
        let status = r.status.as_str();
        let tokens = [
            int(r.tokens.prompt)?,
            int(r.tokens.completion)?,
            int(r.tokens.cached)?,
            int(r.tokens.cache_write)?,
            int(r.tokens.reasoning)?,
        ];
        let latency_ms = r.latency_ms.map(int).transpose()?;
        let ttft_ms = r.ttft_ms.map(int).transpose()?;
        let row = params![
            r.id,
            r.instance,
            r.started_at_ms,
            r.ended_at_ms,
            r.endpoint,
            r.stream,
            r.key,
            r.user,
            r.model,
            r.provider,
            r.provider_model,
            status,
            r.http_status,
            r.error_type,
            r.error_message,
            tokens[0],
            tokens[1],
            tokens[2],
            tokens[3],
            tokens[4],
            r.estimated,
            r.cost.provider_usd,
            r.cost.fee_usd,
            r.cost.total_usd,
            latency_ms,
            ttft_ms,
            attempts,
            tags,
        ];
        if r.status == RecordStatus::Pending || fresh.get(i).copied().unwrap_or(false) {
            match insert.execute(row) {
                Ok(_) => {}
                Err(e) if is_duplicate(&e) => {
                    update.execute(row)?;
                }
                Err(e) => return Err(e.into()),
            }
        } else if settle.execute(row)? == 0 && update.execute(row)? == 0 {
            insert.execute(row)?;
        }
        // Tags the record no longer has go by the trigger of migration 6.
        for tag in &r.tags {
            add_tag.execute(params![r.id, tag])?;
        }
    }
    Ok(())
}

/// Whether an `INSERT` failed because a row with the same id exists.
fn is_duplicate(e: &rusqlite::Error) -> bool {
    e.sqlite_error().is_some_and(|e| {
        e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    })
}

/// A count or token number as SQLite stores it.
fn int(n: u64) -> Result<i64, LedgerError> {
    i64::try_from(n).map_err(|_| LedgerError(format!("{n} is too large for the ledger")))
}

/// A non-negative integer column read back.
fn count(row: &Row<'_>, idx: usize) -> Result<u64, LedgerError> {
    let n: i64 = row.get(idx)?;
    u64::try_from(n).map_err(|_| LedgerError(format!("negative count {n} in the ledger")))
}

/// An optional non-negative integer column read back.
fn opt_count(row: &Row<'_>, idx: usize) -> Result<Option<u64>, LedgerError> {
    match row.get::<_, Option<i64>>(idx)? {
        None => Ok(None),
        Some(_) => count(row, idx).map(Some),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, LedgerError> {
    serde_json::to_string(value).map_err(|e| LedgerError(e.to_string()))
}

/// A record from a row selected as [`COLUMNS`].
fn record_from_row(row: &Row<'_>) -> Result<UsageRecord, LedgerError> {
    let status: String = row.get(11)?;
    let attempts: String = row.get(26)?;
    let tags: String = row.get(27)?;
    let id: String = row.get(0)?;
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        LedgerError(format!("record {id}: unreadable {what}: {e}"))
    };
    let cost = |idx: usize| -> Result<f64, LedgerError> {
        Ok(row.get::<_, Option<f64>>(idx)?.unwrap_or(f64::NAN))
    };
    Ok(UsageRecord {
        instance: row.get(1)?,
        started_at_ms: row.get(2)?,
        ended_at_ms: row.get(3)?,
        endpoint: row.get(4)?,
        stream: row.get(5)?,
        key: row.get(6)?,
        user: row.get(7)?,
        model: row.get(8)?,
        provider: row.get(9)?,
        provider_model: row.get(10)?,
        status: RecordStatus::parse(&status).ok_or_else(|| bad("status", &status))?,
        http_status: row.get(12)?,
        error_type: row.get(13)?,
        error_message: row.get(14)?,
        tokens: TokenCounts {
            prompt: count(row, 15)?,
            completion: count(row, 16)?,
            cached: count(row, 17)?,
            cache_write: count(row, 18)?,
            reasoning: count(row, 19)?,
        },
        estimated: row.get(20)?,
        cost: Cost {
            provider_usd: cost(21)?,
            fee_usd: cost(22)?,
            total_usd: cost(23)?,
        },
        latency_ms: opt_count(row, 24)?,
        ttft_ms: opt_count(row, 25)?,
        attempts: serde_json::from_str(&attempts).map_err(|e| bad("attempts", &e))?,
        tags: serde_json::from_str(&tags).map_err(|e| bad("tags", &e))?,
        id,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The narrow settle finds its row through the primary key, sets no indexed column but
    /// `status` (the pending index's condition), and binds every column of a row.
    #[test]
    fn the_narrow_settle_goes_by_the_primary_key() {
        let dir = std::env::temp_dir().join(format!("ogw-settle-plan-{}", std::process::id()));
        let (conn, _) = crate::store::open(&dir.join("gw.db")).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", *SETTLE))
            .unwrap()
            .query_map(
                rusqlite::params_from_iter(vec![rusqlite::types::Null; COLUMNS.len()]),
                |r| r.get::<_, String>(3),
            )
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            plan,
            vec!["SEARCH usage_records USING INDEX sqlite_autoindex_usage_records_1 (id=?)"]
        );
        let statement = conn.prepare(&SETTLE).unwrap();
        assert_eq!(statement.parameter_count(), COLUMNS.len());
        let (set, _) = SETTLE.split_once(" WHERE ").unwrap();
        let set_columns: Vec<&str> = set
            .trim_start_matches("UPDATE usage_records SET ")
            .split(", ")
            .map(|assignment| assignment.split_once(" = ").unwrap().0)
            .collect();
        assert_eq!(set_columns.len(), COLUMNS.len() - OPENED_COLUMNS.len());
        for column in OPENED_COLUMNS {
            assert!(!set_columns.contains(&column), "{column} is set");
        }
        drop(statement);
        drop(conn);
        let _ = std::fs::remove_dir_all(dir);
    }
}
