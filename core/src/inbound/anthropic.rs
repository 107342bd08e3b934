//! The Anthropic Messages API as an inbound shape: requests, responses and stream events, the
//! three translations to and from the canonical OpenAI types, and the gateway entry points.
//!
//! API reference: <https://docs.claude.com/en/api/messages>
//!
//! # Translation decisions
//!
//! Request ([`to_chat_request`]):
//! - `system` (a string or text blocks) becomes one leading `system` message. Text blocks keep
//!   their other fields (`cache_control`, `citations`) in the OpenAI text part's `extra`. One
//!   plain block becomes plain text; anything else stays a list of parts, so nothing is lost.
//! - `image` blocks become `image_url` parts (base64 as a `data:` URL); `document` blocks with a
//!   base64 source become `file` parts (`file_data` as a `data:` URL, `title` as `filename`),
//!   plain-text documents become text parts. URL and content documents are refused by name.
//! - `tool_use` blocks become the assistant's `tool_calls` (`input` as a JSON string);
//!   `tool_result` blocks become one `tool` message each, placed *before* the rest of their user
//!   message because OpenAI wants tool results right after the assistant turn that called them.
//!   `is_error: true` is kept as `is_error` in the tool message's `extra` (lossless for
//!   adapters that can express it; the text itself is not changed).
//! - `thinking` / `redacted_thinking` blocks become the assistant's `reasoning_content` (thinking
//!   texts joined by newlines) and `thinking_blocks` (every block, in order; an empty
//!   `signature` is carried as no signature).
//! - Within one assistant message OpenAI keeps text and tool calls apart, so the relative order
//!   of text and `tool_use` blocks is not kept.
//! - `tools` become function tools (`input_schema` → `parameters`, `strict` kept, other fields such
//!   as `cache_control` in the tool's `extra`). Server tools (`web_search_…`, `bash_…`, …) have
//!   no OpenAI equivalent and are refused with a 400 naming `tools[i]`.
//! - `tool_choice`: `auto` → `auto`, `any` → `required`, `tool` → the named function, `none` →
//!   `none`; `disable_parallel_tool_use: true` → `parallel_tool_calls: false`.
//! - `max_tokens` → `max_completion_tokens`: it counts reasoning tokens like Anthropic's limit
//!   (which includes the thinking budget), and OpenAI's reasoning models refuse `max_tokens`.
//! - `stop_sequences` → `stop`; `temperature`, `top_p` as they are; `top_k` → `extra.top_k`;
//!   `metadata.user_id` → `user` (other metadata keys do not change the answer and are dropped).
//! - `thinking` is passed verbatim as `extra.thinking` (an Anthropic-family adapter uses it as
//!   it is) *and*, when `type` is `enabled`, mapped to `reasoning_effort` by budget:
//!   below 4096 → `low`, below 16384 → `medium`, else `high` (Claude Code's "think" = 4000,
//!   "think hard" = 10000 and "ultrathink" = 31999 land on low, medium and high).
//!   `output_config.effort` wins over the budget when both are given (`max` → `xhigh`).
//! - `output_config.format` (`json_schema`) → `response_format` `json_schema` named `output`
//!   (not strict: OpenAI's strict mode refuses schemas Anthropic accepts).
//! - `models` / `fallbacks` (opengateway's request-level fallbacks) are kept; any other unknown
//!   top-level field is passed through in `extra`, as on `/v1/chat/completions`.
//!
//! Response ([`from_chat_response`]): choice 0 only (the Anthropic shape has no `n`). Blocks in
//! order: thinking (from `thinking_blocks`; else `reasoning_content` as one thinking block with
//! `signature: ""`, which the spec allows and which marks it as unsigned), text (a refusal is
//! shown as text with `stop_reason: refusal`), then `tool_use`. Arguments that are not a JSON
//! object become `input: {}` and the raw text is kept in the block's `raw_arguments`, which
//! [`to_chat_request`] sends back verbatim if the block returns as history. Finish reasons:
//! `stop` → `end_turn` (whether a stop sequence matched is not knowable), `length` →
//! `max_tokens`, `tool_calls` → `tool_use`, `content_filter` → `refusal`. Usage:
//! `input_tokens` = prompt − cached − cache writes, `cache_read_input_tokens` = cached,
//! `cache_creation_input_tokens` = cache writes, `output_tokens` = completion tokens. Like the
//! OpenAI shape, the answer also carries opengateway's `provider` and `usage.cost`.
//!
//! Stream ([`MessagesStreamEncoder`]): see its documentation.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::de::{self, Deserializer, SeqAccess, Visitor, value::SeqAccessDeserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::types::serde_helpers::ser_f64;
use crate::types::{
    AssistantMessage, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage,
    ContentPart, FilePart, FileRef, FinishReason, FunctionCall, FunctionDefinition, FunctionKind,
    FunctionName, FunctionTool, ImageUrl, ImageUrlPart, JsonObject, JsonSchemaFormat,
    MessageContent, NamedToolChoice, ResponseFormat, StopSequences, StreamOptions, SystemMessage,
    TextPart, ThinkingBlock, Tool, ToolCall, ToolChoice, ToolChoiceMode, ToolMessage, Usage,
    UserMessage,
};
use crate::{ChatStream, Gateway, Route, Routed};

// ------------------------------------------------------------------------------- request types

/// A Messages API request (`CreateMessageParams`), as a client sends it to `POST /v1/messages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// `provider/model`, or an alias from the config.
    pub model: String,
    /// The conversation: alternating `user` and `assistant` turns.
    pub messages: Vec<InputMessage>,
    /// The output token limit (required by Anthropic).
    pub max_tokens: u32,
    /// System prompt: a string or text blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<InputContent>,
    /// Sequences where generation stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Whether to answer with server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Sampling temperature.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_f64"
    )]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_f64"
    )]
    pub top_p: Option<f64>,
    /// Sample only from the top K options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Request metadata (`user_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolDefinition>>,
    /// How the model should use the tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoiceParam>,
    /// Extended thinking configuration (`{"type": "enabled", "budget_tokens": N}`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<JsonObject>,
    /// Output configuration: `format` (a JSON schema) and `effort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig>,
    /// opengateway: ordered fallback models tried after `model` (`fallbacks` is a synonym).
    #[serde(default, alias = "fallbacks", skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// Every field not modelled above, passed through to the chat request unchanged.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// One input message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputMessage {
    /// `user` or `assistant`.
    pub role: Role,
    /// A string or content blocks.
    pub content: InputContent,
}

/// The role of an input message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The end user (and tool results).
    User,
    /// The model's earlier turns.
    Assistant,
}

/// Content: a plain string, or a list of blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum InputContent {
    /// Plain text.
    Text(String),
    /// Typed blocks.
    Blocks(Vec<ContentBlock>),
}

// Written by hand so that a bad block reports its own error instead of serde's "did not match
// any variant of untagged enum".
impl<'de> Deserialize<'de> for InputContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = InputContent;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of content blocks")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(InputContent::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(InputContent::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<ContentBlock>::deserialize(SeqAccessDeserializer::new(seq))
                    .map(InputContent::Blocks)
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

/// An input content block, tagged by `type`. Blocks of other types (and malformed blocks of
/// these types) are kept as [`ContentBlock::Other`] and refused by the translation with the
/// path of the field at fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text(TextBlock),
    /// An image (base64 or URL).
    Image(ImageBlock),
    /// A document (base64 PDF, plain text, ...).
    Document(DocumentBlock),
    /// A tool call made by the model (assistant turns).
    ToolUse(ToolUseBlock),
    /// The result of a tool call (user turns).
    ToolResult(ToolResultBlock),
    /// The model's signed reasoning (assistant turns).
    Thinking(ThinkingParam),
    /// The model's encrypted reasoning (assistant turns).
    RedactedThinking(RedactedThinkingParam),
    /// Any other block, kept as JSON.
    #[serde(untagged)]
    Other(JsonObject),
}

/// The same blocks without the catch-all: used to report what is wrong with a known block.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code)] // only its errors are used
enum StrictBlock {
    Text(TextBlock),
    Image(ImageBlock),
    Document(DocumentBlock),
    ToolUse(ToolUseBlock),
    ToolResult(ToolResultBlock),
    Thinking(ThinkingParam),
    RedactedThinking(RedactedThinkingParam),
}

/// The known sources without the catch-all: used to report what is wrong with one.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code)] // only its errors are used
enum StrictSource {
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    Text {
        media_type: Option<String>,
        data: String,
    },
}

const KNOWN_BLOCKS: [&str; 7] = [
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
];

