//! OpenAI Chat Completions and every OpenAI-compatible API (Groq, Mistral, DeepSeek, xAI,
//! Together, Fireworks, OpenRouter, Cerebras, Perplexity, Ollama, vLLM): the same wire format
//! at another base URL, so translation is near pass-through.
//!
//! API reference: <https://platform.openai.com/docs/api-reference/chat>

use http::header::HeaderMap;
use serde::Deserialize;

use super::{
    Endpoint, Provider, ProviderType, SseEvent, StreamContext, StreamDecoder, UpstreamRequest,
    base_headers,
};
use crate::error::{Error, ErrorKind, Result, error_object_from_value};
use crate::types::json::from_slice_tracked;
use crate::types::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, ContentPart,
    EmbeddingRequest, EmbeddingResponse, MessageContent, StreamOptions,
};

/// An OpenAI-compatible provider entry: id, base URL, key and extra headers.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    id: String,
    kind: ProviderType,
    endpoint: Endpoint,
}

impl OpenAiProvider {
    /// Builds the adapter; `api_key` of `None` or `""` sends no `Authorization` header.
    pub fn new(
        id: &str,
        kind: ProviderType,
        api_base: &str,
        api_key: Option<&str>,
        extra_headers: &[(String, String)],
    ) -> Result<Self> {
        let auth = api_key
            .filter(|k| !k.is_empty())
            .map(|k| ("authorization", format!("Bearer {k}")));
        let headers = base_headers(id, auth, &[], extra_headers)?;
        Ok(OpenAiProvider {
            id: id.to_owned(),
            kind,
            endpoint: Endpoint::new(api_base, headers),
        })
    }

    /// Whether the upstream accepts `stream_options` (all current OpenAI-compatible APIs do,
    /// except Perplexity, which rejects unknown parameters).
    fn supports_stream_options(&self) -> bool {
        !matches!(self.kind, ProviderType::Perplexity)
    }
}

impl OpenAiProvider {
    /// `stream_options` as sent upstream: usage is always asked of a stream, so the request
    /// can be costed (the decoder drops the usage chunk again when the client did not ask).
    fn upstream_stream_options(
        &self,
        request: &ChatCompletionRequest,
        stream: bool,
    ) -> Option<StreamOptions> {
        let mut options = request.stream_options.clone();
        if stream && self.supports_stream_options() {
            options
                .get_or_insert_with(StreamOptions::default)
                .include_usage = Some(true);
        }
        options
    }

    /// The request as sent upstream, as a copy: only for a request that carries another
    /// dialect's fields deep inside (Anthropic's `cache_control`, `is_error`), to be removed.
    fn upstream_copy(
        &self,
        request: &ChatCompletionRequest,
        model: &str,
        stream: bool,
    ) -> ChatCompletionRequest {
        let mut upstream = request.clone();
        upstream.model = model.to_owned();
        upstream.models = None;
        upstream.session_id = None;
        upstream.timeout_ms = None;
        upstream.ttft_timeout_ms = None;
        upstream.stream = upstream_stream(request, stream);
        upstream.stream_options = self.upstream_stream_options(request, stream);
        if self.kind == ProviderType::Openai {
            strip_other_dialects(&mut upstream);
        }
        upstream
    }
}

/// `stream` as sent upstream: `true` for a stream, absent rather than `false` otherwise.
fn upstream_stream(request: &ChatCompletionRequest, stream: bool) -> Option<bool> {
    if stream {
        Some(true)
    } else {
        request.stream.filter(|s| *s)
    }
}

/// The request as sent upstream, written from the client's request without copying it (a
/// copy of every message per attempt cost as much as encoding them): the target's model in
/// place of the client's, opengateway's own fields left out, `stream` and `stream_options` as
/// the call needs them, and for OpenAI itself the other dialects' top-level fields dropped.
/// It writes what [`OpenAiProvider::upstream_copy`] would, byte for byte (tested).
struct UpstreamChat<'a> {
    request: &'a ChatCompletionRequest,
    model: &'a str,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    /// Leave out `thinking` and `top_k` (Anthropic's), which OpenAI rejects.
    strip: bool,
}

