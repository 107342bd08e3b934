//! The router under injected faults, over real HTTP to the mock provider on 127.0.0.1: one
//! scenario per failure class (retry with Retry-After, retry then next target, next target at
//! once, fail now), timeouts to the first byte, the per-target circuit breaker, load balancing,
//! prompt-cache stickiness and a concurrent run with a target that fails until it recovers.
//!
//! Every wait is bounded; timeouts and cooldowns are a few hundred milliseconds so the suite
//! runs in seconds. Models carry mock directives (`mock-gpt~status=503`) so that targets
//! sharing one mock server behave differently; counts come from what the mock recorded.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use opengateway::config::Config;
use opengateway::router::{CircuitState, Decision, TargetState, classify};
use opengateway::types::{ChatCompletionChunk, ChatCompletionRequest, FinishReason};
use opengateway::{Attempt, ChatStream, Error, ErrorKind, Gateway};
use opengateway_mock::{MockConfig, MockServer};
use serde_json::{Value, json};

const HELLO_ANSWER: &str = "Hello from the mock provider! You said: Hello";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A port nothing listens on: bound, then released.
fn dead_base_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/v1")
}

fn gateway(yaml: &str) -> Gateway {
    Gateway::from_config(Config::from_yaml(yaml).unwrap()).unwrap()
}

/// Providers over one mock: `mock` (OpenAI wire), `claude` (Anthropic wire, same server) and
/// `dead` (nothing listens); then `router: { <router> }` and `models:` with `<models>`.
fn mock_gateway(mock: &MockServer, router: &str, models: &str) -> Gateway {
    let base = mock.base_url();
    let models = if models.is_empty() {
        String::new()
    } else {
        format!("models:\n{models}")
    };
    gateway(&format!(
        "providers:\n  mock: {{ type: openai, api_base: \"{base}\", api_key: k }}\n  claude: {{ type: anthropic, api_base: \"{base}\", api_key: k }}\n  dead: {{ type: openai, api_base: \"{}\", api_key: k }}\nrouter: {{ {router} }}\n{models}",
        dead_base_url()
    ))
}

/// One alias in the default (fallback) strategy with string-form targets.
fn alias(name: &str, targets: &[&str]) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!("  - name: {name}\n    targets: [{}]\n", list.join(", "))
}

fn request(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello"}]})
}

fn streaming(model: &str) -> Value {
    let mut body = hello(model);
    body["stream"] = json!(true);
    body
}

async fn collect(stream: ChatStream) -> (Vec<ChatCompletionChunk>, Option<Error>) {
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

/// How many requests for `model` (directives included) the mock received.
fn sent(mock: &MockServer, model: &str) -> usize {
    mock.requests()
        .iter()
        .filter(|r| r.body["model"] == model)
        .count()
}

/// `(provider, model, status)` of every attempt, in order.
fn trail(attempts: &[Attempt]) -> Vec<(String, String, Option<u16>)> {
    attempts
        .iter()
        .map(|a| (a.provider.clone(), a.model.clone(), a.status))
        .collect()
}

fn step(provider: &str, model: &str, status: Option<u16>) -> (String, String, Option<u16>) {
    (provider.to_owned(), model.to_owned(), status)
}

/// The router's state of `provider/model`.
fn state(gw: &Gateway, provider: &str, model: &str) -> TargetState {
    let states = gw.target_states();
    states
        .iter()
        .find(|s| s.provider == provider && s.model == model)
        .cloned()
        .unwrap_or_else(|| panic!("no state for {provider}/{model} in {states:?}"))
}

/// Polls `check` every 10 ms until it holds, for at most `limit`.
async fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

/// A plain HTTP server answering every request with `status` and the JSON `body`, whatever the
/// path: an upstream error the mock cannot express per target. Returns its address and a
/// counter of requests served. The thread lives until the test process ends.
fn canned(status: u16, body: Value) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let body = body.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut request = vec![0; length];
            if reader.read_exact(&mut request).is_err() {
                continue;
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, hits)
}

// ---------------------------------------------------------------------------------------------
// Classification: one table
// ---------------------------------------------------------------------------------------------

fn openai_error(message: &str, code: Option<&str>) -> Vec<u8> {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}})
        .to_string()
        .into_bytes()
}

