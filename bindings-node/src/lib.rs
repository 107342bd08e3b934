//! Node.js bindings for `opengateway`, built by `napi build` into `opengateway.<platform>.node`.
//!
//! The addon is deliberately thin: request bodies arrive as JSON text (one `JSON.stringify` in
//! JavaScript, serde here), answers leave as JSON text (one `JSON.parse` there), and every
//! failure is rejected with a JSON payload that `index.js` maps to its error class in one place.
//! All I/O runs on napi's tokio runtime; the JavaScript thread only converts strings.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{FutureExt, Stream, StreamExt};
use napi::bindgen_prelude::{Function, PromiseRaw};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;
use opengateway::accounting::{UsageFilter, UsageQuery};
use opengateway::config::Config;
use opengateway::inbound::anthropic::{MessagesRequest, MessagesStream};
use opengateway::types::{ChatCompletionRequest, EmbeddingRequest, from_json};
use opengateway::{CallContext, ChatStream, Error, Gateway, Route};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// At most this many ready chunks are handed to JavaScript per `next()` call; batching saves a
/// promise round trip per chunk when the provider is faster than the consumer.
const MAX_BATCH: usize = 64;

/// Returns the version of the `opengateway` core this addon was built from.
#[napi]
pub fn version() -> String {
    opengateway::VERSION.to_owned()
}

/// The rejection payload for a core error: its OpenAI body plus what the JS classes carry.
#[derive(Serialize)]
struct ErrorPayload<'a> {
    /// Marks the message as ours, so `index.js` never mistakes a foreign error for one.
    opengateway_error: bool,
    kind: &'a str,
    status: u16,
    provider: Option<&'a str>,
    attempts: &'a [opengateway::Attempt],
    retry_after_ms: Option<u128>,
    error: opengateway::types::ErrorObject,
}

fn kind_name(e: &Error) -> String {
    serde_json::to_value(e.kind())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A core error as a napi rejection whose message is the JSON payload.
fn reject(e: &Error) -> napi::Error {
    let kind = kind_name(e);
    let payload = ErrorPayload {
        opengateway_error: true,
        kind: &kind,
        status: e.status(),
        provider: e.provider(),
        attempts: e.attempts(),
        retry_after_ms: e.retry_after().map(|d| d.as_millis()),
        error: e.to_body().error,
    };
    let text = serde_json::to_string(&payload).unwrap_or_else(|_| e.message().to_owned());
    napi::Error::new(Status::GenericFailure, text)
}

/// The rejection for a call the caller aborted (mapped to `APIUserAbortError`).
fn aborted() -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        r#"{"opengateway_error":true,"kind":"aborted","status":0,"attempts":[],"error":{"message":"Request was aborted.","type":"aborted","param":null,"code":null}}"#,
    )
}

fn json_error(e: serde_json::Error) -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        format!("cannot serialize the answer: {e}"),
    )
}

/// A cancellation handle JavaScript creates per call and trips from an `AbortSignal`.
#[napi]
pub struct CancelToken {
    token: CancellationToken,
}

#[napi]
impl CancelToken {
    /// A token that has not been cancelled.
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CancelToken {
            token: CancellationToken::new(),
        }
    }

    /// Cancels every call the token was given to: their futures (and upstream requests) drop.
    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }
}

/// Runs `work` unless `token` is cancelled first; dropping `work` is what aborts the request.
async fn cancellable<T>(
    token: Option<CancellationToken>,
    work: impl std::future::Future<Output = opengateway::Result<T>>,
) -> napi::Result<T> {
    match token {
        Some(t) => tokio::select! {
            _ = t.cancelled() => Err(aborted()),
            r = work => r.map_err(|e| reject(&e)),
        },
        None => work.await.map_err(|e| reject(&e)),
    }
}

/// What a non-streamed answer looks like on its way to JavaScript.
#[derive(Serialize)]
struct Envelope<'a, T> {
    route: &'a Route,
    request_id: &'a str,
    response: &'a T,
}

fn call_context(tags: Option<Vec<String>>) -> CallContext {
    CallContext {
        tags: tags.unwrap_or_default(),
        ..Default::default()
    }
}

