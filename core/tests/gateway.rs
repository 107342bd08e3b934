//! The gateway against the mock provider over real HTTP on 127.0.0.1: routing, fallback,
//! streaming, error mapping and pass-through.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use opengateway::config::Config;
use opengateway::types::{ChatCompletionChunk, ChatCompletionRequest, FinishReason};
use opengateway::{CallContext, ErrorKind, Gateway};
use opengateway_mock::{MockConfig, MockServer};
use serde_json::{Value, json};

/// A port nothing listens on: bound, then released.
fn dead_base_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/v1")
}

fn gateway(yaml: &str) -> Gateway {
    Gateway::from_config(Config::from_yaml(yaml).unwrap()).unwrap()
}

fn mock_gateway(mock: &MockServer, extra: &str) -> Gateway {
    gateway(&format!(
        "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k, connect_timeout_ms: 2000 }}\n  dead: {{ type: openai, api_base: \"{}\", api_key: k }}\nrouter: {{ retries: 0, timeout_ms: 5000 }}\n{extra}",
        mock.base_url(),
        dead_base_url()
    ))
}

fn request(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello"}]})
}

async fn collect(
    stream: opengateway::ChatStream,
) -> (Vec<ChatCompletionChunk>, Option<opengateway::Error>) {
    let mut chunks = Vec::new();
    let mut stream = Box::pin(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(c) => chunks.push(c),
            Err(e) => return (chunks, Some(e)),
        }
    }
    (chunks, None)
}

fn text_of(chunks: &[ChatCompletionChunk]) -> String {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.clone().flatten())
        .collect()
}

#[tokio::test]
async fn completion_carries_provider_cost_and_route() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(&mock, "");
    let answer = gw.chat(request(hello("mock/mock-gpt"))).await.unwrap();
    let message = &answer.choices[0].message;
    assert_eq!(
        message.content.as_deref(),
        Some("Hello from the mock provider! You said: Hello")
    );
    assert_eq!(answer.provider.as_deref(), Some("mock"));
    assert_eq!(answer.choices[0].finish_reason, Some(FinishReason::Stop));
    let usage = answer.usage.as_ref().unwrap();
    assert_eq!(usage.cost, Some(0.0));
    assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    assert_eq!(answer.route.provider, "mock");
    assert_eq!(answer.route.model, "mock-gpt");
    assert_eq!(answer.route.attempts.len(), 1);
    assert_eq!(answer.route.attempts[0].status, Some(200));
    let sent = mock.requests();
    assert_eq!(sent.last().unwrap().body["model"], "mock-gpt");
    assert_eq!(
        sent.last().unwrap().header("authorization"),
        Some("Bearer k")
    );
}

#[tokio::test]
async fn unknown_fields_reach_the_provider_unchanged_and_gateway_fields_do_not() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(&mock, "");
    let mut body = hello("mock/mock-gpt");
    body["x_custom"] = json!({"a": [1, 2.5, null], "b": "ü"});
    body["temperature"] = json!(1);
    body["fallbacks"] = json!(["mock/other"]);
    gw.chat(request(body)).await.unwrap();
    let sent = mock.requests().last().unwrap().body.clone();
    assert_eq!(sent["x_custom"], json!({"a": [1, 2.5, null], "b": "ü"}));
    assert_eq!(sent["temperature"], json!(1));
    assert!(sent.get("fallbacks").is_none() && sent.get("models").is_none());
}

#[tokio::test]
async fn alias_falls_back_past_an_unreachable_provider() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(
        &mock,
        "models:\n  - name: smart\n    targets: [dead/gpt-4o, mock/mock-gpt]\n",
    );
    let answer = gw.chat(request(hello("smart"))).await.unwrap();
    assert_eq!(answer.route.provider, "mock");
    let attempts = &answer.route.attempts;
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].provider, "dead");
    assert_eq!(
        attempts[0].error_type.as_deref(),
        Some("api_connection_error")
    );
    assert!(
        attempts[0]
            .error_message
            .as_deref()
            .unwrap()
            .contains("cannot connect")
    );
    assert_eq!(attempts[1].error_type, None);
}

#[tokio::test]
async fn request_level_models_are_tried_after_model() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(&mock, "");
    let mut body = hello("mock/first");
    body["models"] = json!(["mock/second"]);
    body["mock"] = json!({"fail_first": 1, "key": "req-level", "status": 503});
    let answer = gw.chat(request(body)).await.unwrap();
    assert_eq!(answer.route.model, "second");
    assert_eq!(answer.route.attempts[0].status, Some(503));
}