#[test]
fn classification_table() {
    let upstream = |status: u16| Error::upstream("p", status, &openai_error("x", None));
    for status in [400, 413, 415, 422] {
        assert_eq!(classify(&upstream(status)), Decision::FailNow, "{status}");
    }
    for status in [401, 403, 404] {
        assert_eq!(
            classify(&upstream(status)),
            Decision::NextTarget,
            "{status}"
        );
    }
    for status in [408, 409, 429, 500, 502, 503, 504, 529] {
        assert_eq!(
            classify(&upstream(status)),
            Decision::RetryThenNext,
            "{status}"
        );
    }
    for kind in [ErrorKind::Connection, ErrorKind::Timeout] {
        assert_eq!(
            classify(&Error::new(kind, "x").with_provider("p")),
            Decision::RetryThenNext,
            "{kind:?}"
        );
    }
    let context_errors = [
        openai_error(
            "This model's maximum context length is 8192 tokens",
            Some("context_length_exceeded"),
        ),
        openai_error("prompt is too long: 210000 tokens > 200000 maximum", None),
        openai_error(
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            None,
        ),
    ];
    for body in context_errors {
        let err = Error::upstream("p", 400, &body);
        assert_eq!(
            classify(&err),
            Decision::NextTarget,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. 429 with Retry-After: retried on the same target after the wait it asks for
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_succeeds_on_the_same_target() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(&mock, "retries: 2, backoff_base_ms: 10", "");

    for (model, at_least) in [
        ("mock-gpt~fail_first=1~key=ra~status=429~retry_after=1", 950),
        (
            "mock-gpt~fail_first=1~key=ra_ms~status=429~retry_after_ms=300",
            280,
        ),
    ] {
        let started = Instant::now();
        let answer = gw
            .chat(request(hello(&format!("mock/{model}"))))
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(
            trail(&answer.route.attempts),
            vec![
                step("mock", model, Some(429)),
                step("mock", model, Some(200))
            ]
        );
        assert_eq!(answer.route.model, model);
        assert!(
            elapsed >= Duration::from_millis(at_least) && elapsed < Duration::from_secs(4),
            "{model}: {elapsed:?}"
        );
        assert_eq!(sent(&mock, model), 2);
    }

    // A Retry-After longer than the cap waits the cap only.
    let gw = mock_gateway(
        &mock,
        "retries: 1, backoff_base_ms: 10, retry_after_cap_ms: 200",
        "",
    );
    let model = "mock-gpt~fail_first=1~key=ra_cap~status=429~retry_after=30";
    let started = Instant::now();
    let answer = gw
        .chat(request(hello(&format!("mock/{model}"))))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(answer.route.attempts.len(), 2);
    assert!(
        elapsed >= Duration::from_millis(180) && elapsed < Duration::from_secs(3),
        "capped wait: {elapsed:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. 529 overloaded (Anthropic): retried, then the next target serves; recorded as 503
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn anthropic_overloaded_is_retried_then_the_next_target_serves() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let overloaded = "mock-claude~status=529";
    let gw = mock_gateway(
        &mock,
        "retries: 1, backoff_base_ms: 10",
        &alias("smart", &["claude/mock-claude~status=529", "mock/mock-gpt"]),
    );
    let answer = gw.chat(request(hello("smart"))).await.unwrap();
    assert_eq!(
        answer.choices[0].message.content.as_deref(),
        Some(HELLO_ANSWER)
    );
    assert_eq!(
        (answer.route.provider.as_str(), answer.route.model.as_str()),
        ("mock", "mock-gpt")
    );
    assert_eq!(
        trail(&answer.route.attempts),
        vec![
            step("claude", overloaded, Some(503)),
            step("claude", overloaded, Some(503)),
            step("mock", "mock-gpt", Some(200)),
        ]
    );
    let first = &answer.route.attempts[0];
    assert_eq!(
        first.error_type.as_deref(),
        Some("service_unavailable_error")
    );
    assert_eq!(first.error_message.as_deref(), Some("mock error 529"));
    let to_messages = mock
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/messages")
        .count();
    assert_eq!(to_messages, 2, "the Anthropic endpoint was tried twice");
}

// ---------------------------------------------------------------------------------------------
// 3. 500 then success: retried on the same target
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn server_error_is_retried_on_the_same_target() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let flaky = "mock-gpt~fail_first=1~key=k500~status=500";
    let gw = mock_gateway(
        &mock,
        "retries: 1, backoff_base_ms: 10",
        &alias("smart", &[&format!("mock/{flaky}"), "mock/other"]),
    );
    let started = Instant::now();
    let answer = gw.chat(request(hello("smart"))).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(answer.route.model, flaky);
    assert_eq!(
        trail(&answer.route.attempts),
        vec![
            step("mock", flaky, Some(500)),
            step("mock", flaky, Some(200))
        ]
    );
    assert_eq!(
        answer.route.attempts[0].error_type.as_deref(),
        Some("server_error")
    );
    assert_eq!(answer.route.attempts[1].error_type, None);
    assert_eq!(sent(&mock, "other"), 0);
}

// ---------------------------------------------------------------------------------------------
// 4. Connection refused: retried, then the next target
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connection_refused_moves_to_the_next_target() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(
        &mock,
        "retries: 1, backoff_base_ms: 10",
        &alias("smart", &["dead/gpt-4o", "mock/mock-gpt"]),
    );
    let started = Instant::now();
    let answer = gw.chat(request(hello("smart"))).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(answer.route.provider, "mock");
    let attempts = &answer.route.attempts;
    assert_eq!(
        trail(attempts),
        vec![
            step("dead", "gpt-4o", None),
            step("dead", "gpt-4o", None),
            step("mock", "mock-gpt", Some(200)),
        ]
    );
    for a in &attempts[..2] {
        assert_eq!(a.error_type.as_deref(), Some("api_connection_error"));
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Reset mid-stream: before the first byte falls back, after it ends the stream with an error
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn stream_reset_before_the_first_byte_falls_back_and_after_it_errors() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(
        &mock,
        "retries: 0",
        &format!(
            "{}{}",
            alias("early", &["mock/mock-gpt~drop_after=0", "mock/mock-gpt"]),
            alias("late", &["mock/mock-gpt~drop_after=3", "mock/backup"])
        ),
    );

    let stream = gw.chat_stream(request(streaming("early"))).await.unwrap();
    let route = stream.route().clone();
    assert_eq!(route.model, "mock-gpt");
    assert_eq!(route.attempts.len(), 2);
    assert_eq!(route.attempts[0].model, "mock-gpt~drop_after=0");
    assert!(route.attempts[0].error_type.is_some());
    assert_eq!(route.attempts[1].error_type, None);
    let (chunks, err) = collect(stream).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text_of(&chunks), HELLO_ANSWER);
    let finishes: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason.clone())
        .collect();
    assert_eq!(finishes, vec![FinishReason::Stop]);

    let stream = gw.chat_stream(request(streaming("late"))).await.unwrap();
    assert_eq!(stream.route().model, "mock-gpt~drop_after=3");
    assert_eq!(stream.route().attempts.len(), 1);
    let (chunks, err) = collect(stream).await;
    assert!(
        !text_of(&chunks).is_empty(),
        "content came before the reset"
    );
    let err = err.expect("a reset after the first byte ends the stream with an error");
    assert_eq!(err.provider(), Some("mock"));
    assert_eq!(sent(&mock, "backup"), 0, "no fallback once bytes were sent");
}

