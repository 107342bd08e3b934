//! The one error type of the core: an OpenAI-shaped error with a small kind enum, the HTTP
//! status it maps to, and the attempts the router made before giving up.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::{ErrorBody, ErrorObject};

/// What kind of failure an [`Error`] is; each maps to one exception class in the bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 400: the request is invalid.
    BadRequest,
    /// 401: the credentials were refused.
    Authentication,
    /// 403: the credentials may not do this.
    PermissionDenied,
    /// 404: no such model or resource.
    NotFound,
    /// 409: conflicting state upstream.
    Conflict,
    /// 413: the request body is too large.
    PayloadTooLarge,
    /// 415: the request body is not JSON.
    UnsupportedMediaType,
    /// 422: the request is well-formed but cannot be processed.
    UnprocessableEntity,
    /// 429: a rate limit or quota was hit.
    RateLimit,
    /// 504: the provider did not answer in time.
    Timeout,
    /// 502: the provider could not be reached or sent something unreadable.
    Connection,
    /// 500 and other 5xx: the provider or the gateway failed.
    InternalServer,
    /// 503: nothing usable can serve the request right now.
    ServiceUnavailable,
}

impl ErrorKind {
    /// The kind an upstream HTTP status belongs to.
    pub fn from_status(status: u16) -> Self {
        match status {
            400 => ErrorKind::BadRequest,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            408 => ErrorKind::Timeout,
            409 => ErrorKind::Conflict,
            413 => ErrorKind::PayloadTooLarge,
            415 => ErrorKind::UnsupportedMediaType,
            422 => ErrorKind::UnprocessableEntity,
            429 => ErrorKind::RateLimit,
            503 | 529 => ErrorKind::ServiceUnavailable,
            504 => ErrorKind::Timeout,
            s if (400..500).contains(&s) => ErrorKind::BadRequest,
            _ => ErrorKind::InternalServer,
        }
    }

    /// The status the gateway answers with for this kind when no upstream status applies.
    pub fn default_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::UnprocessableEntity => 422,
            ErrorKind::RateLimit => 429,
            ErrorKind::Timeout => 504,
            ErrorKind::Connection => 502,
            ErrorKind::InternalServer => 500,
            ErrorKind::ServiceUnavailable => 503,
        }
    }

    /// OpenAI's `error.type` for this kind.
    pub fn error_type(self) -> &'static str {
        match self {
            ErrorKind::BadRequest
            | ErrorKind::NotFound
            | ErrorKind::Conflict
            | ErrorKind::PayloadTooLarge
            | ErrorKind::UnsupportedMediaType
            | ErrorKind::UnprocessableEntity => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Connection => "api_connection_error",
            ErrorKind::InternalServer => "server_error",
            ErrorKind::ServiceUnavailable => "service_unavailable_error",
        }
    }

    /// Whether trying again (or trying another provider) can help.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Conflict
                | ErrorKind::RateLimit
                | ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::InternalServer
                | ErrorKind::ServiceUnavailable
        )
    }
}

/// One try of one target, kept so callers can see every decision the router made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Provider id tried.
    pub provider: String,
    /// Model name sent to that provider.
    pub model: String,
    /// HTTP status the provider answered with, if it answered.
    pub status: Option<u16>,
    /// `None` when the attempt succeeded; else the error's OpenAI type.
    pub error_type: Option<String>,
    /// The error message, when the attempt failed.
    pub error_message: Option<String>,
    /// Time from sending to the answer (or the first chunk of a stream), in milliseconds.
    pub latency_ms: u64,
}

/// An OpenAI-shaped error: kind, status, message, the parameter at fault, and the attempts.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Error {
    inner: Box<ErrorInner>,
}

