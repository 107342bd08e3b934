//! Where ledger records are kept: the trait every store implements, and the in-memory store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use super::bodies::RequestBodies;
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

    /// Upkeep between batches, called by the ledger's writer after it has answered whoever
    /// waited on the last batch (so no request waits on it). The default does nothing.
    fn maintain(&self) {}

    /// Makes a newly opened (pending) record survive the process at once, before the batched
    /// [`LedgerSink::write`] stores it, where the store has a cheap way to (SQLite: an append
    /// to a journal file of the instance's own). `Ok(true)`: the ledger need not wait for the
    /// write, and may hold the record back to write it settled; `Ok(false)` (the default): a
    /// durable store makes the request wait for the write. Called on the request's thread.
    fn journal(&self, record: &UsageRecord) -> Result<bool, LedgerError> {
        let _ = record;
        Ok(false)
    }

    /// Whether records survive the process, so that a request must wait until its opened
    /// record is stored (or journaled) before it goes upstream.
    fn durable(&self) -> bool {
        false
    }

    /// The record with this id, if the store has it. The default looks through
    /// [`LedgerSink::records`]; stores with an index should answer directly.
    fn record(&self, id: &str) -> Result<Option<UsageRecord>, LedgerError> {
        Ok(self
            .records(&UsageFilter::default(), usize::MAX)?
            .into_iter()
            .find(|r| r.id == id))
    }

    /// Stores the bodies of requests whose records were written before (`server.log_bodies`).
    /// The default keeps nothing: a store that cannot hold bodies simply has none.
    fn write_bodies(&self, batch: &[RequestBodies]) -> Result<(), LedgerError> {
        let _ = batch;
        Ok(())
    }

    /// The bodies kept for a request, if any.
    fn bodies(&self, id: &str) -> Result<Option<RequestBodies>, LedgerError> {
        let _ = id;
        Ok(None)
    }

    /// Deletes the records (and their bodies) of requests started before `cutoff_ms` (Unix
    /// milliseconds), for the ledger's retention; returns how many records went.
    fn purge_before(&self, cutoff_ms: i64) -> Result<u64, LedgerError> {
        let _ = cutoff_ms;
        Ok(0)
    }
}

/// The default store: records in memory, gone with the process. It keeps the most recent
/// `max_records` (100,000 by default, some 100 MB at most), so a long-lived process does not
/// grow without end; totals cover those. Budgets keep their own running sums, so a cap stays
/// exact however many records are dropped.
#[derive(Debug)]
pub struct MemorySink {
    records: Mutex<MemoryRecords>,
    max_records: usize,
}

#[derive(Debug, Default)]
struct MemoryRecords {
    /// Records in the order they were first written.
    by_seq: BTreeMap<u64, UsageRecord>,
    seq_of: HashMap<String, u64>,
    next_seq: u64,
    /// Bodies by record id; dropped with their record.
    bodies: HashMap<String, RequestBodies>,
}

/// Records the in-memory store keeps by default.
pub const DEFAULT_MEMORY_RECORDS: usize = 100_000;

impl Default for MemorySink {
    fn default() -> Self {
        MemorySink::with_max_records(DEFAULT_MEMORY_RECORDS)
    }
}

impl MemorySink {
    /// An empty store keeping the default number of records.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping at most `max_records` (at least one).
    pub fn with_max_records(max_records: usize) -> Self {
        MemorySink {
            records: Mutex::default(),
            max_records: max_records.max(1),
        }
    }
}

impl LedgerSink for MemorySink {
    fn write(&self, batch: &[UsageRecord]) -> Result<(), LedgerError> {
        let mut store = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        for record in batch {
            match store.seq_of.get(&record.id).copied() {
                Some(seq) => {
                    store.by_seq.insert(seq, record.clone());
                }
                None => {
                    let seq = store.next_seq;
                    store.next_seq += 1;
                    store.seq_of.insert(record.id.clone(), seq);
                    store.by_seq.insert(seq, record.clone());
                }
            }
        }
        while store.by_seq.len() > self.max_records {
            if let Some((_, oldest)) = store.by_seq.pop_first() {
                store.seq_of.remove(&oldest.id);
                store.bodies.remove(&oldest.id);
            }
        }
        Ok(())
    }

    fn recover(&self, own_instance: &str) -> Result<u64, LedgerError> {
        // Only this process can have written here, so a foreign pending record cannot exist;
        // the loop keeps the contract for a store shared in odd ways.
        let mut store = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let mut n = 0;
        for r in store.by_seq.values_mut() {
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
            .by_seq
            .values()
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
        Ok(aggregate(store.by_seq.values(), query))
    }

    fn record(&self, id: &str) -> Result<Option<UsageRecord>, LedgerError> {
        let store = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(store
            .seq_of
            .get(id)
            .and_then(|seq| store.by_seq.get(seq))
            .cloned())
    }

    fn write_bodies(&self, batch: &[RequestBodies]) -> Result<(), LedgerError> {
        let mut store = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        for bodies in batch {
            // Only beside a record still kept, so bodies never outlive their record.
            if store.seq_of.contains_key(&bodies.id) {
                store.bodies.insert(bodies.id.clone(), bodies.clone());
            }
        }
        Ok(())
    }

    fn bodies(&self, id: &str) -> Result<Option<RequestBodies>, LedgerError> {
        let store = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(store.bodies.get(id).cloned())
    }

    fn purge_before(&self, cutoff_ms: i64) -> Result<u64, LedgerError> {
        let mut store = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let old: Vec<(u64, String)> = store
            .by_seq
            .iter()
            .filter(|(_, r)| r.started_at_ms < cutoff_ms)
            .map(|(seq, r)| (*seq, r.id.clone()))
            .collect();
        for (seq, id) in &old {
            store.by_seq.remove(seq);
            store.seq_of.remove(id);
            store.bodies.remove(id);
        }
        Ok(old.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::UsageQuery;

    fn record(id: &str, status: RecordStatus) -> UsageRecord {
        UsageRecord {
            status,
            ..UsageRecord::pending(id, "i", 0, "chat.completions", "m")
        }
    }

    #[test]
    fn memory_keeps_one_record_per_id_and_only_the_most_recent() {
        let sink = MemorySink::with_max_records(3);
        sink.write(&[
            record("a", RecordStatus::Pending),
            record("b", RecordStatus::Pending),
        ])
        .unwrap();
        sink.write(&[record("a", RecordStatus::Ok)]).unwrap();
        let all = sink.records(&UsageFilter::default(), 10).unwrap();
        assert_eq!(all.len(), 2);
        assert!(
            all.iter()
                .any(|r| r.id == "a" && r.status == RecordStatus::Ok)
        );
        sink.write(&[record("c", RecordStatus::Ok), record("d", RecordStatus::Ok)])
            .unwrap();
        let mut ids: Vec<String> = sink
            .records(&UsageFilter::default(), 10)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.sort();
        assert_eq!(ids, ["b", "c", "d"], "the oldest record went first");
        assert_eq!(sink.totals(&UsageQuery::default()).unwrap()[0].requests, 3);
    }
}
