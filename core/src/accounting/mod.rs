//! Local cost accounting: every request is opened in the usage ledger when it is accepted and
//! settled when it ends, with its tokens and cost; totals are asked of the ledger.

mod query;
mod record;
mod sink;
mod sqlite;

pub use query::{GroupBy, UsageFilter, UsageQuery, UsageTotals, aggregate};
pub use record::{RecordStatus, TokenCounts, UsageRecord};
pub use sink::{LedgerError, LedgerSink, MemorySink};
pub use sqlite::SqliteSink;
