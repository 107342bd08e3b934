//! `POST /v1/chat/completions`: the OpenAI Chat Completions face of the fake model.

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode},
    response::Response,
};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::{
    MockState,
    directives::{self, Knobs},
    engine::{
        self, Answer, Choice, MAX_FANOUT, Pacing, Prompt, Reply, Tool, Usage, UsagePins, knob_bool,
    },
    replay,
    wire::{self, Format, Piece, openai_error, sleep_ms, unix_now},
};

/// What every chunk or completion of one response shares.
struct Meta<'a> {
    id: String,
    created: u64,
    model: &'a str,
    n: usize,
}

/// Answers a Chat Completions request, whole or streamed, with the knobs applied.
pub(crate) async fn chat_completions(
    State(state): State<MockState>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(request)) => request,
        Ok(_) => return bad_request("The request body must be a JSON object.", None, None),
        Err(err) => {
            let message = format!("We could not parse the JSON body of your request: {err}");
            return bad_request(&message, None, None);
        }
    };
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return missing_param("model");
    };
    let (base, knobs) = match directives::knobs(
        model,
        &headers,
        request.get("mock").and_then(Value::as_object),
    ) {
        Ok(parsed) => parsed,
        Err(message) => return bad_request(&message, Some("model"), None),
    };
    let pacing = Pacing::of(&knobs, state.config());
    if let Some(response) = replay::serve(&state, Format::OpenAi, base, &pacing).await {
        return response;
    }
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return missing_param("messages");
    };

    sleep_ms(pacing.first_byte_delay_ms).await;
    if let Some(status) = engine::scripted_status(&state, &knobs) {
        return Format::OpenAi.failure(status, &knobs);
    }

    let prompt = prompt(&request, messages);
    let answer = engine::answer(&state, &prompt, &knobs, "call_mock_");
    let n = request
        .get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, MAX_FANOUT) as usize;
    let usage = usage(prompt.prompt_tokens, &answer, n, &knobs);
    let seq = state.next_completion();
    let meta = Meta {
        id: format!("chatcmpl-mock-{seq}"),
        created: unix_now(),
        model,
        n,
    };
    let mut response = if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = request
            .get("stream_options")
            .and_then(|options| options.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true);
        let events = stream_events(&meta, &answer, usage, include_usage, pacing.chunks, &knobs);
        wire::stream_response(events, pacing.chunk_delay_ms, "text/event-stream")
    } else {
        completion_response(&meta, &answer, usage, &knobs)
    };
    if let Ok(value) = HeaderValue::from_str(&format!("req_mock_{seq}")) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The request in the fake model's terms.
fn prompt<'a>(request: &'a Map<String, Value>, messages: &'a [Value]) -> Prompt<'a> {
    let last_user_text = messages
        .iter()
        .rev()
        .find(|message| role(message) == Some("user"))
        .map(|message| texts(message).join(" "))
        .unwrap_or_default();
    let tools = request
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tool| {
            Some(Tool {
                name: function_name(tool)?,
                schema: tool.pointer("/function/parameters"),
            })
        })
        .collect();
    let choice = match request.get("tool_choice") {
        Some(Value::String(choice)) if choice == "none" => Choice::None,
        Some(choice) => function_name(choice).map_or(Choice::Auto, Choice::Named),
        None => Choice::Auto,
    };
    Prompt {
        last_user_text,
        prompt_tokens: engine::prompt_tokens(messages.iter().flat_map(texts), messages.len()),
        awaits_answer: messages.last().and_then(role) == Some("user"),
        tools,
        choice,
        max_tokens: request
            .get("max_completion_tokens")
            .or_else(|| request.get("max_tokens"))
            .and_then(Value::as_u64)
            .map(|limit| limit as usize),
        thinking: false,
    }
}

/// The usage of `n` choices of `answer`, with the usage knobs applied and then the `usage` knob's
/// object merged over it.
fn usage(prompt: usize, answer: &Answer, n: usize, knobs: &Knobs) -> Value {
    let computed = Usage::computed(
        prompt,
        answer.reply_tokens() * n,
        answer.thinking_tokens() * n,
    );
    let mut usage = UsagePins::of(knobs).apply(computed).openai();
    if let Some(overrides) = knobs.get("usage") {
        if overrides.is_null() {
            return Value::Null;
        }
        merge(&mut usage, overrides);
        // Keep the total consistent with overridden parts unless the test pins it too.
        if overrides.get("total_tokens").is_none() {
            let part = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
            let total = part("prompt_tokens").saturating_add(part("completion_tokens"));
            usage["total_tokens"] = total.into();
        }
    }
    usage
}

