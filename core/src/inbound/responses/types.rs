//! The request body and the stream event of the Responses API as the gateway holds them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::JsonObject;

/// A Responses API request (`POST /v1/responses`). Only the fields the gateway itself acts on
/// are typed; every other field stays in [`body`](Self::body) exactly as the client sent it, so
/// a pass-through to OpenAI forwards it untouched and the translation reads it with the exact
/// path of any field at fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponsesRequest {
    /// `provider/model`, or an alias from the config.
    pub model: String,
    /// Whether to answer with a stream of events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// opengateway: ordered fallback models tried after `model` (`fallbacks` is a synonym).
    /// Never sent upstream.
    #[serde(default, alias = "fallbacks", skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// opengateway: pins prompt-cache stickiness to this session. Never sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// opengateway: total time allowed for one attempt, in milliseconds. Never sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// opengateway: time allowed until the first byte, in milliseconds. Never sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_timeout_ms: Option<u64>,
    /// Every other field (`input`, `instructions`, `tools`, `text`, ...), verbatim.
    #[serde(flatten)]
    pub body: JsonObject,
}

impl ResponsesRequest {
    /// A field of the body, `None` when absent or `null`.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.body.get(name).filter(|v| !v.is_null())
    }
}

/// One server-sent event of a streamed Response: its `event:` name (the same as the data's
/// `type`) and its `data:` JSON text (kept as text, so a pass-through relays the provider's
/// bytes without re-encoding them).
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsesEvent {
    /// The event name, e.g. `response.output_text.delta`.
    pub name: String,
    /// The JSON text of the event.
    pub data: String,
}

impl ResponsesEvent {
    /// An event from its JSON value (whose `type` is the name).
    pub fn from_value(data: &Value) -> Self {
        ResponsesEvent {
            name: data
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("message")
                .to_owned(),
            data: data.to_string(),
        }
    }
}
