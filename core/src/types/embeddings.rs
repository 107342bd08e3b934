//! `CreateEmbeddingRequest` and `CreateEmbeddingResponse`, with opengateway's extensions
//! (request-level `models` fallbacks, `metadata.tags`, `timeout_ms`; `usage.cost` and
//! `provider` on the answer).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::JsonObject;
use crate::error::{Error, ErrorKind, Result};

/// The most inputs one request may carry (OpenAI's limit).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// An embeddings request, as a client sends it to `POST /v1/embeddings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// `provider/model`, or an alias from the config.
    pub model: String,
    /// What to embed: one text, several, or token ids.
    pub input: EmbeddingInput,
    /// `float` (the default) or `base64` (little-endian f32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
    /// Number of dimensions of the output vectors (models that can shorten them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// End-user identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// opengateway: key-value tags (`tags` is totalled in the ledger). Never sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// opengateway: ordered fallback models tried after `model` (`fallbacks` is a synonym).
    /// Never sent upstream.
    #[serde(default, alias = "fallbacks", skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// opengateway: total time allowed for one attempt, in milliseconds. Never sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Every field not modelled above, passed through unchanged.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// `input`: a string, an array of strings, an array of token ids, or an array of token-id
/// arrays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a string, an array of strings, an array of token ids or an array of token-id arrays"
)]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts, one embedding each.
    Texts(Vec<String>),
    /// One input given as token ids.
    Tokens(Vec<u32>),
    /// Several inputs given as token ids.
    TokenArrays(Vec<Vec<u32>>),
}

impl Default for EmbeddingInput {
    fn default() -> Self {
        EmbeddingInput::Texts(Vec::new())
    }
}

impl From<&str> for EmbeddingInput {
    fn from(text: &str) -> Self {
        EmbeddingInput::Text(text.to_owned())
    }
}

impl From<String> for EmbeddingInput {
    fn from(text: String) -> Self {
        EmbeddingInput::Text(text)
    }
}

impl From<Vec<String>> for EmbeddingInput {
    fn from(texts: Vec<String>) -> Self {
        EmbeddingInput::Texts(texts)
    }
}

impl EmbeddingInput {
    /// How many embeddings the input asks for.
    pub fn len(&self) -> usize {
        match self {
            EmbeddingInput::Text(_) | EmbeddingInput::Tokens(_) => 1,
            EmbeddingInput::Texts(texts) => texts.len(),
            EmbeddingInput::TokenArrays(arrays) => arrays.len(),
        }
    }

    /// Whether the input asks for no embedding at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The texts, when the input is text (not token ids).
    pub fn texts(&self) -> Option<Vec<&str>> {
        match self {
            EmbeddingInput::Text(text) => Some(vec![text.as_str()]),
            EmbeddingInput::Texts(texts) => Some(texts.iter().map(String::as_str).collect()),
            EmbeddingInput::Tokens(_) | EmbeddingInput::TokenArrays(_) => None,
        }
    }

    /// Checks what OpenAI checks: no empty input or empty item, at most
    /// [`MAX_EMBEDDING_INPUTS`] items. The error names the item at fault (`input[3]`).
    pub fn validate(&self) -> Result<()> {
        if self.len() > MAX_EMBEDDING_INPUTS {
            return Err(Error::invalid_param(
                "input",
                format!(
                    "`input` has {} items; at most {MAX_EMBEDDING_INPUTS} can be embedded in one request",
                    self.len()
                ),
            ));
        }
        let empty_item = |i: usize| {
            Error::invalid_param(
                format!("input[{i}]"),
                format!("`input[{i}]` is empty; every input must have at least one token"),
            )
        };
        match self {
            EmbeddingInput::Text(text) if text.is_empty() => Err(Error::invalid_param(
                "input",
                "`input` must not be an empty string",
            )),
            EmbeddingInput::Tokens(ids) if ids.is_empty() => Err(Error::invalid_param(
                "input",
                "`input` must contain at least one token id",
            )),
            EmbeddingInput::Texts(texts) if texts.is_empty() => Err(Error::invalid_param(
                "input",
                "`input` must contain at least one item",
            )),
            EmbeddingInput::TokenArrays(arrays) if arrays.is_empty() => Err(Error::invalid_param(
                "input",
                "`input` must contain at least one item",
            )),
            EmbeddingInput::Texts(texts) => match texts.iter().position(String::is_empty) {
                Some(i) => Err(empty_item(i)),
                None => Ok(()),
            },
            EmbeddingInput::TokenArrays(arrays) => match arrays.iter().position(Vec::is_empty) {
                Some(i) => Err(empty_item(i)),
                None => Ok(()),
            },
            EmbeddingInput::Text(_) | EmbeddingInput::Tokens(_) => Ok(()),
        }
    }
}

