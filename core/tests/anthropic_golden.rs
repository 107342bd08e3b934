//! Golden files for the Anthropic adapter (`tests/golden/anthropic/`) and a check of every
//! recorded Anthropic fixture in `../shared/fixtures/anthropic` (skipped when absent), through
//! the public `Provider` API only.
//!
//! `requests/<case>.json` is an OpenAI request, `<case>.anthropic.json` the body it must become;
//! `responses/<case>.json` / `.sse` is an Anthropic answer or stream, `<case>.expected.json` the
//! OpenAI completion or chunks (with `created` set to 0). `UPDATE_GOLDEN=1` rewrites expected
//! files.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderName, HeaderValue};
use opengateway::Error;
use opengateway::providers::anthropic::AnthropicProvider;
use opengateway::providers::{Provider, SseEvent, StreamContext};
use opengateway::types::{
    ChatCompletionChunk, ChatCompletionRequest, FinishReason, ThinkingBlock, Usage,
};
use serde_json::{Value, json};

fn provider() -> AnthropicProvider {
    AnthropicProvider::new("anthropic", "https://api.anthropic.com/v1", Some("k"), &[]).unwrap()
}

/// `decode_chat` with the clock taken out.
fn decode(body: &[u8]) -> opengateway::Result<opengateway::types::ChatCompletion> {
    provider().decode_chat(body).map(|mut c| {
        c.created = 0;
        c
    })
}

/// Splits a raw SSE body into events as the transport does: `event:`/`data:` lines,
/// `\r\n` or `\n` line ends, blank-line separators, `:` comments, `message` → "".
fn parse_sse(raw: &str) -> Vec<SseEvent> {
    let text = raw.replace("\r\n", "\n").replace('\r', "\n");
    let mut events = Vec::new();
    let mut name = String::new();
    let mut data: Vec<String> = Vec::new();
    let mut flush = |name: &mut String, data: &mut Vec<String>| {
        if !data.is_empty() {
            let event = if name == "message" {
                String::new()
            } else {
                std::mem::take(name)
            };
            events.push(SseEvent {
                event,
                data: data.join("\n"),
            });
        }
        name.clear();
        data.clear();
    };
    for line in text.split('\n') {
        if line.is_empty() {
            flush(&mut name, &mut data);
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => name = value.to_owned(),
            "data" => data.push(value.to_owned()),
            _ => {}
        }
    }
    flush(&mut name, &mut data);
    events
}

/// Feeds events to a fresh decoder, then `finish()`; stops at the first error.
fn run_stream(
    events: &[SseEvent],
    include_usage: bool,
) -> (Vec<ChatCompletionChunk>, Option<Error>) {
    let mut decoder = provider().stream_decoder(StreamContext { include_usage });
    let mut chunks = Vec::new();
    for event in events {
        match decoder.on_event(event) {
            Ok(out) => chunks.extend(out.into_iter().map(|mut c| {
                c.created = 0;
                c
            })),
            Err(e) => return (chunks, Some(e)),
        }
        if decoder.is_done() {
            break;
        }
    }
    match decoder.finish() {
        Ok(out) => chunks.extend(out),
        Err(e) => return (chunks, Some(e)),
    }
    (chunks, None)
}

fn error_value(e: &Error) -> Value {
    let body = e.to_body().error;
    json!({
        "status": e.status(),
        "type": body.kind,
        "code": body.code,
        "param": body.param,
        "message": e.message(),
    })
}

fn text_of(chunks: &[ChatCompletionChunk]) -> String {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.clone().flatten())
        .collect()
}

fn reasoning_of(chunks: &[ChatCompletionChunk]) -> String {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.reasoning_content.clone())
        .collect()
}

fn thinking_blocks_of(chunks: &[ChatCompletionChunk]) -> Vec<ThinkingBlock> {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.thinking_blocks.clone())
        .flatten()
        .collect()
}

