//! Gemini → OpenAI decoding of whole answers (choices, finish reasons, usage, logprobs) and of
//! Google error bodies, with the helpers the stream decoder shares.

// ---------------------------------------------------------------------------------------------
// Response decoding
// ---------------------------------------------------------------------------------------------

use std::time::Duration;

use http::header::HeaderMap;
use serde_json::{Value, json};

use super::wire::{
    GeminiLogprobCandidate, GeminiLogprobsResult, GeminiPart, GeminiResponse, GeminiUsage,
};
use crate::error::{Error, ErrorKind, Result};
use crate::providers::openai::retry_after;
use crate::types::{
    ChatCompletion, Choice, CompletionTokensDetails, FinishReason, FunctionCall, FunctionKind,
    JsonObject, PromptTokensDetails, ResponseMessage, ThinkingBlock, ToolCall, Usage,
};

/// What one candidate's parts say, in OpenAI terms.
#[derive(Debug, Default)]
pub(super) struct PartsSummary {
    pub(super) text: String,
    pub(super) reasoning: String,
    pub(super) thinking_blocks: Vec<ThinkingBlock>,
    pub(super) calls: Vec<DecodedCall>,
}

#[derive(Debug)]
pub(super) struct DecodedCall {
    id: Option<String>,
    pub(super) name: String,
    pub(super) arguments: String,
    pub(super) thought_signature: Option<String>,
}

impl PartsSummary {
    pub(super) fn from_parts(parts: &[GeminiPart]) -> Self {
        let mut out = PartsSummary::default();
        for part in parts {
            if let Some(call) = &part.function_call {
                let arguments = match &call.args {
                    None | Some(Value::Null) => "{}".to_owned(),
                    Some(args) => args.to_string(),
                };
                out.calls.push(DecodedCall {
                    id: call.id.clone().filter(|id| !id.is_empty()),
                    name: call.name.clone(),
                    arguments,
                    thought_signature: part.thought_signature.clone(),
                });
                continue;
            }
            let text = part.text.as_deref().unwrap_or("");
            if part.is_thought() {
                out.reasoning.push_str(text);
            } else {
                out.text.push_str(text);
            }
            if let Some(signature) = &part.thought_signature {
                out.thinking_blocks.push(ThinkingBlock::Thinking {
                    thinking: if part.is_thought() {
                        text.to_owned()
                    } else {
                        String::new()
                    },
                    signature: Some(signature.clone()),
                });
            }
        }
        out
    }

    fn has_output(&self) -> bool {
        !self.text.is_empty() || !self.reasoning.is_empty() || !self.calls.is_empty()
    }
}

