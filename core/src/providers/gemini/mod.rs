//! Google AI Studio (Gemini API, `generativelanguage.googleapis.com/v1beta`):
//! `models/{model}:generateContent` and `models/{model}:streamGenerateContent?alt=sse`.
//!
//! API reference: <https://ai.google.dev/api/generate-content>
//!
//! # Request translation
//!
//! - `system` and `developer` messages, wherever they appear, become `systemInstruction.parts`
//!   (one text part per message part, in order).
//! - `user`/`assistant` become contents with roles `user`/`model`; consecutive turns of the same
//!   role are merged (Gemini wants alternating turns). `tool` (and deprecated `function`)
//!   messages become `functionResponse` parts of a user turn, so the results of one assistant
//!   turn's parallel calls travel together in one content. A result's function name is looked up
//!   from its `tool_call_id` in the earlier assistant turns; its `response` is the content when
//!   that is a JSON object, else `{"result": <text>}`.
//! - Images must be bytes: `data:` URLs become `inlineData` (the gateway already turned `http(s)`
//!   URLs into `data:` URLs because [`Provider::needs_image_bytes`] is true); `gs://` and Files
//!   API URIs become `fileData`. `file` parts with data become `inlineData`, a Files API name or
//!   URI in `file_id` becomes `fileData`; `input_audio` becomes `inlineData` `audio/<format>`.
//! - Tools become `functionDeclarations` whose schema is sent as `parametersJsonSchema` (full JSON
//!   Schema; only `$schema`, which is not among the keywords Gemini accepts, is removed). `tool_choice` `auto`/`none`/
//!   `required`/named map to `AUTO`/`NONE`/`ANY`/`ANY` + `allowedFunctionNames`; an
//!   `allowed_tools` choice declares only the allowed tools. The deprecated `functions` and
//!   `function_call` are translated the same way. `web_search_options` adds the `googleSearch`
//!   tool.
//! - `response_format` `json_schema` becomes `responseMimeType: application/json` plus
//!   `responseJsonSchema`; `json_object` sets the MIME type only.
//! - Sampling: `temperature`, `top_p`, `top_k` (extra field), `n` → `candidateCount`,
//!   `max_completion_tokens` (else `max_tokens`) → `maxOutputTokens`, `stop` → `stopSequences`,
//!   `seed`, `presence_penalty`, `frequency_penalty`, `logprobs`/`top_logprobs` →
//!   `responseLogprobs`/`logprobs`. Extra fields `safety_settings` and `cached_content` (or their
//!   camelCase names) are passed through.
//! - `reasoning_effort` → `thinkingConfig`. Gemini 3 and later take `thinkingLevel`
//!   (`none`→`minimal`, since Gemini 3 cannot switch thinking off; `minimal`, `low`, `medium`,
//!   `high` as is; `xhigh`→`high`). Older models (2.5) take `thinkingBudget`: `none` 0, `minimal`
//!   512 (the lowest budget every 2.5 model accepts), `low` 1024, `medium` 8192, `high`/`xhigh`
//!   24576 (the 2.5 Flash maximum). Without `reasoning_effort`, an Anthropic-style extra
//!   `thinking: {"type": "enabled", "budget_tokens": N}` (or `{"type": "disabled"}`) sets the
//!   budget directly. `includeThoughts` is set whenever thinking is requested, so the thought
//!   summaries come back as `reasoning_content`.
//! - Refused with a 400 naming the parameter, because Gemini cannot honour them and they change
//!   the answer: `logit_bias`, audio output (`modalities: ["audio"]`, `audio`),
//!   `parallel_tool_calls: false` with tools (Gemini may always call several functions at once),
//!   `custom` tools, `top_logprobs` without `logprobs`, non-text parts in `tool` messages, `http(s)`
//!   media URLs that were not inlined, OpenAI file ids. Other unknown fields (`user`, `metadata`,
//!   `store`, ...) do not change the answer and are not sent.
//!
//! # Thought signatures
//!
//! Gemini signs its reasoning with opaque `thoughtSignature`s that must be sent back with the
//! conversation (Gemini 3 refuses a function-calling history without them). Convention:
//! - a signature on a `functionCall` part is kept on that tool call as the extra field
//!   `"thought_signature"`; when the client sends the assistant message back, the encoder puts it
//!   on the `functionCall` part again;
//! - a signature on a text or thought part becomes a `thinking_blocks` entry
//!   `{"type": "thinking", "thinking": <the thought part's text, or "" for a text part>,
//!   "signature": ...}`. Sent back, a block with text becomes a thought part
//!   `{"text", "thought": true, "thoughtSignature"}`, and a block with empty text puts its
//!   signature on the turn's text part (the assistant `content`).
//!
//! Unsigned thought text (`reasoning_content`) and `redacted_thinking` blocks are not sent back:
//! Gemini reads nothing from them. Tool call ids are not sent back either; Gemini pairs calls and
//! results by name and order.
//!
//! # Response translation
//!
//! One choice per candidate. Text parts are joined into `content`, `thought: true` parts into
//! `reasoning_content`, `functionCall` parts become `tool_calls` (the call's own `id` when Gemini
//! gives one, else `call_<response id>_<n>`, deterministic per response). Finish reasons: `STOP`
//! → `stop` (`tool_calls` when the candidate called functions), `MAX_TOKENS` → `length`, the
//! safety family (`SAFETY`, `RECITATION`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`, `IMAGE_*`)
//! → `content_filter`, others → `stop`. `MALFORMED_FUNCTION_CALL` (and `UNEXPECTED_TOOL_CALL`,
//! `TOO_MANY_TOOL_CALLS`) with no usable output is a retryable 502 error naming the reason,
//! since returning an empty `stop` answer would hide that the model failed; with output it is
//! `stop`. A prompt blocked by `promptFeedback.blockReason` gives one `content_filter` choice
//! with `null` content.
//!
//! Usage: `prompt_tokens = promptTokenCount + toolUsePromptTokenCount`, `cached_tokens =
//! cachedContentTokenCount`, `completion_tokens = candidatesTokenCount + thoughtsTokenCount`,
//! `reasoning_tokens = thoughtsTokenCount`, `total_tokens = totalTokenCount` (which equals the
//! sum in every recorded answer). `logprobsResult` becomes OpenAI `logprobs.content`. Grounding
//! metadata (search results), citations and non-text output parts (images, code execution) are
//! not translated.
//!
//! The model name is `modelVersion` when Gemini reports it, else empty (the adapter is not told
//! the requested model when decoding; the gateway's route has it).
//!
//! # Streams
//!
//! Each SSE `data:` event (CRLF framed, no `[DONE]`) is a whole `GenerateContentResponse` with
//! the new text and whole `functionCall`s, and cumulative `usageMetadata`. The decoder emits a
//! delta per candidate per event (the first with `role: assistant`), one tool-call delta with the
//! full arguments per call, and one final chunk with the finish reason. The stream ends at the
//! end of the body: [`StreamDecoder::finish`] then sends the usage chunk (when asked) or fails if
//! a candidate never finished (a cut-off stream). An event holding an `error` object fails the
//! stream like an HTTP error would.
//!
//! # Errors
//!
//! Google's `{"error": {"code", "message", "status", "details"}}` (also inside the JSON array
//! `streamGenerateContent` returns without `alt=sse`, and as the bare JSON body of a failed
//! `alt=sse` call despite its `text/event-stream` type) keeps its message and HTTP status, with
//! the Google `status` (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, ...) as `code`. An invalid API
//! key, which Google answers with 400 and the `API_KEY_INVALID` reason, is a 401
//! `authentication_error`. `RetryInfo.retryDelay` is the retry delay unless a `Retry-After`
//! header says otherwise.

