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

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::openai::retry_after;
use super::{Provider, SseEvent, StreamContext, StreamDecoder, UpstreamRequest, base_headers};
use crate::error::{Error, ErrorKind, Result};
use crate::types::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, Choice, ChunkChoice,
    CompletionTokensDetails, ContentPart, Delta, FinishReason, FunctionCall, FunctionCallDelta,
    FunctionDefinition, FunctionKind, FunctionName, JsonObject, MessageContent, NamedToolChoice,
    PromptTokensDetails, ResponseFormat, ResponseMessage, ThinkingBlock, Tool, ToolCall,
    ToolCallDelta, ToolChoice, ToolChoiceMode, Usage,
};

/// The public endpoint; also the base of Files API URIs built from a bare `files/...` name.
const DEFAULT_API_BASE: &str = "https://generativelanguage.googleapis.com/v1beta";

/// A Gemini (Google AI Studio) provider entry: id, base URL, key and extra headers.
#[derive(Debug, Clone)]
pub struct GeminiProvider {
    id: String,
    api_base: String,
    headers: HeaderMap,
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
        let base = api_base.trim().trim_end_matches('/');
        Ok(GeminiProvider {
            id: id.to_owned(),
            api_base: if base.is_empty() {
                DEFAULT_API_BASE.to_owned()
            } else {
                base.to_owned()
            },
            headers,
        })
    }

    fn request(&self, method: http::Method, path: &str, body: Bytes) -> UpstreamRequest {
        UpstreamRequest {
            method,
            url: format!("{}/{path}", self.api_base),
            headers: self.headers.clone(),
            body,
        }
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
        Ok(self.request(http::Method::POST, &path, body.into()))
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
        Box::new(GeminiStreamDecoder {
            provider: self.id.clone(),
            context,
            id: None,
            created: unix_now(),
            model: String::new(),
            choices: BTreeMap::new(),
            calls_made: 0,
            usage: None,
        })
    }

    fn decode_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        match parse_error_body(body) {
            Some(err) => google_error(&self.id, Some(status), &err, Some(headers)),
            None => Error::upstream(&self.id, status, body).with_retry_after(retry_after(headers)),
        }
    }

    fn list_models_request(&self) -> Option<UpstreamRequest> {
        // One page of up to 1000 models holds every model AI Studio lists today.
        let mut req = self.request(http::Method::GET, "models?pageSize=1000", Bytes::new());
        req.headers.remove(CONTENT_TYPE);
        Some(req)
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

// ---------------------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------------------

/// `GenerateContentRequest`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiRequest {
    contents: Vec<GeminiContent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<GeminiSystemInstruction>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<GeminiTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<GeminiToolConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    safety_settings: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_content: Option<Value>,
    #[serde(skip_serializing_if = "GeminiGenerationConfig::is_empty")]
    generation_config: GeminiGenerationConfig,
}

#[derive(Debug, Serialize)]
struct GeminiSystemInstruction {
    parts: Vec<GeminiPart>,
}

/// `Content`: a role and its parts.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    parts: Vec<GeminiPart>,
}

/// `Part`: exactly one of the data fields, plus the thought flag and signature.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiPart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thought: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thought_signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inline_data: Option<GeminiBlob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_data: Option<GeminiFileData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    function_call: Option<GeminiFunctionCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    function_response: Option<GeminiFunctionResponse>,
}

impl GeminiPart {
    fn text(text: impl Into<String>) -> Self {
        GeminiPart {
            text: Some(text.into()),
            ..Default::default()
        }
    }

    fn is_thought(&self) -> bool {
        self.thought == Some(true)
    }
}

// Response parts are read leniently (`default`): a part the adapter does not translate must
// not make the whole answer unreadable.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiBlob {
    #[serde(default)]
    mime_type: String,
    #[serde(default)]
    data: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiFileData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mime_type: Option<String>,
    #[serde(default)]
    file_uri: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct GeminiFunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct GeminiFunctionResponse {
    #[serde(default)]
    name: String,
    #[serde(default)]
    response: Value,
}

/// `Tool`: function declarations, or a built-in tool.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiTool {
    #[serde(skip_serializing_if = "Option::is_none")]
    function_declarations: Option<Vec<GeminiFunctionDeclaration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    google_search: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiFunctionDeclaration {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters_json_schema: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiToolConfig {
    function_calling_config: GeminiFunctionCallingConfig,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiFunctionCallingConfig {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_function_names: Option<Vec<String>>,
}

/// `GenerationConfig`.
#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiGenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<GeminiThinkingConfig>,
}

impl GeminiGenerationConfig {
    fn is_empty(&self) -> bool {
        *self == GeminiGenerationConfig::default()
    }
}

#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiThinkingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    include_thoughts: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_budget: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_level: Option<&'static str>,
}

