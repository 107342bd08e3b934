//! `CreateChatCompletionRequest` and the message, content-part and tool types it carries.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor, value::SeqAccessDeserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::serde_helpers::{ser_f64, ser_nullable};
use super::with_extra::{Key, deserialize_with_extra};
use super::{JsonObject, Nullable};

/// A Chat Completions request, as a client sends it to `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatCompletionRequest {
    /// `provider/model`, or an alias from the config.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature, 0 to 2.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_f64")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_f64")]
    pub top_p: Option<f64>,
    /// Number of choices to generate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Whether to answer with a stream of chunks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Stream options (`include_usage`, `include_obfuscation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Up to four sequences where generation stops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSequences>,
    /// Legacy output token limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Output token limit, reasoning tokens included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Presence penalty, -2 to 2.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_f64")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty, -2 to 2.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_f64")]
    pub frequency_penalty: Option<f64>,
    /// Token id → bias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<JsonObject>,
    /// Whether to return log probabilities of the output tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// Number of most likely tokens to return at each position (with `logprobs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    /// Seed for best-effort deterministic sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Tools the model may call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Which tool (if any) the model must call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether several tool calls may be returned in one turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Output format: text, JSON object or JSON schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Reasoning effort for reasoning models (`minimal`, `low`, `medium`, `high`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// End-user identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Key-value tags attached to the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// opengateway: ordered fallback models tried after `model` (`fallbacks` is a synonym).
    /// Never sent upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// opengateway: pins prompt-cache stickiness to this session. Never sent upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// opengateway: total time allowed for one attempt, in milliseconds. Never sent upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// opengateway: time allowed until the first byte (a stream's first chunk), in
    /// milliseconds. Never sent upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_timeout_ms: Option<u64>,
    /// Every field not modelled above, passed through unchanged.
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(ChatCompletionRequest, "a chat completion request", {
    "model" => model: required,
    "messages" => messages: required,
    "temperature" => temperature: default,
    "top_p" => top_p: default,
    "n" => n: default,
    "stream" => stream: default,
    "stream_options" => stream_options: default,
    "stop" => stop: default,
    "max_tokens" => max_tokens: default,
    "max_completion_tokens" => max_completion_tokens: default,
    "presence_penalty" => presence_penalty: default,
    "frequency_penalty" => frequency_penalty: default,
    "logit_bias" => logit_bias: default,
    "logprobs" => logprobs: default,
    "top_logprobs" => top_logprobs: default,
    "seed" => seed: default,
    "tools" => tools: default,
    "tool_choice" => tool_choice: default,
    "parallel_tool_calls" => parallel_tool_calls: default,
    "response_format" => response_format: default,
    "reasoning_effort" => reasoning_effort: default,
    "user" => user: default,
    "metadata" => metadata: default,
    "models" | "fallbacks" => models: default,
    "session_id" => session_id: default,
    "timeout_ms" => timeout_ms: default,
    "ttft_timeout_ms" => ttft_timeout_ms: default,
});

/// `stream_options` of a streaming request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Send a final chunk with the usage of the whole request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `stop`: one sequence or a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, expecting = "a string or an array of strings")]
pub enum StopSequences {
    /// A single stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

impl StopSequences {
    /// The sequences as a list, whichever form was sent.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StopSequences::One(s) => vec![s.clone()],
            StopSequences::Many(v) => v.clone(),
        }
    }
}

/// One message of the conversation, tagged by `role`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatMessage {
    /// Instructions from the application (older models).
    System(SystemMessage),
    /// Instructions from the application (newer models; same meaning as `system`).
    Developer(SystemMessage),
    /// A message from the end user.
    User(UserMessage),
    /// A previous answer of the model, possibly with tool calls.
    Assistant(AssistantMessage),
    /// The result of a tool call.
    Tool(ToolMessage),
    /// Deprecated: the result of a function call.
    Function(FunctionMessage),
}

/// The `role` tag of a message, read on its own.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

