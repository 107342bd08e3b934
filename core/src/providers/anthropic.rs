//! Anthropic Messages (`POST {api_base}/messages`): translation between the OpenAI Chat
//! Completions shape and Anthropic's request, response, named-event stream and error bodies.
//!
//! API reference: <https://docs.claude.com/en/api/messages>, streaming:
//! <https://docs.claude.com/en/docs/build-with-claude/streaming>.
//!
//! Anything Anthropic cannot honour that would change the answer (log probabilities, `n` > 1,
//! penalties, `logit_bias`, `seed`, audio, predicted outputs, free-form JSON mode, custom
//! tools) is refused with a 400 naming the parameter, never dropped silently.

use std::collections::HashMap;

use base64::Engine;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::openai::retry_after;
use super::{Provider, SseEvent, StreamContext, StreamDecoder, UpstreamRequest, base_headers};
use crate::error::{Error, ErrorKind, Result};
use crate::types::{
    AssistantMessage, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage,
    Choice, ChunkChoice, CompletionTokensDetails, ContentPart, Delta, FileRef, FinishReason,
    FunctionCall, FunctionCallDelta, FunctionKind, JsonObject, MessageContent, PromptTokensDetails,
    ResponseFormat, ResponseMessage, ThinkingBlock, Tool, ToolCall, ToolCallDelta, ToolChoice,
    ToolChoiceMode, ToolMessage, Usage,
};

/// The API version every request is pinned to; a config header can override it.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Image types Anthropic accepts in a base64 source.
const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Request fields outside the modelled OpenAI ones that this adapter reads itself.
const CONSUMED_EXTRAS: &[&str] = &[
    "thinking",
    "output_config",
    "service_tier",
    "safety_identifier",
];

/// OpenAI-only fields that never change the answer, only OpenAI's storage, caching or routing
/// (`audio`, `modalities` and `prediction` get here only when empty or text-only): dropped.
/// Every other unknown field is passed through: Anthropic parameters (`top_k`, `container`,
/// `mcp_servers`, `inference_geo`, `context_management`, `cache_control`, ...) then work
/// without a code change, and a field Anthropic does not know is refused by Anthropic with a
/// 400 naming it, so nothing that matters is lost silently.
const DROPPED_EXTRAS: &[&str] = &[
    "store",
    "prompt_cache_key",
    "prompt_cache_retention",
    "audio",
    "modalities",
    "prediction",
];

/// An Anthropic provider entry: id, base URL (`.../v1`), key and extra headers.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    id: String,
    api_base: String,
    headers: HeaderMap,
}

impl AnthropicProvider {
    /// Builds the adapter; `api_key` of `None` or `""` sends no `x-api-key` header. Extra
    /// headers (e.g. `anthropic-beta`) are added last and replace defaults of the same name.
    pub fn new(
        id: &str,
        api_base: &str,
        api_key: Option<&str>,
        extra_headers: &[(String, String)],
    ) -> Result<Self> {
        let auth = api_key
            .filter(|k| !k.is_empty())
            .map(|k| ("x-api-key", k.to_owned()));
        let headers = base_headers(
            id,
            auth,
            &[("anthropic-version", ANTHROPIC_VERSION)],
            extra_headers,
        )?;
        Ok(AnthropicProvider {
            id: id.to_owned(),
            api_base: api_base.trim_end_matches('/').to_owned(),
            headers,
        })
    }

    fn request(&self, method: http::Method, path: &str, body: Bytes) -> UpstreamRequest {
        UpstreamRequest {
            method,
            url: format!("{}{path}", self.api_base),
            headers: self.headers.clone(),
            body,
        }
    }
}

impl Provider for AnthropicProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn encode_chat(
        &self,
        request: &ChatCompletionRequest,
        model: &str,
        stream: bool,
    ) -> Result<UpstreamRequest> {
        let body = encode_request(request, model, stream)?;
        let bytes = serde_json::to_vec(&body).map_err(|e| {
            Error::new(
                ErrorKind::BadRequest,
                format!("cannot encode the request: {e}"),
            )
        })?;
        Ok(self.request(http::Method::POST, "/messages", bytes.into()))
    }

    fn decode_chat(&self, body: &[u8]) -> Result<ChatCompletion> {
        decode_message(&self.id, body, unix_now())
    }

    fn stream_decoder(&self, context: StreamContext) -> Box<dyn StreamDecoder> {
        Box::new(AnthropicStreamDecoder::new(&self.id, context, unix_now()))
    }

    fn decode_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        decode_error_body(&self.id, status, body).with_retry_after(retry_after(headers))
    }

    fn list_models_request(&self) -> Option<UpstreamRequest> {
        // The list is paginated (20 per page by default); 1000 is the largest page allowed.
        let mut req = self.request(http::Method::GET, "/models?limit=1000", Bytes::new());
        req.headers.remove(CONTENT_TYPE);
        Some(req)
    }

    fn decode_model_list(&self, body: &[u8]) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct AnthropicModelList {
            data: Vec<AnthropicModelEntry>,
        }
        #[derive(Deserialize)]
        struct AnthropicModelEntry {
            id: String,
        }
        let list: AnthropicModelList = parse_json(&self.id, body, "model list")?;
        Ok(list.data.into_iter().map(|m| m.id).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAI request -> Anthropic request
// ---------------------------------------------------------------------------------------------

/// Builds the Anthropic request body for `model`.
fn encode_request(request: &ChatCompletionRequest, model: &str, stream: bool) -> Result<Value> {
    reject_unsupported(request)?;
    let conversation = encode_messages(&request.messages)?;
    let thinking = encode_thinking(request)?;

    let mut body = Map::new();
    body.insert("model".into(), Value::from(model));
    let mut max_tokens = request
        .max_completion_tokens
        .or(request.max_tokens)
        .unwrap_or_else(|| default_max_tokens(model));
    if let Some(budget) = thinking.budget
        && max_tokens <= budget
    {
        // Anthropic counts thinking inside `max_tokens` and requires budget < max_tokens; the
        // answer keeps the room the caller asked for on top of the thinking budget.
        max_tokens = budget.saturating_add(max_tokens);
    }
    body.insert("max_tokens".into(), Value::from(max_tokens));
    if let Some(system) = conversation.system_value() {
        body.insert("system".into(), system);
    }
    body.insert("messages".into(), conversation.messages_value());

    if let Some(stop) = &request.stop {
        let sequences = stop.to_vec();
        if !sequences.is_empty() {
            body.insert("stop_sequences".into(), Value::from(sequences));
        }
    }
    if let Some(t) = request.temperature {
        if thinking.enabled && t != 1.0 {
            return Err(Error::invalid_param(
                "temperature",
                format!(
                    "Anthropic does not accept `temperature` {t} with extended thinking (`reasoning_effort` or `thinking`); leave it unset or set it to 1"
                ),
            ));
        }
        if t > 1.0 {
            return Err(Error::invalid_param(
                "temperature",
                format!("`temperature` is {t}, but Anthropic accepts 0 to 1"),
            ));
        }
        body.insert("temperature".into(), number(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), number(p));
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    // `user` (or its successor `safety_identifier`) is the end-user id Anthropic takes in
    // `metadata.user_id`. OpenAI's own `metadata` (tags for stored completions) has no
    // counterpart: Anthropic's `metadata` accepts nothing but `user_id`.
    let user = request.user.as_deref().or_else(|| {
        request
            .extra
            .get("safety_identifier")
            .and_then(Value::as_str)
    });
    if let Some(user) = user {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }

    let tools = encode_tools(request.tools.as_deref().unwrap_or_default())?;
    let has_tools = !tools.is_empty();
    if has_tools {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = encode_tool_choice(request, has_tools, thinking.enabled)? {
        body.insert("tool_choice".into(), choice);
    }
    if let Some(config) = thinking.config {
        body.insert("thinking".into(), config);
    }
    if let Some(config) = encode_output_config(request)? {
        body.insert("output_config".into(), config);
    }
    // OpenAI's tiers ("default", "flex", "priority", "scale") only choose capacity and price;
    // the two Anthropic knows are translated, the others dropped (the answer is the same).
    match request.extra.get("service_tier").and_then(Value::as_str) {
        Some("auto") => {
            body.insert("service_tier".into(), Value::from("auto"));
        }
        Some("standard_only" | "default") => {
            body.insert("service_tier".into(), Value::from("standard_only"));
        }
        _ => {}
    }
    for (key, value) in &request.extra {
        if CONSUMED_EXTRAS.contains(&key.as_str()) || DROPPED_EXTRAS.contains(&key.as_str()) {
            continue;
        }
        // Never let a pass-through field replace one built above.
        body.entry(key.clone()).or_insert_with(|| value.clone());
    }
    Ok(Value::Object(body))
}

/// Refuses the OpenAI parameters Anthropic cannot honour without changing the answer.
fn reject_unsupported(request: &ChatCompletionRequest) -> Result<()> {
    let refuse = |param: &str, why: &str| {
        Err(Error::invalid_param(
            param,
            format!("`{param}` is not supported by Anthropic: {why}"),
        ))
    };
    if request.n.is_some_and(|n| n > 1) {
        return refuse("n", "it returns exactly one choice per request");
    }
    if request.logprobs == Some(true) {
        return refuse("logprobs", "it does not return log probabilities");
    }
    if request.top_logprobs.is_some_and(|n| n > 0) {
        return refuse("top_logprobs", "it does not return log probabilities");
    }
    for (name, value) in [
        ("frequency_penalty", request.frequency_penalty),
        ("presence_penalty", request.presence_penalty),
    ] {
        if value.is_some_and(|v| v != 0.0) {
            return refuse(name, "it has no repetition penalties");
        }
    }
    if request.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return refuse("logit_bias", "it cannot bias token probabilities");
    }
    if request.seed.is_some() {
        return refuse("seed", "it has no seeded sampling");
    }
    let extra = |name: &str| request.extra.get(name).filter(|v| !v.is_null());
    if extra("audio").is_some() {
        return refuse("audio", "it does not produce audio");
    }
    if let Some(modalities) = extra("modalities")
        && modalities
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x.as_str() != Some("text")))
    {
        return refuse("modalities", "it only produces text");
    }
    if extra("prediction").is_some() {
        return refuse("prediction", "it has no predicted outputs");
    }
    if extra("functions").is_some() || extra("function_call").is_some() {
        let name = if extra("functions").is_some() {
            "functions"
        } else {
            "function_call"
        };
        return refuse(
            name,
            "the deprecated function-calling API is not translated; use `tools` and `tool_choice`",
        );
    }
    if extra("web_search_options").is_some() {
        return refuse(
            "web_search_options",
            "OpenAI's search options have no Anthropic equivalent",
        );
    }
    if extra("verbosity").is_some() {
        return refuse("verbosity", "it has no verbosity setting");
    }
    Ok(())
}

