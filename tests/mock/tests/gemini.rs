//! The Gemini (Google AI Studio) endpoints over real HTTP: shapes, streams, tools, errors.

// Helpers outside `#[test]` fns are test code too; a panic is the right failure there.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use opengateway_mock::{MockConfig, MockServer};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const REPLY: &str = "Hello from the mock provider! You said: Hi there";

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn start() -> MockServer {
    MockServer::start(MockConfig::default()).await.unwrap()
}

fn request(extra: Value) -> Value {
    let mut body = json!({"contents": [{"role": "user", "parts": [{"text": "Hi there"}]}]});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

fn tools() -> Value {
    json!([{"functionDeclarations": [{
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}
    }]}])
}

/// POSTs to `/v1beta/models/{model}:{method}` plus `query`.
async fn post(server: &MockServer, model: &str, method: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!(
            "http://{}/v1beta/models/{model}:{method}",
            server.addr()
        ))
        .header("x-goog-api-key", "test-key")
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn generate(server: &MockServer, model: &str, body: &Value) -> Value {
    let response = post(server, model, "generateContent", body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=UTF-8"
    );
    response.json().await.unwrap()
}

/// The JSON events of a Gemini SSE body, checking Google's CRLF framing and the absence of [DONE].
async fn stream(server: &MockServer, model: &str, body: &Value) -> Vec<Value> {
    let response = post(server, model, "streamGenerateContent?alt=sse", body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(text.ends_with("\r\n\r\n"), "{text:?}");
    assert!(!text.contains("[DONE]"));
    text.split("\r\n\r\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            let data = event.strip_prefix("data: ").unwrap();
            assert!(!data.contains('\n'), "one line per event: {event:?}");
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

fn parts(response: &Value) -> &Vec<Value> {
    response["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
}

fn streamed_text(events: &[Value], thought: bool) -> String {
    events
        .iter()
        .flat_map(parts)
        .filter(|part| part.get("thought").is_some() == thought)
        .filter_map(|part| part["text"].as_str())
        .collect()
}

#[tokio::test]
async fn generate_content_has_gemini_shape() {
    let server = start().await;
    let body = request(json!({"systemInstruction": {"parts": [{"text": "Be brief."}]}}));
    let response = generate(&server, "mock-gemini", &body).await;
    assert_eq!(
        response["candidates"],
        json!([{"content": {"role": "model", "parts": [{"text": REPLY}]}, "index": 0, "finishReason": "STOP"}])
    );
    // "Be brief." + "Hi there" = 17 chars: ceil(17 / 4) + 3 for the one content; 9 words out.
    assert_eq!(
        response["usageMetadata"],
        json!({"promptTokenCount": 8, "candidatesTokenCount": 9, "totalTokenCount": 17})
    );
    assert_eq!(response["modelVersion"], "mock-gemini");
    assert!(
        response["responseId"]
            .as_str()
            .unwrap()
            .starts_with("mock-")
    );

    let recorded = server.requests();
    assert_eq!(
        recorded[0].path,
        "/v1beta/models/mock-gemini:generateContent"
    );
    assert_eq!(recorded[0].header("x-goog-api-key"), Some("test-key"));
    assert_eq!(recorded[0].body, body);
}

#[tokio::test]
async fn thoughts_candidates_and_max_output_tokens() {
    let server = start().await;
    let config = json!({"generationConfig": {"thinkingConfig": {"includeThoughts": true}, "candidateCount": 2}});
    let response = generate(&server, "mock-gemini", &request(config)).await;
    let candidates = response["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    assert_eq!(candidates[1]["index"], 1);
    let both = parts(&response);
    assert_eq!(both[0]["thought"], true);
    let thoughts = both[0]["text"].as_str().unwrap().split_whitespace().count();
    assert_eq!(both[1], json!({"text": REPLY}));
    let usage = &response["usageMetadata"];
    assert_eq!(usage["candidatesTokenCount"], 18);
    assert_eq!(usage["thoughtsTokenCount"], 2 * thoughts);
    assert_eq!(usage["totalTokenCount"], 5 + 18 + 2 * thoughts);

    let limited = request(json!({"generationConfig": {"maxOutputTokens": 2}}));
    let response = generate(&server, "mock-gemini", &limited).await;
    assert_eq!(parts(&response)[0]["text"], "Hello from");
    assert_eq!(response["candidates"][0]["finishReason"], "MAX_TOKENS");

    let response = generate(&server, "mock-gemini~thinking", &request(json!({}))).await;
    assert_eq!(parts(&response)[0]["thought"], true);
}

#[tokio::test]
async fn sse_stream_sends_cumulative_usage_and_finishes_last() {
    let server = start().await;
    let events = stream(&server, "mock-gemini", &request(json!({}))).await;
    assert_eq!(events.len(), 9, "one event per word");
    assert_eq!(streamed_text(&events, false), REPLY);
    let id = &events[0]["responseId"];
    let mut previous = 0;
    for (at, event) in events.iter().enumerate() {
        assert_eq!(&event["responseId"], id);
        assert_eq!(event["modelVersion"], "mock-gemini");
        let usage = &event["usageMetadata"];
        assert_eq!(usage["promptTokenCount"], 5);
        let output = usage["candidatesTokenCount"].as_u64().unwrap();
        assert!(output > previous, "cumulative usage grows: {usage}");
        assert_eq!(usage["totalTokenCount"], 5 + output);
        previous = output;
        let finish = &event["candidates"][0]["finishReason"];
        if at + 1 == events.len() {
            assert_eq!(finish, "STOP");
        } else {
            assert!(finish.is_null(), "{event}");
        }
    }
    assert_eq!(previous, 9);
}

#[tokio::test]
async fn thought_parts_stream_before_the_text() {
    let server = start().await;
    let config = json!({"generationConfig": {"thinkingConfig": {"includeThoughts": true}}});
    let events = stream(&server, "mock-gemini~chunks=3", &request(config)).await;
    let first_text = events
        .iter()
        .position(|event| parts(event)[0].get("thought").is_none())
        .unwrap();
    assert!(first_text > 0);
    assert_eq!(events.len() - first_text, 3, "~chunks=3 splits the text");
    assert!(streamed_text(&events, true).contains("Hi there"));
    assert_eq!(streamed_text(&events, false), REPLY);
    // Thought tokens are counted before any text, and stay in the total afterwards.
    let usage = &events[0]["usageMetadata"];
    assert_eq!(usage["thoughtsTokenCount"], 1);
    assert!(usage.get("candidatesTokenCount").is_none());
    let last = &events.last().unwrap()["usageMetadata"];
    let thoughts = last["thoughtsTokenCount"].as_u64().unwrap();
    assert_eq!(last["totalTokenCount"], 5 + 9 + thoughts);
}

#[tokio::test]
async fn stream_without_alt_sse_is_a_json_array() {
    let server = start().await;
    let response = post(
        &server,
        "mock-gemini",
        "streamGenerateContent",
        &request(json!({})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=UTF-8"
    );
    let array: Vec<Value> = response.json().await.unwrap();
    assert_eq!(array.len(), 9);
    assert_eq!(streamed_text(&array, false), REPLY);
    assert_eq!(array[8]["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn function_calls_follow_the_tool_rules() {
    let server = start().await;
    let response = generate(&server, "mock-gemini", &request(json!({"tools": tools()}))).await;
    assert_eq!(
        parts(&response),
        &vec![
            json!({"functionCall": {"name": "get_weather", "args": {"city": "mock"}}, "thoughtSignature": "c2lnbmF0dXJl"})
        ]
    );
    assert_eq!(response["candidates"][0]["finishReason"], "STOP");

    let events = stream(&server, "mock-gemini", &request(json!({"tools": tools()}))).await;
    assert_eq!(events.len(), 1, "Gemini sends a call whole");
    assert_eq!(
        parts(&events[0])[0]["functionCall"]["args"],
        json!({"city": "mock"})
    );
    assert_eq!(events[0]["candidates"][0]["finishReason"], "STOP");

    let none = request(
        json!({"tools": tools(), "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}),
    );
    let response = generate(&server, "mock-gemini", &none).await;
    assert_eq!(parts(&response)[0]["text"], REPLY);

    let answered = request(json!({"tools": tools(), "contents": [
        {"role": "user", "parts": [{"text": "weather?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"sky": "clear"}}}]}
    ]}));
    let response = generate(&server, "mock-gemini", &answered).await;
    assert_eq!(
        parts(&response)[0]["text"],
        "Hello from the mock provider! You said: weather?"
    );

    let two = json!([{"functionDeclarations": [
        {"name": "first"},
        {"name": "second", "parametersJsonSchema": {"type": "object", "properties": {"n": {"type": "integer"}}}}
    ]}]);
    let forced = request(json!({"tools": two,
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["second"]}}}));
    let response = generate(&server, "mock-gemini~parallel=2", &forced).await;
    let calls = parts(&response);
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0]["functionCall"],
        json!({"name": "second", "args": {"n": 1}})
    );
    assert!(
        calls[1].get("thoughtSignature").is_none(),
        "only the first call is signed"
    );

    let off = generate(
        &server,
        "mock-gemini~no_tool_call",
        &request(json!({"tools": tools()})),
    )
    .await;
    assert_eq!(parts(&off)[0]["text"], REPLY);
}

#[tokio::test]
async fn status_directive_uses_google_error_statuses() {
    let server = start().await;
    for (status, name) in [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
    ] {
        let model = format!("mock-gemini~status={status}~retry_after=4");
        let response = post(&server, &model, "generateContent", &request(json!({}))).await;
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["retry-after"], "4");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": status, "message": format!("mock error {status}"), "status": name}})
        );
    }

    // Like Google, a failed alt=sse request gets a bare JSON error labelled as an event stream.
    let response = post(
        &server,
        "mock-gemini~status=429",
        "streamGenerateContent?alt=sse",
        &request(json!({})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(text.starts_with("{\n  \"error\": {"), "{text}");
}

#[tokio::test]
async fn bad_requests_and_unknown_methods() {
    let server = start().await;
    let response = post(&server, "mock-gemini", "generateContent", &json!({})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");

    let response = post(&server, "mock-gemini", "countTokens", &request(json!({}))).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "NOT_FOUND");

    let response = post(
        &server,
        "mock-gemini~bogus",
        "generateContent",
        &request(json!({})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("~bogus")
    );

    let response = client()
        .get(format!("http://{}/v1beta/files", server.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 404);
}

#[tokio::test]
async fn stream_failure_directives() {
    let server = start().await;
    let events = stream(&server, "mock-gemini~stream_error", &request(json!({}))).await;
    assert_eq!(events.len(), 2);
    assert_eq!(parts(&events[0])[0]["text"], "Hello ");
    assert_eq!(events[1]["error"]["status"], "UNAVAILABLE");
    assert_eq!(events[1]["error"]["code"], 503);

    let events = stream(&server, "mock-gemini~truncate", &request(json!({}))).await;
    assert_eq!(events.len(), 5);
    assert!(
        events
            .iter()
            .all(|event| event["candidates"][0].get("finishReason").is_none())
    );

    let response = post(
        &server,
        "mock-gemini~drop_after=2",
        "streamGenerateContent?alt=sse",
        &request(json!({})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.bytes().await.is_err(),
        "a dropped stream must not end cleanly"
    );

    let response = post(
        &server,
        "mock-gemini~malformed",
        "generateContent",
        &request(json!({})),
    )
    .await;
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
}

/// Every usage directive, in OpenAI's meaning.
const PINS: &str = "~prompt_tokens=1000~cached_tokens=400~cache_write_tokens=100~completion_tokens=50~reasoning_tokens=30";

#[tokio::test]
async fn usage_directives_pin_usage_metadata() {
    let server = start().await;
    let expected = json!({
        "promptTokenCount": 1000,
        "candidatesTokenCount": 50,
        "totalTokenCount": 1080,
        "cachedContentTokenCount": 400,
        "thoughtsTokenCount": 30
    });
    let model = format!("mock-gemini{PINS}");
    let response = generate(&server, &model, &request(json!({}))).await;
    assert_eq!(response["usageMetadata"], expected);
    // Pins are totals over all candidates, thinking or not.
    let config = json!({"generationConfig": {"thinkingConfig": {"includeThoughts": true}, "candidateCount": 2}});
    let response = generate(&server, &model, &request(config.clone())).await;
    assert_eq!(response["usageMetadata"], expected);

    for body in [request(json!({})), request(config)] {
        let events = stream(&server, &model, &body).await;
        assert!(events.len() > 1);
        assert_eq!(events.last().unwrap()["usageMetadata"], expected);
        let (mut candidates, mut thoughts) = (0, 0);
        for event in &events {
            let usage = &event["usageMetadata"];
            assert_eq!(usage["promptTokenCount"], 1000);
            assert_eq!(usage["cachedContentTokenCount"], 400);
            let count = |key: &str| usage.get(key).map_or(0, |count| count.as_u64().unwrap());
            assert!(count("candidatesTokenCount") >= candidates, "{usage}");
            assert!(count("thoughtsTokenCount") >= thoughts, "{usage}");
            (candidates, thoughts) = (count("candidatesTokenCount"), count("thoughtsTokenCount"));
            assert_eq!(usage["totalTokenCount"], 1000 + candidates + thoughts);
        }
    }
    let response = post(
        &server,
        &model,
        "streamGenerateContent",
        &request(json!({})),
    )
    .await;
    let array: Vec<Value> = response.json().await.unwrap();
    assert_eq!(array.last().unwrap()["usageMetadata"], expected);

    // A directive not given keeps the computed part; a pinned zero cache count is still shown.
    let response = generate(&server, "mock-gemini~cached_tokens=0", &request(json!({}))).await;
    assert_eq!(
        response["usageMetadata"],
        json!({"promptTokenCount": 5, "candidatesTokenCount": 9, "totalTokenCount": 14,
               "cachedContentTokenCount": 0})
    );
}
