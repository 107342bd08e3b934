//! `POST /v1/messages` (Anthropic shape in and out) over real HTTP, with the OpenAI-speaking
//! mock provider behind the gateway.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opengateway::Gateway;
use opengateway::config::Config;
use opengateway_mock::{MockConfig, MockServer};
use serde_json::{Value, json};

struct Served {
    base: String,
    mock: MockServer,
    _task: tokio::task::JoinHandle<()>,
}

async fn serve() -> Served {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\nrouter: {{ retries: 0 }}\nserver: {{ auth: none }}\n",
        mock.base_url()
    );
    let gateway = Gateway::from_config(Config::from_yaml(&yaml).unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, opengateway_server::app(gateway))
            .await
            .unwrap();
    });
    Served {
        base,
        mock,
        _task: task,
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

async fn post_raw(base: &str, body: String, content_type: &str) -> Answer {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .header("content-type", content_type)
        // What the Anthropic SDKs send; accepted and ignored (auth: none).
        .header("x-api-key", "sk-ant-unused")
        .header("anthropic-version", "2023-06-01")
        .body(body)
        .send()
        .await
        .unwrap();
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

async fn post(base: &str, body: Value) -> Answer {
    post_raw(base, body.to_string(), "application/json").await
}

/// Splits an SSE body into `(event, data)` pairs.
fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|ev| !ev.trim().is_empty())
        .filter_map(|ev| {
            let mut name = None;
            let mut data = Vec::new();
            for line in ev.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = Some(n.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.trim_start());
                }
            }
            // Keep-alive comments have neither.
            let name = name?;
            let data: Value = serde_json::from_str(&data.join("\n"))
                .unwrap_or_else(|e| panic!("event {name}: data is not JSON ({e}): {ev}"));
            assert_eq!(data["type"], name.as_str(), "type matches the event name");
            Some((name, data))
        })
        .collect()
}

/// The Anthropic error object of a body, checked for shape.
fn anthropic_error(text: &str) -> Value {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(v["type"], "error", "Anthropic error shape: {text}");
    assert!(v.get("request_id").is_some(), "{text}");
    let err = v["error"].clone();
    assert!(
        err["type"].is_string() && err["message"].is_string(),
        "{text}"
    );
    err
}

fn last_chat_request(mock: &MockServer) -> Value {
    mock.requests()
        .into_iter()
        .rev()
        .find(|r| r.path.ends_with("/chat/completions"))
        .expect("the mock got a chat request")
        .body
}

const WEATHER: &str = r#"{"name": "get_weather", "description": "Weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}}"#;

#[tokio::test]
async fn text_answer_in_anthropic_shape() {
    let s = serve().await;
    let a = post(
        &s.base,
        json!({"model": "mock/mock-gpt", "max_tokens": 100, "system": "Be brief.",
               "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.headers["x-opengateway-provider"], "mock");
    assert_eq!(a.headers["x-opengateway-model"], "mock-gpt");
    assert_eq!(a.headers["x-opengateway-attempts"], "1");
    assert_eq!(a.headers["x-opengateway-cost"], "0");
    let v: Value = serde_json::from_str(&a.text).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"), "{v}");
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "mock/mock-gpt");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hello from the mock provider! You said: Hello", "citations": null}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(v["usage"]["output_tokens"], 8);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 0);

    let sent = last_chat_request(&s.mock);
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}])
    );
    assert_eq!(sent["max_completion_tokens"], 100);
    assert_eq!(sent["model"], "mock-gpt");
}