/// `encoding_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// A JSON array of numbers.
    #[default]
    Float,
    /// Base64 of the vector's little-endian f32 bytes.
    Base64,
}

impl EmbeddingRequest {
    /// Checks what every provider needs before any target is tried; errors name the field.
    pub fn validate(&self) -> Result<()> {
        self.input.validate()?;
        if self.dimensions == Some(0) {
            return Err(Error::invalid_param(
                "dimensions",
                "`dimensions` must be at least 1",
            ));
        }
        Ok(())
    }
}

/// An embeddings answer: `CreateEmbeddingResponse` plus `provider` and `usage.cost`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// Always `list`.
    #[serde(default = "list")]
    pub object: String,
    /// One embedding per input, in input order.
    pub data: Vec<Embedding>,
    /// The model that made the embeddings.
    #[serde(default)]
    pub model: String,
    /// Tokens embedded, and their cost. Providers that report none (Gemini) get a local count
    /// from the gateway, which marks the ledger record estimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<EmbeddingUsage>,
    /// opengateway: the provider id that served the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

fn list() -> String {
    "list".to_owned()
}

fn embedding() -> String {
    "embedding".to_owned()
}

/// One embedding of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Always `embedding`.
    #[serde(default = "embedding")]
    pub object: String,
    /// The position of its input in the request.
    #[serde(default)]
    pub index: u32,
    /// The vector, as numbers or base64.
    pub embedding: EmbeddingVector,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl Embedding {
    /// An embedding at `index` holding `values`.
    pub fn new(index: u32, values: Vec<f32>) -> Self {
        Embedding {
            object: embedding(),
            index,
            embedding: EmbeddingVector::Float(values),
            extra: JsonObject::new(),
        }
    }
}

/// A vector: numbers, or base64 of its little-endian f32 bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, expecting = "an array of numbers or a base64 string")]
pub enum EmbeddingVector {
    /// `encoding_format: float`.
    Float(Vec<f32>),
    /// `encoding_format: base64`.
    Base64(String),
}

impl EmbeddingVector {
    /// The numbers, decoding base64 if need be.
    pub fn to_floats(&self) -> Result<Vec<f32>> {
        match self {
            EmbeddingVector::Float(values) => Ok(values.clone()),
            EmbeddingVector::Base64(text) => {
                let bytes = BASE64.decode(text.trim()).map_err(|e| {
                    Error::new(
                        ErrorKind::Connection,
                        format!("an embedding is not valid base64: {e}"),
                    )
                })?;
                if bytes.len() % 4 != 0 {
                    return Err(Error::new(
                        ErrorKind::Connection,
                        format!(
                            "a base64 embedding has {} bytes, not a whole number of f32 values",
                            bytes.len()
                        ),
                    ));
                }
                Ok(bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect())
            }
        }
    }

    /// The vector in `format`, converting if need be.
    pub fn into_format(self, format: EncodingFormat) -> Result<Self> {
        match (format, self) {
            (EncodingFormat::Float, v @ EmbeddingVector::Float(_))
            | (EncodingFormat::Base64, v @ EmbeddingVector::Base64(_)) => Ok(v),
            (EncodingFormat::Float, v) => v.to_floats().map(EmbeddingVector::Float),
            (EncodingFormat::Base64, EmbeddingVector::Float(values)) => {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                Ok(EmbeddingVector::Base64(BASE64.encode(bytes)))
            }
        }
    }

