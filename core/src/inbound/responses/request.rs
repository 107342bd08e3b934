//! The request translation: a Responses API request to the canonical chat request.

use serde_json::Value;

use super::types::ResponsesRequest;
use crate::error::{Error, Result};
use crate::types::{
    AssistantMessage, ChatCompletionRequest, ChatMessage, ContentPart, FilePart, FileRef,
    FunctionCall, FunctionDefinition, FunctionKind, FunctionName, FunctionTool, ImageUrl,
    ImageUrlPart, JsonObject, JsonSchemaFormat, MessageContent, NamedToolChoice, ResponseFormat,
    SystemMessage, TextPart, Tool, ToolCall, ToolChoice, ToolChoiceMode, ToolMessage, UserMessage,
};

/// Top-level fields that need server-side state or a feature only OpenAI's own Responses API
/// has: refused by name when the request is translated, because dropping them would change
/// the answer.
const STATEFUL_FIELDS: &[(&str, &str)] = &[
    (
        "previous_response_id",
        "opengateway keeps no responses; send the whole conversation in `input` instead",
    ),
    (
        "conversation",
        "opengateway keeps no conversations; send the whole conversation in `input` instead",
    ),
    ("prompt", "stored prompt templates live at OpenAI"),
];

/// Top-level fields the translation reads, or knowingly leaves out because they do not change
/// the answer (`store`, `include`, `reasoning.summary`, caching and safety hints).
const HANDLED_FIELDS: &[&str] = &[
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "text",
    "reasoning",
    "max_output_tokens",
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "metadata",
    "user",
    "store",
    "stream_options",
    "include",
    "truncation",
    "background",
    "top_logprobs",
    "max_tool_calls",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
];

/// Translates a Responses request into the canonical chat request, for providers without a
/// Responses API of their own. What cannot be expressed as a chat request (built-in tools,
/// server-side state, uploaded file ids, ...) is a 400 naming the field.
pub fn to_chat_request(request: &ResponsesRequest) -> Result<ChatCompletionRequest> {
    for (name, why) in STATEFUL_FIELDS {
        if request.field(name).is_some() {
            return Err(untranslatable(name, why));
        }
    }
    if request.field("background").and_then(Value::as_bool) == Some(true) {
        return Err(untranslatable(
            "background",
            "background responses need server-side state, which opengateway does not keep",
        ));
    }
    let mut chat = planning_request(request);
    chat.messages.clear();
    if let Some(instructions) = request.field("instructions") {
        let text = as_str(instructions, "instructions")?;
        chat.messages.push(ChatMessage::Developer(SystemMessage {
            content: MessageContent::Text(text.to_owned()),
            name: None,
            extra: JsonObject::new(),
        }));
    }
    match request.field("input") {
        None => return Err(Error::invalid_param("input", "`input` is required")),
        Some(Value::String(text)) => chat.messages.push(ChatMessage::user(text.clone())),
        Some(Value::Array(items)) => Messages::default().build(items, &mut chat.messages)?,
        Some(_) => {
            return Err(Error::invalid_param(
                "input",
                "`input` must be a string or an array of input items",
            ));
        }
    }
    if let Some(tools) = request.field("tools") {
        let Value::Array(tools) = tools else {
            return Err(Error::invalid_param("tools", "`tools` must be an array"));
        };
        let mut out = Vec::with_capacity(tools.len());
        for (i, tool) in tools.iter().enumerate() {
            out.push(function_tool(tool, &format!("tools[{i}]"))?);
        }
        if !out.is_empty() {
            chat.tools = Some(out);
        }
    }
    if let Some(choice) = request.field("tool_choice") {
        chat.tool_choice = Some(tool_choice(choice)?);
    }
    if let Some(text) = request.field("text") {
        if let Some(format) = text.get("format").filter(|f| !f.is_null()) {
            chat.response_format = response_format(format)?;
        }
        if let Some(verbosity) = text.get("verbosity").filter(|v| !v.is_null()) {
            chat.extra.insert("verbosity".to_owned(), verbosity.clone());
        }
    }
    if let Some(effort) = request
        .field("reasoning")
        .and_then(|r| r.get("effort"))
        .filter(|e| !e.is_null())
    {
        chat.reasoning_effort = Some(as_str(effort, "reasoning.effort")?.to_owned());
    }
    chat.temperature = number(request, "temperature")?;
    chat.top_p = number(request, "top_p")?;
    if let Some(v) = request.field("parallel_tool_calls") {
        chat.parallel_tool_calls = Some(v.as_bool().ok_or_else(|| {
            Error::invalid_param(
                "parallel_tool_calls",
                "`parallel_tool_calls` must be a boolean",
            )
        })?);
    }
    if let Some(n) = request.field("top_logprobs").and_then(Value::as_u64)
        && n > 0
    {
        return Err(untranslatable(
            "top_logprobs",
            "log probabilities are not translated to the Responses shape",
        ));
    }
    for (key, value) in &request.body {
        if !HANDLED_FIELDS.contains(&key.as_str()) && !value.is_null() {
            chat.extra.insert(key.clone(), value.clone());
        }
    }
    Ok(chat)
}

