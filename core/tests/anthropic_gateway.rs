//! The gateway with an `anthropic` provider against a canned Anthropic server on 127.0.0.1:
//! the adapter is wired in, requests reach `/v1/messages` with Anthropic's headers, and
//! answers, streams and errors come back in OpenAI's shape.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use opengateway::Gateway;
use opengateway::config::Config;
use opengateway::types::{ChatCompletionRequest, FinishReason};
use serde_json::{Value, json};

/// One canned answer: status, content type, body.
type Canned = (u16, &'static str, String);
/// Requests received: the head (request line and headers) and the JSON body.
type Log = Arc<Mutex<Vec<(String, Value)>>>;

/// Serves the canned answers in order, one connection each, and records the requests.
fn serve(answers: Vec<Canned>) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let log: Log = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        for (stream, (status, content_type, body)) in listener.incoming().zip(answers) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                head.push_str(&line.to_ascii_lowercase());
            }
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            let mut request = vec![0; length];
            reader.read_exact(&mut request).unwrap();
            let request = serde_json::from_slice(&request).unwrap_or(Value::Null);
            seen.lock().unwrap().push((head, request));
            write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
    });
    (base, log)
}

fn gateway(base: &str) -> Gateway {
    let yaml = format!(
        "providers:\n  claude: {{ type: anthropic, api_base: \"{base}\", api_key: sk-test, headers: {{ anthropic-beta: b1 }} }}\nrouter: {{ retries: 0, timeout_ms: 5000 }}\n"
    );
    Gateway::from_config(Config::from_yaml(&yaml).unwrap()).unwrap()
}

fn request(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
}

fn hello() -> Value {
    json!({"model": "claude/claude-sonnet-4-5", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"}
    ]})
}

#[tokio::test]
async fn completion_goes_through_the_messages_api() {
    let answer = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hi there"}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 0, "output_tokens": 3}
    });
    let (base, log) = serve(vec![(200, "application/json", answer.to_string())]);
    let gw = gateway(&base);
    assert!(gw.has_usable_provider());
    let answer = gw.chat(request(hello())).await.unwrap();
    assert_eq!(
        answer.choices[0].message.content.as_deref(),
        Some("Hi there")
    );
    assert_eq!(answer.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(answer.provider.as_deref(), Some("claude"));
    assert_eq!(answer.route.model, "claude-sonnet-4-5");
    let usage = answer.usage.as_ref().unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (15, 3));

    let (head, body) = log.lock().unwrap()[0].clone();
    assert!(head.starts_with("post /v1/messages "), "{head}");
    for header in [
        "x-api-key: sk-test",
        "anthropic-version: 2023-06-01",
        "anthropic-beta: b1",
    ] {
        assert!(head.contains(header), "{header} missing in {head}");
    }
    assert_eq!(
        body,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 64000,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
        })
    );
}

#[tokio::test]
async fn stream_and_errors_come_back_in_openai_shape() {
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_2", "model": "claude-sonnet-4-5", "usage": {"input_tokens": 7, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
        json!({"type": "message_stop"}),
    ];
    let sse: String = events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect();
    let overloaded = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
    let (base, log) = serve(vec![
        (200, "text/event-stream", sse),
        (529, "application/json", overloaded.to_owned()),
    ]);
    let gw = gateway(&base);

    let mut body = hello();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let mut stream = Box::pin(gw.chat_stream(request(body)).await.unwrap());
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        chunks.push(item.unwrap());
    }
    let text: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.clone().flatten())
        .collect();
    assert_eq!(text, "Hello");
    assert!(
        chunks
            .iter()
            .all(|c| c.id == "msg_2" && c.provider.as_deref() == Some("claude"))
    );
    let usage = chunks.last().unwrap().usage().unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (7, 2));
    // Priced from the catalog: claude-sonnet-4-5 at $3 in / $15 out per million tokens.
    let cost = usage.cost.unwrap();
    assert!((cost - (7.0 * 3e-6 + 2.0 * 1.5e-5)).abs() < 1e-12, "{cost}");
    assert_eq!(log.lock().unwrap()[0].1["stream"], true);

    let err = gw.chat(request(hello())).await.unwrap_err();
    assert_eq!(err.status(), 503);
    assert!(err.is_retryable());
    assert_eq!(err.message(), "Overloaded");
    assert_eq!(err.attempts().len(), 1);
}