mod embeddings;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;
mod wire;

use http::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::openai::retry_after;
use super::{Endpoint, Provider, StreamContext, StreamDecoder, UpstreamRequest, base_headers};
use crate::error::{Error, ErrorKind, Result};
use crate::types::{ChatCompletion, ChatCompletionRequest, EmbeddingRequest, EmbeddingResponse};
use request::encode_request;
use response::{
    bad_response, decode_response, error_object, from_value, generated_id, google_error,
    parse_error_body, snippet, unix_now,
};
use stream::GeminiStreamDecoder;
use wire::{GeminiResponse, null_default};

/// The public endpoint; also the base of Files API URIs built from a bare `files/...` name.
const DEFAULT_API_BASE: &str = "https://generativelanguage.googleapis.com/v1beta";

/// A Gemini (Google AI Studio) provider entry: id, base URL, key and extra headers.
#[derive(Debug, Clone)]
pub struct GeminiProvider {
    id: String,
    endpoint: Endpoint,
}

impl GeminiProvider {
    /// Builds the adapter; the key travels in `x-goog-api-key` (never in the URL, where it would
    /// end up in logs). An empty `api_base` means the public endpoint.
    pub fn new(
        id: &str,
        api_base: &str,
        api_key: Option<&str>,
        extra_headers: &[(String, String)],
    ) -> Result<Self> {
        let auth = api_key
            .filter(|k| !k.is_empty())
            .map(|k| ("x-goog-api-key", k.to_owned()));
        let headers = base_headers(id, auth, &[], extra_headers)?;
        let base = if api_base.trim().is_empty() {
            DEFAULT_API_BASE
        } else {
            api_base
        };
        Ok(GeminiProvider {
            id: id.to_owned(),
            endpoint: Endpoint::new(base, headers),
        })
    }
}

