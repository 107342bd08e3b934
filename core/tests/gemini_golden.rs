//! Golden tests of the Gemini adapter, with cases written for this project from the Gemini API
//! reference (`tests/golden/gemini/`):
//!
//! - `encode/<case>/request.json`: an OpenAI request (`model` is `gemini/<name>`, `stream` picks
//!   the endpoint) → `expected.json`: the upstream method, URL and body, or the error;
//! - `decode/<case>/response.json`: a `GenerateContentResponse` → `expected.json`: the OpenAI
//!   completion, or the error;
//! - `stream/<case>/response.sse`: an SSE body as Gemini frames it (optional `context.json`:
//!   `{"include_usage": bool}`, default true) → `expected.json`: the chunks and the error that
//!   ended the stream, if any;
//! - `errors/<case>/response.json`: `{"status", "headers", "body"}` of a failed call (`body` a
//!   JSON value, or a string sent verbatim) → `expected.json`: status, kind, retry delay and the
//!   OpenAI error body.
//!
//! `created` is set to 0 and ids the adapter generates (no `responseId`) to `<generated>`.
//! `UPDATE_GOLDEN=1 cargo test -p opengateway --test gemini_golden` rewrites the expected files.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderName, HeaderValue};
use opengateway::Error;
use opengateway::providers::gemini::GeminiProvider;
use opengateway::providers::{Provider, SseEvent, StreamContext};
use opengateway::types::{ChatCompletion, ChatCompletionRequest, ChatMessage};
use serde_json::{Value, json};

fn golden_dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/gemini")
        .join(kind)
}

