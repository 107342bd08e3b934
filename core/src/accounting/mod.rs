//! Local cost accounting: every request is opened in the usage ledger when it is accepted and
//! settled when it ends, with its tokens and cost; budgets reserve a request's worst case before
//! it goes upstream; totals are asked of the ledger.

mod bodies;
mod budget;
mod journal;
mod ledger;
mod limits;
mod query;
mod record;
pub mod request_log;
mod sink;
mod sqlite;
pub mod tokens;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use bodies::RequestBodies;
pub use budget::{BudgetConfig, BudgetPeriod, BudgetScope, BudgetStatus, Budgets};
pub(crate) use budget::{Charge, Reservation};
pub use ledger::{Ledger, RequestEndHook, new_instance_id};
pub(crate) use limits::LimitHold;
pub use limits::{LimitStatus, RateLimitStatus, RateLimits, format_duration};
pub use query::{GroupBy, UsageFilter, UsageQuery, UsageTotals, aggregate};
pub use record::{RecordStatus, TokenCounts, UsageRecord};
pub use sink::{DEFAULT_MEMORY_RECORDS, LedgerError, LedgerSink, MemorySink};
pub use sqlite::SqliteSink;

use crate::error::{Attempt, Error};
use crate::metrics::Metrics;
use crate::pricing::{Cost, PriceTag};
use crate::types::Usage;

/// Who a call is made for: what the ledger records and budgets charge, beside the request's
/// own `user` and `metadata.tags`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallContext {
    /// The API key (its id) the call is made with; set by the server, never by the request.
    pub key: Option<String>,
    /// The end user; overrides the request's `user`.
    pub user: Option<String>,
    /// Labels to total by; added to the request's `metadata.tags`.
    pub tags: Vec<String>,
    /// Display prefix of the key, for logs (never the whole key; not stored in the ledger).
    pub key_label: Option<String>,
    /// The limits of `key` (rate, budget, models), enforced when a request is accepted; set by
    /// the server from the key store, never by a caller's data.
    #[serde(skip)]
    pub limits: Option<crate::keys::KeyLimits>,
}

/// The time now in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A new request id, `req_` and 24 hex digits: the time in milliseconds (12 digits), then 48
/// random bits. Ids that grow with time keep the ledger's primary-key inserts at the end of
/// its index, where a batch touches a few pages instead of one page per record.
pub(crate) fn new_request_id() -> String {
    let ms = u64::try_from(now_ms()).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("req_{ms:012x}{:012x}", fastrand::u64(..) >> 16)
}

/// How a request ended, for its ticket.
#[derive(Debug, Default)]
pub(crate) struct Ending {
    pub status: Option<RecordStatus>,
    pub http_status: Option<u16>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub provider: Option<String>,
    pub provider_model: Option<String>,
    pub attempts: Vec<Attempt>,
    /// Usage the provider reported.
    pub usage: Option<Usage>,
    /// Without usage from the provider, count the tokens locally: the request reached a model
    /// (it was cancelled, or its stream broke), so the provider bills something.
    pub estimate: bool,
    /// Output tokens counted locally.
    pub completion_estimate: u64,
    /// Prices of the target that served (or was tried last).
    pub price: Option<PriceTag>,
    pub ttft: Option<Duration>,
    /// The answer as the caller got it (JSON), kept only with `server.log_bodies`.
    pub response_body: Option<String>,
}

impl Ending {
    /// The ending of a request that failed with `error`.
    pub(crate) fn failed(error: &Error) -> Self {
        let last = error.attempts().last();
        Ending {
            status: Some(RecordStatus::Error),
            http_status: Some(error.status()),
            error_type: error
                .to_body()
                .error
                .kind
                .or_else(|| Some(error.kind().error_type().to_owned())),
            error_message: Some(error.message().to_owned()),
            provider: last
                .map(|a| a.provider.clone())
                .or_else(|| error.provider().map(str::to_owned)),
            provider_model: last.map(|a| a.model.clone()),
            attempts: error.attempts().to_vec(),
            ..Default::default()
        }
    }
}

/// An accepted request's place in the ledger and its budget holds: settled exactly once, by
/// [`Ticket::settle`] or, if the request is dropped first, as `cancelled`.
#[derive(Debug)]
pub(crate) struct Ticket {
    ledger: Ledger,
    budgets: Arc<Budgets>,
    record: UsageRecord,
    reservation: Reservation,
    started: Instant,
    prompt_estimate: u64,
    /// Prices of the first target, for a request dropped before any answer.
    first_price: PriceTag,
    limit_hold: Option<LimitHold>,
    settled: bool,
    metrics: Arc<Metrics>,
    /// The `provider/model` planned first, to count fallbacks.
    first_target: Option<String>,
    key_label: Option<String>,
    /// The request (JSON) when bodies are kept (`server.log_bodies`).
    request_body: Option<String>,
}