// ---------------------------------------------------------------------------------------------
// 6. Slow first byte: the TTFT timeout (provider or request) ends the attempt, the next serves
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn slow_first_byte_times_out_and_the_next_target_serves() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let slow = "mock-gpt~first_byte_delay_ms=2000";
    let gw = gateway(&format!(
        "providers:\n  slow: {{ type: openai, api_base: \"{base}\", api_key: k, ttft_timeout_ms: 200 }}\n  mock: {{ type: openai, api_base: \"{base}\", api_key: k }}\nrouter: {{ retries: 0, timeout_ms: 10000 }}\nmodels:\n{}{}{}",
        alias("by_provider", &[&format!("slow/{slow}"), "mock/mock-gpt"]),
        alias("by_request", &[&format!("mock/{slow}"), "mock/mock-gpt"]),
        alias(
            "steady",
            &["slow/mock-gpt~chunk_delay_ms=100~chunks=4", "mock/never"]
        ),
    ));

    let check = |attempts: &[Attempt], provider: &str| {
        assert_eq!(attempts.len(), 2, "{attempts:?}");
        assert_eq!(
            (attempts[0].provider.as_str(), attempts[0].model.as_str()),
            (provider, slow)
        );
        assert_eq!(attempts[0].error_type.as_deref(), Some("timeout_error"));
        assert!(
            matches!(attempts[0].status, None | Some(504)),
            "{attempts:?}"
        );
        assert!(attempts[0].latency_ms < 1500, "{attempts:?}");
        assert_eq!(
            (attempts[1].model.as_str(), attempts[1].status),
            ("mock-gpt", Some(200))
        );
    };

    for (model, provider, ttft) in [
        ("by_provider", "slow", None),
        ("by_request", "mock", Some(200)),
    ] {
        let mut body = hello(model);
        if let Some(ms) = ttft {
            body["ttft_timeout_ms"] = json!(ms);
        }
        let started = Instant::now();
        let answer = gw.chat(request(body.clone())).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(2), "{model}");
        check(&answer.route.attempts, provider);

        body["stream"] = json!(true);
        let started = Instant::now();
        let stream = gw.chat_stream(request(body)).await.unwrap();
        check(&stream.route().attempts, provider);
        let (chunks, err) = collect(stream).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(text_of(&chunks), HELLO_ANSWER);
        assert!(started.elapsed() < Duration::from_secs(2), "{model} stream");
    }
    let last = mock.requests().last().unwrap().body.clone();
    assert!(
        last.get("ttft_timeout_ms").is_none(),
        "gateway fields are not sent upstream: {last}"
    );

    // The request's total `timeout_ms` ends a slow attempt too.
    let mut body = hello("by_request");
    body["timeout_ms"] = json!(300);
    let started = Instant::now();
    let answer = gw.chat(request(body)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    check(&answer.route.attempts, "mock");
    assert!(
        mock.requests()
            .last()
            .unwrap()
            .body
            .get("timeout_ms")
            .is_none(),
        "gateway fields are not sent upstream"
    );

    // The TTFT bounds the first byte only: a stream that starts at once may take longer.
    let started = Instant::now();
    let stream = gw.chat_stream(request(streaming("steady"))).await.unwrap();
    assert_eq!(stream.route().attempts.len(), 1);
    let (chunks, err) = collect(stream).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text_of(&chunks), HELLO_ANSWER);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(sent(&mock, "never"), 0);
}

// ---------------------------------------------------------------------------------------------
// 7. Context window exceeded: next target; any other 400: fail now, unchanged
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn context_length_errors_move_on_in_every_provider_format() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let (openai, openai_hits) = canned(
        400,
        json!({"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
    );
    let (anthropic, anthropic_hits) = canned(
        400,
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}, "request_id": "req_1"}),
    );
    let (gemini, gemini_hits) = canned(
        400,
        json!({"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}),
    );
    let gw = gateway(&format!(
        "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\n  small_oa: {{ type: openai, api_base: \"{openai}/v1\", api_key: k }}\n  small_an: {{ type: anthropic, api_base: \"{anthropic}/v1\", api_key: k }}\n  small_ge: {{ type: gemini, api_base: \"{gemini}/v1beta\", api_key: k }}\nrouter: {{ retries: 2, backoff_base_ms: 10 }}\nmodels:\n{}{}{}",
        mock.base_url(),
        alias("oa", &["small_oa/gpt-4", "mock/mock-gpt"]),
        alias("an", &["small_an/claude-3-haiku", "mock/mock-gpt"]),
        alias("ge", &["small_ge/gemini-1.0-pro", "mock/mock-gpt"]),
    ));
    for (alias, provider, hits) in [
        ("oa", "small_oa", &openai_hits),
        ("an", "small_an", &anthropic_hits),
        ("ge", "small_ge", &gemini_hits),
    ] {
        let answer = gw.chat(request(hello(alias))).await.unwrap();
        let attempts = &answer.route.attempts;
        assert_eq!(attempts.len(), 2, "{alias}: {attempts:?}");
        assert_eq!(
            (attempts[0].provider.as_str(), attempts[0].status),
            (provider, Some(400)),
            "{alias}"
        );
        assert_eq!(
            (attempts[1].provider.as_str(), attempts[1].status),
            ("mock", Some(200)),
            "{alias}"
        );
        assert_eq!(answer.route.provider, "mock");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "{alias}: a context-length error is not retried on the same target"
        );
    }
}