/// The thinking configuration of a request.
#[derive(Debug, Default)]
struct ThinkingPlan {
    /// The `thinking` object to send, if any.
    config: Option<Value>,
    /// Whether the model thinks (`enabled` or `adaptive`).
    enabled: bool,
    /// The fixed thinking budget, when there is one.
    budget: Option<u32>,
}

/// `reasoning_effort` → thinking budget in tokens (1024 is Anthropic's minimum budget).
fn effort_budget(effort: &str) -> Option<u32> {
    match effort {
        "minimal" => Some(1024),
        "low" => Some(2048),
        "medium" => Some(8192),
        "high" => Some(24_576),
        "xhigh" => Some(32_768),
        _ => None,
    }
}

/// An explicit `thinking` object (Anthropic's own parameter, passed through) wins over
/// `reasoning_effort`, which becomes `{"type": "enabled", "budget_tokens": N}`.
fn encode_thinking(request: &ChatCompletionRequest) -> Result<ThinkingPlan> {
    if let Some(explicit) = request.extra.get("thinking") {
        let Some(obj) = explicit.as_object() else {
            return Err(Error::invalid_param(
                "thinking",
                "`thinking` must be an object such as {\"type\": \"enabled\", \"budget_tokens\": 2048}",
            ));
        };
        let kind = obj.get("type").and_then(Value::as_str).unwrap_or_default();
        let budget = obj
            .get("budget_tokens")
            .and_then(Value::as_u64)
            .filter(|_| kind == "enabled")
            .map(|b| u32::try_from(b).unwrap_or(u32::MAX));
        return Ok(ThinkingPlan {
            config: Some(explicit.clone()),
            enabled: matches!(kind, "enabled" | "adaptive"),
            budget,
        });
    }
    match request.reasoning_effort.as_deref() {
        None | Some("none") => Ok(ThinkingPlan::default()),
        Some(effort) => match effort_budget(effort) {
            Some(budget) => Ok(ThinkingPlan {
                config: Some(json!({"type": "enabled", "budget_tokens": budget})),
                enabled: true,
                budget: Some(budget),
            }),
            None => Err(Error::invalid_param(
                "reasoning_effort",
                format!(
                    "`reasoning_effort` must be one of none, minimal, low, medium, high or xhigh, not `{effort}`"
                ),
            )),
        },
    }
}

/// The output limit used when the caller sets none (Anthropic requires `max_tokens`): the
/// model's maximum output as documented in the "Max output" rows of
/// <https://docs.claude.com/en/docs/about-claude/models/overview> (current and legacy tables):
/// 64K for Sonnet 4, 4.5 and 4.6, Haiku 4.5, Opus 4.5 and Sonnet 3.7; 32K for Opus 4 and 4.1;
/// 8192 for the 3.5 models; 4096 for Claude 3 and older. Opus 4.6 allows more, but every 4.5+
/// model (and any later one) gets 64K so that no model is sent a value above its limit;
/// names that are not recognisable Claude names get the smallest value.
fn default_max_tokens(model: &str) -> u32 {
    let lower = model.to_ascii_lowercase();
    let tokens: Vec<&str> = lower.split(['-', '.', '@', ':', '/', '_']).collect();
    let Some(start) = tokens.iter().position(|t| *t == "claude") else {
        return 4096;
    };
    let rest = &tokens[start + 1..];
    let family = rest
        .iter()
        .copied()
        .find(|t| matches!(*t, "opus" | "sonnet" | "haiku"));
    // Versions are one- or two-digit tokens; dates (20250514) are longer.
    let mut numbers = rest
        .iter()
        .filter(|t| (1..=2).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|t| t.parse::<u32>().ok());
    let Some(major) = numbers.next() else {
        return 4096;
    };
    let minor = numbers.next().unwrap_or(0);
    match (major, minor, family) {
        (0..=2, _, _) => 4096,
        (3, 7, _) => 64_000,
        (3, 5, _) => 8192,
        (3, _, _) => 4096,
        (4, 0 | 1, Some("opus")) => 32_000,
        _ => 64_000,
    }
}

/// Function tools → `{name, description, input_schema}`.
fn encode_tools(tools: &[Tool]) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        match tool {
            Tool::Function(f) => {
                let def = &f.function;
                let mut block = Map::new();
                block.insert("name".into(), Value::from(def.name.as_str()));
                if let Some(description) = &def.description {
                    block.insert("description".into(), Value::from(description.as_str()));
                }
                let mut schema = def
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object"}));
                // OpenAI accepts `{}` for "no parameters"; Anthropic requires `type: object`.
                if let Value::Object(obj) = &mut schema {
                    obj.entry("type").or_insert_with(|| Value::from("object"));
                }
                block.insert("input_schema".into(), schema);
                // `strict: false` is the default on both sides and is not sent: models without
                // strict tool use would refuse the field.
                if def.strict == Some(true) {
                    block.insert("strict".into(), Value::Bool(true));
                }
                copy_cache_control(&f.extra, &mut block);
                out.push(Value::Object(block));
            }
            Tool::Custom(_) => {
                return Err(Error::invalid_param(
                    format!("tools[{i}]"),
                    "custom (free-form input) tools are not supported by Anthropic; use a function tool",
                ));
            }
        }
    }
    Ok(out)
}

/// `tool_choice` auto/none/required/named → `auto`/`none`/`any`/`{type: tool, name}`;
/// `parallel_tool_calls: false` → `disable_parallel_tool_use: true`.
fn encode_tool_choice(
    request: &ChatCompletionRequest,
    has_tools: bool,
    thinking: bool,
) -> Result<Option<Value>> {
    let no_parallel = request.parallel_tool_calls == Some(false);
    let mut choice = match &request.tool_choice {
        None if has_tools && no_parallel => json!({"type": "auto"}),
        None => return Ok(None),
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => {
            return Ok(has_tools.then(|| json!({"type": "none"})));
        }
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => json!({"type": "auto"}),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => json!({"type": "any"}),
        Some(ToolChoice::Function(named)) => {
            json!({"type": "tool", "name": named.function.name})
        }
        Some(ToolChoice::Other(_)) => {
            return Err(Error::invalid_param(
                "tool_choice",
                "only `none`, `auto`, `required` or a named function can be translated for Anthropic",
            ));
        }
    };
    let forced = choice["type"] != "auto";
    if !has_tools {
        if forced {
            return Err(Error::invalid_param(
                "tool_choice",
                "`tool_choice` requires a tool but `tools` is empty",
            ));
        }
        return Ok(None);
    }
    if forced && thinking {
        return Err(Error::invalid_param(
            "tool_choice",
            "with extended thinking Anthropic only accepts `tool_choice` auto or none",
        ));
    }
    if no_parallel {
        choice["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Ok(Some(choice))
}

/// `response_format` → `output_config.format`, merged into an `output_config` the caller sent
/// (e.g. with `effort`).
fn encode_output_config(request: &ChatCompletionRequest) -> Result<Option<Value>> {
    let mut config = match request.extra.get("output_config") {
        Some(Value::Object(obj)) => obj.clone(),
        Some(_) => {
            return Err(Error::invalid_param(
                "output_config",
                "`output_config` must be an object",
            ));
        }
        None => Map::new(),
    };
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        // Anthropic's structured outputs need every object closed (`additionalProperties:
        // false`), so "any JSON object" cannot be expressed: the closed empty object would force
        // `{}`. Refused rather than sent without the guarantee.
        Some(ResponseFormat::JsonObject) => {
            return Err(Error::invalid_param(
                "response_format",
                "Anthropic cannot constrain the output to an arbitrary JSON object; use `response_format` `json_schema` with a schema, or ask for JSON in the prompt without `response_format`",
            ));
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            let Some(schema) = &json_schema.schema else {
                return Err(Error::invalid_param(
                    "response_format.json_schema.schema",
                    "Anthropic needs the JSON schema itself",
                ));
            };
            let mut schema = schema.clone();
            close_objects(&mut schema);
            config.insert(
                "format".into(),
                json!({"type": "json_schema", "schema": schema}),
            );
        }
    }
    Ok((!config.is_empty()).then_some(Value::Object(config)))
}

/// Adds `additionalProperties: false` to object schemas that list `properties` and say nothing
/// about other keys: Anthropic rejects open objects, and OpenAI's non-strict schemas often
/// leave the key out. An explicit value, and objects without `properties` (free-form maps), are
/// left alone so that Anthropic's own error says what it cannot do.
fn close_objects(schema: &mut Value) {
    let Value::Object(node) = schema else {
        return;
    };
    let is_object = match node.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(types)) => types.iter().any(|t| t.as_str() == Some("object")),
        _ => false,
    };
    if is_object && node.contains_key("properties") && !node.contains_key("additionalProperties") {
        node.insert("additionalProperties".into(), Value::Bool(false));
    }
    for key in ["properties", "$defs", "definitions", "patternProperties"] {
        if let Some(Value::Object(children)) = node.get_mut(key) {
            children.values_mut().for_each(close_objects);
        }
    }
    for key in [
        "items",
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
    ] {
        match node.get_mut(key) {
            Some(Value::Array(list)) => list.iter_mut().for_each(close_objects),
            Some(child) => close_objects(child),
            None => {}
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        if let Some(Value::Array(list)) = node.get_mut(key) {
            list.iter_mut().for_each(close_objects);
        }
    }
}

