//! `CreateChatCompletionResponse`: a whole (non-streamed) answer.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::serde_helpers::ser_nullable;
use super::with_extra::deserialize_with_extra;
use super::{JsonObject, Nullable, ThinkingBlock, ToolCall, Usage};

/// A complete chat completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatCompletion {
    /// Completion id.
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Unix time in seconds.
    pub created: u64,
    /// The model that answered, as the provider names it.
    pub model: String,
    /// One choice per `n`.
    pub choices: Vec<Choice>,
    /// Token usage; opengateway adds `cost`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Backend configuration fingerprint.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_nullable"
    )]
    pub system_fingerprint: Nullable<String>,
    /// The service tier that served the request.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_nullable"
    )]
    pub service_tier: Nullable<String>,
    /// opengateway: the provider id that served the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(ChatCompletion, "a chat completion object", {
    "id" => id: required,
    "object" => object: (default chat_completion_object),
    "created" => created: required,
    "model" => model: required,
    "choices" => choices: required,
    "usage" => usage: default,
    "system_fingerprint" => system_fingerprint: nullable,
    "service_tier" => service_tier: nullable,
    "provider" => provider: default,
});

fn chat_completion_object() -> String {
    "chat.completion".to_owned()
}

/// One choice of a completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Choice {
    /// Position among the choices.
    pub index: u32,
    /// The generated message.
    pub message: ResponseMessage,
    /// Why generation stopped (always written, `null` when unknown).
    pub finish_reason: Option<FinishReason>,
    /// Log probabilities (always written, `null` when not requested).
    pub logprobs: Option<Value>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(Choice, "a choice object", {
    "index" => index: default,
    "message" => message: required,
    "finish_reason" => finish_reason: default,
    "logprobs" => logprobs: default,
});

/// The assistant message of a choice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseMessage {
    /// Always `assistant`.
    pub role: String,
    /// The text (always written, `null` when the turn is only tool calls).
    pub content: Option<String>,
    /// A refusal by the model.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_nullable"
    )]
    pub refusal: Nullable<String>,
    /// opengateway: the model's reasoning or thinking text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// opengateway: reasoning blocks with their signatures, to send back in the next turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<ThinkingBlock>>,
    /// Tool calls the model made.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_nullable"
    )]
    pub tool_calls: Nullable<Vec<ToolCall>>,
    /// Fields not modelled above (`annotations`, `audio`, `function_call`, ...).
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(ResponseMessage, "a message object", {
    "role" => role: (default assistant_role),
    "content" => content: default,
    "refusal" => refusal: nullable,
    "reasoning_content" => reasoning_content: default,
    "thinking_blocks" => thinking_blocks: default,
    "tool_calls" => tool_calls: nullable,
});

impl Default for ResponseMessage {
    fn default() -> Self {
        ResponseMessage {
            role: assistant_role(),
            content: None,
            refusal: None,
            reasoning_content: None,
            thinking_blocks: None,
            tool_calls: None,
            extra: JsonObject::new(),
        }
    }
}

fn assistant_role() -> String {
    "assistant".to_owned()
}

/// Why generation stopped, in OpenAI's terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// Token limit reached.
    Length,
    /// The model called tools.
    ToolCalls,
    /// Output withheld by a content filter.
    ContentFilter,
    /// Deprecated function call.
    FunctionCall,
    /// Any other value a provider sent, kept verbatim.
    Other(String),
}

impl FinishReason {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::FunctionCall => "function_call",
            FinishReason::Other(s) => s,
        }
    }
}

impl From<&str> for FinishReason {
    fn from(s: &str) -> Self {
        match s {
            "stop" => FinishReason::Stop,
            "length" => FinishReason::Length,
            "tool_calls" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            "function_call" => FinishReason::FunctionCall,
            other => FinishReason::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FinishReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FinishReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(FinishReason::from(s.as_ref()))
    }
}
