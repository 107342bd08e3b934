//! HTTP routes: OpenAI-compatible endpoints that hand every request to the core gateway.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use futures_util::future::Either;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use opengateway::types::ChatCompletionRequest;
use opengateway::{CallContext, ChatJson, ErrorKind, Gateway, Route, Routed};
use std::sync::Arc;

use crate::error::ApiError;
use crate::sse::sse_response;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The core gateway.
    pub gateway: Gateway,
    /// The API keys of the store (`server.database`).
    pub keys: Arc<crate::auth::Keys>,
}

/// The server's router: OpenAI-compatible endpoints, a body limit and OpenAI-shaped 404/405s.
pub fn app(gateway: Gateway) -> Router {
    let max_body = gateway.config().server.max_body_bytes;
    let state = AppState {
        keys: Arc::new(crate::auth::Keys::new(gateway.config())),
        gateway,
    };
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages", post(crate::messages::messages))
        .route("/v1/responses", post(crate::responses::responses))
        .route("/v1/embeddings", post(crate::embeddings::embeddings))
        .route("/v1/models", get(list_models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/admin/usage", get(crate::admin::usage))
        .route("/admin/requests", get(crate::admin::requests))
        .route("/admin/requests/{id}", get(crate::admin::request))
        .route(
            "/admin/keys",
            post(crate::admin_keys::create).get(crate::admin_keys::list),
        )
        .route(
            "/admin/keys/{id}",
            get(crate::admin_keys::get)
                .patch(crate::admin_keys::update)
                .delete(crate::admin_keys::revoke),
        )
        .route("/admin/keys/{id}/revoke", post(crate::admin_keys::revoke))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        // Over every route, so any `/v1/` endpoint is behind the keys (see `auth`).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_key,
        ))
        .with_state(state)
}

async fn not_found(uri: http::Uri) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("Unknown endpoint `{}`.", uri.path()),
    )
}

async fn method_not_allowed(method: http::Method, uri: http::Uri) -> Response {
    let mut response = ApiError::new(
        ErrorKind::BadRequest,
        format!("Method {method} is not allowed on `{}`.", uri.path()),
    )
    .into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// Reads a JSON body: the content type must be JSON, the size within the limit, and any
/// decoding error names the field at fault.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !(mime.eq_ignore_ascii_case("application/json")
        || mime.to_ascii_lowercase().ends_with("+json"))
    {
        let shown = if content_type.is_empty() {
            "none"
        } else {
            content_type
        };
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!("Content-Type must be application/json (got {shown})."),
        ));
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorKind::PayloadTooLarge,
                "The request body is larger than the server's limit (server.max_body_bytes).",
            )
        } else {
            ApiError::invalid(None, format!("Cannot read the request body: {rejection}"))
        }
    })?;
    opengateway::types::from_json(&body).map_err(ApiError)
}

/// Who a request is for: tags from `x-opengateway-tags` (comma-separated); the user comes
/// from the body's `user`; the key and its limits from the authentication layer, never from
/// the client.
pub(crate) fn call_context(headers: &HeaderMap) -> CallContext {
    let tags = headers
        .get_all("x-opengateway-tags")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let key = crate::auth::current_key();
    CallContext {
        tags,
        limits: key.as_ref().map(|k| k.limits.clone()),
        key_label: key.as_ref().map(|k| k.prefix.clone()),
        key: key.map(|k| k.id),
        ..Default::default()
    }
}

/// The route headers, and `x-request-id`: the id of the request's usage record.
pub(crate) fn route_headers(route: &Route, request_id: &str, headers: &mut HeaderMap) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&route.provider) {
        headers.insert("x-opengateway-provider", v);
    }
    if let Ok(v) = HeaderValue::from_str(&route.model) {
        headers.insert("x-opengateway-model", v);
    }
    headers.insert(
        "x-opengateway-attempts",
        HeaderValue::from(route.attempts.len()),
    );
}

