//! The usage ledger against the mock provider over real HTTP: every request recorded exactly
//! once whatever way it ends, budgets that concurrent requests cannot overspend, hooks that
//! never hold up a response.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use opengateway::accounting::{
    BudgetConfig, BudgetPeriod, GroupBy, RecordStatus, UsageFilter, UsageQuery, UsageRecord,
};
use opengateway::config::Config;
use opengateway::types::ChatCompletionRequest;
use opengateway::{CallContext, Gateway};
use opengateway_mock::{MockConfig, MockServer};
use serde_json::{Value, json};

/// $1 per 10,000 tokens in, $2 per 10,000 out: round numbers for hand-computed totals.
const IN: f64 = 1e-4;
const OUT: f64 = 2e-4;

fn gateway(mock: &MockServer, extra: &str) -> Gateway {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let yaml = format!(
        "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: k }}\n  dead: {{ type: openai, api_base: \"{dead}\", api_key: k, connect_timeout_ms: 500 }}\nrouter: {{ retries: 0, timeout_ms: 10000 }}\npricing:\n  platform_fee_percent: 10\n  models:\n    mock/mock-gpt: {{ input_cost_per_token: {IN}, output_cost_per_token: {OUT}, max_output_tokens: 100 }}\n{extra}",
        mock.base_url()
    );
    Gateway::from_config(Config::from_yaml(&yaml).unwrap()).unwrap()
}

fn request(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
}

fn hello(model: &str) -> ChatCompletionRequest {
    request(json!({"model": model, "messages": [{"role": "user", "content": "Hello"}]}))
}

async fn all_records(gw: &Gateway) -> Vec<UsageRecord> {
    gw.flush().await;
    gw.usage_records(&UsageFilter::default(), usize::MAX)
        .unwrap()
}

/// Steers the mock through the body's `mock` object, which reaches it untouched.
fn with_knobs(mut req: ChatCompletionRequest, knobs: Value) -> ChatCompletionRequest {
    req.extra.insert("mock".into(), knobs);
    req
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[tokio::test]
async fn a_completion_is_recorded_once_with_its_cost_user_and_tags() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    let mut req = hello("mock/mock-gpt");
    req.user = Some("alice".into());
    req.metadata = Some(serde_json::from_value(json!({"tags": "web, beta"})).unwrap());
    let context = CallContext {
        key: Some("key-1".into()),
        tags: vec!["batch".into()],
        ..Default::default()
    };
    let answer = gw.chat_with(req, &context).await.unwrap();
    let usage = answer.usage.clone().unwrap();
    let records = all_records(&gw).await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.id, answer.request_id);
    assert_eq!(r.status, RecordStatus::Ok);
    assert_eq!(r.http_status, Some(200));
    assert_eq!(r.key.as_deref(), Some("key-1"));
    assert_eq!(r.user.as_deref(), Some("alice"));
    assert_eq!(r.tags, ["batch", "web", "beta"]);
    assert_eq!(r.endpoint, "chat.completions");
    assert!(!r.stream && !r.estimated);
    assert_eq!(
        (r.provider.as_deref(), r.provider_model.as_deref()),
        (Some("mock"), Some("mock-gpt"))
    );
    assert_eq!(r.tokens.prompt, usage.prompt_tokens);
    assert_eq!(r.tokens.completion, usage.completion_tokens);
    let provider = usage.prompt_tokens as f64 * IN + usage.completion_tokens as f64 * OUT;
    assert!(close(r.cost.provider_usd, provider), "{:?}", r.cost);
    assert!(close(r.cost.fee_usd, provider * 0.1), "{:?}", r.cost);
    assert!(close(r.cost.total_usd, provider * 1.1), "{:?}", r.cost);
    assert_eq!(usage.cost, Some(r.cost.total_usd));
    assert_eq!(r.attempts.len(), 1);
    assert!(r.latency_ms.is_some() && r.ended_at_ms.is_some());
}

