//! The server over real HTTP on 127.0.0.1, in process and as the `opengateway` binary.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bin, spawn_server, spawn_server_on_one_cpu};

use std::process::Command;
use std::time::{Duration, Instant};

use opengateway::Gateway;
use opengateway::config::Config;
use opengateway_mock::{MockConfig, MockServer};
use serde_json::{Value, json};

struct Served {
    base: String,
    _mock: MockServer,
    _task: tokio::task::JoinHandle<()>,
}

async fn serve(extra: &str) -> Served {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\nrouter: {{ retries: 0 }}\nserver: {{ auth: none, max_body_bytes: 4096 }}\n{extra}",
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
        _mock: mock,
        _task: task,
    }
}

async fn post(
    base: &str,
    body: &str,
    content_type: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

fn error_of(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    let err = v["error"].clone();
    assert!(err["message"].is_string(), "OpenAI error shape: {body}");
    assert!(err.get("type").is_some() && err.get("param").is_some() && err.get("code").is_some());
    err
}

const HELLO: &str = r#"{"model":"mock/mock-gpt","messages":[{"role":"user","content":"Hello"}]}"#;

#[tokio::test]
async fn completion_with_route_headers() {
    let s = serve("").await;
    let (status, headers, body) = post(&s.base, HELLO, Some("application/json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-opengateway-provider"], "mock");
    assert_eq!(headers["x-opengateway-model"], "mock-gpt");
    assert_eq!(headers["x-opengateway-attempts"], "1");
    assert_eq!(headers["x-opengateway-cost"], "0");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["provider"], "mock");
    assert_eq!(v["usage"]["cost"], json!(0.0));
    assert_eq!(v["object"], "chat.completion");
}