#[tokio::test]
async fn client_errors_fail_now_with_the_upstream_error_unchanged() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(
        &mock,
        "retries: 2, backoff_base_ms: 10",
        &format!(
            "{}{}{}",
            alias("s400", &["mock/mock-gpt~status=400", "mock/spare"]),
            alias("s422", &["mock/mock-gpt~status=422", "mock/spare"]),
            alias("body", &["mock/first", "mock/spare"]),
        ),
    );
    for (alias, status) in [("s400", 400), ("s422", 422)] {
        let err = gw.chat(request(hello(alias))).await.unwrap_err();
        assert_eq!(err.status(), status, "{alias}");
        assert_eq!(err.message(), format!("mock error {status}"));
        let body = serde_json::to_value(err.to_body()).unwrap();
        assert_eq!(
            body,
            json!({"error": {"message": format!("mock error {status}"), "type": "invalid_request_error", "param": null, "code": null}}),
            "{alias}"
        );
        assert_eq!(
            trail(err.attempts()),
            vec![step(
                "mock",
                &format!("mock-gpt~status={status}"),
                Some(status)
            )]
        );
    }
    let mut body = hello("body");
    body["mock"] = json!({"status": 400, "body": {"error": {"message": "bad thing", "type": "invalid_request_error", "param": "temperature", "code": "invalid_value"}}});
    let err = gw.chat(request(body)).await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert_eq!(err.message(), "bad thing");
    assert_eq!(err.param(), Some("temperature"));
    assert_eq!(err.code(), Some(&json!("invalid_value")));
    assert_eq!(err.attempts().len(), 1);
    assert_eq!(
        sent(&mock, "spare"),
        0,
        "a bad request is not sent elsewhere"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. 401 / 403 / 404 at a provider: the next target at once, no retry
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn auth_and_not_found_errors_move_to_the_next_target_without_retry() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut models = String::new();
    for status in [401, 403, 404] {
        models.push_str(&alias(
            &format!("s{status}"),
            &[&format!("mock/mock-gpt~status={status}"), "mock/mock-gpt"],
        ));
    }
    let gw = mock_gateway(&mock, "retries: 2, backoff_base_ms: 10", &models);
    for status in [401, 403, 404] {
        let answer = gw
            .chat(request(hello(&format!("s{status}"))))
            .await
            .unwrap();
        let failing = format!("mock-gpt~status={status}");
        assert_eq!(
            trail(&answer.route.attempts),
            vec![
                step("mock", &failing, Some(status)),
                step("mock", "mock-gpt", Some(200))
            ]
        );
        assert_eq!(
            answer.route.attempts[0].error_message.as_deref(),
            Some(format!("mock error {status}").as_str())
        );
        assert_eq!(sent(&mock, &failing), 1, "{status} is not retried");
    }
}

// ---------------------------------------------------------------------------------------------
// 9. Every target fails: the most relevant error, with every attempt in order
// ---------------------------------------------------------------------------------------------

fn all_failing(mock: &MockServer) -> Gateway {
    mock_gateway(
        mock,
        "retries: 1, backoff_base_ms: 10, cooldown_failures: 100",
        &format!(
            "{}{}",
            alias(
                "all_retryable",
                &["mock/a~status=503", "mock/b~status=500", "dead/c"]
            ),
            alias("with_auth", &["mock/d~status=401", "mock/e~status=503"]),
        ),
    )
}

#[tokio::test]
async fn when_everything_fails_every_attempt_is_listed_in_order() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = all_failing(&mock);
    let started = Instant::now();
    let err = gw.chat(request(hello("all_retryable"))).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        trail(err.attempts()),
        vec![
            step("mock", "a~status=503", Some(503)),
            step("mock", "a~status=503", Some(503)),
            step("mock", "b~status=500", Some(500)),
            step("mock", "b~status=500", Some(500)),
            step("dead", "c", None),
            step("dead", "c", None),
        ]
    );
    let types: Vec<_> = err
        .attempts()
        .iter()
        .map(|a| a.error_type.as_deref().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "server_error",
            "server_error",
            "server_error",
            "server_error",
            "api_connection_error",
            "api_connection_error"
        ]
    );
    assert!(err.attempts().iter().all(|a| a.error_message.is_some()));

    let err = gw.chat(request(hello("with_auth"))).await.unwrap_err();
    assert_eq!(
        trail(err.attempts()),
        vec![
            step("mock", "d~status=401", Some(401)),
            step("mock", "e~status=503", Some(503)),
            step("mock", "e~status=503", Some(503)),
        ]
    );

    // Streams list the same.
    let err = gw
        .chat_stream(request(streaming("all_retryable")))
        .await
        .unwrap_err();
    assert_eq!(err.attempts().len(), 6);
}

/// Contract: the error returned is the last non-retryable-class one if any, else the last.
#[tokio::test]
async fn when_everything_fails_the_most_relevant_error_is_returned() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = all_failing(&mock);

    // A failure no retry could fix (401) is more telling than the overload after it.
    let err = gw.chat(request(hello("with_auth"))).await.unwrap_err();
    assert_eq!(err.attempts().len(), 3);
    let with_auth = (err.status(), err.kind(), err.provider().map(str::to_owned));

    // All of the retry class: the last error (the connection failure at `dead`).
    let err = gw.chat(request(hello("all_retryable"))).await.unwrap_err();
    assert_eq!(err.attempts().len(), 6);
    let all_retryable = (err.status(), err.kind(), err.provider().map(str::to_owned));

    assert_eq!(
        (with_auth, all_retryable),
        (
            (401, ErrorKind::Authentication, Some("mock".to_owned())),
            (502, ErrorKind::Connection, Some("dead".to_owned()))
        ),
        "(401 then 503s, 503/500/connection-refused)"
    );
}

