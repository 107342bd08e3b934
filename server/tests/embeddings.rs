//! `POST /v1/embeddings` over real HTTP on 127.0.0.1, with the mock provider behind it.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opengateway::Gateway;
use opengateway::config::Config;
use opengateway_mock::{MockConfig, MockServer, embedding_vector};
use serde_json::{Value, json};

struct Served {
    base: String,
    _mock: MockServer,
    _task: tokio::task::JoinHandle<()>,
}

async fn serve() -> Served {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "providers:\n  openai: {{ type: openai, api_base: \"{}\", api_key: k }}\n  claude: {{ type: anthropic, api_base: \"{}\", api_key: k }}\nrouter: {{ retries: 0 }}\nserver: {{ auth: none }}\n",
        mock.base_url(),
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

async fn post(base: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/embeddings"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

#[tokio::test]
async fn embeddings_with_route_headers_and_cost() {
    let s = serve().await;
    let (status, headers, body) = post(
        &s.base,
        json!({"model": "openai/text-embedding-3-small", "input": ["abcd", "efgh"], "dimensions": 3}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-opengateway-provider"], "openai");
    assert_eq!(headers["x-opengateway-model"], "text-embedding-3-small");
    assert_eq!(headers["x-opengateway-attempts"], "1");
    assert!(
        headers["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    // Two tokens at $0.02 per million.
    let cost: f64 = headers["x-opengateway-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((cost - 2.0 * 2e-8).abs() < 1e-15, "{cost}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["provider"], "openai");
    assert_eq!(body["usage"]["prompt_tokens"], 2);
    assert_eq!(body["usage"]["total_tokens"], 2);
    assert_eq!(body["data"][1]["index"], 1);
    let got: Vec<f32> = serde_json::from_value(body["data"][1]["embedding"].clone()).unwrap();
    assert_eq!(got, embedding_vector("efgh", 3));
}

#[tokio::test]
async fn errors_are_openai_shaped_and_name_the_field() {
    let s = serve().await;
    for (body, param) in [
        (
            json!({"model": "claude/claude-sonnet-4-5", "input": "x"}),
            "model",
        ),
        (json!({"model": "openai/text-embedding-3-small"}), "input"),
        (
            json!({"model": "openai/text-embedding-3-small", "input": ""}),
            "input",
        ),
        (
            json!({"model": "openai/text-embedding-3-small", "input": "x", "encoding_format": "int8"}),
            "encoding_format",
        ),
        (
            json!({"model": "openai/text-embedding-3-small", "input": "x", "dimensions": 0}),
            "dimensions",
        ),
    ] {
        let (status, _, answer) = post(&s.base, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["param"], param, "{body}: {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
        assert!(answer["error"]["message"].is_string());
    }
}
