//! API-key authentication of the `/v1/*` endpoints (`server.auth: keys`, the default).
//!
//! One layer over the whole router resolves the key of every `/v1/` request against the key
//! store before any handler runs: missing, malformed, unknown and revoked keys get a 401, a
//! store that cannot be read a 503 — never a pass. The key's id and limits are then in scope
//! for the handler's [`call_context`](crate::routes::call_context) (a task-local, so every
//! endpoint, present or added later, gets them without extra plumbing), and every answer gets
//! OpenAI's `x-ratelimit-*` headers for the key's limits. `/health`, `/metrics` and `/admin`
//! are not behind keys (the admin API has the master key).

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use http::{HeaderMap, HeaderValue, header};
use opengateway::accounting::{RateLimitStatus, format_duration};
use opengateway::config::AuthMode;
use opengateway::keys::{ApiKey, KeyError, KeyStore, mask};
use opengateway::{CallContext, Error, ErrorKind};
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::error::ApiError;
use crate::routes::AppState;

tokio::task_local! {
    /// The key the current `/v1/` request was authenticated with.
    static CURRENT_KEY: ApiKey;
}

/// The key of the request being handled, when it was authenticated with one.
pub(crate) fn current_key() -> Option<ApiKey> {
    CURRENT_KEY.try_with(Clone::clone).ok()
}

/// The key store of `server.database`, opened on first use (a server with `auth: none` and no
/// admin key calls never creates it); an open that fails is tried again on the next call.
#[derive(Debug)]
pub struct Keys {
    path: Result<PathBuf, String>,
    store: OnceCell<Arc<KeyStore>>,
}

impl Keys {
    /// The keys of the store a configuration names.
    pub fn new(config: &opengateway::config::Config) -> Self {
        Keys {
            path: config.server.sqlite_path().map_err(|e| e.to_string()),
            store: OnceCell::new(),
        }
    }

    /// The open store.
    pub async fn store(&self) -> Result<Arc<KeyStore>, KeyError> {
        let path = self.path.clone().map_err(KeyError::Store)?;
        self.store
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || KeyStore::open(&path).map(Arc::new))
                    .await
                    .map_err(|e| KeyError::Store(e.to_string()))?
            })
            .await
            .cloned()
    }

    /// Runs a blocking store operation off the async threads.
    pub async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&KeyStore) -> Result<T, KeyError> + Send + 'static,
    ) -> Result<T, KeyError> {
        let store = self.store().await?;
        tokio::task::spawn_blocking(move || op(&store))
            .await
            .map_err(|e| KeyError::Store(e.to_string()))?
    }
}

/// The secret a request carries: `Authorization: Bearer …` (OpenAI clients) or `x-api-key`
/// (Anthropic clients); empty when there is none.
fn presented_secret(headers: &HeaderMap) -> String {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty());
    let api_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    bearer.or(api_key).unwrap_or("").to_owned()
}

/// The error a refused key gets, OpenAI-shaped (`invalid_api_key`); never the whole key.
pub(crate) fn key_error(e: &KeyError, secret: &str) -> Error {
    let incorrect = |extra: &str| {
        Error::new(
            ErrorKind::Authentication,
            format!("Incorrect API key provided: {}.{extra}", mask(secret)),
        )
        .with_type("invalid_request_error")
        .with_code("invalid_api_key")
    };
    match e {
        KeyError::Missing => Error::new(
            ErrorKind::Authentication,
            "You didn't provide an API key. Send it as `Authorization: Bearer ogw_…` (or `x-api-key: ogw_…`); an administrator creates keys with `opengateway keys create --name NAME`.",
        )
        .with_type("invalid_request_error")
        .with_code("invalid_api_key"),
        KeyError::Malformed => incorrect(" Keys of this gateway start with `ogw_`."),
        KeyError::Unknown | KeyError::NotFound(_) | KeyError::Invalid { .. } => incorrect(""),
        KeyError::Revoked(_) => incorrect(" This key was revoked."),
        KeyError::Store(_) => Error::new(
            ErrorKind::ServiceUnavailable,
            "The API key cannot be verified right now (the key store is unavailable), so the request is refused.",
        ),
    }
}

/// The layer: authenticates `/v1/` requests when `server.auth` is `keys`.
// Not an `async fn`: a request that needs no key is served with a future of `Next::run`'s
// size (~0.3 KB) instead of one sized for checking a key (~1.6 KB), held while it is in flight;
// checking one boxes that future.
pub(crate) fn require_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> impl Future<Output = Response> {
    let path = request.uri().path();
    if state.gateway.config().server.auth == AuthMode::None || !path.starts_with("/v1/") {
        return Either::Left(next.run(request));
    }
    Either::Right(Box::pin(authenticate(state, request, next)))
}

/// Checks the request's key, then serves it under that key (or refuses it).
async fn authenticate(state: AppState, request: Request, next: Next) -> Response {
    let anthropic = request.uri().path() == "/v1/messages";
    let secret = presented_secret(request.headers());
    let checked = if secret.is_empty() {
        Err(KeyError::Missing)
    } else {
        let secret = secret.clone();
        state.keys.run(move |s| s.authenticate(&secret)).await
    };
    let key = match checked {
        Ok(key) => key,
        Err(e) => {
            match &e {
                KeyError::Store(detail) => {
                    tracing::error!(error = %detail, "cannot verify an API key: refused (503)");
                }
                KeyError::Revoked(id) => tracing::warn!(key = %id, "revoked API key refused"),
                other => tracing::warn!(reason = %other, "API key refused"),
            }
            return refuse(key_error(&e, &secret), anthropic);
        }
    };
    let context = CallContext {
        key: Some(key.id.clone()),
        limits: Some(key.limits.clone()),
        ..Default::default()
    };
    let span = tracing::info_span!("request", key = %key.id);
    let mut response = CURRENT_KEY
        .scope(key, next.run(request))
        .instrument(span)
        .await;
    if let Some(status) = state.gateway.rate_limit_status(&context) {
        rate_limit_headers(&status, response.headers_mut());
    }
    response
}

fn refuse(err: Error, anthropic: bool) -> Response {
    if anthropic {
        crate::messages::anthropic_error(err)
    } else {
        ApiError(err).into_response()
    }
}

/// OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers.
fn rate_limit_headers(status: &RateLimitStatus, headers: &mut HeaderMap) {
    for (name, limit) in [("requests", status.requests), ("tokens", status.tokens)] {
        let Some(limit) = limit else { continue };
        let values = [
            ("limit", limit.limit.to_string()),
            ("remaining", limit.remaining.to_string()),
            ("reset", format_duration(limit.reset)),
        ];
        for (what, value) in values {
            if let (Ok(header_name), Ok(v)) = (
                http::HeaderName::from_bytes(format!("x-ratelimit-{what}-{name}").as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(header_name, v);
            }
        }
    }
}