#[derive(Debug, Clone)]
struct ErrorInner {
    kind: ErrorKind,
    status: u16,
    message: String,
    error_type: Option<String>,
    param: Option<String>,
    code: Option<Value>,
    provider: Option<String>,
    retry_after: Option<Duration>,
    attempts: Vec<Attempt>,
    /// The provider answered with this error (an HTTP status of its own), rather than the
    /// gateway failing to reach it or to read it.
    from_provider: bool,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

/// Result alias of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with the kind's default status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            inner: Box::new(ErrorInner {
                kind,
                status: kind.default_status(),
                message: message.into(),
                error_type: None,
                param: None,
                code: None,
                provider: None,
                retry_after: None,
                attempts: Vec::new(),
                from_provider: false,
            }),
        }
    }

    /// A 400 naming the request field at fault.
    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::BadRequest, message).with_param(param)
    }

    /// The 404 for a model nobody can serve.
    pub fn model_not_found(model: &str, hint: &str) -> Self {
        Error::new(
            ErrorKind::NotFound,
            format!("The model `{model}` does not exist or is not configured. {hint}"),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// An error answered by a provider: its status and, when it is OpenAI-shaped, its body.
    pub fn upstream(provider: &str, status: u16, body: &[u8]) -> Self {
        let kind = ErrorKind::from_status(status);
        let parsed = parse_error_body(body);
        let mut err = match parsed {
            Some(obj) => {
                let mut e = Error::new(kind, obj.message);
                e.inner.error_type = obj.kind;
                e.inner.param = obj.param;
                e.inner.code = obj.code;
                e
            }
            None => {
                let text = String::from_utf8_lossy(body);
                let snippet: String = text.chars().take(500).collect();
                let message = if snippet.trim().is_empty() {
                    format!("provider `{provider}` answered with HTTP {status} and no body")
                } else {
                    format!("provider `{provider}` answered with HTTP {status}: {snippet}")
                };
                Error::new(kind, message)
            }
        };
        err.inner.status = status;
        err.inner.provider = Some(provider.to_owned());
        err.inner.from_provider = true;
        err
    }

    /// Sets the request field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.inner.param = Some(param.into());
        self
    }

    /// Sets the machine-readable code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.inner.code = Some(Value::String(code.into()));
        self
    }

    /// Sets OpenAI's `error.type` as the provider reported it.
    pub fn with_type(mut self, error_type: impl Into<String>) -> Self {
        self.inner.error_type = Some(error_type.into());
        self
    }

    /// Sets the provider the error came from.
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.inner.provider = Some(provider.into());
        self
    }

    /// Sets how long the provider asked callers to wait.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.inner.retry_after = retry_after;
        self
    }

    /// Replaces the list of attempts.
    pub fn with_attempts(mut self, attempts: Vec<Attempt>) -> Self {
        self.inner.attempts = attempts;
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The HTTP status to answer with (the provider's own status for upstream errors).
    pub fn status(&self) -> u16 {
        self.inner.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The request field at fault, if known.
    pub fn param(&self) -> Option<&str> {
        self.inner.param.as_deref()
    }

    /// The machine-readable code, if any.
    pub fn code(&self) -> Option<&Value> {
        self.inner.code.as_ref()
    }

    /// The provider the error came from, if any.
    pub fn provider(&self) -> Option<&str> {
        self.inner.provider.as_deref()
    }

    /// How long the provider asked callers to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// Whether a provider answered with this error (its own HTTP status), as opposed to a
    /// connection failure, a timeout or an unreadable answer.
    pub fn is_provider_answer(&self) -> bool {
        self.inner.from_provider
    }

    /// Every attempt the router made, in order.
    pub fn attempts(&self) -> &[Attempt] {
        &self.inner.attempts
    }

    /// Whether trying again or elsewhere can help.
    pub fn is_retryable(&self) -> bool {
        self.inner.kind.is_retryable()
    }

    /// The OpenAI error body for this error.
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                message: self.inner.message.clone(),
                kind: Some(
                    self.inner
                        .error_type
                        .clone()
                        .unwrap_or_else(|| self.inner.kind.error_type().to_owned()),
                ),
                param: self.inner.param.clone(),
                code: self.inner.code.clone(),
            },
        }
    }
}

/// Reads an OpenAI-shaped error body (`{"error": {...}}`, or an `error` that is a bare string).
pub(crate) fn parse_error_body(body: &[u8]) -> Option<ErrorObject> {
    let value: Value = serde_json::from_slice(body).ok()?;
    error_object_from_value(&value)
}

/// Reads the `error` member of a JSON value, as OpenAI-compatible providers send it.
pub(crate) fn error_object_from_value(value: &Value) -> Option<ErrorObject> {
    let err = value.get("error")?;
    match err {
        Value::String(s) => Some(ErrorObject {
            message: s.clone(),
            kind: None,
            param: None,
            code: None,
        }),
        Value::Object(map) => {
            let message = map
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| err.to_string());
            Some(ErrorObject {
                message,
                kind: map.get("type").and_then(Value::as_str).map(str::to_owned),
                param: map.get("param").and_then(Value::as_str).map(str::to_owned),
                code: map.get("code").filter(|c| !c.is_null()).cloned(),
            })
        }
        _ => None,
    }
}