/// The conversation in Anthropic's shape: a top-level system prompt and alternating turns.
#[derive(Debug, Default)]
struct Conversation {
    /// System text blocks with the index of the message each came from.
    system: Vec<(usize, Value)>,
    /// `(role, content blocks)`, never two of the same role in a row.
    turns: Vec<(&'static str, Vec<Value>)>,
}

impl Conversation {
    /// Appends blocks to the conversation, merging into the previous turn when it has the same
    /// role: Anthropic requires alternation. Blocks Anthropic wants first in a turn
    /// (`tool_result` in user turns, thinking in assistant turns) go after the turn's existing
    /// leading blocks, before its other content.
    fn push(&mut self, role: &'static str, blocks: Vec<Value>) {
        if blocks.is_empty() {
            return;
        }
        match self.turns.last_mut() {
            Some((last_role, existing)) if *last_role == role => {
                for block in blocks {
                    if is_leading_block(role, &block) {
                        let at = existing
                            .iter()
                            .take_while(|b| is_leading_block(role, b))
                            .count();
                        existing.insert(at, block);
                    } else {
                        existing.push(block);
                    }
                }
            }
            _ => self.turns.push((role, blocks)),
        }
    }

    /// The `system` value: a plain string when every block is bare text (messages joined by a
    /// blank line), else the blocks, so `cache_control` markers survive.
    fn system_value(&self) -> Option<Value> {
        if self.system.is_empty() {
            return None;
        }
        let bare = self
            .system
            .iter()
            .all(|(_, block)| block.as_object().is_some_and(|o| o.len() == 2));
        if !bare {
            return Some(Value::Array(
                self.system.iter().map(|(_, b)| b.clone()).collect(),
            ));
        }
        let mut text = String::new();
        let mut previous = None;
        for (message, block) in &self.system {
            if previous.is_some_and(|p| p != *message) {
                text.push_str("\n\n");
            }
            text.push_str(block["text"].as_str().unwrap_or_default());
            previous = Some(*message);
        }
        Some(Value::String(text))
    }

    fn messages_value(&self) -> Value {
        Value::Array(
            self.turns
                .iter()
                .map(|(role, blocks)| json!({"role": role, "content": blocks}))
                .collect(),
        )
    }
}

fn is_leading_block(role: &str, block: &Value) -> bool {
    let kind = block["type"].as_str().unwrap_or_default();
    match role {
        "user" => kind == "tool_result",
        _ => matches!(kind, "thinking" | "redacted_thinking"),
    }
}

/// Splits the OpenAI messages into the system prompt and Anthropic turns.
fn encode_messages(messages: &[ChatMessage]) -> Result<Conversation> {
    let mut conversation = Conversation::default();
    for (i, message) in messages.iter().enumerate() {
        match message {
            // Anthropic has one system prompt, outside the turns: every system or developer
            // message goes there, wherever it stands.
            ChatMessage::System(m) | ChatMessage::Developer(m) => {
                let mut blocks = Vec::new();
                match &m.content {
                    MessageContent::Text(text) => {
                        if !text.is_empty() {
                            blocks.push(text_block(text, None));
                        }
                    }
                    MessageContent::Parts(parts) => {
                        for (j, part) in parts.iter().enumerate() {
                            match part {
                                ContentPart::Text(t) if t.text.is_empty() => {}
                                ContentPart::Text(t) => {
                                    blocks.push(text_block(&t.text, Some(&t.extra)));
                                }
                                _ => {
                                    return Err(Error::invalid_param(
                                        format!("messages[{i}].content[{j}]"),
                                        "system messages can only hold text for Anthropic",
                                    ));
                                }
                            }
                        }
                    }
                }
                apply_message_cache_control(&m.extra, &mut blocks);
                conversation
                    .system
                    .extend(blocks.into_iter().map(|b| (i, b)));
            }
            ChatMessage::User(m) => {
                let mut blocks = user_blocks(&m.content, i)?;
                apply_message_cache_control(&m.extra, &mut blocks);
                conversation.push("user", blocks);
            }
            ChatMessage::Assistant(m) => {
                let mut blocks = assistant_blocks(m, i)?;
                apply_message_cache_control(&m.extra, &mut blocks);
                conversation.push("assistant", blocks);
            }
            // Tool results travel in a user turn; the results of one assistant turn's parallel
            // calls merge into a single user message.
            ChatMessage::Tool(m) => {
                let block = tool_result_block(m, i)?;
                conversation.push("user", vec![block]);
            }
            ChatMessage::Function(_) => {
                return Err(Error::invalid_param(
                    format!("messages[{i}]"),
                    "the deprecated `function` role is not translated for Anthropic; use `tool` messages",
                ));
            }
        }
    }
    Ok(conversation)
}

fn text_block(text: &str, extra: Option<&JsonObject>) -> Value {
    let mut block = Map::new();
    block.insert("type".into(), Value::from("text"));
    block.insert("text".into(), Value::from(text));
    if let Some(extra) = extra {
        copy_cache_control(extra, &mut block);
    }
    Value::Object(block)
}

/// Carries a `cache_control` marker over; the other extra fields of an OpenAI part have no
/// Anthropic meaning, and Anthropic refuses unknown block fields.
fn copy_cache_control(extra: &JsonObject, block: &mut Map<String, Value>) {
    if let Some(cache_control) = extra.get("cache_control").filter(|c| !c.is_null()) {
        block.insert("cache_control".into(), cache_control.clone());
    }
}

/// A `cache_control` on a whole message marks its last block, as Anthropic places markers.
fn apply_message_cache_control(extra: &JsonObject, blocks: &mut [Value]) {
    if let Some(Value::Object(last)) = blocks.last_mut() {
        copy_cache_control(extra, last);
    }
}

fn user_blocks(content: &MessageContent, i: usize) -> Result<Vec<Value>> {
    let parts = match content {
        MessageContent::Text(text) if text.is_empty() => return Ok(Vec::new()),
        MessageContent::Text(text) => return Ok(vec![text_block(text, None)]),
        MessageContent::Parts(parts) => parts,
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = format!("messages[{i}].content[{j}]");
        match part {
            ContentPart::Text(t) if t.text.is_empty() => {}
            ContentPart::Text(t) => blocks.push(text_block(&t.text, Some(&t.extra))),
            // `detail` has no Anthropic counterpart; Anthropic sizes images itself.
            ContentPart::ImageUrl(p) => blocks.push(image_block(
                &p.image_url.url,
                &format!("{param}.image_url.url"),
                &p.extra,
            )?),
            ContentPart::File(p) => blocks.push(document_block(&p.file, &param, &p.extra)?),
            ContentPart::InputAudio(_) => {
                return Err(Error::invalid_param(
                    format!("{param}.input_audio"),
                    "audio input (`input_audio`) is not supported by Anthropic",
                ));
            }
            ContentPart::Refusal(_) => {
                return Err(Error::invalid_param(
                    param,
                    "`refusal` parts belong to assistant messages",
                ));
            }
        }
    }
    Ok(blocks)
}

/// An image part: `http(s)` URLs are fetched by Anthropic itself, `data:` URLs become base64.
fn image_block(url: &str, param: &str, extra: &JsonObject) -> Result<Value> {
    let source = if url.starts_with("https://") || url.starts_with("http://") {
        json!({"type": "url", "url": url})
    } else if let Some((mime, data)) = parse_data_url(url) {
        let mut mime = mime.to_ascii_lowercase();
        if mime == "image/jpg" {
            mime = "image/jpeg".to_owned();
        }
        if !IMAGE_TYPES.contains(&mime.as_str()) {
            return Err(Error::invalid_param(
                param,
                format!("Anthropic accepts JPEG, PNG, GIF and WebP images, not `{mime}`"),
            ));
        }
        json!({"type": "base64", "media_type": mime, "data": data})
    } else {
        return Err(Error::invalid_param(
            param,
            "an image must be an http(s) URL or a base64 `data:` URL",
        ));
    };
    let mut block = Map::new();
    block.insert("type".into(), Value::from("image"));
    block.insert("source".into(), source);
    copy_cache_control(extra, &mut block);
    Ok(Value::Object(block))
}

/// A `file` part with inline data: PDF → base64 document, plain text → text document.
fn document_block(file: &FileRef, param: &str, extra: &JsonObject) -> Result<Value> {
    let data_param = format!("{param}.file.file_data");
    let Some(data) = file.file_data.as_deref() else {
        return Err(Error::invalid_param(
            format!("{param}.file.file_id"),
            "OpenAI file ids cannot be read by Anthropic; send the file inline as `file_data`",
        ));
    };
    let is_pdf_name = file
        .filename
        .as_deref()
        .is_some_and(|f| f.to_ascii_lowercase().ends_with(".pdf"));
    let (mime, payload) = match parse_data_url(data) {
        Some((mime, payload)) => (mime.to_ascii_lowercase(), payload),
        // Some clients send bare base64; a `.pdf` name says what it is.
        None if !data.starts_with("data:") && is_pdf_name => ("application/pdf".to_owned(), data),
        None => {
            return Err(Error::invalid_param(
                data_param,
                "`file_data` must be a base64 `data:` URL (data:application/pdf;base64,...)",
            ));
        }
    };
    let source = match mime.as_str() {
        "application/pdf" => {
            json!({"type": "base64", "media_type": "application/pdf", "data": payload})
        }
        "text/plain" => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(payload.trim())
                .map_err(|e| {
                    Error::invalid_param(data_param.as_str(), format!("invalid base64: {e}"))
                })?;
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::invalid_param(data_param.as_str(), "a text/plain file must be UTF-8")
            })?;
            json!({"type": "text", "media_type": "text/plain", "data": text})
        }
        other => {
            return Err(Error::invalid_param(
                data_param,
                format!("Anthropic reads PDF and plain-text documents, not `{other}`"),
            ));
        }
    };
    let mut block = Map::new();
    block.insert("type".into(), Value::from("document"));
    block.insert("source".into(), source);
    if let Some(name) = file.filename.as_deref().filter(|n| !n.is_empty()) {
        block.insert("title".into(), Value::from(name));
    }
    copy_cache_control(extra, &mut block);
    Ok(Value::Object(block))
}

