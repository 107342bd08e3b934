//! The pass-through: a Responses request sent as it is to a provider that has the API, and its
//! stream relayed event by event, read only for what the ledger needs.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::response::usage_from_responses;
use super::stream::error_event;
use super::types::{ResponsesEvent, ResponsesRequest};
use crate::Route;
use crate::accounting::{Ending, RecordStatus, Ticket, tokens};
use crate::error::{Error, ErrorKind, Result, error_object_from_value};
use crate::pricing::PriceTag;
use crate::providers::{Provider, SseEvent, UpstreamRequest};
use crate::router::InFlight;
use crate::transport::{SseStream, sse_events};
use crate::types::Usage;

/// The upstream request: the client's body with `model` replaced by the upstream model id and,
/// for a stream, `stream: true`. opengateway's own fields are typed apart and so never sent.
pub(crate) fn encode(
    adapter: &dyn Provider,
    request: &ResponsesRequest,
    model: &str,
    stream: bool,
) -> Result<UpstreamRequest> {
    let mut body = serde_json::Map::with_capacity(request.body.len() + 2);
    body.insert("model".to_owned(), json!(model));
    body.extend(request.body.iter().map(|(k, v)| (k.clone(), v.clone())));
    if stream {
        body.insert("stream".to_owned(), json!(true));
    } else if let Some(s) = request.stream {
        body.insert("stream".to_owned(), json!(s));
    }
    let bytes = serde_json::to_vec(&body).map_err(|e| {
        Error::new(
            ErrorKind::BadRequest,
            format!("cannot encode the request: {e}"),
        )
    })?;
    adapter.encode_responses(bytes.into()).ok_or_else(|| {
        Error::new(
            ErrorKind::InternalServer,
            format!("provider `{}` has no Responses API", adapter.id()),
        )
    })
}

/// The error an upstream `error` event (or a failed Response's `error`) stands for.
fn event_error(provider: &str, value: &Value) -> Error {
    let object = error_object_from_value(value).or_else(|| {
        // The spec's flat shape: `{"type": "error", "code", "message", "param"}`.
        Some(crate::types::ErrorObject {
            message: value.get("message")?.as_str()?.to_owned(),
            kind: None,
            param: value
                .get("param")
                .and_then(Value::as_str)
                .map(str::to_owned),
            code: value.get("code").cloned(),
        })
    });
    let (message, code) = match &object {
        Some(o) => (o.message.clone(), o.code.clone()),
        None => (value.to_string(), None),
    };
    let status = match code.as_ref().and_then(Value::as_str) {
        Some("rate_limit_exceeded" | "insufficient_quota") => 429,
        _ => 502,
    };
    let mut err = Error::new(
        ErrorKind::from_status(status),
        format!("provider `{provider}` reported an error mid-stream: {message}"),
    )
    .with_provider(provider);
    if let Some(Value::String(code)) = code {
        err = err.with_code(code);
    }
    if let Some(kind) = object.and_then(|o| o.kind) {
        err = err.with_type(kind);
    }
    err
}

fn event_name<'a>(event: &'a SseEvent, parsed: &'a mut Option<Value>) -> &'a str {
    if !event.event.is_empty() {
        return &event.event;
    }
    *parsed = serde_json::from_str(&event.data).ok();
    parsed
        .as_ref()
        .and_then(|v| v.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A pass-through stream that has sent its first event (so a failure before it can still fall
/// back to the next target).
pub(crate) struct Upstream {
    provider: String,
    events: SseStream,
    first: Option<SseEvent>,
    /// Counts the stream as in flight on its target until it is dropped.
    _in_flight: InFlight,
}

impl Upstream {
    /// Reads the stream up to its first event, within what is left of `first_byte`. A first
    /// event that is an `error` fails the attempt.
    pub(crate) async fn open(
        provider: &str,
        response: reqwest::Response,
        in_flight: InFlight,
        started: Instant,
        first_byte: Duration,
    ) -> Result<Self> {
        let mut events = sse_events(provider, response);
        let remaining = (started + first_byte).saturating_duration_since(Instant::now());
        let first = match tokio::time::timeout(remaining, events.next()).await {
            Ok(Some(Ok(first))) => first,
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!("provider `{provider}` sent an empty stream"),
                )
                .with_provider(provider));
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "provider `{provider}` sent no stream event within {} ms",
                        first_byte.as_millis()
                    ),
                )
                .with_provider(provider));
            }
        };
        let mut parsed = None;
        if event_name(&first, &mut parsed) == "error" {
            let value: Value = serde_json::from_str(&first.data).unwrap_or(Value::Null);
            return Err(event_error(provider, &value));
        }
        Ok(Upstream {
            provider: provider.to_owned(),
            events,
            first: Some(first),
            _in_flight: in_flight,
        })
    }
}

/// The events of a pass-through stream, relayed as the provider sent them. The terminal
/// event's usage is read for the ledger; a stream that breaks or ends before its terminal event
/// gets an `error` event of the gateway's own as its last event.
pub(crate) struct NativeStream {
    upstream: Upstream,
    route: Route,
    ticket: Option<Ticket>,
    ttft: Duration,
    price: PriceTag,
    usage: Option<Usage>,
    relayed: u64,
    terminal: bool,
    error: Option<Error>,
    ended: bool,
    output_estimate: u64,
}

