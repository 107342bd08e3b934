//! Unit tests of the Anthropic adapter: encoding, decoding, errors and the stream decoder.

use serde_json::{Value, json};

use super::request::default_max_tokens;
use super::*;
use crate::providers::SseEvent;
use crate::types::{ChatCompletionChunk, FinishReason, Nullable, Usage};

fn provider() -> AnthropicProvider {
    AnthropicProvider::new(
        "anthropic",
        "http://127.0.0.1:1/v1/",
        Some("sk-ant-test"),
        &[("anthropic-beta".to_owned(), "b1".to_owned())],
    )
    .unwrap()
}

fn request(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
}

fn encode(body: Value) -> Result<Value> {
    encode_request(&request(body), "claude-sonnet-4-5", false)
}

fn encode_err(body: Value) -> Error {
    encode(body).unwrap_err()
}

fn hello() -> Value {
    json!({"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hi"}]})
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

fn ev(data: Value) -> SseEvent {
    SseEvent {
        event: data["type"].as_str().unwrap_or_default().to_owned(),
        data: data.to_string(),
    }
}

/// Feeds events to a fresh decoder, then `finish()`; stops at the first error.
fn run_stream(
    events: &[SseEvent],
    include_usage: bool,
) -> (Vec<ChatCompletionChunk>, Option<Error>) {
    let context = StreamContext { include_usage };
    let mut decoder = AnthropicStreamDecoder::new("anthropic", context, 0);
    let mut chunks = Vec::new();
    for event in events {
        match decoder.on_event(event) {
            Ok(out) => chunks.extend(out),
            Err(e) => return (chunks, Some(e)),
        }
    }
    match decoder.finish() {
        Ok(out) => chunks.extend(out),
        Err(e) => return (chunks, Some(e)),
    }
    (chunks, None)
}