#[tokio::test]
async fn text_stream_event_sequence() {
    let s = serve().await;
    let a = post(
        &s.base,
        json!({"model": "mock/mock-gpt", "max_tokens": 100, "stream": true,
               "messages": [{"role": "user", "content": "hi"}], "mock": {"content": "a b c"}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(a.headers["x-opengateway-provider"], "mock");
    assert!(!a.text.contains("[DONE]"));
    let events = sse_events(&a.text);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &events[0].1["message"];
    assert_eq!(start["model"], "mock/mock-gpt");
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    let text: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "a b c");
    let delta = &events[6].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 3);
    assert!(delta["usage"]["input_tokens"].as_u64().unwrap() > 0);
    // The client did not ask for usage; the gateway asked the provider anyway.
    assert_eq!(
        last_chat_request(&s.mock)["stream_options"],
        json!({"include_usage": true})
    );
}

#[tokio::test]
async fn tool_use_stream_and_tool_result_round_trip() {
    let s = serve().await;
    let tools: Value = serde_json::from_str(&format!("[{WEATHER}]")).unwrap();
    let a = post(
        &s.base,
        json!({"model": "mock/mock-gpt", "max_tokens": 100, "stream": true, "tools": tools,
               "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
               "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let events = sse_events(&a.text);
    let start = events
        .iter()
        .find(|(n, _)| n == "content_block_start")
        .expect("a block starts");
    let block = &start.1["content_block"];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({}));
    let id = block["id"].as_str().unwrap().to_owned();
    let arguments: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    let input: Value = serde_json::from_str(&arguments).unwrap();
    assert_eq!(input, json!({"city": "mock", "unit": "celsius"}));
    let (_, delta) = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    let sent = last_chat_request(&s.mock);
    assert_eq!(sent["parallel_tool_calls"], false);
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");

    // Send the call and its result back: the provider gets an OpenAI `tool` message.
    let a = post(
        &s.base,
        json!({"model": "mock/mock-gpt", "max_tokens": 100, "tools": tools,
               "messages": [
                   {"role": "user", "content": "Weather in Paris?"},
                   {"role": "assistant", "content": [
                       {"type": "tool_use", "id": id, "name": "get_weather", "input": input}]},
                   {"role": "user", "content": [
                       {"type": "tool_result", "tool_use_id": id, "content": "18C and sunny"}]}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let v: Value = serde_json::from_str(&a.text).unwrap();
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["content"][0]["type"], "text");
    let sent = last_chat_request(&s.mock);
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "content": "18C and sunny", "tool_call_id": id})
    );
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], id.as_str());
}

#[tokio::test]
async fn errors_use_the_anthropic_shape_with_the_right_status() {
    let s = serve().await;
    let hello = |extra: Value| {
        let mut v = json!({"model": "mock/mock-gpt", "max_tokens": 10,
                           "messages": [{"role": "user", "content": "hi"}]});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    };
    // (body, status, error type, text the message must contain)
    let cases = [
        (
            json!({"model": "mock/mock-gpt", "messages": [{"role": "user", "content": "hi"}]}),
            400,
            "invalid_request_error",
            "max_tokens",
        ),
        (
            hello(
                json!({"messages": [{"role": "user", "content": [{"type": "server_tool_use", "id": "x"}]}]}),
            ),
            400,
            "invalid_request_error",
            "messages[0].content[0].type",
        ),
        (
            hello(json!({"messages": [{"role": "robot", "content": "hi"}]})),
            400,
            "invalid_request_error",
            "messages[0].role",
        ),
        (
            hello(json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]})),
            400,
            "invalid_request_error",
            "tools[0]",
        ),
        (
            hello(json!({"model": "nope/model"})),
            404,
            "not_found_error",
            "nope/model",
        ),
        (
            hello(json!({"model": "no-such-alias"})),
            404,
            "not_found_error",
            "no-such-alias",
        ),
        (
            hello(json!({"mock": {"status": 429, "retry_after": 3}})),
            429,
            "rate_limit_error",
            "mock error 429",
        ),
        (
            hello(json!({"mock": {"status": 503}})),
            503,
            "overloaded_error",
            "mock error 503",
        ),
    ];
    for (body, status, kind, needle) in cases {
        for stream in [false, true] {
            let mut body = body.clone();
            body["stream"] = json!(stream);
            let a = post(&s.base, body.clone()).await;
            assert_eq!(a.status, status, "{body}: {}", a.text);
            assert!(
                a.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json")
            );
            let err = anthropic_error(&a.text);
            assert_eq!(err["type"], kind, "{body}: {}", a.text);
            assert!(
                err["message"].as_str().unwrap().contains(needle),
                "{body}: {}",
                a.text
            );
            if status == 429 {
                assert_eq!(a.headers["retry-after"], "3");
            }
        }
    }
    let a = post_raw(&s.base, "{}".to_owned(), "text/plain").await;
    assert_eq!(a.status, 415);
    assert_eq!(anthropic_error(&a.text)["type"], "invalid_request_error");
    let a = post_raw(&s.base, "{not json".to_owned(), "application/json").await;
    assert_eq!(a.status, 400);
    anthropic_error(&a.text);
}

#[tokio::test]
async fn a_failure_mid_stream_is_an_error_event() {
    let s = serve().await;
    let a = post(
        &s.base,
        json!({"model": "mock/mock-gpt", "max_tokens": 100, "stream": true,
               "messages": [{"role": "user", "content": "hi"}],
               "mock": {"content": "one two three", "stream_error": {"message": "boom", "type": "server_error"}}}),
    )
    .await;
    assert_eq!(a.status, 200);
    let events = sse_events(&a.text);
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(last["error"]["type"], "api_error");
    assert!(
        last["error"]["message"].as_str().unwrap().contains("boom"),
        "{last}"
    );
    assert_eq!(events[0].0, "message_start");
    assert!(
        !events.iter().any(|(n, _)| n == "message_stop"),
        "a broken stream does not look complete"
    );
}