/// What a ticket is opened with.
pub(crate) struct Opening<'a> {
    pub endpoint: &'a str,
    pub stream: bool,
    pub model: &'a str,
    pub context: &'a CallContext,
    pub request_user: Option<&'a str>,
    pub request_tags: Vec<String>,
    pub prompt_estimate: u64,
    pub first_price: PriceTag,
    /// Every `provider/model` the request may go to, for model budgets.
    pub targets: &'a [String],
    /// The most the request can cost, reserved on its budgets.
    pub worst_usd: f64,
    /// Where the request's metrics go.
    pub metrics: &'a Arc<Metrics>,
    /// The `provider/model` planned first.
    pub first_target: Option<String>,
    /// The request (JSON) to keep with its record, when `server.log_bodies` is on.
    pub request_body: Option<String>,
    /// What the request took from its key's rate limits, corrected when it settles.
    pub limit_hold: Option<LimitHold>,
}

impl Ticket {
    /// Opens a pending record for an accepted request (waiting for a durable store to have
    /// it) after reserving its worst case on its budgets. A refused request is recorded as
    /// an error and its error returned.
    pub(crate) async fn open(
        ledger: &Ledger,
        budgets: &Arc<Budgets>,
        opening: Opening<'_>,
    ) -> Result<Ticket, Error> {
        let context = opening.context;
        let mut tags: Vec<String> = Vec::new();
        for tag in context.tags.iter().cloned().chain(opening.request_tags) {
            if !tag.is_empty() && !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let record = UsageRecord {
            stream: opening.stream,
            key: context.key.clone(),
            user: context
                .user
                .clone()
                .or_else(|| opening.request_user.map(str::to_owned)),
            tags,
            ..UsageRecord::pending(
                new_request_id(),
                ledger.instance(),
                now_ms(),
                opening.endpoint,
                opening.model,
            )
        };
        let started = Instant::now();
        opening.metrics.request_started(&record.endpoint);
        let reservation = budgets.reserve(
            &Charge {
                key: record.key.as_deref(),
                user: record.user.as_deref(),
                model: &record.model,
                targets: opening.targets,
                worst_usd: opening.worst_usd,
                now_ms: record.started_at_ms,
            },
            ledger,
        );
        let mut ticket = Ticket {
            ledger: ledger.clone(),
            budgets: budgets.clone(),
            record,
            reservation: Reservation::default(),
            started,
            prompt_estimate: opening.prompt_estimate,
            first_price: opening.first_price,
            limit_hold: opening.limit_hold,
            settled: false,
            metrics: opening.metrics.clone(),
            first_target: opening.first_target,
            key_label: context.key_label.clone(),
            request_body: opening.request_body,
        };
        match reservation {
            Ok(reservation) => ticket.reservation = reservation,
            Err(refusal) => {
                ticket.settle(Ending::failed(&refusal));
                return Err(refusal);
            }
        }
        if let Err(e) = ledger.open(ticket.record.clone()).await {
            // Serving a request the ledger cannot hold would lose it: refuse instead.
            let error = Error::new(
                crate::error::ErrorKind::ServiceUnavailable,
                format!("the request cannot be recorded, so it is not served: {e}"),
            );
            ticket.settle(Ending::failed(&error));
            return Err(error);
        }
        Ok(ticket)
    }

    /// The request id.
    pub(crate) fn id(&self) -> &str {
        &self.record.id
    }

    /// Time since the request was accepted.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Settles the record with how the request ended and releases its budget holds. Tokens
    /// come from the provider's usage when there is one, else from local counts (and the record
    /// says so). Only the first call counts.
    pub(crate) fn settle(&mut self, ending: Ending) {
        if self.settled {
            return;
        }
        self.settled = true;
        let record = &mut self.record;
        record.status = ending.status.unwrap_or(RecordStatus::Ok);
        record.ended_at_ms = Some(now_ms());
        record.http_status = ending.http_status;
        record.error_type = ending.error_type;
        record.error_message = ending.error_message;
        record.provider = ending.provider;
        record.provider_model = ending.provider_model;
        record.attempts = ending.attempts;
        record.latency_ms = Some(duration_ms(self.started.elapsed()));
        record.ttft_ms = ending.ttft.map(duration_ms);
        let price = ending.price.unwrap_or_else(|| self.first_price.clone());
        match ending.usage {
            Some(usage) => {
                record.tokens = TokenCounts::from_usage(&usage);
                record.estimated = false;
                record.cost = price.cost(&usage);
            }
            None if ending.estimate => {
                record.tokens = TokenCounts {
                    prompt: self.prompt_estimate,
                    completion: ending.completion_estimate,
                    ..Default::default()
                };
                record.estimated = true;
                record.cost = price.cost(&record.tokens.to_usage());
            }
            // A refusal or a request every target refused: providers do not bill errors.
            None => {
                record.tokens = TokenCounts::default();
                record.cost = Cost::default();
            }
        }
        let reservation = std::mem::take(&mut self.reservation);
        self.budgets.settle(reservation, &self.record);
        self.metrics
            .request_ended(&self.record, self.first_target.as_deref());
        if let Some(hold) = self.limit_hold.take() {
            hold.settle(self.record.tokens.prompt + self.record.tokens.completion);
        }
        // The request's log line is written by the ledger's writer, off the path of the answer.
        self.ledger
            .settle_logged(self.record.clone(), self.key_label.take());
        if let Some(request) = self.request_body.take() {
            self.ledger.store_bodies(RequestBodies {
                id: self.record.id.clone(),
                request: Some(request),
                response: ending.response_body,
            });
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(Ending {
                status: Some(RecordStatus::Cancelled),
                estimate: true,
                ..Default::default()
            });
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
