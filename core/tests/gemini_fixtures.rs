//! The Gemini adapter against every real recording in `../shared/fixtures/gemini/` (beside the
//! repository; skipped with a message when absent). Each case is decoded the way the gateway
//! would (answer, stream event by event, or error by its recorded status) and the translation
//! is compared with what the recording itself says: texts, thoughts, function calls, finish
//! reasons and the usage arithmetic.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderName, HeaderValue};
use opengateway::ErrorKind;
use opengateway::providers::gemini::GeminiProvider;
use opengateway::providers::{Provider, SseEvent, StreamContext};
use opengateway::types::{ChatCompletionChunk, FinishReason, Usage};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/gemini")
}

fn provider() -> GeminiProvider {
    GeminiProvider::new("gemini", "", Some("test-key"), &[]).unwrap()
}

/// What a recording says, per candidate index, gathered over one answer or all stream events.
#[derive(Debug, Default)]
struct Recorded {
    text: String,
    thoughts: String,
    calls: Vec<(String, Value)>,
    finish: Option<String>,
}

fn recorded(responses: &[Value]) -> BTreeMap<u64, Recorded> {
    let mut out: BTreeMap<u64, Recorded> = BTreeMap::new();
    for response in responses {
        for (position, candidate) in response["candidates"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let index = candidate["index"].as_u64().unwrap_or(position as u64);
            let entry = out.entry(index).or_default();
            for part in candidate["content"]["parts"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(call) = part.get("functionCall") {
                    let args = call
                        .get("args")
                        .cloned()
                        .unwrap_or(Value::Object(Default::default()));
                    entry
                        .calls
                        .push((call["name"].as_str().unwrap().to_owned(), args));
                } else if let Some(text) = part["text"].as_str() {
                    if part["thought"] == Value::Bool(true) {
                        entry.thoughts.push_str(text);
                    } else {
                        entry.text.push_str(text);
                    }
                }
            }
            if let Some(reason) = candidate["finishReason"].as_str() {
                entry.finish = Some(reason.to_owned());
            }
        }
    }
    out
}

/// The finish reason the module docs promise for a Gemini one.
fn expected_finish(reason: &str, called: bool) -> FinishReason {
    match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        "STOP" if called => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// The usage arithmetic the module docs promise, against the recorded numbers.
fn check_usage(case: &str, usage: &Usage, meta: &Value) {
    let n = |k: &str| meta[k].as_u64().unwrap_or(0);
    let prompt = n("promptTokenCount") + n("toolUsePromptTokenCount");
    let completion = n("candidatesTokenCount") + n("thoughtsTokenCount");
    assert_eq!(usage.prompt_tokens, prompt, "{case}: prompt_tokens");
    assert_eq!(
        usage.completion_tokens, completion,
        "{case}: completion_tokens"
    );
    assert_eq!(
        usage.total_tokens,
        n("totalTokenCount"),
        "{case}: total_tokens"
    );
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens,
        "{case}: the recorded total is the sum of the translated parts"
    );
    let cached = usage
        .prompt_tokens_details
        .as_ref()
        .and_then(|d| d.cached_tokens);
    assert_eq!(
        cached,
        meta["cachedContentTokenCount"].as_u64(),
        "{case}: cached_tokens"
    );
    let reasoning = usage
        .completion_tokens_details
        .as_ref()
        .and_then(|d| d.reasoning_tokens);
    assert_eq!(
        reasoning,
        meta["thoughtsTokenCount"].as_u64(),
        "{case}: reasoning_tokens"
    );
}

fn headers_of(meta: &Value) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (k, v) in meta["response_headers"].as_object().into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) = (
            HeaderName::from_bytes(k.as_bytes()),
            v.as_str().map(HeaderValue::from_str),
        ) {
            headers.insert(name, value);
        }
    }
    headers
}

/// SSE events as a conforming parser splits them (CRLF or LF line ends, blank-line separated).
fn sse_events(body: &str) -> Vec<SseEvent> {
    let normalized = body.replace("\r\n", "\n").replace('\r', "\n");
    normalized
        .split("\n\n")
        .filter_map(|block| {
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            (!data.is_empty()).then(|| SseEvent {
                event: String::new(),
                data: data.join("\n"),
            })
        })
        .collect()
}

fn check_error(case: &str, status: u16, meta: &Value, body: &[u8]) {
    let recorded: Value = serde_json::from_slice(body).unwrap();
    let google = &recorded["error"];
    let err = provider().decode_error(status, &headers_of(meta), body);
    assert_eq!(
        err.message(),
        google["message"].as_str().unwrap(),
        "{case}: message"
    );
    assert_eq!(
        err.code(),
        Some(&google["status"]),
        "{case}: code is the Google status"
    );
    let api_key_invalid = google["details"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| d["reason"] == "API_KEY_INVALID");
    if api_key_invalid {
        assert_eq!(err.status(), 401, "{case}");
        assert_eq!(err.kind(), ErrorKind::Authentication, "{case}");
        assert_eq!(
            err.to_body().error.kind.as_deref(),
            Some("authentication_error")
        );
    } else {
        assert_eq!(err.status(), status, "{case}");
        assert_eq!(err.kind(), ErrorKind::from_status(status), "{case}");
    }
    assert_eq!(err.provider(), Some("gemini"));
}

