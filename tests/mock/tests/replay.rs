//! Fixture replay over real HTTP: a hermetic temp fixtures dir, then the shared recorded fixtures.

// Helpers outside `#[test]` fns are test code too; a panic is the right failure there.
#![allow(clippy::unwrap_used)]

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use opengateway_mock::{MockConfig, MockServer};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// Where the shared provider fixtures live, relative to this crate.
const SHARED_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

const RECORDED_JSON: &str = "{\n    \"id\": \"chatcmpl-recorded\",  \"choices\": []\n}\n";
const RECORDED_SSE: &str = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"oh h\u{e9}llo w\u{f6}rld \u{2713} \u{1f600}\"}      }\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
const RECORDED_ERROR: &str =
    "{\n  \"error\": {\n    \"code\": 429,\n    \"status\": \"RESOURCE_EXHAUSTED\"\n  }\n}\n";

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A fixtures directory under the system temp dir, removed on drop.
struct TempFixtures(PathBuf);

impl TempFixtures {
    fn new() -> TempFixtures {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "opengateway-mock-fixtures-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let root = std::env::temp_dir().join(name);
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        TempFixtures(root)
    }

    fn case(&self, provider: &str, case: &str, files: &[(&str, &str)]) {
        let dir = self.0.join(provider).join(case);
        fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            fs::write(dir.join(name), text).unwrap();
        }
    }
}

impl Drop for TempFixtures {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

async fn start(dir: Option<&Path>) -> MockServer {
    let config = MockConfig {
        fixtures_dir: dir.map(Path::to_path_buf),
        ..MockConfig::default()
    };
    MockServer::start(config).await.unwrap()
}

/// POSTs `model` to the endpoint of `endpoint` ("openai", "anthropic", "gemini", "gemini-sse").
async fn send(server: &MockServer, endpoint: &str, model: &str) -> reqwest::Response {
    let addr = server.addr();
    let (url, body) = match endpoint {
        "openai" => (
            format!("http://{addr}/v1/chat/completions"),
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        "anthropic" => (
            format!("http://{addr}/v1/messages"),
            json!({"model": model, "max_tokens": 16, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        "gemini" => (
            format!("http://{addr}/v1beta/models/{model}:generateContent"),
            json!({"contents": [{"parts": [{"text": "hi"}]}]}),
        ),
        _ => (
            format!("http://{addr}/v1beta/models/{model}:streamGenerateContent?alt=sse"),
            json!({"contents": [{"parts": [{"text": "hi"}]}]}),
        ),
    };
    client().post(url).json(&body).send().await.unwrap()
}

/// The body as the client read it, piece by piece.
async fn chunks(mut response: reqwest::Response) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        chunks.push(chunk.to_vec());
    }
    chunks
}

#[tokio::test]
async fn json_fixture_is_served_byte_for_byte_with_its_meta() {
    let fixtures = TempFixtures::new();
    let meta = json!({
        "status": 200, "content_type": "application/json", "response_file": "response.json",
        "response_headers": {"x-request-id": "req_recorded", "content-encoding": "gzip", "content-length": "999"}
    });
    fixtures.case(
        "openai",
        "chat-ok",
        &[
            ("response.json", RECORDED_JSON),
            ("meta.json", &meta.to_string()),
        ],
    );
    let server = start(Some(&fixtures.0)).await;
    let response = send(&server, "openai", "fixture--openai--chat-ok").await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-request-id"], "req_recorded");
    assert!(
        headers.get("content-encoding").is_none(),
        "bodies are stored decoded"
    );
    assert_eq!(response.text().await.unwrap(), RECORDED_JSON);

    // Replayed requests are recorded like any other.
    let recorded = server.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].body["model"], "fixture--openai--chat-ok");
}

#[tokio::test]
async fn sse_fixture_arrives_in_small_pieces_cut_anywhere() {
    let fixtures = TempFixtures::new();
    fixtures.case(
        "anthropic",
        "stream-utf8",
        &[("response.sse", RECORDED_SSE)],
    );
    let server = start(Some(&fixtures.0)).await;
    let response = send(&server, "anthropic", "fixture--anthropic--stream-utf8").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "without meta.json the type follows the extension"
    );
    let chunks = chunks(response).await;
    assert!(chunks.iter().all(|chunk| chunk.len() <= 37), "{chunks:?}");
    assert!(chunks.len() >= RECORDED_SSE.len().div_ceil(37));
    assert_eq!(chunks.concat(), RECORDED_SSE.as_bytes());
    // At least one piece ends inside a multi-byte character.
    assert!(
        chunks
            .iter()
            .any(|chunk| std::str::from_utf8(chunk).is_err())
    );