/// The OpenAI finish reason for a Gemini one.
pub(super) fn map_finish_reason(reason: &str, called_functions: bool) -> FinishReason {
    match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        _ if called_functions => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// Finish reasons where the model tried and failed to call a function.
pub(super) fn is_failed_call(reason: &str) -> bool {
    matches!(
        reason,
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" | "TOO_MANY_TOOL_CALLS"
    )
}

pub(super) fn failed_call_error(provider: &str, reason: &str, message: Option<&str>) -> Error {
    let detail = message.map(|m| format!(": {m}")).unwrap_or_default();
    Error::new(
        ErrorKind::Connection,
        format!("provider `{provider}` ended the answer with {reason} and no output{detail}"),
    )
    .with_provider(provider)
    .with_code(reason.to_ascii_lowercase())
}

pub(super) fn call_id(call: &DecodedCall, token: &str, ordinal: usize) -> String {
    call.id
        .clone()
        .unwrap_or_else(|| format!("call_{token}_{ordinal}"))
}

pub(super) fn decode_response(
    provider: &str,
    response: GeminiResponse,
    id: &str,
    created: u64,
) -> Result<ChatCompletion> {
    let mut choices = Vec::new();
    let mut ordinal = 0;
    for (position, candidate) in response.candidates.iter().enumerate() {
        let index = candidate
            .index
            .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
        let parts = candidate
            .content
            .as_ref()
            .map(|c| PartsSummary::from_parts(&c.parts))
            .unwrap_or_default();
        let reason = candidate.finish_reason.as_deref();
        if let Some(reason) = reason
            && is_failed_call(reason)
            && !parts.has_output()
        {
            return Err(failed_call_error(
                provider,
                reason,
                candidate.finish_message.as_deref(),
            ));
        }
        let tool_calls: Vec<ToolCall> = parts
            .calls
            .iter()
            .map(|call| {
                let id = call_id(call, id, ordinal);
                ordinal += 1;
                let mut extra = JsonObject::new();
                if let Some(signature) = &call.thought_signature {
                    extra.insert("thought_signature".to_owned(), json!(signature));
                }
                ToolCall {
                    id,
                    kind: FunctionKind::Function,
                    function: FunctionCall {
                        name: call.name.clone(),
                        arguments: call.arguments.clone(),
                    },
                    extra,
                }
            })
            .collect();
        let finish_reason = reason.map(|r| map_finish_reason(r, !tool_calls.is_empty()));
        choices.push(Choice {
            index,
            message: ResponseMessage {
                content: (!parts.text.is_empty()).then_some(parts.text),
                reasoning_content: (!parts.reasoning.is_empty()).then_some(parts.reasoning),
                thinking_blocks: (!parts.thinking_blocks.is_empty())
                    .then_some(parts.thinking_blocks),
                tool_calls: (!tool_calls.is_empty()).then_some(Some(tool_calls)),
                ..Default::default()
            },
            finish_reason,
            logprobs: candidate.logprobs_result.as_ref().map(map_logprobs),
            extra: JsonObject::new(),
        });
    }
    if choices.is_empty() {
        let blocked = response
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref())
            .is_some();
        if !blocked {
            return Err(bad_response(
                provider,
                "an answer without candidates".to_owned(),
            ));
        }
        choices.push(Choice {
            index: 0,
            message: ResponseMessage::default(),
            finish_reason: Some(FinishReason::ContentFilter),
            logprobs: None,
            extra: JsonObject::new(),
        });
    }
    Ok(ChatCompletion {
        id: id.to_owned(),
        object: "chat.completion".to_owned(),
        created,
        model: response.model_version.unwrap_or_default(),
        choices,
        usage: response.usage_metadata.as_ref().map(map_usage),
        ..Default::default()
    })
}

