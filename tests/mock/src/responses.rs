//! `POST /v1/responses`: the OpenAI Responses API face of the fake model, driven by the same
//! engine and knobs as the chat endpoint (content, tool calls, thinking, usage pins, scripted
//! failures, `stream_error`, `truncate`, `malformed`, `drop_after`).

use axum::{extract::State, http::HeaderValue, response::Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::{
    MockState,
    directives::{self, Knobs},
    engine::{self, Answer, Choice, Pacing, Prompt, Reply, Tool, Usage, UsagePins, knob_bool},
    replay,
    wire::{self, Format, Piece, openai_error, sleep_ms, unix_now},
};

/// Answers a Responses request, whole or streamed, with the knobs applied.
pub(crate) async fn responses(
    State(state): State<MockState>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    let format = Format::OpenAi;
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(request)) => request,
        Ok(_) => return format.bad_request("The request body must be a JSON object."),
        Err(err) => {
            let message = format!("We could not parse the JSON body of your request: {err}");
            return format.bad_request(&message);
        }
    };
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return format.bad_request("Missing required parameter: 'model'.");
    };
    let (base, knobs) = match directives::knobs(
        model,
        &headers,
        request.get("mock").and_then(Value::as_object),
    ) {
        Ok(parsed) => parsed,
        Err(message) => return format.bad_request(&message),
    };
    let pacing = Pacing::of(&knobs, state.config());
    if let Some(response) = replay::serve(&state, format, base, &pacing).await {
        return response;
    }
    let items = match request.get("input") {
        Some(Value::String(text)) => vec![json!({"role": "user", "content": text})],
        Some(Value::Array(items)) => items.clone(),
        _ => return format.bad_request("Missing required parameter: 'input'."),
    };

    sleep_ms(pacing.first_byte_delay_ms).await;
    if let Some(status) = engine::scripted_status(&state, &knobs) {
        return format.failure(status, &knobs);
    }

    let prompt = prompt(&request, &items);
    let answer = engine::answer(&state, &prompt, &knobs, "call_mock_");
    let seq = state.next_completion();
    let usage = UsagePins::of(&knobs).apply(Usage::computed(
        prompt.prompt_tokens,
        answer.reply_tokens(),
        answer.thinking_tokens(),
    ));
    let meta = Meta {
        id: format!("resp_mock_{seq}"),
        seq,
        created: unix_now(),
        model,
        request: &request,
    };
    let mut response = if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let pieces = stream_events(&meta, &answer, &usage, pacing.chunks, &knobs);
        wire::stream_response(
            pieces,
            pacing.chunk_delay_ms,
            "text/event-stream; charset=utf-8",
        )
    } else {
        let body = meta.response(output_items(&meta, &answer, "completed"), &answer, &usage);
        wire::answer_body(body.to_string(), "application/json", &knobs)
    };
    if let Ok(value) = HeaderValue::from_str(&format!("req_mock_{seq}")) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The request in the fake model's terms.
fn prompt<'a>(request: &'a Map<String, Value>, items: &'a [Value]) -> Prompt<'a> {
    let last_user_text = items
        .iter()
        .rev()
        .filter(|item| role(item) == Some("user"))
        .map(|item| texts(item.get("content")))
        .find(|texts| !texts.is_empty())
        .map(|texts| texts.join(" "))
        .unwrap_or_default();
    let instructions = request.get("instructions").and_then(Value::as_str);
    let all_texts = instructions
        .into_iter()
        .chain(items.iter().flat_map(|item| {
            let mut texts = texts(item.get("content"));
            texts.extend(item.get("output").and_then(Value::as_str));
            texts.extend(item.get("arguments").and_then(Value::as_str));
            texts
        }));
    let tools = request
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|tool| tool.get("type").and_then(Value::as_str) == Some("function"))
        .filter_map(|tool| {
            Some(Tool {
                name: tool.get("name")?.as_str()?,
                schema: tool.get("parameters"),
            })
        })
        .collect();
    let choice = match request.get("tool_choice") {
        Some(Value::String(choice)) if choice == "none" => Choice::None,
        Some(choice) => choice
            .get("name")
            .and_then(Value::as_str)
            .map_or(Choice::Auto, Choice::Named),
        None => Choice::Auto,
    };
    let thinking = request
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .and_then(Value::as_str)
        .is_some_and(|effort| effort != "none");
    Prompt {
        last_user_text,
        prompt_tokens: engine::prompt_tokens(all_texts, items.len()),
        awaits_answer: items.last().is_some_and(|item| {
            role(item) == Some("user") && matches!(item_type(item), "" | "message")
        }),
        tools,
        choice,
        max_tokens: request
            .get("max_output_tokens")
            .and_then(Value::as_u64)
            .map(|limit| limit as usize),
        thinking,
    }
}