/// An upstream 504 is an answer: the attempt keeps the provider's status.
#[tokio::test]
async fn an_upstream_504_is_recorded_with_its_status() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(
        &mock,
        "retries: 0",
        &alias("smart", &["mock/a~status=504", "mock/b"]),
    );
    let answer = gw.chat(request(hello("smart"))).await.unwrap();
    assert_eq!(
        trail(&answer.route.attempts),
        vec![
            step("mock", "a~status=504", Some(504)),
            step("mock", "b", Some(200))
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Cooldown: closed -> open -> half-open (one probe) -> open again / closed
// ---------------------------------------------------------------------------------------------

/// Fires `n` requests for `model` at once; returns the routes, all of which must succeed.
async fn burst(gw: &Gateway, model: &str, n: usize) -> Vec<opengateway::Route> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let gw = gw.clone();
        let body = hello(model);
        tasks.spawn(async move { gw.chat(request(body)).await.map(|a| a.route.clone()) });
    }
    let mut routes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        routes.push(done.unwrap().expect("no failure reaches the client"));
    }
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn circuit_opens_skips_probes_once_and_closes_on_success() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    // Fails its first 3 requests, each after 150 ms (so a probe stays in flight a while).
    let flaky = "mock-gpt~fail_first=3~key=cd~status=503~first_byte_delay_ms=150";
    let gw = mock_gateway(
        &mock,
        "retries: 0, cooldown_s: 0.3, cooldown_failures: 2",
        &alias("smart", &[&format!("mock/{flaky}"), "mock/ok"]),
    );
    let cooldown = Duration::from_millis(350);

    // Closed: one failure is not enough.
    let answer = gw.chat(request(hello("smart"))).await.unwrap();
    assert_eq!(answer.route.attempts.len(), 2);
    let s = state(&gw, "mock", flaky);
    assert_eq!(
        (s.circuit, s.consecutive_failures),
        (CircuitState::Closed, 1)
    );

    // The second consecutive failure opens it.
    let answer = gw.chat(request(hello("smart"))).await.unwrap();
    assert_eq!(answer.route.attempts.len(), 2);
    let opened = Instant::now();
    let s = state(&gw, "mock", flaky);
    assert_eq!((s.circuit, s.consecutive_failures), (CircuitState::Open, 2));
    assert_eq!(s.in_flight, 0);
    let health = serde_json::to_value(gw.health().await).unwrap();
    let entry = health["targets"]
        .as_array()
        .expect("/health lists the targets")
        .iter()
        .find(|t| t["provider"] == "mock" && t["model"] == flaky)
        .cloned()
        .unwrap();
    assert_eq!(entry["circuit"], "open");
    assert_eq!(entry["consecutive_failures"], 2);
    for field in ["in_flight", "ttft_ms", "requests", "failures"] {
        assert!(entry.get(field).is_some(), "/health target lacks {field}");
    }

    // Open: skipped, the mock sees nothing more.
    for _ in 0..5 {
        let answer = gw.chat(request(hello("smart"))).await.unwrap();
        assert_eq!(
            trail(&answer.route.attempts),
            vec![step("mock", "ok", Some(200))]
        );
    }
    assert!(
        opened.elapsed() < Duration::from_millis(300),
        "test too slow"
    );
    assert_eq!(sent(&mock, flaky), 2);

    // Half-open: of a burst, exactly one request probes; it fails, so the circuit opens again.
    tokio::time::sleep(cooldown.saturating_sub(opened.elapsed())).await;
    let probing = {
        let gw = gw.clone();
        tokio::spawn(async move { burst(&gw, "smart", 8).await })
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        state(&gw, "mock", flaky).circuit,
        CircuitState::HalfOpen,
        "a probe is in flight"
    );
    let routes = probing.await.unwrap();
    let probes: Vec<_> = routes
        .iter()
        .filter(|r| r.attempts.iter().any(|a| a.model == flaky))
        .collect();
    assert_eq!(probes.len(), 1, "exactly one probe: {routes:?}");
    assert_eq!(probes[0].attempts[0].status, Some(503));
    assert_eq!(sent(&mock, flaky), 3);
    let reopened = Instant::now();
    assert_eq!(state(&gw, "mock", flaky).circuit, CircuitState::Open);
    let answer = gw.chat(request(hello("smart"))).await.unwrap();
    assert_eq!(answer.route.attempts.len(), 1, "open again: skipped");

    // The next probe succeeds: closed, and the target serves again in its turn.
    tokio::time::sleep(cooldown.saturating_sub(reopened.elapsed())).await;
    let routes = burst(&gw, "smart", 8).await;
    let served: Vec<_> = routes.iter().filter(|r| r.model == flaky).collect();
    assert_eq!(served.len(), 1, "exactly one probe: {routes:?}");
    assert_eq!(served[0].attempts.len(), 1);
    assert_eq!(sent(&mock, flaky), 4);
    let s = state(&gw, "mock", flaky);
    assert_eq!(
        (s.circuit, s.consecutive_failures),
        (CircuitState::Closed, 0)
    );
    let answer = gw.chat(request(hello("smart"))).await.unwrap();
    assert_eq!(
        trail(&answer.route.attempts),
        vec![step("mock", flaky, Some(200))]
    );
    let s = state(&gw, "mock", flaky);
    assert_eq!((s.requests, s.failures), (5, 3));
}