/// `{"type": "text", "text": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextBlock {
    /// The text.
    pub text: String,
    /// Other fields (`cache_control`, `citations`), kept on the OpenAI text part.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `{"type": "image", "source": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageBlock {
    /// Where the image is.
    pub source: MediaSource,
    /// Other fields (`cache_control`).
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `{"type": "document", "source": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentBlock {
    /// Where the document is.
    pub source: MediaSource,
    /// Document title (becomes the file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Other fields (`cache_control`, `citations`, `context`).
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The `source` of an image or document, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MediaSource {
    /// Inline base64 bytes.
    Base64 {
        /// MIME type (`image/png`, `application/pdf`, ...).
        media_type: String,
        /// Base64 data.
        data: String,
    },
    /// A URL the provider fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// Plain text (documents).
    Text {
        /// `text/plain`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_type: Option<String>,
        /// The text.
        data: String,
    },
    /// Any other source (`content`, `file`, ...), kept as JSON.
    #[serde(untagged)]
    Other(JsonObject),
}

/// `{"type": "tool_use", "id", "name", "input"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolUseBlock {
    /// Call id, echoed by the `tool_result` that answers it.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// The arguments, a JSON object.
    pub input: Value,
    /// Other fields (`cache_control`; opengateway's `raw_arguments`).
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `{"type": "tool_result", "tool_use_id", "content", "is_error"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResultBlock {
    /// The id of the `tool_use` this answers.
    pub tool_use_id: String,
    /// The result: a string or text blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<InputContent>,
    /// Whether the tool failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// Other fields (`cache_control`).
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `{"type": "thinking", "thinking", "signature"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThinkingParam {
    /// The reasoning text.
    pub thinking: String,
    /// The provider's signature over it.
    #[serde(default)]
    pub signature: String,
    /// Other fields.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `{"type": "redacted_thinking", "data"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedactedThinkingParam {
    /// The opaque encrypted reasoning.
    pub data: String,
    /// Other fields.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// An opaque end-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// A tool definition: a custom tool (`name`, `description`, `input_schema`) or a server tool
/// (`type: "web_search_20250305"`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Absent or `custom` for client tools; a versioned name for server tools.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Tool name.
    pub name: String,
    /// What the tool does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Whether the input must follow the schema exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Other fields (`cache_control`, ...), kept on the OpenAI tool.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `tool_choice`, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoiceParam {
    /// The model decides.
    Auto {
        /// At most one tool call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call some tool.
    Any {
        /// Exactly one tool call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call this tool.
    Tool {
        /// The tool's name.
        name: String,
        /// Exactly one tool call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must not call tools.
    None,
}

/// `output_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputConfig {
    /// `low`, `medium`, `high`, `xhigh` or `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// The output format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<OutputFormat>,
    /// Other fields (refused: none is known to map).
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `output_config.format`: `{"type": "json_schema", "schema": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFormat {
    /// `json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The JSON Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: JsonObject,
}

// ------------------------------------------------------------------------------ response types

/// A Messages API answer (`Message`). Nullable fields are always written, as Anthropic does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    /// `msg_…`.
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `assistant`.
    pub role: String,
    /// The answer's blocks, in order.
    pub content: Vec<ResponseBlock>,
    /// The model as the client asked for it.
    pub model: String,
    /// Why generation stopped.
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    /// The stop sequence that matched (never known through the OpenAI shape).
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Details of a refusal.
    #[serde(default)]
    pub stop_details: Option<Value>,
    /// Token usage.
    pub usage: MessagesUsage,
    /// Code-execution container (never used here).
    #[serde(default)]
    pub container: Option<Value>,
    /// opengateway: the provider id that served the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// A block of an answer, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseBlock {
    /// Reasoning, with the provider's signature (`""` when the provider signs nothing).
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// The signature.
        signature: String,
    },
    /// Encrypted reasoning.
    RedactedThinking {
        /// The opaque data.
        data: String,
    },
    /// Text.
    Text {
        /// The text.
        text: String,
        /// Citations (always `null` here).
        #[serde(default)]
        citations: Option<Value>,
    },
    /// A tool call.
    ToolUse {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments, a JSON object.
        input: Value,
        /// Who calls the tool: `{"type": "direct"}`.
        #[serde(default = "direct_caller")]
        caller: Value,
        /// opengateway: the provider's arguments verbatim, when they were not a JSON object.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw_arguments: Option<String>,
    },
}

fn direct_caller() -> Value {
    json!({"type": "direct"})
}

/// Why generation stopped, in Anthropic's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Natural end.
    EndTurn,
    /// `max_tokens` reached.
    MaxTokens,
    /// A stop sequence matched.
    StopSequence,
    /// The model called tools.
    ToolUse,
    /// A long-running turn was paused.
    PauseTurn,
    /// The output was withheld.
    Refusal,
}

impl StopReason {
    fn from_finish(finish: Option<&FinishReason>, has_tool_calls: bool, refused: bool) -> Self {
        match finish {
            Some(FinishReason::Length) => StopReason::MaxTokens,
            Some(FinishReason::ToolCalls | FinishReason::FunctionCall) => StopReason::ToolUse,
            Some(FinishReason::ContentFilter) => StopReason::Refusal,
            Some(FinishReason::Other(other)) => match other.as_str() {
                "stop_sequence" => StopReason::StopSequence,
                "pause_turn" => StopReason::PauseTurn,
                "refusal" => StopReason::Refusal,
                "max_tokens" => StopReason::MaxTokens,
                "tool_use" => StopReason::ToolUse,
                _ if has_tool_calls => StopReason::ToolUse,
                _ => StopReason::EndTurn,
            },
            // Some providers say `stop` even when they called a tool.
            Some(FinishReason::Stop) | None if has_tool_calls => StopReason::ToolUse,
            Some(FinishReason::Stop) | None if refused => StopReason::Refusal,
            Some(FinishReason::Stop) | None => StopReason::EndTurn,
        }
    }

    fn details(self) -> Value {
        match self {
            StopReason::Refusal => {
                json!({"type": "refusal", "category": null, "explanation": null})
            }
            _ => Value::Null,
        }
    }
}

/// Token usage in Anthropic's terms: `input_tokens` excludes the cached and cache-written
/// tokens, which have their own counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagesUsage {
    /// Input tokens neither read from nor written to a cache.
    pub input_tokens: u64,
    /// Output tokens, thinking included.
    pub output_tokens: u64,
    /// Input tokens written to a cache.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from a cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// Cache writes by TTL (not known through the OpenAI shape).
    #[serde(default)]
    pub cache_creation: Option<Value>,
    /// Server tool calls (never made here).
    #[serde(default)]
    pub server_tool_use: Option<Value>,
    /// The service tier (not known through the OpenAI shape).
    #[serde(default)]
    pub service_tier: Option<String>,
    /// Where inference ran (not known).
    #[serde(default)]
    pub inference_geo: Option<String>,
    /// opengateway: the request's cost in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

impl MessagesUsage {
    fn from_usage(usage: &Usage) -> Self {
        let (cached, written) = cache_counts(usage);
        MessagesUsage {
            input_tokens: usage.prompt_tokens.saturating_sub(cached + written),
            output_tokens: usage.completion_tokens,
            cache_creation_input_tokens: Some(written),
            cache_read_input_tokens: Some(cached),
            cost: usage.cost,
            ..Default::default()
        }
    }
}

fn cache_counts(usage: &Usage) -> (u64, u64) {
    let details = usage.prompt_tokens_details.as_ref();
    let cached = details.and_then(|d| d.cached_tokens).unwrap_or(0);
    let written = details.and_then(|d| d.cache_write_tokens).unwrap_or(0);
    (cached, written)
}

/// One server-sent event of an Anthropic stream: its `event:` name and its `data:` JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct AnthropicEvent {
    /// `message_start`, `content_block_delta`, ..., or `error`.
    pub name: &'static str,
    /// The event's JSON (its `type` equals `name`).
    pub data: Value,
}

impl AnthropicEvent {
    /// The event as SSE bytes: `event: <name>\ndata: <json>\n\n`.
    pub fn to_sse(&self) -> String {
        format!("event: {}\ndata: {}\n\n", self.name, self.data)
    }

    /// The `error` event for a failure.
    pub fn error(err: &Error) -> Self {
        AnthropicEvent {
            name: "error",
            data: anthropic_error_body(err),
        }
    }
}

// ----------------------------------------------------------------------------------- errors

/// Anthropic's `error.type` for an error kind.
///
/// Beyond the obvious pairs, 415 and 422 are `invalid_request_error` (Anthropic's class for
/// any other 4xx) and a timeout is `timeout_error` (in Anthropic's spec, for 504).
pub fn anthropic_error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest
        | ErrorKind::UnsupportedMediaType
        | ErrorKind::UnprocessableEntity => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::PermissionDenied => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::PayloadTooLarge => "request_too_large",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::ServiceUnavailable => "overloaded_error",
        ErrorKind::Timeout => "timeout_error",
        ErrorKind::Conflict | ErrorKind::Connection | ErrorKind::InternalServer => "api_error",
    }
}

/// The Anthropic error body for an error:
/// `{"type": "error", "error": {"type", "message"}, "request_id": null}`. The parameter at
/// fault, which the Anthropic shape has no field for, leads the message when the message does
/// not already name it.
pub fn anthropic_error_body(err: &Error) -> Value {
    let message = match err.param() {
        Some(param) if !err.message().contains(param) => format!("{param}: {}", err.message()),
        _ => err.message().to_owned(),
    };
    json!({
        "type": "error",
        "error": {"type": anthropic_error_type(err.kind()), "message": message},
        "request_id": null,
    })
}

// --------------------------------------------------------------------- request translation

