//! The request translation: a Messages request to the canonical chat request.

use serde_json::Value;

use super::types::{
    ContentBlock, DocumentBlock, ImageBlock, InputContent, KNOWN_BLOCKS, MediaSource,
    MessagesRequest, OutputFormat, Role, StrictBlock, StrictSource, TextBlock, ToolChoiceParam,
    ToolResultBlock, ToolUseBlock, direct_caller,
};
use crate::error::{Error, Result};
use crate::types::{
    AssistantMessage, ChatCompletionRequest, ChatMessage, ContentPart, FilePart, FileRef,
    FunctionCall, FunctionDefinition, FunctionKind, FunctionName, FunctionTool, ImageUrl,
    ImageUrlPart, JsonObject, JsonSchemaFormat, MessageContent, NamedToolChoice, ResponseFormat,
    StopSequences, SystemMessage, TextPart, ThinkingBlock, Tool, ToolCall, ToolChoice,
    ToolChoiceMode, ToolMessage, UserMessage,
};

// --------------------------------------------------------------------- request translation

/// Translates a Messages request into the canonical chat request. Invalid or untranslatable
/// input is a 400 naming the Anthropic field path (`messages[2].content[0].type`).
pub fn to_chat_request(req: &MessagesRequest) -> Result<ChatCompletionRequest> {
    if req.messages.is_empty() {
        return Err(Error::invalid_param(
            "messages",
            "`messages` must contain at least one message",
        ));
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = &req.system {
        messages.push(ChatMessage::System(SystemMessage {
            content: system_content(system)?,
            name: None,
            extra: JsonObject::new(),
        }));
    }
    for (i, message) in req.messages.iter().enumerate() {
        let base = format!("messages[{i}]");
        match message.role {
            Role::User => user_messages(&message.content, &base, &mut messages)?,
            Role::Assistant => messages.push(assistant_message(&message.content, &base)?),
        }
    }

    // Unknown fields pass through; those that are OpenAI parameters (`seed`,
    // `reasoning_effort`, ...) land in their typed slots, so none is written twice upstream.
    let mut chat = passthrough(&req.extra)?;
    if let Some(top_k) = req.top_k {
        chat.extra.insert("top_k".to_owned(), top_k.into());
    }
    if let Some(thinking) = &req.thinking {
        if let Some(effort) = effort_from_thinking(thinking)? {
            chat.reasoning_effort = Some(effort);
        }
        chat.extra
            .insert("thinking".to_owned(), Value::Object(thinking.clone()));
    }
    if let Some(config) = &req.output_config {
        if let Some(key) = config.extra.keys().next() {
            return Err(Error::invalid_param(
                format!("output_config.{key}"),
                format!("`output_config.{key}` has no equivalent the gateway can translate"),
            ));
        }
        if let Some(effort) = &config.effort {
            chat.reasoning_effort = Some(match effort.as_str() {
                "low" | "medium" | "high" | "xhigh" => effort.clone(),
                "max" => "xhigh".to_owned(),
                other => {
                    return Err(Error::invalid_param(
                        "output_config.effort",
                        format!(
                            "`output_config.effort` is `{other}`; expected low, medium, high, xhigh or max"
                        ),
                    ));
                }
            });
        }
        if let Some(format) = &config.format {
            chat.response_format = Some(output_format(format)?);
        }
    }
    let (tools, tool_choice, parallel_tool_calls) = tools_and_choice(req)?;
    chat.model = req.model.clone();
    chat.messages = messages;
    chat.max_completion_tokens = Some(req.max_tokens);
    chat.max_tokens = None;
    chat.models = req.models.clone();
    set(&mut chat.temperature, req.temperature);
    set(&mut chat.top_p, req.top_p);
    set(&mut chat.stream, req.stream);
    set(
        &mut chat.stop,
        req.stop_sequences
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| StopSequences::Many(s.clone())),
    );
    set(&mut chat.tools, tools);
    set(&mut chat.tool_choice, tool_choice);
    set(&mut chat.parallel_tool_calls, parallel_tool_calls);
    set(
        &mut chat.user,
        req.metadata.as_ref().and_then(|m| m.user_id.clone()),
    );
    Ok(chat)
}

