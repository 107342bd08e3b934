//! `POST /v1/messages`: the Anthropic Messages face of the fake model.

use axum::{extract::State, response::Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::{
    MockState,
    directives::{self, Knobs},
    engine::{self, Answer, Choice, Pacing, Prompt, Reply, Tool, Usage, UsagePins, knob_bool},
    replay,
    wire::{self, Format, Piece, anthropic_error, set_header, sleep_ms},
};

/// The `signature` of every thinking block (base64 of "mock-signature").
const SIGNATURE: &str = "bW9jay1zaWduYXR1cmU=";
/// Content type of Anthropic streams.
const SSE: &str = "text/event-stream; charset=utf-8";

/// One SSE event: its `event:` name and `data:` JSON text.
struct Event {
    name: &'static str,
    data: String,
}

impl Event {
    fn new(name: &'static str, data: &Value) -> Event {
        Event {
            name,
            data: data.to_string(),
        }
    }
}

/// Answers a Messages request, whole or streamed, with the model-id directives applied.
pub(crate) async fn messages(
    State(state): State<MockState>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    let format = Format::Anthropic;
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(request)) => request,
        Ok(_) => return format.bad_request("The request body must be a JSON object."),
        Err(err) => {
            return format.bad_request(&format!("The request body is not valid JSON: {err}"));
        }
    };
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return format.bad_request("model: Field required");
    };
    let (base, knobs) = match directives::knobs(model, &headers, None) {
        Ok(parsed) => parsed,
        Err(message) => return format.bad_request(&message),
    };
    let pacing = Pacing::of(&knobs, state.config());
    if let Some(response) = replay::serve(&state, format, base, &pacing).await {
        return response;
    }
    let Some(max_tokens) = request.get("max_tokens").and_then(Value::as_u64) else {
        return format.bad_request("max_tokens: Field required");
    };
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return format.bad_request("messages: Field required");
    };

    sleep_ms(pacing.first_byte_delay_ms).await;
    if let Some(status) = engine::scripted_status(&state, &knobs) {
        return format.failure(status, &knobs);
    }

    let prompt = prompt(&request, messages, max_tokens);
    let answer = engine::answer(&state, &prompt, &knobs, "toolu_mock_");
    let seq = state.next_completion();
    let computed = Usage::computed(
        prompt.prompt_tokens,
        answer.reply_tokens(),
        answer.thinking_tokens(),
    );
    let message = Message {
        id: format!("msg_mock_{seq}"),
        model,
        usage: UsagePins::of(&knobs).apply(computed),
        answer: &answer,
    };
    let mut response = if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let pieces = stream_events(&message, pacing.chunks, &knobs);
        wire::stream_response(pieces, pacing.chunk_delay_ms, SSE)
    } else {
        wire::answer_body(message.json().to_string(), "application/json", &knobs)
    };
    set_header(&mut response, "request-id", &format!("req_mock_{seq}"));
    response
}

/// The request in the fake model's terms.
fn prompt<'a>(
    request: &'a Map<String, Value>,
    messages: &'a [Value],
    max_tokens: u64,
) -> Prompt<'a> {
    let system = request.get("system").map(blocks_text).unwrap_or_default();
    let last_user_text = messages
        .iter()
        .rev()
        .filter(|message| role(message) == Some("user"))
        .map(|message| text_of(message.get("content")))
        .find(|texts| !texts.is_empty())
        .map(|texts| texts.join(" "))
        .unwrap_or_default();
    let all_texts = system.iter().copied().chain(
        messages
            .iter()
            .flat_map(|message| all_text(message.get("content"))),
    );
    let awaits_answer = messages.last().is_some_and(|message| {
        role(message) == Some("user") && !has_tool_result(message.get("content"))
    });
    // Server tools (web search, code execution, ...) carry a `type` and no schema: not ours to call.
    let tools = request
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|tool| {
            matches!(
                tool.get("type").and_then(Value::as_str),
                None | Some("custom")
            )
        })
        .filter_map(|tool| {
            Some(Tool {
                name: tool.get("name")?.as_str()?,
                schema: tool.get("input_schema"),
            })
        })
        .collect();
    let choice = match request.get("tool_choice") {
        Some(choice) => match choice.get("type").and_then(Value::as_str) {
            Some("none") => Choice::None,
            Some("tool") => choice
                .get("name")
                .and_then(Value::as_str)
                .map_or(Choice::Auto, Choice::Named),
            _ => Choice::Auto,
        },
        None => Choice::Auto,
    };
    let thinking = matches!(
        request
            .get("thinking")
            .and_then(|thinking| thinking.get("type"))
            .and_then(Value::as_str),
        Some("enabled" | "adaptive")
    );
    Prompt {
        last_user_text,
        prompt_tokens: engine::prompt_tokens(all_texts, messages.len()),
        awaits_answer,
        tools,
        choice,
        max_tokens: Some(max_tokens as usize),
        thinking,
    }
}

/// The text of a `system` value or a message `content`: a string, or its text blocks.
fn blocks_text(content: &Value) -> Vec<&str> {
    text_of(Some(content))
}