/// Translates a Messages request into the canonical chat request. Invalid or untranslatable
/// input is a 400 naming the Anthropic field path (`messages[2].content[0].type`).
pub fn to_chat_request(req: &MessagesRequest) -> Result<ChatCompletionRequest> {
    if req.messages.is_empty() {
        return Err(Error::invalid_param(
            "messages",
            "`messages` must contain at least one message",
        ));
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = &req.system {
        messages.push(ChatMessage::System(SystemMessage {
            content: system_content(system)?,
            name: None,
            extra: JsonObject::new(),
        }));
    }
    for (i, message) in req.messages.iter().enumerate() {
        let base = format!("messages[{i}]");
        match message.role {
            Role::User => user_messages(&message.content, &base, &mut messages)?,
            Role::Assistant => messages.push(assistant_message(&message.content, &base)?),
        }
    }

    // Unknown fields pass through; those that are OpenAI parameters (`seed`,
    // `reasoning_effort`, ...) land in their typed slots, so none is written twice upstream.
    let mut chat = passthrough(&req.extra)?;
    if let Some(top_k) = req.top_k {
        chat.extra.insert("top_k".to_owned(), top_k.into());
    }
    if let Some(thinking) = &req.thinking {
        if let Some(effort) = effort_from_thinking(thinking)? {
            chat.reasoning_effort = Some(effort);
        }
        chat.extra
            .insert("thinking".to_owned(), Value::Object(thinking.clone()));
    }
    if let Some(config) = &req.output_config {
        if let Some(key) = config.extra.keys().next() {
            return Err(Error::invalid_param(
                format!("output_config.{key}"),
                format!("`output_config.{key}` has no equivalent the gateway can translate"),
            ));
        }
        if let Some(effort) = &config.effort {
            chat.reasoning_effort = Some(match effort.as_str() {
                "low" | "medium" | "high" | "xhigh" => effort.clone(),
                "max" => "xhigh".to_owned(),
                other => {
                    return Err(Error::invalid_param(
                        "output_config.effort",
                        format!(
                            "`output_config.effort` is `{other}`; expected low, medium, high, xhigh or max"
                        ),
                    ));
                }
            });
        }
        if let Some(format) = &config.format {
            chat.response_format = Some(output_format(format)?);
        }
    }
    let (tools, tool_choice, parallel_tool_calls) = tools_and_choice(req)?;
    chat.model = req.model.clone();
    chat.messages = messages;
    chat.max_completion_tokens = Some(req.max_tokens);
    chat.max_tokens = None;
    chat.models = req.models.clone();
    set(&mut chat.temperature, req.temperature);
    set(&mut chat.top_p, req.top_p);
    set(&mut chat.stream, req.stream);
    set(
        &mut chat.stop,
        req.stop_sequences
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| StopSequences::Many(s.clone())),
    );
    set(&mut chat.tools, tools);
    set(&mut chat.tool_choice, tool_choice);
    set(&mut chat.parallel_tool_calls, parallel_tool_calls);
    set(
        &mut chat.user,
        req.metadata.as_ref().and_then(|m| m.user_id.clone()),
    );
    Ok(chat)
}

/// Overwrites `slot` when the Anthropic request set the value.
fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

/// The chat request made of the Messages request's unknown top-level fields.
fn passthrough(extra: &JsonObject) -> Result<ChatCompletionRequest> {
    if extra.is_empty() {
        return Ok(ChatCompletionRequest::default());
    }
    let mut object = extra.clone();
    object.insert("model".to_owned(), Value::String(String::new()));
    object.insert("messages".to_owned(), Value::Array(Vec::new()));
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
        let param = e.path().to_string();
        Error::invalid_param(
            param.clone(),
            format!("Invalid value for `{param}`: {}", e.into_inner()),
        )
    })
}

/// `reasoning_effort` for a `thinking` config: by budget when enabled (see the module docs).
fn effort_from_thinking(thinking: &JsonObject) -> Result<Option<String>> {
    match thinking.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            let budget = thinking
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    Error::invalid_param(
                        "thinking.budget_tokens",
                        "`thinking.budget_tokens` is required (a positive integer) when thinking is enabled",
                    )
                })?;
            Ok(Some(
                match budget {
                    0..4096 => "low",
                    4096..16384 => "medium",
                    _ => "high",
                }
                .to_owned(),
            ))
        }
        Some("disabled" | "adaptive") => Ok(None),
        Some(other) => Err(Error::invalid_param(
            "thinking.type",
            format!("`thinking.type` is `{other}`; expected enabled, disabled or adaptive"),
        )),
        None => Err(Error::invalid_param(
            "thinking.type",
            "`thinking.type` is required",
        )),
    }
}

fn output_format(format: &OutputFormat) -> Result<ResponseFormat> {
    if format.kind != "json_schema" {
        return Err(Error::invalid_param(
            "output_config.format.type",
            format!(
                "`output_config.format.type` is `{}`; only `json_schema` is supported",
                format.kind
            ),
        ));
    }
    let Some(schema) = &format.schema else {
        return Err(Error::invalid_param(
            "output_config.format.schema",
            "`output_config.format.schema` is required",
        ));
    };
    Ok(ResponseFormat::JsonSchema {
        json_schema: JsonSchemaFormat {
            name: "output".to_owned(),
            description: None,
            schema: Some(schema.clone()),
            strict: None,
            extra: JsonObject::new(),
        },
    })
}

type ToolsAndChoice = (Option<Vec<Tool>>, Option<ToolChoice>, Option<bool>);

fn tools_and_choice(req: &MessagesRequest) -> Result<ToolsAndChoice> {
    let mut tools = None;
    if let Some(defs) = &req.tools {
        let mut out = Vec::with_capacity(defs.len());
        for (i, def) in defs.iter().enumerate() {
            if let Some(kind) = def.kind.as_deref().filter(|k| *k != "custom") {
                return Err(Error::invalid_param(
                    format!("tools[{i}]"),
                    format!(
                        "`tools[{i}]` is the server tool `{kind}`, which the gateway cannot run on other providers; only custom tools (name, description, input_schema) are supported"
                    ),
                ));
            }
            let Some(schema) = &def.input_schema else {
                return Err(Error::invalid_param(
                    format!("tools[{i}].input_schema"),
                    format!("Missing required parameter: `tools[{i}].input_schema`."),
                ));
            };
            out.push(Tool::Function(FunctionTool {
                function: FunctionDefinition {
                    name: def.name.clone(),
                    description: def.description.clone(),
                    parameters: Some(schema.clone()),
                    strict: def.strict,
                    extra: JsonObject::new(),
                },
                extra: set_fields(&def.extra),
            }));
        }
        tools = Some(out);
    }
    let (choice, parallel) = match &req.tool_choice {
        None => (None, None),
        Some(ToolChoiceParam::Auto {
            disable_parallel_tool_use,
        }) => (
            Some(ToolChoice::Mode(ToolChoiceMode::Auto)),
            *disable_parallel_tool_use,
        ),
        Some(ToolChoiceParam::Any {
            disable_parallel_tool_use,
        }) => (
            Some(ToolChoice::Mode(ToolChoiceMode::Required)),
            *disable_parallel_tool_use,
        ),
        Some(ToolChoiceParam::Tool {
            name,
            disable_parallel_tool_use,
        }) => (
            Some(ToolChoice::Function(NamedToolChoice {
                kind: FunctionKind::Function,
                function: FunctionName { name: name.clone() },
            })),
            *disable_parallel_tool_use,
        ),
        Some(ToolChoiceParam::None) => (Some(ToolChoice::Mode(ToolChoiceMode::None)), None),
    };
    let parallel_tool_calls = (parallel == Some(true)).then_some(false);
    Ok((tools, choice, parallel_tool_calls))
}

fn system_content(system: &InputContent) -> Result<MessageContent> {
    match system {
        InputContent::Text(text) => Ok(MessageContent::Text(text.clone())),
        InputContent::Blocks(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                let path = format!("system[{j}]");
                match block {
                    ContentBlock::Text(text) => parts.push(text_part(text)),
                    ContentBlock::Other(obj) => return Err(bad_block(obj, &path)),
                    other => {
                        return Err(Error::invalid_param(
                            format!("{path}.type"),
                            format!(
                                "`{path}.type` is `{}`; the system prompt takes only text blocks",
                                block_type(other)
                            ),
                        ));
                    }
                }
            }
            Ok(parts_content(parts))
        }
    }
}

fn user_messages(content: &InputContent, base: &str, out: &mut Vec<ChatMessage>) -> Result<()> {
    let blocks = match content {
        InputContent::Text(text) => {
            out.push(ChatMessage::user(text.clone()));
            return Ok(());
        }
        InputContent::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    let mut results = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let path = format!("{base}.content[{j}]");
        match block {
            ContentBlock::Text(text) => parts.push(text_part(text)),
            ContentBlock::Image(image) => parts.push(image_part(image, &path)?),
            ContentBlock::Document(doc) => parts.push(document_part(doc, &path)?),
            ContentBlock::ToolResult(result) => results.push(tool_message(result, &path)?),
            ContentBlock::Other(obj) => return Err(bad_block(obj, &path)),
            ContentBlock::ToolUse(_)
            | ContentBlock::Thinking(_)
            | ContentBlock::RedactedThinking(_) => {
                return Err(Error::invalid_param(
                    format!("{path}.type"),
                    format!(
                        "`{path}.type` is `{}`, which belongs in an assistant message",
                        block_type(block)
                    ),
                ));
            }
        }
    }
    let only_results = parts.is_empty() && !results.is_empty();
    out.extend(results);
    if !only_results {
        out.push(ChatMessage::User(UserMessage {
            content: parts_content(parts),
            name: None,
            extra: JsonObject::new(),
        }));
    }
    Ok(())
}

