//! Every Chat Completions request and response example in OpenAI's OpenAPI spec
//! (`../shared/specs/openai-openapi.yaml`) survives JSON → types → JSON unchanged.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use opengateway::types::{ChatCompletion, ChatCompletionChunk, ChatCompletionRequest};
use serde_json::Value;

fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/specs/openai-openapi.yaml")
}

/// JSON equality where `1` and `1.0` are the same number (JSON has one number type).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(what: &str, original: &Value) {
    let typed: T = serde_json::from_value(original.clone())
        .unwrap_or_else(|e| panic!("{what} does not decode: {e}\n{original:#}"));
    let back = serde_json::to_value(&typed).expect("encodes");
    assert!(
        json_eq(original, &back),
        "{what} changed in a round trip\n--- original\n{original:#}\n--- after\n{back:#}"
    );
}

/// Collects every string in the spec (examples are stored as strings in `x-oaiMeta`).
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// JSON documents in an example string: the whole string, or one per line for streams.
fn documents(s: &str) -> Vec<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(s) {
        return vec![v];
    }
    s.lines()
        .map(|l| l.trim().trim_start_matches("data:").trim())
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// Objects anywhere in `v` whose `object` field is `kind`.
fn objects_of<'a>(v: &'a Value, kind: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if m.get("object").and_then(Value::as_str) == Some(kind) {
                out.push(v);
            }
            m.values().for_each(|x| objects_of(x, kind, out));
        }
        Value::Array(a) => a.iter().for_each(|x| objects_of(x, kind, out)),
        _ => {}
    }
}

#[test]
fn openapi_chat_examples_round_trip() {
    let path = spec_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "SKIP: {} not found (../shared/specs is beside the repository in CI)",
            path.display()
        );
        return;
    };
    let spec: Value = serde_saphyr::from_str(&text).expect("spec parses");
    let mut all = Vec::new();
    strings(&spec, &mut all);

    let (mut requests, mut responses, mut chunks) = (0, 0, 0);
    for s in &all {
        if s.contains("curl https://api.openai.com/v1/chat/completions ") && s.contains("-d '") {
            let start = s.find("-d '").unwrap() + 4;
            let end = s.rfind('\'').unwrap();
            if end > start {
                let body: Value = serde_json::from_str(&s[start..end])
                    .unwrap_or_else(|e| panic!("curl body is not JSON ({e}): {}", &s[start..end]));
                roundtrip::<ChatCompletionRequest>("request example", &body);
                requests += 1;
            }
        }
        for doc in documents(s) {
            let mut found = Vec::new();
            objects_of(&doc, "chat.completion", &mut found);
            for r in found {
                roundtrip::<ChatCompletion>("response example", r);
                responses += 1;
            }
            let mut found = Vec::new();
            objects_of(&doc, "chat.completion.chunk", &mut found);
            for c in found {
                roundtrip::<ChatCompletionChunk>("stream chunk example", c);
                chunks += 1;
            }
        }
    }
    eprintln!("round-tripped {requests} requests, {responses} responses, {chunks} chunks");
    assert!(
        requests >= 5,
        "expected the spec's request examples, found {requests}"
    );
    assert!(
        responses >= 5,
        "expected the spec's response examples, found {responses}"
    );
    assert!(
        chunks >= 3,
        "expected the spec's stream examples, found {chunks}"
    );
}

#[test]
fn every_content_part_and_tool_shape_round_trips() {
    let request = serde_json::json!({
        "model": "openai/gpt-4o",
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "system", "content": "You are terse.", "name": "sys"},
            {"role": "user", "content": [
                {"type": "text", "text": "What is here?", "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-abc", "filename": "a.pdf"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}
            ], "reasoning_content": "thinking", "thinking_signature": "sig"},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            {"role": "function", "name": "f", "content": "old"}
        ],
        "tools": [
            {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": true}},
            {"type": "custom", "custom": {"name": "grammar", "format": {"type": "text"}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": false,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}, "strict": true}},
        "stream": true,
        "stream_options": {"include_usage": true},
        "n": 2, "stop": ["END", "STOP"], "logprobs": true, "top_logprobs": 3, "seed": 7,
        "user": "u-1", "metadata": {"team": "a"}, "max_completion_tokens": 100,
        "temperature": 0.2, "top_p": 1, "presence_penalty": -0.5, "frequency_penalty": 0,
        "logit_bias": {"50256": -100}, "reasoning_effort": "low", "service_tier": "auto",
        "prediction": {"type": "content", "content": "x"}, "unknown_future_field": [1, {"b": null}],
        "models": ["anthropic/claude-sonnet-4-5"]
    });
    roundtrip::<ChatCompletionRequest>("full request", &request);
    for choice in [
        serde_json::json!("none"),
        serde_json::json!("required"),
        serde_json::json!({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}),
    ] {
        let mut r = request.clone();
        r["tool_choice"] = choice;
        roundtrip::<ChatCompletionRequest>("tool_choice", &r);
    }
    let mut r = request.clone();
    r["stop"] = serde_json::json!("END");
    r["response_format"] = serde_json::json!({"type": "json_object"});
    roundtrip::<ChatCompletionRequest>("stop string", &r);
}

#[test]
fn bad_requests_name_the_field() {
    let cases = [
        (serde_json::json!({"messages": []}), "model"),
        (serde_json::json!({"model": "m"}), "messages"),
        (
            serde_json::json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}),
            "messages[0]",
        ),
        (
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "video", "x": 1}]}]}),
            "video",
        ),
        (
            serde_json::json!({"model": "m", "messages": [], "temperature": "hot"}),
            "temperature",
        ),
        (
            serde_json::json!({"model": "m", "messages": [], "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (
            serde_json::json!({"model": "m", "messages": [], "max_tokens": -1}),
            "max_tokens",
        ),
    ];
    for (body, field) in cases {
        let text = body.to_string();
        let de = &mut serde_json::Deserializer::from_str(&text);
        let err = serde_path_to_error::deserialize::<_, ChatCompletionRequest>(de).unwrap_err();
        let described = format!("{} {}", err.path(), err.inner());
        assert!(
            described.contains(field),
            "error for {text} should name {field}: {described}"
        );
    }
}