#[derive(Deserialize)]
struct DeltaEvent<'a> {
    #[serde(borrow)]
    delta: std::borrow::Cow<'a, str>,
}

impl NativeStream {
    pub(crate) fn new(upstream: Upstream, route: Route, ticket: Ticket, price: PriceTag) -> Self {
        NativeStream {
            upstream,
            route,
            ttft: ticket.elapsed(),
            ticket: Some(ticket),
            price,
            usage: None,
            relayed: 0,
            terminal: false,
            error: None,
            ended: false,
            output_estimate: 0,
        }
    }

    pub(crate) fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// Reads what the ledger needs from one event before it is relayed.
    fn observe(&mut self, event: &SseEvent) {
        let mut parsed = None;
        let name = event_name(event, &mut parsed).to_owned();
        if name.ends_with(".delta") {
            if let Ok(delta) = serde_json::from_str::<DeltaEvent<'_>>(&event.data) {
                self.output_estimate += tokens::estimate_text(&delta.delta);
            }
            return;
        }
        let terminal = matches!(
            name.as_str(),
            "response.completed" | "response.incomplete" | "response.failed"
        );
        if !terminal && name != "error" {
            return;
        }
        let value = match parsed {
            Some(v) => v,
            None => serde_json::from_str::<Value>(&event.data).unwrap_or(Value::Null),
        };
        if name == "error" {
            self.error
                .get_or_insert_with(|| event_error(&self.upstream.provider, &value));
            return;
        }
        self.terminal = true;
        if let Some(mut usage) = value
            .pointer("/response/usage")
            .and_then(usage_from_responses)
        {
            usage.cost = Some(self.price.cost(&usage).total_usd);
            self.usage = Some(usage);
        }
        if name == "response.failed" && self.error.is_none() {
            let error = value
                .pointer("/response/error")
                .cloned()
                .unwrap_or(Value::Null);
            self.error = Some(event_error(&self.upstream.provider, &error));
        }
    }

    fn settle(&mut self, status: RecordStatus) {
        let Some(mut ticket) = self.ticket.take() else {
            return;
        };
        let mut ending = match &self.error {
            Some(e) => Ending::failed(e),
            None => Ending {
                status: Some(status),
                http_status: (status == RecordStatus::Ok).then_some(200),
                ..Default::default()
            },
        };
        let mut attempts = self.route.attempts.clone();
        if let (Some(e), Some(last)) = (&self.error, attempts.last_mut()) {
            last.status = e.is_provider_answer().then_some(e.status());
            last.error_type = e.to_body().error.kind;
            last.error_message = Some(e.message().to_owned());
        }
        ending.attempts = attempts;
        ending.provider = Some(self.route.provider.clone());
        ending.provider_model = Some(self.route.model.clone());
        ending.usage = self.usage.clone();
        ending.estimate = true;
        ending.completion_estimate = self.output_estimate;
        ending.price = Some(self.price.clone());
        ending.ttft = Some(self.ttft);
        ticket.settle(ending);
    }

    /// The gateway's own `error` event ending a stream that broke.
    fn break_with(&mut self, error: Error) -> ResponsesEvent {
        let mut data = error_event(&error);
        data["sequence_number"] = json!(self.relayed);
        self.error = Some(error);
        self.ended = true;
        self.settle(RecordStatus::Error);
        ResponsesEvent::from_value(&data)
    }
}

impl Stream for NativeStream {
    type Item = Result<ResponsesEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        let next = match this.upstream.first.take() {
            Some(first) => Some(Ok(first)),
            None => match this.upstream.events.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            },
        };
        match next {
            Some(Ok(event)) => {
                this.observe(&event);
                this.relayed += 1;
                let name = if event.event.is_empty() {
                    "message".to_owned()
                } else {
                    event.event
                };
                Poll::Ready(Some(Ok(ResponsesEvent {
                    name,
                    data: event.data,
                })))
            }
            Some(Err(e)) if !this.terminal => Poll::Ready(Some(Ok(this.break_with(e)))),
            None if !this.terminal && this.error.is_none() => {
                let provider = this.upstream.provider.clone();
                let error = Error::new(
                    ErrorKind::Connection,
                    format!("the stream from provider `{provider}` ended before the response was complete"),
                )
                .with_provider(provider);
                Poll::Ready(Some(Ok(this.break_with(error))))
            }
            _ => {
                this.ended = true;
                let status = if this.error.is_some() {
                    RecordStatus::Error
                } else {
                    RecordStatus::Ok
                };
                this.settle(status);
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for NativeStream {
    fn drop(&mut self) {
        // The usage arrives with the terminal event: with it, the answer was complete even if
        // the caller stopped reading before the end of the stream.
        let status = if self.usage.is_some() {
            RecordStatus::Ok
        } else {
            RecordStatus::Cancelled
        };
        self.settle(status);
    }
}

impl std::fmt::Debug for NativeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeStream")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}