/// Tool calls rebuilt from deltas as a client does: `(id, name, arguments)` by index.
fn tool_calls_of(chunks: &[ChatCompletionChunk]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for delta in chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.tool_calls.clone().flatten())
        .flatten()
    {
        let i = delta.index as usize;
        if calls.len() <= i {
            calls.resize(i + 1, Default::default());
        }
        if let Some(id) = delta.id {
            calls[i].0 = id;
        }
        if let Some(f) = delta.function {
            if let Some(name) = f.name {
                calls[i].1 = name;
            }
            calls[i].2.push_str(&f.arguments.unwrap_or_default());
        }
    }
    calls
}

fn finish_reasons_of(chunks: &[ChatCompletionChunk]) -> Vec<FinishReason> {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason.clone())
        .collect()
}

// --- golden files -----------------------------------------------------------------------

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/anthropic")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compares with the expected file, or rewrites it when `UPDATE_GOLDEN=1`.
fn check_golden(expected: &Path, actual: &Value) {
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
        std::fs::write(expected, text).unwrap();
        return;
    }
    let wanted = read_json(expected);
    assert!(
        wanted == *actual,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)\n--- expected\n{}\n--- actual\n{}",
        expected.display(),
        serde_json::to_string_pretty(&wanted).unwrap(),
        serde_json::to_string_pretty(actual).unwrap()
    );
}

fn cases(dir: &str, suffix: &str, skip: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(suffix) && !name.ends_with(skip)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn golden_requests() {
    let files = cases("requests", ".json", ".anthropic.json");
    assert!(files.len() >= 10, "golden request cases missing");
    for path in files {
        let openai = read_json(&path);
        let request: ChatCompletionRequest = serde_json::from_value(openai).unwrap();
        let model = request
            .model
            .split_once('/')
            .map_or(request.model.as_str(), |(_, m)| m);
        let stream = request.stream.unwrap_or(false);
        let upstream = provider()
            .encode_chat(&request, model, stream)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let body: Value = serde_json::from_slice(&upstream.body).unwrap();
        check_golden(&path.with_extension("anthropic.json"), &body);
    }
}

#[test]
fn golden_responses() {
    let files = cases("responses", ".json", ".expected.json");
    assert!(files.len() >= 4, "golden response cases missing");
    for path in files {
        let body = std::fs::read(&path).unwrap();
        let completion = decode(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check_golden(
            &path.with_extension("expected.json"),
            &serde_json::to_value(&completion).unwrap(),
        );
    }
}

#[test]
fn golden_streams() {
    let files = cases("responses", ".sse", ".expected.json");
    assert!(files.len() >= 6, "golden stream cases missing");
    for path in files {
        let raw = std::fs::read_to_string(&path).unwrap();
        let (chunks, err) = run_stream(&parse_sse(&raw), true);
        let actual = json!({
            "chunks": chunks,
            "error": err.as_ref().map(error_value),
        });
        check_golden(&path.with_extension("expected.json"), &actual);
    }
}

// --- recorded fixtures ------------------------------------------------------------------

/// OpenAI finish reason for a recorded Anthropic stop reason (independent of the code).
fn expected_finish(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" | "pause_turn" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => panic!("unexpected recorded stop_reason {other}"),
    }
}

/// Checks usage against recorded Anthropic numbers: every input token counted, cache
/// reads as cached tokens, cache writes as cache-write tokens.
fn check_usage(case: &str, usage: &Usage, recorded: &Value) {
    let n = |k: &str| recorded.get(k).and_then(Value::as_u64);
    let (input, read, write, output) = (
        n("input_tokens").unwrap(),
        n("cache_read_input_tokens"),
        n("cache_creation_input_tokens"),
        n("output_tokens").unwrap(),
    );
    let prompt = input + read.unwrap_or(0) + write.unwrap_or(0);
    assert_eq!(usage.prompt_tokens, prompt, "{case}: prompt tokens");
    assert_eq!(usage.completion_tokens, output, "{case}: completion tokens");
    assert_eq!(usage.total_tokens, prompt + output, "{case}: total tokens");
    if read.is_some() || write.is_some() {
        let details = usage.prompt_tokens_details.as_ref().unwrap();
        assert_eq!(details.cached_tokens, Some(read.unwrap_or(0)), "{case}");
        assert_eq!(
            details.cache_write_tokens,
            Some(write.unwrap_or(0)),
            "{case}"
        );
    } else {
        assert!(usage.prompt_tokens_details.is_none(), "{case}");
    }
    let thinking = recorded
        .pointer("/output_tokens_details/thinking_tokens")
        .and_then(Value::as_u64);
    assert_eq!(
        usage
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens),
        thinking,
        "{case}: reasoning tokens"
    );
}

