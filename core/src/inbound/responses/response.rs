//! The response translation: a canonical chat completion to the Response object, and the
//! usage conversions both ways.

use serde_json::{Value, json};

use super::types::ResponsesRequest;
use crate::types::{
    ChatCompletion, CompletionTokensDetails, FinishReason, PromptTokensDetails, Usage,
};

/// A fresh id with the Responses API's prefix for its kind (`resp`, `msg`, `fc`, `rs`).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:032x}", fastrand::u128(..))
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The Response object with the request's settings echoed, as `in_progress` and without
/// output: what `response.created` carries, and the base of the final object.
pub(crate) fn envelope(
    request: &ResponsesRequest,
    id: &str,
    created_at: u64,
    model: &str,
) -> Value {
    let field = |name: &str| request.field(name).cloned().unwrap_or(Value::Null);
    let reasoning = request.field("reasoning");
    let reasoning_part = |key: &str| {
        reasoning
            .and_then(|r| r.get(key))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut text = json!({"format": {"type": "text"}});
    if let Some(t) = request.field("text") {
        if let Some(format) = t.get("format").filter(|f| !f.is_null()) {
            text["format"] = format.clone();
        }
        if let Some(verbosity) = t.get("verbosity").filter(|v| !v.is_null()) {
            text["verbosity"] = verbosity.clone();
        }
    }
    let mut envelope = json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": false,
        "completed_at": null,
        "error": null,
        "incomplete_details": null,
        "instructions": field("instructions"),
        "max_output_tokens": field("max_output_tokens"),
        "max_tool_calls": null,
        "model": model,
        "output": [],
        "parallel_tool_calls": request.field("parallel_tool_calls").cloned().unwrap_or(Value::Bool(true)),
        "previous_response_id": null,
        "reasoning": {"effort": reasoning_part("effort"), "summary": reasoning_part("summary")},
        "store": false,
        "temperature": field("temperature"),
        "text": text,
        "tool_choice": request.field("tool_choice").cloned().unwrap_or_else(|| json!("auto")),
        "tools": request.field("tools").cloned().unwrap_or_else(|| json!([])),
        "top_p": field("top_p"),
        "truncation": "disabled",
        "metadata": request.field("metadata").cloned().unwrap_or_else(|| json!({})),
    });
    // The spec has `user` as a string: absent rather than null.
    if let Some(user) = request.field("user") {
        envelope["user"] = user.clone();
    }
    envelope
}

/// Sets the final `status` (and `incomplete_details`, `completed_at`) for a finish reason:
/// `length` is incomplete for `max_output_tokens`, `content_filter` for `content_filter`.
pub(crate) fn finish(response: &mut Value, reason: Option<&FinishReason>) {
    let incomplete = match reason {
        Some(FinishReason::Length) => Some("max_output_tokens"),
        Some(FinishReason::ContentFilter) => Some("content_filter"),
        _ => None,
    };
    match incomplete {
        Some(reason) => {
            response["status"] = json!("incomplete");
            response["incomplete_details"] = json!({"reason": reason});
        }
        None => {
            response["status"] = json!("completed");
            response["completed_at"] = json!(unix_now());
        }
    }
}

/// The status of the output items of a response that ended with `reason`.
pub(crate) fn item_status(reason: Option<&FinishReason>) -> &'static str {
    match reason {
        Some(FinishReason::Length | FinishReason::ContentFilter) => "incomplete",
        _ => "completed",
    }
}

/// An `output_text` content part.
pub(crate) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A `reasoning` output item whose summary is the reasoning text.
pub(crate) fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"id": id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]})
}

/// The Responses `usage` object for canonical usage, with opengateway's `cost`.
pub fn responses_usage(usage: &Usage) -> Value {
    let prompt = usage.prompt_tokens_details.as_ref();
    let mut out = json!({
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": prompt.and_then(|d| d.cached_tokens).unwrap_or(0),
            "cache_write_tokens": prompt.and_then(|d| d.cache_write_tokens).unwrap_or(0),
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {
            "reasoning_tokens": usage
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        },
        "total_tokens": usage.total_tokens,
    });
    if let Some(cost) = usage.cost {
        out["cost"] = json!(cost);
    }
    out
}

/// Canonical usage from a Responses `usage` object (what OpenAI's Responses API reports).
pub fn usage_from_responses(usage: &Value) -> Option<Usage> {
    let n = |pointer: &str| usage.pointer(pointer).and_then(Value::as_u64);
    let input = n("/input_tokens")?;
    let output = n("/output_tokens").unwrap_or(0);
    Some(Usage {
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: n("/total_tokens").unwrap_or(input + output),
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: n("/input_tokens_details/cached_tokens"),
            cache_write_tokens: n("/input_tokens_details/cache_write_tokens"),
            ..Default::default()
        }),
        completion_tokens_details: Some(CompletionTokensDetails {
            reasoning_tokens: n("/output_tokens_details/reasoning_tokens"),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Translates a chat completion into the Response object answering `request`. Choice 0 only
/// (the Responses API has no `n`). Output items in order: `reasoning` (from
/// `reasoning_content`, as its summary), `message` (text, or a refusal part), then one
/// `function_call` per tool call. Like the chat shape, it carries `provider` and `usage.cost`.
pub fn from_chat_response(completion: &ChatCompletion, request: &ResponsesRequest) -> Value {
    let model = if completion.model.is_empty() {
        request.model.as_str()
    } else {
        completion.model.as_str()
    };
    let mut response = envelope(request, &new_id("resp"), completion.created, model);
    let choice = completion.choices.first();
    let reason = choice.and_then(|c| c.finish_reason.as_ref());
    let status = item_status(reason);
    let mut output = Vec::new();
    if let Some(message) = choice.map(|c| &c.message) {
        if let Some(reasoning) = message
            .reasoning_content
            .as_deref()
            .filter(|r| !r.is_empty())
        {
            output.push(reasoning_item(&new_id("rs"), reasoning));
        }
        let refusal = message.refusal.as_ref().and_then(|r| r.as_deref());
        let content = match (message.content.as_deref(), refusal) {
            (_, Some(refusal)) if !refusal.is_empty() => {
                vec![json!({"type": "refusal", "refusal": refusal})]
            }
            (Some(text), _) if !text.is_empty() => vec![output_text(text)],
            _ => Vec::new(),
        };
        if !content.is_empty() {
            output.push(json!({
                "id": new_id("msg"), "type": "message", "role": "assistant",
                "status": status, "content": content,
            }));
        }
        for call in message.tool_calls.iter().flatten().flatten() {
            output.push(json!({
                "id": new_id("fc"), "type": "function_call", "status": status,
                "call_id": call.id, "name": call.function.name,
                "arguments": call.function.arguments,
            }));
        }
    }
    response["output"] = Value::Array(output);
    finish(&mut response, reason);
    if let Some(usage) = &completion.usage {
        response["usage"] = responses_usage(usage);
    }
    if let Some(provider) = &completion.provider {
        response["provider"] = json!(provider);
    }
    response
}
