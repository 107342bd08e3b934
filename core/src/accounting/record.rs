//! One request as the usage ledger records it.

use serde::{Deserialize, Serialize};

use crate::error::Attempt;
use crate::pricing::Cost;
use crate::types::{CompletionTokensDetails, PromptTokensDetails, Usage};

/// Where a ledger record is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Accepted and not finished yet.
    Pending,
    /// Answered in full.
    Ok,
    /// Refused or failed (the record says why).
    Error,
    /// The caller went away before the answer was complete.
    Cancelled,
    /// The process ended while the request was in flight; found on the next start.
    Interrupted,
}

impl RecordStatus {
    /// The name stored and shown: `pending`, `ok`, `error`, `cancelled`, `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Pending => "pending",
            RecordStatus::Ok => "ok",
            RecordStatus::Error => "error",
            RecordStatus::Cancelled => "cancelled",
            RecordStatus::Interrupted => "interrupted",
        }
    }

    /// Reads a stored name back.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "pending" => RecordStatus::Pending,
            "ok" => RecordStatus::Ok,
            "error" => RecordStatus::Error,
            "cancelled" => RecordStatus::Cancelled,
            "interrupted" => RecordStatus::Interrupted,
            _ => return None,
        })
    }
}

impl std::fmt::Display for RecordStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tokens of one request by kind, in OpenAI's meaning: `prompt` includes `cached` and
/// `cache_write`, `completion` includes `reasoning`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    /// Every input token.
    pub prompt: u64,
    /// Every output token.
    pub completion: u64,
    /// Input tokens read from the provider's cache.
    pub cached: u64,
    /// Input tokens written to the provider's cache.
    pub cache_write: u64,
    /// Output tokens spent on reasoning.
    pub reasoning: u64,
}

impl TokenCounts {
    /// The counts of an OpenAI-shaped usage object.
    pub fn from_usage(usage: &Usage) -> Self {
        let prompt = usage.prompt_tokens_details.as_ref();
        TokenCounts {
            prompt: usage.prompt_tokens,
            completion: usage.completion_tokens,
            cached: prompt.and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write: prompt.and_then(|d| d.cache_write_tokens).unwrap_or(0),
            reasoning: usage
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }

    /// The same counts as an OpenAI-shaped usage object (no cost).
    pub fn to_usage(self) -> Usage {
        Usage {
            prompt_tokens: self.prompt,
            completion_tokens: self.completion,
            total_tokens: self.prompt + self.completion,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(self.cached),
                cache_write_tokens: Some(self.cache_write),
                ..Default::default()
            }),
            completion_tokens_details: Some(CompletionTokensDetails {
                reasoning_tokens: Some(self.reasoning),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `prompt + completion`.
    pub fn total(self) -> u64 {
        self.prompt + self.completion
    }
}

/// One request in the usage ledger: who asked, what served it, what it used and cost, and
/// how it ended. Opened (status `pending`) when the request is accepted, replaced by its
/// settled form when it ends; the id keeps it to one record whatever happens in between.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The request id (`req_…`), also sent to HTTP clients as `x-request-id`.
    pub id: String,
    /// The ledger (one per process) that opened the record; used to find interrupted ones.
    pub instance: String,
    /// When the request was accepted, in Unix milliseconds.
    pub started_at_ms: i64,
    /// When it ended, in Unix milliseconds.
    pub ended_at_ms: Option<i64>,
    /// The API it came through: `chat.completions`, `messages`, …
    pub endpoint: String,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// The API key (its id) the request was made with.
    pub key: Option<String>,
    /// The end user: the call's own, else the request's `user`.
    pub user: Option<String>,
    /// Free labels: the call's own and the request's `metadata.tags`.
    pub tags: Vec<String>,
    /// The model as requested (`provider/model` or an alias).
    pub model: String,
    /// The provider id that served (or last tried) the request.
    pub provider: Option<String>,
    /// The model name at that provider.
    pub provider_model: Option<String>,
    /// How the request ended.
    pub status: RecordStatus,
    /// The HTTP status of the answer (200, or the error's).
    pub http_status: Option<u16>,
    /// The error's OpenAI type (`rate_limit_error`, `budget_exceeded`, …) when it failed.
    pub error_type: Option<String>,
    /// The error message when it failed.
    pub error_message: Option<String>,
    /// Tokens used, by kind.
    pub tokens: TokenCounts,
    /// The tokens were counted locally (the provider reported none, or the request ended
    /// before it did), so they and the cost are estimates.
    pub estimated: bool,
    /// Provider cost, platform fee and total, in USD.
    pub cost: Cost,
    /// Time from acceptance to the end of the answer, in milliseconds.
    pub latency_ms: Option<u64>,
    /// Time from acceptance to the first streamed chunk (or the whole answer), in milliseconds.
    pub ttft_ms: Option<u64>,
    /// Every attempt the router made.
    pub attempts: Vec<Attempt>,
}

impl UsageRecord {
    /// A newly accepted request's record: pending, nothing known yet of how it will end.
    pub fn pending(
        id: impl Into<String>,
        instance: impl Into<String>,
        started_at_ms: i64,
        endpoint: impl Into<String>,
        model: impl Into<String>,
    ) -> Self {
        UsageRecord {
            id: id.into(),
            instance: instance.into(),
            started_at_ms,
            ended_at_ms: None,
            endpoint: endpoint.into(),
            stream: false,
            key: None,
            user: None,
            tags: Vec::new(),
            model: model.into(),
            provider: None,
            provider_model: None,
            status: RecordStatus::Pending,
            http_status: None,
            error_type: None,
            error_message: None,
            tokens: TokenCounts::default(),
            estimated: false,
            cost: Cost::default(),
            latency_ms: None,
            ttft_ms: None,
            attempts: Vec::new(),
        }
    }

    /// The id the bill groups by: `provider/provider_model` when served, else the model asked.
    pub fn billed_model(&self) -> String {
        match (&self.provider, &self.provider_model) {
            (Some(p), Some(m)) => format!("{p}/{m}"),
            _ => self.model.clone(),
        }
    }
}
