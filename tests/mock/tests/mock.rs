//! Drives a real `MockServer` over HTTP on 127.0.0.1, the way the gateway and SDK tests will.

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

fn chat(extra: Value) -> Value {
    let mut body =
        json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "Hi there"}]});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

async fn post(server: &MockServer, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn post_json(server: &MockServer, body: &Value) -> Value {
    let response = post(server, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// The `data:` payloads of an SSE body, in order.
fn sse_events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .expect("every event is a data line")
                .to_owned()
        })
        .collect()
}

async fn stream(server: &MockServer, body: &Value) -> Vec<String> {
    let response = post(server, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    sse_events(&response.text().await.unwrap())
}

fn parse(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .filter(|event| *event != "[DONE]")
        .map(|event| serde_json::from_str(event).unwrap())
        .collect()
}

fn streamed_content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|chunk| chunk.pointer("/choices/0/delta/content")?.as_str())
        .collect()
}

#[tokio::test]
async fn plain_completion_has_openai_shape() {
    let server = start().await;
    let body = post_json(&server, &chat(json!({}))).await;
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "mock-gpt");
    assert_eq!(body["system_fingerprint"], "fp_mock");
    assert_eq!(body["service_tier"], "default");
    let choice = &body["choices"][0];
    let reply = "Hello from the mock provider! You said: Hi there";
    assert_eq!(
        choice["message"],
        json!({"role": "assistant", "content": reply, "refusal": null, "annotations": []})
    );
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["logprobs"], Value::Null);
    // "Hi there" is 8 chars: ceil(8 / 4) + 3 for the one message; the reply has 9 words.
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["completion_tokens"], 9);
    assert_eq!(body["usage"]["total_tokens"], 14);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        0
    );
}

#[tokio::test]
async fn content_knob_config_default_and_text_parts() {
    let config = MockConfig {
        content: Some("configured".into()),
        ..MockConfig::default()
    };
    let server = MockServer::start(config).await.unwrap();
    let body = post_json(&server, &chat(json!({}))).await;
    assert_eq!(body["choices"][0]["message"]["content"], "configured");
    let body = post_json(&server, &chat(json!({"mock": {"content": "per request"}}))).await;
    assert_eq!(body["choices"][0]["message"]["content"], "per request");

    let server = start().await;
    let parts = json!({"messages": [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "ignored"}
    ]});
    let body = post_json(&server, &chat(parts)).await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock provider! You said: a b"
    );
}

#[tokio::test]
async fn stream_with_usage_matches_openai_framing() {
    let server = start().await;
    let request = chat(json!({
        "stream": true,
        "stream_options": {"include_usage": true},
        "mock": {"content": "one two three"}
    }));
    let events = stream(&server, &request).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks = parse(&events);
    assert_eq!(chunks.len(), 6, "role, three words, finish, usage");
    let id = &chunks[0]["id"];
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(&chunk["id"], id);
        assert_eq!(chunk["created"], chunks[0]["created"]);
        assert_eq!(chunk["system_fingerprint"], "fp_mock");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    assert_eq!(streamed_content(&chunks), "one two three");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "one ");
    assert_eq!(chunks[4]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    for chunk in &chunks[..5] {
        assert_eq!(chunk.get("usage"), Some(&Value::Null));
    }
    let last = &chunks[5];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 3);
    assert_eq!(last["usage"]["total_tokens"], 8);
}

#[tokio::test]
async fn stream_without_usage_and_with_chunk_count() {
    let server = start().await;
    let content = "héllo wörld ✓";
    let request = chat(
        json!({"stream": true, "mock": {"content": content, "chunks": 4, "chunk_delay_ms": 5}}),
    );
    let events = stream(&server, &request).await;
    let chunks = parse(&events);
    assert_eq!(chunks.len(), 6, "role, four pieces, finish");
    assert!(chunks.iter().all(|chunk| chunk.get("usage").is_none()));
    assert_eq!(streamed_content(&chunks), content);
}