impl<'de> Deserialize<'de> for ChatMessage {
    // serde's derive for a tagged enum buffers the whole object (every string copied) to find
    // the tag; SDKs write `role` first, so this reads it and hands the rest of the object to the
    // variant, and buffers only when `role` comes later.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MessageVisitor;
        impl<'de> Visitor<'de> for MessageVisitor {
            type Value = ChatMessage;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a message object with a `role`")
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<ChatMessage, A::Error> {
                let first = map.next_key::<Key<'de>>()?;
                if let Some(key) = first.as_ref()
                    && key.as_str() == "role"
                {
                    return Ok(match map.next_value::<Role>()? {
                        Role::System => ChatMessage::System(SystemMessage::decode_fields(map)?),
                        Role::Developer => {
                            ChatMessage::Developer(SystemMessage::decode_fields(map)?)
                        }
                        Role::User => ChatMessage::User(UserMessage::decode_fields(map)?),
                        Role::Assistant => {
                            ChatMessage::Assistant(AssistantMessage::decode_fields(map)?)
                        }
                        Role::Tool => ChatMessage::Tool(ToolMessage::decode_fields(map)?),
                        Role::Function => {
                            ChatMessage::Function(FunctionMessage::decode_fields(map)?)
                        }
                    });
                }
                // `role` comes later: keep the other keys until it does.
                let mut role = None;
                let mut rest = JsonObject::new();
                let mut next = first;
                while let Some(key) = next {
                    if key.as_str() == "role" {
                        if role.is_some() {
                            return Err(de::Error::duplicate_field("role"));
                        }
                        role = Some(map.next_value::<Role>()?);
                    } else {
                        let value = map.next_value()?;
                        rest.insert(key.into_owned(), value);
                    }
                    next = map.next_key::<Key<'de>>()?;
                }
                let rest = Value::Object(rest);
                let message = match role.ok_or_else(|| de::Error::missing_field("role"))? {
                    Role::System => SystemMessage::deserialize(rest).map(ChatMessage::System),
                    Role::Developer => SystemMessage::deserialize(rest).map(ChatMessage::Developer),
                    Role::User => UserMessage::deserialize(rest).map(ChatMessage::User),
                    Role::Assistant => {
                        AssistantMessage::deserialize(rest).map(ChatMessage::Assistant)
                    }
                    Role::Tool => ToolMessage::deserialize(rest).map(ChatMessage::Tool),
                    Role::Function => FunctionMessage::deserialize(rest).map(ChatMessage::Function),
                };
                message.map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_map(MessageVisitor)
    }
}

impl ChatMessage {
    /// The `role` string of this message.
    pub fn role(&self) -> &'static str {
        match self {
            ChatMessage::System(_) => "system",
            ChatMessage::Developer(_) => "developer",
            ChatMessage::User(_) => "user",
            ChatMessage::Assistant(_) => "assistant",
            ChatMessage::Tool(_) => "tool",
            ChatMessage::Function(_) => "function",
        }
    }

    /// A user message with plain text.
    pub fn user(text: impl Into<String>) -> Self {
        ChatMessage::User(UserMessage {
            content: MessageContent::Text(text.into()),
            name: None,
            extra: JsonObject::new(),
        })
    }

    /// A system message with plain text.
    pub fn system(text: impl Into<String>) -> Self {
        ChatMessage::System(SystemMessage {
            content: MessageContent::Text(text.into()),
            name: None,
            extra: JsonObject::new(),
        })
    }
}

/// A `system` or `developer` message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemMessage {
    /// Text, or text parts.
    pub content: MessageContent,
    /// Optional participant name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(SystemMessage, "a system message", {
    "content" => content: required,
    "name" => name: default,
});

/// A `user` message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserMessage {
    /// Text, or parts (text, image, audio, file).
    pub content: MessageContent,
    /// Optional participant name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(UserMessage, "a user message", {
    "content" => content: required,
    "name" => name: default,
});

/// An `assistant` message sent back as conversation history.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AssistantMessage {
    /// Text or parts; may be `null` when the turn only has tool calls.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_nullable"
    )]
    pub content: Nullable<MessageContent>,
    /// A refusal by the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Optional participant name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls the model made in this turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Deprecated function call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    /// opengateway: reasoning text the model produced in this turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// opengateway: the turn's reasoning blocks exactly as the provider returned them, sent back
    /// so providers that verify them (Anthropic signatures) accept the conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<ThinkingBlock>>,
    /// Fields not modelled above (`audio`, ...).
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(AssistantMessage, "an assistant message", {
    "content" => content: nullable,
    "refusal" => refusal: default,
    "name" => name: default,
    "tool_calls" => tool_calls: default,
    "function_call" => function_call: default,
    "reasoning_content" => reasoning_content: default,
    "thinking_blocks" => thinking_blocks: default,
});

/// A `tool` message: the result of one tool call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolMessage {
    /// The result, as text or text parts.
    pub content: MessageContent,
    /// The id of the tool call this answers.
    pub tool_call_id: String,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(ToolMessage, "a tool message", {
    "content" => content: required,
    "tool_call_id" => tool_call_id: required,
});

/// A deprecated `function` message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionMessage {
    /// The function's result.
    pub content: Option<String>,
    /// The function's name.
    pub name: String,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(FunctionMessage, "a function message", {
    "content" => content: default,
    "name" => name: required,
});