#[tokio::test]
async fn when_every_target_is_open_the_soonest_to_cool_is_tried_anyway() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(
        &mock,
        "retries: 0, cooldown_s: 30, cooldown_failures: 1",
        &alias("both", &["mock/a~status=503", "mock/b~status=500"]),
    );
    let err = gw.chat(request(hello("both"))).await.unwrap_err();
    assert_eq!(err.attempts().len(), 2);
    assert_eq!(
        state(&gw, "mock", "a~status=503").circuit,
        CircuitState::Open
    );
    assert_eq!(
        state(&gw, "mock", "b~status=500").circuit,
        CircuitState::Open
    );

    // Not refused for cooldown: `a` opened first, so it cools first and is tried.
    let err = gw.chat(request(hello("both"))).await.unwrap_err();
    assert_eq!(err.attempts()[0].model, "a~status=503");
    assert_eq!(err.attempts()[0].status, Some(503));
    assert_eq!(err.status(), 503, "the provider's error, not a refusal");
    assert_eq!(sent(&mock, "a~status=503"), 2);

    // A single open target is still tried.
    let direct = "solo~status=503";
    for n in 1..=3 {
        let err = gw
            .chat(request(hello(&format!("mock/{direct}"))))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 503);
        assert_eq!(sent(&mock, direct), n);
    }
}

#[tokio::test]
async fn a_cancelled_probe_does_not_wedge_the_circuit() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let flaky = "mock-gpt~fail_first=2~key=cancel~status=503~first_byte_delay_ms=300";
    let gw = mock_gateway(
        &mock,
        "retries: 0, cooldown_s: 0.2, cooldown_failures: 2",
        &alias("smart", &[&format!("mock/{flaky}"), "mock/ok"]),
    );
    for _ in 0..2 {
        gw.chat(request(hello("smart"))).await.unwrap();
    }
    assert_eq!(state(&gw, "mock", flaky).circuit, CircuitState::Open);
    tokio::time::sleep(Duration::from_millis(250)).await;

    // The probe's client gives up (a disconnect, a client-side timeout) before the answer.
    let gave_up =
        tokio::time::timeout(Duration::from_millis(100), gw.chat(request(hello("smart")))).await;
    assert!(gave_up.is_err());
    assert_eq!(sent(&mock, flaky), 3, "the probe went out");
    assert!(
        wait_until(Duration::from_secs(1), || state(&gw, "mock", flaky)
            .in_flight
            == 0)
        .await
    );

    // The target must be probed again by later requests, not skipped for ever.
    let deadline = Instant::now() + Duration::from_secs(2);
    while sent(&mock, flaky) == 3 && Instant::now() < deadline {
        gw.chat(request(hello("smart"))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sent(&mock, flaky),
        4,
        "no new probe after a cancelled one: {:?}",
        state(&gw, "mock", flaky)
    );
    assert_eq!(state(&gw, "mock", flaky).circuit, CircuitState::Closed);
}

#[tokio::test]
async fn client_errors_do_not_open_the_circuit_but_auth_failures_do() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(
        &mock,
        "retries: 0, cooldown_s: 30, cooldown_failures: 2",
        &format!(
            "{}{}",
            alias("bad", &["mock/mock-gpt~status=400", "mock/spare"]),
            alias("auth", &["mock/mock-gpt~status=401", "mock/mock-gpt"]),
        ),
    );
    for _ in 0..4 {
        let err = gw.chat(request(hello("bad"))).await.unwrap_err();
        assert_eq!(err.status(), 400);
    }
    let s = state(&gw, "mock", "mock-gpt~status=400");
    assert_eq!(
        (s.circuit, s.consecutive_failures),
        (CircuitState::Closed, 0)
    );
    assert_eq!(sent(&mock, "mock-gpt~status=400"), 4);

    for _ in 0..2 {
        let answer = gw.chat(request(hello("auth"))).await.unwrap();
        assert_eq!(answer.route.attempts.len(), 2);
    }
    assert_eq!(
        state(&gw, "mock", "mock-gpt~status=401").circuit,
        CircuitState::Open
    );
    let answer = gw.chat(request(hello("auth"))).await.unwrap();
    assert_eq!(
        trail(&answer.route.attempts),
        vec![step("mock", "mock-gpt", Some(200))]
    );
    assert_eq!(sent(&mock, "mock-gpt~status=401"), 2);
}

// ---------------------------------------------------------------------------------------------
// 11. Load balancing: weighted, least_busy, least_latency, priority groups
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weighted_spreads_by_weight() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(
        &mock,
        "retries: 0",
        "  - name: w\n    strategy: weighted\n    targets:\n      - { target: mock/heavy, weight: 3 }\n      - { target: mock/light, weight: 1 }\n",
    );
    let sem = Arc::new(tokio::sync::Semaphore::new(50));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..400 {
        let gw = gw.clone();
        let sem = sem.clone();
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            gw.chat(request(hello("w"))).await.map(|a| a.route.clone())
        });
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let route = done.unwrap().unwrap();
        assert_eq!(route.attempts.len(), 1);
        *counts.entry(route.model).or_default() += 1;
    }
    let heavy = counts.get("heavy").copied().unwrap_or(0);
    let light = counts.get("light").copied().unwrap_or(0);
    assert_eq!(heavy + light, 400);
    // Expected 300 / 100; the standard deviation is under 9.
    assert!((240..=360).contains(&heavy), "{counts:?}");
    assert_eq!((sent(&mock, "heavy"), sent(&mock, "light")), (heavy, light));
}