fn assistant_message(content: &InputContent, base: &str) -> Result<ChatMessage> {
    let blocks = match content {
        InputContent::Text(text) => {
            return Ok(ChatMessage::Assistant(AssistantMessage {
                content: Some(Some(MessageContent::Text(text.clone()))),
                ..Default::default()
            }));
        }
        InputContent::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    let mut reasoning: Vec<&str> = Vec::new();
    let mut thinking_blocks = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let path = format!("{base}.content[{j}]");
        match block {
            ContentBlock::Text(text) => parts.push(text_part(text)),
            ContentBlock::ToolUse(call) => tool_calls.push(tool_call(call)),
            ContentBlock::Thinking(thinking) => {
                reasoning.push(&thinking.thinking);
                thinking_blocks.push(ThinkingBlock::Thinking {
                    thinking: thinking.thinking.clone(),
                    signature: (!thinking.signature.is_empty()).then(|| thinking.signature.clone()),
                });
            }
            ContentBlock::RedactedThinking(redacted) => {
                thinking_blocks.push(ThinkingBlock::RedactedThinking {
                    data: redacted.data.clone(),
                });
            }
            ContentBlock::Other(obj) => return Err(bad_block(obj, &path)),
            ContentBlock::Image(_) | ContentBlock::Document(_) | ContentBlock::ToolResult(_) => {
                return Err(Error::invalid_param(
                    format!("{path}.type"),
                    format!(
                        "`{path}.type` is `{}`, which belongs in a user message",
                        block_type(block)
                    ),
                ));
            }
        }
    }
    let content = if parts.is_empty() {
        // OpenAI accepts a missing content only next to tool calls.
        (tool_calls.is_empty()).then(|| Some(MessageContent::Text(String::new())))
    } else {
        Some(Some(parts_content(parts)))
    };
    Ok(ChatMessage::Assistant(AssistantMessage {
        content,
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        reasoning_content: (!reasoning.is_empty()).then(|| reasoning.join("\n")),
        thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
        ..Default::default()
    }))
}

fn text_part(text: &TextBlock) -> ContentPart {
    ContentPart::Text(TextPart {
        text: text.text.clone(),
        extra: set_fields(&text.extra),
    })
}

/// The pass-through fields of a block that are set: `null` means "not set" for every optional
/// Anthropic field (the SDKs send `citations: null` back with the text of an answer).
fn set_fields(extra: &JsonObject) -> JsonObject {
    extra
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// One plain text part becomes a plain string; anything else stays a list of parts.
fn parts_content(parts: Vec<ContentPart>) -> MessageContent {
    match <[ContentPart; 1]>::try_from(parts) {
        Ok([ContentPart::Text(part)]) if part.extra.is_empty() => MessageContent::Text(part.text),
        Ok(one) => MessageContent::Parts(one.into()),
        Err(parts) => MessageContent::Parts(parts),
    }
}

fn image_part(image: &ImageBlock, path: &str) -> Result<ContentPart> {
    let url = match &image.source {
        MediaSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        MediaSource::Url { url } => url.clone(),
        other => return Err(unsupported_source(other, "image", path)),
    };
    Ok(ContentPart::ImageUrl(ImageUrlPart {
        image_url: ImageUrl {
            url,
            detail: None,
            extra: JsonObject::new(),
        },
        extra: set_fields(&image.extra),
    }))
}

fn document_part(doc: &DocumentBlock, path: &str) -> Result<ContentPart> {
    match &doc.source {
        MediaSource::Base64 { media_type, data } => Ok(ContentPart::File(FilePart {
            file: FileRef {
                file_data: Some(format!("data:{media_type};base64,{data}")),
                filename: doc.title.clone(),
                ..Default::default()
            },
            extra: set_fields(&doc.extra),
        })),
        MediaSource::Text { data, .. } => Ok(ContentPart::Text(TextPart {
            text: data.clone(),
            extra: set_fields(&doc.extra),
        })),
        other => Err(unsupported_source(other, "document", path)),
    }
}

fn unsupported_source(source: &MediaSource, what: &str, path: &str) -> Error {
    let kind = match source {
        MediaSource::Base64 { .. } => "base64",
        MediaSource::Url { .. } => "url",
        MediaSource::Text { .. } => "text",
        MediaSource::Other(obj) => {
            let source_path = format!("{path}.source");
            match obj.get("type").and_then(Value::as_str) {
                None => {
                    return Error::invalid_param(
                        format!("{source_path}.type"),
                        format!("Missing required parameter: `{source_path}.type`."),
                    );
                }
                Some(kind @ ("base64" | "url" | "text")) => {
                    return strict_error::<StrictSource>(obj, &source_path).unwrap_or_else(|| {
                        Error::invalid_param(
                            format!("{source_path}.type"),
                            format!("`{source_path}` is not a valid `{kind}` source"),
                        )
                    });
                }
                Some(kind) => kind,
            }
        }
    };
    Error::invalid_param(
        format!("{path}.source.type"),
        format!(
            "`{path}.source.type` is `{kind}`, which the gateway cannot pass on for a {what}; send the {what} as base64{}",
            if what == "document" {
                " (PDF) or plain text"
            } else {
                " or a URL"
            }
        ),
    )
}

fn tool_message(result: &ToolResultBlock, path: &str) -> Result<ChatMessage> {
    let content = match &result.content {
        None => MessageContent::Text(String::new()),
        Some(InputContent::Text(text)) => MessageContent::Text(text.clone()),
        Some(InputContent::Blocks(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (k, block) in blocks.iter().enumerate() {
                let inner = format!("{path}.content[{k}]");
                match block {
                    ContentBlock::Text(text) => parts.push(text_part(text)),
                    ContentBlock::Other(obj) => return Err(bad_block(obj, &inner)),
                    other => {
                        return Err(Error::invalid_param(
                            format!("{inner}.type"),
                            format!(
                                "`{inner}.type` is `{}`; OpenAI-shaped tool results carry only text",
                                block_type(other)
                            ),
                        ));
                    }
                }
            }
            parts_content(parts)
        }
    };
    let mut extra = set_fields(&result.extra);
    if result.is_error == Some(true) {
        extra.insert("is_error".to_owned(), Value::Bool(true));
    }
    Ok(ChatMessage::Tool(ToolMessage {
        content,
        tool_call_id: result.tool_use_id.clone(),
        extra,
    }))
}

fn tool_call(call: &ToolUseBlock) -> ToolCall {
    let mut extra = set_fields(&call.extra);
    // `caller: {"type": "direct"}` is the default (answers carry it); other callers are kept.
    if extra.get("caller") == Some(&direct_caller()) {
        extra.remove("caller");
    }
    let arguments = match extra.remove("raw_arguments") {
        Some(Value::String(raw)) => raw,
        _ => call.input.to_string(),
    };
    ToolCall {
        id: call.id.clone(),
        kind: FunctionKind::Function,
        function: FunctionCall {
            name: call.name.clone(),
            arguments,
        },
        extra,
    }
}

fn block_type(block: &ContentBlock) -> &str {
    match block {
        ContentBlock::Text(_) => "text",
        ContentBlock::Image(_) => "image",
        ContentBlock::Document(_) => "document",
        ContentBlock::ToolUse(_) => "tool_use",
        ContentBlock::ToolResult(_) => "tool_result",
        ContentBlock::Thinking(_) => "thinking",
        ContentBlock::RedactedThinking(_) => "redacted_thinking",
        ContentBlock::Other(obj) => obj.get("type").and_then(Value::as_str).unwrap_or("?"),
    }
}

/// The error for a block kept as [`ContentBlock::Other`]: an unknown `type`, or a known type
/// whose fields are wrong (reported at the field's path).
fn bad_block(obj: &JsonObject, path: &str) -> Error {
    let Some(kind) = obj.get("type").and_then(Value::as_str) else {
        return Error::invalid_param(
            format!("{path}.type"),
            format!("Missing required parameter: `{path}.type`."),
        );
    };
    if KNOWN_BLOCKS.contains(&kind)
        && let Some(err) = strict_error::<StrictBlock>(obj, path)
    {
        return err;
    }
    Error::invalid_param(
        format!("{path}.type"),
        format!(
            "`{path}.type` is `{kind}`; the gateway supports text, image, document, tool_use, tool_result, thinking and redacted_thinking blocks"
        ),
    )
}

/// What is wrong with `obj` as a `T`, at the path of the field at fault under `path`.
fn strict_error<T: serde::de::DeserializeOwned>(obj: &JsonObject, path: &str) -> Option<Error> {
    let value = Value::Object(obj.clone());
    let e = serde_path_to_error::deserialize::<_, T>(&value).err()?;
    let inner = e.path().to_string();
    let message = e.into_inner().to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let param = match (missing, inner.as_str()) {
        (Some(field), ".") => format!("{path}.{field}"),
        (Some(field), parent) => format!("{path}.{parent}.{field}"),
        (None, ".") => path.to_owned(),
        (None, p) => format!("{path}.{p}"),
    };
    Some(if missing.is_some() {
        Error::invalid_param(&param, format!("Missing required parameter: `{param}`."))
    } else {
        Error::invalid_param(&param, format!("Invalid value for `{param}`: {message}"))
    })
}

// -------------------------------------------------------------------- response translation

/// Translates a chat completion into a Messages answer for a client that asked for
/// `requested_model` (echoed as `model`). Only choice 0 is used.
pub fn from_chat_response(completion: &ChatCompletion, requested_model: &str) -> MessagesResponse {
    let choice = completion.choices.first();
    let message = choice.map(|c| &c.message);
    let mut content = Vec::new();
    if let Some(message) = message {
        match message.thinking_blocks.as_deref() {
            Some(blocks) if !blocks.is_empty() => {
                content.extend(blocks.iter().map(|b| match b {
                    ThinkingBlock::Thinking {
                        thinking,
                        signature,
                    } => ResponseBlock::Thinking {
                        thinking: thinking.clone(),
                        signature: signature.clone().unwrap_or_default(),
                    },
                    ThinkingBlock::RedactedThinking { data } => {
                        ResponseBlock::RedactedThinking { data: data.clone() }
                    }
                }));
            }
            _ => {
                if let Some(reasoning) =
                    message.reasoning_content.as_ref().filter(|r| !r.is_empty())
                {
                    content.push(ResponseBlock::Thinking {
                        thinking: reasoning.clone(),
                        signature: String::new(),
                    });
                }
            }
        }
        if let Some(text) = message.content.as_ref().filter(|t| !t.is_empty()) {
            content.push(ResponseBlock::Text {
                text: text.clone(),
                citations: None,
            });
        }
        if let Some(Some(refusal)) = message.refusal.as_ref()
            && !refusal.is_empty()
        {
            content.push(ResponseBlock::Text {
                text: refusal.clone(),
                citations: None,
            });
        }
        for call in message.tool_calls.iter().flatten().flatten() {
            content.push(tool_use_block(call));
        }
    }
    let has_tool_calls = content
        .iter()
        .any(|b| matches!(b, ResponseBlock::ToolUse { .. }));
    let refused = message.is_some_and(|m| matches!(&m.refusal, Some(Some(r)) if !r.is_empty()));
    let stop_reason = StopReason::from_finish(
        choice.and_then(|c| c.finish_reason.as_ref()),
        has_tool_calls,
        refused,
    );
    let usage = completion
        .usage
        .as_ref()
        .map(MessagesUsage::from_usage)
        .unwrap_or_else(|| MessagesUsage {
            cache_creation_input_tokens: Some(0),
            cache_read_input_tokens: Some(0),
            ..Default::default()
        });
    MessagesResponse {
        id: message_id(&completion.id),
        kind: "message".to_owned(),
        role: "assistant".to_owned(),
        content,
        model: requested_model.to_owned(),
        stop_reason: Some(stop_reason),
        stop_sequence: None,
        stop_details: Some(stop_reason.details()).filter(|d| !d.is_null()),
        usage,
        container: None,
        provider: completion.provider.clone(),
        extra: JsonObject::new(),
    }
}

fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else if id.is_empty() {
        format!("msg_{:016x}", fastrand::u64(..))
    } else {
        format!("msg_{id}")
    }
}

fn tool_use_block(call: &ToolCall) -> ResponseBlock {
    let parsed = serde_json::from_str::<Value>(&call.function.arguments);
    let (input, raw_arguments) = match parsed {
        Ok(value @ Value::Object(_)) => (value, None),
        // No arguments at all is an empty object, not a broken one.
        _ if call.function.arguments.trim().is_empty() => (json!({}), None),
        _ => (json!({}), Some(call.function.arguments.clone())),
    };
    ResponseBlock::ToolUse {
        id: call.id.clone(),
        name: call.function.name.clone(),
        input,
        caller: direct_caller(),
        raw_arguments,
    }
}

// -------------------------------------------------------------------------- stream encoding

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Thinking,
    Text,
    ToolUse,
}

