//! `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`: the Google AI
//! Studio (Gemini) face of the fake model.

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::{
    MockState, directives,
    engine::{
        self, Answer, Choice, MAX_FANOUT, Pacing, Prompt, Reply, Tool, Usage, UsagePins, knob_bool,
    },
    replay,
    wire::{self, Format, Piece, sleep_ms},
};

/// The `thoughtSignature` of the first function call part (base64 of "signature").
const THOUGHT_SIGNATURE: &str = "c2lnbmF0dXJl";
/// Content type of JSON answers, as Google writes it.
const JSON: &str = "application/json; charset=UTF-8";

/// Answers `{model}:generateContent` / `:streamGenerateContent`, with the directives applied.
pub(crate) async fn generate(
    State(state): State<MockState>,
    Path(target): Path<String>,
    RawQuery(query): RawQuery,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    let format = Format::Gemini;
    let Some((model, method)) = target.rsplit_once(':') else {
        return not_found(&target);
    };
    if matches!(method, "batchEmbedContents" | "embedContent") {
        let batch = method == "batchEmbedContents";
        return crate::embeddings::gemini(state, model, batch, &headers, &body).await;
    }
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return not_found(&target),
    };
    let sse = stream
        && query
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .any(|pair| pair == "alt=sse");
    // Google answers a failed `alt=sse` request with a bare JSON error labelled as a stream.
    let error = |response: Response| {
        if sse {
            as_event_stream(response)
        } else {
            response
        }
    };
    let (base, knobs) = match directives::knobs(model, &headers, None) {
        Ok(parsed) => parsed,
        Err(message) => return error(format.bad_request(&message)),
    };
    let pacing = Pacing::of(&knobs, state.config());
    if let Some(response) = replay::serve(&state, format, base, &pacing).await {
        return response;
    }
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(request)) => request,
        Ok(_) => return error(format.bad_request("The request body must be a JSON object.")),
        Err(err) => {
            let message = format!("Invalid JSON payload received. {err}");
            return error(format.bad_request(&message));
        }
    };
    let Some(contents) = request.get("contents").and_then(Value::as_array) else {
        let message = "* GenerateContentRequest.contents: contents is not specified";
        return error(format.bad_request(message));
    };

    sleep_ms(pacing.first_byte_delay_ms).await;
    if let Some(status) = engine::scripted_status(&state, &knobs) {
        return error(format.failure(status, &knobs));
    }

    let prompt = prompt(&request, contents);
    let answer = engine::answer(&state, &prompt, &knobs, "call_mock_");
    let candidates = request
        .get("generationConfig")
        .and_then(|config| config.get("candidateCount"))
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, MAX_FANOUT) as usize;
    let reply = Rendering {
        response_id: format!("mock-{}", state.next_completion()),
        model,
        prompt_tokens: prompt.prompt_tokens,
        candidates,
        answer: &answer,
        pins: UsagePins::of(&knobs),
    };
    if !stream {
        let body = serde_json::to_string_pretty(&reply.whole()).unwrap_or_default();
        return wire::answer_body(body, JSON, &knobs);
    }
    let chunks = reply.chunks(pacing.chunks);
    let events: Vec<String> = if knob_bool(&knobs, "stream_error") {
        // Cut after the first piece with an error in Google's envelope.
        let overloaded = Format::Gemini.error_body(
            StatusCode::SERVICE_UNAVAILABLE,
            "The model is overloaded. Please try again later.",
        );
        let first = chunks.first().map(|chunk| reply.chunk_json(chunk, None));
        first
            .into_iter()
            .chain([overloaded])
            .map(|event| event.to_string())
            .collect()
    } else if knob_bool(&knobs, "truncate") {
        let keep = chunks.len().div_ceil(2);
        chunks[..keep]
            .iter()
            .map(|chunk| reply.chunk_json(chunk, None).to_string())
            .collect()
    } else {
        let last = chunks.len().saturating_sub(1);
        let finish = reply.finish_reason();
        chunks
            .iter()
            .enumerate()
            .map(|(at, chunk)| {
                let finish = (at == last).then_some(finish);
                reply.chunk_json(chunk, finish).to_string()
            })
            .collect()
    };
    let closed = !knob_bool(&knobs, "truncate");
    let mut pieces = if sse {
        sse_pieces(events, knob_bool(&knobs, "malformed"))
    } else {
        array_pieces(events, closed, knob_bool(&knobs, "malformed"))
    };
    wire::apply_drop_after(&mut pieces, &knobs);
    let content_type = if sse { "text/event-stream" } else { JSON };
    wire::stream_response(pieces, pacing.chunk_delay_ms, content_type)
}

