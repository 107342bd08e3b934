//! `POST /v1/responses`: the OpenAI Responses API, passed through to providers that have it and
//! translated for the others by the core (`opengateway::inbound::responses`); this handler only
//! reads the body, picks streaming or not, and writes the answer, the SSE events (`event:` named
//! like the data's `type`) and OpenAI-shaped errors.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue};
use opengateway::inbound::responses::{ResponsesRequest, ResponsesStream};
use opengateway::{CallContext, Error};

use crate::error::ApiError;
use crate::routes::{AppState, call_context, parse_json, route_headers};
use crate::sse::{event_frame, sse_response};

/// The handler of `POST /v1/responses`.
pub(crate) async fn responses(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: ResponsesRequest = parse_json(&headers, body)?;
    let context = call_context(&headers);
    let result = if request.stream == Some(true) {
        stream(&state, request, &context).await
    } else {
        complete(&state, request, &context).await
    };
    result.map_err(ApiError)
}

async fn complete(
    state: &AppState,
    request: ResponsesRequest,
    context: &CallContext,
) -> Result<Response, Error> {
    let answer = state.gateway.responses_with(request, context).await?;
    let mut response = crate::routes::json_response(&answer.response);
    route_headers(&answer.route, &answer.request_id, response.headers_mut());
    // Without usage from the provider there is no cost to state.
    if let Some(cost) = answer
        .response
        .pointer("/usage/cost")
        .and_then(|c| c.as_f64())
        && let Ok(v) = HeaderValue::from_str(&cost.to_string())
    {
        response.headers_mut().insert("x-opengateway-cost", v);
    }
    Ok(response)
}

async fn stream(
    state: &AppState,
    request: ResponsesRequest,
    context: &CallContext,
) -> Result<Response, Error> {
    let stream = state
        .gateway
        .responses_stream_with(request, context)
        .await?;
    let route = stream.route().clone();
    let request_id = stream.request_id().to_owned();
    let mut response = sse_response(sse_events(stream));
    route_headers(&route, &request_id, response.headers_mut());
    Ok(response)
}

/// Each event as `event: <type>` + `data: <json>`. The stream ends after the terminal event
/// (`response.completed`, `response.incomplete` or `response.failed`) or after an `error`
/// event; the Responses API has no `[DONE]`. The core logs how the request ended.
fn sse_events(stream: ResponsesStream) -> impl Stream<Item = Bytes> {
    futures_util::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        let event = match stream.next().await? {
            Ok(event) => event,
            // Not produced today (failures arrive as `error` events); kept total.
            Err(e) => {
                let data = serde_json::json!({"type": "error", "code": null, "message": e.message(), "param": e.param(), "sequence_number": 0});
                opengateway::inbound::responses::ResponsesEvent::from_value(&data)
            }
        };
        Some((event_frame(&event.name, &event.data), Some(stream)))
    })
}