/// `GenerateContentResponse`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiResponse {
    #[serde(default, deserialize_with = "null_default")]
    candidates: Vec<GeminiCandidate>,
    #[serde(default)]
    prompt_feedback: Option<GeminiPromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<GeminiUsage>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    response_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiCandidate {
    #[serde(default)]
    content: Option<GeminiContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    finish_message: Option<String>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    logprobs_result: Option<GeminiLogprobsResult>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiPromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiUsage {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    tool_use_prompt_token_count: Option<u64>,
    #[serde(default)]
    total_token_count: Option<u64>,
    #[serde(default, deserialize_with = "null_default")]
    prompt_tokens_details: Vec<GeminiModalityCount>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiModalityCount {
    #[serde(default)]
    modality: String,
    #[serde(default)]
    token_count: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiLogprobsResult {
    #[serde(default, deserialize_with = "null_default")]
    top_candidates: Vec<GeminiTopCandidates>,
    #[serde(default, deserialize_with = "null_default")]
    chosen_candidates: Vec<GeminiLogprobCandidate>,
}

#[derive(Debug, Default, Deserialize)]
struct GeminiTopCandidates {
    #[serde(default, deserialize_with = "null_default")]
    candidates: Vec<GeminiLogprobCandidate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiLogprobCandidate {
    #[serde(default)]
    token: String,
    #[serde(default)]
    log_probability: f64,
}

/// Reads `null` as the type's default (Google omits empty fields, but proxies write `null`).
fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

// ---------------------------------------------------------------------------------------------
// Request encoding
// ---------------------------------------------------------------------------------------------

fn encode_request(request: &ChatCompletionRequest, model: &str) -> Result<GeminiRequest> {
    reject_unsupported(request)?;
    let (system, contents) = encode_messages(&request.messages)?;
    let (tools, tool_config) = encode_tools(request)?;
    let extra = &request.extra;
    let pick = |snake: &str, camel: &str| {
        extra
            .get(snake)
            .or_else(|| extra.get(camel))
            .filter(|v| !v.is_null())
            .cloned()
    };
    Ok(GeminiRequest {
        contents,
        system_instruction: (!system.is_empty())
            .then_some(GeminiSystemInstruction { parts: system }),
        tools,
        tool_config,
        safety_settings: pick("safety_settings", "safetySettings"),
        cached_content: pick("cached_content", "cachedContent"),
        generation_config: encode_generation_config(request, model)?,
    })
}

/// Fails on parameters Gemini has no way to honour and that would change the answer.
fn reject_unsupported(request: &ChatCompletionRequest) -> Result<()> {
    if request.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return Err(Error::invalid_param(
            "logit_bias",
            "`logit_bias` is not supported by Gemini models",
        ));
    }
    if request.top_logprobs.is_some() && request.logprobs != Some(true) {
        return Err(Error::invalid_param(
            "top_logprobs",
            "`top_logprobs` requires `logprobs: true`",
        ));
    }
    let wants_audio = request
        .extra
        .get("modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("audio")));
    if wants_audio {
        return Err(Error::invalid_param(
            "modalities",
            "audio output is not supported by the Gemini chat adapter",
        ));
    }
    if request.extra.get("audio").is_some_and(|a| !a.is_null()) {
        return Err(Error::invalid_param(
            "audio",
            "audio output is not supported by the Gemini chat adapter",
        ));
    }
    let has_tools = request.tools.as_ref().is_some_and(|t| !t.is_empty())
        || request
            .extra
            .get("functions")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
    let choice_none = matches!(
        request.tool_choice,
        Some(ToolChoice::Mode(ToolChoiceMode::None))
    );
    if request.parallel_tool_calls == Some(false) && has_tools && !choice_none {
        return Err(Error::invalid_param(
            "parallel_tool_calls",
            "`parallel_tool_calls: false` cannot be honoured by Gemini, which may call several functions in one turn; omit it or set it to true",
        ));
    }
    Ok(())
}

/// Builds the system instruction parts and the alternating contents.
fn encode_messages(messages: &[ChatMessage]) -> Result<(Vec<GeminiPart>, Vec<GeminiContent>)> {
    let mut system = Vec::new();
    let mut contents: Vec<GeminiContent> = Vec::new();
    // Tool call id -> function name, from the assistant turns seen so far (latest wins).
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        match message {
            ChatMessage::System(m) | ChatMessage::Developer(m) => {
                system.extend(encode_system(&m.content, i)?);
            }
            ChatMessage::User(m) => push_turn(&mut contents, "user", encode_user(&m.content, i)?),
            ChatMessage::Assistant(m) => {
                for call in m.tool_calls.iter().flatten() {
                    call_names.insert(call.id.as_str(), call.function.name.as_str());
                }
                push_turn(&mut contents, "model", encode_assistant(m, i)?);
            }
            ChatMessage::Tool(m) => {
                if let MessageContent::Parts(parts) = &m.content
                    && let Some(j) = parts
                        .iter()
                        .position(|p| !matches!(p, ContentPart::Text(_)))
                {
                    return Err(Error::invalid_param(
                        format!("messages[{i}].content[{j}]"),
                        "tool messages may only contain text parts",
                    ));
                }
                let name = call_names.get(m.tool_call_id.as_str()).ok_or_else(|| {
                    Error::invalid_param(
                        format!("messages[{i}].tool_call_id"),
                        format!(
                            "`messages[{i}].tool_call_id` is `{}`, which no earlier assistant tool call has",
                            m.tool_call_id
                        ),
                    )
                })?;
                let part = function_response(name, &m.content.text());
                push_turn(&mut contents, "user", vec![part]);
            }
            ChatMessage::Function(m) => {
                let part = function_response(&m.name, m.content.as_deref().unwrap_or(""));
                push_turn(&mut contents, "user", vec![part]);
            }
        }
    }
    Ok((system, contents))
}

/// Appends parts to the last content when it has the same role, else starts a new content;
/// a turn without parts is left out (Gemini rejects contents with no parts).
fn push_turn(contents: &mut Vec<GeminiContent>, role: &str, parts: Vec<GeminiPart>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
        _ => contents.push(GeminiContent {
            role: Some(role.to_owned()),
            parts,
        }),
    }
}

fn function_response(name: &str, text: &str) -> GeminiPart {
    // Gemini wants an object; a tool that answered with a JSON object is passed as is.
    let response = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => json!({ "result": text }),
    };
    GeminiPart {
        function_response: Some(GeminiFunctionResponse {
            name: name.to_owned(),
            response,
        }),
        ..Default::default()
    }
}

fn encode_system(content: &MessageContent, i: usize) -> Result<Vec<GeminiPart>> {
    match content {
        MessageContent::Text(s) => Ok(non_empty_text(s).into_iter().collect()),
        MessageContent::Parts(parts) => {
            let mut out = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match part {
                    ContentPart::Text(t) => out.extend(non_empty_text(&t.text)),
                    _ => {
                        return Err(Error::invalid_param(
                            format!("messages[{i}].content[{j}]"),
                            "system and developer messages may only contain text parts",
                        ));
                    }
                }
            }
            Ok(out)
        }
    }
}

fn non_empty_text(s: &str) -> Option<GeminiPart> {
    (!s.is_empty()).then(|| GeminiPart::text(s))
}