// Not an `async fn`: one moves its arguments into locals of its own, and the parsed request
// (~1 KB) stayed in the handler's future beside the gateway's copy while a stream waited for its
// first chunk. Here the request is parsed before the future is built, and moved from it once.
fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> impl Future<Output = Result<Response, ApiError>> {
    let request = match parse_json::<ChatCompletionRequest>(&headers, body) {
        Ok(request) => request,
        Err(e) => return Either::Left(std::future::ready(Err(e))),
    };
    let context = call_context(&headers);
    // The core logs one line per accepted request when it ends (`opengateway::request`).
    Either::Right(async move {
        if request.stream == Some(true) {
            let stream = state.gateway.chat_stream_with(request, &context).await?;
            let route = stream.route().clone();
            let request_id = stream.request_id().to_owned();
            let mut response = sse_response(chunk_frames(stream));
            route_headers(&route, &request_id, response.headers_mut());
            return Ok(response);
        }
        let answer = state.gateway.chat_json_with(request, &context).await?;
        let Routed {
            response: ChatJson { json, usage },
            route,
            request_id,
        } = answer;
        let mut response = (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response();
        route_headers(&route, &request_id, response.headers_mut());
        // Without usage from the provider there is no cost to state.
        if let Some(cost) = usage.as_ref().and_then(|u| u.cost)
            && let Ok(v) = HeaderValue::from_str(&cost.to_string())
        {
            response.headers_mut().insert("x-opengateway-cost", v);
        }
        Ok(response)
    })
}

/// A JSON response of `value`, written into one buffer sized for a typical answer: axum's
/// `Json` writes through `BytesMut`'s writer, whose checks on every small write cost as much as
/// the encoding itself.
pub(crate) fn json_response(value: &impl serde::Serialize) -> Response {
    let mut body = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::new(
            ErrorKind::InternalServer,
            format!("cannot encode the response: {e}"),
        )
        .into_response(),
    }
}

/// One `data:` frame holding `value` as JSON, written straight into a buffer of about the
/// size of the last one (rather than a string that axum's `Event` then copies, line by line).
fn data_frame(value: &impl serde::Serialize, size_hint: &mut usize) -> serde_json::Result<Bytes> {
    let mut frame = Vec::with_capacity(*size_hint);
    frame.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut frame, value)?;
    frame.extend_from_slice(b"\n\n");
    *size_hint = frame.len().next_power_of_two().max(256);
    Ok(Bytes::from(frame))
}

/// Chunks as SSE `data:` frames, then `[DONE]`: each written straight into a buffer of about
/// the size of the last one, as the provider sent it when it speaks OpenAI's format
/// ([`opengateway::ChatStream::poll_next_json`]). An error after the stream started becomes one
/// `data: {"error": ...}` frame (what OpenAI's SDKs raise on) and ends the stream without
/// `[DONE]`, so no client mistakes a broken answer for a complete one.
fn chunk_frames(stream: opengateway::ChatStream) -> impl Stream<Item = Bytes> {
    futures_util::stream::unfold(Some((stream, 256)), move |state| async move {
        let (mut stream, mut size_hint) = state?;
        let mut frame = Vec::with_capacity(size_hint);
        frame.extend_from_slice(b"data: ");
        let polled = std::future::poll_fn(|cx| stream.poll_next_json(cx, &mut frame)).await;
        let error = match polled {
            Some(Ok(())) => {
                frame.extend_from_slice(b"\n\n");
                size_hint = frame.len().next_power_of_two().max(256);
                return Some((Bytes::from(frame), Some((stream, size_hint))));
            }
            Some(Err(e)) => e,
            None => return Some((Bytes::from_static(b"data: [DONE]\n\n"), None)),
        };
        let frame = data_frame(&error.to_body(), &mut size_hint).unwrap_or_default();
        Some((frame, None))
    })
}

async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let data = state.gateway.list_models_for(&call_context(&headers)).await;
    axum::Json(serde_json::json!({ "object": "list", "data": data })).into_response()
}

/// `GET /metrics`: Prometheus metrics (OpenMetrics text), open like `/health`.
async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(opengateway::metrics::CONTENT_TYPE),
        )],
        state.gateway.metrics(),
    )
        .into_response()
}

async fn health(State(state): State<AppState>) -> Response {
    let report = state.gateway.health().await;
    let status = if report.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}