/// Overwrites `slot` when the Anthropic request set the value.
fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

/// The chat request made of the Messages request's unknown top-level fields.
fn passthrough(extra: &JsonObject) -> Result<ChatCompletionRequest> {
    if extra.is_empty() {
        return Ok(ChatCompletionRequest::default());
    }
    let mut object = extra.clone();
    object.insert("model".to_owned(), Value::String(String::new()));
    object.insert("messages".to_owned(), Value::Array(Vec::new()));
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
        let param = e.path().to_string();
        Error::invalid_param(
            param.clone(),
            format!("Invalid value for `{param}`: {}", e.into_inner()),
        )
    })
}

/// `reasoning_effort` for a `thinking` config: by budget when enabled (see the module docs).
fn effort_from_thinking(thinking: &JsonObject) -> Result<Option<String>> {
    match thinking.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            let budget = thinking
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    Error::invalid_param(
                        "thinking.budget_tokens",
                        "`thinking.budget_tokens` is required (a positive integer) when thinking is enabled",
                    )
                })?;
            Ok(Some(
                match budget {
                    0..4096 => "low",
                    4096..16384 => "medium",
                    _ => "high",
                }
                .to_owned(),
            ))
        }
        Some("disabled" | "adaptive") => Ok(None),
        Some(other) => Err(Error::invalid_param(
            "thinking.type",
            format!("`thinking.type` is `{other}`; expected enabled, disabled or adaptive"),
        )),
        None => Err(Error::invalid_param(
            "thinking.type",
            "`thinking.type` is required",
        )),
    }
}

fn output_format(format: &OutputFormat) -> Result<ResponseFormat> {
    if format.kind != "json_schema" {
        return Err(Error::invalid_param(
            "output_config.format.type",
            format!(
                "`output_config.format.type` is `{}`; only `json_schema` is supported",
                format.kind
            ),
        ));
    }
    let Some(schema) = &format.schema else {
        return Err(Error::invalid_param(
            "output_config.format.schema",
            "`output_config.format.schema` is required",
        ));
    };
    Ok(ResponseFormat::JsonSchema {
        json_schema: JsonSchemaFormat {
            name: "output".to_owned(),
            description: None,
            schema: Some(schema.clone()),
            strict: None,
            extra: JsonObject::new(),
        },
    })
}

type ToolsAndChoice = (Option<Vec<Tool>>, Option<ToolChoice>, Option<bool>);

fn tools_and_choice(req: &MessagesRequest) -> Result<ToolsAndChoice> {
    let mut tools = None;
    if let Some(defs) = &req.tools {
        let mut out = Vec::with_capacity(defs.len());
        for (i, def) in defs.iter().enumerate() {
            if let Some(kind) = def.kind.as_deref().filter(|k| *k != "custom") {
                return Err(Error::invalid_param(
                    format!("tools[{i}]"),
                    format!(
                        "`tools[{i}]` is the server tool `{kind}`, which the gateway cannot run on other providers; only custom tools (name, description, input_schema) are supported"
                    ),
                ));
            }
            let Some(schema) = &def.input_schema else {
                return Err(Error::invalid_param(
                    format!("tools[{i}].input_schema"),
                    format!("Missing required parameter: `tools[{i}].input_schema`."),
                ));
            };
            out.push(Tool::Function(FunctionTool {
                function: FunctionDefinition {
                    name: def.name.clone(),
                    description: def.description.clone(),
                    parameters: Some(schema.clone()),
                    strict: def.strict,
                    extra: JsonObject::new(),
                },
                extra: set_fields(&def.extra),
            }));
        }
        tools = Some(out);
    }
    let (choice, parallel) = match &req.tool_choice {
        None => (None, None),
        Some(ToolChoiceParam::Auto {
            disable_parallel_tool_use,
        }) => (
            Some(ToolChoice::Mode(ToolChoiceMode::Auto)),
            *disable_parallel_tool_use,
        ),
        Some(ToolChoiceParam::Any {
            disable_parallel_tool_use,
        }) => (
            Some(ToolChoice::Mode(ToolChoiceMode::Required)),
            *disable_parallel_tool_use,
        ),
        Some(ToolChoiceParam::Tool {
            name,
            disable_parallel_tool_use,
        }) => (
            Some(ToolChoice::Function(NamedToolChoice {
                kind: FunctionKind::Function,
                function: FunctionName { name: name.clone() },
            })),
            *disable_parallel_tool_use,
        ),
        Some(ToolChoiceParam::None) => (Some(ToolChoice::Mode(ToolChoiceMode::None)), None),
    };
    let parallel_tool_calls = (parallel == Some(true)).then_some(false);
    Ok((tools, choice, parallel_tool_calls))
}

