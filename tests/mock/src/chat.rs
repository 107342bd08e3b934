//! `POST /v1/chat/completions`: a deterministic fake model plus the failure modes tests ask for.

use std::{
    io,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::stream;
use serde_json::{Map, Value, json};

use crate::{MockConfig, MockState, error_body, error_response, invalid_request};

/// How much of the last user message the default reply echoes, in chars.
const ECHO_LIMIT: usize = 200;
/// Upper bound on `n` and `parallel`, so a typo cannot make the mock build a huge answer.
const MAX_FANOUT: u64 = 128;
/// Pause before an abort, so the bytes already produced reach the socket instead of being
/// discarded together with hyper's unflushed write buffer.
const ABORT_GRACE: Duration = Duration::from_millis(20);

type Knobs = Map<String, Value>;

/// What the fake model says, before it is shaped into a response or a stream.
enum Answer {
    Text {
        content: String,
        finish_reason: &'static str,
    },
    Tools(Vec<ToolCall>),
}

struct ToolCall {
    id: String,
    name: String,
    arguments: String,
}

/// One write of a response body; `Abort` breaks the connection instead of ending the body.
enum Piece {
    Bytes(Bytes),
    Abort,
}

/// What every chunk or completion of one response shares.
struct Meta<'a> {
    id: String,
    created: u64,
    model: &'a str,
    n: usize,
}

pub(crate) async fn chat_completions(State(state): State<MockState>, body: Bytes) -> Response {
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
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return missing_param("messages");
    };
    let no_knobs = Knobs::new();
    let mock = request
        .get("mock")
        .and_then(Value::as_object)
        .unwrap_or(&no_knobs);
    let config = state.config();

    let first_byte_delay =
        knob_u64(mock, "first_byte_delay_ms").unwrap_or(config.first_byte_delay_ms);
    sleep_ms(first_byte_delay).await;
    if let Some(response) = scripted_failure(&state, mock) {
        return response;
    }

    let answer = match tool_calls(&state, &request, messages, mock) {
        Some(calls) => Answer::Tools(calls),
        None => text_answer(&request, messages, mock, config),
    };
    let n = request
        .get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, MAX_FANOUT) as usize;
    let usage = usage(messages, &answer, n, mock.get("usage"));
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
        let chunks = knob_u64(mock, "chunks")
            .map(|chunks| chunks as usize)
            .or(config.chunks);
        let delay = knob_u64(mock, "chunk_delay_ms").unwrap_or(config.chunk_delay_ms);
        let events = stream_events(&meta, &answer, usage, include_usage, chunks, mock);
        let mut response = Response::new(body_of(events, Duration::from_millis(delay)));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    } else {
        completion_response(&meta, &answer, usage, mock)
    };
    if let Ok(value) = HeaderValue::from_str(&format!("req_mock_{seq}")) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The `status` and `fail_first` knobs: an error response instead of an answer.
fn scripted_failure(state: &MockState, mock: &Knobs) -> Option<Response> {
    let status = knob_u64(mock, "status");
    if let Some(failures) = knob_u64(mock, "fail_first") {
        let key = mock.get("key").and_then(Value::as_str).unwrap_or_default();
        return (state.count_attempt(key) <= failures)
            .then(|| mock_error(mock, status.unwrap_or(503)));
    }
    status.map(|status| mock_error(mock, status))
}