fn item_type(item: &Value) -> &str {
    item.get("type").and_then(Value::as_str).unwrap_or("")
}

fn role(item: &Value) -> Option<&str> {
    item.get("role").and_then(Value::as_str)
}

/// The text of a message content: a string, or its text parts.
fn texts(content: Option<&Value>) -> Vec<&str> {
    match content {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|part| {
                matches!(
                    part.get("type").and_then(Value::as_str),
                    Some("input_text" | "output_text")
                )
            })
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

/// What the Response object and its events share.
struct Meta<'a> {
    id: String,
    seq: u64,
    created: u64,
    model: &'a str,
    request: &'a Map<String, Value>,
}

impl Meta<'_> {
    fn item_id(&self, prefix: &str, index: usize) -> String {
        format!("{prefix}_mock_{}_{index}", self.seq)
    }

    /// The Response object with `output` and, unless in progress, its status and usage.
    fn response(&self, output: Vec<Value>, answer: &Answer, usage: &Usage) -> Value {
        let mut body = self.envelope();
        let truncated = matches!(
            answer.reply,
            Reply::Text {
                truncated: true,
                ..
            }
        );
        if truncated {
            body["status"] = json!("incomplete");
            body["incomplete_details"] = json!({"reason": "max_output_tokens"});
        } else {
            body["status"] = json!("completed");
            body["completed_at"] = json!(unix_now());
        }
        body["output"] = Value::Array(output);
        body["usage"] = responses_usage(usage);
        body
    }

    fn envelope(&self) -> Value {
        let field = |name: &str| self.request.get(name).cloned().unwrap_or(Value::Null);
        let or = |name: &str, default: Value| self.request.get(name).cloned().unwrap_or(default);
        let mut body = json!({
            "id": self.id, "object": "response", "created_at": self.created,
            "status": "in_progress", "background": false, "completed_at": null, "error": null,
            "incomplete_details": null, "instructions": field("instructions"),
            "max_output_tokens": field("max_output_tokens"), "max_tool_calls": null,
            "model": self.model, "output": [],
            "parallel_tool_calls": or("parallel_tool_calls", json!(true)),
            "previous_response_id": null,
            "reasoning": {"effort": self.request.get("reasoning").and_then(|r| r.get("effort")).cloned().unwrap_or(Value::Null), "summary": null},
            "service_tier": "default", "store": or("store", json!(true)),
            "temperature": or("temperature", json!(1.0)),
            "text": or("text", json!({"format": {"type": "text"}})),
            "tool_choice": or("tool_choice", json!("auto")), "tools": or("tools", json!([])),
            "top_p": or("top_p", json!(1.0)), "truncation": "disabled",
            "metadata": or("metadata", json!({})),
        });
        // The spec has `user` as a string: absent rather than null.
        if let Some(user) = self.request.get("user") {
            body["user"] = user.clone();
        }
        body
    }
}

/// The Responses `usage` object.
fn responses_usage(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.prompt,
        "input_tokens_details": {"cached_tokens": usage.cached, "cache_write_tokens": usage.cache_write},
        "output_tokens": usage.output(),
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": usage.total(),
    })
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The finished output items: reasoning (its summary), then the message or the calls.
fn output_items(meta: &Meta<'_>, answer: &Answer, status: &str) -> Vec<Value> {
    let mut items = Vec::new();
    if let Some(thinking) = &answer.thinking {
        items.push(
            json!({"id": meta.item_id("rs", items.len()), "type": "reasoning",
                          "summary": [{"type": "summary_text", "text": thinking}]}),
        );
    }
    let status = match answer.reply {
        Reply::Text {
            truncated: true, ..
        } => "incomplete",
        _ => status,
    };
    match &answer.reply {
        Reply::Text { content, .. } => items.push(json!({
            "id": meta.item_id("msg", items.len()), "type": "message", "status": status,
            "role": "assistant", "content": [output_text(content)],
        })),
        Reply::Tools(calls) => {
            for call in calls {
                items.push(json!({
                    "id": meta.item_id("fc", items.len()), "type": "function_call",
                    "status": status, "call_id": call.id, "name": call.name,
                    "arguments": call.arguments,
                }));
            }
        }
    }
    items
}