#[tokio::test]
async fn a_request_that_falls_back_once_is_one_record_with_both_attempts() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    let mut req = hello("dead/gpt-4o");
    req.models = Some(vec!["mock/mock-gpt".into()]);
    let answer = gw.chat(req).await.unwrap();
    assert_eq!(answer.route.attempts.len(), 2);
    let records = all_records(&gw).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r.status, RecordStatus::Ok);
    assert_eq!(r.model, "dead/gpt-4o");
    assert_eq!(r.billed_model(), "mock/mock-gpt");
    assert_eq!(r.attempts.len(), 2);
    assert_eq!(r.attempts[0].provider, "dead");
    assert_eq!(r.attempts[0].status, None, "the dead target never answered");
    assert_eq!(r.attempts[1].status, Some(200));
    assert_eq!(
        r.tokens.completion,
        answer.usage.as_ref().unwrap().completion_tokens
    );
    assert!(r.cost.total_usd > 0.0);
}

#[tokio::test]
async fn a_failed_request_is_recorded_as_an_error_without_cost() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    let err = gw
        .chat(hello("mock/mock-gpt~status=429"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 429);
    let records = all_records(&gw).await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.status, RecordStatus::Error);
    assert_eq!(r.http_status, Some(429));
    // The provider's own error type (OpenAI's for a 429).
    assert_eq!(r.error_type.as_deref(), Some("requests"));
    assert_eq!(r.tokens.total(), 0);
    assert_eq!(r.cost.total_usd, 0.0);
    assert_eq!(r.provider.as_deref(), Some("mock"));
}

#[tokio::test]
async fn a_stream_read_to_the_end_is_costed_from_its_usage_even_if_the_client_did_not_ask() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    let mut req = hello("mock/mock-gpt");
    req.stream = Some(true);
    let stream = gw.chat_stream(req).await.unwrap();
    let id = stream.request_id().to_owned();
    let chunks: Vec<_> = stream.collect().await;
    assert!(
        chunks.iter().all(|c| c.as_ref().unwrap().usage.is_none()),
        "no usage was asked for"
    );
    let records = all_records(&gw).await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.id, id);
    assert_eq!(r.status, RecordStatus::Ok);
    assert!(r.stream && !r.estimated);
    // The mock's count: ceil(5 / 4) + 3 per message in, one token per word out.
    assert_eq!(r.tokens.prompt, 5);
    assert_eq!(r.tokens.completion, 8);
    assert!(close(r.cost.total_usd, (5.0 * IN + 8.0 * OUT) * 1.1));
    assert!(r.ttft_ms.is_some());
}

#[tokio::test]
async fn a_stream_cancelled_midway_is_recorded_once_as_cancelled_with_estimated_tokens() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    // Knobs in the body (not the model id) keep the model priced.
    let mut req = with_knobs(hello("mock/mock-gpt"), json!({"chunk_delay_ms": 30}));
    req.stream = Some(true);
    req.stream_options = Some(serde_json::from_value(json!({"include_usage": true})).unwrap());
    let mut stream = Box::pin(gw.chat_stream(req).await.unwrap());
    let mut text = String::new();
    for _ in 0..3 {
        let chunk = stream.next().await.unwrap().unwrap();
        text.extend(
            chunk
                .choices
                .iter()
                .filter_map(|c| c.delta.content.clone().flatten()),
        );
    }
    drop(stream);
    let records = all_records(&gw).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r.status, RecordStatus::Cancelled);
    assert!(r.estimated);
    assert!(r.tokens.prompt > 0);
    assert!(
        r.tokens.completion > 0,
        "the text received so far is counted: {text:?}"
    );
    assert!(r.tokens.completion < 8, "not the whole answer");
    assert!(r.cost.total_usd > 0.0);
    // Settled once: flushing again changes nothing.
    let again = all_records(&gw).await;
    assert_eq!(again, records);
}

#[tokio::test]
async fn a_stream_that_breaks_upstream_is_recorded_once_as_an_error() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    let mut req = hello("mock/mock-gpt~drop_after=3");
    req.stream = Some(true);
    let stream = gw.chat_stream(req).await.unwrap();
    let items: Vec<_> = stream.collect().await;
    assert!(items.last().unwrap().is_err());
    let records = all_records(&gw).await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.status, RecordStatus::Error);
    assert!(r.estimated);
    assert!(r.tokens.completion > 0);
    assert_eq!(r.http_status, Some(502));
    assert_eq!(r.attempts.len(), 1);
    assert_eq!(
        r.attempts[0].error_type.as_deref(),
        Some("api_connection_error")
    );
}

#[tokio::test]
async fn a_dropped_request_is_recorded_as_cancelled() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    let slow = gw.chat(hello("mock/mock-gpt~first_byte_delay_ms=2000"));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), slow)
            .await
            .is_err()
    );
    let records = all_records(&gw).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, RecordStatus::Cancelled);
    assert!(records[0].estimated);
}