#[tokio::test]
async fn priority_groups_are_tried_in_order_and_balanced_within() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(
        &mock,
        "retries: 0, cooldown_failures: 1000",
        "  - name: grouped\n    strategy: weighted\n    targets:\n      - { target: \"mock/a~status=503\", weight: 1, priority: 0 }\n      - { target: mock/b, weight: 1, priority: 0 }\n      - { target: mock/c, priority: 1 }\n  - name: both_down\n    strategy: weighted\n    targets:\n      - { target: \"mock/d~status=503\", priority: 0 }\n      - { target: \"mock/e~status=500\", priority: 0 }\n      - mock/f\n      - { target: mock/g, priority: 1 }\n",
    );
    let mut first: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let answer = gw.chat(request(hello("grouped"))).await.unwrap();
        assert_eq!(
            answer.route.model, "b",
            "the rest of the group before priority 1"
        );
        *first
            .entry(answer.route.attempts[0].model.clone())
            .or_default() += 1;
    }
    assert_eq!(sent(&mock, "c"), 0);
    assert!(
        first.contains_key("a~status=503") && first.contains_key("b"),
        "both of group 0 come first sometimes: {first:?}"
    );

    // `mock/f` has the default priority 0: the whole group is tried before `g`.
    for _ in 0..10 {
        let answer = gw.chat(request(hello("both_down"))).await.unwrap();
        let attempts = &answer.route.attempts;
        assert_eq!(answer.route.model, "f", "{attempts:?}");
        assert!(
            attempts[..attempts.len() - 1]
                .iter()
                .all(|a| ["d~status=503", "e~status=500"].contains(&a.model.as_str())),
            "{attempts:?}"
        );
    }
    assert_eq!(sent(&mock, "g"), 0);
}

#[tokio::test]
async fn least_busy_avoids_the_target_with_streams_in_flight() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let a = "mock-gpt~chunk_delay_ms=50";
    let b = "mock-gpt";
    let gw = mock_gateway(
        &mock,
        "retries: 0",
        &format!(
            "{}{}  - name: busy\n    strategy: least_busy\n    targets: [\"mock/{a}\", \"mock/{b}\"]\n",
            alias("pin_a", &[&format!("mock/{a}")]),
            alias("pin_b", &[&format!("mock/{b}")]),
        ),
    );
    for (held_on, other) in [(a, b), (b, a)] {
        let pin = if held_on == a { "pin_a" } else { "pin_b" };
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(gw.chat_stream(request(streaming(pin))).await.unwrap());
        }
        assert_eq!(state(&gw, "mock", held_on).in_flight, 3);
        for _ in 0..10 {
            let answer = gw.chat(request(hello("busy"))).await.unwrap();
            assert_eq!(
                trail(&answer.route.attempts),
                vec![step("mock", other, Some(200))],
                "{held_on} has 3 streams in flight"
            );
        }
        drop(held);
        assert!(
            wait_until(Duration::from_secs(2), || state(&gw, "mock", held_on)
                .in_flight
                == 0)
            .await,
            "closing the streams ends their in-flight count"
        );
    }
}

#[tokio::test]
async fn least_latency_prefers_the_faster_first_byte() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let slow = "mock-gpt~first_byte_delay_ms=100";
    let fast = "mock-gpt";
    let gw = mock_gateway(
        &mock,
        "retries: 0",
        &format!(
            "  - name: quick\n    strategy: least_latency\n    targets: [\"mock/{slow}\", \"mock/{fast}\"]\n"
        ),
    );
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let answer = gw.chat(request(hello("quick"))).await.unwrap();
        assert_eq!(answer.route.attempts.len(), 1);
        *counts.entry(answer.route.model.clone()).or_default() += 1;
    }
    let slow_count = counts.get(slow).copied().unwrap_or(0);
    assert!(
        slow_count >= 1,
        "never-measured targets get measured: {counts:?}"
    );
    assert!(
        slow_count <= 4,
        "after warm-up the fast one wins: {counts:?}"
    );
    let (s, f) = (state(&gw, "mock", slow), state(&gw, "mock", fast));
    let (slow_ttft, fast_ttft) = (s.ttft_ms.unwrap(), f.ttft_ms.unwrap());
    assert!(slow_ttft > fast_ttft, "{slow_ttft} vs {fast_ttft}");
    assert!(slow_ttft >= 50.0, "{slow_ttft}");
    assert_eq!(s.requests + f.requests, 30);
}

// ---------------------------------------------------------------------------------------------
// 12. Stickiness: session_id, user and long shared prefixes pin the first target
// ---------------------------------------------------------------------------------------------

fn pair(name: &str, a: &str, b: &str, sticky: bool) -> String {
    format!(
        "  - name: {name}\n    strategy: weighted\n    sticky: {sticky}\n    targets:\n      - {{ target: {a}, weight: 1 }}\n      - {{ target: {b}, weight: 1 }}\n"
    )
}

#[tokio::test]
async fn sticky_sessions_users_and_long_prefixes_keep_their_target() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = mock_gateway(
        &mock,
        "retries: 0",
        &format!(
            "{}{}",
            pair("pair", "mock/s1", "mock/s2", true),
            pair("loose", "mock/t1", "mock/t2", false)
        ),
    );
    let served = |body: Value| {
        let gw = gw.clone();
        async move {
            let answer = gw.chat(request(body)).await.unwrap();
            assert_eq!(answer.route.attempts.len(), 1);
            answer.route.model.clone()
        }
    };

    // The same session or user: the same target every time, though the weights are equal.
    for (field, value) in [("session_id", "sess-a"), ("user", "alice")] {
        let mut seen = Vec::new();
        for i in 0..20 {
            let mut body = hello("pair");
            body[field] = json!(value);
            body["messages"][0]["content"] = json!(format!("question {i}"));
            seen.push(served(body).await);
        }
        assert!(seen.iter().all(|m| *m == seen[0]), "{field}: {seen:?}");
    }
    let last = mock.requests().last().unwrap().body.clone();
    assert_eq!(last["user"], "alice", "`user` is a real OpenAI field");
    assert!(
        mock.requests()
            .iter()
            .all(|r| r.body.get("session_id").is_none()),
        "session_id is not sent upstream"
    );

    // A long shared prefix (the system prompt) pins too.
    let system = "You are a helpful assistant. ".repeat(40);
    let mut seen = Vec::new();
    for i in 0..20 {
        let body = json!({"model": "pair", "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": format!("question {i}")}
        ]});
        seen.push(served(body).await);
    }
    assert!(seen.iter().all(|m| *m == seen[0]), "long prefix: {seen:?}");

    // Different sessions spread, and each keeps its own target.
    let mut firsts = HashMap::new();
    for i in 0..40 {
        let mut body = hello("pair");
        body["session_id"] = json!(format!("spread-{i}"));
        firsts.insert(i, served(body).await);
    }
    let distinct: std::collections::HashSet<_> = firsts.values().collect();
    assert_eq!(distinct.len(), 2, "sessions spread: {firsts:?}");
    for i in 0..10 {
        let mut body = hello("pair");
        body["session_id"] = json!(format!("spread-{i}"));
        assert_eq!(served(body).await, firsts[&i], "session spread-{i}");
    }

    // Short prompts without a key are not pinned; nor anything when `sticky: false`.
    for (alias, session) in [("pair", None), ("loose", Some("sess-b"))] {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..40 {
            let mut body = hello(alias);
            if let Some(s) = session {
                body["session_id"] = json!(s);
            }
            seen.insert(served(body).await);
        }
        assert_eq!(seen.len(), 2, "{alias}: {seen:?}");
    }
}