fn text_stream() -> Vec<SseEvent> {
    vec![
        ev(
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        ),
        ev(
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev(json!({"type": "ping"})),
        ev(
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ),
        ev(json!({"type": "content_block_stop", "index": 0})),
        ev(
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
        ),
        ev(json!({"type": "message_stop"})),
    ]
}

// --- provider, headers, model list ------------------------------------------------------

#[test]
fn requests_carry_anthropic_auth_and_version() {
    let up = provider()
        .encode_chat(&request(hello()), "claude-sonnet-4-5", true)
        .unwrap();
    assert_eq!(up.method, http::Method::POST);
    assert_eq!(up.url, "http://127.0.0.1:1/v1/messages");
    assert_eq!(up.headers["x-api-key"], "sk-ant-test");
    assert_eq!(up.headers["anthropic-version"], "2023-06-01");
    assert_eq!(up.headers["anthropic-beta"], "b1");
    assert_eq!(up.headers["content-type"], "application/json");
    assert!(up.headers.get("authorization").is_none());
    let body: Value = serde_json::from_slice(&up.body).unwrap();
    assert_eq!(body["stream"], true);

    let p = AnthropicProvider::new(
        "a",
        "https://api.anthropic.com/v1",
        Some(""),
        &[("anthropic-version".to_owned(), "2099-01-01".to_owned())],
    )
    .unwrap();
    let up = p.encode_chat(&request(hello()), "m", false).unwrap();
    assert!(
        up.headers.get("x-api-key").is_none(),
        "empty key: no header"
    );
    assert_eq!(up.headers["anthropic-version"], "2099-01-01");
    let body: Value = serde_json::from_slice(&up.body).unwrap();
    assert!(body.get("stream").is_none());

    assert!(AnthropicProvider::new("a", "x", Some("bad\nkey"), &[]).is_err());
    assert!(AnthropicProvider::new("a", "x", None, &[("bad name".into(), "v".into())]).is_err());
}

#[test]
fn model_list_request_and_answer() {
    let p = provider();
    let req = p.list_models_request().unwrap();
    assert_eq!(req.method, http::Method::GET);
    assert_eq!(req.url, "http://127.0.0.1:1/v1/models?limit=1000");
    assert_eq!(req.headers["x-api-key"], "sk-ant-test");
    assert!(req.headers.get("content-type").is_none());
    let body = br#"{"data":[{"type":"model","id":"claude-sonnet-4-5-20250929","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"},{"type":"model","id":"claude-haiku-4-5"}],"has_more":false,"first_id":"a","last_id":"b"}"#;
    assert_eq!(
        p.decode_model_list(body).unwrap(),
        ["claude-sonnet-4-5-20250929", "claude-haiku-4-5"]
    );
    let err = p.decode_model_list(b"{}").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
}

// --- encoding ---------------------------------------------------------------------------

#[test]
fn default_max_tokens_follow_the_model_family() {
    for (model, expected) in [
        ("claude-sonnet-4-5", 64_000),
        ("claude-sonnet-4-5-20250929", 64_000),
        ("claude-sonnet-4-20250514", 64_000),
        ("claude-sonnet-4-0", 64_000),
        ("claude-haiku-4-5-20251001", 64_000),
        ("claude-opus-4-5-20251101", 64_000),
        ("claude-opus-4-6", 64_000),
        ("claude-opus-4-1-20250805", 32_000),
        ("claude-opus-4-1@20250805", 32_000),
        ("claude-opus-4-20250514", 32_000),
        ("claude-opus-4-0", 32_000),
        ("claude-3-7-sonnet-20250219", 64_000),
        ("claude-3-5-sonnet-20241022", 8192),
        ("claude-3-5-haiku-latest", 8192),
        ("claude-3-opus-20240229", 4096),
        ("claude-3-haiku-20240307", 4096),
        ("claude-2.1", 4096),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", 8192),
        ("claude-sonnet-5", 64_000),
        ("my-finetune", 4096),
    ] {
        assert_eq!(default_max_tokens(model), expected, "{model}");
    }
}

#[test]
fn parameters_that_change_the_answer_are_refused_by_name() {
    for (key, value) in [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("frequency_penalty", json!(0.5)),
        ("presence_penalty", json!(-1)),
        ("logit_bias", json!({"50256": -100})),
        ("seed", json!(7)),
        ("audio", json!({"voice": "alloy", "format": "wav"})),
        ("modalities", json!(["text", "audio"])),
        ("prediction", json!({"type": "content", "content": "x"})),
        ("functions", json!([{"name": "f"}])),
        ("web_search_options", json!({})),
        ("verbosity", json!("low")),
    ] {
        let err = encode_err(with(hello(), key, value));
        assert_eq!((err.status(), err.param()), (400, Some(key)), "{key}");
        assert!(err.message().contains("Anthropic"), "{}", err.message());
    }
    // Neutral values are fine and not sent.
    let body = encode(json!({
        "model": "m", "messages": [{"role": "user", "content": "Hi"}],
        "n": 1, "logprobs": false, "top_logprobs": 0, "frequency_penalty": 0,
        "presence_penalty": 0.0, "logit_bias": {}, "modalities": ["text"], "audio": null,
        "prediction": null, "store": false, "prompt_cache_key": "k", "service_tier": "flex"
    }))
    .unwrap();
    for key in [
        "n",
        "logprobs",
        "top_logprobs",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "modalities",
        "audio",
        "prediction",
        "store",
        "prompt_cache_key",
        "service_tier",
    ] {
        assert!(body.get(key).is_none(), "{key} leaked: {body}");
    }
}

#[test]
fn unknown_fields_pass_through_without_overriding_built_ones() {
    let body = encode(json!({
        "model": "m", "messages": [{"role": "user", "content": "Hi"}],
        "container": "ctr_1", "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}],
        "inference_geo": "us", "context_management": {"edits": []}, "cache_control": {"type": "ephemeral"},
        "max_tokens": 10, "system": "sneaky", "service_tier": "auto"
    }))
    .unwrap();
    assert_eq!(body["container"], "ctr_1");
    assert_eq!(body["mcp_servers"][0]["name"], "x");
    assert_eq!(body["inference_geo"], "us");
    assert_eq!(body["context_management"], json!({"edits": []}));
    assert_eq!(body["cache_control"], json!({"type": "ephemeral"}));
    assert_eq!(body["service_tier"], "auto");
    assert_eq!(body["max_tokens"], 10);
    // No system message: the caller's Anthropic-style `system` is used as is.
    assert_eq!(body["system"], "sneaky");
    let body = encode(json!({
        "model": "m", "messages": [{"role": "system", "content": "real"}, {"role": "user", "content": "Hi"}],
        "system": "sneaky"
    }))
    .unwrap();
    assert_eq!(body["system"], "real");
}

#[test]
fn temperature_rules() {
    let err = encode_err(with(
        with(hello(), "temperature", json!(0.5)),
        "reasoning_effort",
        json!("low"),
    ));
    assert_eq!((err.status(), err.param()), (400, Some("temperature")));
    let err = encode_err(with(
        with(hello(), "temperature", json!(0)),
        "thinking",
        json!({"type": "adaptive"}),
    ));
    assert_eq!(err.param(), Some("temperature"));
    let err = encode_err(with(hello(), "temperature", json!(1.5)));
    assert_eq!(err.param(), Some("temperature"));
    let body = encode(with(
        with(hello(), "temperature", json!(1)),
        "reasoning_effort",
        json!("minimal"),
    ))
    .unwrap();
    assert_eq!(body["temperature"], 1);
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    // Disabled thinking puts no constraint on temperature.
    let body = encode(with(
        with(hello(), "temperature", json!(0.3)),
        "thinking",
        json!({"type": "disabled"}),
    ))
    .unwrap();
    assert_eq!(body["thinking"], json!({"type": "disabled"}));
    assert_eq!(body["temperature"], 0.3);
}

#[test]
fn reasoning_effort_budgets_and_max_tokens() {
    for (effort, budget) in [
        ("minimal", 1024),
        ("low", 2048),
        ("medium", 8192),
        ("high", 24_576),
    ] {
        let body = encode(with(hello(), "reasoning_effort", json!(effort))).unwrap();
        assert_eq!(body["thinking"]["budget_tokens"], budget, "{effort}");
        assert_eq!(
            body["max_tokens"], 64_000,
            "the model default is above every budget"
        );
    }
    let body = encode(with(hello(), "reasoning_effort", json!("none"))).unwrap();
    assert!(body.get("thinking").is_none());
    let err = encode_err(with(hello(), "reasoning_effort", json!("extreme")));
    assert_eq!(err.param(), Some("reasoning_effort"));
    // The caller's limit is kept for the answer, on top of the budget.
    let body = encode(with(
        with(hello(), "reasoning_effort", json!("medium")),
        "max_tokens",
        json!(500),
    ))
    .unwrap();
    assert_eq!(body["max_tokens"], 8192 + 500);
    // An explicit `thinking` wins over `reasoning_effort`.
    let body = encode(with(
        with(hello(), "reasoning_effort", json!("high")),
        "thinking",
        json!({"type": "enabled", "budget_tokens": 3000}),
    ))
    .unwrap();
    assert_eq!(body["thinking"]["budget_tokens"], 3000);
    let err = encode_err(with(hello(), "thinking", json!(true)));
    assert_eq!(err.param(), Some("thinking"));
}

#[test]
fn tool_errors_name_the_field() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let mut body = with(hello(), "tools", tools.clone());
    body["messages"] = json!([
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "t2", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
        ]}
    ]);
    let err = encode_err(body.clone());
    assert_eq!(
        err.param(),
        Some("messages[1].tool_calls[1].function.arguments")
    );
    body["messages"][1]["tool_calls"][1]["function"]["arguments"] = json!("[1, 2]");
    let err = encode_err(body);
    assert_eq!(
        err.param(),
        Some("messages[1].tool_calls[1].function.arguments")
    );

    let err = encode_err(with(
        hello(),
        "tools",
        json!([{"type": "function", "function": {"name": "f"}}, {"type": "custom", "custom": {"name": "c"}}]),
    ));
    assert_eq!(err.param(), Some("tools[1]"));

    let err = encode_err(with(hello(), "tool_choice", json!("required")));
    assert_eq!(
        err.param(),
        Some("tool_choice"),
        "forced choice without tools"
    );
    let body = encode(with(hello(), "tool_choice", json!("auto"))).unwrap();
    assert!(
        body.get("tool_choice").is_none(),
        "no tools: no tool_choice"
    );
    let err = encode_err(with(
        with(
            with(hello(), "tools", tools.clone()),
            "tool_choice",
            json!("required"),
        ),
        "reasoning_effort",
        json!("low"),
    ));
    assert_eq!(
        err.param(),
        Some("tool_choice"),
        "thinking forbids forced tools"
    );
    let err = encode_err(with(
        with(hello(), "tools", tools),
        "tool_choice",
        json!({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}),
    ));
    assert_eq!(err.param(), Some("tool_choice"));
}