fn encode_user(content: &MessageContent, i: usize) -> Result<Vec<GeminiPart>> {
    let parts = match content {
        MessageContent::Text(s) => return Ok(non_empty_text(s).into_iter().collect()),
        MessageContent::Parts(parts) => parts,
    };
    let mut out = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let param = |field: &str| format!("messages[{i}].content[{j}].{field}");
        match part {
            ContentPart::Text(t) => out.extend(non_empty_text(&t.text)),
            ContentPart::Refusal(r) => out.extend(non_empty_text(&r.refusal)),
            ContentPart::ImageUrl(image) => {
                let url = image.image_url.url.as_str();
                out.push(media_part(url, None).ok_or_else(|| {
                    Error::invalid_param(
                        param("image_url.url"),
                        "Gemini needs image bytes: use a base64 `data:` URL, a `gs://` URI or a Gemini Files API URI",
                    )
                })?);
            }
            ContentPart::InputAudio(audio) => {
                let format = audio.input_audio.format.to_ascii_lowercase();
                out.push(GeminiPart {
                    inline_data: Some(GeminiBlob {
                        mime_type: format!("audio/{format}"),
                        data: audio.input_audio.data.clone(),
                    }),
                    ..Default::default()
                });
            }
            ContentPart::File(file) => {
                let file = &file.file;
                let guessed = file.filename.as_deref().and_then(mime_from_name);
                if let Some(data) = file.file_data.as_deref() {
                    let part = if data.starts_with("data:") {
                        media_part(data, guessed)
                    } else {
                        // Bare base64, as some clients send it next to a file name.
                        guessed.map(|mime| GeminiPart {
                            inline_data: Some(GeminiBlob {
                                mime_type: mime.to_owned(),
                                data: data.to_owned(),
                            }),
                            ..Default::default()
                        })
                    };
                    out.push(part.ok_or_else(|| {
                        Error::invalid_param(
                            param("file.file_data"),
                            "`file_data` must be a base64 `data:` URL (or base64 with a `filename` whose extension tells the type)",
                        )
                    })?);
                } else if let Some(id) = file.file_id.as_deref() {
                    let uri = if id.starts_with("files/") {
                        format!("{DEFAULT_API_BASE}/{id}")
                    } else {
                        id.to_owned()
                    };
                    out.push(media_part(&uri, guessed).ok_or_else(|| {
                        Error::invalid_param(
                            param("file.file_id"),
                            format!(
                                "`{id}` is not a Gemini file: use a Files API name (`files/...`) or URI, or send the data in `file_data`"
                            ),
                        )
                    })?);
                } else {
                    return Err(Error::invalid_param(
                        param("file"),
                        "a file part needs `file_data` or `file_id`",
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// A `data:` URL as `inlineData`, or a `gs://`/Files API URI as `fileData`; `None` for anything
/// Gemini cannot read.
fn media_part(url: &str, mime_hint: Option<&str>) -> Option<GeminiPart> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',')?;
        let mut fields = meta.split(';');
        let mime = fields.next().unwrap_or("").trim();
        if !fields.any(|f| f.trim().eq_ignore_ascii_case("base64")) {
            return None;
        }
        let mime = if mime.is_empty() {
            mime_hint.unwrap_or("application/octet-stream")
        } else {
            mime
        };
        return Some(GeminiPart {
            inline_data: Some(GeminiBlob {
                mime_type: mime.to_owned(),
                data: data.to_owned(),
            }),
            ..Default::default()
        });
    }
    let is_gemini_file =
        url.starts_with("https://generativelanguage.googleapis.com/") && url.contains("/files/");
    if url.starts_with("gs://") || is_gemini_file {
        return Some(GeminiPart {
            file_data: Some(GeminiFileData {
                mime_type: mime_hint.or_else(|| mime_from_name(url)).map(str::to_owned),
                file_uri: url.to_owned(),
            }),
            ..Default::default()
        });
    }
    None
}

/// The MIME type Gemini expects for a file name's extension, for the types it reads.
fn mime_from_name(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "wav" => "audio/wav",
        "mp3" => "audio/mp3",
        "flac" => "audio/flac",
        "ogg" => "audio/ogg",
        "aac" => "audio/aac",
        "mp4" => "video/mp4",
        "mov" => "video/mov",
        "webm" => "video/webm",
        "txt" => "text/plain",
        "md" => "text/md",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "xml" => "text/xml",
        "json" => "application/json",
        _ => return None,
    })
}

fn encode_assistant(m: &crate::types::AssistantMessage, i: usize) -> Result<Vec<GeminiPart>> {
    let mut parts = Vec::new();
    // Signatures that belonged to a text part (see the module docs); the first rides on the
    // turn's text, any others on empty text parts of their own.
    let mut text_signatures = Vec::new();
    for block in m.thinking_blocks.iter().flatten() {
        if let ThinkingBlock::Thinking {
            thinking,
            signature: Some(signature),
        } = block
        {
            if thinking.is_empty() {
                text_signatures.push(signature.clone());
            } else {
                parts.push(GeminiPart {
                    text: Some(thinking.clone()),
                    thought: Some(true),
                    thought_signature: Some(signature.clone()),
                    ..Default::default()
                });
            }
        }
    }
    let mut text = match m.content.as_ref().and_then(Option::as_ref) {
        None => String::new(),
        Some(MessageContent::Text(s)) => s.clone(),
        Some(MessageContent::Parts(content)) => {
            let mut text = String::new();
            for (j, part) in content.iter().enumerate() {
                match part {
                    ContentPart::Text(t) => text.push_str(&t.text),
                    ContentPart::Refusal(r) => text.push_str(&r.refusal),
                    _ => {
                        return Err(Error::invalid_param(
                            format!("messages[{i}].content[{j}]"),
                            "assistant messages may only contain text and refusal parts",
                        ));
                    }
                }
            }
            text
        }
    };
    if text.is_empty()
        && let Some(refusal) = &m.refusal
    {
        text = refusal.clone();
    }
    let mut signatures = text_signatures.into_iter();
    let first_signature = signatures.next();
    if !text.is_empty() || first_signature.is_some() {
        parts.push(GeminiPart {
            text: Some(text),
            thought_signature: first_signature,
            ..Default::default()
        });
    }
    parts.extend(signatures.map(|signature| GeminiPart {
        text: Some(String::new()),
        thought_signature: Some(signature),
        ..Default::default()
    }));
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let param = format!("messages[{i}].tool_calls[{j}].function.arguments");
        let signature = call
            .extra
            .get("thought_signature")
            .and_then(Value::as_str)
            .map(str::to_owned);
        parts.push(function_call_part(&call.function, &param, signature)?);
    }
    if let Some(call) = &m.function_call {
        let param = format!("messages[{i}].function_call.arguments");
        parts.push(function_call_part(call, &param, None)?);
    }
    Ok(parts)
}

fn function_call_part(
    call: &FunctionCall,
    param: &str,
    thought_signature: Option<String>,
) -> Result<GeminiPart> {
    let args = if call.arguments.trim().is_empty() {
        Value::Object(JsonObject::new())
    } else {
        match serde_json::from_str::<Value>(&call.arguments) {
            Ok(Value::Object(map)) => Value::Object(map),
            Ok(_) => {
                return Err(Error::invalid_param(
                    param,
                    format!("`{param}` must be a JSON object"),
                ));
            }
            Err(e) => {
                return Err(Error::invalid_param(
                    param,
                    format!("`{param}` is not valid JSON: {e}"),
                ));
            }
        }
    };
    Ok(GeminiPart {
        function_call: Some(GeminiFunctionCall {
            id: None,
            name: call.name.clone(),
            args: Some(args),
        }),
        thought_signature,
        ..Default::default()
    })
}