fn expected_error_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" | "billing_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "overloaded_error" => 503,
        "timeout_error" => 504,
        other => panic!("unexpected recorded error type {other}"),
    }
}

fn check_recorded_message(case: &str, body: &[u8]) {
    let recorded: Value = serde_json::from_slice(body).unwrap();
    let completion = decode(body).unwrap();
    assert_eq!(completion.id, recorded["id"].as_str().unwrap(), "{case}");
    assert_eq!(
        completion.model,
        recorded["model"].as_str().unwrap(),
        "{case}"
    );
    assert_eq!(completion.object, "chat.completion");
    let message = &completion.choices[0].message;
    let blocks = recorded["content"].as_array().unwrap();
    let of_type = |t: &'static str| blocks.iter().filter(move |b| b["type"] == t);
    let text: String = of_type("text")
        .map(|b| b["text"].as_str().unwrap())
        .collect();
    if of_type("text").next().is_some() {
        assert!(!text.is_empty(), "{case}: recorded text is empty?");
        assert_eq!(message.content.as_deref(), Some(text.as_str()), "{case}");
    } else {
        assert_eq!(message.content, None, "{case}");
    }
    let reasoning: String = of_type("thinking")
        .map(|b| b["thinking"].as_str().unwrap())
        .collect();
    assert_eq!(
        message.reasoning_content.clone().unwrap_or_default(),
        reasoning,
        "{case}"
    );
    let recorded_thinking: Vec<&Value> = blocks
        .iter()
        .filter(|b| b["type"] == "thinking" || b["type"] == "redacted_thinking")
        .collect();
    let thinking_blocks = message.thinking_blocks.clone().unwrap_or_default();
    assert_eq!(thinking_blocks.len(), recorded_thinking.len(), "{case}");
    for (ours, theirs) in thinking_blocks.iter().zip(recorded_thinking) {
        match ours {
            ThinkingBlock::Thinking {
                thinking,
                signature,
            } => {
                assert_eq!(thinking, theirs["thinking"].as_str().unwrap());
                assert_eq!(signature.as_deref(), theirs["signature"].as_str());
            }
            ThinkingBlock::RedactedThinking { data } => {
                assert_eq!(data, theirs["data"].as_str().unwrap());
            }
        }
    }
    let calls = message.tool_calls.clone().flatten().unwrap_or_default();
    let recorded_calls: Vec<&Value> = of_type("tool_use").collect();
    assert_eq!(calls.len(), recorded_calls.len(), "{case}");
    for (call, theirs) in calls.iter().zip(recorded_calls) {
        assert_eq!(call.id, theirs["id"].as_str().unwrap());
        assert_eq!(call.function.name, theirs["name"].as_str().unwrap());
        let args: Value = serde_json::from_str(&call.function.arguments).unwrap();
        assert_eq!(args, theirs["input"], "{case}: arguments");
    }
    let finish = expected_finish(recorded["stop_reason"].as_str().unwrap());
    assert_eq!(completion.choices[0].finish_reason, Some(finish), "{case}");
    check_usage(case, completion.usage.as_ref().unwrap(), &recorded["usage"]);
}

