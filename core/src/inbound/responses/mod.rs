//! The OpenAI Responses API as an inbound shape (`POST /v1/responses`): passed through to
//! providers that have it (type `openai`), translated to and from the canonical chat request for
//! every other provider, streamed or not.
//!
//! API reference: <https://platform.openai.com/docs/api-reference/responses>
//!
//! # Routing
//!
//! The request's `model` (and `models` fallbacks) resolve to targets as for a chat completion;
//! each target is tried in turn with the router's retries, circuits and budgets, and the request
//! has one ledger record (endpoint `responses`). A target whose adapter has the Responses API
//! ([`Provider::encode_responses`](crate::providers::Provider::encode_responses): providers of
//! type `openai`) gets the client's JSON body with only `model` replaced (opengateway's own
//! fields removed); its answer is relayed as it is, plus `provider` and `usage.cost` on a
//! non-streamed body, and its stream event by event. Any other target gets the translation.
//! Fallback from one to the other happens only before the first event, as for chat.
//!
//! # Translation decisions
//!
//! Request ([`to_chat_request`]):
//! - `instructions` → a leading `developer` message; `input` as a string → one user message.
//! - `message` items (role user, system, developer, assistant; the `type` may be omitted):
//!   `input_text` → text parts, `input_image` (`image_url`, `detail`) → `image_url` parts,
//!   `input_file` with `file_data` → `file` parts; assistant `output_text` → text, `refusal` →
//!   `refusal`. `file_id` and `file_url` are refused by name (the files live at OpenAI).
//! - Assistant-side items in a row (`reasoning`, an assistant `message`, `function_call`s)
//!   become one assistant message: reasoning summary text → `reasoning_content`, calls →
//!   `tool_calls` (`call_id` is the tool call id). `function_call_output` → a `tool` message.
//! - `tools`: function tools (`name`, `description`, `parameters`, `strict`); built-in tools
//!   (web search, file search, computer use, ...) are refused as `tools[i]`. `tool_choice`
//!   modes, `{type: function, name}` and `allowed_tools` (functions only) are kept.
//! - `text.format`: `text` → none, `json_object`, `json_schema` (name, schema, strict,
//!   description) → `response_format`; `text.verbosity` → `verbosity`.
//! - `reasoning.effort` → `reasoning_effort`; `max_output_tokens` → `max_completion_tokens`;
//!   `temperature`, `top_p`, `parallel_tool_calls`, `metadata`, `user` as they are.
//! - Refused by name: `previous_response_id`, `conversation`, `prompt` and `background: true`
//!   (opengateway keeps no server-side state), `item_reference` and built-in tool items in
//!   `input`, and `top_logprobs` above 0.
//! - Left out because they do not change the answer: `store` (nothing is stored: the answer
//!   says `store: false`), `stream_options`, `include`, `truncation`, `reasoning.summary`,
//!   `safety_identifier`, `prompt_cache_key`, `service_tier`, `max_tool_calls`. Any other
//!   field is passed to the chat request's `extra`, as on `/v1/chat/completions`.
//!
//! Response ([`from_chat_response`]) and stream ([`ResponsesStreamEncoder`]): see their
//! documentation. Usage: `input_tokens` = prompt tokens (cached included, as OpenAI counts),
//! `input_tokens_details.cached_tokens` / `cache_write_tokens`, `output_tokens` = completion
//! tokens, `output_tokens_details.reasoning_tokens`, plus opengateway's `cost`.

mod native;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;
mod types;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use serde_json::{Value, json};

use crate::accounting::{CallContext, Ending};
use crate::error::{Error, Result};
use crate::gateway::{ChunkStream, message_estimate, served, validate_request};
use crate::router::{self, InFlight};
use crate::types::{ChatCompletion, ChatCompletionRequest, StreamOptions};
use crate::{ChatStream, Gateway, Route, Routed, Target};
use native::NativeStream;

pub use request::to_chat_request;
pub use response::{from_chat_response, responses_usage, usage_from_responses};
pub use stream::ResponsesStreamEncoder;
pub use types::{ResponsesEvent, ResponsesRequest};

/// What one attempt produced: the provider's own Response, or a chat completion to translate.
enum Answer {
    Native(Value),
    Chat(Box<ChatCompletion>),
}

/// What one streamed attempt started.
enum Started {
    Native(native::Upstream),
    Chat(Box<ChunkStream>),
}

/// The request's translation, or why it has none, and the chat request routing plans with.
struct Prepared {
    translated: Result<ChatCompletionRequest>,
    planning: ChatCompletionRequest,
}

impl Prepared {
    fn new(request: &ResponsesRequest) -> Self {
        let translated = to_chat_request(request);
        let planning = match &translated {
            Ok(chat) => chat.clone(),
            Err(_) => request::planning_request(request),
        };
        Prepared {
            translated,
            planning,
        }
    }

    /// The chat request for a translated target; the translation error when there is none.
    fn chat(&self) -> Result<&ChatCompletionRequest> {
        let chat = self.translated.as_ref().map_err(Clone::clone)?;
        validate_request(chat)?;
        Ok(chat)
    }
}

