//! Questions asked of the ledger: which records, grouped how, and the totals that come back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::record::{RecordStatus, UsageRecord};

/// A dimension to group ledger totals by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The billed model, `provider/model` (or the model asked when nothing served it).
    Model,
    /// The provider id.
    Provider,
    /// The API key.
    Key,
    /// The end user.
    User,
    /// Each tag (a record with two tags counts in both groups).
    Tag,
    /// How the request ended.
    Status,
    /// The UTC hour the request started, `2026-11-21T14`.
    Hour,
    /// The UTC day, `2026-11-21`.
    Day,
    /// The UTC month, `2026-11`.
    Month,
}

impl GroupBy {
    /// Every dimension, for help texts.
    pub const ALL: [GroupBy; 9] = [
        GroupBy::Model,
        GroupBy::Provider,
        GroupBy::Key,
        GroupBy::User,
        GroupBy::Tag,
        GroupBy::Status,
        GroupBy::Hour,
        GroupBy::Day,
        GroupBy::Month,
    ];

    /// The dimension's name, as in `--by model`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Provider => "provider",
            GroupBy::Key => "key",
            GroupBy::User => "user",
            GroupBy::Tag => "tag",
            GroupBy::Status => "status",
            GroupBy::Hour => "hour",
            GroupBy::Day => "day",
            GroupBy::Month => "month",
        }
    }

    /// Reads a dimension's name.
    pub fn parse(name: &str) -> Option<Self> {
        GroupBy::ALL.into_iter().find(|g| g.as_str() == name)
    }
}

/// Which records a query covers. Every field set must match; `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsageFilter {
    /// Started at or after this Unix millisecond.
    pub since_ms: Option<i64>,
    /// Started before this Unix millisecond.
    pub until_ms: Option<i64>,
    /// Made with this API key.
    pub key: Option<String>,
    /// For this end user.
    pub user: Option<String>,
    /// Billed to this model: `provider/model`, or the model as asked (an alias).
    pub model: Option<String>,
    /// Served by this provider id.
    pub provider: Option<String>,
    /// Carrying this tag.
    pub tag: Option<String>,
    /// Ended this way.
    pub status: Option<RecordStatus>,
}

impl UsageFilter {
    /// Whether `record` is covered.
    pub fn matches(&self, record: &UsageRecord) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        self.since_ms.is_none_or(|t| record.started_at_ms >= t)
            && self.until_ms.is_none_or(|t| record.started_at_ms < t)
            && eq(&self.key, record.key.as_deref())
            && eq(&self.user, record.user.as_deref())
            && eq(&self.provider, record.provider.as_deref())
            && self
                .model
                .as_deref()
                .is_none_or(|m| record.model == m || record.billed_model() == m)
            && self
                .tag
                .as_deref()
                .is_none_or(|t| record.tags.iter().any(|have| have == t))
            && self.status.is_none_or(|s| record.status == s)
    }
}

/// Totals of the records a filter covers, grouped by some dimensions (none: one grand total).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsageQuery {
    /// The dimensions, in order; rows come sorted by them.
    pub group_by: Vec<GroupBy>,
    /// Which records count.
    #[serde(flatten)]
    pub filter: UsageFilter,
}

/// One row of totals: the group's values and what its records add up to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// The value of each grouped dimension (`None` where records have none, e.g. no key).
    pub group: BTreeMap<GroupBy, Option<String>>,
    /// Records in the group.
    pub requests: u64,
    /// Of which answered in full.
    pub ok: u64,
    /// Of which refused or failed.
    pub errors: u64,
    /// Of which cancelled by the caller.
    pub cancelled: u64,
    /// Of which interrupted by a crash.
    pub interrupted: u64,
    /// Of which with locally estimated tokens.
    pub estimated: u64,
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Input tokens read from cache.
    pub cached_tokens: u64,
    /// Input tokens written to cache.
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// What the providers charge, in USD.
    pub provider_cost_usd: f64,
    /// The platform fee, in USD.
    pub fee_usd: f64,
    /// Both, in USD.
    pub total_cost_usd: f64,
}

impl UsageTotals {
    fn add(&mut self, record: &UsageRecord) {
        self.requests += 1;
        match record.status {
            RecordStatus::Ok => self.ok += 1,
            RecordStatus::Error => self.errors += 1,
            RecordStatus::Cancelled => self.cancelled += 1,
            RecordStatus::Interrupted => self.interrupted += 1,
            RecordStatus::Pending => {}
        }
        self.estimated += u64::from(record.estimated);
        let t = record.tokens;
        self.prompt_tokens += t.prompt;
        self.completion_tokens += t.completion;
        self.cached_tokens += t.cached;
        self.cache_write_tokens += t.cache_write;
        self.reasoning_tokens += t.reasoning;
        self.provider_cost_usd += record.cost.provider_usd;
        self.fee_usd += record.cost.fee_usd;
        self.total_cost_usd += record.cost.total_usd;
    }
}

/// The UTC time bucket of a Unix millisecond, as `format` (`%Y-%m-%d`, …).
pub(crate) fn time_bucket(ms: i64, format: &str) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format(format).to_string())
        .unwrap_or_default()
}

/// The values a record takes on one dimension (several for tags, one otherwise).
fn values(record: &UsageRecord, by: GroupBy) -> Vec<Option<String>> {
    match by {
        GroupBy::Model => vec![Some(record.billed_model())],
        GroupBy::Provider => vec![record.provider.clone()],
        GroupBy::Key => vec![record.key.clone()],
        GroupBy::User => vec![record.user.clone()],
        GroupBy::Tag if record.tags.is_empty() => vec![None],
        GroupBy::Tag => record.tags.iter().cloned().map(Some).collect(),
        GroupBy::Status => vec![Some(record.status.as_str().to_owned())],
        GroupBy::Hour => vec![Some(time_bucket(record.started_at_ms, "%Y-%m-%dT%H"))],
        GroupBy::Day => vec![Some(time_bucket(record.started_at_ms, "%Y-%m-%d"))],
        GroupBy::Month => vec![Some(time_bucket(record.started_at_ms, "%Y-%m"))],
    }
}

/// Groups and sums records in memory; the reference every sink's totals must equal.
pub fn aggregate<'r>(
    records: impl IntoIterator<Item = &'r UsageRecord>,
    query: &UsageQuery,
) -> Vec<UsageTotals> {
    let mut groups: BTreeMap<Vec<Option<String>>, UsageTotals> = BTreeMap::new();
    for record in records.into_iter().filter(|r| query.filter.matches(r)) {
        // The cartesian product of the record's values on each dimension.
        let mut keys: Vec<Vec<Option<String>>> = vec![Vec::new()];
        for by in &query.group_by {
            let vals = values(record, *by);
            keys = keys
                .into_iter()
                .flat_map(|k| {
                    vals.iter().map(move |v| {
                        let mut k = k.clone();
                        k.push(v.clone());
                        k
                    })
                })
                .collect();
        }
        for key in keys {
            groups
                .entry(key.clone())
                .or_insert_with(|| UsageTotals {
                    group: query.group_by.iter().copied().zip(key).collect(),
                    ..Default::default()
                })
                .add(record);
        }
    }
    groups.into_values().collect()
}
