//! Unit tests of the Gemini adapter; the golden, fixture and gateway tests are in `core/tests/`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderMap};
use serde_json::json;

use super::request::{clean_schema, uses_thinking_level};
use super::*;
use crate::providers::SseEvent;
use crate::types::FinishReason;

fn provider() -> GeminiProvider {
    GeminiProvider::new(
        "gemini",
        "http://127.0.0.1:1/v1beta/",
        Some("AIza-test"),
        &[("x-extra".to_owned(), "1".to_owned())],
    )
    .unwrap()
}

fn request(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
}

fn hello() -> Value {
    json!({"model": "gemini/gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]})
}

#[test]
fn urls_and_headers() {
    let p = provider();
    let req = request(hello());
    let up = p.encode_chat(&req, "gemini-2.5-flash", false).unwrap();
    assert_eq!(
        up.url,
        "http://127.0.0.1:1/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(up.headers["x-goog-api-key"], "AIza-test");
    assert!(up.headers["x-goog-api-key"].is_sensitive());
    assert_eq!(up.headers["x-extra"], "1");
    assert!(!up.url.contains("key="));
    let up = p.encode_chat(&req, "tunedModels/mine", true).unwrap();
    assert_eq!(
        up.url,
        "http://127.0.0.1:1/v1beta/tunedModels/mine:streamGenerateContent?alt=sse"
    );
    let list = p.list_models_request().unwrap();
    assert_eq!(list.method, http::Method::GET);
    assert!(list.url.starts_with("http://127.0.0.1:1/v1beta/models"));
    assert!(list.headers.get(CONTENT_TYPE).is_none());
    let ids = p
        .decode_model_list(
            br#"{"models":[{"name":"models/gemini-2.5-flash","displayName":"x"},{"name":"models/text-embedding-004"}],"nextPageToken":"t"}"#,
        )
        .unwrap();
    assert_eq!(ids, ["gemini-2.5-flash", "text-embedding-004"]);
    let default = GeminiProvider::new("g", "", None, &[]).unwrap();
    let url = default.list_models_request().unwrap().url;
    assert_eq!(url, format!("{DEFAULT_API_BASE}/models?pageSize=1000"));
    assert!(GeminiProvider::new("g", "", Some("bad\nkey"), &[]).is_err());
    assert!(p.needs_image_bytes());
}

#[test]
fn unsupported_parameters_are_refused_by_name() {
    let p = provider();
    let tool =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let cases = [
        (json!({"logit_bias": {"50256": -100}}), "logit_bias"),
        (json!({"top_logprobs": 3}), "top_logprobs"),
        (json!({"modalities": ["text", "audio"]}), "modalities"),
        (
            json!({"audio": {"voice": "alloy", "format": "wav"}}),
            "audio",
        ),
        (
            json!({"tools": tool, "parallel_tool_calls": false}),
            "parallel_tool_calls",
        ),
        (json!({"reasoning_effort": "extreme"}), "reasoning_effort"),
        (json!({"seed": 1_i64 << 40}), "seed"),
        (json!({"top_k": -1}), "top_k"),
        (json!({"tool_choice": "required"}), "tool_choice"),
        (
            json!({"tools": tool, "tool_choice": {"type": "function", "function": {"name": "g"}}}),
            "tool_choice",
        ),
        (
            json!({"tools": [{"type": "custom", "custom": {"name": "c"}}]}),
            "tools[0]",
        ),
    ];
    for (patch, param) in cases {
        let mut body = hello();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let err = p
            .encode_chat(&request(body), "gemini-2.5-flash", false)
            .unwrap_err();
        assert_eq!((err.status(), err.param()), (400, Some(param)), "{patch}");
    }
    // `parallel_tool_calls: false` without tools changes nothing and is accepted.
    let mut body = hello();
    body["parallel_tool_calls"] = json!(false);
    assert!(
        p.encode_chat(&request(body), "gemini-2.5-flash", false)
            .is_ok()
    );
}

#[test]
fn message_errors_name_the_field() {
    let p = provider();
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
        ]}
    ]});
    let err = p.encode_chat(&request(body), "m", false).unwrap_err();
    assert_eq!(
        err.param(),
        Some("messages[1].tool_calls[1].function.arguments")
    );
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "nope", "content": "x"}
    ]});
    let err = p.encode_chat(&request(body), "m", false).unwrap_err();
    assert_eq!(err.param(), Some("messages[1].tool_call_id"));
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}
    ]});
    let err = p.encode_chat(&request(body), "m", false).unwrap_err();
    assert_eq!(err.param(), Some("messages[0].content[0].image_url.url"));
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}
    ]});
    let err = p.encode_chat(&request(body), "m", false).unwrap_err();
    assert_eq!(err.param(), Some("messages[0].content[0].file.file_id"));
}