fn encode_tools(
    request: &ChatCompletionRequest,
) -> Result<(Vec<GeminiTool>, Option<GeminiToolConfig>)> {
    let mut declarations = Vec::new();
    for (i, tool) in request.tools.iter().flatten().enumerate() {
        match tool {
            Tool::Function(f) => declarations.push(GeminiFunctionDeclaration {
                name: f.function.name.clone(),
                description: f.function.description.clone(),
                parameters_json_schema: f.function.parameters.as_ref().map(clean_schema),
            }),
            Tool::Custom(_) => {
                return Err(Error::invalid_param(
                    format!("tools[{i}]"),
                    "custom (free-form) tools are not supported by Gemini; use function tools",
                ));
            }
        }
    }
    // The deprecated `functions` list declares functions too.
    let legacy = request.extra.get("functions").filter(|f| !f.is_null());
    if let Some(functions) = legacy {
        let functions = functions.as_array().ok_or_else(|| {
            Error::invalid_param("functions", "`functions` must be an array of functions")
        })?;
        for (i, function) in functions.iter().enumerate() {
            let function: FunctionDefinition =
                serde_json::from_value(function.clone()).map_err(|e| {
                    Error::invalid_param(
                        format!("functions[{i}]"),
                        format!("`functions[{i}]` is not a function definition: {e}"),
                    )
                })?;
            declarations.push(GeminiFunctionDeclaration {
                name: function.name,
                description: function.description,
                parameters_json_schema: function.parameters.as_ref().map(clean_schema),
            });
        }
    }
    let mut mode = None;
    let mut allowed_names = None;
    let legacy_choice = request.extra.get("function_call").filter(|c| !c.is_null());
    let choice = match (&request.tool_choice, legacy_choice) {
        (Some(choice), _) => Some(choice.clone()),
        // The deprecated `function_call` has the same forms (`none`, `auto`, `{"name"}`).
        (None, Some(legacy)) => Some(legacy_tool_choice(legacy)?),
        (None, None) => None,
    };
    match &choice {
        None => {}
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => mode = Some("NONE"),
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => mode = Some("AUTO"),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => {
            require_tools(&declarations, "tool_choice")?;
            mode = Some("ANY");
        }
        Some(ToolChoice::Function(named)) => {
            let name = &named.function.name;
            if !declarations.iter().any(|d| &d.name == name) {
                return Err(Error::invalid_param(
                    "tool_choice",
                    format!("`tool_choice` names `{name}`, which is not in `tools`"),
                ));
            }
            mode = Some("ANY");
            allowed_names = Some(vec![name.clone()]);
        }
        Some(ToolChoice::Other(obj)) => {
            // `allowed_tools`: declaring only the allowed functions restricts the model the
            // same way, in both `auto` and `required` modes.
            let allowed = (obj.get("type").and_then(Value::as_str) == Some("allowed_tools"))
                .then(|| obj.get("allowed_tools"))
                .flatten()
                .ok_or_else(|| {
                    Error::invalid_param(
                        "tool_choice",
                        "this `tool_choice` is not supported by Gemini; use `none`, `auto`, `required`, a function, or `allowed_tools`",
                    )
                })?;
            let names: Vec<&str> = allowed
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                .collect();
            declarations.retain(|d| names.contains(&d.name.as_str()));
            require_tools(&declarations, "tool_choice.allowed_tools.tools")?;
            mode = Some(match allowed.get("mode").and_then(Value::as_str) {
                Some("required") => "ANY",
                _ => "AUTO",
            });
        }
    }
    let mut tools = Vec::new();
    let has_declarations = !declarations.is_empty();
    if has_declarations {
        tools.push(GeminiTool {
            function_declarations: Some(declarations),
            ..Default::default()
        });
    }
    if request
        .extra
        .get("web_search_options")
        .is_some_and(|v| !v.is_null())
    {
        tools.push(GeminiTool {
            google_search: Some(json!({})),
            ..Default::default()
        });
    }
    let tool_config = mode
        .filter(|_| has_declarations)
        .map(|mode| GeminiToolConfig {
            function_calling_config: GeminiFunctionCallingConfig {
                mode,
                allowed_function_names: allowed_names,
            },
        });
    Ok((tools, tool_config))
}

fn legacy_tool_choice(function_call: &Value) -> Result<ToolChoice> {
    let mode = |m| Ok(ToolChoice::Mode(m));
    match function_call {
        Value::String(s) if s == "none" => mode(ToolChoiceMode::None),
        Value::String(s) if s == "auto" => mode(ToolChoiceMode::Auto),
        Value::Object(obj) => match obj.get("name").and_then(Value::as_str) {
            Some(name) => Ok(ToolChoice::Function(NamedToolChoice {
                kind: FunctionKind::Function,
                function: FunctionName {
                    name: name.to_owned(),
                },
            })),
            None => Err(Error::invalid_param(
                "function_call",
                "`function_call` needs a `name`",
            )),
        },
        _ => Err(Error::invalid_param(
            "function_call",
            "`function_call` must be `none`, `auto` or {\"name\": ...}",
        )),
    }
}

fn require_tools(declarations: &[GeminiFunctionDeclaration], param: &str) -> Result<()> {
    if declarations.is_empty() {
        Err(Error::invalid_param(
            param,
            "this `tool_choice` requires at least one function in `tools`",
        ))
    } else {
        Ok(())
    }
}

/// A JSON Schema as Gemini's `parametersJsonSchema`/`responseJsonSchema` accept it: the same
/// schema without `$schema`, which Gemini rejects. Property names are left alone.
fn clean_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = JsonObject::new();
            for (key, value) in map {
                let cleaned = match key.as_str() {
                    "$schema" => continue,
                    // Maps from names to schemas: keep the names, clean the schemas.
                    "properties" | "patternProperties" | "$defs" | "definitions"
                    | "dependentSchemas" => match value {
                        Value::Object(named) => Value::Object(
                            named
                                .iter()
                                .map(|(k, v)| (k.clone(), clean_schema(v)))
                                .collect(),
                        ),
                        other => other.clone(),
                    },
                    // Literal values, not schemas.
                    "enum" | "const" | "default" | "examples" | "required" => value.clone(),
                    _ => clean_schema(value),
                };
                out.insert(key.clone(), cleaned);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(clean_schema).collect()),
        other => other.clone(),
    }
}

fn encode_generation_config(
    request: &ChatCompletionRequest,
    model: &str,
) -> Result<GeminiGenerationConfig> {
    let mut config = GeminiGenerationConfig {
        temperature: request.temperature,
        top_p: request.top_p,
        candidate_count: request.n,
        max_output_tokens: request.max_completion_tokens.or(request.max_tokens),
        presence_penalty: request.presence_penalty,
        frequency_penalty: request.frequency_penalty,
        ..Default::default()
    };
    if let Some(top_k) = request.extra.get("top_k").filter(|v| !v.is_null()) {
        let top_k = top_k
            .as_u64()
            .and_then(|k| u32::try_from(k).ok())
            .filter(|k| *k > 0)
            .ok_or_else(|| Error::invalid_param("top_k", "`top_k` must be a positive integer"))?;
        config.top_k = Some(top_k);
    }
    if let Some(stop) = &request.stop {
        let stop = stop.to_vec();
        if !stop.is_empty() {
            config.stop_sequences = Some(stop);
        }
    }
    if let Some(seed) = request.seed {
        config.seed = Some(i32::try_from(seed).map_err(|_| {
            Error::invalid_param(
                "seed",
                "`seed` must fit in 32 bits for Gemini (-2147483648 to 2147483647)",
            )
        })?);
    }
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => config.response_mime_type = Some("application/json"),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            config.response_mime_type = Some("application/json");
            config.response_json_schema = json_schema.schema.as_ref().map(clean_schema);
        }
    }
    if request.logprobs == Some(true) {
        config.response_logprobs = Some(true);
        config.logprobs = request.top_logprobs;
    }
    config.thinking_config = thinking_config(request, model)?;
    Ok(config)
}

/// Whether the model takes `thinkingLevel` (Gemini 3 and later) rather than `thinkingBudget`.
fn uses_thinking_level(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model);
    let Some(version) = name.strip_prefix("gemini-") else {
        return false;
    };
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    major.parse::<u32>().is_ok_and(|m| m >= 3)
}