/// The 404 for an unknown model method, in Google's shape.
fn not_found(target: &str) -> Response {
    let message = format!(
        "models/{target} is not found for API version v1beta, or is not supported. The mock \
         serves :generateContent, :streamGenerateContent, :batchEmbedContents and :embedContent."
    );
    Format::Gemini.error(StatusCode::NOT_FOUND, &message)
}

fn as_event_stream(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// The request in the fake model's terms.
fn prompt<'a>(request: &'a Map<String, Value>, contents: &'a [Value]) -> Prompt<'a> {
    let system = request
        .get("systemInstruction")
        .or_else(|| request.get("system_instruction"))
        .map(part_texts)
        .unwrap_or_default();
    let is_user = |content: &&Value| {
        matches!(
            content.get("role").and_then(Value::as_str),
            None | Some("user")
        )
    };
    let last_user_text = contents
        .iter()
        .rev()
        .filter(is_user)
        .map(part_texts)
        .find(|texts| !texts.is_empty())
        .map(|texts| texts.join(" "))
        .unwrap_or_default();
    let awaits_answer = contents.last().is_some_and(|content| {
        is_user(&content)
            && !parts(content).any(|part| {
                part.get("functionResponse").is_some() || part.get("function_response").is_some()
            })
    });
    let tools = request
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tool| {
            tool.get("functionDeclarations")
                .or_else(|| tool.get("function_declarations"))
                .and_then(Value::as_array)
        })
        .flatten()
        .filter_map(|declaration| {
            Some(Tool {
                name: declaration.get("name")?.as_str()?,
                schema: declaration
                    .get("parameters")
                    .or_else(|| declaration.get("parametersJsonSchema")),
            })
        })
        .collect();
    let calling = request
        .get("toolConfig")
        .and_then(|config| config.get("functionCallingConfig"));
    let mode = calling
        .and_then(|config| config.get("mode"))
        .and_then(Value::as_str)
        .unwrap_or("AUTO");
    let choice = if mode.eq_ignore_ascii_case("NONE") {
        Choice::None
    } else if mode.eq_ignore_ascii_case("ANY") {
        calling
            .and_then(|config| config.pointer("/allowedFunctionNames/0"))
            .and_then(Value::as_str)
            .map_or(Choice::Auto, Choice::Named)
    } else {
        Choice::Auto
    };
    let config = request.get("generationConfig");
    let texts = system
        .iter()
        .copied()
        .chain(contents.iter().flat_map(part_texts));
    Prompt {
        last_user_text,
        prompt_tokens: engine::prompt_tokens(texts, contents.len()),
        awaits_answer,
        tools,
        choice,
        max_tokens: config
            .and_then(|config| config.get("maxOutputTokens"))
            .and_then(Value::as_u64)
            .map(|limit| limit as usize),
        thinking: config
            .and_then(|config| config.pointer("/thinkingConfig/includeThoughts"))
            .and_then(Value::as_bool)
            == Some(true),
    }
}

fn parts(content: &Value) -> impl Iterator<Item = &Value> {
    content
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The `text` of each part of a content (thought parts left out).
fn part_texts(content: &Value) -> Vec<&str> {
    parts(content)
        .filter(|part| part.get("thought").and_then(Value::as_bool) != Some(true))
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect()
}

/// One streamed piece: the parts it adds and the output tokens counted up to it.
struct Chunk {
    parts: Vec<Value>,
    candidates_tokens: usize,
    thoughts_tokens: usize,
}

/// One answer, ready to be rendered whole or as stream pieces.
struct Rendering<'a> {
    response_id: String,
    model: &'a str,
    prompt_tokens: usize,
    candidates: usize,
    answer: &'a Answer,
    /// The usage knobs.
    pins: UsagePins,
}

