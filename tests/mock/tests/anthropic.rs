//! The Anthropic Messages endpoint over real HTTP: shapes, event order, tools, errors, directives.

// Helpers outside `#[test]` fns are test code too; a panic is the right failure there.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use opengateway_mock::{MockConfig, MockServer};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn start() -> MockServer {
    MockServer::start(MockConfig::default()).await.unwrap()
}

fn request(extra: Value) -> Value {
    let mut body = json!({
        "model": "mock-claude",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hi there"}]
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

fn weather_tools() -> Value {
    json!([{
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"]
        }
    }])
}

async fn post(server: &MockServer, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/messages", server.base_url()))
        .header("x-api-key", "sk-ant-test")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn post_json(server: &MockServer, body: &Value) -> Value {
    let response = post(server, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

/// `(event name, parsed data)` of each SSE event, checking the `event:` name matches `data.type`.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            let (name, data) = event.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str(), "{event}");
            (name, data)
        })
        .collect()
}

async fn stream(server: &MockServer, body: &Value) -> Vec<(String, Value)> {
    let response = post(server, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    events(&response.text().await.unwrap())
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

/// Concatenated `field` of the deltas of type `kind`.
fn deltas(events: &[(String, Value)], kind: &str, field: &str) -> Vec<String> {
    events
        .iter()
        .filter(|(_, data)| data["delta"]["type"] == kind)
        .map(|(_, data)| data["delta"][field].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn message_has_anthropic_shape() {
    let server = start().await;
    let body = request(json!({
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}]
    }));
    let message = post_json(&server, &body).await;
    assert!(
        message["id"].as_str().unwrap().starts_with("msg_mock_"),
        "{message}"
    );
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "mock-claude");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Hello from the mock provider! You said: Hi there"}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["stop_sequence"], Value::Null);
    // "Be brief." + "Hi there" = 17 chars: ceil(17 / 4) + 3 for the one message; 9 words out.
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 8, "output_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
    );

    let recorded = server.requests();
    assert_eq!(recorded[0].path, "/v1/messages");
    assert_eq!(recorded[0].header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(recorded[0].body, body);

    // The bare path works too.
    let response = client()
        .post(format!("http://{}/messages", server.addr()))
        .json(&request(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn thinking_block_comes_first_and_counts_as_output() {
    let server = start().await;
    let body = request(json!({"thinking": {"type": "enabled", "budget_tokens": 512}}));
    let message = post_json(&server, &body).await;
    let content = message["content"].as_array().unwrap();
    assert_eq!(content.len(), 2);
    assert_eq!(content[0]["type"], "thinking");
    let thinking = content[0]["thinking"].as_str().unwrap();
    assert!(thinking.contains("Hi there"), "{thinking}");
    assert!(!content[0]["signature"].as_str().unwrap().is_empty());
    assert_eq!(content[1]["type"], "text");
    let words = thinking.split_whitespace().count() + 9;
    assert_eq!(message["usage"]["output_tokens"], words);

    // The directive turns thinking on without the request asking.
    let message = post_json(&server, &request(json!({"model": "mock-claude~thinking"}))).await;
    assert_eq!(message["content"][0]["type"], "thinking");
    let message = post_json(
        &server,
        &request(json!({"model": "mock-claude~no_thinking", "thinking": {"type": "enabled", "budget_tokens": 512}})),
    )
    .await;
    assert_eq!(message["content"][0]["type"], "text");
}

#[tokio::test]
async fn max_tokens_cuts_the_text() {
    let server = start().await;
    let message = post_json(&server, &request(json!({"max_tokens": 3}))).await;
    assert_eq!(message["content"][0]["text"], "Hello from the");
    assert_eq!(message["stop_reason"], "max_tokens");
    assert_eq!(message["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn text_stream_events_come_in_anthropic_order() {
    let server = start().await;
    let events = stream(&server, &request(json!({"stream": true}))).await;
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(["content_block_delta"; 9]);
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names(&events), expected);

    let start = &events[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_mock_"));
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["input_tokens"], 5);
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert!(
        events[1..12]
            .iter()
            .all(|(_, data)| data["index"] == 0 || data["type"] == "ping")
    );
    assert_eq!(
        deltas(&events, "text_delta", "text").concat(),
        "Hello from the mock provider! You said: Hi there"
    );
    let delta = &events[13].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["delta"]["stop_sequence"], Value::Null);
    assert_eq!(delta["usage"]["output_tokens"], 9);
}

#[tokio::test]
async fn thinking_stream_signs_its_block_before_the_text() {
    let server = start().await;
    let body = request(
        json!({"stream": true, "thinking": {"type": "enabled", "budget_tokens": 512},
                              "model": "mock-claude~chunks=2"}),
    );
    let events = stream(&server, &body).await;
    let names = names(&events);
    assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    let thinking = deltas(&events, "thinking_delta", "thinking").concat();
    assert!(thinking.contains("Hi there"), "{thinking}");
    let signatures = deltas(&events, "signature_delta", "signature");
    assert_eq!(signatures.len(), 1);
    // The signature closes the thinking block; the text block follows at index 1.
    let signature_at = events
        .iter()
        .position(|(_, data)| data["delta"]["type"] == "signature_delta")
        .unwrap();
    assert_eq!(events[signature_at + 1].0, "content_block_stop");
    assert_eq!(events[signature_at + 1].1["index"], 0);
    assert_eq!(events[signature_at + 2].1["content_block"]["type"], "text");
    assert_eq!(events[signature_at + 2].1["index"], 1);
    assert_eq!(
        deltas(&events, "text_delta", "text").len(),
        2,
        "~chunks=2 splits the text in two"
    );
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
}

#[tokio::test]
async fn tool_use_streams_input_json_in_pieces() {
    let server = start().await;
    let events = stream(
        &server,
        &request(json!({"stream": true, "tools": weather_tools()})),
    )
    .await;
    let block = &events[1].1["content_block"];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_mock_"));
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({}));
    assert_eq!(events[2].0, "ping");
    let pieces = deltas(&events, "input_json_delta", "partial_json");
    assert!(pieces.len() >= 3, "{pieces:?}");
    assert_eq!(pieces[0], "", "Anthropic opens with an empty fragment");
    let input: Value = serde_json::from_str(&pieces.concat()).unwrap();
    assert_eq!(input, json!({"city": "mock", "unit": "c"}));
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(events.last().unwrap().0, "message_stop");
}

#[tokio::test]
async fn tool_rules_match_the_openai_mode() {
    let server = start().await;
    let tools = weather_tools();
    let message = post_json(&server, &request(json!({"tools": tools}))).await;
    assert_eq!(message["stop_reason"], "tool_use");
    let call = &message["content"][0];
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["input"], json!({"city": "mock", "unit": "c"}));

    let none = request(json!({"tools": tools, "tool_choice": {"type": "none"}}));
    assert_eq!(post_json(&server, &none).await["stop_reason"], "end_turn");

    let after_result = request(json!({"tools": tools, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris", "unit": "c"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}
    ]}));
    let message = post_json(&server, &after_result).await;
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(
        message["content"][0]["text"],
        "Hello from the mock provider! You said: weather?"
    );

    let two = json!([
        {"name": "first", "input_schema": {"type": "object", "properties": {}}},
        {"name": "second", "input_schema": {"type": "object", "properties": {"flag": {"type": "boolean"}}}}
    ]);
    let named = request(json!({"tools": two, "tool_choice": {"type": "tool", "name": "second"}}));
    let message = post_json(&server, &named).await;
    assert_eq!(message["content"][0]["name"], "second");
    assert_eq!(message["content"][0]["input"], json!({"flag": true}));

    let off = request(json!({"tools": tools, "model": "mock-claude~no_tool_call"}));
    assert_eq!(post_json(&server, &off).await["stop_reason"], "end_turn");
    let forced = request(json!({"model": "mock-claude~tool_call~parallel=2"}));
    let message = post_json(&server, &forced).await;
    let content = message["content"].as_array().unwrap();
    assert_eq!(content.len(), 2);
    assert_eq!(content[0]["name"], "mock_tool");
    assert_ne!(content[0]["id"], content[1]["id"]);
}

#[tokio::test]
async fn status_directive_uses_anthropic_error_types() {
    let server = start().await;
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ] {
        let model = format!("mock-claude~status={status}~retry_after=7");
        let response = post(&server, &request(json!({"model": model, "stream": true}))).await;
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["retry-after"], "7");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": kind, "message": format!("mock error {status}")}, "request_id": "req_mock"})
        );
    }
}