#[tokio::test]
async fn totals_group_by_model_key_and_tag() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    for (key, tag) in [("a", "x"), ("a", "y"), ("b", "x")] {
        let context = CallContext {
            key: Some(key.into()),
            tags: vec![tag.into()],
            ..Default::default()
        };
        gw.chat_with(hello("mock/mock-gpt"), &context)
            .await
            .unwrap();
    }
    gw.flush().await;
    let by_key = gw
        .usage(&UsageQuery {
            group_by: vec![GroupBy::Key],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_key.len(), 2);
    assert_eq!(by_key[0].group[&GroupBy::Key].as_deref(), Some("a"));
    assert_eq!(by_key[0].requests, 2);
    assert_eq!(by_key[1].requests, 1);
    let one = (5.0 * IN + 8.0 * OUT) * 1.1;
    assert!(close(by_key[0].total_cost_usd, 2.0 * one));
    let by_tag = gw
        .usage(&UsageQuery {
            group_by: vec![GroupBy::Tag],
            filter: UsageFilter {
                model: Some("mock/mock-gpt".into()),
                ..Default::default()
            },
        })
        .unwrap();
    let counts: Vec<_> = by_tag
        .iter()
        .map(|t| (t.group[&GroupBy::Tag].clone().unwrap(), t.requests))
        .collect();
    assert_eq!(counts, [("x".to_owned(), 2), ("y".to_owned(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_never_overspend_a_budget() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let limit = 0.05;
    let gw = gateway(
        &mock,
        &format!("budgets:\n  - {{ name: team, key: team-a, limit_usd: {limit}, period: day }}\n"),
    );
    let context = CallContext {
        key: Some("team-a".into()),
        ..Default::default()
    };
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let gw = gw.clone();
            let context = context.clone();
            tokio::spawn(async move {
                let mut req =
                    with_knobs(hello("mock/mock-gpt"), json!({"first_byte_delay_ms": 20}));
                req.max_tokens = Some(10);
                gw.chat_with(req, &context).await
            })
        })
        .collect();
    let mut served = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => served += 1,
            Err(e) => {
                refused += 1;
                assert_eq!(e.status(), 429);
                let body = serde_json::to_value(e.to_body()).unwrap();
                assert_eq!(body["error"]["type"], "budget_exceeded", "{body}");
                assert_eq!(body["error"]["code"], "budget_exceeded");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(message.contains("Budget `team`"), "{message}");
                assert!(message.contains("resets at"), "{message}");
                assert!(e.retry_after().is_some());
            }
        }
    }
    assert_eq!(served + refused, 200);
    assert!(
        served > 0 && refused > 0,
        "served {served}, refused {refused}"
    );
    gw.flush().await;
    let totals = gw.usage(&UsageQuery::default()).unwrap();
    let spent = totals[0].total_cost_usd;
    assert!(spent <= limit, "spent {spent} over the cap {limit}");
    assert_eq!(totals[0].requests, 200, "refusals are recorded too");
    assert_eq!(totals[0].ok, served);
    assert_eq!(totals[0].errors, refused);
    let status = gw.budgets().status(opengateway_now_ms());
    assert_eq!(status.len(), 1);
    assert!(close(status[0].spent_usd, spent), "{status:?} vs {spent}");
    assert_eq!(status[0].reserved_usd, 0.0, "every hold released");
    assert_eq!(status[0].period, BudgetPeriod::Day);
}

#[tokio::test]
async fn a_budget_counts_what_was_spent_before_and_applies_per_user() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    let bob = CallContext {
        user: Some("bob".into()),
        ..Default::default()
    };
    gw.chat_with(hello("mock/mock-gpt"), &bob).await.unwrap();
    // A cap added at run time starts from what the ledger already holds for bob ($0.00231).
    // Another request may cost up to 24 tokens in (5 bytes + framing) and 8 out: $0.0044.
    gw.budgets()
        .set(BudgetConfig {
            name: None,
            key: None,
            user: Some("*".into()),
            model: None,
            limit_usd: 0.006,
            period: BudgetPeriod::Total,
        })
        .unwrap();
    let mut req = hello("mock/mock-gpt");
    req.max_tokens = Some(8);
    let err = gw.chat_with(req.clone(), &bob).await.unwrap_err();
    assert!(err.message().contains("user:*/total"), "{}", err.message());
    assert!(
        err.message().contains("does not reset"),
        "{}",
        err.message()
    );
    assert_eq!(err.retry_after(), None);
    // Another user has a budget of their own.
    let carol = CallContext {
        user: Some("carol".into()),
        ..Default::default()
    };
    gw.chat_with(req, &carol).await.unwrap();
}