#[tokio::test]
async fn retries_a_retryable_error_on_the_same_target() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&format!(
        "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\nrouter: {{ retries: 1 }}\n",
        mock.base_url()
    ));
    let mut body = hello("mock/mock-gpt");
    body["mock"] =
        json!({"fail_first": 1, "key": "retry-same", "status": 429, "retry_after_ms": 10});
    let answer = gw.chat(request(body)).await.unwrap();
    let statuses: Vec<_> = answer.route.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![Some(429), Some(200)]);
}

#[tokio::test]
async fn client_errors_end_at_once_with_the_upstream_status_and_body() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(
        &mock,
        "models:\n  - name: smart\n    targets: [mock/a, mock/b]\n",
    );
    let mut body = hello("smart");
    body["mock"] = json!({"status": 400, "body": {"error": {"message": "bad thing", "type": "invalid_request_error", "param": "messages", "code": "bad"}}});
    let err = gw.chat(request(body)).await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert_eq!(err.message(), "bad thing");
    assert_eq!(err.param(), Some("messages"));
    assert_eq!(err.code(), Some(&json!("bad")));
    assert_eq!(
        err.attempts().len(),
        1,
        "a bad request is not sent elsewhere"
    );
}

#[tokio::test]
async fn rate_limits_keep_status_and_retry_after_when_all_targets_fail() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(&mock, "");
    let mut body = hello("mock/mock-gpt");
    body["mock"] = json!({"status": 429, "retry_after": 7});
    let err = gw.chat(request(body)).await.unwrap_err();
    assert_eq!(err.status(), 429);
    assert_eq!(err.kind(), ErrorKind::RateLimit);
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));
    assert_eq!(err.provider(), Some("mock"));
    let body = err.to_body();
    assert_eq!(body.error.code, Some(json!("rate_limit_exceeded")));
}

#[tokio::test]
async fn non_json_error_bodies_and_malformed_answers_are_clear() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(&mock, "");
    let mut body = hello("mock/mock-gpt");
    body["mock"] = json!({"status": 502, "body": "<html>Bad Gateway</html>"});
    let err = gw.chat(request(body)).await.unwrap_err();
    assert_eq!(err.status(), 502);
    assert!(
        err.message().contains("<html>Bad Gateway</html>"),
        "{}",
        err.message()
    );

    let mut body = hello("mock/mock-gpt");
    body["mock"] = json!({"malformed": true});
    let err = gw.chat(request(body)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert_eq!(err.status(), 502);
    assert!(
        err.message().contains("not a valid chat completion"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn slow_first_byte_times_out_as_504() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&format!(
        "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k, timeout_ms: 200 }}\nrouter: {{ retries: 0 }}\n",
        mock.base_url()
    ));
    let mut body = hello("mock/mock-gpt");
    body["mock"] = json!({"first_byte_delay_ms": 3000});
    let started = std::time::Instant::now();
    let err = gw.chat(request(body.clone())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.status(), 504);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    body["stream"] = json!(true);
    let err = gw.chat_stream(request(body)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
}

#[tokio::test]
async fn model_resolution_errors() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(&mock, "");
    for model in ["gpt-4o", "nosuch/gpt-4o", "mock/", "/x"] {
        let err = gw.chat(request(hello(model))).await.unwrap_err();
        assert_eq!(err.status(), 404, "{model}");
        assert_eq!(err.code(), Some(&json!("model_not_found")));
        assert_eq!(err.param(), Some("model"));
    }
    let err = gw.chat(request(hello(""))).await.unwrap_err();
    assert_eq!((err.status(), err.param()), (400, Some("model")));
    let err = gw
        .chat(request(json!({"model": "mock/x", "messages": []})))
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.param()), (400, Some("messages")));
    let mut body = hello("mock/x");
    body["temperature"] = json!(3.5);
    let err = gw.chat(request(body)).await.unwrap_err();
    assert_eq!((err.status(), err.param()), (400, Some("temperature")));
}

#[tokio::test]
async fn providers_without_an_adapter_or_key_are_refused_clearly() {
    let gw = gateway(
        "providers:\n  cohere: { api_key: x }\n  openai: { api_key: \"${OGW_SURELY_UNSET_VAR}\" }\n",
    );
    let err = gw
        .chat(request(hello("cohere/command-a-03-2025")))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 503);
    assert!(err.message().contains("no adapter"), "{}", err.message());
    let err = gw.chat(request(hello("openai/gpt-4o"))).await.unwrap_err();
    assert!(
        err.message().contains("OPENAI_API_KEY"),
        "{}",
        err.message()
    );
    let health = gw.health().await;
    assert!(!health.is_healthy());
    assert!(health.providers.iter().all(|p| p.status == "unusable"));
}

