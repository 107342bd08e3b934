//! `CompletionUsage` with OpenAI's meaning and opengateway's `cost`.

use serde::Serialize;

use super::JsonObject;
use super::with_extra::deserialize_with_extra;

/// Token usage of a request. `prompt_tokens` counts every input token (cached ones included);
/// `completion_tokens` counts every output token (reasoning included).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Input tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Output tokens, reasoning included.
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`.
    pub total_tokens: u64,
    /// Breakdown of the input tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// Breakdown of the output tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// opengateway: the request's cost in USD, computed locally.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(Usage, "a usage object", {
    "prompt_tokens" => prompt_tokens: default,
    "completion_tokens" => completion_tokens: default,
    "total_tokens" => total_tokens: default,
    "prompt_tokens_details" => prompt_tokens_details: default,
    "completion_tokens_details" => completion_tokens_details: default,
    "cost" => cost: default,
});

/// `prompt_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PromptTokensDetails {
    /// Input tokens read from the provider's prompt cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// opengateway: input tokens written to the provider's prompt cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    /// Audio input tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(PromptTokensDetails, "a prompt_tokens_details object", {
    "cached_tokens" => cached_tokens: default,
    "cache_write_tokens" => cache_write_tokens: default,
    "audio_tokens" => audio_tokens: default,
});

/// `completion_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompletionTokensDetails {
    /// Output tokens spent on reasoning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Audio output tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Predicted tokens that appeared in the output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_prediction_tokens: Option<u64>,
    /// Predicted tokens that did not appear in the output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_prediction_tokens: Option<u64>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(CompletionTokensDetails, "a completion_tokens_details object", {
    "reasoning_tokens" => reasoning_tokens: default,
    "audio_tokens" => audio_tokens: default,
    "accepted_prediction_tokens" => accepted_prediction_tokens: default,
    "rejected_prediction_tokens" => rejected_prediction_tokens: default,
});
