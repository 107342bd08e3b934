//! The OpenAI error body: `{"error": {"message", "type", "param", "code"}}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The whole error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// The `error` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// What went wrong, for a person.
    pub message: String,
    /// Error class (`invalid_request_error`, `rate_limit_error`, ...).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The request field at fault, if any.
    #[serde(default)]
    pub param: Option<String>,
    /// Machine-readable code (a string, sometimes a number upstream).
    #[serde(default)]
    pub code: Option<Value>,
}
