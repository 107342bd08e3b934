//! API keys end to end, through the `opengateway` binary with `server.auth: keys`: keys made
//! and revoked by the CLI count on the running server's next request; forged, colliding,
//! missing and revoked keys are refused; per-key rate limits, budgets and allowed models; the
//! store keeps only hashes; a store that cannot be read refuses (503); the admin keys API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bin, spawn_server};

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use base64::Engine;
use opengateway_mock::{MockConfig, MockServer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MASTER: &str = "sk-admin-keys-0123456789";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ogw-keys-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A config with `auth: keys` (the default, left implicit), the mock as `mock`, prices for
/// `mock/mock-gpt`, an alias `smart` and the admin master key.
fn write_config(dir: &Path, mock: &MockServer) -> PathBuf {
    let config = dir.join("gw.yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\nmodels:\n  - name: smart\n    targets: [mock/mock-gpt-mini]\nrouter: {{ retries: 0 }}\npricing:\n  models:\n    mock/mock-gpt: {{ input_cost_per_token: 0.0001, output_cost_per_token: 0.0002 }}\nserver: {{ database: \"sqlite://{}\", master_key: \"{MASTER}\" }}\n",
            mock.base_url(),
            dir.join("gw.db").display()
        ),
    )
    .unwrap();
    config
}

