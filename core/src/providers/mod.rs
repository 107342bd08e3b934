//! Provider adapters: one file per API family (a folder once it grows past about 1,500 lines, as
//! `gemini/` has), each a pure translation between the canonical OpenAI shape and the provider's
//! wire format. Adapters do no I/O; the gateway sends what they build and hands them what comes
//! back.

pub mod anthropic;
pub mod gemini;
pub mod openai;

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::types::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, EmbeddingRequest, EmbeddingResponse,
};

/// The API families a provider entry can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderType {
    /// OpenAI (Chat Completions).
    Openai,
    /// OpenAI on Azure.
    Azure,
    /// Anthropic Messages.
    Anthropic,
    /// Google AI Studio (Gemini).
    Gemini,
    /// Google Vertex AI.
    Vertex,
    /// AWS Bedrock Converse.
    Bedrock,
    /// Cohere Chat v2.
    Cohere,
    /// Mistral (OpenAI-compatible).
    Mistral,
    /// Groq (OpenAI-compatible).
    Groq,
    /// DeepSeek (OpenAI-compatible).
    Deepseek,
    /// xAI (OpenAI-compatible).
    Xai,
    /// Together AI (OpenAI-compatible).
    Together,
    /// Fireworks AI (OpenAI-compatible).
    Fireworks,
    /// OpenRouter (OpenAI-compatible).
    Openrouter,
    /// Cerebras (OpenAI-compatible).
    Cerebras,
    /// Perplexity (OpenAI-compatible).
    Perplexity,
    /// Ollama's OpenAI-compatible endpoint.
    Ollama,
    /// vLLM's OpenAI-compatible server.
    Vllm,
}

/// Static facts about a provider type: where it lives and which variable holds its key.
struct TypeInfo {
    kind: ProviderType,
    name: &'static str,
    default_api_base: Option<&'static str>,
    key_env: Option<&'static str>,
    needs_key: bool,
}

