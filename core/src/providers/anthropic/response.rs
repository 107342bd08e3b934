//! Anthropic response → OpenAI completion: the non-streamed answer, usage and finish-reason
//! mapping, and error bodies in OpenAI's shape.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::types::{
    ChatCompletion, Choice, CompletionTokensDetails, FinishReason, FunctionCall, FunctionKind,
    JsonObject, PromptTokensDetails, ResponseMessage, ThinkingBlock, ToolCall, Usage,
};

// ---------------------------------------------------------------------------------------------
// Anthropic response -> OpenAI completion
// ---------------------------------------------------------------------------------------------

/// A Messages API answer (`type: message`).
#[derive(Debug, Deserialize)]
struct AnthropicMessage {
    id: String,
    model: String,
    #[serde(default)]
    content: Vec<AnthropicBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// A content block of an answer (or a `content_block_start` event).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum AnthropicBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Server tool calls and results (`server_tool_use`, `web_search_tool_result`, ...).
    #[serde(other)]
    Other,
}

/// Anthropic usage, as the answer or a stream event reports it (stream counts are cumulative).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct AnthropicUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens_details: Option<AnthropicOutputDetails>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct AnthropicOutputDetails {
    #[serde(default)]
    thinking_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Folds in a later report: counts only grow, so the larger value is the current one.
    pub(super) fn merge(&mut self, later: &AnthropicUsage) {
        let max = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.input_tokens = max(self.input_tokens, later.input_tokens);
        self.output_tokens = max(self.output_tokens, later.output_tokens);
        self.cache_creation_input_tokens = max(
            self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        self.cache_read_input_tokens =
            max(self.cache_read_input_tokens, later.cache_read_input_tokens);
        let thinking = max(self.thinking_tokens(), later.thinking_tokens());
        if thinking.is_some() {
            self.output_tokens_details = Some(AnthropicOutputDetails {
                thinking_tokens: thinking,
            });
        }
    }

    fn thinking_tokens(&self) -> Option<u64> {
        self.output_tokens_details
            .as_ref()
            .and_then(|d| d.thinking_tokens)
    }

    /// OpenAI's meaning: `input_tokens` excludes cache reads and writes, `prompt_tokens`
    /// counts every input token; `output_tokens` already includes thinking.
    pub(super) fn to_openai(&self) -> Usage {
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        let cache_write = self.cache_creation_input_tokens.unwrap_or(0);
        let prompt = self.input_tokens.unwrap_or(0) + cache_read + cache_write;
        let completion = self.output_tokens.unwrap_or(0);
        let reported_cache =
            self.cache_read_input_tokens.is_some() || self.cache_creation_input_tokens.is_some();
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: reported_cache.then(|| PromptTokensDetails {
                cached_tokens: Some(cache_read),
                cache_write_tokens: Some(cache_write),
                ..Default::default()
            }),
            completion_tokens_details: self.thinking_tokens().map(|t| CompletionTokensDetails {
                reasoning_tokens: Some(t),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Anthropic's `stop_reason` in OpenAI's terms.
pub(super) fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        // `pause_turn`: a long server-tool turn paused; what came so far is a complete message
        // the caller can send back to let the model continue.
        "end_turn" | "stop_sequence" | "pause_turn" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        // Reasons added later are reported as a normal stop rather than as a value OpenAI
        // clients do not know.
        _ => FinishReason::Stop,
    }
}

pub(super) fn compact_input(input: &Value) -> String {
    if input.is_null() {
        "{}".to_owned()
    } else {
        input.to_string()
    }
}

pub(super) fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Reads a non-streamed answer; `created` is the completion's timestamp.
pub(super) fn decode_message(provider: &str, body: &[u8], created: u64) -> Result<ChatCompletion> {
    let message: AnthropicMessage = parse_json(provider, body, "message")?;
    let mut text: Option<String> = None;
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            // Several text blocks (e.g. one per citation) form one text.
            AnthropicBlock::Text { text: t } => text.get_or_insert_with(String::new).push_str(&t),
            AnthropicBlock::Thinking {
                thinking,
                signature,
            } => {
                reasoning.push_str(&thinking);
                thinking_blocks.push(ThinkingBlock::Thinking {
                    thinking,
                    signature: non_empty(signature),
                });
            }
            AnthropicBlock::RedactedThinking { data } => {
                thinking_blocks.push(ThinkingBlock::RedactedThinking { data });
            }
            AnthropicBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                kind: FunctionKind::Function,
                function: FunctionCall {
                    name,
                    arguments: compact_input(&input),
                },
                extra: JsonObject::new(),
            }),
            // Server tools (web search, code execution, ...) run at Anthropic; their calls and
            // results have no place in a Chat Completions message, and the text blocks that
            // follow carry what the model made of them.
            AnthropicBlock::Other => {}
        }
    }
    let finish = message
        .stop_reason
        .as_deref()
        .map(finish_reason)
        .unwrap_or(FinishReason::Stop);
    Ok(ChatCompletion {
        id: message.id,
        object: "chat.completion".to_owned(),
        created,
        model: message.model,
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                content: text,
                reasoning_content: non_empty(reasoning),
                thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
                tool_calls: (!tool_calls.is_empty()).then_some(Some(tool_calls)),
                ..Default::default()
            },
            finish_reason: Some(finish),
            logprobs: None,
            extra: JsonObject::new(),
        }],
        usage: Some(message.usage.to_openai()),
        ..Default::default()
    })
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    provider: &str,
    body: &[u8],
    what: &str,
) -> Result<T> {
    crate::types::json::from_slice_tracked(body).map_err(|(path, e)| {
        Error::new(
            ErrorKind::Connection,
            format!(
                "provider `{provider}` sent a response that is not a valid Anthropic {what} (at `{path}`): {e}",
            ),
        )
        .with_provider(provider)
    })
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// `{"type": "error", "error": {"type", "message"}, "request_id"}`.
#[derive(Debug, Deserialize)]
struct AnthropicErrorBody {
    error: AnthropicErrorDetail,
}

#[derive(Debug, Deserialize)]
pub(super) struct AnthropicErrorDetail {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// OpenAI has no 529; Anthropic's "overloaded" is a 503.
fn openai_status(status: u16) -> u16 {
    if status == 529 { 503 } else { status }
}

pub(super) fn decode_error_body(provider: &str, status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<AnthropicErrorBody>(body) {
        Ok(parsed) if !parsed.error.kind.is_empty() => {
            anthropic_error(provider, &parsed.error, Some(status))
        }
        _ => Error::upstream(provider, openai_status(status), body),
    }
}

/// An Anthropic error in OpenAI's shape: status and type from Anthropic's error type, its
/// message kept, and the Anthropic type as `code`.
pub(super) fn anthropic_error(
    provider: &str,
    detail: &AnthropicErrorDetail,
    http_status: Option<u16>,
) -> Error {
    let status = match detail.kind.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        // A billing problem belongs to this account only, so another provider may still serve:
        // as a 403 the router moves on to the next target.
        "billing_error" | "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "overloaded_error" => 503,
        "timeout_error" => 504,
        _ => http_status.map_or(500, openai_status),
    };
    let kind = ErrorKind::from_status(status);
    let message = if detail.message.is_empty() {
        format!("provider `{provider}` reported `{}`", detail.kind)
    } else {
        detail.message.clone()
    };
    let body = json!({"error": {
        "message": message,
        "type": kind.error_type(),
        "param": null,
        "code": detail.kind,
    }});
    Error::upstream(provider, status, body.to_string().as_bytes())
}