#[tokio::test]
async fn a_pinned_target_whose_circuit_opens_is_left_for_another() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    // `claude` speaks Anthropic to the same mock and drops the body's `mock` object, so a
    // `mock` failure knob in the body fails the OpenAI target only.
    let gw = mock_gateway(
        &mock,
        "retries: 0, cooldown_s: 30, cooldown_failures: 2",
        &pair("mixed", "mock/s1", "claude/mock-claude", true),
    );
    let mut pinned = None;
    for i in 0..40 {
        let mut body = hello("mixed");
        body["session_id"] = json!(format!("find-{i}"));
        let answer = gw.chat(request(body)).await.unwrap();
        if answer.route.provider == "mock" {
            pinned = Some(format!("find-{i}"));
            break;
        }
    }
    let session = pinned.expect("some session lands on mock/s1");

    // Other traffic (short prompts, no session: not sticky) opens the circuit of `mock/s1`.
    let mut opened = false;
    for _ in 0..60 {
        let mut body = hello("mixed");
        body["mock"] = json!({"status": 503});
        let answer = gw.chat(request(body)).await.unwrap();
        assert_eq!(answer.route.provider, "claude");
        if state(&gw, "mock", "s1").circuit == CircuitState::Open {
            opened = true;
            break;
        }
    }
    assert!(opened, "{:?}", state(&gw, "mock", "s1"));

    let mut body = hello("mixed");
    body["session_id"] = json!(session);
    let answer = gw.chat(request(body)).await.unwrap();
    assert_eq!(
        trail(&answer.route.attempts),
        vec![step("claude", "mock-claude", Some(200))],
        "the pinned target is open: the other serves first"
    );
}

// ---------------------------------------------------------------------------------------------
// 13. Concurrency: 1,000 requests, 100 in flight, one target failing until it recovers
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_requests_survive_a_failing_target() {
    const FAILURES: usize = 80;
    // The failing target has a server of its own, so its recordings are exact.
    let flaky_mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let flaky = format!("mock-gpt~fail_first={FAILURES}~key=conc~status=503");
    let gw = gateway(&format!(
        "providers:\n  flaky: {{ type: openai, api_base: \"{}\", api_key: k }}\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\nrouter: {{ retries: 0, cooldown_s: 0.03, cooldown_failures: 3 }}\nmodels:\n  - name: conc\n    strategy: weighted\n    targets:\n      - {{ target: \"flaky/{flaky}\", weight: 1 }}\n      - {{ target: mock/b, weight: 1 }}\n      - {{ target: mock/c, weight: 1 }}\n",
        flaky_mock.base_url(),
        mock.base_url()
    ));
    let started = Instant::now();

    // Watch the circuit while the load runs.
    let running = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (gw, running, flaky) = (gw.clone(), running.clone(), flaky.clone());
        tokio::spawn(async move {
            let mut seen_open = false;
            while running.load(Ordering::SeqCst) {
                seen_open |= gw
                    .target_states()
                    .iter()
                    .any(|s| s.model == flaky && s.circuit != CircuitState::Closed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            seen_open
        })
    };

    let sem = Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let gw = gw.clone();
        let sem = sem.clone();
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            gw.chat(request(hello("conc")))
                .await
                .map(|a| a.route.clone())
        });
    }
    let mut served_by_flaky = 0;
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(route) => served_by_flaky += usize::from(route.provider == "flaky"),
            Err(e) => failures.push(e),
        }
    }
    running.store(false, Ordering::SeqCst);
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        watcher.await.unwrap(),
        "the failing target's circuit opened"
    );
    let hit = flaky_mock.requests().len();
    assert!(hit >= 3, "{hit}");
    assert!(
        hit < 150,
        "the failing target got {hit} of 1000 requests; a third would be 333"
    );

    // Probed until it recovers, then it serves again and its answers succeed.
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut recovered_answers = 0;
    while recovered_answers < 3 {
        assert!(
            Instant::now() < deadline,
            "the target did not recover: {:?}",
            state(&gw, "flaky", &flaky)
        );
        let answer = gw.chat(request(hello("conc"))).await.unwrap();
        if answer.route.provider == "flaky" {
            served_by_flaky += 1;
            recovered_answers += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let s = state(&gw, "flaky", &flaky);
    assert_eq!(
        (s.circuit, s.consecutive_failures),
        (CircuitState::Closed, 0)
    );
    assert_eq!(
        flaky_mock.requests().len(),
        FAILURES + served_by_flaky,
        "every request after the {FAILURES} failures succeeded"
    );
    assert_eq!(s.failures, FAILURES as u64);
    assert_eq!(s.requests, (FAILURES + served_by_flaky) as u64);
    assert_eq!(s.in_flight, 0);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
