//! The server's usage ledger in its SQLite store, through the `opengateway` binary: a process
//! killed with requests in flight loses none of them, and `opengateway usage` reads the totals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bin, spawn_server};

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use opengateway::accounting::{LedgerSink, RecordStatus, SqliteSink, UsageFilter};
use opengateway_mock::{MockConfig, MockServer};
use serde_json::{Value, json};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ogw-ledger-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_config(dir: &Path, mock: &MockServer) -> PathBuf {
    let config = dir.join("gw.yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\nrouter: {{ retries: 0, timeout_ms: 60000 }}\npricing:\n  platform_fee_percent: 5\n  models:\n    mock/mock-gpt: {{ input_cost_per_token: 0.0001, output_cost_per_token: 0.0002 }}\nserver: {{ auth: none, database: \"sqlite://{}\" }}\n",
            mock.base_url(),
            dir.join("gw.db").display()
        ),
    )
    .unwrap();
    config
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn chat(user: &str, knobs: Value) -> Value {
    json!({"model": "mock/mock-gpt", "user": user, "mock": knobs,
        "messages": [{"role": "user", "content": "Hello"}]})
}

fn usage_json(config: &Path, by: &str) -> Vec<Value> {
    let out = bin()
        .args(["usage", "--json", "--by", by, "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkill_with_50_requests_in_flight_leaves_each_recorded_once() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = temp_dir("sigkill");
    let config = write_config(&dir, &mock);
    let (mut child, base) = spawn_server(&config);
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/chat/completions");

    // Five requests that finish before the kill.
    for i in 0..5 {
        let resp = client
            .post(&url)
            .json(&chat(&format!("done-{i}"), json!({})))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .starts_with("req_")
        );
    }
    // Fifty that the provider holds for a minute.
    mock.clear_requests();
    let in_flight: Vec<_> = (0..50)
        .map(|i| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                client
                    .post(&url)
                    .json(&chat(
                        &format!("flight-{i}"),
                        json!({"first_byte_delay_ms": 60000}),
                    ))
                    .send()
                    .await
            })
        })
        .collect();
    // Every one of them was accepted once the provider has it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while mock.requests().len() < 50 {
        assert!(
            Instant::now() < deadline,
            "only {} arrived upstream",
            mock.requests().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&child, "-KILL");
    wait_exit(&mut child);
    for task in in_flight {
        assert!(
            task.await.unwrap().is_err(),
            "the killed server answered nobody"
        );
    }

    // Start again: the store is recovered before the server listens.
    let (mut child, _) = spawn_server(&config);
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child).success());

    let sink = SqliteSink::open(&dir.join("gw.db"), "inst_test_reader").unwrap();
    let records = sink.records(&UsageFilter::default(), usize::MAX).unwrap();
    assert_eq!(records.len(), 55, "one record per accepted request");
    let mut users: Vec<String> = records.iter().map(|r| r.user.clone().unwrap()).collect();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 55, "no request recorded twice");
    for r in &records {
        let user = r.user.as_deref().unwrap();
        if user.starts_with("done-") {
            assert_eq!(r.status, RecordStatus::Ok, "{r:?}");
            assert!(r.cost.total_usd > 0.0);
        } else {
            assert_eq!(r.status, RecordStatus::Interrupted, "{r:?}");
            assert_eq!(r.model, "mock/mock-gpt");
        }
    }
    // The CLI reads the same store.
    let by_status = usage_json(&config, "status");
    let count = |status: &str| {
        by_status
            .iter()
            .find(|row| row["group"]["status"] == status)
            .map(|row| row["requests"].as_u64().unwrap())
    };
    assert_eq!(count("ok"), Some(5));
    assert_eq!(count("interrupted"), Some(50));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn usage_cli_totals_by_model_user_and_tag() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = temp_dir("cli");
    let config = write_config(&dir, &mock);
    let (mut child, base) = spawn_server(&config);
    let client = reqwest::Client::new();
    for (user, tags) in [("ann", "web"), ("ann", "web,beta"), ("bo", "")] {
        let resp = client
            .post(format!("{base}/v1/chat/completions"))
            .header("x-opengateway-tags", tags)
            .json(&chat(user, json!({})))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let stream = client
        .post(format!("{base}/v1/chat/completions"))
        .json(
            &json!({"model": "mock/mock-gpt", "user": "bo", "stream": true,
            "messages": [{"role": "user", "content": "Hello"}]}),
        )
        .send()
        .await
        .unwrap();
    assert!(stream.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child).success());

    // Each request: 5 prompt tokens and 8 completion tokens at $1 / $2 per 10K, plus 5%.
    let one = (5.0 * 1e-4 + 8.0 * 2e-4) * 1.05;
    let by_model = usage_json(&config, "model");
    assert_eq!(by_model.len(), 1);
    assert_eq!(by_model[0]["group"]["model"], "mock/mock-gpt");
    assert_eq!(by_model[0]["requests"], 4);
    assert_eq!(by_model[0]["prompt_tokens"], 20);
    assert_eq!(by_model[0]["completion_tokens"], 32);
    let total = by_model[0]["total_cost_usd"].as_f64().unwrap();
    assert!((total - 4.0 * one).abs() < 1e-9, "{total}");
    let fee = by_model[0]["fee_usd"].as_f64().unwrap();
    assert!((fee - 4.0 * one / 1.05 * 0.05).abs() < 1e-9, "{fee}");

    let by_user = usage_json(&config, "user");
    let users: Vec<_> = by_user
        .iter()
        .map(|r| {
            (
                r["group"]["user"].as_str().unwrap().to_owned(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(users, [("ann".to_owned(), 2), ("bo".to_owned(), 2)]);

    let by_tag = usage_json(&config, "tag");
    let tags: Vec<_> = by_tag
        .iter()
        .map(|r| {
            (
                r["group"]["tag"].as_str().map(str::to_owned),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        [
            (None, 2),
            (Some("beta".to_owned()), 1),
            (Some("web".to_owned()), 2)
        ]
    );

    // With auth off every request is keyless.
    let by_key = usage_json(&config, "key");
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0]["group"]["key"], Value::Null);

    // The table form, and a bad dimension named in the error.
    let out = bin()
        .args(["usage", "--by", "model,day", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("model"), "{table}");
    assert!(table.contains("mock/mock-gpt"), "{table}");
    let out = bin()
        .args(["usage", "--by", "colour", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--by") && stderr.contains("colour"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_admin_api_needs_the_master_key_and_serves_totals_and_the_request_log() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let serve = |master: &str| {
        let yaml = format!(
            "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\nserver: {{ auth: none{master} }}\n",
            mock.base_url()
        );
        let gateway = opengateway::Gateway::from_config(
            opengateway::config::Config::from_yaml(&yaml).unwrap(),
        )
        .unwrap();
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move {
                axum::serve(listener, opengateway_server::app(gateway))
                    .await
                    .unwrap();
            });
            base
        }
    };
    let client = reqwest::Client::new();

    // No master key configured: refused, whatever is sent.
    let closed = serve("").await;
    let resp = client
        .get(format!("{closed}/admin/usage"))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("master_key"),
        "{body}"
    );

    let base = serve(", master_key: \"sk-admin-0123456789\"").await;
    for (user, n) in [("ann", 2), ("bo", 1)] {
        for _ in 0..n {
            let resp = client
                .post(format!("{base}/v1/chat/completions"))
                .json(&chat(user, json!({})))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
    }
    for auth in [
        None,
        Some("sk-admin-012345678"),
        Some("sk-admin-0123456789x"),
    ] {
        let mut req = client.get(format!("{base}/admin/usage"));
        if let Some(key) = auth {
            req = req.bearer_auth(key);
        }
        assert_eq!(req.send().await.unwrap().status(), 401, "{auth:?}");
    }
    let get = |path: String| {
        let client = client.clone();
        async move {
            let resp = client
                .get(path)
                .bearer_auth("sk-admin-0123456789")
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = get(format!("{base}/admin/usage?by=user&since=1d")).await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<_> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"]["user"].as_str().unwrap().to_owned(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("ann".to_owned(), 2), ("bo".to_owned(), 1)]);

    let (status, body) = get(format!("{base}/admin/requests?user=ann&limit=1")).await;
    assert_eq!(status, 200, "{body}");
    let records = body["data"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["user"], "ann");
    assert_eq!(records[0]["status"], "ok");
    assert!(records[0]["id"].as_str().unwrap().starts_with("req_"));

    let (status, body) = get(format!("{base}/admin/usage?by=colour")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "by", "{body}");
    let (status, body) = get(format!("{base}/admin/requests?since=yesterday")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "since", "{body}");
    let (status, _) = get(format!("{base}/admin/usage?colour=red")).await;
    assert_eq!(status, 400);
}
