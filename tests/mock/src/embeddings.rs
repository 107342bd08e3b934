//! Embeddings: OpenAI's `POST /v1/embeddings` (and `/embeddings`) and Gemini's
//! `{model}:batchEmbedContents` / `:embedContent`.
//!
//! Vectors are deterministic: a text's vector is a pseudo-random sequence seeded by a hash of
//! the text, cut to the asked dimensions and scaled to unit length, so the same text gets the
//! same vector on both endpoints and a shortened vector is a rescaled prefix of the full one
//! (as OpenAI's `text-embedding-3` models do). Usage counts ceil(chars / 4) tokens per text and
//! one per token id; the `prompt_tokens` pin overrides it. The `status`, `fail_first`,
//! `first_byte_delay_ms`, `malformed`, `drop_after` and `retry_after` knobs work as on chat.

use axum::{extract::State, http::StatusCode, response::Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::{
    MockState, directives,
    engine::{self, Pacing, knob_u64},
    wire::{self, Format, openai_error, sleep_ms},
};

/// Dimensions of an OpenAI vector when the request sets none (`text-embedding-3-small`).
const OPENAI_DIMENSIONS: usize = 1536;
/// Dimensions of a Gemini vector when the request sets none (`gemini-embedding-001`).
const GEMINI_DIMENSIONS: usize = 3072;
/// The largest `dimensions` the mock serves.
const MAX_DIMENSIONS: u64 = 8192;
/// The most inputs per request: OpenAI's 2048, Google's 100 per batch.
const OPENAI_MAX_INPUTS: usize = 2048;
const GEMINI_MAX_BATCH: usize = 100;
/// Content type of Google's JSON answers.
const GOOGLE_JSON: &str = "application/json; charset=UTF-8";

/// The deterministic unit vector of `key` with `dims` dimensions.
pub fn vector(key: &str, dims: usize) -> Vec<f32> {
    // FNV-1a seeds a splitmix64 sequence: stable across runs, platforms and versions.
    let mut state = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let raw: Vec<f64> = (0..dims)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|v| v * v).sum::<f64>().sqrt();
    let norm = if norm > 0.0 { norm } else { 1.0 };
    raw.iter().map(|v| (v / norm) as f32).collect()
}

/// Base64 of the vector's little-endian f32 bytes, as OpenAI sends `encoding_format: base64`.
fn base64_of(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    BASE64.encode(bytes)
}

/// One input of a request: the key its vector derives from and its token count.
struct Item {
    key: String,
    tokens: u64,
}

impl Item {
    fn text(text: &str) -> Item {
        Item {
            key: text.to_owned(),
            tokens: engine::prompt_tokens([text], 0) as u64,
        }
    }

    fn token_ids(ids: &[Value]) -> Option<Item> {
        let ids: Option<Vec<u64>> = ids.iter().map(Value::as_u64).collect();
        let ids = ids?;
        let key = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        Some(Item {
            key: format!("tokens:{key}"),
            tokens: ids.len() as u64,
        })
    }
}

/// OpenAI's `input` as items, or the message of the 400 it gets.
fn openai_items(input: &Value) -> Result<Vec<Item>, String> {
    let invalid = || "'$.input' is invalid. Please check the API reference.".to_owned();
    match input {
        Value::String(text) if text.is_empty() => Err(invalid()),
        Value::String(text) => Ok(vec![Item::text(text)]),
        Value::Array(items) if items.is_empty() || items.len() > OPENAI_MAX_INPUTS => {
            Err(invalid())
        }
        Value::Array(items) if items.iter().all(Value::is_number) => Item::token_ids(items)
            .map(|item| vec![item])
            .ok_or_else(invalid),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) if !text.is_empty() => Ok(Item::text(text)),
                Value::Array(ids) if !ids.is_empty() => Item::token_ids(ids).ok_or_else(invalid),
                _ => Err(invalid()),
            })
            .collect(),
        _ => Err(invalid()),
    }
}

fn bad_request(message: &str, param: Option<&str>) -> Response {
    let body = openai_error(message, "invalid_request_error", param, None);
    Format::OpenAi.json(StatusCode::BAD_REQUEST, &body)
}