impl Gateway {
    /// Whether `target` takes Responses requests as they are (its adapter has the API).
    fn native_responses(&self, target: &Target) -> bool {
        self.adapter(target)
            .is_ok_and(|(_, adapter)| adapter.encode_responses(bytes::Bytes::new()).is_some())
    }

    /// Checks before anything is tried: with no target that passes the request through, a
    /// request that cannot be translated fails now.
    fn check_targets(&self, prepared: &Prepared, targets: &[Target]) -> Result<()> {
        match &prepared.translated {
            Err(e) if !targets.iter().any(|t| self.native_responses(t)) => Err(e.clone()),
            Ok(chat) if !targets.iter().any(|t| self.native_responses(t)) => validate_request(chat),
            _ => Ok(()),
        }
    }

    /// Answers a Responses API request without streaming: passed through to providers that
    /// have the API, translated through the chat path for the others. The answer is the
    /// Response object as JSON (with `provider` and `usage.cost`).
    pub async fn responses(&self, request: ResponsesRequest) -> Result<Routed<Value>> {
        self.responses_with(request, &CallContext::default()).await
    }

    /// [`Gateway::responses`] for a caller: the key, user and tags the ledger records.
    pub async fn responses_with(
        &self,
        request: ResponsesRequest,
        context: &CallContext,
    ) -> Result<Routed<Value>> {
        let prepared = Prepared::new(&request);
        let sticky = router::sticky_key(&prepared.planning);
        let targets = self.plan(&prepared.planning, sticky)?;
        self.check_targets(&prepared, &targets)?;
        let mut ticket = self
            .accept(&prepared.planning, &targets, context, "responses", false)
            .await?;
        let (answer, route) = self
            .run_targets(&mut ticket, &targets, sticky, |target, in_flight| {
                let (request, prepared) = (&request, &prepared);
                async move {
                    if self.native_responses(target) {
                        let (body, ttfb) = self
                            .native_once(request, &prepared.planning, target, in_flight)
                            .await?;
                        Ok((Answer::Native(body), ttfb))
                    } else {
                        let (chat, ttfb) =
                            self.chat_once(prepared.chat()?, target, in_flight).await?;
                        Ok((Answer::Chat(Box::new(chat)), ttfb))
                    }
                }
            })
            .await?;
        let price = self.price(&route.provider, &route.model);
        let (response, usage, completion_estimate) = match answer {
            Answer::Native(mut body) => {
                let mut usage = body.get("usage").and_then(usage_from_responses);
                if let Some(usage) = usage.as_mut() {
                    let cost = price.cost(usage).total_usd;
                    usage.cost = Some(cost);
                    body["usage"]["cost"] = json!(cost);
                }
                if body.is_object() {
                    body["provider"] = json!(route.provider);
                }
                (body, usage, 0)
            }
            Answer::Chat(mut chat) => {
                chat.provider = Some(route.provider.clone());
                if chat.model.is_empty() {
                    chat.model.clone_from(&route.model);
                }
                if let Some(usage) = chat.usage.as_mut() {
                    usage.cost = Some(price.cost(usage).total_usd);
                }
                let estimate = if chat.usage.is_none() {
                    chat.choices
                        .iter()
                        .map(|c| message_estimate(&c.message))
                        .sum()
                } else {
                    0
                };
                (
                    from_chat_response(&chat, &request),
                    chat.usage.clone(),
                    estimate,
                )
            }
        };
        ticket.settle(Ending {
            usage,
            completion_estimate,
            ..served(&route, price)
        });
        Ok(Routed {
            response,
            route,
            request_id: ticket.id().to_owned(),
        })
    }

    /// Answers a Responses API request as a stream of Responses events (see
    /// [`Gateway::responses`] for how targets are served).
    pub async fn responses_stream(&self, request: ResponsesRequest) -> Result<ResponsesStream> {
        self.responses_stream_with(request, &CallContext::default())
            .await
    }

    /// [`Gateway::responses_stream`] for a caller (see [`Gateway::responses_with`]).
    pub async fn responses_stream_with(
        &self,
        request: ResponsesRequest,
        context: &CallContext,
    ) -> Result<ResponsesStream> {
        let mut prepared = Prepared::new(&request);
        if let Ok(chat) = prepared.translated.as_mut() {
            // Usage is always asked of the provider, so `response.completed` can carry it.
            chat.stream = Some(true);
            chat.stream_options
                .get_or_insert_with(StreamOptions::default)
                .include_usage = Some(true);
        }
        let sticky = router::sticky_key(&prepared.planning);
        let targets = self.plan(&prepared.planning, sticky)?;
        self.check_targets(&prepared, &targets)?;
        let mut ticket = self
            .accept(&prepared.planning, &targets, context, "responses", true)
            .await?;
        let (started, route) = self
            .run_targets(&mut ticket, &targets, sticky, |target, in_flight| {
                let (request, prepared) = (&request, &prepared);
                async move {
                    if self.native_responses(target) {
                        let (upstream, ttfb) = self
                            .native_stream_once(request, &prepared.planning, target, in_flight)
                            .await?;
                        Ok((Started::Native(upstream), ttfb))
                    } else {
                        let context = crate::providers::StreamContext {
                            include_usage: true,
                        };
                        let (stream, ttfb) = self
                            .stream_once(prepared.chat()?, target, context, true, in_flight)
                            .await?;
                        Ok((Started::Chat(stream), ttfb))
                    }
                }
            })
            .await?;
        let request_id = ticket.id().to_owned();
        let inner = match started {
            Started::Native(upstream) => {
                let price = self.price(&route.provider, &route.model);
                Inner::Native(NativeStream::new(upstream, route.clone(), ticket, price))
            }
            Started::Chat(stream) => Inner::Chat {
                stream: ChatStream::from_parts(
                    route.clone(),
                    stream,
                    ticket,
                    self.config().server.log_bodies,
                ),
                encoder: ResponsesStreamEncoder::new(request),
            },
        };
        Ok(ResponsesStream {
            route,
            request_id,
            inner,
            pending: VecDeque::new(),
            error: None,
            done: false,
        })
    }

