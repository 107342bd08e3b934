//! The Messages API types: the request (`CreateMessageParams`) and its blocks, the answer
//! (`Message`), its usage and stop reason, and the events of a stream.

use serde::de::{self, Deserializer, SeqAccess, Visitor, value::SeqAccessDeserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::anthropic_error_body;
use crate::error::Error;
use crate::types::serde_helpers::ser_f64;
use crate::types::{FinishReason, JsonObject, Usage};

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
pub(super) enum StrictBlock {
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
pub(super) enum StrictSource {
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

pub(super) const KNOWN_BLOCKS: [&str; 7] = [
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

pub(super) fn direct_caller() -> Value {
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
    pub(super) fn from_finish(
        finish: Option<&FinishReason>,
        has_tool_calls: bool,
        refused: bool,
    ) -> Self {
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

    pub(super) fn details(self) -> Value {
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
    pub(super) fn from_usage(usage: &Usage) -> Self {
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