/// `data:<mime>[;...];base64,<data>` → `(mime, data)`.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let (meta, data) = url.strip_prefix("data:")?.split_once(',')?;
    let mut params = meta.split(';');
    let mime = params.next()?;
    params
        .any(|p| p.eq_ignore_ascii_case("base64"))
        .then_some((mime, data))
}

fn assistant_blocks(message: &AssistantMessage, i: usize) -> Result<Vec<Value>> {
    let mut blocks = Vec::new();
    // Anthropic requires the turn's thinking blocks first and verifies their signatures. A
    // `thinking` block without a signature (e.g. from another provider) would be refused, so
    // it is left out; redacted blocks are opaque and go back as they came.
    for block in message.thinking_blocks.iter().flatten() {
        match block {
            ThinkingBlock::Thinking {
                thinking,
                signature: Some(signature),
            } if !signature.is_empty() => blocks.push(json!({
                "type": "thinking",
                "thinking": thinking,
                "signature": signature,
            })),
            ThinkingBlock::Thinking { .. } => {}
            ThinkingBlock::RedactedThinking { data } => {
                blocks.push(json!({"type": "redacted_thinking", "data": data}));
            }
        }
    }
    // `reasoning_content` without `thinking_blocks` carries no signature: Anthropic cannot
    // verify it as thinking, and sending it as text would put words in the model's mouth. It
    // is dropped; Anthropic ignores earlier turns' thinking anyway.
    let mut has_text = false;
    match &message.content {
        Some(Some(MessageContent::Text(text))) if !text.is_empty() => {
            blocks.push(text_block(text, None));
            has_text = true;
        }
        Some(Some(MessageContent::Parts(parts))) => {
            for (j, part) in parts.iter().enumerate() {
                match part {
                    ContentPart::Text(t) if t.text.is_empty() => {}
                    ContentPart::Text(t) => blocks.push(text_block(&t.text, Some(&t.extra))),
                    ContentPart::Refusal(r) => blocks.push(text_block(&r.refusal, None)),
                    _ => {
                        return Err(Error::invalid_param(
                            format!("messages[{i}].content[{j}]"),
                            "assistant messages can only hold text for Anthropic",
                        ));
                    }
                }
                has_text = true;
            }
        }
        _ => {}
    }
    if !has_text && let Some(refusal) = message.refusal.as_deref().filter(|r| !r.is_empty()) {
        blocks.push(text_block(refusal, None));
    }
    if message.function_call.is_some() {
        return Err(Error::invalid_param(
            format!("messages[{i}].function_call"),
            "the deprecated `function_call` is not translated for Anthropic; use `tool_calls`",
        ));
    }
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let param = format!("messages[{i}].tool_calls[{j}].function.arguments");
        let input = parse_arguments(&call.function.arguments)
            .map_err(|why| Error::invalid_param(param, why))?;
        blocks.push(json!({
            "type": "tool_use",
            "id": call.id,
            "name": call.function.name,
            "input": input,
        }));
    }
    Ok(blocks)
}

/// A tool call's JSON-encoded arguments as the object Anthropic wants (`""` means none).
fn parse_arguments(arguments: &str) -> std::result::Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("tool call arguments must be a JSON object".to_owned()),
        Err(e) => Err(format!("tool call arguments are not valid JSON: {e}")),
    }
}

fn tool_result_block(message: &ToolMessage, i: usize) -> Result<Value> {
    let mut block = Map::new();
    block.insert("type".into(), Value::from("tool_result"));
    block.insert(
        "tool_use_id".into(),
        Value::from(message.tool_call_id.as_str()),
    );
    match &message.content {
        MessageContent::Text(text) if text.is_empty() => {}
        MessageContent::Text(text) => {
            block.insert("content".into(), Value::from(text.as_str()));
        }
        MessageContent::Parts(parts) => {
            let mut content = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let param = format!("messages[{i}].content[{j}]");
                match part {
                    ContentPart::Text(t) if t.text.is_empty() => {}
                    ContentPart::Text(t) => content.push(text_block(&t.text, Some(&t.extra))),
                    ContentPart::ImageUrl(p) => content.push(image_block(
                        &p.image_url.url,
                        &format!("{param}.image_url.url"),
                        &p.extra,
                    )?),
                    _ => {
                        return Err(Error::invalid_param(
                            param,
                            "tool results can only hold text and images for Anthropic",
                        ));
                    }
                }
            }
            if !content.is_empty() {
                block.insert("content".into(), Value::Array(content));
            }
        }
    }
    copy_cache_control(&message.extra, &mut block);
    Ok(Value::Object(block))
}

/// A float written as an integer when it is one (`1`, not `1.0`), as clients send it.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

// ---------------------------------------------------------------------------------------------
// Anthropic response -> OpenAI completion
// ---------------------------------------------------------------------------------------------

/// A Messages API answer (`type: message`).
#[derive(Debug, Deserialize)]
struct AnthropicMessage {
    id: String,
    model: String,
    #[serde(default)]
    content: Vec<AnthropicBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// A content block of an answer (or a `content_block_start` event).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AnthropicBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Server tool calls and results (`server_tool_use`, `web_search_tool_result`, ...).
    #[serde(other)]
    Other,
}