impl serde::Serialize for UpstreamChat<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;

        /// A float written as `ChatCompletionRequest` writes it (`1`, not `1.0`).
        struct Float(f64);
        impl serde::Serialize for Float {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                crate::types::serde_helpers::ser_f64(&Some(self.0), s)
            }
        }

        // Every field named, so a field added to the request does not compile until it is
        // written here too; the order is the struct's, as its derived `Serialize` writes it.
        let ChatCompletionRequest {
            model: _,
            messages,
            temperature,
            top_p,
            n,
            stream: _,
            stream_options: _,
            stop,
            max_tokens,
            max_completion_tokens,
            presence_penalty,
            frequency_penalty,
            logit_bias,
            logprobs,
            top_logprobs,
            seed,
            tools,
            tool_choice,
            parallel_tool_calls,
            response_format,
            reasoning_effort,
            user,
            metadata,
            models: _,
            session_id: _,
            timeout_ms: _,
            ttft_timeout_ms: _,
            extra,
        } = self.request;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        map.serialize_entry("messages", messages)?;
        macro_rules! present {
            ($key:literal, $value:expr) => {
                if let Some(value) = $value {
                    map.serialize_entry($key, &value)?;
                }
            };
        }
        present!("temperature", temperature.map(Float));
        present!("top_p", top_p.map(Float));
        present!("n", n);
        present!("stream", &self.stream);
        present!("stream_options", &self.stream_options);
        present!("stop", stop);
        present!("max_tokens", max_tokens);
        present!("max_completion_tokens", max_completion_tokens);
        present!("presence_penalty", presence_penalty.map(Float));
        present!("frequency_penalty", frequency_penalty.map(Float));
        present!("logit_bias", logit_bias);
        present!("logprobs", logprobs);
        present!("top_logprobs", top_logprobs);
        present!("seed", seed);
        present!("tools", tools);
        present!("tool_choice", tool_choice);
        present!("parallel_tool_calls", parallel_tool_calls);
        present!("response_format", response_format);
        present!("reasoning_effort", reasoning_effort);
        present!("user", user);
        present!("metadata", metadata);
        for (key, value) in extra {
            if !(self.strip && OTHER_DIALECT_FIELDS.contains(&key.as_str())) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

impl Provider for OpenAiProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn encode_chat(
        &self,
        request: &ChatCompletionRequest,
        model: &str,
        stream: bool,
    ) -> Result<UpstreamRequest> {
        let strip = self.kind == ProviderType::Openai;
        let body = if strip && dialect_fields_inside(request) {
            serde_json::to_vec(&self.upstream_copy(request, model, stream))
        } else {
            serde_json::to_vec(&UpstreamChat {
                request,
                model,
                stream: upstream_stream(request, stream),
                stream_options: self.upstream_stream_options(request, stream),
                strip,
            })
        }
        .map_err(|e| {
            Error::new(
                ErrorKind::BadRequest,
                format!("cannot encode the request: {e}"),
            )
        })?;
        Ok(self.endpoint.post("/chat/completions", body.into()))
    }

    fn encode_responses(&self, body: bytes::Bytes) -> Option<UpstreamRequest> {
        // Only OpenAI's own API has `/responses`; compatible servers mostly do not.
        (self.kind == ProviderType::Openai).then(|| self.endpoint.post("/responses", body))
    }

    fn answers_in_openai_format(&self) -> bool {
        true
    }

    fn decode_chat(&self, body: &[u8]) -> Result<ChatCompletion> {
        decode_json(&self.id, body)
    }

    fn stream_decoder(&self, context: StreamContext) -> Box<dyn StreamDecoder> {
        Box::new(OpenAiStreamDecoder {
            provider: self.id.clone(),
            context,
            done: false,
            finished_choices: false,
        })
    }

    fn decode_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        Error::upstream(&self.id, status, body).with_retry_after(retry_after(headers))
    }

    fn list_models_request(&self) -> Option<UpstreamRequest> {
        Some(self.endpoint.get("/models"))
    }

    fn decode_model_list(&self, body: &[u8]) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct ModelList {
            data: Vec<ModelEntry>,
        }
        #[derive(Deserialize)]
        struct ModelEntry {
            id: String,
        }
        let list: ModelList = decode_json(&self.id, body)?;
        Ok(list.data.into_iter().map(|m| m.id).collect())
    }

    // Every OpenAI-compatible API is assumed to serve `/embeddings`; one that does not answers
    // 404, which moves the request on to its next target.
    fn supports_embeddings(&self) -> bool {
        true
    }

    fn encode_embeddings(
        &self,
        request: &EmbeddingRequest,
        model: &str,
    ) -> Result<UpstreamRequest> {
        let mut upstream = request.clone();
        upstream.model = model.to_owned();
        upstream.models = None;
        upstream.timeout_ms = None;
        // OpenAI's embeddings API takes no `metadata` (its schema allows no extra fields).
        upstream.metadata = None;
        if self.kind == ProviderType::Openai {
            // Gemini's embedding options, which a request with Gemini fallbacks may carry.
            for key in ["task_type", "taskType", "title"] {
                upstream.extra.remove(key);
            }
        }
        let body = serde_json::to_vec(&upstream).map_err(|e| {
            Error::new(
                ErrorKind::BadRequest,
                format!("cannot encode the request: {e}"),
            )
        })?;
        Ok(self.endpoint.post("/embeddings", body.into()))
    }

    fn decode_embeddings(&self, body: &[u8]) -> Result<EmbeddingResponse> {
        from_slice_tracked(body).map_err(|(path, e)| {
            Error::new(
                ErrorKind::Connection,
                format!(
                    "provider `{}` sent a response that is not a valid embeddings list (at `{path}`): {e}",
                    self.id,
                ),
            )
            .with_provider(self.id.as_str())
        })
    }
}