fn check_recorded_error(case: &str, status: u16, meta: &Value, body: &[u8]) {
    let recorded: Value = serde_json::from_slice(body).unwrap();
    let mut headers = HeaderMap::new();
    for (k, v) in meta["response_headers"].as_object().into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) = (
            HeaderName::from_bytes(k.as_bytes()),
            v.as_str().map(HeaderValue::from_str),
        ) {
            headers.insert(name, value);
        }
    }
    let err = provider().decode_error(status, &headers, body);
    let kind = recorded["error"]["type"].as_str().unwrap();
    assert_eq!(err.status(), expected_error_status(kind), "{case}");
    assert_eq!(
        err.message(),
        recorded["error"]["message"].as_str().unwrap(),
        "{case}"
    );
    assert_eq!(err.code(), Some(&json!(kind)), "{case}");
}

fn check_recorded_stream(case: &str, raw: &str) {
    let events = parse_sse(raw);
    assert!(!events.is_empty(), "{case}: no events parsed");
    let data: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    let (chunks, err) = run_stream(&events, true);
    if let Some(error) = data.iter().find(|d| d["type"] == "error") {
        let err = err.unwrap_or_else(|| panic!("{case}: error event not reported"));
        let kind = error["error"]["type"].as_str().unwrap();
        assert_eq!(err.status(), expected_error_status(kind), "{case}");
        assert_eq!(err.message(), error["error"]["message"].as_str().unwrap());
        return;
    }
    if let Some(e) = err {
        panic!("{case}: {e}");
    }
    let start = data.iter().find(|d| d["type"] == "message_start").unwrap();
    let (id, model) = (
        start["message"]["id"].as_str().unwrap(),
        start["message"]["model"].as_str().unwrap(),
    );
    assert!(
        chunks
            .iter()
            .all(|c| c.id == id && c.model == model && c.created == 0),
        "{case}"
    );
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant"),
        "{case}"
    );

    let deltas = |t: &str, field: &str| -> String {
        data.iter()
            .filter(|d| d["type"] == "content_block_delta" && d["delta"]["type"] == t)
            .map(|d| d["delta"][field].as_str().unwrap().to_owned())
            .collect()
    };
    let text = deltas("text_delta", "text");
    assert_eq!(text_of(&chunks), text, "{case}: text");
    if data.iter().any(|d| d["content_block"]["type"] == "text") {
        assert!(!text.is_empty(), "{case}: empty text");
    }
    assert_eq!(
        reasoning_of(&chunks),
        deltas("thinking_delta", "thinking"),
        "{case}"
    );

    // Thinking blocks: one per recorded thinking/redacted block, signatures whole.
    let mut expected_blocks = Vec::new();
    for d in data.iter().filter(|d| d["type"] == "content_block_start") {
        let index = &d["index"];
        let of_block = |t: &str, field: &str| -> String {
            data.iter()
                .filter(|e| e["index"] == *index && e["delta"]["type"] == t)
                .map(|e| e["delta"][field].as_str().unwrap().to_owned())
                .collect()
        };
        match d["content_block"]["type"].as_str().unwrap() {
            "thinking" => expected_blocks.push(ThinkingBlock::Thinking {
                thinking: of_block("thinking_delta", "thinking"),
                signature: Some(of_block("signature_delta", "signature")).filter(|s| !s.is_empty()),
            }),
            "redacted_thinking" => expected_blocks.push(ThinkingBlock::RedactedThinking {
                data: d["content_block"]["data"].as_str().unwrap().to_owned(),
            }),
            _ => {}
        }
    }
    assert_eq!(
        thinking_blocks_of(&chunks),
        expected_blocks,
        "{case}: thinking blocks"
    );

    // Tool calls: in order, arguments equal to the recorded input.
    let recorded_calls: Vec<(String, String, Value)> = data
        .iter()
        .filter(|d| d["type"] == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .map(|d| {
            let json: String = data
                .iter()
                .filter(|e| e["index"] == d["index"] && e["delta"]["type"] == "input_json_delta")
                .map(|e| e["delta"]["partial_json"].as_str().unwrap().to_owned())
                .collect();
            let input = if json.is_empty() {
                d["content_block"]["input"].clone()
            } else {
                serde_json::from_str(&json).unwrap()
            };
            let block = &d["content_block"];
            (
                block["id"].as_str().unwrap().to_owned(),
                block["name"].as_str().unwrap().to_owned(),
                input,
            )
        })
        .collect();
    let calls = tool_calls_of(&chunks);
    assert_eq!(calls.len(), recorded_calls.len(), "{case}: tool calls");
    for ((id, name, args), (rid, rname, rinput)) in calls.iter().zip(&recorded_calls) {
        assert_eq!((id, name), (rid, rname), "{case}");
        let args: Value = serde_json::from_str(args)
            .unwrap_or_else(|e| panic!("{case}: arguments `{args}` do not parse: {e}"));
        assert_eq!(&args, rinput, "{case}: arguments");
    }

    let stop = data
        .iter()
        .filter_map(|d| d["delta"]["stop_reason"].as_str())
        .next_back()
        .unwrap();
    assert_eq!(
        finish_reasons_of(&chunks),
        [expected_finish(stop)],
        "{case}"
    );

    // Usage: start and delta reports folded, the larger (cumulative) value wins.
    let mut recorded_usage = start["message"]["usage"].clone();
    for d in data.iter().filter(|d| d["type"] == "message_delta") {
        for (k, v) in d["usage"].as_object().unwrap() {
            let bigger = match (recorded_usage.get(k).and_then(Value::as_u64), v.as_u64()) {
                (Some(a), Some(b)) => Value::from(a.max(b)),
                _ => v.clone(),
            };
            recorded_usage[k] = bigger;
        }
    }
    let last = chunks.last().unwrap();
    assert!(
        last.choices.is_empty(),
        "{case}: last chunk is the usage chunk"
    );
    check_usage(case, last.usage().unwrap(), &recorded_usage);
    assert_eq!(
        chunks.iter().filter(|c| c.usage.is_some()).count(),
        1,
        "{case}"
    );
}

