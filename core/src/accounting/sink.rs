//! Where ledger records are kept: the trait every store implements, and the in-memory store.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::query::{UsageFilter, UsageQuery, UsageTotals, aggregate};
use super::record::{RecordStatus, UsageRecord};

/// A failure of the store behind the ledger.
#[derive(Debug, Clone, thiserror::Error)]
#[error("usage ledger: {0}")]
pub struct LedgerError(pub String);

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        LedgerError(e.to_string())
    }
}

/// A store of ledger records. The ledger calls `write` from one thread of its own, in the
/// order records were opened and settled, so an implementation may block (a Postgres client,
/// a file) without slowing requests.
pub trait LedgerSink: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a batch of records: a record whose id is new is added, one whose id is known
    /// replaces the stored one (that is how a pending record is settled). The batch should be
    /// all-or-nothing where the store can do that.
    fn write(&self, batch: &[UsageRecord]) -> Result<(), LedgerError>;

    /// Marks the records still `pending` that were opened by ledgers no longer running (a
    /// process that crashed or was killed) as `interrupted`; returns how many.
    fn recover(&self, own_instance: &str) -> Result<u64, LedgerError>;

    /// Records a filter covers, newest first, at most `limit`.
    fn records(&self, filter: &UsageFilter, limit: usize) -> Result<Vec<UsageRecord>, LedgerError>;

    /// Totals grouped and filtered as asked (see [`aggregate`] for the reference semantics).
    fn totals(&self, query: &UsageQuery) -> Result<Vec<UsageTotals>, LedgerError>;

    /// Whether records survive the process, so that a request must wait until its opened
    /// record is stored before it goes upstream.
    fn durable(&self) -> bool {
        false
    }
}

/// The default store: records in memory, gone with the process.
#[derive(Debug, Default)]
pub struct MemorySink {
    records: Mutex<MemoryRecords>,
}

#[derive(Debug, Default)]
struct MemoryRecords {
    by_id: HashMap<String, usize>,
    list: Vec<UsageRecord>,
}

impl MemorySink {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl LedgerSink for MemorySink {
    fn write(&self, batch: &[UsageRecord]) -> Result<(), LedgerError> {
        let mut store = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        for record in batch {
            match store.by_id.get(&record.id) {
                Some(&i) => store.list[i] = record.clone(),
                None => {
                    let i = store.list.len();
                    store.by_id.insert(record.id.clone(), i);
                    store.list.push(record.clone());
                }
            }
        }
        Ok(())
    }

    fn recover(&self, own_instance: &str) -> Result<u64, LedgerError> {
        // Only this process can have written here, so a foreign pending record cannot exist;
        // the loop keeps the contract for a store shared in odd ways.
        let mut store = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let mut n = 0;
        for r in &mut store.list {
            if r.status == RecordStatus::Pending && r.instance != own_instance {
                r.status = RecordStatus::Interrupted;
                n += 1;
            }
        }
        Ok(n)
    }

    fn records(&self, filter: &UsageFilter, limit: usize) -> Result<Vec<UsageRecord>, LedgerError> {
        let store = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<UsageRecord> = store
            .list
            .iter()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            b.started_at_ms
                .cmp(&a.started_at_ms)
                .then_with(|| b.id.cmp(&a.id))
        });
        out.truncate(limit);
        Ok(out)
    }

    fn totals(&self, query: &UsageQuery) -> Result<Vec<UsageTotals>, LedgerError> {
        let store = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(aggregate(&store.list, query))
    }
}
