//! Observability over real HTTP on 127.0.0.1: `GET /health` with a healthy and a failing
//! provider, `GET /metrics`, `GET /admin/requests/{id}` with and without kept bodies, and the
//! binary's one log line per request (which never holds a body).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use opengateway::Gateway;
use opengateway::config::Config;
use opengateway_mock::{MockConfig, MockServer};
use serde_json::{Value, json};

struct Served {
    base: String,
    _mock: Option<MockServer>,
    _task: tokio::task::JoinHandle<()>,
}

/// A `http://127.0.0.1:PORT/v1` where nothing listens.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/v1", l.local_addr().unwrap())
}

async fn serve_yaml(yaml: &str, mock: Option<MockServer>) -> Served {
    let gateway = Gateway::from_config(Config::from_yaml(yaml).unwrap()).unwrap();
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

async fn get(url: &str, auth: Option<&str>) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(key) = auth {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, resp.text().await.unwrap())
}

async fn chat(base: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn health_reports_each_provider_and_is_degraded_with_one_failing() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "providers:\n  good: {{ type: openai, api_base: \"{}\", api_key: k }}\n  down: {{ type: openai, api_base: \"{}\", api_key: k, connect_timeout_ms: 1000 }}\nrouter: {{ retries: 0 }}\nserver: {{ auth: none }}\n",
        mock.base_url(),
        closed_port()
    );
    let s = serve_yaml(&yaml, Some(mock)).await;
    // Real traffic to the failing provider leaves its last error on /health.
    let (status, _) = chat(
        &s.base,
        json!({"model": "down/some-model", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 502);

    let (status, content_type, body) = get(&format!("{}/health", s.base), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("application/json"));
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["status"], "degraded", "{report}");
    let providers = report["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 2, "one check per configured provider");
    let by_id = |id: &str| providers.iter().find(|p| p["id"] == id).unwrap().clone();
    let good = by_id("good");
    assert_eq!(good["status"], "ok");
    assert!(good["latency_ms"].is_u64());
    assert!(good["error"].is_null() && good["last_error"].is_null());
    let down = by_id("down");
    assert_eq!(down["status"], "error", "{down}");
    assert!(down["latency_ms"].is_u64());
    assert!(down["error"].as_str().unwrap().contains("down"), "{down}");
    assert!(down["last_error"].is_string(), "{down}");
    assert!(down["last_error_at_ms"].is_i64(), "{down}");
}

#[tokio::test]
async fn health_is_503_when_nothing_usable_is_configured() {
    let failing = format!(
        "providers:\n  down: {{ type: openai, api_base: \"{}\", api_key: k, connect_timeout_ms: 1000 }}\n  nokey: {{ type: anthropic }}\nserver: {{ auth: none }}\n",
        closed_port()
    );
    let s = serve_yaml(&failing, None).await;
    let (status, _, body) = get(&format!("{}/health", s.base), None).await;
    assert_eq!(status, 503, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["status"], "unavailable");
    let statuses: Vec<&str> = report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["error", "unusable"]);

    let empty = serve_yaml("server: { auth: none }\n", None).await;
    let (status, _, body) = get(&format!("{}/health", empty.base), None).await;
    // Only when the environment offers no provider key does an empty config serve nothing.
    let report: Value = serde_json::from_str(&body).unwrap();
    if report["providers"].as_array().unwrap().is_empty() {
        assert_eq!(status, 503, "{body}");
    }
}

#[tokio::test]
async fn metrics_are_served_in_the_openmetrics_format() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\nserver: {{ auth: none }}\n",
        mock.base_url()
    );
    let s = serve_yaml(&yaml, Some(mock)).await;
    let (status, _) = chat(
        &s.base,
        json!({"model": "mock/mock-gpt", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, content_type, text) = get(&format!("{}/metrics", s.base), None).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, opengateway::metrics::CONTENT_TYPE);
    assert!(
        text.lines()
            .any(|l| l.starts_with("opengateway_requests_total{")
                && l.contains("model=\"mock/mock-gpt\"")
                && l.contains("status=\"ok\"")
                && l.ends_with(" 1")),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}

async fn admin_server(log_bodies: bool) -> Served {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\nserver: {{ auth: none, master_key: admin-secret, log_bodies: {log_bodies} }}\n",
        mock.base_url()
    );
    serve_yaml(&yaml, Some(mock)).await
}