#[tokio::test]
async fn bad_requests_get_openai_errors_and_the_server_keeps_serving() {
    let s = serve("").await;
    let big = format!(
        r#"{{"model":"mock/mock-gpt","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(5000)
    );
    // (body, content type, status, param, code)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        u16,
        Option<&'a str>,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            r#"{"model": "mock/x", "messages": [}"#,
            Some("application/json"),
            400,
            None,
            None,
        ),
        (
            r#"{"messages": [{"role":"user","content":"hi"}]}"#,
            Some("application/json"),
            400,
            Some("model"),
            None,
        ),
        (
            r#"{"model":"nope","messages":[{"role":"user","content":"hi"}]}"#,
            Some("application/json"),
            404,
            Some("model"),
            Some("model_not_found"),
        ),
        (&big, Some("application/json"), 413, None, None),
        (HELLO, Some("text/plain"), 415, None, None),
        (HELLO, None, 415, None, None),
        (
            r#"{"model":"mock/x","messages":[{"role":"user","content":"hi"}],"n":"two"}"#,
            Some("application/json"),
            400,
            Some("n"),
            None,
        ),
        (
            r#"{"model":"mock/x","messages":[{"role":"robot","content":"hi"}]}"#,
            Some("application/json"),
            400,
            Some("messages[0].role"),
            None,
        ),
        (r#"[1,2]"#, Some("application/json"), 400, None, None),
    ];
    for (body, ct, want_status, want_param, want_code) in cases {
        let (status, _, text) = post(&s.base, body, ct).await;
        let shown: String = body.chars().take(60).collect();
        assert_eq!(status, want_status, "{shown}: {text}");
        let err = error_of(&text);
        assert_eq!(err["param"].as_str(), want_param, "{shown}: {text}");
        if let Some(code) = want_code {
            assert_eq!(err["code"], code);
        }
    }
    let (status, _, _) = post(&s.base, HELLO, Some("application/json; charset=utf-8")).await;
    assert_eq!(status, 200, "still serving after bad requests");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_openai_errors() {
    let s = serve("").await;
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{}/v1/nothing", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    error_of(&resp.text().await.unwrap());
    let resp = client
        .get(format!("{}/v1/chat/completions", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    error_of(&resp.text().await.unwrap());
}

#[tokio::test]
async fn upstream_errors_keep_their_status() {
    let s = serve("").await;
    let body = r#"{"model":"mock/mock-gpt","messages":[{"role":"user","content":"hi"}],"mock":{"status":429,"retry_after":3}}"#;
    let (status, headers, text) = post(&s.base, body, Some("application/json")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(headers["x-opengateway-attempts"], "1");
    assert_eq!(error_of(&text)["code"], "rate_limit_exceeded");
}

/// Splits an SSE body into its `data:` payloads.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| {
            let data: Vec<&str> = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

#[tokio::test]
async fn streams_end_with_done_or_with_an_error_event() {
    let s = serve("").await;
    let body = r#"{"model":"mock/mock-gpt","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}],"mock":{"content":"a b c"}}"#;
    let (status, headers, text) = post(&s.base, body, Some("application/json")).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(headers["x-opengateway-provider"], "mock");
    let events = sse_data(&text);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "a b c");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["cost"], json!(0.0));

    let body = r#"{"model":"mock/mock-gpt","stream":true,"messages":[{"role":"user","content":"hi"}],"mock":{"stream_error":{"message":"boom","type":"server_error"}}}"#;
    let (status, _, text) = post(&s.base, body, Some("application/json")).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert!(
        !events.contains(&"[DONE]".to_owned()),
        "a broken stream has no [DONE]"
    );
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(last["error"]["message"].as_str().unwrap().contains("boom"));
}

// ---- the binary ----

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ogw-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn sigterm_lets_a_stream_in_flight_finish() {
    answers_then_stops_gracefully("sigterm", spawn_server).await;
}

/// On one CPU the server runs tokio's single-threaded runtime: the same answers, the same
/// graceful stop.
#[tokio::test]
async fn on_one_cpu_it_answers_and_stops_gracefully() {
    answers_then_stops_gracefully("one-cpu", spawn_server_on_one_cpu).await;
}

async fn answers_then_stops_gracefully(
    name: &str,
    spawn: fn(&std::path::Path) -> (std::process::Child, String),
) {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = temp_dir(name);
    let config = dir.join("gw.yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\nserver: {{ auth: none, database: \"sqlite://{}\" }}\n",
            mock.base_url(),
            dir.join("gw.db").display()
        ),
    )
    .unwrap();
    let (mut child, base) = spawn(&config);
    assert!(
        dir.join("gw.db").exists(),
        "the SQLite store is created on start"
    );
    let answers = futures_util::future::join_all((0..20).map(|i| {
        reqwest::Client::new()
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({"model": "mock/mock-gpt", "stream": i % 2 == 1,
                "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    }))
    .await;
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), 200);
        let text = answer.text().await.unwrap();
        if i % 2 == 1 {
            assert_eq!(sse_data(&text).last().map(String::as_str), Some("[DONE]"));
        } else {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(body["provider"], "mock");
            assert!(
                !body["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .is_empty()
            );
        }
    }

    let body = json!({"model": "mock/mock-gpt", "stream": true,
        "messages": [{"role": "user", "content": "hi"}],
        "mock": {"content": "one two three four five six", "chunk_delay_ms": 150}});
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The stream has started; ask the server to stop while it is in flight.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let text = resp.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let content: String = events[..events.len() - 1]
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "one two three four five six");

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        reqwest::get(format!("{base}/health")).await.is_err(),
        "no longer listening"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn refuses_to_start_with_a_bad_config() {
    let dir = temp_dir("refuse");
    let cases = [
        (
            "server: { database: \"postgres://db/x\" }\n",
            "server.database",
        ),
        ("server: { auth: none, listne: x }\n", "server"),
        ("providers:\n  openai: { api_bse: x }\n", "providers.openai"),
    ];
    for (yaml, expected) in cases {
        let config = dir.join("c.yaml");
        std::fs::write(&config, yaml).unwrap();
        let out = bin()
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{yaml}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{yaml}: {stderr}");
    }
    let out = bin()
        .args(["serve", "--config", "/nonexistent/ogw.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn models_prints_the_catalog_with_the_configs_own_prices() {
    let dir = temp_dir("models");
    let config = dir.join("c.yaml");
    std::fs::write(
        &config,
        "pricing:\n  models:\n    local/house: { input_cost_per_token: 0.000002, output_cost_per_token: 0.000008 }\n",
    )
    .unwrap();
    let out = bin()
        .args(["models", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let row = |id: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no row for {id}:\n{text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert!(text.lines().count() > 40, "{text}");
    // gpt-4o: $2.50 in, $10 out, $1.25 cached per million tokens.
    assert_eq!(row("openai/gpt-4o")[3..6], ["2.5000", "10.0000", "1.2500"]);
    assert_eq!(row("local/house")[3..5], ["2.0000", "8.0000"]);
    let _ = std::fs::remove_dir_all(dir);
}