struct Setup {
    dir: PathBuf,
    config: PathBuf,
    child: Child,
    base: String,
    _mock: MockServer,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn setup(name: &str) -> Setup {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = temp_dir(name);
    let config = write_config(&dir, &mock);
    let (child, base) = spawn_server(&config);
    Setup {
        dir,
        config,
        child,
        base,
        _mock: mock,
    }
}

/// `opengateway keys create --json` with extra flags: the key's record and its secret.
fn create_key(config: &Path, name: &str, flags: &[&str]) -> (String, String) {
    let out = bin()
        .args(["keys", "create", "--json", "--name", name])
        .args(flags)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

fn list_keys(config: &Path) -> Vec<Value> {
    let out = bin()
        .args(["keys", "list", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The key list once `done` holds it, or after 10 s: another process sees a request's record
/// within about a second of its end (the ledger's writer commits in batches), not at once.
fn list_keys_once(config: &Path, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keys = list_keys(config);
        if done(&keys) || Instant::now() >= deadline {
            return keys;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello"}]})
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers))
            .to_str()
            .unwrap()
    }
}

async fn chat_with(base: &str, key: Option<&str>, body: &Value) -> Answer {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(body);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.unwrap();
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.json().await.unwrap(),
    }
}

async fn chat(base: &str, key: Option<&str>) -> Answer {
    chat_with(base, key, &hello("mock/mock-gpt")).await
}

fn assert_invalid_key(answer: &Answer, secret: Option<&str>) {
    assert_eq!(answer.status, 401, "{}", answer.body);
    let err = &answer.body["error"];
    assert_eq!(err["code"], "invalid_api_key", "{}", answer.body);
    assert!(err["message"].is_string() && err.get("param").is_some());
    if let Some(secret) = secret {
        assert!(
            !answer.body.to_string().contains(secret),
            "the key is echoed: {}",
            answer.body
        );
    }
}

fn random_key() -> String {
    let bytes: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
    format!(
        "ogw_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

#[tokio::test]
async fn cli_keys_work_and_forged_colliding_missing_and_revoked_keys_are_refused() {
    let s = setup("life").await;
    let (id, secret) = create_key(&s.config, "ci", &[]);
    assert!(
        secret.starts_with("ogw_") && secret.len() >= 4 + 43,
        "{secret}"
    );
    assert!(id.starts_with("key_"));

    // Created after the server started: counts on its next request.
    let ok = chat(&s.base, Some(&secret)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.headers.get("x-ratelimit-limit-requests").is_none());
    // `x-api-key`, what Anthropic clients send, on either dialect.
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/messages", s.base))
        .header("x-api-key", &secret)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "mock/mock-gpt", "max_tokens": 20,
            "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    assert_invalid_key(&chat(&s.base, None).await, None);
    let forged = random_key();
    assert_invalid_key(&chat(&s.base, Some(&forged)).await, Some(&forged));
    assert_invalid_key(&chat(&s.base, Some("sk-not-ours")).await, None);
    let mut truncated = secret.clone();
    truncated.pop();
    assert_invalid_key(&chat(&s.base, Some(&truncated)).await, Some(&truncated));

    // A well-formed key whose hash shares the real key's lookup head (first 16 bits).
    let head = sha256(&secret);
    let started = Instant::now();
    let colliding = loop {
        let candidate = random_key();
        if sha256(&candidate)[..2] == head[..2] && candidate != secret {
            break candidate;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no collision found"
        );
    };
    assert_invalid_key(&chat(&s.base, Some(&colliding)).await, Some(&colliding));

    // Anthropic-shaped refusal on /v1/messages.
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/messages", s.base))
        .header("x-api-key", &forged)
        .json(&json!({"model": "mock/mock-gpt", "max_tokens": 20,
            "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");

    // Health and metrics-like endpoints are not behind keys; unknown /v1 paths are.
    assert_eq!(
        reqwest::get(format!("{}/health", s.base))
            .await
            .unwrap()
            .status(),
        200
    );

    // Revoked from the CLI: refused on the running server's next request.
    let out = bin()
        .args(["keys", "revoke", &id, "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    assert!(out.status.success());
    let revoked = chat(&s.base, Some(&secret)).await;
    assert_invalid_key(&revoked, Some(&secret));
    assert!(
        revoked.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    let keys = list_keys_once(&s.config, |keys| {
        keys.first().is_some_and(|k| k["requests"] == 2)
    });
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["revoked"], true);
    assert_eq!(keys[0]["requests"], 2, "{}", keys[0]);
    assert!(keys[0]["last_used_at_ms"].is_i64());

    // The store holds no raw key: neither the database nor its WAL.
    for file in ["gw.db", "gw.db-wal"] {
        let path = s.dir.join(file);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let needle = secret.as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{file} contains the key"
        );
    }
    // The table output names the key by id and prefix only.
    let out = bin()
        .args(["keys", "list", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains(&id) && table.contains(&secret[..12]),
        "{table}"
    );
    assert!(!table.contains(&secret), "{table}");
}

#[tokio::test]
async fn rpm_and_tpm_limits_refuse_with_headers_naming_the_limit() {
    let s = setup("rate").await;
    let (_, rpm_key) = create_key(&s.config, "rpm", &["--rpm", "2"]);
    for remaining in ["1", "0"] {
        let ok = chat(&s.base, Some(&rpm_key)).await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        assert_eq!(ok.header("x-ratelimit-limit-requests"), "2");
        assert_eq!(ok.header("x-ratelimit-remaining-requests"), remaining);
        assert!(ok.header("x-ratelimit-reset-requests").ends_with('s'));
    }
    let refused = chat(&s.base, Some(&rpm_key)).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    let err = &refused.body["error"];
    assert_eq!(err["code"], "rate_limit_exceeded");
    assert_eq!(err["type"], "requests");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("requests per min (RPM)") && message.contains("Limit 2"),
        "{message}"
    );
    assert!(message.contains("try again in"), "{message}");
    let retry: u64 = refused.header("retry-after").parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(refused.header("x-ratelimit-remaining-requests"), "0");
    assert!(refused.header("x-ratelimit-reset-requests").ends_with('s'));

    // Tokens: the answer's real tokens are charged when it ends, so the next request waits.
    let (_, tpm_key) = create_key(&s.config, "tpm", &["--tpm", "1000"]);
    let big = json!({"model": "mock/mock-gpt", "mock": {"completion_tokens": 1500},
        "messages": [{"role": "user", "content": "Hello"}]});
    let ok = chat_with(&s.base, Some(&tpm_key), &big).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.header("x-ratelimit-limit-tokens"), "1000");
    let refused = chat(&s.base, Some(&tpm_key)).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"]["type"], "tokens");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("tokens per min (TPM)"), "{message}");
    assert_eq!(refused.header("x-ratelimit-remaining-tokens"), "0");
    assert!(refused.headers.contains_key("retry-after"));
    assert!(refused.headers.get("x-ratelimit-limit-requests").is_none());
}

#[tokio::test]
async fn budgets_allowed_models_and_the_filtered_model_list() {
    let s = setup("budget").await;
    let (id, key) = create_key(&s.config, "capped", &["--budget-usd", "0.01"]);
    let body = json!({"model": "mock/mock-gpt", "max_tokens": 10,
        "messages": [{"role": "user", "content": "Hello"}]});
    let mut served = 0;
    let refused = loop {
        let answer = chat_with(&s.base, Some(&key), &body).await;
        if answer.status != 200 {
            break answer;
        }
        served += 1;
        assert!(served < 50, "the budget never refused");
    };
    assert!(served >= 1);
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "budget_exceeded");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("key:{id}")) && message.contains("does not reset"),
        "{message}"
    );
    let spent = list_keys(&s.config)[0]["spent_usd"].as_f64().unwrap();
    assert!(spent > 0.0 && spent <= 0.01, "{spent}");

    let (_, narrow) = create_key(&s.config, "narrow", &["--models", "mock/mock-gpt,smart"]);
    assert_eq!(chat(&s.base, Some(&narrow)).await.status, 200);
    assert_eq!(
        chat_with(&s.base, Some(&narrow), &hello("smart"))
            .await
            .status,
        200
    );
    let denied = chat_with(&s.base, Some(&narrow), &hello("mock/mock-gpt-mini")).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.body["error"]["code"], "model_not_allowed");
    assert_eq!(denied.body["error"]["param"], "model");
    assert!(
        denied.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mock/mock-gpt-mini")
    );
    // A fallback list is checked too.
    let mut fallback = hello("mock/mock-gpt");
    fallback["models"] = json!(["mock/mock-gpt-mini"]);
    let denied = chat_with(&s.base, Some(&narrow), &fallback).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.body["error"]["param"], "models[0]");

    let list = |key: String| {
        let base = s.base.clone();
        async move {
            let resp = reqwest::Client::new()
                .get(format!("{base}/v1/models"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let body: Value = resp.json().await.unwrap();
            let mut ids: Vec<String> = body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(list(narrow).await, ["mock/mock-gpt", "smart"]);
    assert_eq!(
        list(key).await,
        ["mock/mock-gpt", "mock/mock-gpt-mini", "smart"]
    );
}

#[tokio::test]
async fn a_restart_keeps_keys_and_usage_and_an_unreadable_store_refuses() {
    let mut s = setup("restart").await;
    let (id, key) = create_key(&s.config, "kept", &[]);
    assert_eq!(chat(&s.base, Some(&key)).await.status, 200);
    let status = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (child, base) = spawn_server(&s.config);
    s.child = child;
    s.base = base;
    assert_eq!(chat(&s.base, Some(&key)).await.status, 200);
    let keys = list_keys_once(&s.config, |keys| {
        keys.first().is_some_and(|k| k["requests"] == 2)
    });
    assert_eq!(keys[0]["id"], id.as_str());
    assert_eq!(keys[0]["requests"], 2, "{}", keys[0]);

    // The key table cannot be read: refused with 503, never passed.
    let db = rusqlite::Connection::open(s.dir.join("gw.db")).unwrap();
    db.execute_batch("ALTER TABLE api_keys RENAME TO api_keys_away")
        .unwrap();
    let refused = chat(&s.base, Some(&key)).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.body["error"]["message"].is_string());
    assert_eq!(chat(&s.base, Some(&random_key())).await.status, 503);
    db.execute_batch("ALTER TABLE api_keys_away RENAME TO api_keys")
        .unwrap();
    assert_eq!(chat(&s.base, Some(&key)).await.status, 200);
}

#[tokio::test]
async fn the_admin_keys_api_needs_the_master_key() {
    let s = setup("admin").await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", s.base);
    for auth in [None, Some("sk-admin-wrong")] {
        let mut req = client.get(url("/admin/keys"));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        assert_eq!(req.send().await.unwrap().status(), 401);
    }
    // An API key is not the master key.
    let (_, api_key) = create_key(&s.config, "user", &[]);
    let resp = client
        .post(url("/admin/keys"))
        .bearer_auth(&api_key)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let resp = client
        .post(url("/admin/keys"))
        .bearer_auth(MASTER)
        .json(&json!({"name": "svc", "rpm": 10, "models": ["mock/*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(created["limits"]["rpm"], 10);
    assert_eq!(chat(&s.base, Some(&secret)).await.status, 200);

    let resp = client
        .get(url("/admin/keys"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    let listed: Value = resp.json().await.unwrap();
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert!(
        !listed.to_string().contains(&secret),
        "secrets are not listed"
    );

    let resp = client
        .get(url(&format!("/admin/keys/{id}")))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    let one: Value = resp.json().await.unwrap();
    assert_eq!(one["name"], "svc");
    assert_eq!(one["requests"], 1);

    let resp = client
        .patch(url(&format!("/admin/keys/{id}")))
        .bearer_auth(MASTER)
        .json(&json!({"name": "svc2", "rpm": null, "models": ["smart"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let patched: Value = resp.json().await.unwrap();
    assert_eq!(patched["name"], "svc2");
    assert!(patched["limits"].get("rpm").is_none(), "{patched}");
    // The change counts on the next request.
    assert_eq!(chat(&s.base, Some(&secret)).await.status, 403);

    let resp = client
        .patch(url(&format!("/admin/keys/{id}")))
        .bearer_auth(MASTER)
        .json(&json!({"tpm": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["param"], "tpm");

    let resp = client
        .delete(url(&format!("/admin/keys/{id}")))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let revoked: Value = resp.json().await.unwrap();
    assert_eq!(revoked["revoked"], true);
    assert_invalid_key(&chat(&s.base, Some(&secret)).await, Some(&secret));

    let resp = client
        .post(url("/admin/keys/key_0000000000000000/revoke"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // The CLI sees the same data.
    let keys = list_keys(&s.config);
    let row = keys.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert_eq!(row["name"], "svc2");
    assert_eq!(row["revoked"], true);
}
