//! The gateway's Prometheus metrics after known requests to the mock provider over real HTTP:
//! counts, errors, fallbacks, attempts, circuits, stream TTFT, tokens and cost, read back from
//! the rendered exposition.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use opengateway::Gateway;
use opengateway::config::Config;
use opengateway::types::ChatCompletionRequest;
use opengateway_mock::{MockConfig, MockServer};
use serde_json::json;

const IN: f64 = 1e-4;
const OUT: f64 = 2e-4;

fn gateway(mock: &MockServer) -> Gateway {
    let yaml = format!(
        r#"providers:
  mock: {{ type: openai, api_base: "{}", api_key: k }}
models:
  - name: fb
    targets: ["mock/mock-gpt~status=500", mock/mock-gpt]
router: {{ retries: 0, cooldown_failures: 1, cooldown_s: 3600 }}
pricing:
  platform_fee_percent: 10
  models:
    mock/mock-gpt: {{ input_cost_per_token: {IN}, output_cost_per_token: {OUT} }}
"#,
        mock.base_url()
    );
    Gateway::from_config(Config::from_yaml(&yaml).unwrap()).unwrap()
}

fn hello(model: &str, stream: bool) -> ChatCompletionRequest {
    serde_json::from_value(json!({
        "model": model,
        "messages": [{"role": "user", "content": "Hello there"}],
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { json!(null) },
    }))
    .unwrap()
}

/// One sample of the exposition: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses the OpenMetrics text samples (label values here hold no escaped quotes).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap();
                let labels = inner
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").unwrap();
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (head.to_owned(), Vec::new()),
        };
        out.push(Sample {
            name,
            labels,
            value: value.parse().unwrap(),
        });
    }
    out
}

/// The sum of the samples named `name` whose labels include every pair of `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .sum()
}

#[tokio::test]
async fn metrics_count_what_was_served() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock);

    // An ok request, a fail-now error, a fallback, and a stream.
    let ok = gw.chat(hello("mock/mock-gpt", false)).await.unwrap();
    let err = gw
        .chat(hello("mock/mock-gpt~status=400", false))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    let fallback = gw.chat(hello("fb", false)).await.unwrap();
    assert_eq!(fallback.route.attempts.len(), 2);
    let mut stream = gw.chat_stream(hello("mock/mock-gpt", true)).await.unwrap();
    let mut stream_usage = None;
    while let Some(chunk) = stream.next().await {
        if let Some(Some(u)) = chunk.unwrap().usage {
            stream_usage = Some(u);
        }
    }
    drop(stream);
    let stream_usage = stream_usage.expect("a usage chunk");

    let text = gw.metrics();
    for family in [
        "opengateway_requests",
        "opengateway_errors",
        "opengateway_request_duration_seconds",
        "opengateway_time_to_first_token_seconds",
        "opengateway_tokens",
        "opengateway_cost_usd",
        "opengateway_fallbacks",
        "opengateway_attempts_per_request",
        "opengateway_upstream_attempts",
        "opengateway_circuit_openings",
        "opengateway_targets_cooled_down",
        "opengateway_requests_in_flight",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    let s = parse(&text);
    let ep = ("endpoint", "chat.completions");
    assert_eq!(value(&s, "opengateway_requests_total", &[ep]), 4.0);
    assert_eq!(
        value(
            &s,
            "opengateway_requests_total",
            &[("model", "mock/mock-gpt"), ("status", "ok")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &s,
            "opengateway_requests_total",
            &[("model", "fb"), ("provider", "mock"), ("status", "ok")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "opengateway_errors_total",
            &[
                ("model", "mock/mock-gpt~status=400"),
                ("type", "invalid_request_error")
            ]
        ),
        1.0
    );
    assert_eq!(value(&s, "opengateway_errors_total", &[]), 1.0);
    assert_eq!(
        value(&s, "opengateway_request_duration_seconds_count", &[ep]),
        4.0
    );
    // Time to first token is a stream's only.
    assert_eq!(
        value(&s, "opengateway_time_to_first_token_seconds_count", &[]),
        1.0
    );
    assert_eq!(
        value(&s, "opengateway_fallbacks_total", &[("model", "fb")]),
        1.0
    );
    assert_eq!(value(&s, "opengateway_fallbacks_total", &[]), 1.0);
    assert_eq!(
        value(
            &s,
            "opengateway_attempts_per_request_sum",
            &[("model", "fb")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &s,
            "opengateway_upstream_attempts_total",
            &[("model", "mock/mock-gpt~status=500"), ("status", "500")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "opengateway_upstream_attempts_total",
            &[("status", "200")]
        ),
        3.0
    );
    // cooldown_failures: 1 — the 500 opened that target's circuit, which stays open.
    assert_eq!(
        value(
            &s,
            "opengateway_circuit_openings_total",
            &[("model", "mock/mock-gpt~status=500")]
        ),
        1.0
    );
    assert_eq!(value(&s, "opengateway_targets_cooled_down", &[]), 1.0);
    assert_eq!(value(&s, "opengateway_requests_in_flight", &[]), 0.0);

    // Tokens and cost are the sums of what the three answers reported.
    let usages = [
        ok.usage.clone().unwrap(),
        fallback.usage.clone().unwrap(),
        stream_usage,
    ];
    let billed = [("provider", "mock"), ("model", "mock/mock-gpt")];
    let prompt: u64 = usages.iter().map(|u| u.prompt_tokens).sum();
    let completion: u64 = usages.iter().map(|u| u.completion_tokens).sum();
    let cost: f64 = usages.iter().map(|u| u.cost.unwrap()).sum();
    assert!(prompt > 0 && completion > 0 && cost > 0.0);
    let kind = |k| {
        value(
            &s,
            "opengateway_tokens_total",
            &[billed[0], billed[1], ("kind", k)],
        )
    };
    assert_eq!(kind("prompt"), prompt as f64);
    assert_eq!(kind("completion"), completion as f64);
    assert_eq!(kind("cached"), 0.0);
    let expected = (prompt as f64 * IN + completion as f64 * OUT) * 1.1;
    let reported = value(&s, "opengateway_cost_usd_total", &billed);
    assert!((reported - cost).abs() < 1e-12, "{reported} vs {cost}");
    assert!(
        (reported - expected).abs() < 1e-9,
        "{reported} vs {expected}"
    );
}

#[tokio::test]
async fn a_stream_dropped_early_is_cancelled_and_leaves_nothing_in_flight() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock);
    let mut stream = gw
        .chat_stream(hello("mock/mock-gpt~chunks=5~chunk_delay_ms=50", true))
        .await
        .unwrap();
    let in_flight = |gw: &Gateway| {
        value(
            &parse(&gw.metrics()),
            "opengateway_requests_in_flight",
            &[("endpoint", "chat.completions")],
        )
    };
    stream.next().await.unwrap().unwrap();
    assert_eq!(in_flight(&gw), 1.0);
    drop(stream);
    assert_eq!(in_flight(&gw), 0.0);
    let s = parse(&gw.metrics());
    assert_eq!(
        value(&s, "opengateway_requests_total", &[("status", "cancelled")]),
        1.0
    );
}

#[test]
fn an_idle_gateway_exposes_its_gauges_and_ends_with_eof() {
    let gw = Gateway::from_config(Config::default()).unwrap();
    let text = gw.metrics();
    assert!(text.contains("opengateway_targets_cooled_down 0"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}
