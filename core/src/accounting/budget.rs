//! Spending caps in USD per key, user or model, per day, month or in total.
//!
//! Reserve, then settle: before a request goes upstream its worst-case cost is reserved on
//! every budget it falls under, all at once under one lock, and refused if any of them would
//! go over its cap; when it ends, the reservation is replaced by the real cost. So requests
//! that run at the same time can never spend more than a cap together.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::ledger::Ledger;
use super::query::{UsageFilter, UsageQuery};
use super::record::UsageRecord;
use crate::error::{Error, ErrorKind};

/// How long a budget's spending counts before it starts again from zero (UTC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    /// A calendar day, from midnight UTC.
    Day,
    /// A calendar month, from the 1st at midnight UTC.
    Month,
    /// Forever.
    #[default]
    Total,
}

impl BudgetPeriod {
    /// The period's name: `day`, `month`, `total`.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Month => "month",
            BudgetPeriod::Total => "total",
        }
    }

    /// The start of the period containing `now_ms` and the start of the next one (Unix ms).
    pub fn window(self, now_ms: i64) -> (Option<i64>, Option<i64>) {
        let Some(now) = DateTime::<Utc>::from_timestamp_millis(now_ms) else {
            return (None, None);
        };
        let date = now.date_naive();
        let start_of = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_millis())
        };
        match self {
            BudgetPeriod::Total => (None, None),
            BudgetPeriod::Day => (
                start_of(date),
                date.checked_add_signed(TimeDelta::days(1))
                    .and_then(start_of),
            ),
            BudgetPeriod::Month => {
                let first = date.with_day(1);
                (
                    first.and_then(start_of),
                    first
                        .and_then(|d| d.checked_add_months(Months::new(1)))
                        .and_then(start_of),
                )
            }
        }
    }
}

/// What a budget applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// An API key.
    Key,
    /// An end user.
    User,
    /// A model: as requested (an alias) or a `provider/model` target.
    Model,
}

impl BudgetScope {
    /// The scope's name: `key`, `user`, `model`.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetScope::Key => "key",
            BudgetScope::User => "user",
            BudgetScope::Model => "model",
        }
    }
}

/// One budget as configured: exactly one of `key`, `user` or `model` (`"*"` gives each key,
/// user or model a cap of its own), a cap in USD and a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// A name to show; defaults to `scope:id/period`, e.g. `user:*/day`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The API key (id) it caps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The end user it caps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The model it caps: an alias or `provider/model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The cap in USD, platform fee included.
    pub limit_usd: f64,
    /// When spending starts again from zero.
    #[serde(default)]
    pub period: BudgetPeriod,
}

impl BudgetConfig {
    /// The scope and the id it names (`*` for every one).
    pub fn scope(&self) -> Option<(BudgetScope, &str)> {
        match (&self.key, &self.user, &self.model) {
            (Some(k), None, None) => Some((BudgetScope::Key, k)),
            (None, Some(u), None) => Some((BudgetScope::User, u)),
            (None, None, Some(m)) => Some((BudgetScope::Model, m)),
            _ => None,
        }
    }

    /// The name shown in errors and reports.
    pub fn display_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match self.scope() {
            Some((scope, id)) => format!("{}:{id}/{}", scope.as_str(), self.period.as_str()),
            None => format!("budget/{}", self.period.as_str()),
        }
    }

    /// Checks the budget; the message names the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.scope().is_none() {
            return Err("set exactly one of `key`, `user` or `model`".into());
        }
        if self.scope().is_some_and(|(_, id)| id.is_empty()) {
            return Err("the key, user or model must not be empty (`*` means each one)".into());
        }
        if !self.limit_usd.is_finite() || self.limit_usd < 0.0 {
            return Err(format!(
                "`limit_usd` must be a non-negative number, not {}",
                self.limit_usd
            ));
        }
        Ok(())
    }
}

/// A budget's state for one subject and period, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStatus {
    /// The budget's name.
    pub name: String,
    /// What it applies to.
    pub scope: BudgetScope,
    /// The key, user or model this account is for.
    pub subject: String,
    /// The period.
    pub period: BudgetPeriod,
    /// The cap in USD.
    pub limit_usd: f64,
    /// Spent in the current period, in USD.
    pub spent_usd: f64,
    /// Held for requests in flight, in USD.
    pub reserved_usd: f64,
    /// When the period starts again (Unix ms); `None` for `total`.
    pub resets_at_ms: Option<i64>,
}