    async fn native_once(
        &self,
        request: &ResponsesRequest,
        planning: &ChatCompletionRequest,
        target: &Target,
        _in_flight: InFlight,
    ) -> Result<(Value, Duration)> {
        let (entry, adapter) = self.adapter(target)?;
        let (first_byte, total) = self.time_limits(entry, planning);
        let started = std::time::Instant::now();
        let upstream = native::encode(adapter.as_ref(), request, &target.model, false)?;
        let transport = self.transport_of(entry);
        let response = transport.send(adapter.id(), upstream, first_byte).await?;
        let ttfb = started.elapsed();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let remaining = (started + total).saturating_duration_since(std::time::Instant::now());
        let body = transport
            .read_body(adapter.id(), response, remaining)
            .await?;
        if !(200..300).contains(&status) {
            return Err(adapter.decode_error(status, &headers, &body));
        }
        let value = serde_json::from_slice::<Value>(&body)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| {
                Error::new(
                    crate::ErrorKind::Connection,
                    format!(
                        "provider `{}` sent a response that is not a JSON object",
                        adapter.id()
                    ),
                )
                .with_provider(adapter.id())
            })?;
        Ok((value, ttfb))
    }

    async fn native_stream_once(
        &self,
        request: &ResponsesRequest,
        planning: &ChatCompletionRequest,
        target: &Target,
        in_flight: InFlight,
    ) -> Result<(native::Upstream, Duration)> {
        let (entry, adapter) = self.adapter(target)?;
        let (first_byte, total) = self.time_limits(entry, planning);
        let started = std::time::Instant::now();
        let upstream = native::encode(adapter.as_ref(), request, &target.model, true)?;
        let transport = self.transport_of(entry);
        let response = transport.send(adapter.id(), upstream, first_byte).await?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let headers = response.headers().clone();
            let remaining = (started + total).saturating_duration_since(std::time::Instant::now());
            let body = transport
                .read_body(adapter.id(), response, remaining)
                .await?;
            return Err(adapter.decode_error(status, &headers, &body));
        }
        let upstream =
            native::Upstream::open(adapter.id(), response, in_flight, started, first_byte).await?;
        Ok((upstream, started.elapsed()))
    }
}

/// The two kinds of stream are each held once per request; their sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Native(NativeStream),
    Chat {
        stream: ChatStream,
        encoder: ResponsesStreamEncoder,
    },
}

/// A streamed Response: Responses API events, plus the route that was taken. It is exactly the
/// wire sequence: a failure after the stream started is an `error` event (followed by
/// `response.failed` when translated), and [`error`](Self::error) then tells what it was.
/// Dropping the stream closes the upstream connection; the usage record is settled when the
/// stream ends, fails or is dropped.
pub struct ResponsesStream {
    route: Route,
    request_id: String,
    inner: Inner,
    pending: VecDeque<ResponsesEvent>,
    error: Option<Error>,
    done: bool,
}

impl std::fmt::Debug for ResponsesStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponsesStream")
            .field("route", &self.route)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl ResponsesStream {
    /// Where the stream is served from and the attempts made before it started.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The id of the request's usage record.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The failure that ended the stream, once its `error` event was produced.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }
}

impl Stream for ResponsesStream {
    type Item = Result<ResponsesEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match &mut this.inner {
                Inner::Native(stream) => {
                    return match Pin::new(&mut *stream).poll_next(cx) {
                        Poll::Ready(None) => {
                            this.done = true;
                            this.error = stream.error().cloned();
                            Poll::Ready(None)
                        }
                        other => {
                            if stream.error().is_some() {
                                this.error = stream.error().cloned();
                            }
                            other
                        }
                    };
                }
                Inner::Chat { stream, encoder } => match Pin::new(stream).poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(chunk))) => this.pending.extend(encoder.on_chunk(&chunk)),
                    Poll::Ready(Some(Err(e))) => {
                        this.pending.extend(encoder.on_error(&e));
                        this.error = Some(e);
                        this.done = true;
                    }
                    Poll::Ready(None) => {
                        this.pending.extend(encoder.finish());
                        this.done = true;
                    }
                },
            }
        }
    }
}
