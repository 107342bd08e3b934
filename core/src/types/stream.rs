//! `CreateChatCompletionStreamResponse`: one chunk of a streamed answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::serde_helpers::ser_nullable;
use super::with_extra::deserialize_with_extra;
use super::{FinishReason, JsonObject, Nullable, ThinkingBlock, Usage};

/// One streamed chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatCompletionChunk {
    /// Completion id, the same on every chunk.
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    /// Unix time in seconds.
    pub created: u64,
    /// The model that answers.
    pub model: String,
    /// Choice deltas (empty on the final usage chunk).
    pub choices: Vec<ChunkChoice>,
    /// Usage: `null` on every chunk but the last when `include_usage` was asked.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_nullable"
    )]
    pub usage: Nullable<Usage>,
    /// Backend configuration fingerprint.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_nullable"
    )]
    pub system_fingerprint: Nullable<String>,
    /// The service tier that serves the request.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_nullable"
    )]
    pub service_tier: Nullable<String>,
    /// opengateway: the provider id that serves the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Fields not modelled above (`obfuscation`, ...).
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(ChatCompletionChunk, "a chat completion chunk object", {
    "id" => id: required,
    "object" => object: (default chunk_object),
    "created" => created: required,
    "model" => model: required,
    "choices" => choices: required,
    "usage" => usage: nullable,
    "system_fingerprint" => system_fingerprint: nullable,
    "service_tier" => service_tier: nullable,
    "provider" => provider: default,
});

fn chunk_object() -> String {
    "chat.completion.chunk".to_owned()
}

impl ChatCompletionChunk {
    /// The usage carried by this chunk, if any.
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref().and_then(Option::as_ref)
    }
}

/// One choice's delta in a chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChunkChoice {
    /// Position among the choices.
    pub index: u32,
    /// What this chunk adds.
    pub delta: Delta,
    /// Set on the choice's last chunk (always written, `null` before).
    pub finish_reason: Option<FinishReason>,
    /// Log probabilities of this chunk's tokens.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_nullable"
    )]
    pub logprobs: Nullable<Value>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(ChunkChoice, "a chunk choice object", {
    "index" => index: default,
    "delta" => delta: default,
    "finish_reason" => finish_reason: default,
    "logprobs" => logprobs: nullable,
});

/// The incremental part of a chunk's choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Delta {
    /// `assistant`, on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Text to append.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_nullable"
    )]
    pub content: Nullable<String>,
    /// opengateway: reasoning text to append.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// opengateway: whole reasoning blocks (with signatures), each sent once, when it ends;
    /// a client appends them to rebuild the message's `thinking_blocks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<ThinkingBlock>>,
    /// Refusal text to append.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_nullable"
    )]
    pub refusal: Nullable<String>,
    /// Tool-call fragments, addressed by `index`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_nullable"
    )]
    pub tool_calls: Nullable<Vec<ToolCallDelta>>,
    /// Fields not modelled above (`function_call`, ...).
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(Delta, "a delta object", {
    "role" => role: default,
    "content" => content: nullable,
    "reasoning_content" => reasoning_content: default,
    "thinking_blocks" => thinking_blocks: default,
    "refusal" => refusal: nullable,
    "tool_calls" => tool_calls: nullable,
});

/// A fragment of a tool call: the first carries `id`, `type` and the name, later ones add
/// argument text.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ToolCallDelta {
    /// Which tool call of the choice this fragment belongs to.
    pub index: u32,
    /// Call id (first fragment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function` (first fragment).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name and argument text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(ToolCallDelta, "a tool call delta object", {
    "index" => index: required,
    "id" => id: default,
    "type" => kind: default,
    "function" => function: default,
});

/// A fragment of a function call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    /// The function name (first fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Argument text to append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}