/// Removes the fields of other providers' dialects that a request translated from another
/// shape (Anthropic's `/v1/messages`) carries for the adapters that understand them, and that
/// OpenAI's own API rejects as unrecognized arguments: `thinking`, `top_k`, `cache_control` on
/// parts and tools, `is_error` on tool results. OpenAI-compatible servers keep them: several
/// (vLLM, Together, OpenRouter) accept `top_k` or cache hints.
/// Top-level fields of other dialects (Anthropic's) that OpenAI rejects.
const OTHER_DIALECT_FIELDS: [&str; 2] = ["thinking", "top_k"];

/// Whether another dialect's field sits inside a tool or a message (`cache_control`,
/// `is_error`), where only a copy of the request can drop it.
fn dialect_fields_inside(request: &ChatCompletionRequest) -> bool {
    let in_tools = request.tools.iter().flatten().any(|tool| {
        matches!(tool, crate::types::Tool::Function(f) if f.extra.contains_key("cache_control"))
    });
    in_tools
        || request.messages.iter().any(|message| {
            let content = match message {
                ChatMessage::System(m) | ChatMessage::Developer(m) => Some(&m.content),
                ChatMessage::User(m) => Some(&m.content),
                ChatMessage::Tool(m) => {
                    if m.extra.contains_key("is_error") {
                        return true;
                    }
                    Some(&m.content)
                }
                ChatMessage::Assistant(m) => m.content.as_ref().and_then(Option::as_ref),
                ChatMessage::Function(_) => None,
            };
            matches!(content, Some(MessageContent::Parts(parts)) if parts.iter().any(|part| {
                matches!(part, ContentPart::Text(text) if text.extra.contains_key("cache_control"))
            }))
        })
}