fn merge(base: &mut Value, overrides: &Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(overrides)) => {
            for (key, value) in overrides {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, value) => *base = value.clone(),
    }
}

fn message_json(answer: &Answer) -> (Value, &'static str) {
    let (mut message, finish_reason) = match &answer.reply {
        Reply::Text { content, truncated } => (
            json!({"role": "assistant", "content": content, "refusal": null, "annotations": []}),
            if *truncated { "length" } else { "stop" },
        ),
        Reply::Tools(calls) => {
            let calls: Vec<Value> = calls
                .iter()
                .map(|call| {
                    json!({"id": call.id, "type": "function",
                           "function": {"name": call.name, "arguments": call.arguments}})
                })
                .collect();
            let message = json!({"role": "assistant", "content": null, "tool_calls": calls,
                                 "refusal": null, "annotations": []});
            (message, "tool_calls")
        }
    };
    if let Some(thinking) = &answer.thinking {
        message["reasoning_content"] = json!(thinking);
    }
    (message, finish_reason)
}

fn finish_reason(answer: &Answer) -> &'static str {
    match &answer.reply {
        Reply::Text {
            truncated: true, ..
        } => "length",
        Reply::Text { .. } => "stop",
        Reply::Tools(_) => "tool_calls",
    }
}

fn completion_response(meta: &Meta<'_>, answer: &Answer, usage: Value, knobs: &Knobs) -> Response {
    let (message, finish_reason) = message_json(answer);
    let choices: Vec<Value> = (0..meta.n)
        .map(|index| json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish_reason}))
        .collect();
    let body = json!({
        "id": meta.id, "object": "chat.completion", "created": meta.created, "model": meta.model,
        "choices": choices, "usage": usage, "service_tier": "default", "system_fingerprint": "fp_mock"
    });
    wire::answer_body(body.to_string(), "application/json", knobs)
}

/// The `stream_error` knob's error object: `true` picks a default, an object is sent as given.
fn stream_error(knobs: &Knobs) -> Option<Value> {
    match knobs.get("stream_error") {
        None | Some(Value::Null | Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(
            openai_error(
                "The server is overloaded, please try again later.",
                "server_error",
                None,
                None,
            )["error"]
                .clone(),
        ),
        Some(error) => Some(error.clone()),
    }
}

/// The SSE body of a streamed answer, with the stream knobs applied.
fn stream_events(
    meta: &Meta<'_>,
    answer: &Answer,
    usage: Value,
    include_usage: bool,
    chunks: Option<usize>,
    knobs: &Knobs,
) -> Vec<Piece> {
    let frame = |choices: Value| {
        let mut chunk = json!({
            "id": meta.id, "object": "chat.completion.chunk", "created": meta.created, "model": meta.model,
            "service_tier": "default", "system_fingerprint": "fp_mock", "choices": choices
        });
        // OpenAI sends an explicit null usage on every chunk once usage was asked for.
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    };
    let chunk = |index: usize, delta: Value, finish_reason: Option<&str>| {
        frame(json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish_reason}])).to_string()
    };
    let mut events = Vec::new();
    let mut body = Vec::new();
    let is_text = matches!(answer.reply, Reply::Text { .. });
    if is_text {
        for index in 0..meta.n {
            events.push(chunk(
                index,
                json!({"role": "assistant", "content": "", "refusal": null}),
                None,
            ));
        }
    }
    if let Some(thinking) = &answer.thinking {
        for (at, part) in engine::word_pieces(thinking).into_iter().enumerate() {
            for index in 0..meta.n {
                let mut delta = json!({"reasoning_content": part});
                if at == 0 && !is_text {
                    delta["role"] = json!("assistant");
                }
                body.push(chunk(index, delta, None));
            }
        }
    }
    let reasoning_chunks = body.len();
    match &answer.reply {
        Reply::Text { content, .. } => {
            for part in engine::text_pieces(content, chunks) {
                for index in 0..meta.n {
                    body.push(chunk(index, json!({"content": part}), None));
                }
            }
        }
        Reply::Tools(calls) => {
            for index in 0..meta.n {
                for (slot, call) in calls.iter().enumerate() {
                    let opening = json!([{"index": slot, "id": call.id, "type": "function",
                                          "function": {"name": call.name, "arguments": ""}}]);
                    let delta = if slot == 0 {
                        json!({"role": "assistant", "content": null, "tool_calls": opening, "refusal": null})
                    } else {
                        json!({"tool_calls": opening})
                    };
                    body.push(chunk(index, delta, None));
                    for part in engine::argument_pieces(&call.arguments) {
                        let delta = json!({"tool_calls": [{"index": slot, "function": {"arguments": part}}]});
                        body.push(chunk(index, delta, None));
                    }
                }
            }
        }
    }
    if let Some(error) = stream_error(knobs) {
        // Cut after the first chunk of the reply proper (past any reasoning).
        events.extend(body.into_iter().take(reasoning_chunks + 1));
        events.push(json!({"error": error}).to_string());
    } else if knob_bool(knobs, "truncate") {
        let keep = body.len().div_ceil(2);
        events.extend(body.into_iter().take(keep));
    } else {
        events.extend(body);
        for index in 0..meta.n {
            events.push(chunk(index, json!({}), Some(finish_reason(answer))));
        }
        if include_usage {
            let mut last = frame(json!([]));
            last["usage"] = usage;
            events.push(last.to_string());
        }
        events.push("[DONE]".to_owned());
    }
    if knob_bool(knobs, "malformed") {
        let at = (events.len() / 2).clamp(1, events.len());
        events.insert(at, "{not json".to_owned());
    }
    let mut pieces: Vec<Piece> = events
        .into_iter()
        .map(|event| Piece::text(format!("data: {event}\n\n")))
        .collect();
    wire::apply_drop_after(&mut pieces, knobs);
    pieces
}