#[test]
fn content_that_anthropic_cannot_read_is_refused_by_path() {
    let cases = [
        (
            json!([{"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]),
            "messages[0].content[0].input_audio",
        ),
        (
            json!([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAA"}}]),
            "messages[0].content[1].image_url.url",
        ),
        (
            json!([{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]),
            "messages[0].content[0].image_url.url",
        ),
        (
            json!([{"type": "file", "file": {"file_id": "file-abc"}}]),
            "messages[0].content[0].file.file_id",
        ),
        (
            json!([{"type": "file", "file": {"file_data": "data:application/zip;base64,UEsD"}}]),
            "messages[0].content[0].file.file_data",
        ),
        (
            json!([{"type": "file", "file": {"file_data": "UEsD", "filename": "a.zip"}}]),
            "messages[0].content[0].file.file_data",
        ),
    ];
    for (content, param) in cases {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": content}]});
        let err = encode_err(body);
        assert_eq!((err.status(), err.param()), (400, Some(param)));
    }
    // Bare base64 named `.pdf` is read as a PDF.
    let body = encode(
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_data": "JVBERi0x", "filename": "A.PDF"}}
        ]}]}),
    )
    .unwrap();
    assert_eq!(
        body["messages"][0]["content"][0]["source"]["media_type"],
        "application/pdf"
    );

    let err = encode_err(json!({"model": "m", "messages": [
        {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "user", "content": "Hi"}
    ]}));
    assert_eq!(err.param(), Some("messages[0].content[0]"));
    let err = encode_err(json!({"model": "m", "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "function", "name": "f", "content": "x"}
    ]}));
    assert_eq!(err.param(), Some("messages[1]"));
    let err = encode_err(json!({"model": "m", "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": null, "function_call": {"name": "f", "arguments": "{}"}}
    ]}));
    assert_eq!(err.param(), Some("messages[1].function_call"));
}