#[tokio::test]
async fn stream_text_with_and_without_usage() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(&mock, "");
    let mut body = hello("mock/mock-gpt");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body["mock"] = json!({"content": "one two three four"});
    let stream = gw.chat_stream(request(body.clone())).await.unwrap();
    assert_eq!(stream.route().provider, "mock");
    let (chunks, err) = collect(stream).await;
    assert!(err.is_none());
    assert_eq!(text_of(&chunks), "one two three four");
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
    assert!(chunks.iter().all(|c| c.provider.as_deref() == Some("mock")));
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    assert_eq!(last.usage().unwrap().cost, Some(0.0));
    let finishes: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason.clone())
        .collect();
    assert_eq!(finishes, vec![FinishReason::Stop]);
    assert_eq!(
        mock.requests().last().unwrap().body["stream_options"]["include_usage"],
        json!(true)
    );

    body["stream_options"] = json!({"include_usage": false});
    let (chunks, err) = collect(gw.chat_stream(request(body)).await.unwrap()).await;
    assert!(err.is_none());
    assert_eq!(text_of(&chunks), "one two three four");
    assert!(
        chunks
            .iter()
            .all(|c| c.usage.is_none() && !c.choices.is_empty())
    );
}

/// The chunks of a stream read as JSON text, or the error that ended it.
async fn collect_json(
    mut stream: opengateway::ChatStream,
) -> (Vec<Value>, Option<opengateway::Error>) {
    let mut chunks = Vec::new();
    while let Some(item) = stream.next_json().await {
        match item {
            Ok(text) => {
                assert!(!text.contains('\n'), "one SSE data line: {text}");
                chunks.push(serde_json::from_str(&text).unwrap());
            }
            Err(e) => return (chunks, Some(e)),
        }
    }
    (chunks, None)
}

/// An answer or chunk less what differs from one request to the next: its id and time, and
/// the ids of the tool calls in each choice's `message` or `delta` (`choice_member`).
fn without_ids(mut value: Value, choice_member: &str) -> Value {
    let object = value.as_object_mut().unwrap();
    object.remove("id");
    object.remove("created");
    for choice in object["choices"].as_array_mut().unwrap() {
        if let Some(calls) = choice[choice_member]["tool_calls"].as_array_mut() {
            calls
                .iter_mut()
                .for_each(|c| drop(c.as_object_mut().unwrap().remove("id")));
        }
    }
    value
}