impl Rendering<'_> {
    fn finish_reason(&self) -> &'static str {
        match &self.answer.reply {
            Reply::Text {
                truncated: true, ..
            } => "MAX_TOKENS",
            Reply::Text { .. } | Reply::Tools(_) => "STOP",
        }
    }

    /// The computed usage once this many tokens of one candidate's reply and thoughts are out.
    fn computed(&self, candidates_tokens: usize, thoughts_tokens: usize) -> Usage {
        Usage::computed(
            self.prompt_tokens,
            candidates_tokens * self.candidates,
            thoughts_tokens * self.candidates,
        )
    }

    /// `usageMetadata` for output counted so far, usage knobs applied: a pinned output count is
    /// reached on the piece that completes that output.
    fn usage(&self, candidates_tokens: usize, thoughts_tokens: usize) -> Value {
        let whole = self.computed(self.answer.reply_tokens(), self.answer.thinking_tokens());
        let so_far = self.computed(candidates_tokens, thoughts_tokens);
        self.pins.apply_partial(so_far, whole).gemini()
    }

    fn response(&self, parts: &[Value], finish: Option<&str>, usage: Value) -> Value {
        let candidates: Vec<Value> = (0..self.candidates)
            .map(|index| {
                let mut candidate =
                    json!({"content": {"role": "model", "parts": parts}, "index": index});
                if let Some(finish) = finish {
                    candidate["finishReason"] = json!(finish);
                }
                candidate
            })
            .collect();
        json!({
            "candidates": candidates,
            "usageMetadata": usage,
            "modelVersion": self.model,
            "responseId": self.response_id
        })
    }

    fn reply_parts(&self) -> Vec<Value> {
        match &self.answer.reply {
            Reply::Text { content, .. } => vec![json!({"text": content})],
            Reply::Tools(calls) => calls
                .iter()
                .enumerate()
                .map(|(at, call)| {
                    let mut part =
                        json!({"functionCall": {"name": call.name, "args": call.arguments_json()}});
                    // Gemini signs the first function call of a turn.
                    if at == 0 {
                        part["thoughtSignature"] = json!(THOUGHT_SIGNATURE);
                    }
                    part
                })
                .collect(),
        }
    }

    /// The whole (non-streamed) response.
    fn whole(&self) -> Value {
        let mut parts = Vec::new();
        if let Some(thinking) = &self.answer.thinking {
            parts.push(json!({"text": thinking, "thought": true}));
        }
        parts.extend(self.reply_parts());
        let usage = self.usage(self.answer.reply_tokens(), self.answer.thinking_tokens());
        self.response(&parts, Some(self.finish_reason()), usage)
    }

    /// The stream's pieces: thought pieces, then text pieces or all function calls at once.
    fn chunks(&self, chunks: Option<usize>) -> Vec<Chunk> {
        let mut out = Vec::new();
        let mut thoughts_so_far = String::new();
        if let Some(thinking) = &self.answer.thinking {
            for piece in engine::word_pieces(thinking) {
                thoughts_so_far.push_str(piece);
                out.push(Chunk {
                    parts: vec![json!({"text": piece, "thought": true})],
                    candidates_tokens: 0,
                    thoughts_tokens: thoughts_so_far.split_whitespace().count(),
                });
            }
        }
        let thoughts_tokens = self.answer.thinking_tokens();
        match &self.answer.reply {
            Reply::Text { content, .. } => {
                let mut so_far = String::new();
                for piece in engine::text_pieces(content, chunks) {
                    so_far.push_str(piece);
                    out.push(Chunk {
                        parts: vec![json!({"text": piece})],
                        candidates_tokens: so_far.split_whitespace().count(),
                        thoughts_tokens,
                    });
                }
                if content.is_empty() {
                    out.push(Chunk {
                        parts: vec![json!({"text": ""})],
                        candidates_tokens: 0,
                        thoughts_tokens,
                    });
                }
            }
            Reply::Tools(_) => out.push(Chunk {
                parts: self.reply_parts(),
                candidates_tokens: self.answer.reply_tokens(),
                thoughts_tokens,
            }),
        }
        out
    }

    fn chunk_json(&self, chunk: &Chunk, finish: Option<&str>) -> Value {
        let usage = self.usage(chunk.candidates_tokens, chunk.thoughts_tokens);
        self.response(&chunk.parts, finish, usage)
    }
}

/// `data: <json>\r\n\r\n` per event, like Google; no `[DONE]`.
fn sse_pieces(mut events: Vec<String>, malformed: bool) -> Vec<Piece> {
    if malformed {
        let at = (events.len() / 2).clamp(1, events.len());
        events.insert(at, "{not json".to_owned());
    }
    events
        .into_iter()
        .map(|event| Piece::text(format!("data: {event}\r\n\r\n")))
        .collect()
}

/// A JSON array written one element at a time; `closed` sends the final `]`.
fn array_pieces(mut events: Vec<String>, closed: bool, malformed: bool) -> Vec<Piece> {
    if malformed {
        let at = (events.len() / 2).clamp(1, events.len());
        events.insert(at, "{not json".to_owned());
    }
    let mut pieces: Vec<Piece> = events
        .into_iter()
        .enumerate()
        .map(|(at, event)| {
            let lead = if at == 0 { "[" } else { ",\r\n" };
            Piece::text(format!("{lead}{event}"))
        })
        .collect();
    if closed {
        pieces.push(Piece::text("]".to_owned()));
    }
    pieces
}