#[tokio::test]
async fn tool_call_stream_sends_arguments_in_pieces() {
    let server = start().await;
    let tools = json!([{"type": "function", "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}, "days": {"type": "integer"}},
            "required": ["city", "unit", "days"]
        }
    }}]);
    let events = stream(&server, &chat(json!({"stream": true, "tools": tools}))).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks = parse(&events);
    let opening = &chunks[0]["choices"][0]["delta"];
    assert_eq!(opening["role"], "assistant");
    let call = &opening["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert!(call["id"].as_str().unwrap().starts_with("call_mock_"));
    assert_eq!(call["type"], "function");
    assert_eq!(
        call["function"],
        json!({"name": "get_weather", "arguments": ""})
    );

    let pieces: Vec<&str> = chunks[1..]
        .iter()
        .filter_map(|chunk| {
            chunk
                .pointer("/choices/0/delta/tool_calls/0/function/arguments")?
                .as_str()
        })
        .collect();
    assert!(pieces.len() >= 3, "{pieces:?}");
    let arguments: Value = serde_json::from_str(&pieces.concat()).unwrap();
    assert_eq!(arguments, json!({"city": "mock", "unit": "c", "days": 1}));
    let finish = &chunks[chunks.len() - 1]["choices"][0];
    assert_eq!(finish["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn tool_call_knob_parallel_and_auto_rules() {
    let server = start().await;
    let tools = json!([
        {"type": "function", "function": {"name": "first", "parameters": {"type": "object", "properties": {}}}},
        {"type": "function", "function": {"name": "second", "parameters": {"properties": {"flag": {"type": "boolean"}}}}}
    ]);
    let forced = json!({"tools": tools, "tool_choice": {"type": "function", "function": {"name": "second"}},
                        "mock": {"tool_call": {"parallel": 2}}});
    let body = post_json(&server, &chat(forced)).await;
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    for call in calls {
        assert_eq!(call["function"]["name"], "second");
        assert_eq!(call["function"]["arguments"], r#"{"flag":true}"#);
    }

    let explicit = json!({"mock": {"tool_call": {"name": "lookup", "arguments": {"q": "x"}}}});
    let body = post_json(&server, &chat(explicit)).await;
    let call = &body["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "lookup");
    assert_eq!(call["arguments"], r#"{"q":"x"}"#);

    let none = json!({"tools": tools, "tool_choice": "none"});
    let body = post_json(&server, &chat(none)).await;
    assert_eq!(body["choices"][0]["finish_reason"], "stop");

    let after_tool = json!({"tools": tools, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "first", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    ]});
    let body = post_json(&server, &chat(after_tool)).await;
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn status_knob_sets_error_body_and_retry_headers() {
    let server = start().await;
    let request = chat(json!({"mock": {"status": 429, "retry_after": 2, "retry_after_ms": 1500}}));
    let response = post(&server, &request).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "2");
    assert_eq!(response.headers()["retry-after-ms"], "1500");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "mock error 429");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["param"], Value::Null);

    let response = post(
        &server,
        &chat(json!({"stream": true, "mock": {"status": 401}})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "invalid_api_key");

    let custom = chat(json!({"mock": {"status": 500, "body": {"oops": true}}}));
    let response = post(&server, &custom).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"oops": true})
    );
}

