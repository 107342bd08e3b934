//! `POST /v1/messages`: the Anthropic Messages API in and out, any provider behind it. The core
//! translates to and from the canonical chat request (`opengateway::inbound::anthropic`); this
//! handler only reads the body, picks streaming or not, and writes Anthropic-shaped answers and
//! errors (`{"type": "error", "error": {"type", "message"}}`, with the same statuses as the
//! OpenAI endpoints).
//!
//! Anthropic clients send `x-api-key` and `anthropic-version`: `x-api-key` carries the `ogw_`
//! key (checked by [`crate::auth`], whose refusals here are Anthropic-shaped too);
//! `anthropic-version` is accepted and ignored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode};
use opengateway::inbound::anthropic::{MessagesRequest, MessagesStream, anthropic_error_body};
use opengateway::{CallContext, Error};

use crate::error::error_headers;
use crate::routes::{AppState, call_context, parse_json, route_headers};
use crate::sse::{event_frame, sse_response};

/// The handler of `POST /v1/messages`.
pub(crate) async fn messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request: MessagesRequest = match parse_json(&headers, body) {
        Ok(request) => request,
        Err(e) => return anthropic_error(e.0),
    };
    let context = call_context(&headers);
    // The core logs one line per accepted request when it ends (`opengateway::request`).
    let result = if request.stream == Some(true) {
        stream(&state, request, &context).await
    } else {
        complete(&state, request, &context).await
    };
    result.unwrap_or_else(anthropic_error)
}

async fn complete(
    state: &AppState,
    request: MessagesRequest,
    context: &CallContext,
) -> Result<Response, Error> {
    let answer = state.gateway.messages_with(request, context).await?;
    let mut response = crate::routes::json_response(&answer.response);
    route_headers(&answer.route, &answer.request_id, response.headers_mut());
    // Without usage from the provider there is no cost to state.
    if let Some(cost) = answer.usage.cost
        && let Ok(v) = HeaderValue::from_str(&cost.to_string())
    {
        response.headers_mut().insert("x-opengateway-cost", v);
    }
    Ok(response)
}

async fn stream(
    state: &AppState,
    request: MessagesRequest,
    context: &CallContext,
) -> Result<Response, Error> {
    let stream = state.gateway.messages_stream_with(request, context).await?;
    let route = stream.route().clone();
    let request_id = stream.request_id().to_owned();
    let mut response = sse_response(sse_events(stream));
    route_headers(&route, &request_id, response.headers_mut());
    Ok(response)
}

/// Each Anthropic event as `event: <name>` + `data: <json>`. The stream ends after
/// `message_stop`, or after an `error` event when the provider failed mid-way (no `[DONE]` in
/// this dialect).
fn sse_events(stream: MessagesStream) -> impl Stream<Item = Bytes> {
    futures_util::stream::unfold(Some(stream), move |state| {
        async move {
            let mut stream = state?;
            let event = match stream.next().await? {
                Ok(event) => event,
                // Not produced today (failures arrive as `error` events); kept total.
                Err(e) => opengateway::inbound::anthropic::AnthropicEvent::error(&e),
            };
            Some((
                event_frame(event.name, &event.data.to_string()),
                Some(stream),
            ))
        }
    })
}

/// An error as Anthropic shapes it, with the status and headers of the OpenAI endpoints.
pub(crate) fn anthropic_error(err: Error) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(anthropic_error_body(&err))).into_response();
    error_headers(&err, response.headers_mut());
    response
}
