//! The gateway with a `type: gemini` provider, over real HTTP against a tiny canned server on
//! 127.0.0.1: endpoint and auth header, image inlining, CRLF-framed streams ending without
//! `[DONE]` (usage chunk included), and Google error bodies.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use opengateway::config::Config;
use opengateway::types::{ChatCompletionChunk, ChatCompletionRequest, FinishReason};
use opengateway::{ErrorKind, Gateway};
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\nfake";

const ANSWER: &str = r#"{"candidates":[{"content":{"parts":[{"text":"Bonjour"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1,"thoughtsTokenCount":4,"totalTokenCount":10},"modelVersion":"gemini-2.5-flash","responseId":"r-1"}"#;

const STREAM: &str = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Bon\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 5,\"totalTokenCount\": 5},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"s-1\"}\r\n\r\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"jour\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 5,\"candidatesTokenCount\": 2,\"totalTokenCount\": 7},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"s-1\"}\r\n\r\n";

const CUT_STREAM: &str = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Bon\"}],\"role\": \"model\"},\"index\": 0}],\"responseId\": \"s-2\"}\r\n\r\n";

const BAD_KEY: &str = "{\n  \"error\": {\n    \"code\": 400,\n    \"message\": \"API key not valid. Please pass a valid API key.\",\n    \"status\": \"INVALID_ARGUMENT\",\n    \"details\": [\n      {\n        \"@type\": \"type.googleapis.com/google.rpc.ErrorInfo\",\n        \"reason\": \"API_KEY_INVALID\"\n      }\n    ]\n  }\n}\n";

/// Serves canned answers by path until the test ends; returns the base URL and the log.
fn serve() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
            let length = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse::<usize>().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let bad_key = headers
                .iter()
                .any(|(k, v)| k == "x-goog-api-key" && v == "bad");
            log.lock().unwrap().push(Seen {
                target: target.clone(),
                headers,
                body,
            });
            let (status, content_type, payload): (&str, &str, &[u8]) = if target == "/cat.png" {
                ("200 OK", "image/png", PNG)
            } else if bad_key {
                ("400 Bad Request", "text/event-stream", BAD_KEY.as_bytes())
            } else if target.contains("cut-model") {
                ("200 OK", "text/event-stream", CUT_STREAM.as_bytes())
            } else if target.ends_with(":streamGenerateContent?alt=sse") {
                ("200 OK", "text/event-stream", STREAM.as_bytes())
            } else {
                (
                    "200 OK",
                    "application/json; charset=UTF-8",
                    ANSWER.as_bytes(),
                )
            };
            // No Content-Length: the body ends when the connection closes, as Gemini's
            // chunked streams end with the last event and no marker.
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(payload);
        }
    });
    (format!("http://{addr}/v1beta"), seen)
}

fn gateway(base: &str, key: &str) -> Gateway {
    let yaml = format!(
        "providers:\n  g: {{ type: gemini, api_base: \"{base}\", api_key: {key} }}\nrouter: {{ retries: 0, timeout_ms: 5000 }}\n"
    );
    Gateway::from_config(Config::from_yaml(&yaml).unwrap()).unwrap()
}

fn request(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
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

#[tokio::test]
async fn chat_with_an_inlined_image() {
    let (base, seen) = serve();
    let gw = gateway(&base, "AIza-secret");
    let image_url = format!("{}/cat.png", base.trim_end_matches("/v1beta"));
    let answer = gw
        .chat(request(json!({
            "model": "g/gemini-2.5-flash",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": image_url}}
                ]}
            ]
        })))
        .await
        .unwrap();
    assert_eq!(
        answer.choices[0].message.content.as_deref(),
        Some("Bonjour")
    );
    assert_eq!(answer.provider.as_deref(), Some("g"));
    let usage = answer.usage.as_ref().unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (5, 5, 10)
    );
    let seen = seen.lock().unwrap().clone();
    let call = seen
        .iter()
        .find(|s| s.target.contains(":generate"))
        .unwrap();
    assert_eq!(
        call.target,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(call.header("x-goog-api-key"), Some("AIza-secret"));
    assert!(call.header("authorization").is_none());
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(PNG);
    assert_eq!(
        body["contents"][0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/png", "data": data}})
    );
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
}

#[tokio::test]
async fn stream_ends_at_body_end_with_usage() {
    let (base, seen) = serve();
    let gw = gateway(&base, "k");
    let stream = gw
        .chat_stream(request(json!({
            "model": "g/gemini-2.5-flash",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream_options": {"include_usage": true}
        })))
        .await
        .unwrap();
    let (chunks, err) = collect(stream).await;
    assert!(err.is_none(), "{err:?}");
    let text: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.clone().flatten())
        .collect();
    assert_eq!(text, "Bonjour");
    let finishes: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason.clone())
        .collect();
    assert_eq!(finishes, [FinishReason::Stop]);
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    let usage = last.usage().unwrap();
    assert_eq!((usage.prompt_tokens, usage.total_tokens), (5, 7));
    // Priced by the gateway from the catalog: gemini-2.5-flash at $0.30 in / $2.50 out per
    // million tokens.
    let cost = usage.cost.unwrap();
    assert!((cost - (5.0 * 3e-7 + 2.0 * 2.5e-6)).abs() < 1e-12, "{cost}");
    assert!(chunks.iter().all(|c| c.id == "s-1"));
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].target,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
}

#[tokio::test]
async fn cut_stream_and_bad_key_are_errors() {
    let (base, _) = serve();
    let gw = gateway(&base, "k");
    let stream = gw
        .chat_stream(request(json!({
            "model": "g/cut-model",
            "messages": [{"role": "user", "content": "Hi"}]
        })))
        .await
        .unwrap();
    let (chunks, err) = collect(stream).await;
    assert_eq!(chunks.len(), 1);
    let err = err.expect("a stream without a finish reason is cut off");
    assert_eq!(err.kind(), ErrorKind::Connection);

    let gw = gateway(&base, "bad");
    let err = gw
        .chat_stream(request(json!({
            "model": "g/gemini-2.5-flash",
            "messages": [{"role": "user", "content": "Hi"}]
        })))
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.kind()), (401, ErrorKind::Authentication));
    assert!(err.message().contains("API key not valid"));
    assert_eq!(err.provider(), Some("g"));
}