/// Anthropic usage, as the answer or a stream event reports it (stream counts are cumulative).
#[derive(Debug, Clone, Default, Deserialize)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens_details: Option<AnthropicOutputDetails>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct AnthropicOutputDetails {
    #[serde(default)]
    thinking_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Folds in a later report: counts only grow, so the larger value is the current one.
    fn merge(&mut self, later: &AnthropicUsage) {
        let max = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.input_tokens = max(self.input_tokens, later.input_tokens);
        self.output_tokens = max(self.output_tokens, later.output_tokens);
        self.cache_creation_input_tokens = max(
            self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        self.cache_read_input_tokens =
            max(self.cache_read_input_tokens, later.cache_read_input_tokens);
        let thinking = max(self.thinking_tokens(), later.thinking_tokens());
        if thinking.is_some() {
            self.output_tokens_details = Some(AnthropicOutputDetails {
                thinking_tokens: thinking,
            });
        }
    }

    fn thinking_tokens(&self) -> Option<u64> {
        self.output_tokens_details
            .as_ref()
            .and_then(|d| d.thinking_tokens)
    }

    /// OpenAI's meaning: `input_tokens` excludes cache reads and writes, `prompt_tokens`
    /// counts every input token; `output_tokens` already includes thinking.
    fn to_openai(&self) -> Usage {
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        let cache_write = self.cache_creation_input_tokens.unwrap_or(0);
        let prompt = self.input_tokens.unwrap_or(0) + cache_read + cache_write;
        let completion = self.output_tokens.unwrap_or(0);
        let reported_cache =
            self.cache_read_input_tokens.is_some() || self.cache_creation_input_tokens.is_some();
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: reported_cache.then(|| PromptTokensDetails {
                cached_tokens: Some(cache_read),
                cache_write_tokens: Some(cache_write),
                ..Default::default()
            }),
            completion_tokens_details: self.thinking_tokens().map(|t| CompletionTokensDetails {
                reasoning_tokens: Some(t),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Anthropic's `stop_reason` in OpenAI's terms.
fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        // `pause_turn`: a long server-tool turn paused; what came so far is a complete message
        // the caller can send back to let the model continue.
        "end_turn" | "stop_sequence" | "pause_turn" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        // Reasons added later are reported as a normal stop rather than as a value OpenAI
        // clients do not know.
        _ => FinishReason::Stop,
    }
}

fn compact_input(input: &Value) -> String {
    if input.is_null() {
        "{}".to_owned()
    } else {
        input.to_string()
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Reads a non-streamed answer; `created` is the completion's timestamp.
fn decode_message(provider: &str, body: &[u8], created: u64) -> Result<ChatCompletion> {
    let message: AnthropicMessage = parse_json(provider, body, "message")?;
    let mut text: Option<String> = None;
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            // Several text blocks (e.g. one per citation) form one text.
            AnthropicBlock::Text { text: t } => text.get_or_insert_with(String::new).push_str(&t),
            AnthropicBlock::Thinking {
                thinking,
                signature,
            } => {
                reasoning.push_str(&thinking);
                thinking_blocks.push(ThinkingBlock::Thinking {
                    thinking,
                    signature: non_empty(signature),
                });
            }
            AnthropicBlock::RedactedThinking { data } => {
                thinking_blocks.push(ThinkingBlock::RedactedThinking { data });
            }
            AnthropicBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                kind: FunctionKind::Function,
                function: FunctionCall {
                    name,
                    arguments: compact_input(&input),
                },
                extra: JsonObject::new(),
            }),
            // Server tools (web search, code execution, ...) run at Anthropic; their calls and
            // results have no place in a Chat Completions message, and the text blocks that
            // follow carry what the model made of them.
            AnthropicBlock::Other => {}
        }
    }
    let finish = message
        .stop_reason
        .as_deref()
        .map(finish_reason)
        .unwrap_or(FinishReason::Stop);
    Ok(ChatCompletion {
        id: message.id,
        object: "chat.completion".to_owned(),
        created,
        model: message.model,
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                content: text,
                reasoning_content: non_empty(reasoning),
                thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
                tool_calls: (!tool_calls.is_empty()).then_some(Some(tool_calls)),
                ..Default::default()
            },
            finish_reason: Some(finish),
            logprobs: None,
            extra: JsonObject::new(),
        }],
        usage: Some(message.usage.to_openai()),
        ..Default::default()
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(
    provider: &str,
    body: &[u8],
    what: &str,
) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        Error::new(
            ErrorKind::Connection,
            format!(
                "provider `{provider}` sent a response that is not a valid Anthropic {what} (at `{}`): {}",
                e.path(),
                e.inner()
            ),
        )
        .with_provider(provider)
    })
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// `{"type": "error", "error": {"type", "message"}, "request_id"}`.
#[derive(Debug, Deserialize)]
struct AnthropicErrorBody {
    error: AnthropicErrorDetail,
}

#[derive(Debug, Deserialize)]
struct AnthropicErrorDetail {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// OpenAI has no 529; Anthropic's "overloaded" is a 503.
fn openai_status(status: u16) -> u16 {
    if status == 529 { 503 } else { status }
}

fn decode_error_body(provider: &str, status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<AnthropicErrorBody>(body) {
        Ok(parsed) if !parsed.error.kind.is_empty() => {
            anthropic_error(provider, &parsed.error, Some(status))
        }
        _ => Error::upstream(provider, openai_status(status), body),
    }
}

/// An Anthropic error in OpenAI's shape: status and type from Anthropic's error type, its
/// message kept, and the Anthropic type as `code`.
fn anthropic_error(
    provider: &str,
    detail: &AnthropicErrorDetail,
    http_status: Option<u16>,
) -> Error {
    let status = match detail.kind.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        // A billing problem belongs to this account only, so another provider may still serve:
        // as a 403 the router moves on to the next target.
        "billing_error" | "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "overloaded_error" => 503,
        "timeout_error" => 504,
        _ => http_status.map_or(500, openai_status),
    };
    let kind = ErrorKind::from_status(status);
    let message = if detail.message.is_empty() {
        format!("provider `{provider}` reported `{}`", detail.kind)
    } else {
        detail.message.clone()
    };
    let body = json!({"error": {
        "message": message,
        "type": kind.error_type(),
        "param": null,
        "code": detail.kind,
    }});
    Error::upstream(provider, status, body.to_string().as_bytes())
}

// ---------------------------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------------------------

/// One event of a Messages stream, by its `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AnthropicEvent {
    MessageStart {
        message: AnthropicStreamStart,
    },
    ContentBlockStart {
        index: u32,
        content_block: AnthropicBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: AnthropicDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: AnthropicMessageDelta,
        #[serde(default)]
        usage: AnthropicUsage,
    },
    MessageStop,
    Ping,
    Error {
        error: AnthropicErrorDetail,
    },
    /// Event types added later carry nothing this decoder knows how to show.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
struct AnthropicStreamStart {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Debug, Deserialize)]
struct AnthropicMessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AnthropicDelta {
    TextDelta {
        #[serde(default)]
        text: String,
    },
    ThinkingDelta {
        #[serde(default)]
        thinking: String,
    },
    SignatureDelta {
        #[serde(default)]
        signature: String,
    },
    InputJsonDelta {
        #[serde(default)]
        partial_json: String,
    },
    /// `citations_delta` and later additions.
    #[serde(other)]
    Other,
}

/// What the decoder remembers about an open content block.
#[derive(Debug)]
enum BlockState {
    Text,
    /// Thinking text and signature so far, sent whole as a thinking block when it ends.
    Thinking {
        text: String,
        signature: String,
    },
    Redacted {
        data: String,
    },
    /// A tool call: its OpenAI index, its start input, whether argument text was sent.
    ToolUse {
        index: u32,
        input: Value,
        sent_arguments: bool,
    },
    Other,
}

/// Turns Anthropic's named events into OpenAI chunks: `message_start` gives the id, model and
/// input usage; content blocks become content, reasoning and tool-call deltas; `message_delta`
/// gives the finish reason and output usage; `message_stop` ends the stream.
struct AnthropicStreamDecoder {
    provider: String,
    context: StreamContext,
    created: u64,
    id: String,
    model: String,
    /// Open blocks by Anthropic block index.
    blocks: HashMap<u32, BlockState>,
    /// Tool calls seen so far; the next one gets this OpenAI index.
    tool_calls: u32,
    usage: AnthropicUsage,
    finish_sent: bool,
    done: bool,
}

