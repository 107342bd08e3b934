//! OpenAI request → Anthropic request: the `messages` body, its content blocks, tools,
//! thinking and output configuration, and the parameters that are refused.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::types::{
    AssistantMessage, ChatCompletionRequest, ChatMessage, ContentPart, FileRef, JsonObject,
    MessageContent, ResponseFormat, ThinkingBlock, Tool, ToolChoice, ToolChoiceMode, ToolMessage,
};

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

// ---------------------------------------------------------------------------------------------
// OpenAI request -> Anthropic request
// ---------------------------------------------------------------------------------------------

/// Builds the Anthropic request body for `model`.
pub(super) fn encode_request(
    request: &ChatCompletionRequest,
    model: &str,
    stream: bool,
) -> Result<Value> {
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
pub(super) fn default_max_tokens(model: &str) -> u32 {
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
