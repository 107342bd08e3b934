//! What the wire formats share: error envelopes, paced and breakable bodies, JSON responses.

use std::{
    io,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::stream;
use serde_json::{Value, json};

use crate::directives::Knobs;

/// Pause before an abort, so the bytes already produced reach the socket instead of being
/// discarded together with hyper's unflushed write buffer.
const ABORT_GRACE: Duration = Duration::from_millis(20);
/// The `request_id` of every Anthropic error body.
const ANTHROPIC_REQUEST_ID: &str = "req_mock";

/// The wire format an endpoint speaks, which decides the shape of its errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// OpenAI Chat Completions: `{"error": {message, type, param, code}}`.
    OpenAi,
    /// Anthropic Messages: `{"type": "error", "error": {type, message}, "request_id"}`.
    Anthropic,
    /// Google Gemini: `{"error": {code, message, status}}`, pretty-printed.
    Gemini,
}

impl Format {
    /// The error body this format's provider sends for `status`.
    pub(crate) fn error_body(self, status: StatusCode, message: &str) -> Value {
        let code = status.as_u16();
        match self {
            Format::OpenAi => {
                let (kind, code) = match code {
                    401 => ("invalid_request_error", Some("invalid_api_key")),
                    404 => ("invalid_request_error", Some("model_not_found")),
                    429 => ("requests", Some("rate_limit_exceeded")),
                    500.. => ("server_error", None),
                    _ => ("invalid_request_error", None),
                };
                openai_error(message, kind, None, code)
            }
            Format::Anthropic => {
                let kind = match code {
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    529 => "overloaded_error",
                    500.. => "api_error",
                    _ => "invalid_request_error",
                };
                anthropic_error(kind, message)
            }
            Format::Gemini => {
                let status_name = match code {
                    401 => "UNAUTHENTICATED",
                    403 => "PERMISSION_DENIED",
                    404 => "NOT_FOUND",
                    409 => "ABORTED",
                    429 => "RESOURCE_EXHAUSTED",
                    499 => "CANCELLED",
                    501 => "UNIMPLEMENTED",
                    503 => "UNAVAILABLE",
                    504 => "DEADLINE_EXCEEDED",
                    500.. => "INTERNAL",
                    _ => "INVALID_ARGUMENT",
                };
                json!({"error": {"code": code, "message": message, "status": status_name}})
            }
        }
    }

    /// An error response with this format's body for `status`.
    pub(crate) fn error(self, status: StatusCode, message: &str) -> Response {
        self.json(status, &self.error_body(status, message))
    }

    /// A JSON response the way this format's provider writes it (Google pretty-prints).
    pub(crate) fn json(self, status: StatusCode, body: &Value) -> Response {
        let text = match self {
            Format::Gemini => serde_json::to_string_pretty(body).unwrap_or_default(),
            Format::OpenAi | Format::Anthropic => body.to_string(),
        };
        let mut response = (status, text).into_response();
        let content_type = match self {
            Format::Gemini => "application/json; charset=UTF-8",
            Format::OpenAi | Format::Anthropic => "application/json",
        };
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if self == Format::Anthropic {
            response
                .headers_mut()
                .insert("request-id", HeaderValue::from_static(ANTHROPIC_REQUEST_ID));
        }
        response
    }

    /// The error for a path or method the mock does not serve; OpenAI's has no `code`.
    pub(crate) fn route_error(self, status: StatusCode, message: &str) -> Response {
        match self {
            Format::OpenAi => {
                let body = openai_error(message, "invalid_request_error", None, None);
                self.json(status, &body)
            }
            Format::Anthropic | Format::Gemini => self.error(status, message),
        }
    }

    /// The error for a request the mock cannot serve, e.g. a missing field (400).
    pub(crate) fn bad_request(self, message: &str) -> Response {
        self.error(StatusCode::BAD_REQUEST, message)
    }