/// Turns a stream of OpenAI chunks into Anthropic's named events.
///
/// - `message_start` comes first (with zero usage: OpenAI reports usage at the end).
/// - `reasoning_content` deltas are `thinking_delta`s of a `thinking` block. A `thinking_blocks`
///   delta (a whole block, sent when it ends) adds its signature as a `signature_delta` and
///   closes the thinking block; when no reasoning was streamed before it, the block's text is
///   sent as one `thinking_delta` first. A redacted block is a `redacted_thinking` block that
///   starts and stops at once.
/// - `content` (and `refusal`) deltas are `text_delta`s of a `text` block.
/// - Tool-call deltas open one `tool_use` block per OpenAI `index` (with id and name) and send
///   argument fragments as `input_json_delta`s. A fragment for a call whose block was already
///   closed (OpenAI interleaving parallel calls) is still sent, with that block's index, so the
///   SDKs' by-index accumulation stays right.
/// - A block is closed (`content_block_stop`) whenever the kind of content changes.
/// - [`finish`](Self::finish) closes the open block and sends `message_delta` (stop reason;
///   usage: output tokens, and input and cache tokens when the usage chunk gave them) and
///   `message_stop`.
/// - [`on_error`](Self::on_error) sends one `error` event, as Anthropic does mid-stream, and
///   the encoder ignores everything after it.
#[derive(Debug)]
pub struct MessagesStreamEncoder {
    model: String,
    started: bool,
    ended: bool,
    next_index: u32,
    open: Option<(u32, BlockKind)>,
    tool_blocks: HashMap<u32, u32>,
    finish_reason: Option<FinishReason>,
    refused: bool,
    usage: Option<Usage>,
}

impl MessagesStreamEncoder {
    /// An encoder for a stream answering `requested_model` (echoed as the message's `model`).
    pub fn new(requested_model: impl Into<String>) -> Self {
        MessagesStreamEncoder {
            model: requested_model.into(),
            started: false,
            ended: false,
            next_index: 0,
            open: None,
            tool_blocks: HashMap::new(),
            finish_reason: None,
            refused: false,
            usage: None,
        }
    }

    /// Whether the stream is over (after [`finish`](Self::finish) or an error).
    pub fn is_finished(&self) -> bool {
        self.ended
    }

    /// The events for one chunk.
    pub fn on_chunk(&mut self, chunk: &ChatCompletionChunk) -> Vec<AnthropicEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.start(&chunk.id, &mut out);
        if let Some(usage) = chunk.usage() {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return out;
        };
        let delta = &choice.delta;
        if let Some(reasoning) = delta.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
            let index = self.ensure_open(
                BlockKind::Thinking,
                &mut out,
                || json!({"type": "thinking", "thinking": "", "signature": ""}),
            );
            out.push(block_delta(
                index,
                json!({"type": "thinking_delta", "thinking": reasoning}),
            ));
        }
        for block in delta.thinking_blocks.iter().flatten() {
            self.thinking_block(block, &mut out);
        }
        if let Some(Some(text)) = &delta.content
            && !text.is_empty()
        {
            self.text(text, &mut out);
        }
        if let Some(Some(refusal)) = &delta.refusal
            && !refusal.is_empty()
        {
            self.refused = true;
            self.text(refusal, &mut out);
        }
        for call in delta.tool_calls.iter().flatten().flatten() {
            let index = match self.tool_blocks.get(&call.index) {
                Some(index) => *index,
                None => {
                    let function = call.function.as_ref();
                    let id = call
                        .id
                        .clone()
                        .unwrap_or_else(|| format!("toolu_{}", self.next_index));
                    let name = function.and_then(|f| f.name.clone()).unwrap_or_default();
                    self.close(&mut out);
                    let index = self.open_block(
                        BlockKind::ToolUse,
                        json!({"type": "tool_use", "id": id, "name": name, "input": {}, "caller": direct_caller()}),
                        &mut out,
                    );
                    self.tool_blocks.insert(call.index, index);
                    index
                }
            };
            if let Some(arguments) = call
                .function
                .as_ref()
                .and_then(|f| f.arguments.as_deref())
                .filter(|a| !a.is_empty())
            {
                out.push(block_delta(
                    index,
                    json!({"type": "input_json_delta", "partial_json": arguments}),
                ));
            }
        }
        if let Some(reason) = &choice.finish_reason {
            self.finish_reason = Some(reason.clone());
        }
        out
    }

    /// The events for an error that ended the stream: one `error` event.
    pub fn on_error(&mut self, err: &Error) -> Vec<AnthropicEvent> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        vec![AnthropicEvent::error(err)]
    }

    /// The closing events, once the chunks are over.
    pub fn finish(&mut self) -> Vec<AnthropicEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.start("", &mut out);
        self.close(&mut out);
        self.ended = true;
        let stop_reason = StopReason::from_finish(
            self.finish_reason.as_ref(),
            !self.tool_blocks.is_empty(),
            self.refused,
        );
        let mut usage = json!({
            "input_tokens": null,
            "cache_creation_input_tokens": null,
            "cache_read_input_tokens": null,
            "output_tokens": 0,
            "server_tool_use": null,
        });
        if let Some(u) = &self.usage {
            let m = MessagesUsage::from_usage(u);
            usage["input_tokens"] = m.input_tokens.into();
            usage["cache_creation_input_tokens"] = json!(m.cache_creation_input_tokens);
            usage["cache_read_input_tokens"] = json!(m.cache_read_input_tokens);
            usage["output_tokens"] = m.output_tokens.into();
            if let Some(cost) = m.cost {
                usage["cost"] = json!(cost);
            }
        }
        out.push(AnthropicEvent {
            name: "message_delta",
            data: json!({
                "type": "message_delta",
                "delta": {
                    "stop_reason": stop_reason,
                    "stop_sequence": null,
                    "stop_details": stop_reason.details(),
                    "container": null,
                },
                "usage": usage,
            }),
        });
        out.push(AnthropicEvent {
            name: "message_stop",
            data: json!({"type": "message_stop"}),
        });
        out
    }

    fn start(&mut self, id: &str, out: &mut Vec<AnthropicEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(AnthropicEvent {
            name: "message_start",
            data: json!({
                "type": "message_start",
                "message": {
                    "id": message_id(id),
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": self.model,
                    "stop_reason": null,
                    "stop_sequence": null,
                    "stop_details": null,
                    "usage": {
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "cache_creation_input_tokens": null,
                        "cache_read_input_tokens": null,
                        "cache_creation": null,
                        "server_tool_use": null,
                        "service_tier": null,
                        "inference_geo": null,
                    },
                    "container": null,
                },
            }),
        });
    }

    fn text(&mut self, text: &str, out: &mut Vec<AnthropicEvent>) {
        let index = self.ensure_open(
            BlockKind::Text,
            out,
            || json!({"type": "text", "text": "", "citations": null}),
        );
        out.push(block_delta(
            index,
            json!({"type": "text_delta", "text": text}),
        ));
    }

    fn thinking_block(&mut self, block: &ThinkingBlock, out: &mut Vec<AnthropicEvent>) {
        match block {
            ThinkingBlock::Thinking {
                thinking,
                signature,
            } => {
                let index = match self.open {
                    Some((index, BlockKind::Thinking)) => index,
                    _ => {
                        self.close(out);
                        let index = self.open_block(
                            BlockKind::Thinking,
                            json!({"type": "thinking", "thinking": "", "signature": ""}),
                            out,
                        );
                        if !thinking.is_empty() {
                            out.push(block_delta(
                                index,
                                json!({"type": "thinking_delta", "thinking": thinking}),
                            ));
                        }
                        index
                    }
                };
                if let Some(signature) = signature.as_deref().filter(|s| !s.is_empty()) {
                    out.push(block_delta(
                        index,
                        json!({"type": "signature_delta", "signature": signature}),
                    ));
                }
                self.close(out);
            }
            ThinkingBlock::RedactedThinking { data } => {
                self.close(out);
                // Redacted blocks are never "open": they carry no deltas.
                let index = self.next_index;
                self.next_index += 1;
                out.push(AnthropicEvent {
                    name: "content_block_start",
                    data: json!({
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "redacted_thinking", "data": data},
                    }),
                });
                out.push(block_stop(index));
            }
        }
    }

    /// The index of the open block of `kind`, opening one (and closing another) if needed.
    fn ensure_open(
        &mut self,
        kind: BlockKind,
        out: &mut Vec<AnthropicEvent>,
        start: impl FnOnce() -> Value,
    ) -> u32 {
        match self.open {
            Some((index, open)) if open == kind => index,
            _ => {
                self.close(out);
                self.open_block(kind, start(), out)
            }
        }
    }

    fn open_block(&mut self, kind: BlockKind, block: Value, out: &mut Vec<AnthropicEvent>) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        out.push(AnthropicEvent {
            name: "content_block_start",
            data: json!({"type": "content_block_start", "index": index, "content_block": block}),
        });
        index
    }

    fn close(&mut self, out: &mut Vec<AnthropicEvent>) {
        if let Some((index, _)) = self.open.take() {
            out.push(block_stop(index));
        }
    }
}