// `shift_remove` keeps the other keys in the client's order (`remove` would swap the last in).
fn strip_other_dialects(request: &mut ChatCompletionRequest) {
    for field in OTHER_DIALECT_FIELDS {
        request.extra.shift_remove(field);
    }
    for tool in request.tools.iter_mut().flatten() {
        if let crate::types::Tool::Function(f) = tool {
            f.extra.shift_remove("cache_control");
        }
    }
    for message in &mut request.messages {
        let content = match message {
            ChatMessage::System(m) | ChatMessage::Developer(m) => Some(&mut m.content),
            ChatMessage::User(m) => Some(&mut m.content),
            ChatMessage::Tool(m) => {
                m.extra.shift_remove("is_error");
                Some(&mut m.content)
            }
            ChatMessage::Assistant(m) => m.content.as_mut().and_then(Option::as_mut),
            ChatMessage::Function(_) => None,
        };
        if let Some(MessageContent::Parts(parts)) = content {
            for part in parts {
                if let ContentPart::Text(text) = part {
                    text.extra.shift_remove("cache_control");
                }
            }
        }
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(provider: &str, body: &[u8]) -> Result<T> {
    from_slice_tracked(body).map_err(|(path, e)| {
        Error::new(
            ErrorKind::Connection,
            format!(
                "provider `{provider}` sent a response that is not a valid chat completion (at `{path}`): {e}",
            ),
        )
        .with_provider(provider)
    })
}

/// `retry-after-ms` (OpenAI) or `retry-after` in seconds.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<std::time::Duration> {
    let read = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = read("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return (ms >= 0.0 && ms.is_finite())
            .then(|| std::time::Duration::from_secs_f64(ms / 1000.0));
    }
    read("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s >= 0.0 && s.is_finite())
        .map(std::time::Duration::from_secs_f64)
}

/// Decodes OpenAI `data:` events: each is a chunk, `[DONE]` ends the stream, and an object
/// with an `error` member is an error reported inside the stream.
struct OpenAiStreamDecoder {
    provider: String,
    context: StreamContext,
    done: bool,
    finished_choices: bool,
}

impl OpenAiStreamDecoder {
    /// Notes a decoded chunk's finish and drops its usage unless the client asked for it.
    fn keep(&mut self, mut chunk: ChatCompletionChunk) -> Vec<ChatCompletionChunk> {
        if chunk.choices.iter().any(|c| c.finish_reason.is_some()) {
            self.finished_choices = true;
        }
        let is_usage_only = chunk.choices.is_empty() && chunk.usage().is_some();
        if !self.context.include_usage {
            if is_usage_only {
                return Vec::new();
            }
            chunk.usage = None;
        }
        vec![chunk]
    }
}

impl StreamDecoder for OpenAiStreamDecoder {
    fn on_event(&mut self, event: &SseEvent) -> Result<Vec<ChatCompletionChunk>> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        // Nearly every event is a plain chunk: decode it straight into its type. Only an event
        // that may carry an error goes through a generic value first, to be inspected.
        if event.event != "error"
            && !data.contains("\"error\"")
            && let Ok(chunk) = serde_json::from_str::<ChatCompletionChunk>(data)
        {
            return Ok(self.keep(chunk));
        }
        let value: serde_json::Value = serde_json::from_str(data).map_err(|e| {
            Error::new(
                ErrorKind::Connection,
                format!(
                    "provider `{}` sent a stream event that is not JSON ({e}): {}",
                    self.provider,
                    truncate(data, 200)
                ),
            )
            .with_provider(&self.provider)
        })?;
        if event.event == "error" || value.get("error").is_some_and(|e| !e.is_null()) {
            let obj = error_object_from_value(&value);
            let (message, code, error_type) = match obj {
                Some(o) => (o.message, o.code, o.kind),
                None => (truncate(data, 500), None, None),
            };
            let status = code
                .as_ref()
                .and_then(|c| c.as_u64())
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..600).contains(c))
                .unwrap_or(502);
            let mut err = Error::new(
                ErrorKind::from_status(status),
                format!(
                    "provider `{}` reported an error mid-stream: {message}",
                    self.provider
                ),
            )
            .with_provider(&self.provider);
            if let Some(serde_json::Value::String(code)) = code {
                err = err.with_code(code);
            }
            if let Some(error_type) = error_type {
                err = err.with_type(error_type);
            }
            return Err(err);
        }
        let chunk: ChatCompletionChunk = serde_json::from_value(value).map_err(|e| {
            Error::new(
                ErrorKind::Connection,
                format!(
                    "provider `{}` sent a stream chunk that is not a chat completion chunk: {e}",
                    self.provider
                ),
            )
            .with_provider(&self.provider)
        })?;
        Ok(self.keep(chunk))
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn chunk_text<'e>(&self, event: &'e SseEvent) -> Option<&'e str> {
        let data = event.data.trim();
        let plain_chunk = event.event != "error"
            && !data.is_empty()
            && data != "[DONE]"
            && !data.contains("\"error\"");
        plain_chunk.then_some(data)
    }

    fn on_passed(&mut self, finished: bool) {
        self.finished_choices |= finished;
    }

    fn finish(&mut self) -> Result<Vec<ChatCompletionChunk>> {
        // Some OpenAI-compatible servers end without `[DONE]`; a stream whose choices all
        // finished is complete, one that stopped before that was cut off.
        if self.done || self.finished_choices {
            Ok(Vec::new())
        } else {
            Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "the stream from provider `{}` ended before the answer was complete",
                    self.provider
                ),
            )
            .with_provider(&self.provider))
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> OpenAiProvider {
        OpenAiProvider::new(
            "openai",
            ProviderType::Openai,
            "http://127.0.0.1:1/v1/",
            Some("sk-test"),
            &[("x-extra".to_owned(), "1".to_owned())],
        )
        .unwrap()
    }

    /// Every chat-completions request recorded in `../shared/fixtures` (none when absent).
    fn recorded_requests() -> Vec<(String, serde_json::Value)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
        let Ok(providers) = std::fs::read_dir(&root) else {
            eprintln!(
                "skipped the recorded requests: {} is absent",
                root.display()
            );
            return Vec::new();
        };
        let mut found = Vec::new();
        for case in providers
            .flatten()
            .flat_map(|p| std::fs::read_dir(p.path()).into_iter().flatten().flatten())
        {
            let Ok(text) = std::fs::read_to_string(case.path().join("request.json")) else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if value.get("messages").is_some() && value.get("model").is_some() {
                found.push((case.path().display().to_string(), value));
            }
        }
        found
    }

    #[test]
    fn the_request_is_written_byte_for_byte_as_its_copy_would_be() {
        let every_field = serde_json::json!({
            "custom_first": {"nested": [1, "two", null]},
            "model": "alias",
            "messages": [
                {"role": "system", "content": "be brief", "name": "ops"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}
            ],
            "temperature": 1, "top_p": 0.25, "n": 2, "stream": false,
            "stream_options": {"include_usage": false, "future_option": 1},
            "stop": ["\n\n", "END"], "max_tokens": 64, "max_completion_tokens": 80,
            "presence_penalty": 0.5, "frequency_penalty": 2, "logit_bias": {"50256": -100},
            "logprobs": true, "top_logprobs": 3, "seed": -7,
            "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": true}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
            "reasoning_effort": "low", "user": "u-1", "metadata": {"k": "v"},
            "fallbacks": ["other/x"], "session_id": "s-1", "timeout_ms": 5000, "ttft_timeout_ms": 900,
            "thinking": {"type": "enabled", "budget_tokens": 1024}, "top_k": 5, "custom_last": "ü\u{1}"
        });
        let mut requests = vec![
            (
                "minimal".to_owned(),
                serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            ),
            (
                "stream true, no options".to_owned(),
                serde_json::json!({"model": "m", "messages": [], "stream": true}),
            ),
            ("every field".to_owned(), every_field),
        ];
        requests.extend(recorded_requests());
        let kinds = [
            ProviderType::Openai,
            ProviderType::Perplexity,
            ProviderType::Vllm,
        ];
        for kind in kinds {
            let p = OpenAiProvider::new("p", kind, "http://127.0.0.1:1/v1", None, &[]).unwrap();
            for (name, value) in &requests {
                let Ok(request) = serde_json::from_value::<ChatCompletionRequest>(value.clone())
                else {
                    continue; // a recording of a request the gateway itself would refuse
                };
                for stream in [false, true] {
                    let written = p
                        .encode_chat(&request, "target-model", stream)
                        .unwrap()
                        .body;
                    let copy =
                        serde_json::to_vec(&p.upstream_copy(&request, "target-model", stream))
                            .unwrap();
                    assert_eq!(
                        String::from_utf8_lossy(&written),
                        String::from_utf8_lossy(&copy),
                        "{name}, {kind:?}, stream {stream}"
                    );
                }
            }
        }
    }

    #[test]
    fn encode_keeps_unknown_fields_and_strips_gateway_fields() {
        let req: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "openai/gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "models": ["other/x"],
            "custom_field": {"a": [1, 2]},
            "temperature": 1
        }))
        .unwrap();
        let up = provider().encode_chat(&req, "gpt-4o", true).unwrap();
        assert_eq!(up.url, "http://127.0.0.1:1/v1/chat/completions");
        assert_eq!(up.headers["authorization"], "Bearer sk-test");
        assert_eq!(up.headers["x-extra"], "1");
        let body: serde_json::Value = serde_json::from_slice(&up.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "hi"}],
                "temperature": 1,
                "stream": true,
                "stream_options": {"include_usage": true},
                "custom_field": {"a": [1, 2]}
            })
        );
    }

    #[test]
    fn official_openai_does_not_get_other_dialects_fields() {
        let req: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "openai/gpt-4o",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]},
                {"role": "tool", "tool_call_id": "c", "content": "x", "is_error": true}
            ],
            "tools": [{"type": "function", "function": {"name": "f"}, "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "top_k": 5,
            "custom_field": 1
        }))
        .unwrap();
        let body = |p: &OpenAiProvider| -> serde_json::Value {
            serde_json::from_slice(&p.encode_chat(&req, "m", false).unwrap().body).unwrap()
        };
        let official = body(&provider());
        assert!(official.get("thinking").is_none() && official.get("top_k").is_none());
        assert!(
            official["messages"][0]["content"][0]
                .get("cache_control")
                .is_none()
        );
        assert!(official["messages"][1].get("is_error").is_none());
        assert!(official["tools"][0].get("cache_control").is_none());
        assert_eq!(
            official["custom_field"], 1,
            "other unknown fields still pass"
        );
        let vllm = OpenAiProvider::new("v", ProviderType::Vllm, "http://127.0.0.1:1/v1", None, &[])
            .unwrap();
        assert_eq!(body(&vllm)["top_k"], 5, "compatible servers keep them");
    }

    #[test]
    fn stream_decoder_handles_done_usage_and_errors() {
        let p = provider();
        let mut d = p.stream_decoder(StreamContext {
            include_usage: false,
        });
        let ev = |data: &str| SseEvent {
            event: String::new(),
            data: data.to_owned(),
        };
        let chunk = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}],"usage":null}"#;
        let out = d.on_event(&ev(chunk)).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].usage, None, "usage: null is dropped when not asked");
        let usage = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;
        assert!(d.on_event(&ev(usage)).unwrap().is_empty());
        assert!(
            d.finish().is_err(),
            "no [DONE] and no finish_reason: truncated"
        );
        d.on_event(&ev("[DONE]")).unwrap();
        assert!(d.is_done());
        assert!(d.finish().is_ok());

        let mut d = p.stream_decoder(StreamContext {
            include_usage: true,
        });
        assert_eq!(d.on_event(&ev(usage)).unwrap().len(), 1);
        let err = d
            .on_event(&ev(r#"{"error":{"message":"overloaded","code":503}}"#))
            .unwrap_err();
        assert_eq!(err.status(), 503);
        assert!(err.message().contains("overloaded"));
        assert!(d.on_event(&ev("{not json")).is_err());
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", http::HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(std::time::Duration::from_secs(2)));
        h.insert("retry-after-ms", http::HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(std::time::Duration::from_millis(150)));
    }
}