impl AnthropicStreamDecoder {
    fn new(provider: &str, context: StreamContext, created: u64) -> Self {
        AnthropicStreamDecoder {
            provider: provider.to_owned(),
            context,
            created,
            id: String::new(),
            model: String::new(),
            blocks: HashMap::new(),
            tool_calls: 0,
            usage: AnthropicUsage::default(),
            finish_sent: false,
            done: false,
        }
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<FinishReason>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn usage_chunk(&self) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices: Vec::new(),
            usage: Some(Some(self.usage.to_openai())),
            ..Default::default()
        }
    }

    fn malformed(&self, data: &str, e: &serde_json::Error) -> Error {
        Error::new(
            ErrorKind::Connection,
            format!(
                "provider `{}` sent a stream event that is not an Anthropic event ({e}): {}",
                self.provider,
                truncate(data, 200)
            ),
        )
        .with_provider(&self.provider)
    }

    fn on_block_start(&mut self, index: u32, block: AnthropicBlock) -> Option<Delta> {
        let (state, delta) = match block {
            AnthropicBlock::Text { text } => (BlockState::Text, text_delta(text)),
            AnthropicBlock::Thinking {
                thinking,
                signature,
            } => {
                let delta = reasoning_delta(thinking.clone());
                (
                    BlockState::Thinking {
                        text: thinking,
                        signature,
                    },
                    delta,
                )
            }
            AnthropicBlock::RedactedThinking { data } => (BlockState::Redacted { data }, None),
            AnthropicBlock::ToolUse { id, name, input } => {
                let ordinal = self.tool_calls;
                self.tool_calls += 1;
                let delta = Delta {
                    tool_calls: Some(Some(vec![ToolCallDelta {
                        index: ordinal,
                        id: Some(id),
                        kind: Some("function".to_owned()),
                        function: Some(FunctionCallDelta {
                            name: Some(name),
                            arguments: Some(String::new()),
                        }),
                        extra: JsonObject::new(),
                    }])),
                    ..Default::default()
                };
                let state = BlockState::ToolUse {
                    index: ordinal,
                    input,
                    sent_arguments: false,
                };
                (state, Some(delta))
            }
            AnthropicBlock::Other => (BlockState::Other, None),
        };
        self.blocks.insert(index, state);
        delta
    }

    fn on_block_delta(&mut self, index: u32, delta: AnthropicDelta) -> Option<Delta> {
        match delta {
            AnthropicDelta::TextDelta { text } => text_delta(text),
            AnthropicDelta::ThinkingDelta { thinking } => {
                if let Some(BlockState::Thinking { text, .. }) = self.blocks.get_mut(&index) {
                    text.push_str(&thinking);
                }
                reasoning_delta(thinking)
            }
            AnthropicDelta::SignatureDelta { signature } => {
                if let Some(BlockState::Thinking { signature: s, .. }) = self.blocks.get_mut(&index)
                {
                    s.push_str(&signature);
                }
                None
            }
            AnthropicDelta::InputJsonDelta { partial_json } => {
                match self.blocks.get_mut(&index) {
                    // The first fragment is often empty: nothing to send.
                    Some(BlockState::ToolUse {
                        index: ordinal,
                        sent_arguments,
                        ..
                    }) if !partial_json.is_empty() => {
                        *sent_arguments = true;
                        Some(arguments_delta(*ordinal, partial_json))
                    }
                    // Server tools stream their input too; it is not a client tool call.
                    _ => None,
                }
            }
            AnthropicDelta::Other => None,
        }
    }

    fn on_block_stop(&mut self, index: u32) -> Option<Delta> {
        match self.blocks.remove(&index)? {
            BlockState::Thinking { text, signature } => Some(Delta {
                thinking_blocks: Some(vec![ThinkingBlock::Thinking {
                    thinking: text,
                    signature: non_empty(signature),
                }]),
                ..Default::default()
            }),
            BlockState::Redacted { data } => Some(Delta {
                thinking_blocks: Some(vec![ThinkingBlock::RedactedThinking { data }]),
                ..Default::default()
            }),
            // A call without input streams only empty fragments; its arguments must still
            // parse as JSON, so the (empty) start input is sent.
            BlockState::ToolUse {
                index,
                input,
                sent_arguments: false,
            } => Some(arguments_delta(index, compact_input(&input))),
            BlockState::ToolUse { .. } | BlockState::Text | BlockState::Other => None,
        }
    }
}

fn text_delta(text: String) -> Option<Delta> {
    (!text.is_empty()).then(|| Delta {
        content: Some(Some(text)),
        ..Default::default()
    })
}

fn reasoning_delta(thinking: String) -> Option<Delta> {
    (!thinking.is_empty()).then(|| Delta {
        reasoning_content: Some(thinking),
        ..Default::default()
    })
}

fn arguments_delta(index: u32, arguments: String) -> Delta {
    Delta {
        tool_calls: Some(Some(vec![ToolCallDelta {
            index,
            function: Some(FunctionCallDelta {
                name: None,
                arguments: Some(arguments),
            }),
            ..Default::default()
        }])),
        ..Default::default()
    }
}