/// The events of a streamed answer (without sequence numbers), each item's added, delta and
/// done events in OpenAI's order.
fn item_events(meta: &Meta<'_>, answer: &Answer, chunks: Option<usize>) -> Vec<Value> {
    let done = output_items(meta, answer, "completed");
    let mut events = Vec::new();
    for (index, item) in done.iter().enumerate() {
        let id = item["id"].clone();
        let mut added = item.clone();
        match item_type(item) {
            "reasoning" => {
                added["summary"] = json!([]);
                events.push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
                let text = answer.thinking.as_deref().unwrap_or("");
                events.push(json!({"type": "response.reasoning_summary_part.added", "item_id": id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}));
                for piece in engine::word_pieces(text) {
                    events.push(json!({"type": "response.reasoning_summary_text.delta", "item_id": id, "output_index": index, "summary_index": 0, "delta": piece}));
                }
                events.push(json!({"type": "response.reasoning_summary_text.done", "item_id": id, "output_index": index, "summary_index": 0, "text": text}));
                events.push(json!({"type": "response.reasoning_summary_part.done", "item_id": id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": text}}));
            }
            "message" => {
                added["status"] = json!("in_progress");
                added["content"] = json!([]);
                events.push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
                let text = item
                    .pointer("/content/0/text")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                events.push(json!({"type": "response.content_part.added", "item_id": id, "output_index": index, "content_index": 0, "part": output_text("")}));
                for piece in engine::text_pieces(text, chunks) {
                    events.push(json!({"type": "response.output_text.delta", "item_id": id, "output_index": index, "content_index": 0, "delta": piece, "logprobs": []}));
                }
                events.push(json!({"type": "response.output_text.done", "item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}));
                events.push(json!({"type": "response.content_part.done", "item_id": id, "output_index": index, "content_index": 0, "part": output_text(text)}));
            }
            _ => {
                added["status"] = json!("in_progress");
                added["arguments"] = json!("");
                events.push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
                let arguments = item["arguments"].as_str().unwrap_or("");
                for piece in engine::argument_pieces(arguments) {
                    events.push(json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": index, "delta": piece}));
                }
                events.push(json!({"type": "response.function_call_arguments.done", "item_id": id, "output_index": index, "name": item["name"], "arguments": arguments}));
            }
        }
        events.push(
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        );
    }
    events
}

/// The SSE body of a streamed answer, with the stream knobs applied.
fn stream_events(
    meta: &Meta<'_>,
    answer: &Answer,
    usage: &Usage,
    chunks: Option<usize>,
    knobs: &Knobs,
) -> Vec<Piece> {
    let opening = meta.envelope();
    let mut events = vec![
        json!({"type": "response.created", "response": opening}),
        json!({"type": "response.in_progress", "response": opening}),
    ];
    let body = item_events(meta, answer, chunks);
    if knob_bool(knobs, "stream_error") {
        // Cut after the first delta, then OpenAI's `error` and `response.failed`.
        let cut = body
            .iter()
            .position(|e| e["type"].as_str().is_some_and(|t| t.ends_with(".delta")))
            .map_or(body.len(), |at| at + 1);
        events.extend(body.into_iter().take(cut));
        let error = openai_error(
            "The server is overloaded, please try again later.",
            "server_error",
            None,
            None,
        )["error"]
            .clone();
        // OpenAI nests the error object; the spec has its fields flat: both, so either reads it.
        events.push(
            json!({"type": "error", "code": error["code"], "message": error["message"],
                           "param": error["param"], "error": error}),
        );
        let mut failed = meta.envelope();
        failed["status"] = json!("failed");
        failed["error"] = json!({"code": "server_error", "message": error["message"]});
        events.push(json!({"type": "response.failed", "response": failed}));
    } else if knob_bool(knobs, "truncate") {
        let keep = body.len().div_ceil(2);
        events.extend(body.into_iter().take(keep));
    } else {
        events.extend(body);
        let done = meta.response(output_items(meta, answer, "completed"), answer, usage);
        let kind = if done["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        events.push(json!({"type": kind, "response": done}));
    }
    let mut lines: Vec<(String, String)> = events
        .into_iter()
        .enumerate()
        .map(|(n, mut event)| {
            event["sequence_number"] = json!(n);
            let name = event["type"].as_str().unwrap_or("message").to_owned();
            (name, event.to_string())
        })
        .collect();
    if knob_bool(knobs, "malformed") {
        let at = (lines.len() / 2).clamp(1, lines.len());
        lines.insert(
            at,
            (
                "response.output_text.delta".to_owned(),
                "{not json".to_owned(),
            ),
        );
    }
    let mut pieces: Vec<Piece> = lines
        .into_iter()
        .map(|(name, data)| Piece::text(format!("event: {name}\ndata: {data}\n\n")))
        .collect();
    wire::apply_drop_after(&mut pieces, knobs);
    pieces
}