#[test]
fn json_object_is_refused_and_text_format_is_nothing() {
    let err = encode_err(with(
        hello(),
        "response_format",
        json!({"type": "json_object"}),
    ));
    assert_eq!((err.status(), err.param()), (400, Some("response_format")));
    let body = encode(with(hello(), "response_format", json!({"type": "text"}))).unwrap();
    assert!(body.get("output_config").is_none());
    let err = encode_err(with(
        hello(),
        "response_format",
        json!({"type": "json_schema", "json_schema": {"name": "x"}}),
    ));
    assert_eq!(err.param(), Some("response_format.json_schema.schema"));
}

#[test]
fn turns_alternate_and_leading_blocks_stay_first() {
    // A user message between the tool calls and their results (unusual but possible) must
    // not put text before the tool results in the merged user turn.
    let body = encode(json!({"model": "m", "tools": [{"type": "function", "function": {"name": "f"}}], "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "a", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "assistant", "content": "b", "thinking_blocks": [{"type": "redacted_thinking", "data": "R"}]},
        {"role": "user", "content": "wait"},
        {"role": "tool", "tool_call_id": "t1", "content": ""}
    ]}))
    .unwrap();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    let kinds = |m: &Value| -> Vec<String> {
        m["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["type"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        kinds(&messages[1]),
        ["redacted_thinking", "text", "tool_use", "text"]
    );
    assert_eq!(kinds(&messages[2]), ["tool_result", "text"]);
    assert!(
        messages[2]["content"][0].get("content").is_none(),
        "empty result: no content"
    );
}

// --- errors -----------------------------------------------------------------------------