/// A chat request with what routing, budgets and the ledger need (model, fallbacks, user,
/// metadata, output limit) and the input as one message for the prompt-size estimate. It
/// exists for every request, including one that cannot be translated but may be passed through.
pub(crate) fn planning_request(request: &ResponsesRequest) -> ChatCompletionRequest {
    let input = match request.field("input") {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    ChatCompletionRequest {
        model: request.model.clone(),
        models: request.models.clone(),
        session_id: request.session_id.clone(),
        timeout_ms: request.timeout_ms,
        ttft_timeout_ms: request.ttft_timeout_ms,
        messages: vec![ChatMessage::user(input)],
        max_completion_tokens: request
            .field("max_output_tokens")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
        user: request
            .field("user")
            .and_then(Value::as_str)
            .map(str::to_owned),
        metadata: request
            .field("metadata")
            .and_then(Value::as_object)
            .cloned(),
        ..Default::default()
    }
}

fn untranslatable(param: &str, why: &str) -> Error {
    Error::invalid_param(
        param,
        format!(
            "`{param}` cannot be translated for a provider without the OpenAI Responses API: {why}"
        ),
    )
}

fn as_str<'a>(value: &'a Value, path: &str) -> Result<&'a str> {
    value
        .as_str()
        .ok_or_else(|| Error::invalid_param(path, format!("`{path}` must be a string")))
}

fn number(request: &ResponsesRequest, name: &str) -> Result<Option<f64>> {
    match request.field(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| Error::invalid_param(name, format!("`{name}` must be a number"))),
    }
}

fn item_type<'a>(item: &'a Value, path: &str) -> Result<&'a str> {
    match item.get("type") {
        None | Some(Value::Null) => Ok(""),
        Some(t) => as_str(t, &format!("{path}.type")),
    }
}

/// Builds chat messages from input items. Consecutive assistant-side items (reasoning, an
/// assistant message, function calls) make one assistant message, as Chat Completions keeps a
/// turn's text, reasoning and tool calls together.
#[derive(Default)]
struct Messages {
    pending: Option<AssistantMessage>,
}

