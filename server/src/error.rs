//! Every failure the server answers with, as an OpenAI-shaped body and the right status.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use opengateway::{Error, ErrorKind};

/// A core error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    /// A 400 naming the field at fault.
    pub fn invalid(param: Option<String>, message: impl Into<String>) -> Self {
        let mut err = Error::new(ErrorKind::BadRequest, message);
        if let Some(p) = param {
            err = err.with_param(p);
        }
        ApiError(err)
    }

    /// An error of `kind` with its default status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError(Error::new(kind, message))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let err = self.0;
        let status =
            StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(err.to_body())).into_response();
        error_headers(&err, response.headers_mut());
        response
    }
}

/// The headers every error answer carries: the provider and attempt count when known, and
/// `retry-after` when the provider asked callers to wait.
pub(crate) fn error_headers(err: &Error, headers: &mut http::HeaderMap) {
    if let Some(provider) = err.provider().and_then(|p| HeaderValue::from_str(p).ok()) {
        headers.insert("x-opengateway-provider", provider);
    }
    if !err.attempts().is_empty() {
        headers.insert(
            "x-opengateway-attempts",
            HeaderValue::from(err.attempts().len()),
        );
    }
    if let Some(wait) = err.retry_after() {
        // Rounded up: a client that waits what it is told must not come back too early.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        headers.insert("retry-after", HeaderValue::from(secs.max(1)));
    }
}
