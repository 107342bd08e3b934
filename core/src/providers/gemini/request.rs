//! OpenAI → Gemini request encoding: messages, tools, generation and thinking config, schema
//! cleaning (the rules are in the `gemini` module docs).

// ---------------------------------------------------------------------------------------------
// Request encoding
// ---------------------------------------------------------------------------------------------

use std::collections::HashMap;

use serde_json::{Value, json};

use super::DEFAULT_API_BASE;
use super::wire::{
    GeminiBlob, GeminiContent, GeminiFileData, GeminiFunctionCall, GeminiFunctionCallingConfig,
    GeminiFunctionDeclaration, GeminiFunctionResponse, GeminiGenerationConfig, GeminiPart,
    GeminiRequest, GeminiSystemInstruction, GeminiThinkingConfig, GeminiTool, GeminiToolConfig,
};
use crate::error::{Error, Result};
use crate::types::{
    ChatCompletionRequest, ChatMessage, ContentPart, FunctionCall, FunctionDefinition,
    FunctionKind, FunctionName, JsonObject, MessageContent, NamedToolChoice, ResponseFormat,
    ThinkingBlock, Tool, ToolChoice, ToolChoiceMode,
};

pub(super) fn encode_request(
    request: &ChatCompletionRequest,
    model: &str,
) -> Result<GeminiRequest> {
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
pub(super) fn clean_schema(schema: &Value) -> Value {
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
pub(super) fn uses_thinking_level(model: &str) -> bool {
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