#[tokio::test]
async fn fail_first_fails_then_recovers_per_key() {
    let server = start().await;
    let flaky = chat(json!({"mock": {"fail_first": 2, "key": "a"}}));
    assert_eq!(
        post(&server, &flaky).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let other = chat(json!({"mock": {"fail_first": 1, "key": "b", "status": 500}}));
    assert_eq!(
        post(&server, &other).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let body: Value = post(&server, &flaky).await.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(post(&server, &flaky).await.status(), StatusCode::OK);
    assert_eq!(post(&server, &other).await.status(), StatusCode::OK);

    // Counters belong to one server: a fresh one fails again.
    let fresh = start().await;
    assert_eq!(
        post(&fresh, &flaky).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn drop_after_breaks_the_connection() {
    let server = start().await;
    let request = chat(json!({"stream": true, "mock": {"drop_after": 2}}));
    let mut response = post(&server, &request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = Vec::new();
    let error = loop {
        match response.chunk().await {
            Ok(Some(bytes)) => received.extend_from_slice(&bytes),
            Ok(None) => panic!("a dropped stream must not end cleanly"),
            Err(error) => break error,
        }
    };
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    let events = sse_events(std::str::from_utf8(&received).unwrap());
    assert_eq!(
        events.len(),
        2,
        "the events before the drop arrive: {events:?}"
    );

    let response = post(&server, &chat(json!({"mock": {"drop_after": 1}}))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.bytes().await.is_err(),
        "a dropped body must not end cleanly"
    );

    // The server survives a dropped connection.
    assert_eq!(
        post(&server, &chat(json!({}))).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn malformed_body_and_stream_event() {
    let server = start().await;
    let response = post(&server, &chat(json!({"mock": {"malformed": true}}))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    let events = stream(
        &server,
        &chat(json!({"stream": true, "mock": {"malformed": true}})),
    )
    .await;
    let bad = events
        .iter()
        .position(|event| event == "{not json")
        .unwrap();
    assert!(bad > 0 && bad < events.len() - 1);
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn truncate_ends_cleanly_without_finish_or_done() {
    let server = start().await;
    let request = chat(json!({"stream": true, "mock": {"truncate": true, "content": "a b c d"}}));
    let events = stream(&server, &request).await;
    assert!(!events.iter().any(|event| event == "[DONE]"));
    let chunks = parse(&events);
    assert!(
        chunks
            .iter()
            .all(|chunk| chunk["choices"][0]["finish_reason"].is_null())
    );
    assert_eq!(streamed_content(&chunks), "a b ");
}

#[tokio::test]
async fn stream_error_event_follows_first_content_chunk() {
    let server = start().await;
    let error = json!({"message": "overloaded", "type": "server_error"});
    let events = stream(
        &server,
        &chat(json!({"stream": true, "mock": {"stream_error": error}})),
    )
    .await;
    assert_eq!(events.len(), 3, "role, first word, error");
    let last: Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(last, json!({"error": error}));
}

#[tokio::test]
async fn n_choices_and_max_tokens() {
    let server = start().await;
    let body = post_json(&server, &chat(json!({"n": 2, "mock": {"content": "x y"}}))).await;
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[1]["index"], 1);
    assert_eq!(choices[1]["message"]["content"], "x y");
    assert_eq!(body["usage"]["completion_tokens"], 4);

    let limited = chat(json!({"max_tokens": 2, "mock": {"content": "one two three four"}}));
    let body = post_json(&server, &limited).await;
    assert_eq!(body["choices"][0]["message"]["content"], "one two");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let limited = chat(
        json!({"max_completion_tokens": 3, "stream": true, "mock": {"content": "one two three four"}}),
    );
    let chunks = parse(&stream(&server, &limited).await);
    assert_eq!(streamed_content(&chunks), "one two three");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
}

#[tokio::test]
async fn usage_knob_merges_into_computed_usage() {
    let server = start().await;
    let request = chat(json!({"mock": {"usage": {"prompt_tokens_details": {"cached_tokens": 3}}}}));
    let body = post_json(&server, &request).await;
    assert_eq!(
        body["usage"]["prompt_tokens_details"],
        json!({"cached_tokens": 3, "audio_tokens": 0})
    );
    assert_eq!(body["usage"]["prompt_tokens"], 5);
}

#[tokio::test]
async fn first_byte_delay_holds_the_headers() {
    let server = start().await;
    let started = Instant::now();
    let response = post(
        &server,
        &chat(json!({"mock": {"first_byte_delay_ms": 150}})),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn model_directives_steer_openai_and_the_mock_object_wins() {
    let server = start().await;
    let request = chat(json!({"model": "mock-gpt~status=429~retry_after=2"}));
    let response = post(&server, &request).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    let overridden = chat(json!({"model": "mock-gpt~status=429", "mock": {"status": 500}}));
    assert_eq!(
        post(&server, &overridden).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );

    let tools =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let off = chat(json!({"model": "mock-gpt~no_tool_call", "tools": tools}));
    let body = post_json(&server, &off).await;
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["model"], "mock-gpt~no_tool_call",
        "the model id is echoed as sent"
    );
    let on = chat(json!({"model": "mock-gpt~tool_call~parallel=2"}));
    let body = post_json(&server, &on).await;
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let events = stream(
        &server,
        &chat(json!({"model": "mock-gpt~chunks=2~truncate", "stream": true, "mock": {"content": "a b c d"}})),
    )
    .await;
    assert!(!events.iter().any(|event| event == "[DONE]"));
    assert_eq!(streamed_content(&parse(&events)), "a b ");

    let response = post(&server, &chat(json!({"model": "mock-gpt~frobnicate"}))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "model");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("~frobnicate")
    );
}

#[tokio::test]
async fn thinking_directive_adds_reasoning_content() {
    let server = start().await;
    let body = post_json(&server, &chat(json!({"model": "mock-gpt~thinking"}))).await;
    let message = &body["choices"][0]["message"];
    let reasoning = message["reasoning_content"].as_str().unwrap();
    assert!(reasoning.contains("Hi there"), "{reasoning}");
    let reasoning_tokens = reasoning.split_whitespace().count();
    let usage = &body["usage"];
    assert_eq!(
        usage["completion_tokens_details"]["reasoning_tokens"],
        reasoning_tokens
    );
    assert_eq!(usage["completion_tokens"], 9 + reasoning_tokens);

    let events = stream(
        &server,
        &chat(json!({"model": "mock-gpt~thinking", "stream": true})),
    )
    .await;
    let chunks = parse(&events);
    let streamed: String = chunks
        .iter()
        .filter_map(|chunk| {
            chunk
                .pointer("/choices/0/delta/reasoning_content")?
                .as_str()
        })
        .collect();
    assert_eq!(streamed, reasoning);
    let first_content = chunks
        .iter()
        .position(|chunk| {
            chunk
                .pointer("/choices/0/delta/content")
                .is_some_and(|c| c != "")
        })
        .unwrap();
    let last_reasoning = chunks
        .iter()
        .rposition(|chunk| {
            chunk
                .pointer("/choices/0/delta/reasoning_content")
                .is_some()
        })
        .unwrap();
    assert!(last_reasoning < first_content);

    // A bare `~stream_error` sends a default error object after the first content chunk.
    let events = stream(
        &server,
        &chat(json!({"model": "mock-gpt~thinking~stream_error", "stream": true})),
    )
    .await;
    let chunks = parse(&events);
    let last = chunks.last().unwrap();
    assert_eq!(last["error"]["type"], "server_error");
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["delta"]["content"],
        "Hello "
    );
}

#[tokio::test]
async fn requests_are_recorded_and_clearable() {
    let server = start().await;
    let request = chat(json!({"temperature": 0.5}));
    let response = client()
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth("sk-test")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    client()
        .get(format!("{}/models", server.base_url()))
        .send()
        .await
        .unwrap();

    let recorded = server.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    assert_eq!(recorded[0].header("Authorization"), Some("Bearer sk-test"));
    assert_eq!(recorded[0].body, request);
    assert_eq!(recorded[1].path, "/v1/models");
    assert_eq!(recorded[1].body, Value::Null);

    let url = format!("http://{}/mock/requests", server.addr());
    let listed: Value = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["path"], "/v1/chat/completions");
    assert_eq!(listed[0]["body"], request);
    assert_eq!(
        listed.as_array().unwrap().len(),
        2,
        "control requests are not recorded"
    );
    assert!(
        client()
            .delete(&url)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn models_and_errors() {
    let server = start().await;
    let models: Value = client()
        .get(format!("{}/models", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "mock-gpt");
    assert_eq!(models["data"][1]["id"], "mock-gpt-mini");
    assert_eq!(models["data"][0]["owned_by"], "opengateway-mock");

    let url = format!("{}/chat/completions", server.base_url());
    let response = client().post(&url).body("{not json").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let response = post(&server, &json!({"messages": []})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["param"],
        "model"
    );
    let response = post(&server, &json!({"model": "mock-gpt"})).await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["param"],
        "messages"
    );

    let response = client()
        .get(format!("{}/nope", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Invalid URL (GET /v1/nope)");
    assert_eq!(body["error"]["code"], Value::Null);

    // The bare path works too, for clients configured without the /v1 prefix.
    let bare = format!("http://{}/chat/completions", server.addr());
    let response = client()
        .post(bare)
        .json(&chat(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn shutdown_and_drop_stop_the_server() {
    let server = start().await;
    let url = format!("{}/models", server.base_url());
    assert!(client().get(&url).send().await.is_ok());
    server.shutdown().await;
    assert!(client().get(&url).send().await.is_err());

    let server = start().await;
    let url = format!("{}/models", server.base_url());
    drop(server);
    // Abort is asynchronous: give the runtime a bounded moment to close the listener.
    let deadline = Instant::now() + Duration::from_secs(5);
    while client().get(&url).send().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "server still answering after drop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(unix)]
#[tokio::test]
async fn binary_announces_its_port_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut child = Command::new(env!("CARGO_BIN_EXE_opengateway-mock"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--content",
            "from the binary",
            "--fixtures",
            "/nonexistent/mock-fixtures",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let read_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(10), read_line)
        .await
        .expect("the binary announces itself in time")
        .unwrap()
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");

    let url = format!("{base}/v1/chat/completions");
    let body: Value = client()
        .post(url)
        .json(&chat(json!({})))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "from the binary");
    let fixture = chat(json!({"model": "fixture--openai--chat-text-basic"}));
    let response = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(&fixture)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("/nonexistent/mock-fixtures/openai/chat-text-basic"),
        "{message}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the binary ignored SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit}");
}

/// Every usage directive, in OpenAI's meaning.
const PINS: &str = "~prompt_tokens=1000~cached_tokens=400~cache_write_tokens=100~completion_tokens=50~reasoning_tokens=30";

#[tokio::test]
async fn usage_directives_and_knobs_pin_openai_usage() {
    let server = start().await;
    let check = |usage: &Value| {
        assert_eq!(usage["prompt_tokens"], 1000, "{usage}");
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 400);
        // Reasoning counts inside completion_tokens; OpenAI has no cache-write count.
        assert_eq!(usage["completion_tokens"], 80);
        assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 30);
        assert_eq!(usage["total_tokens"], 1080);
    };
    let knobs = json!({"prompt_tokens": 1000, "cached_tokens": 400, "cache_write_tokens": 100,
                       "completion_tokens": 50, "reasoning_tokens": 30});
    let model = format!("mock-gpt{PINS}");
    // Directives, the same knobs in the mock object, and pins as totals over several choices.
    for extra in [
        json!({"model": model}),
        json!({"mock": knobs}),
        json!({"model": model, "n": 3, "mock": {"thinking": true}}),
    ] {
        let body = post_json(&server, &chat(extra.clone())).await;
        check(&body["usage"]);

        let mut streamed = chat(extra);
        streamed["stream"] = json!(true);
        streamed["stream_options"] = json!({"include_usage": true});
        let chunks = parse(&stream(&server, &streamed).await);
        check(&chunks.last().unwrap()["usage"]);
    }

    // A directive not given keeps the computed part.
    let body = post_json(
        &server,
        &chat(json!({"model": "mock-gpt~cached_tokens=40"})),
    )
    .await;
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 40);
    assert_eq!(body["usage"]["completion_tokens"], 9);
    assert_eq!(body["usage"]["total_tokens"], 14);
    // The `usage` object still merges over the pinned usage.
    let request = chat(json!({"model": model, "mock": {"usage": {"completion_tokens": 7}}}));
    let body = post_json(&server, &request).await;
    assert_eq!(body["usage"]["prompt_tokens"], 1000);
    assert_eq!(body["usage"]["completion_tokens"], 7);
    assert_eq!(body["usage"]["total_tokens"], 1007);
}