    /// A scripted failure with `status`: the `body` knob or this format's default error, and the
    /// `retry_after` / `retry_after_ms` knobs as `Retry-After` / `retry-after-ms` headers.
    pub(crate) fn failure(self, status: u64, knobs: &Knobs) -> Response {
        let Some(status) = u16::try_from(status)
            .ok()
            .and_then(|status| StatusCode::from_u16(status).ok())
        else {
            return self.bad_request("mock.status is not an HTTP status code");
        };
        let mut response = match knobs.get("body") {
            // A string body goes out verbatim, to mimic proxies that answer with HTML or text.
            Some(Value::String(raw)) => (status, raw.clone()).into_response(),
            Some(body) => self.json(status, body),
            None => self.error(status, &format!("mock error {}", status.as_u16())),
        };
        for (knob, name) in [
            ("retry_after", "retry-after"),
            ("retry_after_ms", "retry-after-ms"),
        ] {
            let value = match knobs.get(knob) {
                Some(Value::String(text)) => text.clone(),
                Some(value @ Value::Number(_)) => value.to_string(),
                _ => continue,
            };
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// An OpenAI error object: `{"error": {"message", "type", "param", "code"}}`.
pub(crate) fn openai_error(
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// An Anthropic error object of `kind`.
pub(crate) fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": ANTHROPIC_REQUEST_ID})
}

/// One write of a response body; `Abort` breaks the connection instead of ending the body.
pub(crate) enum Piece {
    Bytes(Bytes),
    Abort,
}

impl Piece {
    /// A piece holding `text`.
    pub(crate) fn text(text: String) -> Piece {
        Piece::Bytes(Bytes::from(text))
    }
}

/// Cuts `pieces` after `drop_after` of them (the knob) and breaks the connection there.
pub(crate) fn apply_drop_after(pieces: &mut Vec<Piece>, knobs: &Knobs) {
    if let Some(limit) = crate::engine::knob_u64(knobs, "drop_after") {
        pieces.truncate(limit as usize);
        pieces.push(Piece::Abort);
    }
}

/// A streamed body writing `pieces`, sleeping `delay` between them.
pub(crate) fn body_of(pieces: Vec<Piece>, delay: Duration) -> Body {
    paced_body(pieces, delay, 1)
}

/// A streamed body writing `pieces`, sleeping `delay` before every `stride`-th piece but the first.
pub(crate) fn paced_body(pieces: Vec<Piece>, delay: Duration, stride: usize) -> Body {
    let stride = stride.max(1);
    let body = stream::unfold(
        (pieces.into_iter(), 0_usize),
        move |(mut rest, written)| async move {
            let piece = rest.next()?;
            if written > 0 && written % stride == 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let item = match piece {
                Piece::Bytes(bytes) => Ok(bytes),
                Piece::Abort => {
                    tokio::time::sleep(ABORT_GRACE).await;
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "mock drop_after",
                    ))
                }
            };
            Some((item, (rest, written + 1)))
        },
    );
    Body::from_stream(body)
}

/// A response streaming `pieces` as `content_type`, `delay_ms` apart, uncached.
pub(crate) fn stream_response(
    pieces: Vec<Piece>,
    delay_ms: u64,
    content_type: &'static str,
) -> Response {
    let mut response = Response::new(body_of(pieces, Duration::from_millis(delay_ms)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A 200 response with a JSON body, or with the `malformed` and `drop_after` knobs applied to it:
/// a body that is not JSON, or half a body whose full length was announced.
pub(crate) fn answer_body(body: String, content_type: &'static str, knobs: &Knobs) -> Response {
    let (body, full_len) = if crate::engine::knob_bool(knobs, "malformed") {
        let cut = body.len().min(12);
        (Body::from(body[..cut].to_owned()), None)
    } else if crate::engine::knob_u64(knobs, "drop_after").is_some() {
        // Announce the full length, then break off half-way: the client must see a short body.
        let body = Bytes::from(body);
        let len = body.len();
        let pieces = vec![Piece::Bytes(body.slice(..len / 2)), Piece::Abort];
        (body_of(pieces, Duration::ZERO), Some(len))
    } else {
        (Body::from(body), None)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(len) = full_len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    response
}

/// Sleeps `ms` milliseconds (not at all for 0).
pub(crate) async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Sets a header from a string when it is a valid header value.
pub(crate) fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}