#[tokio::test]
async fn bad_requests_get_anthropic_errors() {
    let server = start().await;
    let mut body = request(json!({}));
    body.as_object_mut().unwrap().remove("max_tokens");
    let response = post(&server, &body).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["message"], "max_tokens: Field required");

    let response = post(
        &server,
        &request(json!({"model": "mock-claude~stauts=429"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("~stauts=429"), "{message}");

    let response = client()
        .post(format!("{}/messages/batches", server.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn stream_error_directive_sends_an_overloaded_event_and_closes() {
    let server = start().await;
    let body = request(json!({"stream": true, "model": "mock-claude~stream_error"}));
    let events = stream(&server, &body).await;
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(events[3].1["delta"]["type"], "text_delta");
    let error = &events[4].1;
    assert_eq!(error["error"]["type"], "overloaded_error");
    assert_eq!(error["error"]["message"], "Overloaded");
}

#[tokio::test]
async fn truncate_drop_after_and_fail_first_directives() {
    let server = start().await;
    let body = request(json!({"stream": true, "model": "mock-claude~truncate"}));
    let truncated = stream(&server, &body).await;
    let seen = names(&truncated);
    assert!(!seen.contains(&"message_delta") && !seen.contains(&"message_stop"));
    assert!(seen.contains(&"content_block_delta"));

    let body = request(json!({"stream": true, "model": "mock-claude~drop_after=3"}));
    let mut response = post(&server, &body).await;
    let mut received = Vec::new();
    let error = loop {
        match response.chunk().await {
            Ok(Some(bytes)) => received.extend_from_slice(&bytes),
            Ok(None) => panic!("a dropped stream must not end cleanly"),
            Err(error) => break error,
        }
    };
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    let got = events(std::str::from_utf8(&received).unwrap());
    assert_eq!(
        names(&got),
        ["message_start", "content_block_start", "ping"]
    );
    let response = post(
        &server,
        &request(json!({"model": "mock-claude~drop_after=1"})),
    )
    .await;
    assert!(response.bytes().await.is_err());

    let flaky = request(json!({"model": "mock-claude~fail_first=1~key=anthropic~status=529"}));
    assert_eq!(post(&server, &flaky).await.status().as_u16(), 529);
    assert_eq!(post(&server, &flaky).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn delay_directives_pace_the_answer() {
    let server = start().await;
    let started = Instant::now();
    let body = request(
        json!({"model": "mock-claude~first_byte_delay_ms=120~chunk_delay_ms=10~chunks=4", "stream": true}),
    );
    let events = stream(&server, &body).await;
    // 120 ms before the headers, then 10 ms between each of the 10 events.
    assert!(
        started.elapsed() >= Duration::from_millis(210),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(deltas(&events, "text_delta", "text").len(), 4);
}

/// Every usage directive, in OpenAI's meaning.
const PINS: &str = "~prompt_tokens=1000~cached_tokens=400~cache_write_tokens=100~completion_tokens=50~reasoning_tokens=30";

#[tokio::test]
async fn usage_directives_pin_usage_in_anthropic_terms() {
    let server = start().await;
    let model = format!("mock-claude{PINS}");
    // input_tokens leaves out cache reads and writes; output_tokens includes thinking.
    let expected = json!({
        "input_tokens": 500,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 400,
        "output_tokens": 80
    });
    let thinking = json!({"type": "enabled", "budget_tokens": 512});
    for extra in [json!({}), json!({"thinking": thinking})] {
        let mut body = request(extra);
        body["model"] = json!(model);
        let message = post_json(&server, &body).await;
        assert_eq!(message["usage"], expected);

        body["stream"] = json!(true);
        let events = stream(&server, &body).await;
        let (start, delta) = (&events[0], &events[events.len() - 2]);
        assert_eq!(start.0, "message_start");
        let mut opening = expected.clone();
        opening["output_tokens"] = json!(1);
        assert_eq!(start.1["message"]["usage"], opening);
        assert_eq!(delta.0, "message_delta");
        assert_eq!(delta.1["usage"], json!({"output_tokens": 80}));
    }

    // A directive not given keeps the computed part; cache counts past the prompt leave no
    // uncached input rather than underflowing.
    let message = post_json(
        &server,
        &request(json!({"model": "mock-claude~cached_tokens=40"})),
    )
    .await;
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 0, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 40, "output_tokens": 9})
    );
    let message = post_json(
        &server,
        &request(json!({"model": "mock-claude~prompt_tokens=100~cache_write_tokens=30"})),
    )
    .await;
    assert_eq!(message["usage"]["input_tokens"], 70);
    assert_eq!(message["usage"]["cache_creation_input_tokens"], 30);
}