#[tokio::test]
async fn hooks_get_every_record_without_holding_up_responses() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    let seen: Arc<Mutex<Vec<UsageRecord>>> = Arc::default();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let sink = seen.clone();
    gw.on_request_end(move |record| {
        // The first call blocks until the test has its responses.
        let _ = release_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10));
        sink.lock().unwrap().push(record.clone());
    });
    gw.on_request_end(|_| panic!("a broken hook"));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let answer = tokio::time::timeout(Duration::from_secs(5), gw.chat(hello("mock/mock-gpt")))
            .await
            .expect("a blocked hook must not block the request")
            .unwrap();
        ids.push(answer.request_id);
    }
    for _ in 0..3 {
        release_tx.send(()).unwrap();
    }
    for _ in 0..100 {
        if seen.lock().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.lock().unwrap();
    let seen_ids: Vec<_> = seen.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        seen_ids, ids,
        "each record once, in order, after a hook panicked"
    );
    assert!(
        seen.iter()
            .all(|r| r.status == RecordStatus::Ok && r.cost.total_usd > 0.0)
    );
}

fn opengateway_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One request with pinned usage: the provider id (its mock header pins the usage), the catalog
/// model, the usage in OpenAI's meaning, and the provider cost worked out by hand from the
/// catalog's prices per million tokens.
struct Known {
    provider: &'static str,
    kind: &'static str,
    model: &'static str,
    prompt: u64,
    cached: u64,
    cache_write: u64,
    completion: u64,
    reasoning: u64,
    /// Whether the provider's usage reports reasoning apart (Anthropic counts thinking inside
    /// its output tokens without a separate figure).
    reasoning_reported: bool,
    provider_usd: f64,
}

const KNOWN: [Known; 6] = [
    // gpt-4o: $2.50 in, $1.25 cached, $10 out.
    Known {
        provider: "oa1",
        kind: "openai",
        model: "gpt-4o",
        prompt: 1200,
        cached: 1000,
        cache_write: 0,
        completion: 300,
        reasoning: 0,
        reasoning_reported: true,
        provider_usd: 200.0 * 2.5e-6 + 1000.0 * 1.25e-6 + 300.0 * 10e-6,
    },
    // o3: $2 in, $8 out; reasoning tokens are output tokens.
    Known {
        provider: "oa2",
        kind: "openai",
        model: "o3",
        prompt: 2000,
        cached: 0,
        cache_write: 0,
        completion: 100,
        reasoning: 900,
        reasoning_reported: true,
        provider_usd: 2000.0 * 2e-6 + 1000.0 * 8e-6,
    },
    // claude-sonnet-4-5: $3 in, $0.30 cache read, $3.75 cache write, $15 out.
    Known {
        provider: "an1",
        kind: "anthropic",
        model: "claude-sonnet-4-5",
        prompt: 5000,
        cached: 3000,
        cache_write: 1000,
        completion: 400,
        reasoning: 0,
        reasoning_reported: true,
        provider_usd: 1000.0 * 3e-6 + 3000.0 * 0.3e-6 + 1000.0 * 3.75e-6 + 400.0 * 15e-6,
    },
    // claude-haiku-4-5: $1 in, $5 out; thinking billed as output.
    Known {
        provider: "an2",
        kind: "anthropic",
        model: "claude-haiku-4-5",
        prompt: 800,
        cached: 0,
        cache_write: 0,
        completion: 200,
        reasoning: 100,
        reasoning_reported: false,
        provider_usd: 800.0 * 1e-6 + 300.0 * 5e-6,
    },
    // gemini-2.5-flash: $0.30 in, $0.03 cached, $2.50 out (thinking included).
    Known {
        provider: "ge1",
        kind: "gemini",
        model: "gemini-2.5-flash",
        prompt: 10_000,
        cached: 4000,
        cache_write: 0,
        completion: 500,
        reasoning: 1500,
        reasoning_reported: true,
        provider_usd: 6000.0 * 0.3e-6 + 4000.0 * 0.03e-6 + 2000.0 * 2.5e-6,
    },
    // gemini-2.5-pro over 200K prompt tokens: the whole request at $2.50 in, $15 out.
    Known {
        provider: "ge2",
        kind: "gemini",
        model: "gemini-2.5-pro",
        prompt: 250_000,
        cached: 0,
        cache_write: 0,
        completion: 1000,
        reasoning: 0,
        reasoning_reported: true,
        provider_usd: 250_000.0 * 2.5e-6 + 1000.0 * 15e-6,
    },
];

