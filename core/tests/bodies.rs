//! The store's policies against a real SQLite file: request and response bodies are kept only
//! with `server.log_bodies: true`, and `ledger.retention_days` deletes old records (and their
//! bodies) at start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use opengateway::Gateway;
use opengateway::accounting::{
    Ledger, LedgerSink, RecordStatus, RequestBodies, SqliteSink, UsageFilter, UsageRecord,
};
use opengateway::config::Config;
use opengateway::types::ChatCompletionRequest;
use opengateway_mock::{MockConfig, MockServer};
use serde_json::{Value, json};

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ogw-bodies-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("gw.db")
}

fn gateway(mock: &MockServer, db: &Path, extra: &str) -> Gateway {
    let yaml = format!(
        "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\nledger: {{ database: \"sqlite://{}\" }}\n{extra}",
        mock.base_url(),
        db.display()
    );
    Gateway::from_config(Config::from_yaml(&yaml).unwrap()).unwrap()
}

fn ask(marker: &str, stream: bool) -> ChatCompletionRequest {
    serde_json::from_value(json!({
        "model": "mock/mock-gpt",
        "messages": [{"role": "user", "content": format!("secret {marker}")}],
        "stream": stream,
    }))
    .unwrap()
}

/// Whether `needle` is in the database file or its WAL.
fn db_contains(db: &Path, needle: &str) -> bool {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    [db.to_path_buf(), PathBuf::from(wal)].iter().any(|p| {
        std::fs::read(p)
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn bodies_are_not_kept_by_default() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let db = temp_db("off");
    let gw = gateway(&mock, &db, "");
    let marker = "PROMPT-MARKER-7f3a9c";
    let answer = gw.chat(ask(marker, false)).await.unwrap();
    let mut stream = gw.chat_stream(ask(marker, true)).await.unwrap();
    while stream.next().await.is_some() {}
    drop(stream);
    gw.flush().await;
    // The mock echoes the prompt, so neither the request nor the answer may be on disk.
    assert!(
        answer.choices[0]
            .message
            .content
            .as_deref()
            .unwrap()
            .contains(marker)
    );
    assert!(db_contains(&db, &answer.request_id), "the record is there");
    assert!(!db_contains(&db, marker), "no body in the store");
    assert_eq!(gw.request_bodies(&answer.request_id).unwrap(), None);
    let _ = std::fs::remove_dir_all(db.parent().unwrap());
}

#[tokio::test]
async fn bodies_are_kept_with_log_bodies() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let db = temp_db("on");
    let gw = gateway(&mock, &db, "server: { log_bodies: true }");
    let marker = "PROMPT-MARKER-1b2c3d";
    let answer = gw.chat(ask(marker, false)).await.unwrap();
    let mut stream = gw.chat_stream(ask(marker, true)).await.unwrap();
    let stream_id = stream.request_id().to_owned();
    let mut sent = Vec::new();
    while let Some(chunk) = stream.next().await {
        sent.push(serde_json::to_value(chunk.unwrap()).unwrap());
    }
    drop(stream);
    gw.flush().await;
    assert!(db_contains(&db, marker));

    let kept = gw.request_bodies(&answer.request_id).unwrap().unwrap();
    let request: Value = serde_json::from_str(kept.request.as_deref().unwrap()).unwrap();
    assert_eq!(
        request["messages"][0]["content"],
        format!("secret {marker}")
    );
    let response: Value = serde_json::from_str(kept.response.as_deref().unwrap()).unwrap();
    assert_eq!(response, serde_json::to_value(&answer.response).unwrap());

    // A stream's response body is the chunks as they were sent.
    let kept = gw.request_bodies(&stream_id).unwrap().unwrap();
    let response: Value = serde_json::from_str(kept.response.as_deref().unwrap()).unwrap();
    assert_eq!(response, Value::Array(sent));
    let _ = std::fs::remove_dir_all(db.parent().unwrap());
}

fn old_record(id: &str, started_at_ms: i64) -> UsageRecord {
    UsageRecord {
        id: id.to_owned(),
        instance: "inst_old".to_owned(),
        started_at_ms,
        ended_at_ms: Some(started_at_ms + 10),
        endpoint: "chat.completions".to_owned(),
        stream: false,
        key: None,
        user: None,
        tags: vec!["t".to_owned()],
        model: "mock/mock-gpt".to_owned(),
        provider: Some("mock".to_owned()),
        provider_model: Some("mock-gpt".to_owned()),
        status: RecordStatus::Ok,
        http_status: Some(200),
        error_type: None,
        error_message: None,
        tokens: Default::default(),
        estimated: false,
        cost: Default::default(),
        latency_ms: Some(10),
        ttft_ms: None,
        attempts: Vec::new(),
    }
}

#[tokio::test]
async fn retention_deletes_old_records_and_their_bodies_at_start() {
    let db = temp_db("retention");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 86_400_000;
    {
        let sink = SqliteSink::open(&db, "inst_seed").unwrap();
        sink.write(&[
            old_record("req_40_days", now - 40 * day),
            old_record("req_31_days", now - 31 * day),
            old_record("req_29_days", now - 29 * day),
            old_record("req_today", now - 1000),
        ])
        .unwrap();
        sink.write_bodies(&[RequestBodies {
            id: "req_40_days".to_owned(),
            request: Some("{}".to_owned()),
            response: None,
        }])
        .unwrap();
        assert!(sink.bodies("req_40_days").unwrap().is_some());
    }
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\nledger: {{ database: \"sqlite://{}\", retention_days: 30 }}\n",
        mock.base_url(),
        db.display()
    );
    let gw = Gateway::from_config(Config::from_yaml(&yaml).unwrap()).unwrap();
    gw.flush().await;
    let mut ids: Vec<String> = gw
        .usage_records(&UsageFilter::default(), 100)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["req_29_days", "req_today"]);
    assert_eq!(gw.request_bodies("req_40_days").unwrap(), None);
    let sink = SqliteSink::open(&db, "inst_check").unwrap();
    assert_eq!(sink.bodies("req_40_days").unwrap(), None, "bodies went too");
    drop(sink);
    drop(gw);
    let _ = std::fs::remove_dir_all(db.parent().unwrap());
}

#[tokio::test]
async fn retention_works_on_the_memory_ledger_too() {
    let ledger = Ledger::new(
        Arc::new(opengateway::accounting::MemorySink::new()),
        "inst_mem".to_owned(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    ledger
        .sink()
        .write(&[
            old_record("req_old", now - 3 * 86_400_000),
            old_record("req_new", now),
        ])
        .unwrap();
    ledger.set_retention(2);
    ledger.flush_async().await;
    let ids: Vec<String> = ledger
        .records(&UsageFilter::default(), 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["req_new"]);
}

#[test]
fn retention_days_zero_is_a_config_error_naming_the_key() {
    let err = Config::from_yaml("ledger: { retention_days: 0 }").unwrap_err();
    assert!(err.to_string().contains("ledger.retention_days"), "{err}");
    let err = Config::from_yaml("server: { log_body: true }").unwrap_err();
    assert!(err.to_string().contains("log_body"), "{err}");
}