/// Answers `POST /v1/embeddings`.
pub(crate) async fn openai(
    State(state): State<MockState>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(request)) => request,
        Ok(_) => return bad_request("The request body must be a JSON object.", None),
        Err(err) => {
            let message = format!("We could not parse the JSON body of your request: {err}");
            return bad_request(&message, None);
        }
    };
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return bad_request("Missing required parameter: 'model'.", Some("model"));
    };
    let (_, knobs) = match directives::knobs(
        model,
        &headers,
        request.get("mock").and_then(Value::as_object),
    ) {
        Ok(parsed) => parsed,
        Err(message) => return bad_request(&message, Some("model")),
    };
    let Some(input) = request.get("input") else {
        return bad_request("Missing required parameter: 'input'.", Some("input"));
    };
    let items = match openai_items(input) {
        Ok(items) => items,
        Err(message) => return bad_request(&message, Some("input")),
    };
    let base64 = match request.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(_) => {
            let message = "'encoding_format' must be one of 'float' or 'base64'.";
            return bad_request(message, Some("encoding_format"));
        }
    };
    let dims = match dimensions(&request, "dimensions", OPENAI_DIMENSIONS) {
        Ok(dims) => dims,
        Err(message) => return bad_request(&message, Some("dimensions")),
    };

    sleep_ms(Pacing::of(&knobs, state.config()).first_byte_delay_ms).await;
    if let Some(status) = engine::scripted_status(&state, &knobs) {
        return Format::OpenAi.failure(status, &knobs);
    }
    state.next_completion();
    let data: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let values = vector(&item.key, dims);
            let embedding = if base64 {
                json!(base64_of(&values))
            } else {
                json!(values)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens = knob_u64(&knobs, "prompt_tokens")
        .unwrap_or_else(|| items.iter().map(|item| item.tokens).sum());
    let answer = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    wire::answer_body(answer.to_string(), "application/json", &knobs)
}

/// A positive `field` of `request`, else `default`.
fn dimensions(request: &Map<String, Value>, field: &str, default: usize) -> Result<usize, String> {
    match request.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value
            .as_u64()
            .filter(|n| (1..=MAX_DIMENSIONS).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| format!("'{field}' must be an integer from 1 to {MAX_DIMENSIONS}.")),
    }
}

/// Answers `{model}:batchEmbedContents` (`batch`) or `{model}:embedContent`; `model` is the
/// path's model id, directives included.
pub(crate) async fn gemini(
    state: MockState,
    model: &str,
    batch: bool,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Response {
    let format = Format::Gemini;
    let (_, knobs) = match directives::knobs(model, headers, None) {
        Ok(parsed) => parsed,
        Err(message) => return format.bad_request(&message),
    };
    let request = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(request)) => request,
        Ok(_) => return format.bad_request("The request body must be a JSON object."),
        Err(err) => {
            return format.bad_request(&format!("Invalid JSON payload received. {err}"));
        }
    };
    let requests: Vec<&Map<String, Value>> = if batch {
        let Some(requests) = request.get("requests").and_then(Value::as_array) else {
            return format
                .bad_request("* BatchEmbedContentsRequest.requests: requests is not specified");
        };
        if requests.len() > GEMINI_MAX_BATCH {
            return format.bad_request(&format!(
                "* BatchEmbedContentsRequest.requests: at most {GEMINI_MAX_BATCH} requests can be in one batch"
            ));
        }
        match requests.iter().map(Value::as_object).collect::<Option<_>>() {
            Some(requests) => requests,
            None => {
                return format.bad_request(
                    "* BatchEmbedContentsRequest.requests: each request must be an object",
                );
            }
        }
    } else {
        vec![&request]
    };
    let mut vectors = Vec::with_capacity(requests.len());
    for (i, one) in requests.iter().enumerate() {
        let texts: Vec<&str> = one
            .get("content")
            .and_then(|content| content.get("parts"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect();
        let text = texts.join(" ");
        if text.is_empty() {
            return format.bad_request(&format!(
                "* BatchEmbedContentsRequest.requests[{i}].content: contents must not be empty"
            ));
        }
        let dims = match dimensions(one, "outputDimensionality", GEMINI_DIMENSIONS) {
            Ok(dims) => dims,
            Err(message) => return format.bad_request(&message),
        };
        vectors.push(vector(&text, dims));
    }

    sleep_ms(Pacing::of(&knobs, state.config()).first_byte_delay_ms).await;
    if let Some(status) = engine::scripted_status(&state, &knobs) {
        return format.failure(status, &knobs);
    }
    state.next_completion();
    let answer = if batch {
        let embeddings: Vec<Value> = vectors.iter().map(|v| json!({"values": v})).collect();
        json!({"embeddings": embeddings})
    } else {
        json!({"embedding": {"values": vectors.first()}})
    };
    let text = serde_json::to_string_pretty(&answer).unwrap_or_default();
    wire::answer_body(text, GOOGLE_JSON, &knobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_unit_length_deterministic_and_prefix_stable() {
        let a = vector("hello", 64);
        assert_eq!(a, vector("hello", 64));
        assert_ne!(a, vector("hello!", 64));
        let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        let short = vector("hello", 8);
        let ratio = short[0] / a[0];
        for (s, l) in short.iter().zip(&a) {
            assert!((s / l - ratio).abs() < 1e-3);
        }
    }
}