fn function_name(tool: &Value) -> Option<&str> {
    tool.pointer("/function/name").and_then(Value::as_str)
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

/// The text of a message: its string content, or the `text` of each content part.
fn texts(message: &Value) -> Vec<&str> {
    match message.get("content") {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

fn bad_request(message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    let body = openai_error(message, "invalid_request_error", param, code);
    Format::OpenAi.json(StatusCode::BAD_REQUEST, &body)
}

fn missing_param(param: &str) -> Response {
    let message = format!("Missing required parameter: '{param}'.");
    bad_request(&message, Some(param), Some("missing_required_parameter"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Reply;

    #[test]
    fn usage_overrides_merge_and_keep_total_consistent() {
        let answer = Answer {
            thinking: None,
            reply: Reply::Text {
                content: "a b c".into(),
                truncated: false,
            },
        };
        let plain = usage(5, &answer, 1, &Knobs::new());
        assert_eq!(plain["prompt_tokens"], 5);
        assert_eq!(plain["completion_tokens"], 3);
        assert_eq!(plain["total_tokens"], 8);
        let knobs =
            json!({"usage": {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 4}}});
        let merged = usage(5, &answer, 1, knobs.as_object().unwrap());
        assert_eq!(merged["total_tokens"], 13);
        assert_eq!(
            merged["prompt_tokens_details"],
            json!({"cached_tokens": 4, "audio_tokens": 0})
        );
    }

    #[test]
    fn usage_pins_are_totals_over_all_choices() {
        let answer = Answer {
            thinking: Some("hmm".into()),
            reply: Reply::Text {
                content: "a b".into(),
                truncated: false,
            },
        };
        let knobs = json!({"completion_tokens": 50, "reasoning_tokens": 30, "cached_tokens": 2});
        let pinned = usage(5, &answer, 3, knobs.as_object().unwrap());
        assert_eq!(pinned["prompt_tokens"], 5);
        assert_eq!(pinned["prompt_tokens_details"]["cached_tokens"], 2);
        assert_eq!(pinned["completion_tokens"], 80);
        assert_eq!(pinned["completion_tokens_details"]["reasoning_tokens"], 30);
        assert_eq!(pinned["total_tokens"], 85);
    }

    #[test]
    fn thinking_counts_as_reasoning_tokens() {
        let answer = Answer {
            thinking: Some("hmm let me see".into()),
            reply: Reply::Text {
                content: "a b".into(),
                truncated: false,
            },
        };
        let counted = usage(1, &answer, 2, &Knobs::new());
        assert_eq!(counted["completion_tokens"], 12);
        assert_eq!(counted["completion_tokens_details"]["reasoning_tokens"], 8);
    }
}