#[tokio::test]
async fn a_stream_read_as_json_is_its_chunks_serialized_and_accounted_the_same() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(&mock, "");
    let text = |include_usage: bool, mock: Value| {
        json!({"model": "mock/mock-gpt", "stream": true, "messages": [{"role": "user", "content": "Hello"}],
               "stream_options": {"include_usage": include_usage}, "mock": mock})
    };
    let cases = [
        text(true, json!({"content": "one two three four"})),
        text(false, json!({"content": "one two three four"})),
        // Cut off without usage: the ledger counts the output locally.
        text(
            false,
            json!({"content": "one two three four five six", "drop_after": 5}),
        ),
        json!({"model": "mock/mock-gpt", "stream": true,
               "messages": [{"role": "user", "content": "weather in Paris?"}],
               "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
                   "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]}),
    ];
    let per_request = |chunk| without_ids(chunk, "delta");
    for body in cases {
        let typed = gw.chat_stream(request(body.clone())).await.unwrap();
        let typed_id = typed.request_id().to_owned();
        let (chunks, typed_error) = collect(typed).await;
        let as_json = gw.chat_stream(request(body.clone())).await.unwrap();
        let json_id = as_json.request_id().to_owned();
        let (json_chunks, json_error) = collect_json(as_json).await;

        let typed: Vec<Value> = chunks
            .iter()
            .map(|c| per_request(serde_json::to_value(c).unwrap()))
            .collect();
        let json_chunks: Vec<Value> = json_chunks.into_iter().map(per_request).collect();
        assert!(typed.len() >= 3, "{body}");
        assert_eq!(json_chunks, typed, "{body}");
        assert_eq!(
            json_error.map(|e| e.kind()),
            typed_error.map(|e| e.kind()),
            "{body}"
        );

        gw.flush().await;
        let typed_record = gw.usage_record(&typed_id).unwrap().unwrap();
        let json_record = gw.usage_record(&json_id).unwrap().unwrap();
        assert_eq!(json_record.status, typed_record.status, "{body}");
        assert_eq!(json_record.tokens, typed_record.tokens, "{body}");
        assert_eq!(json_record.estimated, typed_record.estimated, "{body}");
        assert!(json_record.tokens.completion > 0, "{body}");
    }
}

#[tokio::test]
async fn an_answer_read_as_json_is_the_answer_serialized_and_accounted_the_same() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(&mock, "");
    let ask = |model: &str, mock: Value| json!({"model": model, "messages": [{"role": "user", "content": "Hello"}], "mock": mock});
    let cases = [
        ask("mock/mock-gpt", json!({"content": "one two three four"})),
        ask("mock/mock-gpt~thinking", json!({"content": "one two"})),
        // Without usage: the ledger counts the output locally.
        ask(
            "mock/mock-gpt",
            json!({"content": "one two three", "usage": null}),
        ),
        ask(
            "mock/mock-gpt~tool_call~parallel=2",
            json!({"usage": {"prompt_tokens_details": {"cached_tokens": 3}}}),
        ),
        json!({"model": "mock/mock-gpt", "n": 2, "messages": [{"role": "user", "content": "Hi"}]}),
    ];
    let per_request = |answer| without_ids(answer, "message");
    for body in cases {
        let typed = gw.chat(request(body.clone())).await.unwrap();
        let as_json = gw
            .chat_json_with(request(body.clone()), &CallContext::default())
            .await
            .unwrap();
        assert_eq!(as_json.route.provider, typed.route.provider, "{body}");
        assert_eq!(as_json.usage, typed.response.usage, "{body}");
        // The mock speaks OpenAI's format: its answer went on as it wrote it, with the usage,
        // costed, written last (decoding would have written it before `provider`).
        let provider_at = as_json.json.find(r#""provider":"mock""#).unwrap();
        assert!(
            as_json.json[provider_at..].starts_with(r#""provider":"mock","usage":{"#)
                || as_json.usage.is_none() && as_json.json.ends_with(r#""provider":"mock"}"#),
            "{}",
            as_json.json
        );
        let json_answer: Value = serde_json::from_str(&as_json.json).unwrap();
        assert_eq!(
            per_request(json_answer),
            per_request(serde_json::to_value(&typed.response).unwrap()),
            "{body}"
        );

        gw.flush().await;
        let typed_record = gw.usage_record(&typed.request_id).unwrap().unwrap();
        let json_record = gw.usage_record(&as_json.request_id).unwrap().unwrap();
        assert_eq!(json_record.status, typed_record.status, "{body}");
        assert_eq!(json_record.tokens, typed_record.tokens, "{body}");
        assert_eq!(json_record.estimated, typed_record.estimated, "{body}");
        assert_eq!(json_record.cost, typed_record.cost, "{body}");
        assert!(json_record.tokens.completion > 0, "{body} {json_record:?}");
    }
}

#[tokio::test]
async fn stream_tool_call_arguments_arrive_as_deltas() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(&mock, "");
    let body = json!({
        "model": "mock/mock-gpt", "stream": true,
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    });
    let (chunks, err) = collect(gw.chat_stream(request(body)).await.unwrap()).await;
    assert!(err.is_none());
    let deltas: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.tool_calls.clone().flatten())
        .flatten()
        .collect();
    assert!(deltas.len() >= 3, "arguments come in several deltas");
    assert_eq!(
        deltas[0].function.as_ref().unwrap().name.as_deref(),
        Some("get_weather")
    );
    assert!(deltas[0].id.is_some());
    let args: String = deltas
        .iter()
        .filter_map(|d| d.function.as_ref()?.arguments.clone())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "mock"})
    );
    let finish = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .find_map(|c| c.finish_reason.clone());
    assert_eq!(finish, Some(FinishReason::ToolCalls));
}

#[tokio::test]
async fn stream_falls_back_before_the_first_chunk_only() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(
        &mock,
        "models:\n  - name: smart\n    targets: [dead/x, mock/mock-gpt]\n",
    );
    let mut body = hello("smart");
    body["stream"] = json!(true);
    let stream = gw.chat_stream(request(body)).await.unwrap();
    assert_eq!(stream.route().attempts.len(), 2);
    let (chunks, err) = collect(stream).await;
    assert!(err.is_none() && !chunks.is_empty());
}