fn thinking_config(
    request: &ChatCompletionRequest,
    model: &str,
) -> Result<Option<GeminiThinkingConfig>> {
    if let Some(effort) = request.reasoning_effort.as_deref() {
        let (level, budget) = match effort {
            "none" => ("minimal", 0),
            "minimal" => ("minimal", 512),
            "low" => ("low", 1024),
            "medium" => ("medium", 8192),
            "high" | "xhigh" => ("high", 24576),
            other => {
                return Err(Error::invalid_param(
                    "reasoning_effort",
                    format!(
                        "`reasoning_effort` `{other}` is not one of none, minimal, low, medium, high"
                    ),
                ));
            }
        };
        let thinking = effort != "none";
        let mut config = GeminiThinkingConfig {
            include_thoughts: thinking.then_some(true),
            ..Default::default()
        };
        if uses_thinking_level(model) {
            config.thinking_level = Some(level);
        } else {
            config.thinking_budget = Some(budget);
        }
        return Ok(Some(config));
    }
    let Some(thinking) = request.extra.get("thinking").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let bad = || {
        Error::invalid_param(
            "thinking",
            "`thinking` must be {\"type\": \"enabled\", \"budget_tokens\": N} or {\"type\": \"disabled\"}",
        )
    };
    match thinking.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            let budget = thinking
                .get("budget_tokens")
                .and_then(Value::as_i64)
                .ok_or_else(bad)?;
            Ok(Some(GeminiThinkingConfig {
                include_thoughts: Some(true),
                thinking_budget: Some(budget),
                thinking_level: None,
            }))
        }
        Some("disabled") => Ok(Some(GeminiThinkingConfig {
            thinking_budget: Some(0),
            ..Default::default()
        })),
        _ => Err(bad()),
    }
}

// ---------------------------------------------------------------------------------------------
// Response decoding
// ---------------------------------------------------------------------------------------------

/// What one candidate's parts say, in OpenAI terms.
#[derive(Debug, Default)]
struct PartsSummary {
    text: String,
    reasoning: String,
    thinking_blocks: Vec<ThinkingBlock>,
    calls: Vec<DecodedCall>,
}

#[derive(Debug)]
struct DecodedCall {
    id: Option<String>,
    name: String,
    arguments: String,
    thought_signature: Option<String>,
}

impl PartsSummary {
    fn from_parts(parts: &[GeminiPart]) -> Self {
        let mut out = PartsSummary::default();
        for part in parts {
            if let Some(call) = &part.function_call {
                let arguments = match &call.args {
                    None | Some(Value::Null) => "{}".to_owned(),
                    Some(args) => args.to_string(),
                };
                out.calls.push(DecodedCall {
                    id: call.id.clone().filter(|id| !id.is_empty()),
                    name: call.name.clone(),
                    arguments,
                    thought_signature: part.thought_signature.clone(),
                });
                continue;
            }
            let text = part.text.as_deref().unwrap_or("");
            if part.is_thought() {
                out.reasoning.push_str(text);
            } else {
                out.text.push_str(text);
            }
            if let Some(signature) = &part.thought_signature {
                out.thinking_blocks.push(ThinkingBlock::Thinking {
                    thinking: if part.is_thought() {
                        text.to_owned()
                    } else {
                        String::new()
                    },
                    signature: Some(signature.clone()),
                });
            }
        }
        out
    }

    fn has_output(&self) -> bool {
        !self.text.is_empty() || !self.reasoning.is_empty() || !self.calls.is_empty()
    }
}

/// The OpenAI finish reason for a Gemini one.
fn map_finish_reason(reason: &str, called_functions: bool) -> FinishReason {
    match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        _ if called_functions => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// Finish reasons where the model tried and failed to call a function.
fn is_failed_call(reason: &str) -> bool {
    matches!(
        reason,
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" | "TOO_MANY_TOOL_CALLS"
    )
}

fn failed_call_error(provider: &str, reason: &str, message: Option<&str>) -> Error {
    let detail = message.map(|m| format!(": {m}")).unwrap_or_default();
    Error::new(
        ErrorKind::Connection,
        format!("provider `{provider}` ended the answer with {reason} and no output{detail}"),
    )
    .with_provider(provider)
    .with_code(reason.to_ascii_lowercase())
}

fn call_id(call: &DecodedCall, token: &str, ordinal: usize) -> String {
    call.id
        .clone()
        .unwrap_or_else(|| format!("call_{token}_{ordinal}"))
}

fn decode_response(
    provider: &str,
    response: GeminiResponse,
    id: &str,
    created: u64,
) -> Result<ChatCompletion> {
    let mut choices = Vec::new();
    let mut ordinal = 0;
    for (position, candidate) in response.candidates.iter().enumerate() {
        let index = candidate
            .index
            .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
        let parts = candidate
            .content
            .as_ref()
            .map(|c| PartsSummary::from_parts(&c.parts))
            .unwrap_or_default();
        let reason = candidate.finish_reason.as_deref();
        if let Some(reason) = reason
            && is_failed_call(reason)
            && !parts.has_output()
        {
            return Err(failed_call_error(
                provider,
                reason,
                candidate.finish_message.as_deref(),
            ));
        }
        let tool_calls: Vec<ToolCall> = parts
            .calls
            .iter()
            .map(|call| {
                let id = call_id(call, id, ordinal);
                ordinal += 1;
                let mut extra = JsonObject::new();
                if let Some(signature) = &call.thought_signature {
                    extra.insert("thought_signature".to_owned(), json!(signature));
                }
                ToolCall {
                    id,
                    kind: FunctionKind::Function,
                    function: FunctionCall {
                        name: call.name.clone(),
                        arguments: call.arguments.clone(),
                    },
                    extra,
                }
            })
            .collect();
        let finish_reason = reason.map(|r| map_finish_reason(r, !tool_calls.is_empty()));
        choices.push(Choice {
            index,
            message: ResponseMessage {
                content: (!parts.text.is_empty()).then_some(parts.text),
                reasoning_content: (!parts.reasoning.is_empty()).then_some(parts.reasoning),
                thinking_blocks: (!parts.thinking_blocks.is_empty())
                    .then_some(parts.thinking_blocks),
                tool_calls: (!tool_calls.is_empty()).then_some(Some(tool_calls)),
                ..Default::default()
            },
            finish_reason,
            logprobs: candidate.logprobs_result.as_ref().map(map_logprobs),
            extra: JsonObject::new(),
        });
    }
    if choices.is_empty() {
        let blocked = response
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref())
            .is_some();
        if !blocked {
            return Err(bad_response(
                provider,
                "an answer without candidates".to_owned(),
            ));
        }
        choices.push(Choice {
            index: 0,
            message: ResponseMessage::default(),
            finish_reason: Some(FinishReason::ContentFilter),
            logprobs: None,
            extra: JsonObject::new(),
        });
    }
    Ok(ChatCompletion {
        id: id.to_owned(),
        object: "chat.completion".to_owned(),
        created,
        model: response.model_version.unwrap_or_default(),
        choices,
        usage: response.usage_metadata.as_ref().map(map_usage),
        ..Default::default()
    })
}

