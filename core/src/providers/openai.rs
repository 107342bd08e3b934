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
        let mut upstream = request.clone();
        upstream.model = model.to_owned();
        upstream.models = None;
        upstream.session_id = None;
        upstream.timeout_ms = None;
        upstream.ttft_timeout_ms = None;
        upstream.stream = if stream {
            Some(true)
        } else {
            request.stream.filter(|s| *s)
        };
        if stream && self.supports_stream_options() {
            // Always ask for usage so the request can be costed; the decoder drops the usage
            // chunk again when the client did not ask for it.
            let options = upstream
                .stream_options
                .get_or_insert_with(StreamOptions::default);
            options.include_usage = Some(true);
        }
        if self.kind == ProviderType::Openai {
            strip_other_dialects(&mut upstream);
        }
        let body = serde_json::to_vec(&upstream).map_err(|e| {
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
fn strip_other_dialects(request: &mut ChatCompletionRequest) {
    request.extra.remove("thinking");
    request.extra.remove("top_k");
    for tool in request.tools.iter_mut().flatten() {
        if let crate::types::Tool::Function(f) = tool {
            f.extra.remove("cache_control");
        }
    }
    for message in &mut request.messages {
        let content = match message {
            ChatMessage::System(m) | ChatMessage::Developer(m) => Some(&mut m.content),
            ChatMessage::User(m) => Some(&mut m.content),
            ChatMessage::Tool(m) => {
                m.extra.remove("is_error");
                Some(&mut m.content)
            }
            ChatMessage::Assistant(m) => m.content.as_mut().and_then(Option::as_mut),
            ChatMessage::Function(_) => None,
        };
        if let Some(MessageContent::Parts(parts)) = content {
            for part in parts {
                if let ContentPart::Text(text) = part {
                    text.extra.remove("cache_control");
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