fn mock_error(mock: &Knobs, status: u64) -> Response {
    let Some(status) = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
    else {
        return bad_request(
            "mock.status is not an HTTP status code",
            Some("mock.status"),
            None,
        );
    };
    let mut response = match mock.get("body") {
        // A string body goes out verbatim, to mimic proxies that answer with HTML or plain text.
        Some(Value::String(raw)) => (status, raw.clone()).into_response(),
        Some(body) => error_response(status, body.clone()),
        None => error_response(status, default_error(status)),
    };
    for (knob, name) in [
        ("retry_after", "retry-after"),
        ("retry_after_ms", "retry-after-ms"),
    ] {
        let value = match mock.get(knob) {
            Some(Value::String(text)) => text.clone(),
            Some(value @ Value::Number(_)) => value.to_string(),
            _ => continue,
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The error OpenAI would send for `status`, so clients classify it the same way.
fn default_error(status: StatusCode) -> Value {
    let (kind, code) = match status.as_u16() {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        404 => ("invalid_request_error", Some("model_not_found")),
        429 => ("requests", Some("rate_limit_exceeded")),
        500.. => ("server_error", None),
        _ => ("invalid_request_error", None),
    };
    let message = format!("mock error {}", status.as_u16());
    error_body(&message, kind, None, code)
}

fn text_answer(request: &Knobs, messages: &[Value], mock: &Knobs, config: &MockConfig) -> Answer {
    let content = mock
        .get("content")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| config.content.clone())
        .unwrap_or_else(|| default_reply(messages));
    let limit = request
        .get("max_completion_tokens")
        .or_else(|| request.get("max_tokens"))
        .and_then(Value::as_u64)
        .map(|limit| limit as usize);
    let words = word_pieces(&content);
    match limit {
        Some(limit) if words.len() > limit => Answer::Text {
            content: words[..limit].concat().trim_end().to_owned(),
            finish_reason: "length",
        },
        _ => Answer::Text {
            content,
            finish_reason: "stop",
        },
    }
}

fn default_reply(messages: &[Value]) -> String {
    let said = messages
        .iter()
        .rev()
        .find(|message| role(message) == Some("user"))
        .map(|message| texts(message).join(" "))
        .unwrap_or_default();
    let echo: String = said.chars().take(ECHO_LIMIT).collect();
    format!("Hello from the mock provider! You said: {echo}")
}

/// Tool calls to answer with, if the `tool_call` knob or the request's tools call for them.
fn tool_calls(
    state: &MockState,
    request: &Knobs,
    messages: &[Value],
    mock: &Knobs,
) -> Option<Vec<ToolCall>> {
    let tools = request
        .get("tools")
        .and_then(Value::as_array)
        .filter(|tools| !tools.is_empty());
    let wanted = match mock.get("tool_call") {
        Some(Value::Bool(wanted)) => *wanted,
        Some(Value::Object(_)) => true,
        _ => {
            tools.is_some()
                && request.get("tool_choice").and_then(Value::as_str) != Some("none")
                && messages.last().and_then(role) == Some("user")
        }
    };
    if !wanted {
        return None;
    }
    let spec = mock.get("tool_call").and_then(Value::as_object);
    let name = spec
        .and_then(|spec| spec.get("name"))
        .and_then(Value::as_str)
        .or_else(|| request.get("tool_choice").and_then(function_name))
        .or_else(|| {
            tools
                .and_then(|tools| tools.first())
                .and_then(function_name)
        })
        .unwrap_or("mock_tool")
        .to_owned();
    let arguments = match spec.and_then(|spec| spec.get("arguments")) {
        // A string is sent as is, so tests can feed clients broken arguments.
        Some(Value::String(raw)) => raw.clone(),
        Some(arguments) => arguments.to_string(),
        None => {
            let schema = tools
                .into_iter()
                .flatten()
                .find(|tool| function_name(tool) == Some(name.as_str()))
                .and_then(|tool| tool.pointer("/function/parameters"));
            arguments_from_schema(schema).to_string()
        }
    };
    let parallel = spec
        .and_then(|spec| knob_u64(spec, "parallel"))
        .or_else(|| knob_u64(mock, "parallel"))
        .unwrap_or(1)
        .clamp(1, MAX_FANOUT);
    let calls = (0..parallel)
        .map(|_| ToolCall {
            id: format!("call_mock_{}", state.next_tool_call()),
            name: name.clone(),
            arguments: arguments.clone(),
        })
        .collect();
    Some(calls)
}

/// Plausible arguments for a JSON schema: its required (or else all) properties, typed samples.
fn arguments_from_schema(schema: Option<&Value>) -> Value {
    let Some(properties) = schema
        .and_then(|schema| schema.get("properties"))
        .and_then(Value::as_object)
    else {
        return json!({});
    };
    let keys: Vec<&str> = match schema
        .and_then(|schema| schema.get("required"))
        .and_then(Value::as_array)
    {
        Some(required) => required.iter().filter_map(Value::as_str).collect(),
        None => properties.keys().map(String::as_str).collect(),
    };
    let arguments = keys
        .into_iter()
        .map(|key| {
            (
                key.to_owned(),
                sample(properties.get(key).unwrap_or(&Value::Null)),
            )
        })
        .collect();
    Value::Object(arguments)
}

fn sample(property: &Value) -> Value {
    if let Some(first) = property
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let kind = match property.get("type") {
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null"),
        _ => None,
    };
    match kind {
        Some("string") => json!("mock"),
        Some("number" | "integer") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("object") => json!({}),
        _ => Value::Null,
    }
}

fn usage(messages: &[Value], answer: &Answer, n: usize, overrides: Option<&Value>) -> Value {
    let chars: usize = messages
        .iter()
        .flat_map(texts)
        .map(|text| text.chars().count())
        .sum();
    let prompt = chars.div_ceil(4) + 3 * messages.len();
    let per_choice = match answer {
        Answer::Text { content, .. } => content.split_whitespace().count(),
        Answer::Tools(calls) => calls
            .iter()
            .map(|call| call.arguments.len().div_ceil(4))
            .sum::<usize>()
            .max(1),
    };
    let completion = per_choice * n;
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    });
    if let Some(overrides) = overrides {
        merge(&mut usage, overrides);
        // Keep the total consistent with overridden parts unless the test pins it too.
        if overrides.get("total_tokens").is_none() {
            let part = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
            let total = part("prompt_tokens") + part("completion_tokens");
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
    match answer {
        Answer::Text {
            content,
            finish_reason,
        } => (
            json!({"role": "assistant", "content": content, "refusal": null, "annotations": []}),
            *finish_reason,
        ),
        Answer::Tools(calls) => {
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
    }
}

fn completion_response(meta: &Meta<'_>, answer: &Answer, usage: Value, mock: &Knobs) -> Response {
    if knob_bool(mock, "malformed") {
        return json_bytes(Body::from(r#"{"id": "chatcmpl-"#), None);
    }
    let (message, finish_reason) = message_json(answer);
    let choices: Vec<Value> = (0..meta.n)
        .map(|index| json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish_reason}))
        .collect();
    let body = Bytes::from(
        json!({
            "id": meta.id, "object": "chat.completion", "created": meta.created, "model": meta.model,
            "choices": choices, "usage": usage, "service_tier": "default", "system_fingerprint": "fp_mock"
        })
        .to_string(),
    );
    if knob_u64(mock, "drop_after").is_none() {
        return json_bytes(Body::from(body), None);
    }
    // Announce the full length, then break off half-way: the client must see a short body.
    let len = body.len();
    let pieces = vec![Piece::Bytes(body.slice(..len / 2)), Piece::Abort];
    json_bytes(body_of(pieces, Duration::ZERO), Some(len))
}

fn json_bytes(body: Body, content_length: Option<usize>) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(len) = content_length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    response
}

/// The SSE body of a streamed answer, with the stream knobs applied.
fn stream_events(
    meta: &Meta<'_>,
    answer: &Answer,
    usage: Value,
    include_usage: bool,
    chunks: Option<usize>,
    mock: &Knobs,
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
    let finish_reason = match answer {
        Answer::Text {
            content,
            finish_reason,
        } => {
            let parts = match chunks {
                Some(count) => even_pieces(content, count),
                None => word_pieces(content),
            };
            for index in 0..meta.n {
                events.push(chunk(
                    index,
                    json!({"role": "assistant", "content": "", "refusal": null}),
                    None,
                ));
            }
            for part in parts {
                for index in 0..meta.n {
                    body.push(chunk(index, json!({"content": part}), None));
                }
            }
            *finish_reason
        }
        Answer::Tools(calls) => {
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
                    let count = (call.arguments.chars().count() / 8).max(3);
                    for part in even_pieces(&call.arguments, count) {
                        let delta = json!({"tool_calls": [{"index": slot, "function": {"arguments": part}}]});
                        body.push(chunk(index, delta, None));
                    }
                }
            }
            "tool_calls"
        }
    };
    if let Some(error) = mock.get("stream_error") {
        events.extend(body.into_iter().take(1));
        events.push(json!({"error": error}).to_string());
    } else if knob_bool(mock, "truncate") {
        let keep = body.len().div_ceil(2);
        events.extend(body.into_iter().take(keep));
    } else {
        events.extend(body);
        for index in 0..meta.n {
            events.push(chunk(index, json!({}), Some(finish_reason)));
        }
        if include_usage {
            let mut last = frame(json!([]));
            last["usage"] = usage;
            events.push(last.to_string());
        }
        events.push("[DONE]".to_owned());
    }
    if knob_bool(mock, "malformed") {
        let at = (events.len() / 2).clamp(1, events.len());
        events.insert(at, "{not json".to_owned());
    }
    let mut pieces: Vec<Piece> = events
        .into_iter()
        .map(|event| Piece::Bytes(Bytes::from(format!("data: {event}\n\n"))))
        .collect();
    if let Some(limit) = knob_u64(mock, "drop_after") {
        pieces.truncate(limit as usize);
        pieces.push(Piece::Abort);
    }
    pieces
}

