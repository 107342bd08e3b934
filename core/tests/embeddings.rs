//! Embeddings through the gateway against the mock provider over real HTTP: OpenAI-type and
//! Gemini-type providers, float and base64 whatever the provider sends, alias fallback, the
//! errors that name their field, the ledger record and the budget reservation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use opengateway::accounting::{RecordStatus, UsageFilter, UsageRecord};
use opengateway::config::Config;
use opengateway::types::{EmbeddingInput, EmbeddingRequest, EmbeddingVector, EncodingFormat};
use opengateway::{CallContext, ErrorKind, Gateway};
use opengateway_mock::{MockConfig, MockServer, embedding_vector};
use serde_json::{Value, json};

/// Price of openai/text-embedding-3-small in the catalog, per token.
const SMALL_PRICE: f64 = 2e-8;
/// Price of gemini/gemini-embedding-001 in the catalog, per token.
const GEMINI_PRICE: f64 = 1.5e-7;

fn gateway(mock: &MockServer, extra: &str) -> Gateway {
    let yaml = format!(
        r#"providers:
  oa: {{ type: openai, api_base: "{base}", api_key: k }}
  broken: {{ type: openai, api_base: "{base}", api_key: k, headers: {{ x-mock-directives: "status=503" }} }}
  gem: {{ type: gemini, api_base: "http://{addr}/v1beta", api_key: k }}
  claude: {{ type: anthropic, api_base: "{base}", api_key: k }}
models:
  - name: emb
    targets: [broken/text-embedding-3-small, gem/gemini-embedding-001]
router: {{ retries: 0, timeout_ms: 10000 }}
{extra}"#,
        base = mock.base_url(),
        addr = mock.addr(),
    );
    Gateway::from_config(Config::from_yaml(&yaml).unwrap()).unwrap()
}

fn request(body: Value) -> EmbeddingRequest {
    serde_json::from_value(body).unwrap()
}

fn floats(v: &EmbeddingVector) -> Vec<f32> {
    match v {
        EmbeddingVector::Float(values) => values.clone(),
        EmbeddingVector::Base64(_) => panic!("expected floats, got base64"),
    }
}

async fn records(gw: &Gateway) -> Vec<UsageRecord> {
    gw.flush().await;
    gw.usage_records(&UsageFilter::default(), usize::MAX)
        .unwrap()
}

#[tokio::test]
async fn openai_type_embeds_in_the_asked_format_with_usage_and_cost() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    let answer = gw
        .embeddings(request(json!({
            "model": "oa/text-embedding-3-small",
            "input": ["hello world", "goodbye"],
            "dimensions": 8,
            "metadata": {"tags": "rag"},
            "models": ["gem/gemini-embedding-001"]
        })))
        .await
        .unwrap();
    assert_eq!(answer.object, "list");
    assert_eq!(answer.provider.as_deref(), Some("oa"));
    assert_eq!(answer.route.attempts.len(), 1);
    assert_eq!(answer.data.len(), 2);
    for (i, text) in ["hello world", "goodbye"].into_iter().enumerate() {
        assert_eq!(answer.data[i].index as usize, i);
        assert_eq!(answer.data[i].object, "embedding");
        assert_eq!(floats(&answer.data[i].embedding), embedding_vector(text, 8));
    }
    let usage = answer.usage.clone().unwrap();
    // The mock counts ceil(chars / 4) per text: 3 + 2.
    assert_eq!(usage.prompt_tokens, 5);
    assert_eq!(usage.total_tokens, 5);
    assert!((usage.cost.unwrap() - 5.0 * SMALL_PRICE).abs() < 1e-15);

    // The provider got the OpenAI request without the gateway's own fields.
    let sent = mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(sent.header("authorization"), Some("Bearer k"));
    assert_eq!(
        sent.body,
        json!({"model": "text-embedding-3-small", "input": ["hello world", "goodbye"], "dimensions": 8})
    );

    // base64 asked: the provider is asked for it and it reaches the client as base64 of the
    // same little-endian f32 values.
    let answer = gw
        .embeddings(EmbeddingRequest {
            model: "oa/text-embedding-3-small".into(),
            input: "hello world".into(),
            encoding_format: Some(EncodingFormat::Base64),
            dimensions: Some(8),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(matches!(
        answer.data[0].embedding,
        EmbeddingVector::Base64(_)
    ));
    assert_eq!(
        answer.data[0].embedding.to_floats().unwrap(),
        embedding_vector("hello world", 8)
    );

    let all = records(&gw).await;
    assert_eq!(all.len(), 2);
    let first = all.iter().find(|r| r.tags == ["rag"]).unwrap();
    assert_eq!(first.endpoint, "embeddings");
    assert_eq!(first.status, RecordStatus::Ok);
    assert_eq!(first.provider.as_deref(), Some("oa"));
    assert_eq!(first.tokens.prompt, 5);
    assert_eq!(first.tokens.completion, 0);
    assert!(!first.estimated);
    assert!((first.cost.total_usd - 5.0 * SMALL_PRICE).abs() < 1e-15);
}

#[tokio::test]
async fn gemini_type_uses_batch_embed_contents_and_estimates_tokens() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    let mut req = request(json!({
        "model": "gem/gemini-embedding-001",
        "input": ["first text", "second"],
        "dimensions": 16,
        "encoding_format": "base64",
        "task_type": "retrieval_document"
    }));
    req.user = Some("bob".into());
    let answer = gw.embeddings(req).await.unwrap();
    assert_eq!(answer.provider.as_deref(), Some("gem"));
    assert_eq!(answer.model, "gemini-embedding-001");
    for (i, text) in ["first text", "second"].into_iter().enumerate() {
        // Gemini sends numbers; the client asked for base64 and gets it.
        assert!(matches!(
            answer.data[i].embedding,
            EmbeddingVector::Base64(_)
        ));
        assert_eq!(
            answer.data[i].embedding.to_floats().unwrap(),
            embedding_vector(text, 16)
        );
    }
    let sent = mock.requests().pop().unwrap();
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(sent.header("x-goog-api-key"), Some("k"));
    assert_eq!(
        sent.body["requests"][1]["model"],
        "models/gemini-embedding-001"
    );
    assert_eq!(
        sent.body["requests"][1]["content"]["parts"][0]["text"],
        "second"
    );
    assert_eq!(sent.body["requests"][0]["outputDimensionality"], 16);
    assert_eq!(sent.body["requests"][0]["taskType"], "RETRIEVAL_DOCUMENT");

    // Gemini counts no tokens: the gateway's estimate (ceil(chars / 4): 3 + 2), costed.
    let usage = answer.usage.clone().unwrap();
    assert_eq!(usage.prompt_tokens, 5);
    assert!((usage.cost.unwrap() - 5.0 * GEMINI_PRICE).abs() < 1e-15);
    let all = records(&gw).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].user.as_deref(), Some("bob"));
    assert_eq!(all[0].tokens.prompt, 5);
    assert!(all[0].estimated);
    assert!((all[0].cost.total_usd - 5.0 * GEMINI_PRICE).abs() < 1e-15);
}