/// The gateway as JavaScript holds it; `index.js` wraps it in the public `Gateway` class.
#[napi]
pub struct NativeGateway {
    inner: Gateway,
}

#[napi]
impl NativeGateway {
    /// Builds a gateway from a config object as JSON text, or a YAML file path, or neither
    /// (providers from the standard key variables).
    #[napi(constructor)]
    pub fn new(config_json: Option<String>, config_path: Option<String>) -> napi::Result<Self> {
        let gateway = match (config_json, config_path) {
            (_, Some(path)) => Gateway::from_file(path),
            (json, None) => {
                let value = match json {
                    Some(text) => {
                        from_json::<serde_json::Value>(text.as_bytes()).map_err(|e| reject(&e))?
                    }
                    None => serde_json::Value::Null,
                };
                Config::from_value(value)
                    .map_err(|e| Error::new(opengateway::ErrorKind::BadRequest, e.to_string()))
                    .and_then(Gateway::from_config)
            }
        };
        // Building may start the ledger's writer; give it napi's runtime if it needs one.
        let inner = napi::bindgen_prelude::within_runtime_if_available(|| gateway)
            .map_err(|e| reject(&e))?;
        Ok(NativeGateway { inner })
    }

    /// A chat completion: `body` is the request as JSON text; resolves with the envelope
    /// `{route, request_id, response}` as JSON text.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn chat<'env>(
        &self,
        env: &'env Env,
        body: String,
        tags: Option<Vec<String>>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let gateway = self.inner.clone();
        let token = cancel.map(|c| c.token.clone());
        env.spawn_future(async move {
            let request: ChatCompletionRequest =
                from_json(body.as_bytes()).map_err(|e| reject(&e))?;
            let context = call_context(tags);
            let answer = cancellable(token, gateway.chat_json_with(request, &context)).await?;
            let response = serde_json::value::RawValue::from_string(answer.response.json)
                .map_err(json_error)?;
            serde_json::to_string(&Envelope {
                route: &answer.route,
                request_id: &answer.request_id,
                response: &response,
            })
            .map_err(json_error)
        })
    }

    /// A streamed chat completion: resolves once the first chunk is on its way (or the
    /// request failed before it), with a stream to read chunks from.
    #[napi(ts_return_type = "Promise<NativeStream>")]
    pub fn chat_stream<'env>(
        &self,
        env: &'env Env,
        body: String,
        tags: Option<Vec<String>>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<PromiseRaw<'env, NativeStream>> {
        let gateway = self.inner.clone();
        let token = cancel.map(|c| c.token.clone());
        env.spawn_future(async move {
            let mut request: ChatCompletionRequest =
                from_json(body.as_bytes()).map_err(|e| reject(&e))?;
            request.stream = Some(true);
            let context = call_context(tags);
            let stream =
                cancellable(token.clone(), gateway.chat_stream_with(request, &context)).await?;
            Ok(NativeStream::new(Source::Chat(Box::new(stream)), token))
        })
    }

    /// An Anthropic Messages request (JSON text); resolves with the envelope as JSON text.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn messages<'env>(
        &self,
        env: &'env Env,
        body: String,
        tags: Option<Vec<String>>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let gateway = self.inner.clone();
        let token = cancel.map(|c| c.token.clone());
        env.spawn_future(async move {
            let request: MessagesRequest = from_json(body.as_bytes()).map_err(|e| reject(&e))?;
            let context = call_context(tags);
            let answer = cancellable(token, gateway.messages_with(request, &context)).await?;
            serde_json::to_string(&Envelope {
                route: &answer.route,
                request_id: &answer.request_id,
                response: &answer.response,
            })
            .map_err(json_error)
        })
    }

    /// A streamed Anthropic Messages request; the stream yields Anthropic event objects.
    #[napi(ts_return_type = "Promise<NativeStream>")]
    pub fn messages_stream<'env>(
        &self,
        env: &'env Env,
        body: String,
        tags: Option<Vec<String>>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<PromiseRaw<'env, NativeStream>> {
        let gateway = self.inner.clone();
        let token = cancel.map(|c| c.token.clone());
        env.spawn_future(async move {
            let request: MessagesRequest = from_json(body.as_bytes()).map_err(|e| reject(&e))?;
            let context = call_context(tags);
            let stream = cancellable(
                token.clone(),
                gateway.messages_stream_with(request, &context),
            )
            .await?;
            Ok(NativeStream::new(Source::Messages(Box::new(stream)), token))
        })
    }

    /// An embeddings request (JSON text); resolves with the envelope as JSON text.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn embeddings<'env>(
        &self,
        env: &'env Env,
        body: String,
        tags: Option<Vec<String>>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let gateway = self.inner.clone();
        let token = cancel.map(|c| c.token.clone());
        env.spawn_future(async move {
            let request: EmbeddingRequest = from_json(body.as_bytes()).map_err(|e| reject(&e))?;
            let context = call_context(tags);
            let answer = cancellable(token, gateway.embeddings_with(request, &context)).await?;
            serde_json::to_string(&Envelope {
                route: &answer.route,
                request_id: &answer.request_id,
                response: &answer.response,
            })
            .map_err(json_error)
        })
    }

    /// Ledger totals for a `UsageQuery` given as JSON text; resolves with `UsageTotals[]` as
    /// JSON text.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn usage<'env>(
        &self,
        env: &'env Env,
        query: String,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let gateway = self.inner.clone();
        env.spawn_future(async move {
            let query: UsageQuery = from_json(query.as_bytes()).map_err(|e| reject(&e))?;
            // The ledger flushes and may read SQLite: keep that off the async workers.
            let rows = tokio::task::spawn_blocking(move || gateway.usage(&query))
                .await
                .map_err(|e| napi::Error::from_reason(e.to_string()))?
                .map_err(|e| reject(&e))?;
            serde_json::to_string(&rows).map_err(json_error)
        })
    }

    /// Ledger records for a `UsageFilter` given as JSON text, newest first, at most `limit`;
    /// resolves with `UsageRecord[]` as JSON text.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn usage_records<'env>(
        &self,
        env: &'env Env,
        filter: String,
        limit: u32,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let gateway = self.inner.clone();
        env.spawn_future(async move {
            let filter: UsageFilter = from_json(filter.as_bytes()).map_err(|e| reject(&e))?;
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let rows = tokio::task::spawn_blocking(move || gateway.usage_records(&filter, limit))
                .await
                .map_err(|e| napi::Error::from_reason(e.to_string()))?
                .map_err(|e| reject(&e))?;
            serde_json::to_string(&rows).map_err(json_error)
        })
    }

    /// Calls `callback` with every finished request's `UsageRecord` as JSON text. The call is
    /// queued to the JavaScript thread without waiting, and does not keep the process alive.
    #[napi(ts_args_type = "callback: (record: string) => void")]
    pub fn on_request_end(&self, callback: Function<String, ()>) -> napi::Result<()> {
        let tsfn: Arc<ThreadsafeFunction<String, (), String, Status, false, true>> = Arc::new(
            callback
                .build_threadsafe_function::<String>()
                .callee_handled::<false>()
                .weak::<true>()
                .build()?,
        );
        self.inner.on_request_end(move |record| {
            if let Ok(text) = serde_json::to_string(record) {
                tsfn.call(text, ThreadsafeFunctionCallMode::NonBlocking);
            }
        });
        Ok(())
    }

    /// Resolves once every record so far is written to the ledger's store.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn flush<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let gateway = self.inner.clone();
        env.spawn_future(async move {
            gateway.flush().await;
            Ok(())
        })
    }
}