    // Pacing directives work on fixture ids too.
    let response = send(
        &server,
        "anthropic",
        "fixture--anthropic--stream-utf8~chunk_delay_ms=2",
    )
    .await;
    assert_eq!(response.bytes().await.unwrap(), RECORDED_SSE.as_bytes());
}

#[tokio::test]
async fn gemini_fixture_comes_from_the_url_and_keeps_status_and_headers() {
    let fixtures = TempFixtures::new();
    let meta = json!({"status": 429, "content_type": "text/event-stream",
                      "response_headers": {"Retry-After": "9"}});
    fixtures.case(
        "gemini",
        "stream-429",
        &[
            ("response.sse", RECORDED_ERROR),
            ("meta.json", &meta.to_string()),
        ],
    );
    let server = start(Some(&fixtures.0)).await;
    let response = send(&server, "gemini-sse", "fixture--gemini--stream-429").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["retry-after"], "9");
    assert_eq!(response.text().await.unwrap(), RECORDED_ERROR);
    assert_eq!(
        server.requests()[0].path,
        "/v1beta/models/fixture--gemini--stream-429:streamGenerateContent"
    );
}

#[tokio::test]
async fn missing_fixtures_are_404s_in_each_format() {
    let fixtures = TempFixtures::new();
    fixtures.case("openai", "no-body", &[("meta.json", "{}")]);
    let server = start(Some(&fixtures.0)).await;
    let missing = fixtures.0.join("openai").join("nope");
    let missing = missing.to_str().unwrap();

    let response = send(&server, "openai", "fixture--openai--nope").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(missing),
        "{body}"
    );

    let response = send(&server, "anthropic", "fixture--openai--nope").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found_error");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(missing),
        "{body}"
    );

    let response = send(&server, "gemini", "fixture--openai--nope").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(missing),
        "{body}"
    );

    let response = send(&server, "openai", "fixture--openai--no-body").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("no response.* file"), "{message}");

    let response = send(&server, "openai", "fixture--../../etc--passwd").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let unconfigured = start(None).await;
    let response = send(
        &unconfigured,
        "anthropic",
        "fixture--anthropic--stream-text",
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("--fixtures"), "{message}");
}

/// Serves `provider/case` from the shared fixtures and checks status, type and bytes.
async fn check_shared(server: &MockServer, dir: &Path, endpoint: &str, provider: &str, case: &str) {
    let case_dir = dir.join(provider).join(case);
    let meta: Value =
        serde_json::from_slice(&fs::read(case_dir.join("meta.json")).unwrap()).unwrap();
    let file = meta["response_file"].as_str().unwrap();
    let expected = fs::read(case_dir.join(file)).unwrap();
    let response = send(server, endpoint, &format!("fixture--{provider}--{case}")).await;
    assert_eq!(
        u64::from(response.status().as_u16()),
        meta["status"].as_u64().unwrap(),
        "{provider}/{case}"
    );
    assert_eq!(
        response.headers()["content-type"],
        meta["content_type"].as_str().unwrap(),
        "{provider}/{case}"
    );
    assert!(response.headers().get("content-encoding").is_none());
    let streamed = !file.ends_with(".json");
    let chunks = chunks(response).await;
    if streamed && expected.len() > 37 {
        assert!(chunks.len() > 1, "{provider}/{case} arrives in pieces");
    }
    assert_eq!(chunks.concat(), expected, "{provider}/{case}");
}

#[tokio::test]
async fn shared_fixtures_replay_exactly() {
    let dir = Path::new(SHARED_FIXTURES);
    if !dir.is_dir() {
        eprintln!("skipping shared fixture replay: {SHARED_FIXTURES} does not exist");
        return;
    }
    let server = start(Some(dir)).await;
    check_shared(&server, dir, "openai", "openai", "chat-text-basic").await;
    check_shared(&server, dir, "anthropic", "anthropic", "stream-text").await;
    check_shared(&server, dir, "gemini-sse", "gemini", "stream-text").await;

    // Every case of the three formats the mock speaks, each on its own endpoint, concurrently.
    let mut all = Vec::new();
    for (provider, endpoint) in [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("gemini", "gemini-sse"),
    ] {
        for entry in fs::read_dir(dir.join(provider)).unwrap() {
            let case = entry.unwrap().file_name().into_string().unwrap();
            all.push((endpoint, provider, case));
        }
    }
    assert!(all.len() >= 3);
    let checks = all
        .iter()
        .map(|(endpoint, provider, case)| check_shared(&server, dir, endpoint, provider, case));
    futures_util::future::join_all(checks).await;
}