fn block_delta(index: u32, delta: Value) -> AnthropicEvent {
    AnthropicEvent {
        name: "content_block_delta",
        data: json!({"type": "content_block_delta", "index": index, "delta": delta}),
    }
}

fn block_stop(index: u32) -> AnthropicEvent {
    AnthropicEvent {
        name: "content_block_stop",
        data: json!({"type": "content_block_stop", "index": index}),
    }
}

// ----------------------------------------------------------------------- gateway entry points

/// A streamed Messages answer: Anthropic events, plus the route that was taken. It is exactly
/// the wire sequence: a failure after the stream started is the `error` event (as Anthropic
/// sends it) and the last item; [`error`](Self::error) then tells what it was. Dropping the
/// stream closes the upstream connection.
pub struct MessagesStream {
    route: Route,
    inner: ChatStream,
    encoder: MessagesStreamEncoder,
    pending: VecDeque<AnthropicEvent>,
    error: Option<Error>,
    done: bool,
}

impl std::fmt::Debug for MessagesStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagesStream")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl MessagesStream {
    /// Where the stream is served from and the attempts made before it started.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The failure that ended the stream, once its `error` event was produced.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }
}

impl Stream for MessagesStream {
    type Item = Result<AnthropicEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => this.pending.extend(this.encoder.on_chunk(&chunk)),
                Poll::Ready(Some(Err(e))) => {
                    this.pending.extend(this.encoder.on_error(&e));
                    this.error = Some(e);
                    this.done = true;
                }
                Poll::Ready(None) => {
                    this.pending.extend(this.encoder.finish());
                    this.done = true;
                }
            }
        }
    }
}

impl Gateway {
    /// Answers an Anthropic Messages request without streaming, through [`Gateway::chat`]: the
    /// same routing, fallback and accounting as a chat completion, whatever the provider.
    pub async fn messages(&self, request: MessagesRequest) -> Result<Routed<MessagesResponse>> {
        let chat = to_chat_request(&request)?;
        let answer = self.chat(chat).await?;
        Ok(Routed {
            response: from_chat_response(&answer.response, &request.model),
            route: answer.route,
        })
    }