#[tokio::test]
async fn admin_request_shows_the_record_and_its_bodies_when_kept() {
    let s = admin_server(true).await;
    let (status, answer) = chat(
        &s.base,
        json!({"model": "mock/mock-gpt", "messages": [{"role": "user", "content": "keep me"}]}),
    )
    .await;
    assert_eq!(status, 200);
    let id = answer["id"].as_str().unwrap().to_owned();
    // The record id is the x-request-id header; find it through the request log.
    let (_, _, log) = get(
        &format!("{}/admin/requests?limit=1", s.base),
        Some("admin-secret"),
    )
    .await;
    let log: Value = serde_json::from_str(&log).unwrap();
    let request_id = log["data"][0]["id"].as_str().unwrap().to_owned();

    let url = format!("{}/admin/requests/{request_id}", s.base);
    let (status, _, body) = get(&url, None).await;
    assert_eq!(status, 401, "the master key is needed: {body}");
    let (status, _, body) = get(&url, Some("admin-secret")).await;
    assert_eq!(status, 200, "{body}");
    let record: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(record["id"], request_id.as_str());
    assert_eq!(record["status"], "ok");
    assert_eq!(
        record["bodies"]["request"]["messages"][0]["content"],
        "keep me"
    );
    assert_eq!(record["bodies"]["response"]["id"], id.as_str());

    let (status, _, body) = get(
        &format!("{}/admin/requests/req_nope", s.base),
        Some("admin-secret"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("req_nope"));
}

#[tokio::test]
async fn admin_request_has_no_bodies_by_default() {
    let s = admin_server(false).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&json!({"model": "mock/mock-gpt", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (status, _, body) = get(
        &format!("{}/admin/requests/{request_id}", s.base),
        Some("admin-secret"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let record: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(record["id"], request_id.as_str());
    assert!(record["bodies"].is_null(), "{record}");
}

#[tokio::test]
async fn the_binary_logs_one_line_per_request_without_the_body() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("ogw-obs-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gw.yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: sk-provider-secret-0123456789 }}\nrouter: {{ retries: 0 }}\nserver: {{ auth: none, database: \"sqlite://{}\" }}\n",
            mock.base_url(),
            dir.join("gw.db").display()
        ),
    )
    .unwrap();
    let mut child = common::bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("OPENGATEWAY_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(url) = line.strip_prefix("opengateway listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(20)).unwrap();

    let marker = "CONFIDENTIAL-PROMPT-42";
    let ok = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "mock/mock-gpt", "messages": [{"role": "user", "content": marker}]}))
        .send()
        .await
        .unwrap();
    let ok_id = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        ok.text().await.unwrap().contains(marker),
        "the mock echoes it"
    );
    let failed = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "mock/mock-gpt~status=429", "messages": [{"role": "user", "content": marker}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 429);

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = logs.join().unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("opengateway::request"))
        .collect();
    assert_eq!(lines.len(), 2, "one line per request:\n{text}");
    let ok_line = lines.iter().find(|l| l.contains(&ok_id)).unwrap();
    assert!(ok_line.contains("INFO"), "{ok_line}");
    for field in [
        "model=mock/mock-gpt",
        "provider=\"mock\"",
        "upstream_model=\"mock-gpt\"",
        "status=ok",
        "http_status=200",
        "tokens_in=",
        "tokens_out=",
        "cost_usd=",
        "latency_ms=",
        "attempts=mock/mock-gpt:200",
    ] {
        assert!(ok_line.contains(field), "{field} missing: {ok_line}");
    }
    let failed_line = lines.iter().find(|l| !l.contains(&ok_id)).unwrap();
    assert!(failed_line.contains("WARN"), "{failed_line}");
    assert!(failed_line.contains("request_id=req_"), "{failed_line}");
    assert!(failed_line.contains("http_status=429"), "{failed_line}");
    assert!(failed_line.contains("status=error"), "{failed_line}");
    assert!(!text.contains(marker), "no body in the logs:\n{text}");
    assert!(
        !text.contains("sk-provider-secret"),
        "no provider key:\n{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