fn check_answer(case: &str, body: &[u8]) {
    let raw: Value = serde_json::from_slice(body).unwrap();
    let completion = provider().decode_chat(body).unwrap();
    let want = recorded(std::slice::from_ref(&raw));
    assert_eq!(
        completion.choices.len(),
        want.len().max(1),
        "{case}: choices"
    );
    for choice in &completion.choices {
        let rec = &want[&u64::from(choice.index)];
        let message = &choice.message;
        assert_eq!(
            message.content.as_deref().unwrap_or(""),
            rec.text,
            "{case}: content"
        );
        assert_eq!(
            message.reasoning_content.as_deref().unwrap_or(""),
            rec.thoughts,
            "{case}: reasoning_content"
        );
        let calls: Vec<(String, Value)> = message
            .tool_calls
            .clone()
            .flatten()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                (
                    c.function.name.clone(),
                    serde_json::from_str(&c.function.arguments).unwrap(),
                )
            })
            .collect();
        assert_eq!(calls, rec.calls, "{case}: tool calls");
        let reason = rec.finish.as_deref().unwrap();
        assert_eq!(
            choice.finish_reason,
            Some(expected_finish(reason, !rec.calls.is_empty())),
            "{case}: finish reason of {reason}"
        );
    }
    assert_eq!(
        Some(completion.id.as_str()),
        raw["responseId"].as_str(),
        "{case}: id"
    );
    assert_eq!(
        Some(completion.model.as_str()),
        raw["modelVersion"].as_str(),
        "{case}: model"
    );
    check_usage(
        case,
        completion.usage.as_ref().unwrap(),
        &raw["usageMetadata"],
    );
}

fn check_stream(case: &str, body: &str) {
    let events = sse_events(body);
    assert!(!events.is_empty(), "{case}: no events");
    let responses: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    let want = recorded(&responses);
    let mut decoder = provider().stream_decoder(StreamContext {
        include_usage: true,
    });
    let mut chunks: Vec<ChatCompletionChunk> = Vec::new();
    for event in &events {
        chunks.extend(decoder.on_event(event).unwrap());
        assert!(!decoder.is_done(), "{case}: Gemini streams end at body end");
    }
    chunks.extend(decoder.finish().unwrap());

    let first = &chunks[0];
    assert!(
        chunks
            .iter()
            .all(|c| c.id == first.id && c.created == first.created && c.model == first.model),
        "{case}: id, created and model are fixed per stream"
    );
    assert_eq!(
        Some(first.id.as_str()),
        responses[0]["responseId"].as_str(),
        "{case}: id"
    );
    let (last, body_chunks) = chunks.split_last().unwrap();
    assert!(last.choices.is_empty(), "{case}: usage chunk last");
    assert!(
        body_chunks.iter().all(|c| c.usage == Some(None)),
        "{case}: usage is null before the last chunk"
    );
    let recorded_usage = responses
        .iter()
        .rev()
        .find_map(|r| r.get("usageMetadata"))
        .unwrap();
    check_usage(case, last.usage().unwrap(), recorded_usage);

    for (index, rec) in &want {
        let deltas: Vec<_> = body_chunks
            .iter()
            .flat_map(|c| &c.choices)
            .filter(|c| u64::from(c.index) == *index)
            .collect();
        assert_eq!(
            deltas[0].delta.role.as_deref(),
            Some("assistant"),
            "{case}: role first"
        );
        assert!(
            deltas[1..].iter().all(|d| d.delta.role.is_none()),
            "{case}: role once"
        );
        let text: String = deltas
            .iter()
            .filter_map(|d| d.delta.content.clone().flatten())
            .collect();
        let thoughts: String = deltas
            .iter()
            .filter_map(|d| d.delta.reasoning_content.clone())
            .collect();
        assert_eq!(text, rec.text, "{case}: content");
        assert_eq!(thoughts, rec.thoughts, "{case}: reasoning_content");
        if !rec.text.is_empty() {
            assert!(!text.is_empty());
        }
        let calls: Vec<(String, Value)> = deltas
            .iter()
            .flat_map(|d| d.delta.tool_calls.clone().flatten().unwrap_or_default())
            .map(|t| {
                let f = t.function.unwrap();
                (
                    f.name.unwrap(),
                    serde_json::from_str(&f.arguments.unwrap()).unwrap(),
                )
            })
            .collect();
        assert_eq!(calls, rec.calls, "{case}: tool calls");
        let finishes: Vec<_> = deltas
            .iter()
            .filter_map(|d| d.finish_reason.clone())
            .collect();
        let reason = rec.finish.as_deref().unwrap();
        assert_eq!(
            finishes,
            vec![expected_finish(reason, !rec.calls.is_empty())],
            "{case}: one finish reason, mapped from {reason}"
        );
    }
}

fn check_case(dir: &Path) {
    let case = dir.file_name().unwrap().to_string_lossy().into_owned();
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let status = u16::try_from(meta["status"].as_u64().unwrap()).unwrap();
    let file = meta["response_file"].as_str().unwrap();
    let body = std::fs::read(dir.join(file)).unwrap();
    match (status, file) {
        (200, "response.json") => check_answer(&case, &body),
        (200, "response.sse") => check_stream(&case, &String::from_utf8(body).unwrap()),
        // Error bodies are bare JSON, even under `text/event-stream` (`response.sse`).
        (_, _) => check_error(&case, status, &meta, &body),
    }
}

#[test]
fn every_recorded_gemini_case_translates() {
    let dir = fixtures_dir();
    if !dir.is_dir() {
        eprintln!(
            "skipping: no Gemini fixtures at {} (they live beside the repository)",
            dir.display()
        );
        return;
    }
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| check_case(case))) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {why}", case.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("checked {} Gemini fixture cases", cases.len());
}