/// Gemini's usage in OpenAI's meaning (see the module docs).
fn map_usage(u: &GeminiUsage) -> Usage {
    let prompt = u.prompt_token_count.unwrap_or(0) + u.tool_use_prompt_token_count.unwrap_or(0);
    let completion = u.candidates_token_count.unwrap_or(0) + u.thoughts_token_count.unwrap_or(0);
    let audio = u
        .prompt_tokens_details
        .iter()
        .filter(|d| d.modality == "AUDIO")
        .map(|d| d.token_count)
        .reduce(|a, b| a + b);
    let prompt_details =
        (u.cached_content_token_count.is_some() || audio.is_some()).then(|| PromptTokensDetails {
            cached_tokens: u.cached_content_token_count,
            audio_tokens: audio,
            ..Default::default()
        });
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: u.total_token_count.unwrap_or(prompt + completion),
        prompt_tokens_details: prompt_details,
        completion_tokens_details: u.thoughts_token_count.map(|t| CompletionTokensDetails {
            reasoning_tokens: Some(t),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `logprobsResult` as OpenAI's `logprobs: {content: [...], refusal: null}`.
fn map_logprobs(result: &GeminiLogprobsResult) -> Value {
    let entry = |c: &GeminiLogprobCandidate| {
        json!({
            "token": c.token,
            "logprob": c.log_probability,
            "bytes": c.token.as_bytes(),
        })
    };
    let content: Vec<Value> = result
        .chosen_candidates
        .iter()
        .enumerate()
        .map(|(k, chosen)| {
            let mut item = entry(chosen);
            let top: Vec<Value> = result
                .top_candidates
                .get(k)
                .map(|t| t.candidates.iter().map(entry).collect())
                .unwrap_or_default();
            item["top_logprobs"] = Value::Array(top);
            item
        })
        .collect();
    json!({ "content": content, "refusal": null })
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// Per-choice state of a stream.
#[derive(Debug, Default)]
struct ChoiceState {
    started: bool,
    calls: u32,
    finished: bool,
}

/// Decodes `streamGenerateContent?alt=sse` events (see the module docs).
struct GeminiStreamDecoder {
    provider: String,
    context: StreamContext,
    id: Option<String>,
    created: u64,
    model: String,
    choices: BTreeMap<u32, ChoiceState>,
    calls_made: usize,
    usage: Option<GeminiUsage>,
}

impl GeminiStreamDecoder {
    fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone().unwrap_or_default(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices,
            // With `include_usage`, OpenAI writes `usage: null` on every chunk but the last.
            usage: self.context.include_usage.then_some(None),
            ..Default::default()
        }
    }

    fn on_response(&mut self, response: GeminiResponse) -> Result<Vec<ChatCompletionChunk>> {
        if self.id.is_none() {
            self.id = Some(response.response_id.clone().unwrap_or_else(generated_id));
        }
        if let Some(model) = &response.model_version
            && self.model.is_empty()
        {
            self.model = model.clone();
        }
        if let Some(usage) = &response.usage_metadata {
            // Gemini repeats the running totals on every event; the last ones are the answer's.
            self.usage = Some(usage.clone());
        }
        let token = self.id.clone().unwrap_or_default();
        let mut out = Vec::new();
        if response.candidates.is_empty()
            && response
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
        {
            let state = self.choices.entry(0).or_default();
            if !state.finished {
                state.finished = true;
                let delta = Delta {
                    role: (!state.started).then(|| "assistant".to_owned()),
                    ..Default::default()
                };
                state.started = true;
                out.push(self.chunk(vec![ChunkChoice {
                    index: 0,
                    delta,
                    finish_reason: Some(FinishReason::ContentFilter),
                    ..Default::default()
                }]));
            }
            return Ok(out);
        }
        for (position, candidate) in response.candidates.iter().enumerate() {
            let index = candidate
                .index
                .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
            let parts = candidate
                .content
                .as_ref()
                .map(|c| PartsSummary::from_parts(&c.parts))
                .unwrap_or_default();
            let state = self.choices.entry(index).or_default();
            let mut tool_deltas = Vec::new();
            for call in &parts.calls {
                let mut extra = JsonObject::new();
                if let Some(signature) = &call.thought_signature {
                    extra.insert("thought_signature".to_owned(), json!(signature));
                }
                tool_deltas.push(ToolCallDelta {
                    index: state.calls,
                    id: Some(call_id(call, &token, self.calls_made)),
                    kind: Some("function".to_owned()),
                    function: Some(FunctionCallDelta {
                        name: Some(call.name.clone()),
                        arguments: Some(call.arguments.clone()),
                    }),
                    extra,
                });
                state.calls += 1;
                self.calls_made += 1;
            }
            let has_delta = !parts.text.is_empty()
                || !parts.reasoning.is_empty()
                || !parts.thinking_blocks.is_empty()
                || !tool_deltas.is_empty();
            let mut choices = Vec::new();
            if has_delta {
                let delta = Delta {
                    role: (!state.started).then(|| "assistant".to_owned()),
                    content: (!parts.text.is_empty()).then_some(Some(parts.text)),
                    reasoning_content: (!parts.reasoning.is_empty()).then_some(parts.reasoning),
                    thinking_blocks: (!parts.thinking_blocks.is_empty())
                        .then_some(parts.thinking_blocks),
                    tool_calls: (!tool_deltas.is_empty()).then_some(Some(tool_deltas)),
                    ..Default::default()
                };
                state.started = true;
                choices.push(ChunkChoice {
                    index,
                    delta,
                    finish_reason: None,
                    logprobs: candidate
                        .logprobs_result
                        .as_ref()
                        .map(|l| Some(map_logprobs(l))),
                    ..Default::default()
                });
            }
            if let Some(reason) = candidate.finish_reason.as_deref()
                && !state.finished
            {
                if is_failed_call(reason) && !state.started {
                    return Err(failed_call_error(
                        &self.provider,
                        reason,
                        candidate.finish_message.as_deref(),
                    ));
                }
                state.finished = true;
                choices.push(ChunkChoice {
                    index,
                    delta: Delta {
                        role: (!state.started).then(|| "assistant".to_owned()),
                        ..Default::default()
                    },
                    finish_reason: Some(map_finish_reason(reason, state.calls > 0)),
                    ..Default::default()
                });
                state.started = true;
            }
            for choice in choices {
                out.push(self.chunk(vec![choice]));
            }
        }
        Ok(out)
    }
}

impl StreamDecoder for GeminiStreamDecoder {
    fn on_event(&mut self, event: &SseEvent) -> Result<Vec<ChatCompletionChunk>> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let value: Value = serde_json::from_str(data).map_err(|e| {
            bad_response(
                &self.provider,
                format!(
                    "a stream event that is not JSON ({e}): {}",
                    snippet(data.as_bytes())
                ),
            )
        })?;
        // Without `alt=sse` Gemini streams one JSON array; accept its elements the same way.
        let responses = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        let mut out = Vec::new();
        for value in responses {
            if let Some(err) = error_object(&value) {
                let err = google_error(&self.provider, None, err, None);
                let message = format!(
                    "provider `{}` reported an error mid-stream: {}",
                    self.provider,
                    err.message()
                );
                return Err(rewrap(err, message));
            }
            let response: GeminiResponse = from_value(&self.provider, value)?;
            out.extend(self.on_response(response)?);
        }
        Ok(out)
    }

    fn is_done(&self) -> bool {
        // Gemini has no end marker: the body's end is the end, and `finish` must still run to
        // send the usage chunk.
        false
    }

    fn finish(&mut self) -> Result<Vec<ChatCompletionChunk>> {
        if self.choices.is_empty() || self.choices.values().any(|c| !c.finished) {
            return Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "the stream from provider `{}` ended before the answer was complete",
                    self.provider
                ),
            )
            .with_provider(&self.provider));
        }
        if !self.context.include_usage {
            return Ok(Vec::new());
        }
        let Some(usage) = self.usage.as_ref().map(map_usage) else {
            return Ok(Vec::new());
        };
        let mut chunk = self.chunk(Vec::new());
        chunk.usage = Some(Some(usage));
        Ok(vec![chunk])
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The `error` object of a Google error body: `{"error": {...}}`, or the same inside the JSON
/// array `streamGenerateContent` sends without `alt=sse`.
fn error_object(value: &Value) -> Option<&Value> {
    match value {
        Value::Object(map) => map.get("error").filter(|e| e.is_object()),
        Value::Array(items) => items.iter().find_map(error_object),
        _ => None,
    }
}

/// The error object of an error body, whether bare JSON or (defensively) SSE-framed.
fn parse_error_body(body: &[u8]) -> Option<Value> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return error_object(&value).cloned();
    }
    let text = String::from_utf8_lossy(body);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find_map(|v| error_object(&v).cloned())
}