fn system_content(system: &InputContent) -> Result<MessageContent> {
    match system {
        InputContent::Text(text) => Ok(MessageContent::Text(text.clone())),
        InputContent::Blocks(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                let path = format!("system[{j}]");
                match block {
                    ContentBlock::Text(text) => parts.push(text_part(text)),
                    ContentBlock::Other(obj) => return Err(bad_block(obj, &path)),
                    other => {
                        return Err(Error::invalid_param(
                            format!("{path}.type"),
                            format!(
                                "`{path}.type` is `{}`; the system prompt takes only text blocks",
                                block_type(other)
                            ),
                        ));
                    }
                }
            }
            Ok(parts_content(parts))
        }
    }
}

fn user_messages(content: &InputContent, base: &str, out: &mut Vec<ChatMessage>) -> Result<()> {
    let blocks = match content {
        InputContent::Text(text) => {
            out.push(ChatMessage::user(text.clone()));
            return Ok(());
        }
        InputContent::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    let mut results = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let path = format!("{base}.content[{j}]");
        match block {
            ContentBlock::Text(text) => parts.push(text_part(text)),
            ContentBlock::Image(image) => parts.push(image_part(image, &path)?),
            ContentBlock::Document(doc) => parts.push(document_part(doc, &path)?),
            ContentBlock::ToolResult(result) => results.push(tool_message(result, &path)?),
            ContentBlock::Other(obj) => return Err(bad_block(obj, &path)),
            ContentBlock::ToolUse(_)
            | ContentBlock::Thinking(_)
            | ContentBlock::RedactedThinking(_) => {
                return Err(Error::invalid_param(
                    format!("{path}.type"),
                    format!(
                        "`{path}.type` is `{}`, which belongs in an assistant message",
                        block_type(block)
                    ),
                ));
            }
        }
    }
    let only_results = parts.is_empty() && !results.is_empty();
    out.extend(results);
    if !only_results {
        out.push(ChatMessage::User(UserMessage {
            content: parts_content(parts),
            name: None,
            extra: JsonObject::new(),
        }));
    }
    Ok(())
}

fn assistant_message(content: &InputContent, base: &str) -> Result<ChatMessage> {
    let blocks = match content {
        InputContent::Text(text) => {
            return Ok(ChatMessage::Assistant(AssistantMessage {
                content: Some(Some(MessageContent::Text(text.clone()))),
                ..Default::default()
            }));
        }
        InputContent::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    let mut reasoning: Vec<&str> = Vec::new();
    let mut thinking_blocks = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let path = format!("{base}.content[{j}]");
        match block {
            ContentBlock::Text(text) => parts.push(text_part(text)),
            ContentBlock::ToolUse(call) => tool_calls.push(tool_call(call)),
            ContentBlock::Thinking(thinking) => {
                reasoning.push(&thinking.thinking);
                thinking_blocks.push(ThinkingBlock::Thinking {
                    thinking: thinking.thinking.clone(),
                    signature: (!thinking.signature.is_empty()).then(|| thinking.signature.clone()),
                });
            }
            ContentBlock::RedactedThinking(redacted) => {
                thinking_blocks.push(ThinkingBlock::RedactedThinking {
                    data: redacted.data.clone(),
                });
            }
            ContentBlock::Other(obj) => return Err(bad_block(obj, &path)),
            ContentBlock::Image(_) | ContentBlock::Document(_) | ContentBlock::ToolResult(_) => {
                return Err(Error::invalid_param(
                    format!("{path}.type"),
                    format!(
                        "`{path}.type` is `{}`, which belongs in a user message",
                        block_type(block)
                    ),
                ));
            }
        }
    }
    let content = if parts.is_empty() {
        // OpenAI accepts a missing content only next to tool calls.
        (tool_calls.is_empty()).then(|| Some(MessageContent::Text(String::new())))
    } else {
        Some(Some(parts_content(parts)))
    };
    Ok(ChatMessage::Assistant(AssistantMessage {
        content,
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        reasoning_content: (!reasoning.is_empty()).then(|| reasoning.join("\n")),
        thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
        ..Default::default()
    }))
}