#[rustfmt::skip]
const TYPES: &[TypeInfo] = &[
    TypeInfo { kind: ProviderType::Openai, name: "openai", default_api_base: Some("https://api.openai.com/v1"), key_env: Some("OPENAI_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Azure, name: "azure", default_api_base: None, key_env: Some("AZURE_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Anthropic, name: "anthropic", default_api_base: Some("https://api.anthropic.com/v1"), key_env: Some("ANTHROPIC_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Gemini, name: "gemini", default_api_base: Some("https://generativelanguage.googleapis.com/v1beta"), key_env: Some("GEMINI_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Vertex, name: "vertex", default_api_base: None, key_env: None, needs_key: true },
    TypeInfo { kind: ProviderType::Bedrock, name: "bedrock", default_api_base: None, key_env: None, needs_key: true },
    TypeInfo { kind: ProviderType::Cohere, name: "cohere", default_api_base: Some("https://api.cohere.com/v2"), key_env: Some("COHERE_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Mistral, name: "mistral", default_api_base: Some("https://api.mistral.ai/v1"), key_env: Some("MISTRAL_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Groq, name: "groq", default_api_base: Some("https://api.groq.com/openai/v1"), key_env: Some("GROQ_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Deepseek, name: "deepseek", default_api_base: Some("https://api.deepseek.com/v1"), key_env: Some("DEEPSEEK_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Xai, name: "xai", default_api_base: Some("https://api.x.ai/v1"), key_env: Some("XAI_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Together, name: "together", default_api_base: Some("https://api.together.xyz/v1"), key_env: Some("TOGETHER_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Fireworks, name: "fireworks", default_api_base: Some("https://api.fireworks.ai/inference/v1"), key_env: Some("FIREWORKS_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Openrouter, name: "openrouter", default_api_base: Some("https://openrouter.ai/api/v1"), key_env: Some("OPENROUTER_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Cerebras, name: "cerebras", default_api_base: Some("https://api.cerebras.ai/v1"), key_env: Some("CEREBRAS_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Perplexity, name: "perplexity", default_api_base: Some("https://api.perplexity.ai"), key_env: Some("PERPLEXITY_API_KEY"), needs_key: true },
    TypeInfo { kind: ProviderType::Ollama, name: "ollama", default_api_base: Some("http://127.0.0.1:11434/v1"), key_env: None, needs_key: false },
    TypeInfo { kind: ProviderType::Vllm, name: "vllm", default_api_base: None, key_env: None, needs_key: false },
];

impl ProviderType {
    fn info(self) -> &'static TypeInfo {
        // Every variant has a row in TYPES; the fallback row is never reached.
        TYPES.iter().find(|t| t.kind == self).unwrap_or(&TYPES[0])
    }

    /// The type's config name (`openai`, `anthropic`, ...).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The type named `name`, if it is a built-in one.
    pub fn parse(name: &str) -> Option<Self> {
        TYPES.iter().find(|t| t.name == name).map(|t| t.kind)
    }

    /// All type names, for error messages.
    pub fn names() -> Vec<&'static str> {
        TYPES.iter().map(|t| t.name).collect()
    }

    /// All types.
    pub fn all() -> impl Iterator<Item = ProviderType> {
        TYPES.iter().map(|t| t.kind)
    }

    /// The public endpoint used when the config gives no `api_base`.
    pub fn default_api_base(self) -> Option<&'static str> {
        self.info().default_api_base
    }

    /// The standard environment variable holding this type's key.
    pub fn key_env(self) -> Option<&'static str> {
        self.info().key_env
    }

    /// Whether requests to this type need an API key.
    pub fn needs_key(self) -> bool {
        self.info().needs_key
    }

    /// Whether this type speaks the OpenAI Chat Completions wire format.
    pub fn is_openai_compatible(self) -> bool {
        !matches!(
            self,
            ProviderType::Azure
                | ProviderType::Anthropic
                | ProviderType::Gemini
                | ProviderType::Vertex
                | ProviderType::Bedrock
                | ProviderType::Cohere
        )
    }
}

impl fmt::Display for ProviderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The headers every request of a provider entry carries: the JSON content type, the auth
/// header (marked sensitive, so it never appears in logs), the API's fixed headers, then the
/// config's extra headers, which may override any of them.
pub(crate) fn base_headers(
    id: &str,
    auth: Option<(&'static str, String)>,
    fixed: &[(&'static str, &'static str)],
    extra: &[(String, String)],
) -> Result<HeaderMap> {
    let config_error = |what: String| {
        Error::new(
            crate::ErrorKind::BadRequest,
            format!("provider `{id}`: {what}"),
        )
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    for (name, value) in fixed {
        headers.insert(*name, http::HeaderValue::from_static(value));
    }
    if let Some((name, secret)) = auth {
        let mut value = http::HeaderValue::from_str(&secret).map_err(|_| {
            config_error("api_key contains characters not allowed in a header".to_owned())
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    for (name, value) in extra {
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| config_error(format!("`{name}` is not a valid header name")))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| config_error(format!("the value of header `{name}` is not valid")))?;
        headers.insert(header, value);
    }
    Ok(headers)
}

/// A provider entry's base URL and the headers every request to it carries.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    base: String,
    headers: HeaderMap,
}

impl Endpoint {
    /// `base` without its trailing `/`; `headers` from [`base_headers`].
    pub(crate) fn new(base: &str, headers: HeaderMap) -> Self {
        Endpoint {
            base: base.trim().trim_end_matches('/').to_owned(),
            headers,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// A JSON `POST` to `path` (relative to the base).
    pub(crate) fn post(&self, path: &str, body: Bytes) -> UpstreamRequest {
        UpstreamRequest {
            method: http::Method::POST,
            url: self.url(path),
            headers: self.headers.clone(),
            body,
        }
    }

    /// A `GET` of `path` (relative to the base), without the JSON content type.
    pub(crate) fn get(&self, path: &str) -> UpstreamRequest {
        let mut headers = self.headers.clone();
        headers.remove(http::header::CONTENT_TYPE);
        UpstreamRequest {
            method: http::Method::GET,
            url: self.url(path),
            headers,
            body: Bytes::new(),
        }
    }
}

/// An HTTP request an adapter wants sent; building it does no I/O.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// HTTP method.
    pub method: http::Method,
    /// Full URL.
    pub url: String,
    /// Headers, auth included.
    pub headers: HeaderMap,
    /// Body bytes (empty for GET).
    pub body: Bytes,
}

/// A provider adapter: the four translations of one API family, bound to one provider entry's
/// base URL and credentials.
pub trait Provider: Send + Sync + fmt::Debug {
    /// The provider id (the config key), used in errors and on responses.
    fn id(&self) -> &str;

    /// Builds the upstream request for a chat completion of `model` (the name after `provider/`).
    fn encode_chat(
        &self,
        request: &ChatCompletionRequest,
        model: &str,
        stream: bool,
    ) -> Result<UpstreamRequest>;

    /// The upstream request passing a Responses API body (already carrying the upstream model)
    /// through to the provider's own `/responses`, when it has that API; `None` sends the
    /// request through the chat translation instead.
    fn encode_responses(&self, _body: Bytes) -> Option<UpstreamRequest> {
        None
    }

    /// Whether image URLs must be fetched and sent as bytes (the provider cannot fetch them);
    /// the gateway then replaces `http(s)` image URLs by `data:` URLs before encoding.
    fn needs_image_bytes(&self) -> bool {
        false
    }

    /// Whether [`Provider::decode_chat`] reads OpenAI's own answer format and nothing of its
    /// own, so that an answer sent on as JSON may go as the provider wrote it (the gateway
    /// checks that decoding would change nothing in it) instead of being decoded.
    fn answers_in_openai_format(&self) -> bool {
        false
    }

    /// Reads a successful non-streamed answer.
    fn decode_chat(&self, body: &[u8]) -> Result<ChatCompletion>;

    /// A fresh decoder for one streamed answer.
    fn stream_decoder(&self, stream_options: StreamContext) -> Box<dyn StreamDecoder>;

    /// Turns a non-2xx answer into an error with the provider's status and message.
    fn decode_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error;

    /// The request listing the provider's models (also used as a health probe), if it has one.
    fn list_models_request(&self) -> Option<UpstreamRequest>;

    /// Reads the answer of [`Provider::list_models_request`] into model ids.
    fn decode_model_list(&self, body: &[u8]) -> Result<Vec<String>>;

    /// Whether the provider has an embeddings API; the gateway leaves targets without one out
    /// of an embeddings request's fallback list.
    fn supports_embeddings(&self) -> bool {
        false
    }

    /// Builds the upstream request embedding `request.input` with `model` (the name after
    /// `provider/`). By default: a 400 naming `model`, the provider has no embeddings API.
    fn encode_embeddings(
        &self,
        request: &EmbeddingRequest,
        model: &str,
    ) -> Result<UpstreamRequest> {
        let _ = request;
        Err(no_embeddings(self.id(), model))
    }

    /// Reads a successful embeddings answer, in input order. Its `usage` is `None` when the
    /// provider reports no token counts (the gateway then counts them locally).
    fn decode_embeddings(&self, body: &[u8]) -> Result<EmbeddingResponse> {
        let _ = body;
        Err(no_embeddings(self.id(), ""))
    }
}

/// The error of a provider without an embeddings API, naming `model`.
pub(crate) fn no_embeddings(provider: &str, model: &str) -> Error {
    let shown = if model.is_empty() {
        provider.to_owned()
    } else {
        format!("{provider}/{model}")
    };
    Error::invalid_param(
        "model",
        format!(
            "`{shown}` cannot embed: provider `{provider}` has no embeddings API. Use an embeddings model of an OpenAI-compatible or Gemini provider."
        ),
    )
    .with_provider(provider)
}

/// What a stream decoder needs to know about the client's request.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamContext {
    /// The client asked for the final usage chunk.
    pub include_usage: bool,
}

/// One server-sent event as the transport decoded it.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    /// The `event:` name (empty for the default `message`).
    pub event: String,
    /// The joined `data:` lines.
    pub data: String,
}

/// Decodes a streamed body's bytes into server-sent events, as the transport does for every
/// streamed answer; `transport_error` maps a failed read to the error the stream then yields.
///
/// The pieces may cut events, lines and characters anywhere. Any byte stream works, so this
/// also runs over bytes held in memory (tests, benchmarks).
pub fn decode_sse<S, B, E, F>(
    provider: &str,
    body: S,
    transport_error: F,
) -> impl Stream<Item = Result<SseEvent>> + use<S, B, E, F>
where
    S: Stream<Item = std::result::Result<B, E>>,
    B: AsRef<[u8]>,
    E: fmt::Display,
    F: FnMut(E) -> Error,
{
    struct State<S, F> {
        body: Pin<Box<S>>,
        parser: SseParser,
        ready: VecDeque<SseEvent>,
        provider: String,
        transport_error: F,
        ended: bool,
        /// Where the parser stopped, yielded after the events before it.
        unreadable: Option<Error>,
    }
    let state = State {
        body: Box::pin(body),
        parser: SseParser::default(),
        ready: VecDeque::new(),
        provider: provider.to_owned(),
        transport_error,
        ended: false,
        unreadable: None,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.ready.pop_front() {
                return Some((Ok(event), state));
            }
            if state.ended {
                return state.unreadable.take().map(|err| (Err(err), state));
            }
            let read = match state.body.next().await {
                Some(Ok(bytes)) => bytes,
                Some(Err(e)) => {
                    state.ended = true;
                    let err = (state.transport_error)(e);
                    let err = Error::new(
                        err.kind(),
                        format!(
                            "the stream from provider `{}` broke: {}",
                            state.provider,
                            err.message()
                        ),
                    )
                    .with_provider(state.provider.as_str());
                    return Some((Err(err), state));
                }
                // An event the body ends in the middle of is dropped, as the SSE standard says.
                None => return None,
            };
            if let Err(e) = state.parser.feed(read.as_ref(), &mut state.ready) {
                // The events before the bad line go first.
                state.ended = true;
                state.unreadable = Some(
                    Error::new(
                        ErrorKind::Connection,
                        format!(
                            "provider `{}` sent an unreadable event stream: {e}",
                            state.provider
                        ),
                    )
                    .with_provider(state.provider.as_str()),
                );
            }
        }
    })
}