impl Messages {
    fn build(mut self, items: &[Value], out: &mut Vec<ChatMessage>) -> Result<()> {
        for (i, item) in items.iter().enumerate() {
            let path = format!("input[{i}]");
            if !item.is_object() {
                return Err(Error::invalid_param(
                    &path,
                    format!("`{path}` must be an input item object"),
                ));
            }
            match item_type(item, &path)? {
                "" | "message" => self.message(item, &path, out)?,
                "function_call" => {
                    let call = ToolCall {
                        id: required_str(item, "call_id", &path)?.to_owned(),
                        kind: FunctionKind::Function,
                        function: FunctionCall {
                            name: required_str(item, "name", &path)?.to_owned(),
                            arguments: required_str(item, "arguments", &path)?.to_owned(),
                        },
                        extra: JsonObject::new(),
                    };
                    self.assistant(out, |_| false)
                        .tool_calls
                        .get_or_insert_with(Vec::new)
                        .push(call);
                }
                "function_call_output" => {
                    self.flush(out);
                    let call_id = required_str(item, "call_id", &path)?.to_owned();
                    let content = tool_output(item.get("output"), &format!("{path}.output"))?;
                    out.push(ChatMessage::Tool(ToolMessage {
                        content,
                        tool_call_id: call_id,
                        extra: JsonObject::new(),
                    }));
                }
                "reasoning" => {
                    let text = reasoning_text(item);
                    if !text.is_empty() {
                        let m =
                            self.assistant(out, |m| m.content.is_some() || m.tool_calls.is_some());
                        match &mut m.reasoning_content {
                            Some(existing) => {
                                existing.push('\n');
                                existing.push_str(&text);
                            }
                            None => m.reasoning_content = Some(text),
                        }
                    }
                }
                "item_reference" => {
                    return Err(untranslatable(
                        &format!("{path}.type"),
                        "item references point at stored items, and opengateway keeps none",
                    ));
                }
                other => {
                    return Err(untranslatable(
                        &format!("{path}.type"),
                        &format!("`{other}` items belong to built-in tools"),
                    ));
                }
            }
        }
        self.flush(out);
        Ok(())
    }

    /// The assistant message being built; a new one when `full` says the current one cannot
    /// take the next item.
    fn assistant(
        &mut self,
        out: &mut Vec<ChatMessage>,
        full: impl Fn(&AssistantMessage) -> bool,
    ) -> &mut AssistantMessage {
        if self.pending.as_ref().is_some_and(&full) {
            self.flush(out);
        }
        self.pending.get_or_insert_with(AssistantMessage::default)
    }

    fn flush(&mut self, out: &mut Vec<ChatMessage>) {
        if let Some(mut m) = self.pending.take() {
            if m.content.is_none() {
                m.content = Some(None);
            }
            out.push(ChatMessage::Assistant(m));
        }
    }