/// The HTTP status Google pairs with a canonical `status` string.
fn status_for(google_status: &str) -> Option<u16> {
    Some(match google_status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "ALREADY_EXISTS" | "ABORTED" => 409,
        "RESOURCE_EXHAUSTED" => 429,
        "CANCELLED" => 499,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => 500,
        "NOT_IMPLEMENTED" | "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => return None,
    })
}

/// An error from Google's `{"code", "message", "status", "details"}` object. The status is the
/// HTTP one when there is one (in-stream errors have none), except that an invalid API key,
/// which Google answers with 400, is a 401 so callers see an authentication error.
fn google_error(
    provider: &str,
    http_status: Option<u16>,
    error: &Value,
    headers: Option<&HeaderMap>,
) -> Error {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| error.to_string());
    let google_status = error.get("status").and_then(Value::as_str);
    let details = error.get("details").and_then(Value::as_array);
    let reason = details.into_iter().flatten().find_map(|d| {
        d.get("reason")
            .and_then(Value::as_str)
            .filter(|_| type_is(d, "ErrorInfo"))
    });
    let code = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c));
    let mut status = http_status
        .filter(|s| (400..600).contains(s))
        .or(code)
        .or_else(|| google_status.and_then(status_for))
        .unwrap_or(502);
    if reason == Some("API_KEY_INVALID") || google_status == Some("UNAUTHENTICATED") {
        status = 401;
    }
    let body = json!({ "error": { "message": message } });
    let mut err = Error::upstream(provider, status, body.to_string().as_bytes());
    if let Some(google_status) = google_status {
        err = err.with_code(google_status);
    }
    let wait = headers
        .and_then(retry_after)
        .or_else(|| retry_delay(details.map(Vec::as_slice).unwrap_or(&[])));
    err.with_retry_after(wait)
}