impl StreamDecoder for AnthropicStreamDecoder {
    fn on_event(&mut self, event: &SseEvent) -> Result<Vec<ChatCompletionChunk>> {
        let data = event.data.trim();
        if data.is_empty() || self.done {
            return Ok(Vec::new());
        }
        // The JSON `type` names the event; the SSE `event:` line repeats it.
        let parsed: AnthropicEvent = match serde_json::from_str(data) {
            Ok(parsed) => parsed,
            // An error event whose body is not Anthropic's error shape is still an error.
            Err(_) if event.event == "error" => {
                return Err(Error::new(
                    ErrorKind::InternalServer,
                    format!(
                        "provider `{}` reported an error mid-stream: {}",
                        self.provider,
                        truncate(data, 500)
                    ),
                )
                .with_provider(&self.provider));
            }
            Err(e) => return Err(self.malformed(data, &e)),
        };
        let mut out = Vec::new();
        match parsed {
            AnthropicEvent::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                self.usage.merge(&message.usage);
                let delta = Delta {
                    role: Some("assistant".to_owned()),
                    content: Some(Some(String::new())),
                    ..Default::default()
                };
                out.push(self.chunk(delta, None));
            }
            AnthropicEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                if let Some(delta) = self.on_block_start(index, content_block) {
                    out.push(self.chunk(delta, None));
                }
            }
            AnthropicEvent::ContentBlockDelta { index, delta } => {
                if let Some(delta) = self.on_block_delta(index, delta) {
                    out.push(self.chunk(delta, None));
                }
            }
            AnthropicEvent::ContentBlockStop { index } => {
                if let Some(delta) = self.on_block_stop(index) {
                    out.push(self.chunk(delta, None));
                }
            }
            AnthropicEvent::MessageDelta { delta, usage } => {
                self.usage.merge(&usage);
                if let Some(reason) = delta.stop_reason.as_deref()
                    && !self.finish_sent
                {
                    self.finish_sent = true;
                    out.push(self.chunk(Delta::default(), Some(finish_reason(reason))));
                }
            }
            AnthropicEvent::MessageStop => {
                if !self.finish_sent {
                    self.finish_sent = true;
                    out.push(self.chunk(Delta::default(), Some(FinishReason::Stop)));
                }
                if self.context.include_usage {
                    out.push(self.usage_chunk());
                }
                self.done = true;
            }
            AnthropicEvent::Error { error } => {
                return Err(anthropic_error(&self.provider, &error, None));
            }
            AnthropicEvent::Ping | AnthropicEvent::Unknown => {}
        }
        Ok(out)
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn finish(&mut self) -> Result<Vec<ChatCompletionChunk>> {
        if self.done {
            Ok(Vec::new())
        } else {
            Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "the stream from provider `{}` ended before the answer was complete (no message_stop)",
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

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Nullable;

    fn provider() -> AnthropicProvider {
        AnthropicProvider::new(
            "anthropic",
            "http://127.0.0.1:1/v1/",
            Some("sk-ant-test"),
            &[("anthropic-beta".to_owned(), "b1".to_owned())],
        )
        .unwrap()
    }

    fn request(body: Value) -> ChatCompletionRequest {
        serde_json::from_value(body).unwrap()
    }

    fn encode(body: Value) -> Result<Value> {
        encode_request(&request(body), "claude-sonnet-4-5", false)
    }

    fn encode_err(body: Value) -> Error {
        encode(body).unwrap_err()
    }

    fn hello() -> Value {
        json!({"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hi"}]})
    }

    fn with(mut base: Value, key: &str, value: Value) -> Value {
        base[key] = value;
        base
    }

    fn ev(data: Value) -> SseEvent {
        SseEvent {
            event: data["type"].as_str().unwrap_or_default().to_owned(),
            data: data.to_string(),
        }
    }

    /// Feeds events to a fresh decoder, then `finish()`; stops at the first error.
    fn run_stream(
        events: &[SseEvent],
        include_usage: bool,
    ) -> (Vec<ChatCompletionChunk>, Option<Error>) {
        let context = StreamContext { include_usage };
        let mut decoder = AnthropicStreamDecoder::new("anthropic", context, 0);
        let mut chunks = Vec::new();
        for event in events {
            match decoder.on_event(event) {
                Ok(out) => chunks.extend(out),
                Err(e) => return (chunks, Some(e)),
            }
        }
        match decoder.finish() {
            Ok(out) => chunks.extend(out),
            Err(e) => return (chunks, Some(e)),
        }
        (chunks, None)
    }

    fn text_stream() -> Vec<SseEvent> {
        vec![
            ev(
                json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 3, "output_tokens": 1}}}),
            ),
            ev(
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ev(json!({"type": "ping"})),
            ev(
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
            ),
            ev(json!({"type": "content_block_stop", "index": 0})),
            ev(
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
            ),
            ev(json!({"type": "message_stop"})),
        ]
    }

    // --- provider, headers, model list ------------------------------------------------------

    #[test]
    fn requests_carry_anthropic_auth_and_version() {
        let up = provider()
            .encode_chat(&request(hello()), "claude-sonnet-4-5", true)
            .unwrap();
        assert_eq!(up.method, http::Method::POST);
        assert_eq!(up.url, "http://127.0.0.1:1/v1/messages");
        assert_eq!(up.headers["x-api-key"], "sk-ant-test");
        assert_eq!(up.headers["anthropic-version"], "2023-06-01");
        assert_eq!(up.headers["anthropic-beta"], "b1");
        assert_eq!(up.headers["content-type"], "application/json");
        assert!(up.headers.get("authorization").is_none());
        let body: Value = serde_json::from_slice(&up.body).unwrap();
        assert_eq!(body["stream"], true);

        let p = AnthropicProvider::new(
            "a",
            "https://api.anthropic.com/v1",
            Some(""),
            &[("anthropic-version".to_owned(), "2099-01-01".to_owned())],
        )
        .unwrap();
        let up = p.encode_chat(&request(hello()), "m", false).unwrap();
        assert!(
            up.headers.get("x-api-key").is_none(),
            "empty key: no header"
        );
        assert_eq!(up.headers["anthropic-version"], "2099-01-01");
        let body: Value = serde_json::from_slice(&up.body).unwrap();
        assert!(body.get("stream").is_none());

        assert!(AnthropicProvider::new("a", "x", Some("bad\nkey"), &[]).is_err());
        assert!(
            AnthropicProvider::new("a", "x", None, &[("bad name".into(), "v".into())]).is_err()
        );
    }

    #[test]
    fn model_list_request_and_answer() {
        let p = provider();
        let req = p.list_models_request().unwrap();
        assert_eq!(req.method, http::Method::GET);
        assert_eq!(req.url, "http://127.0.0.1:1/v1/models?limit=1000");
        assert_eq!(req.headers["x-api-key"], "sk-ant-test");
        assert!(req.headers.get("content-type").is_none());
        let body = br#"{"data":[{"type":"model","id":"claude-sonnet-4-5-20250929","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"},{"type":"model","id":"claude-haiku-4-5"}],"has_more":false,"first_id":"a","last_id":"b"}"#;
        assert_eq!(
            p.decode_model_list(body).unwrap(),
            ["claude-sonnet-4-5-20250929", "claude-haiku-4-5"]
        );
        let err = p.decode_model_list(b"{}").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection);
    }

    // --- encoding ---------------------------------------------------------------------------

    #[test]
    fn default_max_tokens_follow_the_model_family() {
        for (model, expected) in [
            ("claude-sonnet-4-5", 64_000),
            ("claude-sonnet-4-5-20250929", 64_000),
            ("claude-sonnet-4-20250514", 64_000),
            ("claude-sonnet-4-0", 64_000),
            ("claude-haiku-4-5-20251001", 64_000),
            ("claude-opus-4-5-20251101", 64_000),
            ("claude-opus-4-6", 64_000),
            ("claude-opus-4-1-20250805", 32_000),
            ("claude-opus-4-1@20250805", 32_000),
            ("claude-opus-4-20250514", 32_000),
            ("claude-opus-4-0", 32_000),
            ("claude-3-7-sonnet-20250219", 64_000),
            ("claude-3-5-sonnet-20241022", 8192),
            ("claude-3-5-haiku-latest", 8192),
            ("claude-3-opus-20240229", 4096),
            ("claude-3-haiku-20240307", 4096),
            ("claude-2.1", 4096),
            ("anthropic.claude-3-5-sonnet-20240620-v1:0", 8192),
            ("claude-sonnet-5", 64_000),
            ("my-finetune", 4096),
        ] {
            assert_eq!(default_max_tokens(model), expected, "{model}");
        }
    }

    #[test]
    fn parameters_that_change_the_answer_are_refused_by_name() {
        for (key, value) in [
            ("n", json!(2)),
            ("logprobs", json!(true)),
            ("top_logprobs", json!(3)),
            ("frequency_penalty", json!(0.5)),
            ("presence_penalty", json!(-1)),
            ("logit_bias", json!({"50256": -100})),
            ("seed", json!(7)),
            ("audio", json!({"voice": "alloy", "format": "wav"})),
            ("modalities", json!(["text", "audio"])),
            ("prediction", json!({"type": "content", "content": "x"})),
            ("functions", json!([{"name": "f"}])),
            ("web_search_options", json!({})),
            ("verbosity", json!("low")),
        ] {
            let err = encode_err(with(hello(), key, value));
            assert_eq!((err.status(), err.param()), (400, Some(key)), "{key}");
            assert!(err.message().contains("Anthropic"), "{}", err.message());
        }
        // Neutral values are fine and not sent.
        let body = encode(json!({
            "model": "m", "messages": [{"role": "user", "content": "Hi"}],
            "n": 1, "logprobs": false, "top_logprobs": 0, "frequency_penalty": 0,
            "presence_penalty": 0.0, "logit_bias": {}, "modalities": ["text"], "audio": null,
            "prediction": null, "store": false, "prompt_cache_key": "k", "service_tier": "flex"
        }))
        .unwrap();
        for key in [
            "n",
            "logprobs",
            "top_logprobs",
            "frequency_penalty",
            "presence_penalty",
            "logit_bias",
            "modalities",
            "audio",
            "prediction",
            "store",
            "prompt_cache_key",
            "service_tier",
        ] {
            assert!(body.get(key).is_none(), "{key} leaked: {body}");
        }
    }

    #[test]
    fn unknown_fields_pass_through_without_overriding_built_ones() {
        let body = encode(json!({
            "model": "m", "messages": [{"role": "user", "content": "Hi"}],
            "container": "ctr_1", "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}],
            "inference_geo": "us", "context_management": {"edits": []}, "cache_control": {"type": "ephemeral"},
            "max_tokens": 10, "system": "sneaky", "service_tier": "auto"
        }))
        .unwrap();
        assert_eq!(body["container"], "ctr_1");
        assert_eq!(body["mcp_servers"][0]["name"], "x");
        assert_eq!(body["inference_geo"], "us");
        assert_eq!(body["context_management"], json!({"edits": []}));
        assert_eq!(body["cache_control"], json!({"type": "ephemeral"}));
        assert_eq!(body["service_tier"], "auto");
        assert_eq!(body["max_tokens"], 10);
        // No system message: the caller's Anthropic-style `system` is used as is.
        assert_eq!(body["system"], "sneaky");
        let body = encode(json!({
            "model": "m", "messages": [{"role": "system", "content": "real"}, {"role": "user", "content": "Hi"}],
            "system": "sneaky"
        }))
        .unwrap();
        assert_eq!(body["system"], "real");
    }

    #[test]
    fn temperature_rules() {
        let err = encode_err(with(
            with(hello(), "temperature", json!(0.5)),
            "reasoning_effort",
            json!("low"),
        ));
        assert_eq!((err.status(), err.param()), (400, Some("temperature")));
        let err = encode_err(with(
            with(hello(), "temperature", json!(0)),
            "thinking",
            json!({"type": "adaptive"}),
        ));
        assert_eq!(err.param(), Some("temperature"));
        let err = encode_err(with(hello(), "temperature", json!(1.5)));
        assert_eq!(err.param(), Some("temperature"));
        let body = encode(with(
            with(hello(), "temperature", json!(1)),
            "reasoning_effort",
            json!("minimal"),
        ))
        .unwrap();
        assert_eq!(body["temperature"], 1);
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 1024})
        );
        // Disabled thinking puts no constraint on temperature.
        let body = encode(with(
            with(hello(), "temperature", json!(0.3)),
            "thinking",
            json!({"type": "disabled"}),
        ))
        .unwrap();
        assert_eq!(body["thinking"], json!({"type": "disabled"}));
        assert_eq!(body["temperature"], 0.3);
    }

    #[test]
    fn reasoning_effort_budgets_and_max_tokens() {
        for (effort, budget) in [
            ("minimal", 1024),
            ("low", 2048),
            ("medium", 8192),
            ("high", 24_576),
        ] {
            let body = encode(with(hello(), "reasoning_effort", json!(effort))).unwrap();
            assert_eq!(body["thinking"]["budget_tokens"], budget, "{effort}");
            assert_eq!(
                body["max_tokens"], 64_000,
                "the model default is above every budget"
            );
        }
        let body = encode(with(hello(), "reasoning_effort", json!("none"))).unwrap();
        assert!(body.get("thinking").is_none());
        let err = encode_err(with(hello(), "reasoning_effort", json!("extreme")));
        assert_eq!(err.param(), Some("reasoning_effort"));
        // The caller's limit is kept for the answer, on top of the budget.
        let body = encode(with(
            with(hello(), "reasoning_effort", json!("medium")),
            "max_tokens",
            json!(500),
        ))
        .unwrap();
        assert_eq!(body["max_tokens"], 8192 + 500);
        // An explicit `thinking` wins over `reasoning_effort`.
        let body = encode(with(
            with(hello(), "reasoning_effort", json!("high")),
            "thinking",
            json!({"type": "enabled", "budget_tokens": 3000}),
        ))
        .unwrap();
        assert_eq!(body["thinking"]["budget_tokens"], 3000);
        let err = encode_err(with(hello(), "thinking", json!(true)));
        assert_eq!(err.param(), Some("thinking"));
    }

    #[test]
    fn tool_errors_name_the_field() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let mut body = with(hello(), "tools", tools.clone());
        body["messages"] = json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "t2", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
            ]}
        ]);
        let err = encode_err(body.clone());
        assert_eq!(
            err.param(),
            Some("messages[1].tool_calls[1].function.arguments")
        );
        body["messages"][1]["tool_calls"][1]["function"]["arguments"] = json!("[1, 2]");
        let err = encode_err(body);
        assert_eq!(
            err.param(),
            Some("messages[1].tool_calls[1].function.arguments")
        );

        let err = encode_err(with(
            hello(),
            "tools",
            json!([{"type": "function", "function": {"name": "f"}}, {"type": "custom", "custom": {"name": "c"}}]),
        ));
        assert_eq!(err.param(), Some("tools[1]"));

        let err = encode_err(with(hello(), "tool_choice", json!("required")));
        assert_eq!(
            err.param(),
            Some("tool_choice"),
            "forced choice without tools"
        );
        let body = encode(with(hello(), "tool_choice", json!("auto"))).unwrap();
        assert!(
            body.get("tool_choice").is_none(),
            "no tools: no tool_choice"
        );
        let err = encode_err(with(
            with(
                with(hello(), "tools", tools.clone()),
                "tool_choice",
                json!("required"),
            ),
            "reasoning_effort",
            json!("low"),
        ));
        assert_eq!(
            err.param(),
            Some("tool_choice"),
            "thinking forbids forced tools"
        );
        let err = encode_err(with(
            with(hello(), "tools", tools),
            "tool_choice",
            json!({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}),
        ));
        assert_eq!(err.param(), Some("tool_choice"));
    }

    #[test]
    fn content_that_anthropic_cannot_read_is_refused_by_path() {
        let cases = [
            (
                json!([{"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]),
                "messages[0].content[0].input_audio",
            ),
            (
                json!([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAA"}}]),
                "messages[0].content[1].image_url.url",
            ),
            (
                json!([{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]),
                "messages[0].content[0].image_url.url",
            ),
            (
                json!([{"type": "file", "file": {"file_id": "file-abc"}}]),
                "messages[0].content[0].file.file_id",
            ),
            (
                json!([{"type": "file", "file": {"file_data": "data:application/zip;base64,UEsD"}}]),
                "messages[0].content[0].file.file_data",
            ),
            (
                json!([{"type": "file", "file": {"file_data": "UEsD", "filename": "a.zip"}}]),
                "messages[0].content[0].file.file_data",
            ),
        ];
        for (content, param) in cases {
            let body = json!({"model": "m", "messages": [{"role": "user", "content": content}]});
            let err = encode_err(body);
            assert_eq!((err.status(), err.param()), (400, Some(param)));
        }
        // Bare base64 named `.pdf` is read as a PDF.
        let body = encode(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_data": "JVBERi0x", "filename": "A.PDF"}}
            ]}]}),
        )
        .unwrap();
        assert_eq!(
            body["messages"][0]["content"][0]["source"]["media_type"],
            "application/pdf"
        );

        let err = encode_err(json!({"model": "m", "messages": [
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "user", "content": "Hi"}
        ]}));
        assert_eq!(err.param(), Some("messages[0].content[0]"));
        let err = encode_err(json!({"model": "m", "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "function", "name": "f", "content": "x"}
        ]}));
        assert_eq!(err.param(), Some("messages[1]"));
        let err = encode_err(json!({"model": "m", "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": null, "function_call": {"name": "f", "arguments": "{}"}}
        ]}));
        assert_eq!(err.param(), Some("messages[1].function_call"));
    }

    #[test]
    fn json_object_is_refused_and_text_format_is_nothing() {
        let err = encode_err(with(
            hello(),
            "response_format",
            json!({"type": "json_object"}),
        ));
        assert_eq!((err.status(), err.param()), (400, Some("response_format")));
        let body = encode(with(hello(), "response_format", json!({"type": "text"}))).unwrap();
        assert!(body.get("output_config").is_none());
        let err = encode_err(with(
            hello(),
            "response_format",
            json!({"type": "json_schema", "json_schema": {"name": "x"}}),
        ));
        assert_eq!(err.param(), Some("response_format.json_schema.schema"));
    }

    #[test]
    fn turns_alternate_and_leading_blocks_stay_first() {
        // A user message between the tool calls and their results (unusual but possible) must
        // not put text before the tool results in the merged user turn.
        let body = encode(json!({"model": "m", "tools": [{"type": "function", "function": {"name": "f"}}], "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "a", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "assistant", "content": "b", "thinking_blocks": [{"type": "redacted_thinking", "data": "R"}]},
            {"role": "user", "content": "wait"},
            {"role": "tool", "tool_call_id": "t1", "content": ""}
        ]}))
        .unwrap();
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        let kinds = |m: &Value| -> Vec<String> {
            m["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["type"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            kinds(&messages[1]),
            ["redacted_thinking", "text", "tool_use", "text"]
        );
        assert_eq!(kinds(&messages[2]), ["tool_result", "text"]);
        assert!(
            messages[2]["content"][0].get("content").is_none(),
            "empty result: no content"
        );
    }

    // --- errors -----------------------------------------------------------------------------

    #[test]
    fn error_bodies_map_to_openai_statuses() {
        let p = provider();
        for (kind, http, status, retryable) in [
            ("invalid_request_error", 400, 400, false),
            ("authentication_error", 401, 401, false),
            ("billing_error", 402, 403, false),
            ("permission_error", 403, 403, false),
            ("not_found_error", 404, 404, false),
            ("request_too_large", 413, 413, false),
            ("rate_limit_error", 429, 429, true),
            ("api_error", 500, 500, true),
            ("timeout_error", 504, 504, true),
            ("overloaded_error", 529, 503, true),
            ("something_new", 418, 418, false),
        ] {
            let body = json!({"type": "error", "error": {"type": kind, "message": format!("msg {kind}")}, "request_id": "req_1"});
            let err = p.decode_error(http, &HeaderMap::new(), body.to_string().as_bytes());
            assert_eq!(err.status(), status, "{kind}");
            assert_eq!(err.is_retryable(), retryable, "{kind}");
            assert_eq!(err.message(), format!("msg {kind}"));
            assert_eq!(err.code(), Some(&json!(kind)));
            assert_eq!(err.provider(), Some("anthropic"));
            assert_eq!(
                err.to_body().error.kind.as_deref(),
                Some(err.kind().error_type())
            );
        }
        let err = p.decode_error(529, &HeaderMap::new(), b"<html>overloaded</html>");
        assert_eq!(
            (err.status(), err.kind()),
            (503, ErrorKind::ServiceUnavailable)
        );
        assert!(err.message().contains("<html>"));
        let err = p.decode_error(502, &HeaderMap::new(), b"");
        assert_eq!(err.status(), 502);

        let mut headers = HeaderMap::new();
        headers.insert("retry-after", http::HeaderValue::from_static("7"));
        let body = br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
        let err = p.decode_error(429, &headers, body);
        assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));
        assert_eq!(err.kind(), ErrorKind::RateLimit);
    }

    // --- responses and streams --------------------------------------------------------------

    #[test]
    fn malformed_answers_are_connection_errors() {
        let err = decode_message("anthropic", b"{\"id\":\"m\"}", 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(err.message().contains("model"), "{}", err.message());
        let (_, err) = run_stream(
            &[SseEvent {
                event: String::new(),
                data: "{nope".into(),
            }],
            true,
        );
        assert_eq!(err.unwrap().kind(), ErrorKind::Connection);
        let (_, err) = run_stream(
            &[SseEvent {
                event: "error".into(),
                data: "upstream exploded".into(),
            }],
            true,
        );
        let err = err.unwrap();
        assert_eq!(err.status(), 500);
        assert!(err.message().contains("upstream exploded"));
    }

    #[test]
    fn stream_usage_chunk_only_when_asked() {
        let events = text_stream();
        let (chunks, err) = run_stream(&events, false);
        assert!(err.is_none());
        assert_eq!(chunks.len(), 3, "role, text, finish: {chunks:?}");
        assert!(
            chunks
                .iter()
                .all(|c| c.usage.is_none() && c.choices.len() == 1)
        );
        assert_eq!(
            chunks[1].choices[0].delta.content,
            Some(Some("Hi".to_owned()))
        );
        assert_eq!(chunks[2].choices[0].finish_reason, Some(FinishReason::Stop));
        assert!(
            chunks
                .iter()
                .all(|c| c.id == "msg_1" && c.model == "claude-x")
        );

        let (chunks, _) = run_stream(&events, true);
        let absent: Nullable<Usage> = None;
        assert!(chunks[..3].iter().all(|c| c.usage == absent));
        let usage = chunks[3].usage().unwrap();
        assert!(chunks[3].choices.is_empty());
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (3, 2, 5)
        );

        // Events after message_stop are ignored; a stream cut before it is an error.
        let mut d = AnthropicStreamDecoder::new("anthropic", StreamContext::default(), 0);
        for e in &events {
            d.on_event(e).unwrap();
        }
        assert!(d.is_done());
        assert!(d.on_event(&events[3]).unwrap().is_empty());
        let (chunks, err) = run_stream(&events[..4], true);
        assert_eq!(chunks.len(), 2);
        let err = err.unwrap();
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(err.message().contains("message_stop"), "{}", err.message());
    }

    #[test]
    fn stream_error_event_maps_like_an_error_body() {
        let mut events = text_stream();
        events.truncate(4);
        events.push(SseEvent {
            event: "error".into(),
            data: r#"{"type":"error","error":{"details":null,"type":"overloaded_error","message":"Overloaded"} }"#.into(),
        });
        let (chunks, err) = run_stream(&events, true);
        assert_eq!(chunks.len(), 2);
        let err = err.unwrap();
        assert_eq!(
            (err.status(), err.kind()),
            (503, ErrorKind::ServiceUnavailable)
        );
        assert!(err.is_retryable());
        assert_eq!(err.message(), "Overloaded");
        assert_eq!(err.code(), Some(&json!("overloaded_error")));
    }
}