/// The server-sent events parser of the WHATWG HTML standard (section 9.2.6), over bytes as
/// they arrive: lines end in CR, LF or CRLF, `:` lines are comments, a blank line dispatches
/// the event (if it has data). `id` and `retry` are read and ignored: the gateway never
/// reconnects a stream. Written here rather than taken from a crate because the one in use
/// (`eventsource-stream`) copied the rest of its buffer after every line, which made it the
/// largest cost of a streamed chunk after JSON.
/// The longest line an event stream may send: far above any real event (a Gemini event with
/// an inline image is a few MiB), and a bound on what a provider that never ends its line can
/// make the gateway hold.
const MAX_SSE_LINE_BYTES: usize = 64 << 20;

#[derive(Debug, Default)]
struct SseParser {
    /// The start of a line that the last read cut.
    partial: Vec<u8>,
    /// The last read ended in CR: an LF first in the next one ends no line.
    after_cr: bool,
    /// The first line is behind us (a byte order mark is only skipped there).
    started: bool,
    event: String,
    data: String,
    /// The event has had a `data` line (its data may still be empty).
    has_data: bool,
}

impl SseParser {
    /// Parses `read`, appending each event it completes to `out`.
    fn feed(
        &mut self,
        read: &[u8],
        out: &mut VecDeque<SseEvent>,
    ) -> std::result::Result<(), String> {
        let mut rest = read;
        // An empty read says nothing about the byte after the CR.
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', rest) {
            let ended_by_cr = rest[end] == b'\r';
            if self.partial.is_empty() {
                self.line(&rest[..end], out)?;
            } else {
                self.partial.extend_from_slice(&rest[..end]);
                let line = std::mem::take(&mut self.partial);
                self.line(&line, out)?;
                // Keep the buffer's allocation for the next cut line.
                self.partial = line;
                self.partial.clear();
            }
            rest = &rest[end + 1..];
            if ended_by_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
        }
        if self.partial.len() + rest.len() > MAX_SSE_LINE_BYTES {
            return Err(format!(
                "a line is longer than {} MiB",
                MAX_SSE_LINE_BYTES >> 20
            ));
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// Handles one line (without its end).
    fn line(
        &mut self,
        line: &[u8],
        out: &mut VecDeque<SseEvent>,
    ) -> std::result::Result<(), String> {
        let mut line =
            std::str::from_utf8(line).map_err(|e| format!("a line is not UTF-8 ({e})"))?;
        if !self.started {
            self.started = true;
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            if self.has_data {
                out.push_back(SseEvent {
                    event: if self.event == "message" {
                        String::new()
                    } else {
                        std::mem::take(&mut self.event)
                    },
                    // A copy of exactly its size: `data` keeps its capacity for the next
                    // event rather than growing from nothing again.
                    data: self.data.as_str().to_owned(),
                });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Turns a provider's stream events into OpenAI chunks. Fed event by event; no I/O.
pub trait StreamDecoder: Send {
    /// Translates one event into zero or more chunks; an error event becomes `Err`.
    fn on_event(&mut self, event: &SseEvent) -> Result<Vec<ChatCompletionChunk>>;

    /// Whether the provider has said the stream is complete.
    fn is_done(&self) -> bool;

    /// Called when the body ends; an error if the stream stopped before it was complete.
    fn finish(&mut self) -> Result<Vec<ChatCompletionChunk>>;

    /// The text of `event` when it is one chunk in OpenAI's own format (not an error, not the
    /// stream's end), which the gateway may send on as it is instead of decoding it; `None`
    /// (the default) to decode every event with [`StreamDecoder::on_event`].
    fn chunk_text<'e>(&self, _event: &'e SseEvent) -> Option<&'e str> {
        None
    }

    /// Called instead of [`StreamDecoder::on_event`] for an event whose chunk text went on as
    /// it is; `finished`: a choice in it finished.
    fn on_passed(&mut self, _finished: bool) {}
}

#[cfg(test)]
mod tests {
    use futures_util::{FutureExt, StreamExt, stream};

    use super::*;

    /// Drains an in-memory stream (every poll is ready).
    fn drain<T>(s: impl Stream<Item = T>) -> Vec<T> {
        s.collect::<Vec<_>>()
            .now_or_never()
            .expect("an in-memory stream is always ready")
    }

    #[test]
    fn decode_sse_joins_events_cut_anywhere() {
        let body = "event: message_start\r\ndata: {\"a\":1}\r\n\r\ndata: x\ndata: y\n\n: ping\n\ndata: [DONE]\n\n";
        for size in 1..body.len() {
            let reads: Vec<std::result::Result<Bytes, std::convert::Infallible>> = body
                .as_bytes()
                .chunks(size)
                .map(|piece| Ok(Bytes::copy_from_slice(piece)))
                .collect();
            let events = drain(decode_sse("p", stream::iter(reads), |never| match never {}));
            let events: Vec<(String, String)> = events
                .into_iter()
                .map(|e| e.map(|e| (e.event, e.data)).expect("a well-formed stream"))
                .collect();
            let expected = [("message_start", "{\"a\":1}"), ("", "x\ny"), ("", "[DONE]")];
            let expected: Vec<(String, String)> = expected
                .iter()
                .map(|(e, d)| ((*e).to_owned(), (*d).to_owned()))
                .collect();
            assert_eq!(events, expected, "reads of {size} bytes");
        }
    }

    /// The events of `body` read in pieces of `size` bytes (each followed by an empty read,
    /// which a body may yield), as (event, data) pairs.
    fn events_of(body: &[u8], size: usize) -> Vec<Result<(String, String)>> {
        let reads: Vec<std::result::Result<Bytes, std::convert::Infallible>> = body
            .chunks(size)
            .flat_map(|piece| [Bytes::copy_from_slice(piece), Bytes::new()])
            .map(Ok)
            .collect();
        drain(decode_sse("p", stream::iter(reads), |never| match never {}))
            .into_iter()
            .map(|e| e.map(|e| (e.event, e.data)))
            .collect()
    }

    #[test]
    fn decode_sse_follows_the_standard_on_every_cut() {
        // CR, LF and CRLF line ends; a byte order mark; comments; a field without a colon; a
        // value without the space; `id` and `retry` ignored; an empty `data:`; `event:
        // message` as the default; multi-byte characters (cut mid-character by small reads);
        // an event without data dispatching nothing; a last event without its blank line.
        let body = "\u{feff}data: one\r\rdata:two\ndata\n\n: comment\nid: 7\nretry: 10\nevent: message\ndata: ünï ✓\r\n\r\nevent: ping\n\ndata:\n\nevent: done\ndata:  x \n\ndata: a\r\ndata: b\r\n\r\ndata: cut";
        let expected: Vec<(String, String)> = [
            ("", "one"),
            ("", "two\n"),
            ("", "ünï ✓"),
            ("", ""),
            ("done", " x "),
            ("", "a\nb"),
        ]
        .iter()
        .map(|(e, d)| ((*e).to_owned(), (*d).to_owned()))
        .collect();
        for size in 1..=body.len() {
            let events: Vec<(String, String)> = events_of(body.as_bytes(), size)
                .into_iter()
                .map(|e| e.expect("a well-formed stream"))
                .collect();
            assert_eq!(events, expected, "reads of {size} bytes");
        }
    }

    #[test]
    fn decode_sse_refuses_a_line_without_end() {
        let piece = Bytes::from(vec![b'x'; 1 << 20]);
        let reads = std::iter::once(Bytes::from_static(b"data: 1\n\ndata: "))
            .chain(std::iter::repeat_n(piece, 65))
            .map(Ok::<_, std::convert::Infallible>);
        let events = drain(decode_sse("p", stream::iter(reads), |never| match never {}));
        assert_eq!(events.len(), 2);
        assert!(events[0].is_ok());
        let err = events[1].as_ref().expect_err("the line never ends");
        assert_eq!(
            err.message(),
            "provider `p` sent an unreadable event stream: a line is longer than 64 MiB"
        );
    }

    #[test]
    fn decode_sse_refuses_a_line_that_is_not_utf8() {
        let events = events_of(b"data: 1\n\ndata: \xff\xfe\n\ndata: 2\n\n", 64);
        assert_eq!(events.len(), 2, "the stream ends at the bad line");
        assert_eq!(
            events[0].as_ref().ok(),
            Some(&(String::new(), "1".to_owned()))
        );
        let err = events[1].as_ref().expect_err("not UTF-8");
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(
            err.message()
                .starts_with("provider `p` sent an unreadable event stream: a line is not UTF-8"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn decode_sse_reports_a_broken_read_as_the_stream_breaking() {
        let reads = stream::iter([Ok(Bytes::from_static(b"data: 1\n\n")), Err("reset")]);
        let events = drain(decode_sse("p", reads, |why: &str| {
            Error::new(ErrorKind::Timeout, format!("read failed: {why}"))
        }));
        assert_eq!(events.len(), 2);
        let err = events[1].as_ref().expect_err("the read failed");
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(
            err.message(),
            "the stream from provider `p` broke: read failed: reset"
        );
        assert_eq!(err.provider(), Some("p"));
    }
}