/// The core stream a [`NativeStream`] reads from.
enum Source {
    Chat(Box<ChatStream>),
    Messages(Box<MessagesStream>),
}

impl Source {
    /// The next item as JSON text; a stream's `error` event becomes the error it stands for,
    /// so JavaScript sees one failure path.
    fn poll_json(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<String, Error>>> {
        use std::task::Poll;
        match self {
            Source::Chat(s) => {
                let mut out = Vec::new();
                s.poll_next_json(cx, &mut out).map(|item| {
                    item.map(|written| {
                        written.and_then(|()| {
                            String::from_utf8(out).map_err(|e| {
                                Error::new(opengateway::ErrorKind::InternalServer, e.to_string())
                            })
                        })
                    })
                })
            }
            Source::Messages(s) => match Pin::new(&mut **s).poll_next(cx) {
                Poll::Ready(Some(Ok(event))) => {
                    if event.name == "error"
                        && let Some(e) = s.error()
                    {
                        return Poll::Ready(Some(Err(e.clone())));
                    }
                    Poll::Ready(Some(Ok(event.data.to_string())))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl Stream for Source {
    type Item = Result<String, Error>;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.get_mut().poll_json(cx)
    }
}

/// What a [`NativeStream`] holds between `next()` calls.
struct StreamState {
    /// `None` once the stream ended, failed or was closed (dropping it aborts upstream).
    source: Option<Source>,
    /// A failure met while batching, reported by the following `next()`.
    failed: Option<Error>,
}

/// A stream of chunks (or Anthropic events) for JavaScript's async iterator.
#[napi]
pub struct NativeStream {
    state: Arc<tokio::sync::Mutex<StreamState>>,
    cancel: CancellationToken,
    route: String,
    request_id: String,
}

impl NativeStream {
    fn new(source: Source, call_token: Option<CancellationToken>) -> Self {
        let (route, request_id) = match &source {
            Source::Chat(s) => (s.route(), s.request_id().to_owned()),
            Source::Messages(s) => (s.route(), s.request_id().to_owned()),
        };
        let route = serde_json::to_string(route).unwrap_or_else(|_| "null".to_owned());
        // The call's own token (from an AbortSignal) also ends the stream.
        let cancel = call_token.unwrap_or_default();
        NativeStream {
            state: Arc::new(tokio::sync::Mutex::new(StreamState {
                source: Some(source),
                failed: None,
            })),
            cancel,
            route,
            request_id,
        }
    }
}

#[napi]
impl NativeStream {
    /// The route (provider, model, attempts) as JSON text.
    #[napi(getter)]
    pub fn route(&self) -> String {
        self.route.clone()
    }

    /// The id of the request's usage record.
    #[napi(getter)]
    pub fn request_id(&self) -> String {
        self.request_id.clone()
    }

    /// Resolves with the next ready items as a JSON array text, or `null` at the end.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn next<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Option<String>>> {
        let state = Arc::clone(&self.state);
        let cancel = self.cancel.clone();
        env.spawn_future(async move {
            let mut state = state.lock().await;
            if cancel.is_cancelled() {
                state.source = None;
                return Err(aborted());
            }
            if let Some(e) = state.failed.take() {
                return Err(reject(&e));
            }
            let Some(source) = state.source.as_mut() else {
                return Ok(None);
            };
            let first = tokio::select! {
                _ = cancel.cancelled() => {
                    state.source = None;
                    return Err(aborted());
                }
                item = source.next() => item,
            };
            let mut batch = String::from("[");
            match first {
                None => {
                    state.source = None;
                    return Ok(None);
                }
                Some(Err(e)) => {
                    state.source = None;
                    return Err(reject(&e));
                }
                Some(Ok(text)) => batch.push_str(&text),
            }
            for _ in 1..MAX_BATCH {
                match source.next().now_or_never() {
                    Some(Some(Ok(text))) => {
                        batch.push(',');
                        batch.push_str(&text);
                    }
                    Some(Some(Err(e))) => {
                        state.failed = Some(e);
                        state.source = None;
                        break;
                    }
                    Some(None) => {
                        state.source = None;
                        break;
                    }
                    None => break,
                }
            }
            batch.push(']');
            Ok(Some(batch))
        })
    }

    /// Stops the stream: the upstream request is dropped (its record settles `cancelled`
    /// unless the answer was already complete) and any pending `next()` rejects as aborted.
    #[napi]
    pub fn close(&self) {
        self.cancel.cancel();
        // When no `next()` holds the state, drop the source right away; otherwise the pending
        // `next()` sees the cancellation and drops it.
        if let Ok(mut state) = self.state.try_lock() {
            state.source = None;
        }
    }
}