    /// Answers an Anthropic Messages request as a stream of Anthropic events, through
    /// [`Gateway::chat_stream`]. Usage is always asked of the provider, so `message_delta`
    /// can carry it.
    pub async fn messages_stream(&self, request: MessagesRequest) -> Result<MessagesStream> {
        let mut chat = to_chat_request(&request)?;
        chat.stream = Some(true);
        chat.stream_options
            .get_or_insert_with(StreamOptions::default)
            .include_usage = Some(true);
        let inner = self.chat_stream(chat).await?;
        Ok(MessagesStream {
            route: inner.route().clone(),
            inner,
            encoder: MessagesStreamEncoder::new(request.model),
            pending: VecDeque::new(),
            error: None,
            done: false,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::types::{
        Choice, ChunkChoice, Delta, FunctionCallDelta, PromptTokensDetails, ResponseMessage,
        ToolCallDelta,
    };

    fn request(v: Value) -> MessagesRequest {
        serde_json::from_value(v).unwrap()
    }

    fn chat_json(v: Value) -> Value {
        serde_json::to_value(to_chat_request(&request(v)).unwrap()).unwrap()
    }

    fn param_of(v: Value) -> String {
        let err = to_chat_request(&request(v)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest, "{err}");
        err.param().unwrap_or_default().to_owned()
    }

    #[test]
    fn multi_turn_with_thinking_tools_and_results() {
        let chat = chat_json(json!({
            "model": "mock/mock-gpt",
            "max_tokens": 2048,
            "system": [
                {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Use tools."}
            ],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris? See the map and the report."},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/map.png"}, "cache_control": {"type": "ephemeral"}},
                    {"type": "document", "title": "report.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Sunny all week."}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Need the tool.", "signature": "sig-1"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Here you go."},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C", "cache_control": {"type": "ephemeral"}},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                     "content": [{"type": "text", "text": "clock broken"}]}
                ]},
                {"role": "assistant", "content": "It is 18C."},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"},
                       "cache_control": {"type": "ephemeral"}, "strict": true},
                      {"type": "custom", "name": "get_time", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "thinking": {"type": "enabled", "budget_tokens": 10000},
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "metadata": {"user_id": "u-1"},
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
            "stream": true,
            "fallbacks": ["mock/mock-gpt-mini"],
            "mock": {"content": "x"}
        }));
        assert_eq!(
            chat,
            json!({
                "model": "mock/mock-gpt",
                "messages": [
                    {"role": "system", "content": [
                        {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                        {"type": "text", "text": "Use tools."}
                    ]},
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather in Paris? See the map and the report."},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/map.png"}, "cache_control": {"type": "ephemeral"}},
                        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "report.pdf"}},
                        {"type": "text", "text": "Sunny all week."}
                    ]},
                    {"role": "assistant", "content": "Let me check.",
                     "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                     ],
                     "reasoning_content": "Need the tool.",
                     "thinking_blocks": [
                        {"type": "thinking", "thinking": "Need the tool.", "signature": "sig-1"},
                        {"type": "redacted_thinking", "data": "opaque"}
                     ]},
                    {"role": "tool", "content": "18C", "tool_call_id": "toolu_1", "cache_control": {"type": "ephemeral"}},
                    {"role": "tool", "content": "clock broken", "tool_call_id": "toolu_2", "is_error": true},
                    {"role": "user", "content": "Here you go."},
                    {"role": "assistant", "content": "It is 18C."},
                    {"role": "user", "content": "Thanks"}
                ],
                "temperature": 0.5,
                "top_p": 0.9,
                "stream": true,
                "stop": ["END"],
                "max_completion_tokens": 2048,
                "tools": [
                    {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                     "parameters": {"type": "object"}, "strict": true}, "cache_control": {"type": "ephemeral"}},
                    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
                ],
                "tool_choice": "required",
                "parallel_tool_calls": false,
                "response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "object"}}},
                "reasoning_effort": "medium",
                "user": "u-1",
                "models": ["mock/mock-gpt-mini"],
                "mock": {"content": "x"},
                "top_k": 40,
                "thinking": {"type": "enabled", "budget_tokens": 10000}
            })
        );
    }

    #[test]
    fn small_requests_stay_plain_and_map_choices_and_effort() {
        let chat = chat_json(json!({
            "model": "m/x", "max_tokens": 5, "system": "sys",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                         {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}],
            "tool_choice": {"type": "tool", "name": "f"},
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "seed": 7
        }));
        assert_eq!(
            chat["messages"][0],
            json!({"role": "system", "content": "sys"})
        );
        assert_eq!(
            chat["messages"][1],
            json!({"role": "user", "content": "hi"})
        );
        assert!(
            chat["messages"][2].get("content").is_none(),
            "tool-call-only turns have no content: {chat}"
        );
        assert_eq!(
            chat["messages"][3],
            json!({"role": "tool", "content": "", "tool_call_id": "t"})
        );
        assert_eq!(chat["messages"].as_array().unwrap().len(), 4);
        assert_eq!(
            chat["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(chat["seed"], 7, "OpenAI fields pass through typed");
        assert!(chat.get("parallel_tool_calls").is_none());

        let effort = |thinking: Value, config: Option<Value>| {
            let mut v = json!({"model": "m/x", "max_tokens": 5, "thinking": thinking,
                               "messages": [{"role": "user", "content": "hi"}]});
            if let Some(c) = config {
                v["output_config"] = c;
            }
            chat_json(v)["reasoning_effort"].clone()
        };
        let enabled = |b: u32| json!({"type": "enabled", "budget_tokens": b});
        assert_eq!(effort(enabled(1024), None), "low");
        assert_eq!(effort(enabled(4000), None), "low");
        assert_eq!(effort(enabled(4096), None), "medium");
        assert_eq!(effort(enabled(16383), None), "medium");
        assert_eq!(effort(enabled(31999), None), "high");
        assert_eq!(effort(json!({"type": "disabled"}), None), Value::Null);
        assert_eq!(
            effort(enabled(1024), Some(json!({"effort": "max"}))),
            "xhigh",
            "output_config.effort wins"
        );
        let chat = chat_json(json!({"model": "m/x", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}],
            "tool_choice": {"type": "none"}}));
        assert_eq!(chat["tool_choice"], "none");
    }

    #[test]
    fn invalid_input_names_the_anthropic_field() {
        let with = |content: Value| {
            json!({"model": "m/x", "max_tokens": 5, "messages": [
                {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": content}]})
        };
        assert_eq!(
            param_of(with(
                json!([{"type": "text", "text": "x"}, {"type": "search_result", "source": "s"}])
            )),
            "messages[2].content[1].type"
        );
        assert_eq!(
            param_of(with(json!([{"type": "text"}]))),
            "messages[2].content[0].text"
        );
        assert_eq!(
            param_of(with(
                json!([{"type": "image", "source": {"type": "base64", "data": "x"}}])
            )),
            "messages[2].content[0].source.media_type"
        );
        assert_eq!(
            param_of(with(json!([{"text": "no type"}]))),
            "messages[2].content[0].type"
        );
        assert_eq!(
            param_of(with(
                json!([{"type": "tool_use", "id": "t", "name": "f", "input": {}}])
            )),
            "messages[2].content[0].type"
        );
        assert_eq!(
            param_of(with(
                json!([{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}])
            )),
            "messages[2].content[0].source.type"
        );
        assert_eq!(
            param_of(with(json!([{"type": "tool_result", "tool_use_id": "t",
                "content": [{"type": "image", "source": {"type": "url", "url": "https://x"}}]}]))),
            "messages[2].content[0].content[0].type"
        );
        let base = |extra: Value| {
            let mut v = json!({"model": "m/x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
            for (k, val) in extra.as_object().unwrap() {
                v[k] = val.clone();
            }
            v
        };
        assert_eq!(
            param_of(base(
                json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]})
            )),
            "tools[0]"
        );
        assert_eq!(
            param_of(base(json!({"tools": [{"name": "f"}]}))),
            "tools[0].input_schema"
        );
        assert_eq!(
            param_of(base(json!({"thinking": {"type": "enabled"}}))),
            "thinking.budget_tokens"
        );
        assert_eq!(
            param_of(base(
                json!({"output_config": {"format": {"type": "regex", "schema": {}}}})
            )),
            "output_config.format.type"
        );
        assert_eq!(
            param_of(base(json!({"output_config": {"task_budget": 1}}))),
            "output_config.task_budget"
        );
        assert_eq!(
            param_of(base(
                json!({"system": [{"type": "image", "source": {"type": "url", "url": "u"}}]})
            )),
            "system[0].type"
        );
        assert_eq!(param_of(base(json!({"n": "two"}))), "n");
        assert_eq!(
            param_of(json!({"model": "m/x", "max_tokens": 5, "messages": []})),
            "messages"
        );
        assert_eq!(
            param_of(json!({"model": "m/x", "max_tokens": 5, "messages": [
                {"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]})),
            "messages[0].content[0].type"
        );
    }

    fn completion(message: ResponseMessage, finish: &str, usage: Option<Usage>) -> ChatCompletion {
        ChatCompletion {
            id: "chatcmpl-1".into(),
            object: "chat.completion".into(),
            created: 1,
            model: "gpt-x".into(),
            choices: vec![Choice {
                index: 0,
                message,
                finish_reason: Some(FinishReason::from(finish)),
                ..Default::default()
            }],
            usage,
            provider: Some("mock".into()),
            ..Default::default()
        }
    }

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            kind: FunctionKind::Function,
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
            extra: JsonObject::new(),
        }
    }

    #[test]
    fn response_blocks_stop_reasons_and_usage() {
        let usage = Usage {
            prompt_tokens: 100,
            completion_tokens: 20,
            total_tokens: 120,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(60),
                cache_write_tokens: Some(30),
                ..Default::default()
            }),
            cost: Some(0.5),
            ..Default::default()
        };
        let message = ResponseMessage {
            content: Some("Checking.".into()),
            reasoning_content: Some("joined text".into()),
            thinking_blocks: Some(vec![
                ThinkingBlock::Thinking {
                    thinking: "step".into(),
                    signature: Some("sig".into()),
                },
                ThinkingBlock::RedactedThinking { data: "xx".into() },
            ]),
            tool_calls: Some(Some(vec![
                call("call_1", "get_weather", r#"{"city":"Paris"}"#),
                call("call_2", "broken", r#"{"city": "Par"#),
            ])),
            ..Default::default()
        };
        let out = from_chat_response(&completion(message, "tool_calls", Some(usage)), "mock/m");
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            json!({
                "id": "msg_chatcmpl-1",
                "type": "message",
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "step", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "xx"},
                    {"type": "text", "text": "Checking.", "citations": null},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}, "caller": {"type": "direct"}},
                    {"type": "tool_use", "id": "call_2", "name": "broken", "input": {}, "caller": {"type": "direct"},
                     "raw_arguments": "{\"city\": \"Par"}
                ],
                "model": "mock/m",
                "stop_reason": "tool_use",
                "stop_sequence": null,
                "stop_details": null,
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 20,
                    "cache_creation_input_tokens": 30,
                    "cache_read_input_tokens": 60,
                    "cache_creation": null,
                    "server_tool_use": null,
                    "service_tier": null,
                    "inference_geo": null,
                    "cost": 0.5
                },
                "container": null,
                "provider": "mock"
            })
        );

        // Sent back as history, the blocks become the same assistant turn (raw arguments too).
        let history: Vec<ContentBlock> =
            serde_json::from_value(serde_json::to_value(&out.content).unwrap()).unwrap();
        let req = MessagesRequest {
            model: "m/x".into(),
            max_tokens: 1,
            messages: vec![
                InputMessage {
                    role: Role::User,
                    content: InputContent::Text("hi".into()),
                },
                InputMessage {
                    role: Role::Assistant,
                    content: InputContent::Blocks(history),
                },
            ],
            ..Default::default()
        };
        let chat = to_chat_request(&req).unwrap();
        let ChatMessage::Assistant(turn) = &chat.messages[1] else {
            panic!("{:?}", chat.messages[1])
        };
        let calls = turn.tool_calls.as_ref().unwrap();
        assert_eq!(calls[1].function.arguments, r#"{"city": "Par"#);
        assert!(
            calls[1].extra.is_empty(),
            "no raw_arguments, no default caller"
        );
        assert_eq!(
            turn.content,
            Some(Some(MessageContent::Text("Checking.".into()))),
            "`citations: null` is not passed on"
        );
        assert_eq!(turn.thinking_blocks.as_ref().unwrap().len(), 2);

        let plain = |message: ResponseMessage, finish: &str| {
            serde_json::to_value(from_chat_response(&completion(message, finish, None), "m"))
                .unwrap()
        };
        let text = ResponseMessage {
            content: Some("hi".into()),
            reasoning_content: Some("hmm".into()),
            ..Default::default()
        };
        let v = plain(text.clone(), "stop");
        assert_eq!(
            v["content"],
            json!([{"type": "thinking", "thinking": "hmm", "signature": ""},
                   {"type": "text", "text": "hi", "citations": null}])
        );
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["usage"]["input_tokens"], 0);
        assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
        assert_eq!(plain(text.clone(), "length")["stop_reason"], "max_tokens");
        let filtered = plain(text, "content_filter");
        assert_eq!(filtered["stop_reason"], "refusal");
        assert_eq!(filtered["stop_details"]["type"], "refusal");
        let tool_with_stop = ResponseMessage {
            tool_calls: Some(Some(vec![call("c", "f", "")])),
            ..Default::default()
        };
        let v = plain(tool_with_stop, "stop");
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(v["content"][0]["input"], json!({}));
        assert!(v["content"][0].get("raw_arguments").is_none());
        let refusal = ResponseMessage {
            refusal: Some(Some("I can't.".into())),
            ..Default::default()
        };
        let v = plain(refusal, "stop");
        assert_eq!(v["stop_reason"], "refusal");
        assert_eq!(v["content"][0]["text"], "I can't.");
    }

    // ------------------------------------------------------------------ stream encoder

    fn chunk(delta: Delta, finish: Option<&str>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: "chatcmpl-9".into(),
            object: "chat.completion.chunk".into(),
            created: 1,
            model: "gpt-x".into(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(FinishReason::from),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn text(t: &str) -> Delta {
        Delta {
            content: Some(Some(t.into())),
            ..Default::default()
        }
    }

    fn usage_chunk(prompt: u64, completion: u64, cached: u64) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: "chatcmpl-9".into(),
            usage: Some(Some(Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                total_tokens: prompt + completion,
                prompt_tokens_details: Some(PromptTokensDetails {
                    cached_tokens: Some(cached),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn encode(chunks: &[ChatCompletionChunk], error: Option<Error>) -> Vec<AnthropicEvent> {
        let mut encoder = MessagesStreamEncoder::new("mock/m");
        let mut events = Vec::new();
        for c in chunks {
            events.extend(encoder.on_chunk(c));
        }
        match error {
            Some(e) => {
                events.extend(encoder.on_error(&e));
                assert!(encoder.is_finished());
                assert!(encoder.finish().is_empty(), "nothing after an error");
            }
            None => events.extend(encoder.finish()),
        }
        events
    }

    /// `name` plus the interesting part of each event, for compact assertions.
    fn summary(events: &[AnthropicEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                assert_eq!(e.data["type"], e.name, "type matches the event name");
                let d = &e.data;
                match e.name {
                    "content_block_start" => format!(
                        "start {} {}",
                        d["index"],
                        d["content_block"]["type"].as_str().unwrap()
                    ),
                    "content_block_delta" => {
                        let delta = &d["delta"];
                        let body = delta
                            .as_object()
                            .unwrap()
                            .iter()
                            .find(|(k, _)| *k != "type")
                            .map(|(_, v)| v.as_str().unwrap().to_owned())
                            .unwrap();
                        format!(
                            "delta {} {} {body}",
                            d["index"],
                            delta["type"].as_str().unwrap()
                        )
                    }
                    "content_block_stop" => format!("stop {}", d["index"]),
                    "message_delta" => format!("message_delta {}", d["delta"]["stop_reason"]),
                    other => other.to_owned(),
                }
            })
            .collect()
    }

    #[test]
    fn text_stream_events_and_usage() {
        let role = Delta {
            role: Some("assistant".into()),
            content: Some(Some(String::new())),
            ..Default::default()
        };
        let events = encode(
            &[
                chunk(role, None),
                chunk(text("Hello"), None),
                chunk(text(" world"), None),
                chunk(Delta::default(), Some("stop")),
                usage_chunk(50, 2, 40),
            ],
            None,
        );
        assert_eq!(
            summary(&events),
            [
                "message_start",
                "start 0 text",
                "delta 0 text_delta Hello",
                "delta 0 text_delta  world",
                "stop 0",
                "message_delta \"end_turn\"",
                "message_stop"
            ]
        );
        let start = &events[0].data["message"];
        assert_eq!(start["id"], "msg_chatcmpl-9");
        assert_eq!(start["model"], "mock/m");
        assert_eq!(start["content"], json!([]));
        assert_eq!(
            events[1].data["content_block"],
            json!({"type": "text", "text": "", "citations": null})
        );
        assert_eq!(
            events[5].data["usage"],
            json!({"input_tokens": 10, "cache_creation_input_tokens": 0,
                   "cache_read_input_tokens": 40, "output_tokens": 2, "server_tool_use": null})
        );
        assert_eq!(
            events[5].data["delta"],
            json!({"stop_reason": "end_turn", "stop_sequence": null, "stop_details": null, "container": null})
        );
        let sse = events[6].to_sse();
        assert_eq!(
            sse,
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
    }

    fn tool_delta(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> Delta {
        Delta {
            tool_calls: Some(Some(vec![ToolCallDelta {
                index,
                id: id.map(str::to_owned),
                kind: id.map(|_| "function".to_owned()),
                function: Some(FunctionCallDelta {
                    name: name.map(str::to_owned),
                    arguments: Some(args.to_owned()),
                }),
                extra: JsonObject::new(),
            }])),
            ..Default::default()
        }
    }

    #[test]
    fn tool_call_stream_events() {
        let events = encode(
            &[
                chunk(text("Let me check."), None),
                chunk(tool_delta(0, Some("call_a"), Some("get_weather"), ""), None),
                chunk(tool_delta(0, None, None, "{\"city\":"), None),
                chunk(tool_delta(0, None, None, "\"Paris\"}"), None),
                chunk(tool_delta(1, Some("call_b"), Some("get_time"), "{}"), None),
                chunk(tool_delta(0, None, None, " "), None),
                chunk(Delta::default(), Some("tool_calls")),
            ],
            None,
        );
        assert_eq!(
            summary(&events),
            [
                "message_start",
                "start 0 text",
                "delta 0 text_delta Let me check.",
                "stop 0",
                "start 1 tool_use",
                "delta 1 input_json_delta {\"city\":",
                "delta 1 input_json_delta \"Paris\"}",
                "stop 1",
                "start 2 tool_use",
                "delta 2 input_json_delta {}",
                "delta 1 input_json_delta  ",
                "stop 2",
                "message_delta \"tool_use\"",
                "message_stop"
            ]
        );
        assert_eq!(
            events[4].data["content_block"],
            json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}, "caller": {"type": "direct"}})
        );
        assert_eq!(
            events[12].data["usage"]["input_tokens"],
            Value::Null,
            "no usage chunk: input unknown"
        );
    }

    #[test]
    fn thinking_with_signature_and_redacted_blocks() {
        let reasoning = |t: &str| Delta {
            reasoning_content: Some(t.into()),
            ..Default::default()
        };
        let blocks = |b: Vec<ThinkingBlock>| Delta {
            thinking_blocks: Some(b),
            ..Default::default()
        };
        let events = encode(
            &[
                chunk(reasoning("Let me "), None),
                chunk(reasoning("think."), None),
                chunk(
                    blocks(vec![ThinkingBlock::Thinking {
                        thinking: "Let me think.".into(),
                        signature: Some("EoQD".into()),
                    }]),
                    None,
                ),
                chunk(
                    blocks(vec![
                        ThinkingBlock::RedactedThinking {
                            data: "opaque".into(),
                        },
                        ThinkingBlock::Thinking {
                            thinking: "Whole block.".into(),
                            signature: Some("sig2".into()),
                        },
                    ]),
                    None,
                ),
                chunk(reasoning("unsigned"), None),
                chunk(text("Answer."), Some("stop")),
            ],
            None,
        );
        assert_eq!(
            summary(&events),
            [
                "message_start",
                "start 0 thinking",
                "delta 0 thinking_delta Let me ",
                "delta 0 thinking_delta think.",
                "delta 0 signature_delta EoQD",
                "stop 0",
                "start 1 redacted_thinking",
                "stop 1",
                "start 2 thinking",
                "delta 2 thinking_delta Whole block.",
                "delta 2 signature_delta sig2",
                "stop 2",
                "start 3 thinking",
                "delta 3 thinking_delta unsigned",
                "stop 3",
                "start 4 text",
                "delta 4 text_delta Answer.",
                "stop 4",
                "message_delta \"end_turn\"",
                "message_stop"
            ]
        );
        assert_eq!(
            events[1].data["content_block"],
            json!({"type": "thinking", "thinking": "", "signature": ""})
        );
        assert_eq!(
            events[6].data["content_block"],
            json!({"type": "redacted_thinking", "data": "opaque"})
        );
    }

    #[test]
    fn mid_stream_error_ends_with_an_error_event() {
        let err = Error::new(ErrorKind::ServiceUnavailable, "upstream overloaded");
        let events = encode(&[chunk(text("partial"), None)], Some(err));
        assert_eq!(
            summary(&events),
            [
                "message_start",
                "start 0 text",
                "delta 0 text_delta partial",
                "error"
            ]
        );
        assert_eq!(
            events[3].data,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "upstream overloaded"}, "request_id": null})
        );
        // An empty stream still makes a well-formed message.
        assert_eq!(
            summary(&encode(&[], None)),
            [
                "message_start",
                "message_delta \"end_turn\"",
                "message_stop"
            ]
        );
    }

    #[test]
    fn error_bodies_use_anthropic_types() {
        let cases = [
            (ErrorKind::BadRequest, "invalid_request_error"),
            (ErrorKind::Authentication, "authentication_error"),
            (ErrorKind::PermissionDenied, "permission_error"),
            (ErrorKind::NotFound, "not_found_error"),
            (ErrorKind::PayloadTooLarge, "request_too_large"),
            (ErrorKind::RateLimit, "rate_limit_error"),
            (ErrorKind::ServiceUnavailable, "overloaded_error"),
            (ErrorKind::Timeout, "timeout_error"),
            (ErrorKind::InternalServer, "api_error"),
            (ErrorKind::Connection, "api_error"),
        ];
        for (kind, expected) in cases {
            let body = anthropic_error_body(&Error::new(kind, "m"));
            assert_eq!(body["error"]["type"], expected, "{kind:?}");
            assert_eq!(body["type"], "error");
        }
        let err = Error::invalid_param("messages[0].role", "bad role");
        assert_eq!(
            anthropic_error_body(&err)["error"]["message"],
            "messages[0].role: bad role"
        );
        let err = Error::invalid_param("tools[0]", "`tools[0]` is a server tool");
        assert_eq!(
            anthropic_error_body(&err)["error"]["message"],
            "`tools[0]` is a server tool"
        );
    }

    /// The recorded Anthropic requests translate, and recorded answers sent back as history keep
    /// their thinking signatures and redacted data.
    #[test]
    fn recorded_anthropic_requests_and_answers_translate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/anthropic");
        let Ok(cases) = std::fs::read_dir(&dir) else {
            eprintln!("skipped: no fixtures at {}", dir.display());
            return;
        };
        let mut requests = 0;
        let mut answers = 0;
        for case in cases {
            let case = case.unwrap().path();
            if let Ok(text) = std::fs::read_to_string(case.join("request.json")) {
                let req: MessagesRequest = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
                to_chat_request(&req).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
                requests += 1;
            }
            let Ok(text) = std::fs::read_to_string(case.join("response.json")) else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["type"] != "message" {
                continue;
            }
            let req = request(json!({"model": "m/x", "max_tokens": 1, "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": answer["content"]}]}));
            let chat = to_chat_request(&req).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
            let ChatMessage::Assistant(turn) = &chat.messages[1] else {
                panic!("{}", case.display())
            };
            for (block, original) in answer["content"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|b| b["type"] == "thinking" || b["type"] == "redacted_thinking")
                .zip(turn.thinking_blocks.iter().flatten())
            {
                match original {
                    ThinkingBlock::Thinking { signature, .. } => {
                        assert_eq!(block["signature"].as_str(), signature.as_deref())
                    }
                    ThinkingBlock::RedactedThinking { data } => assert_eq!(block["data"], *data),
                }
            }
            answers += 1;
        }
        assert!(
            requests >= 10 && answers >= 4,
            "{requests} requests, {answers} answers"
        );
    }
}