/// What a request may be charged to, and the most it can cost.
#[derive(Debug, Clone)]
pub(crate) struct Charge<'a> {
    pub key: Option<&'a str>,
    pub user: Option<&'a str>,
    /// The model as requested.
    pub model: &'a str,
    /// Every `provider/model` the request may be sent to.
    pub targets: &'a [String],
    pub worst_usd: f64,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AccountId {
    rule: String,
    subject: String,
    period_start: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Account {
    spent: f64,
    reserved: f64,
    /// Requests holding a reservation; at zero `reserved` is reset to exactly 0, so rounding
    /// in the running sum cannot build up.
    holders: u64,
}

#[derive(Debug)]
struct Hold {
    account: AccountId,
    scope: BudgetScope,
    amount: f64,
}

/// What a request holds on its budgets until it is settled.
#[derive(Debug, Default)]
pub(crate) struct Reservation {
    holds: Vec<Hold>,
}

/// Every budget and its accounts (one per subject and period).
#[derive(Debug, Default)]
pub struct Budgets {
    rules: RwLock<Vec<BudgetConfig>>,
    accounts: Mutex<HashMap<AccountId, Account>>,
}

impl Budgets {
    /// Budgets from validated configuration.
    pub fn new(rules: Vec<BudgetConfig>) -> Self {
        Budgets {
            rules: RwLock::new(rules),
            accounts: Mutex::default(),
        }
    }

    /// Whether no budget is set (then nothing is reserved).
    pub fn is_empty(&self) -> bool {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Adds a budget, or replaces the one with the same name.
    pub fn set(&self, rule: BudgetConfig) -> Result<(), Error> {
        rule.validate()
            .map_err(|m| Error::new(ErrorKind::BadRequest, format!("invalid budget: {m}")))?;
        let name = rule.display_name();
        let mut rules = self.rules.write().unwrap_or_else(PoisonError::into_inner);
        rules.retain(|r| r.display_name() != name);
        rules.push(rule);
        drop(rules);
        // Its accounts start again from the ledger with the new cap.
        self.accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| id.rule != name);
        Ok(())
    }

    /// Makes the budget named `name` be `rule` (or absent), touching nothing when it already
    /// is: unlike [`Budgets::set`], an unchanged rule keeps its accounts and the holds of
    /// requests in flight. Used per request for the budget stored with an API key.
    pub fn sync(&self, name: &str, rule: Option<BudgetConfig>) -> Result<(), Error> {
        {
            let rules = self.rules.read().unwrap_or_else(PoisonError::into_inner);
            let current = rules.iter().find(|r| r.display_name() == name);
            if current == rule.as_ref() {
                return Ok(());
            }
        }
        match rule {
            Some(rule) => self.set(rule),
            None => {
                self.remove(name);
                Ok(())
            }
        }
    }

    /// Removes the budget with this name; whether there was one.
    pub fn remove(&self, name: &str) -> bool {
        let mut rules = self.rules.write().unwrap_or_else(PoisonError::into_inner);
        let before = rules.len();
        rules.retain(|r| r.display_name() != name);
        before != rules.len()
    }

    /// The budgets in force.
    pub fn rules(&self) -> Vec<BudgetConfig> {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The state of every account used in its current period.
    pub fn status(&self, now_ms: i64) -> Vec<BudgetStatus> {
        let rules = self.rules();
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<BudgetStatus> = accounts
            .iter()
            .filter_map(|(id, account)| {
                let rule = rules.iter().find(|r| r.display_name() == id.rule)?;
                let (start, next) = rule.period.window(now_ms);
                if start != id.period_start {
                    return None;
                }
                Some(BudgetStatus {
                    name: id.rule.clone(),
                    scope: rule.scope()?.0,
                    subject: id.subject.clone(),
                    period: rule.period,
                    limit_usd: rule.limit_usd,
                    spent_usd: account.spent,
                    reserved_usd: account.reserved,
                    resets_at_ms: next,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.name, &a.subject).cmp(&(&b.name, &b.subject)));
        out
    }

    /// The budgets a charge falls under, with the subject each one's account is for.
    fn matching(&self, charge: &Charge<'_>) -> Vec<(BudgetConfig, String)> {
        let rules = self.rules.read().unwrap_or_else(PoisonError::into_inner);
        rules
            .iter()
            .filter_map(|rule| {
                let (scope, id) = rule.scope()?;
                let subject = match scope {
                    BudgetScope::Key => charge.key.filter(|k| id == "*" || *k == id)?,
                    BudgetScope::User => charge.user.filter(|u| id == "*" || *u == id)?,
                    BudgetScope::Model if id == "*" => charge.model,
                    BudgetScope::Model => (charge.model == id
                        || charge.targets.iter().any(|t| t == id))
                    .then_some(id)?,
                };
                Some((rule.clone(), subject.to_owned()))
            })
            .collect()
    }

    /// Reserves the charge's worst case on every budget it falls under, or refuses it with a
    /// 429 `budget_exceeded` naming the budget and when it resets. Spending before this process
    /// started is read from the ledger the first time an account is used in a period.
    pub(crate) fn reserve(
        &self,
        charge: &Charge<'_>,
        ledger: &Ledger,
    ) -> Result<Reservation, Error> {
        let matching = self.matching(charge);
        if matching.is_empty() {
            return Ok(Reservation::default());
        }
        let mut ids = Vec::with_capacity(matching.len());
        for (rule, subject) in &matching {
            let (start, _) = rule.period.window(charge.now_ms);
            let id = AccountId {
                rule: rule.display_name(),
                subject: subject.clone(),
                period_start: start,
            };
            let known = self
                .accounts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&id);
            if !known {
                let spent = spent_in_ledger(ledger, rule, subject, start)?;
                self.accounts
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(id.clone())
                    .or_insert(Account {
                        spent,
                        ..Default::default()
                    });
            }
            ids.push(id);
        }
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        for ((rule, subject), id) in matching.iter().zip(&ids) {
            let account = accounts.get(id).copied().unwrap_or_default();
            if account.spent + account.reserved + charge.worst_usd > rule.limit_usd {
                return Err(exceeded(rule, subject, account, charge));
            }
        }
        let mut holds = Vec::with_capacity(ids.len());
        for ((rule, _), id) in matching.iter().zip(ids) {
            let account = accounts.entry(id.clone()).or_default();
            account.reserved += charge.worst_usd;
            account.holders += 1;
            holds.push(Hold {
                account: id,
                scope: rule.scope().map_or(BudgetScope::Key, |(s, _)| s),
                amount: charge.worst_usd,
            });
        }
        Ok(Reservation { holds })
    }

    /// Replaces a reservation by what the request really cost.
    pub(crate) fn settle(&self, reservation: Reservation, record: &UsageRecord) {
        if reservation.holds.is_empty() {
            return;
        }
        let billed = record.billed_model();
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        for hold in reservation.holds {
            let Some(account) = accounts.get_mut(&hold.account) else {
                continue;
            };
            account.holders = account.holders.saturating_sub(1);
            account.reserved = if account.holders == 0 {
                0.0
            } else {
                (account.reserved - hold.amount).max(0.0)
            };
            // A model budget pays only when that model served; an alias budget always does.
            let charged = match hold.scope {
                BudgetScope::Model => {
                    record.model == hold.account.subject || billed == hold.account.subject
                }
                _ => true,
            };
            if charged {
                account.spent += record.cost.total_usd;
            }
        }
    }
}

fn spent_in_ledger(
    ledger: &Ledger,
    rule: &BudgetConfig,
    subject: &str,
    since_ms: Option<i64>,
) -> Result<f64, Error> {
    let mut filter = UsageFilter {
        since_ms,
        ..Default::default()
    };
    match rule.scope() {
        Some((BudgetScope::Key, _)) => filter.key = Some(subject.to_owned()),
        Some((BudgetScope::User, _)) => filter.user = Some(subject.to_owned()),
        Some((BudgetScope::Model, _)) => filter.model = Some(subject.to_owned()),
        None => return Ok(0.0),
    }
    let totals = ledger
        .totals(&UsageQuery {
            group_by: Vec::new(),
            filter,
        })
        .map_err(|e| {
            Error::new(
                ErrorKind::ServiceUnavailable,
                format!("cannot check the budget `{}`: {e}", rule.display_name()),
            )
        })?;
    Ok(totals.iter().fold(0.0, |sum, t| sum + t.total_cost_usd))
}

fn exceeded(rule: &BudgetConfig, subject: &str, account: Account, charge: &Charge<'_>) -> Error {
    let (_, next) = rule.period.window(charge.now_ms);
    let resets = match next.and_then(DateTime::<Utc>::from_timestamp_millis) {
        Some(t) => format!("It resets at {}.", t.format("%Y-%m-%dT%H:%M:%SZ")),
        None => "It does not reset (period: total).".to_owned(),
    };
    let scope = rule.scope().map_or("", |(s, _)| s.as_str());
    let retry_after =
        next.map(|n| Duration::from_millis(u64::try_from(n - charge.now_ms).unwrap_or(0)));
    Error::new(
        ErrorKind::RateLimit,
        format!(
            "Budget `{}` ({scope} `{subject}`) would be exceeded: limit ${:.6}, spent ${:.6}, held by requests in flight ${:.6}, this request may cost up to ${:.6}. {resets}",
            rule.display_name(),
            rule.limit_usd,
            account.spent,
            account.reserved,
            charge.worst_usd,
        ),
    )
    .with_type("budget_exceeded")
    .with_code("budget_exceeded")
    .with_retry_after(retry_after)
}