    /// Number of dimensions.
    pub fn len(&self) -> usize {
        match self {
            EmbeddingVector::Float(values) => values.len(),
            // Four bytes per value, four base64 characters per three bytes.
            EmbeddingVector::Base64(text) => text.trim_end_matches('=').len() * 3 / 4 / 4,
        }
    }

    /// Whether the vector has no dimension.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `usage` of an embeddings answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    /// Input tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Equal to `prompt_tokens`: embeddings have no output tokens.
    #[serde(default)]
    pub total_tokens: u64,
    /// opengateway: the request's cost in USD, computed locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl EmbeddingUsage {
    /// The same counts as a chat [`super::Usage`], for pricing and the ledger.
    pub fn to_usage(&self) -> super::Usage {
        super::Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: 0,
            total_tokens: self.total_tokens.max(self.prompt_tokens),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::types::from_json;

    #[test]
    fn reads_every_input_form() {
        let cases = [
            (r#""hi""#, EmbeddingInput::Text("hi".into())),
            (
                r#"["a","b"]"#,
                EmbeddingInput::Texts(vec!["a".into(), "b".into()]),
            ),
            ("[1,2,3]", EmbeddingInput::Tokens(vec![1, 2, 3])),
            (
                "[[1],[2,3]]",
                EmbeddingInput::TokenArrays(vec![vec![1], vec![2, 3]]),
            ),
        ];
        for (json, want) in cases {
            let body = format!(r#"{{"model": "m", "input": {json}}}"#);
            let request: EmbeddingRequest = from_json(body.as_bytes()).unwrap();
            assert_eq!(request.input, want, "{json}");
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let e = from_json::<EmbeddingRequest>(
            br#"{"model": "m", "input": "x", "encoding_format": "int8"}"#,
        )
        .unwrap_err();
        assert_eq!(e.param(), Some("encoding_format"));
        let e = from_json::<EmbeddingRequest>(br#"{"model": "m", "input": {"a": 1}}"#).unwrap_err();
        assert_eq!(e.param(), Some("input"));
        let e = from_json::<EmbeddingRequest>(br#"{"model": "m"}"#).unwrap_err();
        assert_eq!(e.param(), Some("input"));

        let check = |json: &str| {
            from_json::<EmbeddingRequest>(json.as_bytes())
                .unwrap()
                .validate()
                .unwrap_err()
                .param()
                .map(str::to_owned)
        };
        assert_eq!(
            check(r#"{"model": "m", "input": ""}"#).as_deref(),
            Some("input")
        );
        assert_eq!(
            check(r#"{"model": "m", "input": []}"#).as_deref(),
            Some("input")
        );
        assert_eq!(
            check(r#"{"model": "m", "input": ["a", ""]}"#).as_deref(),
            Some("input[1]")
        );
        assert_eq!(
            check(r#"{"model": "m", "input": [[1], []]}"#).as_deref(),
            Some("input[1]")
        );
        assert_eq!(
            check(r#"{"model": "m", "input": "a", "dimensions": 0}"#).as_deref(),
            Some("dimensions")
        );
        let many = serde_json::json!({"model": "m", "input": vec!["a"; MAX_EMBEDDING_INPUTS + 1]});
        assert_eq!(check(&many.to_string()).as_deref(), Some("input"));
    }

    #[test]
    fn base64_round_trips_little_endian_f32() {
        let values = vec![0.5f32, -1.25, 3.0e-7, 0.0023064255];
        let b64 = EmbeddingVector::Float(values.clone())
            .into_format(EncodingFormat::Base64)
            .unwrap();
        let EmbeddingVector::Base64(text) = &b64 else {
            panic!("not base64: {b64:?}")
        };
        // 0.5f32 is 0x3F000000: little-endian bytes 00 00 00 3F.
        assert_eq!(&BASE64.decode(text).unwrap()[..4], &[0, 0, 0, 0x3f]);
        assert_eq!(b64.len(), 4);
        assert_eq!(
            b64.into_format(EncodingFormat::Float).unwrap(),
            EmbeddingVector::Float(values)
        );
        assert!(EmbeddingVector::Base64("AAA=".into()).to_floats().is_err());
    }
}