fn text_of(content: Option<&Value>) -> Vec<&str> {
    match content {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

/// All prompt text of a content: text blocks and the text inside tool results.
fn all_text(content: Option<&Value>) -> Vec<&str> {
    let mut texts = text_of(content);
    if let Some(Value::Array(blocks)) = content {
        for block in blocks {
            if block.get("type").and_then(Value::as_str) == Some("tool_result") {
                texts.extend(text_of(block.get("content")));
            }
        }
    }
    texts
}

fn has_tool_result(content: Option<&Value>) -> bool {
    let Some(Value::Array(blocks)) = content else {
        return false;
    };
    blocks
        .iter()
        .any(|block| block.get("type").and_then(Value::as_str) == Some("tool_result"))
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

/// One answer, ready to be rendered whole or as a stream.
struct Message<'a> {
    id: String,
    model: &'a str,
    /// The reported usage, usage knobs applied.
    usage: Usage,
    answer: &'a Answer,
}

impl Message<'_> {
    fn stop_reason(&self) -> &'static str {
        match &self.answer.reply {
            Reply::Text {
                truncated: true, ..
            } => "max_tokens",
            Reply::Text { .. } => "end_turn",
            Reply::Tools(_) => "tool_use",
        }
    }

    /// The message object; `content` and `usage` filled in unless `opening` (`message_start`).
    fn envelope(&self, content: Vec<Value>, output_tokens: u64, opening: bool) -> Value {
        json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": content,
            "stop_reason": if opening { Value::Null } else { json!(self.stop_reason()) },
            "stop_sequence": null,
            "usage": self.usage.anthropic(output_tokens)
        })
    }

    fn json(&self) -> Value {
        let mut content = Vec::new();
        if let Some(thinking) = &self.answer.thinking {
            content.push(json!({"type": "thinking", "thinking": thinking, "signature": SIGNATURE}));
        }
        match &self.answer.reply {
            Reply::Text { content: text, .. } => {
                content.push(json!({"type": "text", "text": text}));
            }
            Reply::Tools(calls) => content.extend(calls.iter().map(|call| {
                json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments_json()})
            })),
        }
        self.envelope(content, self.usage.output(), false)
    }
}

/// The content blocks of a stream: each one's start, deltas and stop events.
fn block_events(message: &Message<'_>, chunks: Option<usize>) -> Vec<Event> {
    let mut blocks: Vec<(Value, Vec<Value>)> = Vec::new();
    let answer = message.answer;
    if let Some(thinking) = &answer.thinking {
        let mut deltas: Vec<Value> = engine::word_pieces(thinking)
            .into_iter()
            .map(|piece| json!({"type": "thinking_delta", "thinking": piece}))
            .collect();
        deltas.push(json!({"type": "signature_delta", "signature": SIGNATURE}));
        blocks.push((
            json!({"type": "thinking", "thinking": "", "signature": ""}),
            deltas,
        ));
    }
    match &answer.reply {
        Reply::Text { content, .. } => {
            let deltas = engine::text_pieces(content, chunks)
                .into_iter()
                .map(|piece| json!({"type": "text_delta", "text": piece}))
                .collect();
            blocks.push((json!({"type": "text", "text": ""}), deltas));
        }
        Reply::Tools(calls) => {
            for call in calls {
                // Anthropic opens every input with an empty fragment.
                let deltas = std::iter::once("")
                    .chain(engine::argument_pieces(&call.arguments))
                    .map(|piece| json!({"type": "input_json_delta", "partial_json": piece}))
                    .collect();
                let start =
                    json!({"type": "tool_use", "id": call.id, "name": call.name, "input": {}});
                blocks.push((start, deltas));
            }
        }
    }
    let mut events = Vec::new();
    for (index, (block, deltas)) in blocks.into_iter().enumerate() {
        events.push(Event::new(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        if index == 0 {
            events.push(Event::new("ping", &json!({"type": "ping"})));
        }
        for delta in deltas {
            events.push(Event::new(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        events.push(Event::new(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events
}

/// The SSE body of a streamed answer, with the stream knobs applied.
fn stream_events(message: &Message<'_>, chunks: Option<usize>, knobs: &Knobs) -> Vec<Piece> {
    let start = message.envelope(Vec::new(), 1, true);
    let mut events = vec![Event::new(
        "message_start",
        &json!({"type": "message_start", "message": start}),
    )];
    let body = block_events(message, chunks);
    if knob_bool(knobs, "stream_error") {
        // Cut after the first text delta (or the first delta of any kind), like an overloaded
        // Anthropic stream: an `error` event, then the connection closes.
        let is_delta = |event: &Event| event.name == "content_block_delta";
        let cut = body
            .iter()
            .position(|event| is_delta(event) && event.data.contains(r#""type":"text_delta""#))
            .or_else(|| body.iter().position(is_delta))
            .map_or(body.len(), |at| at + 1);
        events.extend(body.into_iter().take(cut));
        let error = anthropic_error("overloaded_error", "Overloaded");
        events.push(Event::new("error", &error));
    } else if knob_bool(knobs, "truncate") {
        let keep = body.len().div_ceil(2);
        events.extend(body.into_iter().take(keep));
    } else {
        events.extend(body);
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": message.stop_reason(), "stop_sequence": null},
            "usage": {"output_tokens": message.usage.output()}
        });
        events.push(Event::new("message_delta", &delta));
        events.push(Event::new("message_stop", &json!({"type": "message_stop"})));
    }
    if knob_bool(knobs, "malformed") {
        let at = (events.len() / 2).clamp(1, events.len());
        events.insert(
            at,
            Event {
                name: "content_block_delta",
                data: "{not json".to_owned(),
            },
        );
    }
    let mut pieces: Vec<Piece> = events
        .into_iter()
        .map(|event| Piece::text(format!("event: {}\ndata: {}\n\n", event.name, event.data)))
        .collect();
    wire::apply_drop_after(&mut pieces, knobs);
    pieces
}
