//! `POST /v1/embeddings`: OpenAI's embeddings API, any embeddings provider behind it. The core
//! resolves, falls back, converts float/base64 and records; this handler reads the body and
//! writes the answer with the route headers and `x-opengateway-cost` (the core logs the request).

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;
use http::{HeaderMap, HeaderValue};
use opengateway::types::EmbeddingRequest;

use crate::error::ApiError;
use crate::routes::{AppState, call_context, parse_json, route_headers};

/// The handler of `POST /v1/embeddings`.
pub(crate) async fn embeddings(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: EmbeddingRequest = parse_json(&headers, body)?;
    let context = call_context(&headers);
    let answer = state.gateway.embeddings_with(request, &context).await?;
    let mut response = crate::routes::json_response(&answer.response);
    route_headers(&answer.route, &answer.request_id, response.headers_mut());
    if let Some(cost) = answer.usage.as_ref().and_then(|u| u.cost)
        && let Ok(v) = HeaderValue::from_str(&cost.to_string())
    {
        response.headers_mut().insert("x-opengateway-cost", v);
    }
    Ok(response)
}
