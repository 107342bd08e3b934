//! Gemini embeddings: `models/{model}:batchEmbedContents`.
//!
//! API reference: <https://ai.google.dev/api/embeddings>
//!
//! Each input text becomes one `EmbedContentRequest` of the batch:
//! `{"model": "models/{model}", "content": {"parts": [{"text"}]}, "outputDimensionality"?,
//! "taskType"?, "title"?}`; `dimensions` is `outputDimensionality`, and the extra request fields
//! `task_type` (or `taskType`, e.g. `RETRIEVAL_QUERY`) and `title` are passed on. The answer
//! `{"embeddings": [{"values": [...]}]}` is in input order. Gemini counts no tokens for
//! embeddings, so the decoded answer has no `usage` (the gateway counts locally).
//!
//! Refused with a 400 naming the field: token-id input (Gemini embeds text only), more than
//! [`MAX_BATCH`] inputs (Google's limit per batch), a `task_type` that is not a string.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model_resource;
use super::response::{bad_response, error_object, from_value, google_error, snippet};
use super::wire::{GeminiContent, GeminiPart, null_default};
use crate::error::{Error, ErrorKind, Result};
use crate::types::{Embedding, EmbeddingRequest, EmbeddingResponse, JsonObject};

/// The most requests Google accepts in one `batchEmbedContents` call.
pub(super) const MAX_BATCH: usize = 100;

#[derive(Debug, Serialize)]
struct BatchRequest<'a> {
    requests: Vec<EmbedRequest<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EmbedRequest<'a> {
    model: &'a str,
    content: GeminiContent,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<u32>,
}

/// `BatchEmbedContentsResponse`; also reads `EmbedContentResponse` (one `embedding`), the
/// answer of `:embedContent`.
#[derive(Debug, Deserialize)]
struct BatchResponse {
    #[serde(default, deserialize_with = "null_default")]
    embeddings: Vec<ContentEmbedding>,
    #[serde(default)]
    embedding: Option<ContentEmbedding>,
}

#[derive(Debug, Deserialize)]
struct ContentEmbedding {
    #[serde(default, deserialize_with = "null_default")]
    values: Vec<f32>,
}

/// A string option of the request's extra fields, under its snake or camel case name.
fn string_option<'a>(extra: &'a JsonObject, names: &[&str]) -> Result<Option<&'a str>> {
    for &name in names {
        match extra.get(name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => return Ok(Some(s)),
            Some(_) => {
                return Err(Error::invalid_param(
                    name,
                    format!("`{name}` must be a string"),
                ));
            }
        }
    }
    Ok(None)
}

/// The `batchEmbedContents` path and body for `request`.
pub(super) fn encode(request: &EmbeddingRequest, model: &str) -> Result<(String, Vec<u8>)> {
    let Some(texts) = request.input.texts() else {
        return Err(Error::invalid_param(
            "input",
            "Gemini embeds text only: `input` must be a string or an array of strings, not token ids",
        ));
    };
    if texts.len() > MAX_BATCH {
        return Err(Error::invalid_param(
            "input",
            format!(
                "`input` has {} items; Gemini embeds at most {MAX_BATCH} in one request",
                texts.len()
            ),
        ));
    }
    let task_type = string_option(&request.extra, &["task_type", "taskType"])?
        .map(|t| t.trim().to_ascii_uppercase());
    let title = string_option(&request.extra, &["title"])?;
    let resource = model_resource(model);
    let body = BatchRequest {
        requests: texts
            .into_iter()
            .map(|text| EmbedRequest {
                model: &resource,
                content: GeminiContent {
                    role: None,
                    parts: vec![GeminiPart::text(text)],
                },
                task_type: task_type.clone(),
                title,
                output_dimensionality: request.dimensions,
            })
            .collect(),
    };
    let body = serde_json::to_vec(&body).map_err(|e| {
        Error::new(
            ErrorKind::BadRequest,
            format!("cannot encode the request: {e}"),
        )
    })?;
    Ok((format!("{resource}:batchEmbedContents"), body))
}

/// The embeddings of a `batchEmbedContents` answer, without usage (Gemini reports none).
pub(super) fn decode(provider: &str, body: &[u8]) -> Result<EmbeddingResponse> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        bad_response(
            provider,
            format!("a response that is not JSON ({e}): {}", snippet(body)),
        )
    })?;
    if let Some(err) = error_object(&value) {
        return Err(google_error(provider, None, err, None));
    }
    let response: BatchResponse = from_value(provider, value)?;
    let data = response
        .embeddings
        .into_iter()
        .chain(response.embedding)
        .enumerate()
        .map(|(i, e)| Embedding::new(u32::try_from(i).unwrap_or(u32::MAX), e.values))
        .collect();
    Ok(EmbeddingResponse {
        object: "list".to_owned(),
        data,
        model: String::new(),
        usage: None,
        provider: None,
        extra: JsonObject::new(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::types::{EmbeddingInput, EmbeddingVector};

    #[test]
    fn one_request_per_text_with_the_options() {
        let mut request = EmbeddingRequest {
            model: "gemini/gemini-embedding-001".into(),
            input: EmbeddingInput::Texts(vec!["a".into(), "b".into()]),
            dimensions: Some(8),
            ..Default::default()
        };
        request
            .extra
            .insert("task_type".into(), json!("retrieval_query"));
        let (path, body) = encode(&request, "gemini-embedding-001").unwrap();
        assert_eq!(path, "models/gemini-embedding-001:batchEmbedContents");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 8},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 8}
            ]})
        );
    }

    #[test]
    fn token_ids_and_oversized_batches_are_refused() {
        let request = EmbeddingRequest {
            input: EmbeddingInput::Tokens(vec![1, 2]),
            ..Default::default()
        };
        assert_eq!(encode(&request, "m").unwrap_err().param(), Some("input"));
        let request = EmbeddingRequest {
            input: EmbeddingInput::Texts(vec!["x".into(); MAX_BATCH + 1]),
            ..Default::default()
        };
        assert_eq!(encode(&request, "m").unwrap_err().param(), Some("input"));
    }

    #[test]
    fn decodes_values_in_order() {
        let body = br#"{"embeddings": [{"values": [0.5, -1]}, {"values": [0.25]}]}"#;
        let answer = decode("g", body).unwrap();
        assert_eq!(answer.data.len(), 2);
        assert_eq!(answer.data[1].index, 1);
        assert_eq!(
            answer.data[0].embedding,
            EmbeddingVector::Float(vec![0.5, -1.0])
        );
        assert!(answer.usage.is_none());
        let err = decode(
            "g",
            br#"{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.status(), 400);
    }
}