#[test]
fn error_bodies_map_to_openai_statuses() {
    let p = provider();
    for (kind, http, status, retryable) in [
        ("invalid_request_error", 400, 400, false),
        ("authentication_error", 401, 401, false),
        ("billing_error", 402, 403, false),
        ("permission_error", 403, 403, false),
        ("not_found_error", 404, 404, false),
        ("request_too_large", 413, 413, false),
        ("rate_limit_error", 429, 429, true),
        ("api_error", 500, 500, true),
        ("timeout_error", 504, 504, true),
        ("overloaded_error", 529, 503, true),
        ("something_new", 418, 418, false),
    ] {
        let body = json!({"type": "error", "error": {"type": kind, "message": format!("msg {kind}")}, "request_id": "req_1"});
        let err = p.decode_error(http, &HeaderMap::new(), body.to_string().as_bytes());
        assert_eq!(err.status(), status, "{kind}");
        assert_eq!(err.is_retryable(), retryable, "{kind}");
        assert_eq!(err.message(), format!("msg {kind}"));
        assert_eq!(err.code(), Some(&json!(kind)));
        assert_eq!(err.provider(), Some("anthropic"));
        assert_eq!(
            err.to_body().error.kind.as_deref(),
            Some(err.kind().error_type())
        );
    }
    let err = p.decode_error(529, &HeaderMap::new(), b"<html>overloaded</html>");
    assert_eq!(
        (err.status(), err.kind()),
        (503, ErrorKind::ServiceUnavailable)
    );
    assert!(err.message().contains("<html>"));
    let err = p.decode_error(502, &HeaderMap::new(), b"");
    assert_eq!(err.status(), 502);

    let mut headers = HeaderMap::new();
    headers.insert("retry-after", http::HeaderValue::from_static("7"));
    let body = br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
    let err = p.decode_error(429, &headers, body);
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));
    assert_eq!(err.kind(), ErrorKind::RateLimit);
}

// --- responses and streams --------------------------------------------------------------

#[test]
fn malformed_answers_are_connection_errors() {
    let err = decode_message("anthropic", b"{\"id\":\"m\"}", 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.message().contains("model"), "{}", err.message());
    let (_, err) = run_stream(
        &[SseEvent {
            event: String::new(),
            data: "{nope".into(),
        }],
        true,
    );
    assert_eq!(err.unwrap().kind(), ErrorKind::Connection);
    let (_, err) = run_stream(
        &[SseEvent {
            event: "error".into(),
            data: "upstream exploded".into(),
        }],
        true,
    );
    let err = err.unwrap();
    assert_eq!(err.status(), 500);
    assert!(err.message().contains("upstream exploded"));
}

#[test]
fn stream_usage_chunk_only_when_asked() {
    let events = text_stream();
    let (chunks, err) = run_stream(&events, false);
    assert!(err.is_none());
    assert_eq!(chunks.len(), 3, "role, text, finish: {chunks:?}");
    assert!(
        chunks
            .iter()
            .all(|c| c.usage.is_none() && c.choices.len() == 1)
    );
    assert_eq!(
        chunks[1].choices[0].delta.content,
        Some(Some("Hi".to_owned()))
    );
    assert_eq!(chunks[2].choices[0].finish_reason, Some(FinishReason::Stop));
    assert!(
        chunks
            .iter()
            .all(|c| c.id == "msg_1" && c.model == "claude-x")
    );

    let (chunks, _) = run_stream(&events, true);
    let absent: Nullable<Usage> = None;
    assert!(chunks[..3].iter().all(|c| c.usage == absent));
    let usage = chunks[3].usage().unwrap();
    assert!(chunks[3].choices.is_empty());
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (3, 2, 5)
    );

    // Events after message_stop are ignored; a stream cut before it is an error.
    let mut d = AnthropicStreamDecoder::new("anthropic", StreamContext::default(), 0);
    for e in &events {
        d.on_event(e).unwrap();
    }
    assert!(d.is_done());
    assert!(d.on_event(&events[3]).unwrap().is_empty());
    let (chunks, err) = run_stream(&events[..4], true);
    assert_eq!(chunks.len(), 2);
    let err = err.unwrap();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.message().contains("message_stop"), "{}", err.message());
}

#[test]
fn stream_error_event_maps_like_an_error_body() {
    let mut events = text_stream();
    events.truncate(4);
    events.push(SseEvent {
        event: "error".into(),
        data: r#"{"type":"error","error":{"details":null,"type":"overloaded_error","message":"Overloaded"} }"#.into(),
    });
    let (chunks, err) = run_stream(&events, true);
    assert_eq!(chunks.len(), 2);
    let err = err.unwrap();
    assert_eq!(
        (err.status(), err.kind()),
        (503, ErrorKind::ServiceUnavailable)
    );
    assert!(err.is_retryable());
    assert_eq!(err.message(), "Overloaded");
    assert_eq!(err.code(), Some(&json!("overloaded_error")));
}