fn text_part(text: &TextBlock) -> ContentPart {
    ContentPart::Text(TextPart {
        text: text.text.clone(),
        extra: set_fields(&text.extra),
    })
}

/// The pass-through fields of a block that are set: `null` means "not set" for every optional
/// Anthropic field (the SDKs send `citations: null` back with the text of an answer).
fn set_fields(extra: &JsonObject) -> JsonObject {
    extra
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// One plain text part becomes a plain string; anything else stays a list of parts.
fn parts_content(parts: Vec<ContentPart>) -> MessageContent {
    match <[ContentPart; 1]>::try_from(parts) {
        Ok([ContentPart::Text(part)]) if part.extra.is_empty() => MessageContent::Text(part.text),
        Ok(one) => MessageContent::Parts(one.into()),
        Err(parts) => MessageContent::Parts(parts),
    }
}

fn image_part(image: &ImageBlock, path: &str) -> Result<ContentPart> {
    let url = match &image.source {
        MediaSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        MediaSource::Url { url } => url.clone(),
        other => return Err(unsupported_source(other, "image", path)),
    };
    Ok(ContentPart::ImageUrl(ImageUrlPart {
        image_url: ImageUrl {
            url,
            detail: None,
            extra: JsonObject::new(),
        },
        extra: set_fields(&image.extra),
    }))
}

fn document_part(doc: &DocumentBlock, path: &str) -> Result<ContentPart> {
    match &doc.source {
        MediaSource::Base64 { media_type, data } => Ok(ContentPart::File(FilePart {
            file: FileRef {
                file_data: Some(format!("data:{media_type};base64,{data}")),
                filename: doc.title.clone(),
                ..Default::default()
            },
            extra: set_fields(&doc.extra),
        })),
        MediaSource::Text { data, .. } => Ok(ContentPart::Text(TextPart {
            text: data.clone(),
            extra: set_fields(&doc.extra),
        })),
        other => Err(unsupported_source(other, "document", path)),
    }
}

fn unsupported_source(source: &MediaSource, what: &str, path: &str) -> Error {
    let kind = match source {
        MediaSource::Base64 { .. } => "base64",
        MediaSource::Url { .. } => "url",
        MediaSource::Text { .. } => "text",
        MediaSource::Other(obj) => {
            let source_path = format!("{path}.source");
            match obj.get("type").and_then(Value::as_str) {
                None => {
                    return Error::invalid_param(
                        format!("{source_path}.type"),
                        format!("Missing required parameter: `{source_path}.type`."),
                    );
                }
                Some(kind @ ("base64" | "url" | "text")) => {
                    return strict_error::<StrictSource>(obj, &source_path).unwrap_or_else(|| {
                        Error::invalid_param(
                            format!("{source_path}.type"),
                            format!("`{source_path}` is not a valid `{kind}` source"),
                        )
                    });
                }
                Some(kind) => kind,
            }
        }
    };
    Error::invalid_param(
        format!("{path}.source.type"),
        format!(
            "`{path}.source.type` is `{kind}`, which the gateway cannot pass on for a {what}; send the {what} as base64{}",
            if what == "document" {
                " (PDF) or plain text"
            } else {
                " or a URL"
            }
        ),
    )
}

fn tool_message(result: &ToolResultBlock, path: &str) -> Result<ChatMessage> {
    let content = match &result.content {
        None => MessageContent::Text(String::new()),
        Some(InputContent::Text(text)) => MessageContent::Text(text.clone()),
        Some(InputContent::Blocks(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (k, block) in blocks.iter().enumerate() {
                let inner = format!("{path}.content[{k}]");
                match block {
                    ContentBlock::Text(text) => parts.push(text_part(text)),
                    ContentBlock::Other(obj) => return Err(bad_block(obj, &inner)),
                    other => {
                        return Err(Error::invalid_param(
                            format!("{inner}.type"),
                            format!(
                                "`{inner}.type` is `{}`; OpenAI-shaped tool results carry only text",
                                block_type(other)
                            ),
                        ));
                    }
                }
            }
            parts_content(parts)
        }
    };
    let mut extra = set_fields(&result.extra);
    if result.is_error == Some(true) {
        extra.insert("is_error".to_owned(), Value::Bool(true));
    }
    Ok(ChatMessage::Tool(ToolMessage {
        content,
        tool_call_id: result.tool_use_id.clone(),
        extra,
    }))
}

fn tool_call(call: &ToolUseBlock) -> ToolCall {
    let mut extra = set_fields(&call.extra);
    // `caller: {"type": "direct"}` is the default (answers carry it); other callers are kept.
    if extra.get("caller") == Some(&direct_caller()) {
        extra.remove("caller");
    }
    let arguments = match extra.remove("raw_arguments") {
        Some(Value::String(raw)) => raw,
        _ => call.input.to_string(),
    };
    ToolCall {
        id: call.id.clone(),
        kind: FunctionKind::Function,
        function: FunctionCall {
            name: call.name.clone(),
            arguments,
        },
        extra,
    }
}

fn block_type(block: &ContentBlock) -> &str {
    match block {
        ContentBlock::Text(_) => "text",
        ContentBlock::Image(_) => "image",
        ContentBlock::Document(_) => "document",
        ContentBlock::ToolUse(_) => "tool_use",
        ContentBlock::ToolResult(_) => "tool_result",
        ContentBlock::Thinking(_) => "thinking",
        ContentBlock::RedactedThinking(_) => "redacted_thinking",
        ContentBlock::Other(obj) => obj.get("type").and_then(Value::as_str).unwrap_or("?"),
    }
}

/// The error for a block kept as [`ContentBlock::Other`]: an unknown `type`, or a known type
/// whose fields are wrong (reported at the field's path).
fn bad_block(obj: &JsonObject, path: &str) -> Error {
    let Some(kind) = obj.get("type").and_then(Value::as_str) else {
        return Error::invalid_param(
            format!("{path}.type"),
            format!("Missing required parameter: `{path}.type`."),
        );
    };
    if KNOWN_BLOCKS.contains(&kind)
        && let Some(err) = strict_error::<StrictBlock>(obj, path)
    {
        return err;
    }
    Error::invalid_param(
        format!("{path}.type"),
        format!(
            "`{path}.type` is `{kind}`; the gateway supports text, image, document, tool_use, tool_result, thinking and redacted_thinking blocks"
        ),
    )
}

/// What is wrong with `obj` as a `T`, at the path of the field at fault under `path`.
fn strict_error<T: serde::de::DeserializeOwned>(obj: &JsonObject, path: &str) -> Option<Error> {
    let value = Value::Object(obj.clone());
    let e = serde_path_to_error::deserialize::<_, T>(&value).err()?;
    let inner = e.path().to_string();
    let message = e.into_inner().to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let param = match (missing, inner.as_str()) {
        (Some(field), ".") => format!("{path}.{field}"),
        (Some(field), parent) => format!("{path}.{parent}.{field}"),
        (None, ".") => path.to_owned(),
        (None, p) => format!("{path}.{p}"),
    };
    Some(if missing.is_some() {
        Error::invalid_param(&param, format!("Missing required parameter: `{param}`."))
    } else {
        Error::invalid_param(&param, format!("Invalid value for `{param}`: {message}"))
    })
}