#[test]
fn thinking_levels_by_model_generation() {
    assert!(uses_thinking_level("gemini-3-pro-preview"));
    assert!(uses_thinking_level("models/gemini-3.1-flash"));
    assert!(uses_thinking_level("gemini-10-ultra"));
    assert!(!uses_thinking_level("gemini-2.5-flash"));
    assert!(!uses_thinking_level("gemini-flash-latest"));
    assert!(!uses_thinking_level("gemma-3-27b-it"));
}

#[test]
fn schemas_lose_only_dollar_schema() {
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": false,
        "properties": {"$schema": {"type": "string"}, "x": {"$schema": "y", "type": "integer"}},
        "required": ["$schema"]
    });
    assert_eq!(
        clean_schema(&schema),
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {"$schema": {"type": "string"}, "x": {"type": "integer"}},
            "required": ["$schema"]
        })
    );
}

#[test]
fn errors_map_google_statuses() {
    let p = provider();
    let h = HeaderMap::new();
    let body = br#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
    let err = p.decode_error(429, &h, body);
    assert_eq!(err.status(), 429);
    assert_eq!(err.kind(), ErrorKind::RateLimit);
    assert_eq!(err.code(), Some(&json!("RESOURCE_EXHAUSTED")));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(37)));
    assert_eq!(err.message(), "Resource has been exhausted");
    // The array form `streamGenerateContent` uses without `alt=sse`.
    let body =
        br#"[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]"#;
    let err = p.decode_error(503, &h, body);
    assert_eq!(
        (err.status(), err.kind()),
        (503, ErrorKind::ServiceUnavailable)
    );
    assert_eq!(err.code(), Some(&json!("UNAVAILABLE")));
    // Not JSON at all.
    let err = p.decode_error(502, &h, b"<html>bad gateway</html>");
    assert_eq!(err.status(), 502);
    assert!(err.message().contains("bad gateway"));
    for (status, google, expected) in [
        (403, "PERMISSION_DENIED", ErrorKind::PermissionDenied),
        (500, "INTERNAL", ErrorKind::InternalServer),
        (504, "DEADLINE_EXCEEDED", ErrorKind::Timeout),
    ] {
        let body = json!({"error": {"code": status, "message": "m", "status": google}});
        let err = p.decode_error(status, &h, body.to_string().as_bytes());
        assert_eq!((err.status(), err.kind()), (status, expected));
    }
}

#[test]
fn stream_error_events_fail_with_the_status() {
    let p = provider();
    let mut d = p.stream_decoder(StreamContext::default());
    let ev = SseEvent {
        event: String::new(),
        data: r#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#.to_owned(),
    };
    let err = d.on_event(&ev).unwrap_err();
    assert_eq!(err.status(), 503);
    assert!(err.message().contains("mid-stream: overloaded"));
    assert_eq!(err.code(), Some(&json!("UNAVAILABLE")));
    let ev = SseEvent {
        event: String::new(),
        data: "{not json".to_owned(),
    };
    assert_eq!(d.on_event(&ev).unwrap_err().status(), 502);
    assert!(d.finish().is_err(), "nothing finished: truncated");
}

#[test]
fn malformed_function_call_without_output_is_a_retryable_error() {
    let p = provider();
    let body = br#"{"candidates":[{"content":{},"finishReason":"MALFORMED_FUNCTION_CALL","finishMessage":"Malformed function call: print(x"}],"responseId":"r"}"#;
    let err = p.decode_chat(body).unwrap_err();
    assert_eq!(err.status(), 502);
    assert!(err.is_retryable());
    assert!(err.message().contains("Malformed function call"));
    let body = br#"{"candidates":[{"content":{"parts":[{"text":"partial"}]},"finishReason":"MALFORMED_FUNCTION_CALL"}],"responseId":"r"}"#;
    let ok = p.decode_chat(body).unwrap();
    assert_eq!(ok.choices[0].finish_reason, Some(FinishReason::Stop));
    let err = p
        .decode_chat(br#"{"error":{"code":500,"message":"boom","status":"INTERNAL"}}"#)
        .unwrap_err();
    assert_eq!(err.status(), 500);
    assert!(p.decode_chat(b"{}").is_err(), "no candidates, no block");
}
