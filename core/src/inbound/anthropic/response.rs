//! The response translation: a chat completion to a Messages answer.

use serde_json::{Value, json};

use super::types::{MessagesResponse, MessagesUsage, ResponseBlock, StopReason, direct_caller};
use crate::types::{ChatCompletion, JsonObject, ThinkingBlock, ToolCall};

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

pub(super) fn message_id(id: &str) -> String {
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