fn type_is(detail: &Value, name: &str) -> bool {
    detail
        .get("@type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.rsplit('.').next() == Some(name))
}

/// `RetryInfo.retryDelay` (`"37s"`, `"0.5s"`) from the error details.
fn retry_delay(details: &[Value]) -> Option<Duration> {
    details
        .iter()
        .filter(|d| type_is(d, "RetryInfo"))
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .and_then(|s| s.trim().strip_suffix('s'))
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The same error with another message (the kind, status and code are kept).
fn rewrap(err: Error, message: String) -> Error {
    let body = json!({ "error": { "message": message } });
    let mut out = Error::upstream(
        err.provider().unwrap_or_default(),
        err.status(),
        body.to_string().as_bytes(),
    );
    if let Some(Value::String(code)) = err.code() {
        out = out.with_code(code.clone());
    }
    out.with_retry_after(err.retry_after())
}

fn bad_response(provider: &str, what: String) -> Error {
    Error::new(
        ErrorKind::Connection,
        format!("provider `{provider}` sent {what}"),
    )
    .with_provider(provider)
}

fn from_value<T: serde::de::DeserializeOwned>(provider: &str, value: Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        bad_response(
            provider,
            format!(
                "a response that is not a valid Gemini answer (at `{}`): {}",
                e.path(),
                e.inner()
            ),
        )
    })
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

fn generated_id() -> String {
    let suffix: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(24)
        .collect();
    format!("chatcmpl-{suffix}")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn provider() -> GeminiProvider {
        GeminiProvider::new(
            "gemini",
            "http://127.0.0.1:1/v1beta/",
            Some("AIza-test"),
            &[("x-extra".to_owned(), "1".to_owned())],
        )
        .unwrap()
    }

    fn request(body: Value) -> ChatCompletionRequest {
        serde_json::from_value(body).unwrap()
    }

    fn hello() -> Value {
        json!({"model": "gemini/gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]})
    }

    #[test]
    fn urls_and_headers() {
        let p = provider();
        let req = request(hello());
        let up = p.encode_chat(&req, "gemini-2.5-flash", false).unwrap();
        assert_eq!(
            up.url,
            "http://127.0.0.1:1/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(up.headers["x-goog-api-key"], "AIza-test");
        assert!(up.headers["x-goog-api-key"].is_sensitive());
        assert_eq!(up.headers["x-extra"], "1");
        assert!(!up.url.contains("key="));
        let up = p.encode_chat(&req, "tunedModels/mine", true).unwrap();
        assert_eq!(
            up.url,
            "http://127.0.0.1:1/v1beta/tunedModels/mine:streamGenerateContent?alt=sse"
        );
        let list = p.list_models_request().unwrap();
        assert_eq!(list.method, http::Method::GET);
        assert!(list.url.starts_with("http://127.0.0.1:1/v1beta/models"));
        assert!(list.headers.get(CONTENT_TYPE).is_none());
        let ids = p
            .decode_model_list(
                br#"{"models":[{"name":"models/gemini-2.5-flash","displayName":"x"},{"name":"models/text-embedding-004"}],"nextPageToken":"t"}"#,
            )
            .unwrap();
        assert_eq!(ids, ["gemini-2.5-flash", "text-embedding-004"]);
        let default = GeminiProvider::new("g", "", None, &[]).unwrap();
        assert_eq!(default.api_base, DEFAULT_API_BASE);
        assert!(GeminiProvider::new("g", "", Some("bad\nkey"), &[]).is_err());
        assert!(p.needs_image_bytes());
    }

    #[test]
    fn unsupported_parameters_are_refused_by_name() {
        let p = provider();
        let tool = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
        let cases = [
            (json!({"logit_bias": {"50256": -100}}), "logit_bias"),
            (json!({"top_logprobs": 3}), "top_logprobs"),
            (json!({"modalities": ["text", "audio"]}), "modalities"),
            (
                json!({"audio": {"voice": "alloy", "format": "wav"}}),
                "audio",
            ),
            (
                json!({"tools": tool, "parallel_tool_calls": false}),
                "parallel_tool_calls",
            ),
            (json!({"reasoning_effort": "extreme"}), "reasoning_effort"),
            (json!({"seed": 1_i64 << 40}), "seed"),
            (json!({"top_k": -1}), "top_k"),
            (json!({"tool_choice": "required"}), "tool_choice"),
            (
                json!({"tools": tool, "tool_choice": {"type": "function", "function": {"name": "g"}}}),
                "tool_choice",
            ),
            (
                json!({"tools": [{"type": "custom", "custom": {"name": "c"}}]}),
                "tools[0]",
            ),
        ];
        for (patch, param) in cases {
            let mut body = hello();
            for (k, v) in patch.as_object().unwrap() {
                body[k] = v.clone();
            }
            let err = p
                .encode_chat(&request(body), "gemini-2.5-flash", false)
                .unwrap_err();
            assert_eq!((err.status(), err.param()), (400, Some(param)), "{patch}");
        }
        // `parallel_tool_calls: false` without tools changes nothing and is accepted.
        let mut body = hello();
        body["parallel_tool_calls"] = json!(false);
        assert!(
            p.encode_chat(&request(body), "gemini-2.5-flash", false)
                .is_ok()
        );
    }

    #[test]
    fn message_errors_name_the_field() {
        let p = provider();
        let body = json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
            ]}
        ]});
        let err = p.encode_chat(&request(body), "m", false).unwrap_err();
        assert_eq!(
            err.param(),
            Some("messages[1].tool_calls[1].function.arguments")
        );
        let body = json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "nope", "content": "x"}
        ]});
        let err = p.encode_chat(&request(body), "m", false).unwrap_err();
        assert_eq!(err.param(), Some("messages[1].tool_call_id"));
        let body = json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}
        ]});
        let err = p.encode_chat(&request(body), "m", false).unwrap_err();
        assert_eq!(err.param(), Some("messages[0].content[0].image_url.url"));
        let body = json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}
        ]});
        let err = p.encode_chat(&request(body), "m", false).unwrap_err();
        assert_eq!(err.param(), Some("messages[0].content[0].file.file_id"));
    }

    #[test]
    fn thinking_levels_by_model_generation() {
        assert!(uses_thinking_level("gemini-3-pro-preview"));
        assert!(uses_thinking_level("models/gemini-3.1-flash"));
        assert!(uses_thinking_level("gemini-10-ultra"));
        assert!(!uses_thinking_level("gemini-2.5-flash"));
        assert!(!uses_thinking_level("gemini-flash-latest"));
        assert!(!uses_thinking_level("gemma-3-27b-it"));
    }

    #[test]
    fn schemas_lose_only_dollar_schema() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {"$schema": {"type": "string"}, "x": {"$schema": "y", "type": "integer"}},
            "required": ["$schema"]
        });
        assert_eq!(
            clean_schema(&schema),
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {"$schema": {"type": "string"}, "x": {"type": "integer"}},
                "required": ["$schema"]
            })
        );
    }

    #[test]
    fn errors_map_google_statuses() {
        let p = provider();
        let h = HeaderMap::new();
        let body = br#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        let err = p.decode_error(429, &h, body);
        assert_eq!(err.status(), 429);
        assert_eq!(err.kind(), ErrorKind::RateLimit);
        assert_eq!(err.code(), Some(&json!("RESOURCE_EXHAUSTED")));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(37)));
        assert_eq!(err.message(), "Resource has been exhausted");
        // The array form `streamGenerateContent` uses without `alt=sse`.
        let body = br#"[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]"#;
        let err = p.decode_error(503, &h, body);
        assert_eq!(
            (err.status(), err.kind()),
            (503, ErrorKind::ServiceUnavailable)
        );
        assert_eq!(err.code(), Some(&json!("UNAVAILABLE")));
        // Not JSON at all.
        let err = p.decode_error(502, &h, b"<html>bad gateway</html>");
        assert_eq!(err.status(), 502);
        assert!(err.message().contains("bad gateway"));
        for (status, google, expected) in [
            (403, "PERMISSION_DENIED", ErrorKind::PermissionDenied),
            (500, "INTERNAL", ErrorKind::InternalServer),
            (504, "DEADLINE_EXCEEDED", ErrorKind::Timeout),
        ] {
            let body = json!({"error": {"code": status, "message": "m", "status": google}});
            let err = p.decode_error(status, &h, body.to_string().as_bytes());
            assert_eq!((err.status(), err.kind()), (status, expected));
        }
    }

    #[test]
    fn stream_error_events_fail_with_the_status() {
        let p = provider();
        let mut d = p.stream_decoder(StreamContext::default());
        let ev = SseEvent {
            event: String::new(),
            data: r#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#
                .to_owned(),
        };
        let err = d.on_event(&ev).unwrap_err();
        assert_eq!(err.status(), 503);
        assert!(err.message().contains("mid-stream: overloaded"));
        assert_eq!(err.code(), Some(&json!("UNAVAILABLE")));
        let ev = SseEvent {
            event: String::new(),
            data: "{not json".to_owned(),
        };
        assert_eq!(d.on_event(&ev).unwrap_err().status(), 502);
        assert!(d.finish().is_err(), "nothing finished: truncated");
    }

    #[test]
    fn malformed_function_call_without_output_is_a_retryable_error() {
        let p = provider();
        let body = br#"{"candidates":[{"content":{},"finishReason":"MALFORMED_FUNCTION_CALL","finishMessage":"Malformed function call: print(x"}],"responseId":"r"}"#;
        let err = p.decode_chat(body).unwrap_err();
        assert_eq!(err.status(), 502);
        assert!(err.is_retryable());
        assert!(err.message().contains("Malformed function call"));
        let body = br#"{"candidates":[{"content":{"parts":[{"text":"partial"}]},"finishReason":"MALFORMED_FUNCTION_CALL"}],"responseId":"r"}"#;
        let ok = p.decode_chat(body).unwrap();
        assert_eq!(ok.choices[0].finish_reason, Some(FinishReason::Stop));
        let err = p
            .decode_chat(br#"{"error":{"code":500,"message":"boom","status":"INTERNAL"}}"#)
            .unwrap_err();
        assert_eq!(err.status(), 500);
        assert!(p.decode_chat(b"{}").is_err(), "no candidates, no block");
    }
}