    fn message(&mut self, item: &Value, path: &str, out: &mut Vec<ChatMessage>) -> Result<()> {
        let role = required_str(item, "role", path)?;
        let content_path = format!("{path}.content");
        let content = item.get("content").unwrap_or(&Value::Null);
        match role {
            "assistant" => {
                let mut refusal = None;
                let text = match content {
                    Value::String(s) => s.clone(),
                    Value::Array(parts) => {
                        let mut text = String::new();
                        for (j, part) in parts.iter().enumerate() {
                            let part_path = format!("{content_path}[{j}]");
                            match item_type(part, &part_path)? {
                                "output_text" | "input_text" | "text" => {
                                    text.push_str(required_str(part, "text", &part_path)?);
                                }
                                "refusal" => {
                                    refusal =
                                        Some(required_str(part, "refusal", &part_path)?.to_owned());
                                }
                                other => {
                                    return Err(Error::invalid_param(
                                        format!("{part_path}.type"),
                                        format!(
                                            "`{part_path}.type`: `{other}` parts are not allowed in assistant messages"
                                        ),
                                    ));
                                }
                            }
                        }
                        text
                    }
                    _ => {
                        return Err(Error::invalid_param(
                            &content_path,
                            format!("`{content_path}` must be a string or an array of parts"),
                        ));
                    }
                };
                let m = self.assistant(out, |m| m.content.is_some() || m.tool_calls.is_some());
                m.content = Some(Some(MessageContent::Text(text)));
                m.refusal = refusal;
            }
            "user" | "system" | "developer" => {
                self.flush(out);
                let content = user_content(content, &content_path, role != "user")?;
                out.push(match role {
                    "user" => ChatMessage::User(UserMessage {
                        content,
                        name: None,
                        extra: JsonObject::new(),
                    }),
                    "system" => ChatMessage::System(SystemMessage {
                        content,
                        name: None,
                        extra: JsonObject::new(),
                    }),
                    _ => ChatMessage::Developer(SystemMessage {
                        content,
                        name: None,
                        extra: JsonObject::new(),
                    }),
                });
            }
            other => {
                return Err(Error::invalid_param(
                    format!("{path}.role"),
                    format!(
                        "`{path}.role`: `{other}` is not a message role; use user, assistant, system or developer"
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn required_str<'a>(item: &'a Value, key: &str, path: &str) -> Result<&'a str> {
    let field = format!("{path}.{key}");
    match item.get(key) {
        None | Some(Value::Null) => Err(Error::invalid_param(
            &field,
            format!("`{field}` is required"),
        )),
        Some(v) => as_str(v, &field),
    }
}

/// The text of a reasoning item: its summary texts, else its reasoning texts, one per line.
fn reasoning_text(item: &Value) -> String {
    let texts = |key: &str| -> Vec<&str> {
        item.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect()
    };
    let summary = texts("summary");
    if summary.is_empty() {
        texts("content").join("\n")
    } else {
        summary.join("\n")
    }
}

/// The content of a user, system or developer message; `text_only` for the latter two.
fn user_content(content: &Value, path: &str, text_only: bool) -> Result<MessageContent> {
    let parts = match content {
        Value::String(s) => return Ok(MessageContent::Text(s.clone())),
        Value::Array(parts) => parts,
        _ => {
            return Err(Error::invalid_param(
                path,
                format!("`{path}` must be a string or an array of input parts"),
            ));
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let part_path = format!("{path}[{j}]");
        let kind = item_type(part, &part_path)?;
        if text_only && kind != "input_text" {
            return Err(Error::invalid_param(
                format!("{part_path}.type"),
                format!(
                    "`{part_path}.type`: only `input_text` parts are allowed in system and developer messages (got `{kind}`)"
                ),
            ));
        }
        out.push(input_part(part, kind, &part_path)?);
    }
    Ok(MessageContent::Parts(out))
}

fn input_part(part: &Value, kind: &str, path: &str) -> Result<ContentPart> {
    match kind {
        "input_text" => Ok(ContentPart::Text(TextPart {
            text: required_str(part, "text", path)?.to_owned(),
            extra: JsonObject::new(),
        })),
        "input_image" => {
            if part.get("file_id").is_some_and(|v| !v.is_null()) {
                return Err(untranslatable(
                    &format!("{path}.file_id"),
                    "uploaded files live at OpenAI; send the image as `image_url` (a URL or a data: URL)",
                ));
            }
            let url = required_str(part, "image_url", path)?.to_owned();
            let detail = part
                .get("detail")
                .and_then(Value::as_str)
                .map(str::to_owned);
            Ok(ContentPart::ImageUrl(ImageUrlPart {
                image_url: ImageUrl {
                    url,
                    detail,
                    extra: JsonObject::new(),
                },
                extra: JsonObject::new(),
            }))
        }
        "input_file" => {
            for key in ["file_id", "file_url"] {
                if part.get(key).is_some_and(|v| !v.is_null()) {
                    return Err(untranslatable(
                        &format!("{path}.{key}"),
                        "only inline files (`file_data`) can be sent to other providers",
                    ));
                }
            }
            let data = required_str(part, "file_data", path)?.to_owned();
            Ok(ContentPart::File(FilePart {
                file: FileRef {
                    file_data: Some(data),
                    file_id: None,
                    filename: part
                        .get("filename")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    extra: JsonObject::new(),
                },
                extra: JsonObject::new(),
            }))
        }
        other => Err(Error::invalid_param(
            format!("{path}.type"),
            format!(
                "`{path}.type`: `{other}` is not an input part type; use input_text, input_image or input_file"
            ),
        )),
    }
}

/// A function call's output: a string, or input parts of which only text can be a tool
/// result in Chat Completions.
fn tool_output(output: Option<&Value>, path: &str) -> Result<MessageContent> {
    match output {
        Some(Value::String(s)) => Ok(MessageContent::Text(s.clone())),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let part_path = format!("{path}[{j}]");
                let kind = item_type(part, &part_path)?;
                if kind != "input_text" {
                    return Err(untranslatable(
                        &format!("{part_path}.type"),
                        &format!(
                            "a tool result can only be text in Chat Completions (got `{kind}`)"
                        ),
                    ));
                }
                out.push(input_part(part, kind, &part_path)?);
            }
            Ok(MessageContent::Parts(out))
        }
        None | Some(Value::Null) => {
            Err(Error::invalid_param(path, format!("`{path}` is required")))
        }
        Some(_) => Err(Error::invalid_param(
            path,
            format!("`{path}` must be a string or an array of input parts"),
        )),
    }
}

fn function_tool(tool: &Value, path: &str) -> Result<Tool> {
    let kind = item_type(tool, path)?;
    if kind != "function" {
        return Err(untranslatable(
            path,
            &format!(
                "`{kind}` is a built-in tool of OpenAI; only function tools can be translated"
            ),
        ));
    }
    Ok(Tool::Function(FunctionTool {
        function: FunctionDefinition {
            name: required_str(tool, "name", path)?.to_owned(),
            description: tool
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parameters: tool.get("parameters").filter(|p| !p.is_null()).cloned(),
            strict: tool.get("strict").and_then(Value::as_bool),
            extra: JsonObject::new(),
        },
        extra: JsonObject::new(),
    }))
}

fn tool_choice(choice: &Value) -> Result<ToolChoice> {
    let path = "tool_choice";
    match choice {
        Value::String(mode) => match mode.as_str() {
            "none" => Ok(ToolChoice::Mode(ToolChoiceMode::None)),
            "auto" => Ok(ToolChoice::Mode(ToolChoiceMode::Auto)),
            "required" => Ok(ToolChoice::Mode(ToolChoiceMode::Required)),
            other => Err(Error::invalid_param(
                path,
                format!(
                    "`tool_choice`: `{other}` is not a tool choice; use none, auto or required"
                ),
            )),
        },
        Value::Object(_) => match item_type(choice, path)? {
            "function" => Ok(ToolChoice::Function(NamedToolChoice {
                kind: FunctionKind::Function,
                function: FunctionName {
                    name: required_str(choice, "name", path)?.to_owned(),
                },
            })),
            "allowed_tools" => {
                let mode = choice.get("mode").cloned().unwrap_or(Value::from("auto"));
                let mut tools = Vec::new();
                for (i, t) in choice
                    .get("tools")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let tool_path = format!("tool_choice.tools[{i}]");
                    if item_type(t, &tool_path)? != "function" {
                        return Err(untranslatable(
                            &tool_path,
                            "only function tools can be translated",
                        ));
                    }
                    let name = required_str(t, "name", &tool_path)?;
                    tools.push(serde_json::json!({"type": "function", "function": {"name": name}}));
                }
                let mut obj = JsonObject::new();
                obj.insert("type".to_owned(), Value::from("allowed_tools"));
                obj.insert(
                    "allowed_tools".to_owned(),
                    serde_json::json!({"mode": mode, "tools": tools}),
                );
                Ok(ToolChoice::Other(obj))
            }
            other => Err(untranslatable(
                path,
                &format!("`{other}` names a built-in tool of OpenAI"),
            )),
        },
        _ => Err(Error::invalid_param(
            path,
            "`tool_choice` must be a string or an object",
        )),
    }
}

fn response_format(format: &Value) -> Result<Option<ResponseFormat>> {
    let path = "text.format";
    match item_type(format, path)? {
        "text" => Ok(None),
        "json_object" => Ok(Some(ResponseFormat::JsonObject)),
        "json_schema" => Ok(Some(ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: required_str(format, "name", path)?.to_owned(),
                description: format
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                schema: format.get("schema").filter(|s| !s.is_null()).cloned(),
                strict: format.get("strict").and_then(Value::as_bool),
                extra: JsonObject::new(),
            },
        })),
        other => Err(Error::invalid_param(
            "text.format.type",
            format!(
                "`text.format.type` `{other}` is not a text format; use text, json_object or json_schema"
            ),
        )),
    }
}