#[tokio::test]
async fn an_alias_falls_back_to_the_next_target() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    let answer = gw
        .embeddings(request(
            json!({"model": "emb", "input": "fall back", "dimensions": 4}),
        ))
        .await
        .unwrap();
    assert_eq!(answer.route.provider, "gem");
    let statuses: Vec<_> = answer.route.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(503), Some(200)]);
    assert_eq!(
        floats(&answer.data[0].embedding),
        embedding_vector("fall back", 4)
    );
    let all = records(&gw).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].model, "emb");
    assert_eq!(all[0].attempts.len(), 2);
}

#[tokio::test]
async fn errors_name_the_field() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock, "");
    let cases = [
        (
            json!({"model": "claude/claude-sonnet-4-5", "input": "x"}),
            "model",
        ),
        (json!({"model": "", "input": "x"}), "model"),
        (
            json!({"model": "oa/text-embedding-3-small", "input": ""}),
            "input",
        ),
        (
            json!({"model": "oa/text-embedding-3-small", "input": ["a", ""]}),
            "input[1]",
        ),
        (
            json!({"model": "oa/text-embedding-3-small", "input": "a", "dimensions": 0}),
            "dimensions",
        ),
        (
            json!({"model": "gem/gemini-embedding-001", "input": [1, 2, 3]}),
            "input",
        ),
        (json!({"model": "nowhere/x", "input": "a"}), "model"),
    ];
    for (body, param) in cases {
        let err = gw.embeddings(request(body.clone())).await.unwrap_err();
        assert_eq!(err.param(), Some(param), "{body}: {}", err.message());
        assert!(
            err.status() == 400 || err.status() == 404,
            "{body}: {}",
            err.status()
        );
    }
    let err = gw
        .embeddings(request(
            json!({"model": "claude/claude-sonnet-4-5", "input": "x"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(
        err.message().contains("no embeddings API"),
        "{}",
        err.message()
    );
    // An Anthropic fallback is left out rather than failing the request.
    let answer = gw
        .embeddings(request(json!({
            "model": "oa/text-embedding-3-small", "input": "x", "models": ["claude/claude-sonnet-4-5"]
        })))
        .await
        .unwrap();
    assert_eq!(answer.route.provider, "oa");
    // No request reached the mock for any refused one (Anthropic, token ids to Gemini).
    assert!(mock.requests().iter().all(|r| r.path == "/v1/embeddings"));
}

#[tokio::test]
async fn the_budget_reserves_the_input_bound_at_the_dearest_price() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    // 10,000 bytes at Gemini's $0.15/MTok is $0.0015 at worst: above a $0.001 cap.
    let gw = gateway(
        &mock,
        "budgets:\n  - { name: k, key: team, limit_usd: 0.001, period: day }\n",
    );
    let context = CallContext {
        key: Some("team".into()),
        ..Default::default()
    };
    let big = "word ".repeat(2000);
    let err = gw
        .embeddings_with(
            EmbeddingRequest {
                model: "emb".into(),
                input: EmbeddingInput::Text(big),
                ..Default::default()
            },
            &context,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 429, "{}", err.message());
    assert!(mock.requests().is_empty());
    // A small input fits.
    gw.embeddings_with(request(json!({"model": "emb", "input": "small"})), &context)
        .await
        .unwrap();
}

#[test]
fn the_catalog_prices_the_embeddings_models_with_their_provenance() {
    let catalog = opengateway::catalog::Catalog::embedded();
    for (provider, model, per_million) in [
        ("openai", "text-embedding-3-small", 0.02),
        ("openai", "text-embedding-3-large", 0.13),
        ("openai", "text-embedding-ada-002", 0.10),
        ("gemini", "gemini-embedding-001", 0.15),
    ] {
        let info = catalog
            .lookup(provider, model)
            .unwrap_or_else(|| panic!("{provider}/{model} is in the catalog"));
        let price = info.input_cost_per_token.unwrap() * 1e6;
        assert!(
            (price - per_million).abs() < 1e-9,
            "{provider}/{model}: {price}"
        );
        assert!(
            info.source
                .as_deref()
                .is_some_and(|s| s.starts_with("https://"))
        );
        assert!(info.checked.is_some());
    }
}