/// Gemini's usage in OpenAI's meaning (see the module docs).
pub(super) fn map_usage(u: &GeminiUsage) -> Usage {
    let prompt = u.prompt_token_count.unwrap_or(0) + u.tool_use_prompt_token_count.unwrap_or(0);
    let completion = u.candidates_token_count.unwrap_or(0) + u.thoughts_token_count.unwrap_or(0);
    let audio = u
        .prompt_tokens_details
        .iter()
        .filter(|d| d.modality == "AUDIO")
        .map(|d| d.token_count)
        .reduce(|a, b| a + b);
    let prompt_details =
        (u.cached_content_token_count.is_some() || audio.is_some()).then(|| PromptTokensDetails {
            cached_tokens: u.cached_content_token_count,
            audio_tokens: audio,
            ..Default::default()
        });
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: u.total_token_count.unwrap_or(prompt + completion),
        prompt_tokens_details: prompt_details,
        completion_tokens_details: u.thoughts_token_count.map(|t| CompletionTokensDetails {
            reasoning_tokens: Some(t),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `logprobsResult` as OpenAI's `logprobs: {content: [...], refusal: null}`.
pub(super) fn map_logprobs(result: &GeminiLogprobsResult) -> Value {
    let entry = |c: &GeminiLogprobCandidate| {
        json!({
            "token": c.token,
            "logprob": c.log_probability,
            "bytes": c.token.as_bytes(),
        })
    };
    let content: Vec<Value> = result
        .chosen_candidates
        .iter()
        .enumerate()
        .map(|(k, chosen)| {
            let mut item = entry(chosen);
            let top: Vec<Value> = result
                .top_candidates
                .get(k)
                .map(|t| t.candidates.iter().map(entry).collect())
                .unwrap_or_default();
            item["top_logprobs"] = Value::Array(top);
            item
        })
        .collect();
    json!({ "content": content, "refusal": null })
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The `error` object of a Google error body: `{"error": {...}}`, or the same inside the JSON
/// array `streamGenerateContent` sends without `alt=sse`.
pub(super) fn error_object(value: &Value) -> Option<&Value> {
    match value {
        Value::Object(map) => map.get("error").filter(|e| e.is_object()),
        Value::Array(items) => items.iter().find_map(error_object),
        _ => None,
    }
}

/// The error object of an error body, whether bare JSON or (defensively) SSE-framed.
pub(super) fn parse_error_body(body: &[u8]) -> Option<Value> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return error_object(&value).cloned();
    }
    let text = String::from_utf8_lossy(body);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find_map(|v| error_object(&v).cloned())
}

/// The HTTP status Google pairs with a canonical `status` string.
fn status_for(google_status: &str) -> Option<u16> {
    Some(match google_status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "ALREADY_EXISTS" | "ABORTED" => 409,
        "RESOURCE_EXHAUSTED" => 429,
        "CANCELLED" => 499,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => 500,
        "NOT_IMPLEMENTED" | "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => return None,
    })
}

/// An error from Google's `{"code", "message", "status", "details"}` object. The status is the
/// HTTP one when there is one (in-stream errors have none), except that an invalid API key,
/// which Google answers with 400, is a 401 so callers see an authentication error.
pub(super) fn google_error(
    provider: &str,
    http_status: Option<u16>,
    error: &Value,
    headers: Option<&HeaderMap>,
) -> Error {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| error.to_string());
    let google_status = error.get("status").and_then(Value::as_str);
    let details = error.get("details").and_then(Value::as_array);
    let reason = details.into_iter().flatten().find_map(|d| {
        d.get("reason")
            .and_then(Value::as_str)
            .filter(|_| type_is(d, "ErrorInfo"))
    });
    let code = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c));
    let mut status = http_status
        .filter(|s| (400..600).contains(s))
        .or(code)
        .or_else(|| google_status.and_then(status_for))
        .unwrap_or(502);
    if reason == Some("API_KEY_INVALID") || google_status == Some("UNAUTHENTICATED") {
        status = 401;
    }
    let body = json!({ "error": { "message": message } });
    let mut err = Error::upstream(provider, status, body.to_string().as_bytes());
    if let Some(google_status) = google_status {
        err = err.with_code(google_status);
    }
    let wait = headers
        .and_then(retry_after)
        .or_else(|| retry_delay(details.map(Vec::as_slice).unwrap_or(&[])));
    err.with_retry_after(wait)
}

fn type_is(detail: &Value, name: &str) -> bool {
    detail
        .get("@type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.rsplit('.').next() == Some(name))
}

/// `RetryInfo.retryDelay` (`"37s"`, `"0.5s"`) from the error details.
fn retry_delay(details: &[Value]) -> Option<Duration> {
    details
        .iter()
        .filter(|d| type_is(d, "RetryInfo"))
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .and_then(|s| s.trim().strip_suffix('s'))
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The same error with another message (the kind, status and code are kept).
pub(super) fn rewrap(err: Error, message: String) -> Error {
    let body = json!({ "error": { "message": message } });
    let mut out = Error::upstream(
        err.provider().unwrap_or_default(),
        err.status(),
        body.to_string().as_bytes(),
    );
    if let Some(Value::String(code)) = err.code() {
        out = out.with_code(code.clone());
    }
    out.with_retry_after(err.retry_after())
}

pub(super) fn bad_response(provider: &str, what: String) -> Error {
    Error::new(
        ErrorKind::Connection,
        format!("provider `{provider}` sent {what}"),
    )
    .with_provider(provider)
}

pub(super) fn from_value<T: serde::de::DeserializeOwned>(
    provider: &str,
    value: Value,
) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        bad_response(
            provider,
            format!(
                "a response that is not a valid Gemini answer (at `{}`): {}",
                e.path(),
                e.inner()
            ),
        )
    })
}

pub(super) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

pub(super) fn generated_id() -> String {
    let suffix: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(24)
        .collect();
    format!("chatcmpl-{suffix}")
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