#[tokio::test]
async fn ledger_totals_equal_hand_computed_costs_across_six_catalog_models() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let root = base.trim_end_matches("/v1");
    let mut yaml = String::from("pricing: { platform_fee_percent: 10 }\nproviders:\n");
    for k in &KNOWN {
        let api_base = match k.kind {
            "openai" => base.clone(),
            "gemini" => format!("{root}/v1beta"),
            _ => root.to_owned(),
        };
        let mut pins = format!(
            "prompt_tokens={}~cached_tokens={}~completion_tokens={}~reasoning_tokens={}",
            k.prompt, k.cached, k.completion, k.reasoning
        );
        if k.cache_write > 0 {
            pins.push_str(&format!("~cache_write_tokens={}", k.cache_write));
        }
        yaml.push_str(&format!(
            "  {}: {{ type: {}, api_base: \"{api_base}\", api_key: k, headers: {{ {}: \"{pins}\" }} }}\n",
            k.provider,
            k.kind,
            opengateway_mock::DIRECTIVES_HEADER
        ));
    }
    let gw = Gateway::from_config(Config::from_yaml(&yaml).unwrap()).unwrap();
    // Each model twice: whole, and streamed without asking for usage.
    for k in &KNOWN {
        for stream in [false, true] {
            let mut req = hello(&format!("{}/{}", k.provider, k.model));
            req.max_tokens = Some(64);
            if stream {
                req.stream = Some(true);
                let items: Vec<_> = gw.chat_stream(req).await.unwrap().collect().await;
                assert!(items.iter().all(Result::is_ok), "{}", k.model);
            } else {
                let answer = gw.chat(req).await.unwrap();
                let cost = answer.usage.as_ref().unwrap().cost.unwrap();
                assert!(
                    (cost - k.provider_usd * 1.1).abs() < 1e-9,
                    "{}: usage.cost {cost} vs {}",
                    k.model,
                    k.provider_usd * 1.1
                );
            }
        }
    }
    gw.flush().await;
    let by_model = gw
        .usage(&UsageQuery {
            group_by: vec![GroupBy::Model],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_model.len(), KNOWN.len());
    for k in &KNOWN {
        let id = format!("{}/{}", k.provider, k.model);
        let row = by_model
            .iter()
            .find(|r| r.group[&GroupBy::Model].as_deref() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("no row for {id}: {by_model:#?}"));
        let reasoning = if k.reasoning_reported { k.reasoning } else { 0 };
        assert_eq!((row.requests, row.ok, row.estimated), (2, 2, 0), "{id}");
        assert_eq!(row.prompt_tokens, 2 * k.prompt, "{id}");
        assert_eq!(row.cached_tokens, 2 * k.cached, "{id}");
        assert_eq!(row.cache_write_tokens, 2 * k.cache_write, "{id}");
        assert_eq!(
            row.completion_tokens,
            2 * (k.completion + k.reasoning),
            "{id}"
        );
        assert_eq!(row.reasoning_tokens, 2 * reasoning, "{id}");
        assert!(
            (row.provider_cost_usd - 2.0 * k.provider_usd).abs() < 1e-9,
            "{id}: {row:?}"
        );
        assert!(
            (row.fee_usd - 0.2 * k.provider_usd).abs() < 1e-9,
            "{id}: {row:?}"
        );
        assert!(
            (row.total_cost_usd - 2.2 * k.provider_usd).abs() < 1e-9,
            "{id}: {row:?}"
        );
    }
    let all = gw.usage(&UsageQuery::default()).unwrap();
    let expected: f64 = KNOWN.iter().map(|k| 2.0 * k.provider_usd).sum();
    assert_eq!(all[0].requests, 12);
    assert!((all[0].provider_cost_usd - expected).abs() < 1e-9);
    assert!((all[0].fee_usd - expected * 0.1).abs() < 1e-9);
    assert!((all[0].total_cost_usd - expected * 1.1).abs() < 1e-9);
}