/// `models/<name>` for a bare model name; a name that already has a collection
/// (`models/...`, `tunedModels/...`) is used as is.
fn model_resource(model: &str) -> String {
    if model.contains('/') {
        model.to_owned()
    } else {
        format!("models/{model}")
    }
}

impl Provider for GeminiProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn encode_chat(
        &self,
        request: &ChatCompletionRequest,
        model: &str,
        stream: bool,
    ) -> Result<UpstreamRequest> {
        let body = encode_request(request, model)?;
        let body = serde_json::to_vec(&body).map_err(|e| {
            Error::new(
                ErrorKind::BadRequest,
                format!("cannot encode the request: {e}"),
            )
        })?;
        let resource = model_resource(model);
        let path = if stream {
            format!("{resource}:streamGenerateContent?alt=sse")
        } else {
            format!("{resource}:generateContent")
        };
        Ok(self.endpoint.post(&path, body.into()))
    }

    fn needs_image_bytes(&self) -> bool {
        true
    }

    fn decode_chat(&self, body: &[u8]) -> Result<ChatCompletion> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            bad_response(
                &self.id,
                format!("a response that is not JSON ({e}): {}", snippet(body)),
            )
        })?;
        if let Some(err) = error_object(&value) {
            return Err(google_error(&self.id, None, err, None));
        }
        let response: GeminiResponse = from_value(&self.id, value)?;
        let id = response.response_id.clone().unwrap_or_else(generated_id);
        decode_response(&self.id, response, &id, unix_now())
    }

    fn stream_decoder(&self, context: StreamContext) -> Box<dyn StreamDecoder> {
        Box::new(GeminiStreamDecoder::new(self.id.clone(), context))
    }

    fn decode_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        match parse_error_body(body) {
            Some(err) => google_error(&self.id, Some(status), &err, Some(headers)),
            None => Error::upstream(&self.id, status, body).with_retry_after(retry_after(headers)),
        }
    }

    fn supports_embeddings(&self) -> bool {
        true
    }

    fn encode_embeddings(
        &self,
        request: &EmbeddingRequest,
        model: &str,
    ) -> Result<UpstreamRequest> {
        let (path, body) = embeddings::encode(request, model)?;
        Ok(self.endpoint.post(&path, body.into()))
    }

    fn decode_embeddings(&self, body: &[u8]) -> Result<EmbeddingResponse> {
        embeddings::decode(&self.id, body)
    }

    fn list_models_request(&self) -> Option<UpstreamRequest> {
        // One page of up to 1000 models holds every model AI Studio lists today.
        Some(self.endpoint.get("models?pageSize=1000"))
    }

    fn decode_model_list(&self, body: &[u8]) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct GeminiModelList {
            #[serde(default, deserialize_with = "null_default")]
            models: Vec<GeminiModelEntry>,
        }
        #[derive(Deserialize)]
        struct GeminiModelEntry {
            name: String,
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| bad_response(&self.id, format!("a model list that is not JSON ({e})")))?;
        let list: GeminiModelList = from_value(&self.id, value)?;
        Ok(list
            .models
            .into_iter()
            .map(|m| {
                m.name
                    .strip_prefix("models/")
                    .map(str::to_owned)
                    .unwrap_or(m.name)
            })
            .collect())
    }
}