#[tokio::test]
async fn broken_streams_end_with_an_error_never_silently() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(&mock, "");
    let cases = [
        (
            json!({"stream_error": {"message": "boom", "type": "server_error"}}),
            "boom",
        ),
        (
            json!({"truncate": true}),
            "ended before the answer was complete",
        ),
        (json!({"drop_after": 3}), "broke"),
        (json!({"malformed": true}), "not JSON"),
    ];
    for (knobs, expected) in cases {
        let mut body = hello("mock/mock-gpt");
        body["stream"] = json!(true);
        body["mock"] = knobs.clone();
        let (chunks, err) = collect(gw.chat_stream(request(body)).await.unwrap()).await;
        let err = err.unwrap_or_else(|| panic!("{knobs}: the stream ended without an error"));
        assert!(
            !chunks.is_empty(),
            "{knobs}: content before the failure is delivered"
        );
        assert!(
            err.message().contains(expected),
            "{knobs}: {}",
            err.message()
        );
        assert_eq!(err.provider(), Some("mock"));
    }
}

#[tokio::test]
async fn list_models_and_health_ask_the_providers() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(
        &mock,
        "models:\n  - name: smart\n    targets: [mock/mock-gpt]\n",
    );
    let ids: Vec<String> = gw.list_models().await.into_iter().map(|m| m.id).collect();
    assert!(ids.contains(&"smart".to_owned()));
    assert!(ids.contains(&"mock/mock-gpt".to_owned()));
    let health = gw.health().await;
    assert!(health.is_healthy());
    assert_eq!(health.status, "degraded", "one of two providers is down");
    let by_id = |id: &str| {
        health
            .providers
            .iter()
            .find(|p| p.id == id)
            .unwrap()
            .status
            .clone()
    };
    assert_eq!(by_id("mock"), "ok");
    assert_eq!(by_id("dead"), "error");
}

#[test]
fn alias_targets_must_name_configured_providers() {
    let err = Gateway::from_config(
        Config::from_yaml("models:\n  - name: a\n    targets: [nosuch/x]\n").unwrap(),
    )
    .unwrap_err();
    assert!(
        err.message().contains("models[0].targets[0]"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn usage_is_costed_from_the_catalog_with_the_fee() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&format!(
        "providers:\n  openai: {{ type: openai, api_base: \"{}\", api_key: k }}\n  mine: {{ type: openai, api_base: \"{}\", api_key: k }}\npricing:\n  platform_fee_percent: 10\n  models:\n    mine/house-model: {{ input_cost_per_token: 0.000001, output_cost_per_token: 0.000004 }}\n",
        mock.base_url(),
        mock.base_url()
    ));
    let usage = json!({"prompt_tokens": 1000, "completion_tokens": 200,
        "prompt_tokens_details": {"cached_tokens": 400}});
    // gpt-4o: 600 uncached at $2.50/M, 400 cached at $1.25/M, 200 out at $10/M, plus 10 %.
    let want = (600.0 * 2.5e-6 + 400.0 * 1.25e-6 + 200.0 * 1e-5) * 1.1;
    let mut body = hello("openai/gpt-4o-2024-08-06");
    body["mock"] = json!({"usage": usage});
    let answer = gw.chat(request(body.clone())).await.unwrap();
    let cost = answer.usage.as_ref().unwrap().cost.unwrap();
    assert!((cost - want).abs() < 1e-12, "{cost} vs {want}");

    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (chunks, err) = collect(gw.chat_stream(request(body)).await.unwrap()).await;
    assert!(err.is_none());
    let cost = chunks.last().unwrap().usage().unwrap().cost.unwrap();
    assert!((cost - want).abs() < 1e-12, "stream: {cost} vs {want}");

    // Prices of one's own, by provider id; a model nobody prices costs 0.
    let mut body = hello("mine/house-model");
    body["mock"] = json!({"usage": {"prompt_tokens": 100, "completion_tokens": 50}});
    let answer = gw.chat(request(body)).await.unwrap();
    let cost = answer.usage.as_ref().unwrap().cost.unwrap();
    assert!(
        (cost - (100.0 * 1e-6 + 50.0 * 4e-6) * 1.1).abs() < 1e-12,
        "{cost}"
    );
    let answer = gw.chat(request(hello("mine/unknown-model"))).await.unwrap();
    assert_eq!(answer.usage.as_ref().unwrap().cost, Some(0.0));
}