#[test]
fn recorded_fixtures_decode() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/anthropic");
    let Ok(dir) = std::fs::read_dir(&root) else {
        eprintln!("skipping: no recorded fixtures at {}", root.display());
        return;
    };
    let mut cases: Vec<PathBuf> = dir
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    for case_dir in &cases {
        let case = case_dir.file_name().unwrap().to_string_lossy().into_owned();
        let meta = read_json(&case_dir.join("meta.json"));
        let file = meta["response_file"].as_str().unwrap();
        let body = std::fs::read(case_dir.join(file)).unwrap();
        let status = u16::try_from(meta["status"].as_u64().unwrap()).unwrap();
        // A body that was gzip on the wire is stored decompressed (see meta); the gateway's
        // client never asks for compression, so it always reads plain bytes.
        if meta.pointer("/response_headers/content-encoding") == Some(&json!("gzip")) {
            assert_eq!(meta["body_fidelity"], "exact-bytes-decompressed", "{case}");
            assert_ne!(body.get(..2), Some(&[0x1f, 0x8b][..]), "{case}: still gzip");
        }
        match (file, status) {
            ("response.json", 200) => check_recorded_message(&case, &body),
            ("response.json", _) => check_recorded_error(&case, status, &meta, &body),
            ("response.sse", _) => {
                check_recorded_stream(&case, &String::from_utf8(body).unwrap());
            }
            other => panic!("{case}: unexpected response file {other:?}"),
        }
        eprintln!("fixture {case}: ok");
    }
    eprintln!("{} recorded Anthropic cases decoded", cases.len());
}
