//! `Gateway::responses` / `responses_stream` against the mock provider: pass-through to an
//! `openai`-type provider, translation for an Anthropic-type one, fallback between them before
//! the first byte, and one ledger record per request with endpoint `responses`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use opengateway::Gateway;
use opengateway::accounting::UsageFilter;
use opengateway::config::Config;
use opengateway::inbound::responses::{ResponsesEvent, ResponsesRequest};
use opengateway_mock::{MockConfig, MockServer};
use serde_json::{Value, json};

fn gateway(mock: &MockServer) -> Gateway {
    let yaml = format!(
        "providers:\n  oai: {{ type: openai, api_base: \"{0}\", api_key: k }}\n  claude: {{ type: anthropic, api_base: \"{0}\", api_key: k }}\nrouter: {{ retries: 0, timeout_ms: 5000 }}\n",
        mock.base_url()
    );
    Gateway::from_config(Config::from_yaml(&yaml).unwrap()).unwrap()
}

fn request(body: Value) -> ResponsesRequest {
    serde_json::from_value(body).unwrap()
}

async fn collect_events(
    stream: opengateway::inbound::responses::ResponsesStream,
) -> Vec<(String, Value)> {
    let all: Vec<ResponsesEvent> = stream.map(|e| e.unwrap()).collect().await;
    all.into_iter()
        .map(|e| (e.name, serde_json::from_str(&e.data).unwrap()))
        .collect()
}

#[tokio::test]
async fn openai_providers_get_the_body_as_it_is() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock);
    let body = json!({"model": "oai/mock-gpt", "input": "Hello", "store": false,
                      "tools": [{"type": "web_search"}], "include": ["x"], "models": ["claude/c"]});
    let answer = gw.responses(request(body)).await.unwrap();
    assert_eq!(answer.route.provider, "oai");
    assert_eq!(answer.response["provider"], "oai");
    assert_eq!(answer.response["object"], "response");
    assert!(answer.response["usage"]["cost"].is_number());
    let sent = mock.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1/responses");
    assert_eq!(
        sent[0].body,
        json!({"model": "mock-gpt", "input": "Hello", "store": false,
               "tools": [{"type": "web_search"}], "include": ["x"]}),
        "only the model changes; opengateway's `models` is not sent"
    );
    gw.flush().await;
    let records = gw.usage_records(&UsageFilter::default(), 10).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].endpoint, "responses");
    assert!(!records[0].estimated);
    assert_eq!(
        records[0].tokens.prompt,
        answer.response["usage"]["input_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn other_providers_get_the_translation_and_untranslatable_fields_fail() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock);
    let answer = gw
        .responses(request(
            json!({"model": "claude/mock-claude", "input": "Hello", "max_output_tokens": 50}),
        ))
        .await
        .unwrap();
    assert_eq!(answer.response["status"], "completed");
    assert_eq!(answer.response["output"][0]["type"], "message");
    let sent = mock.requests();
    assert_eq!(sent[0].path, "/v1/messages");
    assert_eq!(sent[0].body["max_tokens"], 50);

    let err = gw
        .responses(request(
            json!({"model": "claude/mock-claude", "input": "x", "tools": [{"type": "web_search"}]}),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.param(), Some("tools[0]"));
    assert_eq!(mock.requests().len(), 1, "nothing was sent");
}

#[tokio::test]
async fn a_failing_pass_through_falls_back_to_a_translated_target() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock);
    let body = json!({"model": "oai/mock-gpt~status=503", "models": ["claude/mock-claude"],
                      "input": "Hello", "stream": true});
    let stream = gw.responses_stream(request(body)).await.unwrap();
    assert_eq!(stream.route().provider, "claude");
    assert_eq!(stream.route().attempts.len(), 2);
    let events = collect_events(stream).await;
    assert_eq!(events.first().unwrap().0, "response.created");
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "response.completed");
    assert_eq!(data["response"]["provider"], "claude");
    let paths: Vec<String> = mock.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v1/responses", "/v1/messages"]);
}

#[tokio::test]
async fn pass_through_streams_are_relayed_and_breaks_end_with_an_error_event() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock);
    let stream = gw
        .responses_stream(request(
            json!({"model": "oai/mock-gpt", "input": "Hello", "stream": true}),
        ))
        .await
        .unwrap();
    let events = collect_events(stream).await;
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "response.completed");
    assert!(data["response"]["usage"]["total_tokens"].as_u64().unwrap() > 0);
    gw.flush().await;
    let record = &gw.usage_records(&UsageFilter::default(), 1).unwrap()[0];
    assert_eq!(
        record.tokens.prompt,
        data["response"]["usage"]["input_tokens"].as_u64().unwrap()
    );
    assert!(!record.estimated);

    let stream = gw
        .responses_stream(request(
            json!({"model": "oai/mock-gpt~truncate", "input": "Hello", "stream": true}),
        ))
        .await
        .unwrap();
    let events = collect_events(stream).await;
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "error", "a cut stream is never silently short");
    assert!(data["message"].as_str().unwrap().contains("ended before"));
    assert_eq!(data["sequence_number"], events.len() - 1);
}