/// Message content: a plain string or a list of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed parts.
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// All text of the content joined (text parts only).
    pub fn text(&self) -> String {
        match self {
            MessageContent::Text(s) => s.clone(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text(t) => Some(t.text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

// Written by hand so that a bad part reports its own error (e.g. an unknown part `type`)
// instead of serde's "did not match any variant of untagged enum".
impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = MessageContent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MessageContent::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(MessageContent::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<ContentPart>::deserialize(SeqAccessDeserializer::new(seq))
                    .map(MessageContent::Parts)
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

/// One typed part of message content, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text(TextPart),
    /// An image by URL or `data:` URL.
    ImageUrl(ImageUrlPart),
    /// Base64 audio.
    InputAudio(InputAudioPart),
    /// A file by id or base64 data.
    File(FilePart),
    /// A refusal (assistant history only).
    Refusal(RefusalPart),
}

/// `{"type": "text", "text": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextPart {
    /// The text.
    pub text: String,
    /// Fields not modelled above (e.g. `cache_control`).
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `{"type": "image_url", "image_url": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrlPart {
    /// The image reference.
    pub image_url: ImageUrl,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The `image_url` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// `https://` or `data:<mime>;base64,` URL.
    pub url: String,
    /// `auto`, `low` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `{"type": "input_audio", "input_audio": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputAudioPart {
    /// The audio data.
    pub input_audio: InputAudio,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The `input_audio` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputAudio {
    /// Base64-encoded audio.
    pub data: String,
    /// `wav` or `mp3`.
    pub format: String,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `{"type": "file", "file": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilePart {
    /// The file reference.
    pub file: FileRef,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The `file` object: an uploaded file id or inline base64 data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileRef {
    /// Base64 file data (a `data:` URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<String>,
    /// Id of an uploaded file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// File name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `{"type": "refusal", "refusal": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusalPart {
    /// The refusal text.
    pub refusal: String,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// A tool the model may call, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Tool {
    /// A function tool.
    Function(FunctionTool),
    /// A custom (free-form input) tool.
    Custom(CustomTool),
}

/// `{"type": "function", "function": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionTool {
    /// The function definition.
    pub function: FunctionDefinition,
    /// Fields not modelled above (e.g. `cache_control`).
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// A function's name, description and JSON Schema parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    /// Function name (`a-z A-Z 0-9 _ -`, up to 64).
    pub name: String,
    /// What the function does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Whether the arguments must follow the schema exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `{"type": "custom", "custom": {...}}`, kept as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomTool {
    /// The custom tool definition.
    pub custom: Value,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `tool_choice`: a mode string or a specific tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "\"none\", \"auto\", \"required\" or a tool choice object"
)]
pub enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(ToolChoiceMode),
    /// `{"type": "function", "function": {"name": ...}}`.
    Function(NamedToolChoice),
    /// Any other object (`allowed_tools`, `custom`), passed through.
    Other(JsonObject),
}

/// The string forms of `tool_choice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoiceMode {
    /// The model must not call a tool.
    None,
    /// The model decides.
    Auto,
    /// The model must call at least one tool.
    Required,
}

/// `tool_choice` naming one function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedToolChoice {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: FunctionKind,
    /// The function to call.
    pub function: FunctionName,
}

/// The literal `"function"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunctionKind {
    /// `function`.
    #[default]
    Function,
}

/// `{"name": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionName {
    /// The function name.
    pub name: String,
}

/// `response_format`, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Plain text.
    Text,
    /// Any valid JSON object.
    JsonObject,
    /// JSON that follows a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
}

/// The `json_schema` object of `response_format`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    /// Schema name.
    pub name: String,
    /// What the format is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Whether the output must follow the schema exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    /// Call id, echoed by the `tool` message that answers it.
    pub id: String,
    /// Always `function` for function calls.
    #[serde(rename = "type")]
    pub kind: FunctionKind,
    /// The function and its JSON-encoded arguments.
    pub function: FunctionCall,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

deserialize_with_extra!(ToolCall, "a tool call object", {
    "id" => id: required,
    "type" => kind: default,
    "function" => function: required,
});

/// A function name with JSON-encoded arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function name.
    pub name: String,
    /// The arguments as a JSON string.
    pub arguments: String,
}

/// A reasoning block kept verbatim across turns (opengateway extension, LiteLLM-compatible).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingBlock {
    /// Readable reasoning with the provider's signature over it.
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// The provider's signature, required when the block is sent back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Reasoning the provider encrypted; only sent back, never shown.
    RedactedThinking {
        /// The opaque encrypted data.
        data: String,
    },
}