/// A streamed body writing `pieces` with `delay` between them.
fn body_of(pieces: Vec<Piece>, delay: Duration) -> Body {
    let body = stream::unfold(
        (pieces.into_iter(), true),
        move |(mut rest, first)| async move {
            let piece = rest.next()?;
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let item = match piece {
                Piece::Bytes(bytes) => Ok(bytes),
                Piece::Abort => {
                    tokio::time::sleep(ABORT_GRACE).await;
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "mock drop_after",
                    ))
                }
            };
            Some((item, (rest, false)))
        },
    );
    Body::from_stream(body)
}

/// Splits text into words, each keeping its trailing whitespace, so the pieces concatenate back.
fn word_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut after_space, mut has_word) = (0, false, false);
    for (at, c) in text.char_indices() {
        if after_space && has_word && !c.is_whitespace() {
            pieces.push(&text[start..at]);
            start = at;
        }
        after_space = c.is_whitespace();
        has_word |= !after_space;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Splits text into exactly `count` pieces of near-equal char length (the last ones may be empty).
fn even_pieces(text: &str, count: usize) -> Vec<&str> {
    let count = count.max(1);
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(at, _)| at)
        .chain([text.len()])
        .collect();
    let chars = bounds.len() - 1;
    let (base, extra) = (chars / count, chars % count);
    let mut at = 0;
    (0..count)
        .map(|piece| {
            let take = base + usize::from(piece < extra);
            let part = &text[bounds[at]..bounds[at + take]];
            at += take;
            part
        })
        .collect()
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

fn knob_u64(knobs: &Knobs, key: &str) -> Option<u64> {
    knobs.get(key).and_then(Value::as_u64)
}

fn knob_bool(knobs: &Knobs, key: &str) -> bool {
    knobs.get(key).and_then(Value::as_bool).unwrap_or(false)
}

async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn bad_request(message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    let body = match code {
        Some(code) => error_body(message, "invalid_request_error", param, Some(code)),
        None => invalid_request(message, param),
    };
    error_response(StatusCode::BAD_REQUEST, body)
}

fn missing_param(param: &str) -> Response {
    let message = format!("Missing required parameter: '{param}'.");
    bad_request(&message, Some(param), Some("missing_required_parameter"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_pieces_keep_whitespace_and_concatenate_back() {
        assert_eq!(
            word_pieces("  Hello  big world "),
            ["  Hello  ", "big ", "world "]
        );
        assert_eq!(word_pieces(""), Vec::<&str>::new());
        assert_eq!(word_pieces("one"), ["one"]);
    }

    #[test]
    fn even_pieces_respect_char_boundaries_and_count() {
        let text = "héllo wörld ✓";
        for count in 1..20 {
            let pieces = even_pieces(text, count);
            assert_eq!(pieces.len(), count);
            assert_eq!(pieces.concat(), text);
        }
        assert_eq!(even_pieces("abcde", 2), ["abc", "de"]);
        assert_eq!(even_pieces("ab", 3), ["a", "b", ""]);
    }

    #[test]
    fn schema_arguments_use_required_properties_and_enums() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": ["integer", "null"]},
                "ignored": {"type": "boolean"}
            },
            "required": ["city", "unit", "days"]
        });
        let arguments = arguments_from_schema(Some(&schema));
        assert_eq!(
            arguments,
            json!({"city": "mock", "unit": "celsius", "days": 1})
        );
        let all = json!({"properties": {"a": {"type": "boolean"}, "b": {"type": "array"}, "c": {"type": "object"}}});
        assert_eq!(
            arguments_from_schema(Some(&all)),
            json!({"a": true, "b": [], "c": {}})
        );
    }

    #[test]
    fn usage_overrides_merge_and_keep_total_consistent() {
        let messages = [json!({"role": "user", "content": "12345678"})];
        let answer = Answer::Text {
            content: "a b c".into(),
            finish_reason: "stop",
        };
        let plain = usage(&messages, &answer, 1, None);
        assert_eq!(plain["prompt_tokens"], 5);
        assert_eq!(plain["completion_tokens"], 3);
        assert_eq!(plain["total_tokens"], 8);
        let overrides = json!({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 4}});
        let merged = usage(&messages, &answer, 1, Some(&overrides));
        assert_eq!(merged["total_tokens"], 13);
        assert_eq!(
            merged["prompt_tokens_details"],
            json!({"cached_tokens": 4, "audio_tokens": 0})
        );
    }
}