fn provider() -> GeminiProvider {
    GeminiProvider::new(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        Some("test-key"),
        &[],
    )
    .unwrap()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// JSON equality where `1` and `1.0` are the same number.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Runs `produce` on every case directory of `kind` and compares with `expected.json`.
fn run_cases(kind: &str, produce: impl Fn(&Path) -> Value) {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no {kind} cases");
    let mut failures = Vec::new();
    for case in &cases {
        let actual = produce(case);
        let expected_path = case.join("expected.json");
        if update {
            let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
            std::fs::write(&expected_path, text).unwrap();
            continue;
        }
        if !expected_path.exists() {
            failures.push(format!(
                "{}: no expected.json (run with UPDATE_GOLDEN=1)",
                case.display()
            ));
            continue;
        }
        let expected = read_json(&expected_path);
        if !json_eq(&expected, &actual) {
            failures.push(format!(
                "{}\n--- expected\n{}\n--- actual\n{}",
                case.display(),
                serde_json::to_string_pretty(&expected).unwrap(),
                serde_json::to_string_pretty(&actual).unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn error_json(err: &Error) -> Value {
    json!({
        "status": err.status(),
        "kind": err.kind(),
        "retry_after_ms": err.retry_after().map(|d| d.as_millis() as u64),
        "error": err.to_body(),
    })
}

/// Sets `created` to 0 and replaces a generated id (everywhere it appears) by `<generated>`.
fn normalize(mut value: Value, generated: Option<&str>) -> Value {
    fn walk(v: &mut Value, generated: Option<&str>) {
        match v {
            Value::Object(map) => {
                if let Some(created) = map.get_mut("created") {
                    *created = json!(0);
                }
                map.values_mut().for_each(|x| walk(x, generated));
            }
            Value::Array(items) => items.iter_mut().for_each(|x| walk(x, generated)),
            Value::String(s) => {
                if let Some(id) = generated.filter(|id| s.contains(*id)) {
                    *s = s.replace(id, "<generated>");
                }
            }
            _ => {}
        }
    }
    walk(&mut value, generated);
    value
}

#[test]
fn encode_golden() {
    let p = provider();
    run_cases("encode", |case| {
        let raw = read_json(&case.join("request.json"));
        let request: ChatCompletionRequest = serde_json::from_value(raw).unwrap();
        let model = request
            .model
            .split_once('/')
            .map(|(_, m)| m.to_owned())
            .unwrap_or_else(|| request.model.clone());
        let stream = request.stream == Some(true);
        match p.encode_chat(&request, &model, stream) {
            Ok(up) => {
                assert_eq!(up.headers["x-goog-api-key"], "test-key");
                assert_eq!(up.headers["content-type"], "application/json");
                json!({
                    "method": up.method.as_str(),
                    "url": up.url,
                    "body": serde_json::from_slice::<Value>(&up.body).unwrap(),
                })
            }
            Err(err) => error_json(&err),
        }
    });
}

#[test]
fn decode_golden() {
    let p = provider();
    run_cases("decode", |case| {
        let body = std::fs::read(case.join("response.json")).unwrap();
        let raw: Value = serde_json::from_slice(&body).unwrap();
        match p.decode_chat(&body) {
            Ok(completion) => {
                let generated = raw
                    .get("responseId")
                    .is_none()
                    .then(|| completion.id.clone());
                normalize(
                    serde_json::to_value(&completion).unwrap(),
                    generated.as_deref(),
                )
            }
            Err(err) => error_json(&err),
        }
    });
}

/// Splits an SSE body into events the way a conforming parser does (CRLF, LF or CR line ends;
/// a blank line ends an event; `data:` lines are joined with `\n`).
pub fn sse_split(body: &str) -> Vec<SseEvent> {
    let normalized = body.replace("\r\n", "\n").replace('\r', "\n");
    let mut events = Vec::new();
    let mut current = SseEvent::default();
    let mut has_data = false;
    for line in normalized.split('\n') {
        if line.is_empty() {
            if has_data {
                events.push(std::mem::take(&mut current));
            }
            current = SseEvent::default();
            has_data = false;
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => {
                if has_data {
                    current.data.push('\n');
                }
                current.data.push_str(value);
                has_data = true;
            }
            "event" => current.event = value.to_owned(),
            _ => {}
        }
    }
    if has_data {
        events.push(current);
    }
    events
}

#[test]
fn sse_split_honours_crlf() {
    let events = sse_split("data: {\"a\":1}\r\n\r\ndata: x\r\ndata: y\r\n\r\n: comment\n\n");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].data, "{\"a\":1}");
    assert_eq!(events[1].data, "x\ny");
}

#[test]
fn stream_golden() {
    let p = provider();
    run_cases("stream", |case| {
        let body = std::fs::read_to_string(case.join("response.sse")).unwrap();
        let context_path = case.join("context.json");
        let include_usage = if context_path.exists() {
            read_json(&context_path)["include_usage"]
                .as_bool()
                .unwrap_or(true)
        } else {
            true
        };
        let mut decoder = p.stream_decoder(StreamContext { include_usage });
        let mut chunks = Vec::new();
        let mut error = Value::Null;
        let mut generated = None;
        let events = sse_split(&body);
        let first_has_id = events
            .first()
            .and_then(|e| serde_json::from_str::<Value>(&e.data).ok())
            .is_some_and(|v| v.get("responseId").is_some());
        for event in &events {
            match decoder.on_event(event) {
                Ok(out) => chunks.extend(out),
                Err(err) => {
                    error = error_json(&err);
                    break;
                }
            }
        }
        if error.is_null() {
            match decoder.finish() {
                Ok(out) => chunks.extend(out),
                Err(err) => error = error_json(&err),
            }
        }
        if !first_has_id {
            generated = chunks.first().map(|c| c.id.clone());
        }
        let chunks = serde_json::to_value(&chunks).unwrap();
        normalize(
            json!({"chunks": chunks, "error": error}),
            generated.as_deref(),
        )
    });
}

#[test]
fn error_golden() {
    let p = provider();
    run_cases("errors", |case| {
        let input = read_json(&case.join("response.json"));
        let status = u16::try_from(input["status"].as_u64().unwrap()).unwrap();
        let mut headers = HeaderMap::new();
        for (k, v) in input["headers"].as_object().into_iter().flatten() {
            headers.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v.as_str().unwrap()).unwrap(),
            );
        }
        let body = match &input["body"] {
            Value::String(s) => s.clone().into_bytes(),
            other => serde_json::to_vec_pretty(other).unwrap(),
        };
        error_json(&p.decode_error(status, &headers, &body))
    });
}

/// A Gemini 3 answer with signed function calls and a signed text part, decoded, sent back as
/// the next turn's history, encodes with every signature on the part it came from.
#[test]
fn thought_signatures_survive_a_round_trip() {
    let p = provider();
    let answer = json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"text": "Let me check both.", "thoughtSignature": "c2lnLXRleHQ="},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLWNhbGw="},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
            ]},
            "finishReason": "STOP", "index": 0
        }],
        "modelVersion": "gemini-3-pro-preview",
        "responseId": "resp1"
    });
    let completion: ChatCompletion = p.decode_chat(answer.to_string().as_bytes()).unwrap();
    let message = serde_json::to_value(&completion.choices[0].message).unwrap();
    let calls = message["tool_calls"].as_array().unwrap();
    assert_eq!(calls[0]["thought_signature"], "c2lnLWNhbGw=");
    assert!(calls[1].get("thought_signature").is_none());
    assert_eq!(
        message["thinking_blocks"],
        json!([{"type": "thinking", "thinking": "", "signature": "c2lnLXRleHQ="}])
    );

    // The client appends the message as it got it, then the tool results.
    let assistant: ChatMessage = serde_json::from_value(message.clone()).unwrap();
    let mut request: ChatCompletionRequest = serde_json::from_value(json!({
        "model": "gemini/gemini-3-pro-preview",
        "messages": [{"role": "user", "content": "Weather in Paris and Rome?"}]
    }))
    .unwrap();
    request.messages.push(assistant);
    for (call, result) in calls.iter().zip(["sunny", "rainy"]) {
        request.messages.push(
            serde_json::from_value(json!({
                "role": "tool", "tool_call_id": call["id"], "content": result
            }))
            .unwrap(),
        );
    }
    let up = p
        .encode_chat(&request, "gemini-3-pro-preview", false)
        .unwrap();
    let body: Value = serde_json::from_slice(&up.body).unwrap();
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
            {"role": "model", "parts": [
                {"text": "Let me check both.", "thoughtSignature": "c2lnLXRleHQ="},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLWNhbGw="},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}},
                {"functionResponse": {"name": "get_weather", "response": {"result": "rainy"}}}
            ]}
        ])
    );
}
