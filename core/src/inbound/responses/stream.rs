//! The stream translation: chat chunks to the Responses API's named events.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::response::{
    envelope, finish, item_status, new_id, output_text, reasoning_item, responses_usage,
};
use super::types::{ResponsesEvent, ResponsesRequest};
use crate::error::Error;
use crate::types::{ChatCompletionChunk, FinishReason, Usage};

/// The content part open in the message item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartKind {
    Text,
    Refusal,
}

#[derive(Debug)]
struct OpenMessage {
    index: usize,
    id: String,
    parts: Vec<Value>,
    open: Option<(PartKind, String)>,
}

#[derive(Debug)]
struct OpenCall {
    index: usize,
    id: String,
    call_id: String,
    name: String,
    arguments: String,
}

/// Turns a stream of chat chunks into the Responses API's events, each with its `type` and a
/// `sequence_number` counting from 0:
///
/// - `response.created` and `response.in_progress` first (the Response without output);
/// - `reasoning_content` deltas: a `reasoning` item (`output_item.added`,
///   `reasoning_summary_part.added`, `reasoning_summary_text.delta`…, then `…text.done`,
///   `…part.done`, `output_item.done`);
/// - `content` deltas: a `message` item with one `output_text` part (`output_item.added`,
///   `content_part.added`, `output_text.delta`…, `output_text.done`, `content_part.done`,
///   `output_item.done`); `refusal` deltas a `refusal` part (`refusal.delta`, `refusal.done`);
/// - tool-call deltas: one `function_call` item per chat `index` (`output_item.added` with
///   `call_id` and name, `function_call_arguments.delta`…, `…arguments.done`,
///   `output_item.done`). Calls stay open until the end, since OpenAI may interleave them.
/// - An item is closed when the kind of content changes; [`finish`](Self::finish) closes what
///   is open and sends `response.completed` (or `response.incomplete` when the finish reason
///   was `length` or `content_filter`) with the whole Response and its usage.
/// - [`on_error`](Self::on_error) sends an `error` event and `response.failed`, as OpenAI does
///   mid-stream, and the encoder ignores everything after it.
#[derive(Debug)]
pub struct ResponsesStreamEncoder {
    request: ResponsesRequest,
    response: Value,
    seq: u64,
    started: bool,
    ended: bool,
    items: Vec<Option<Value>>,
    reasoning: Option<(usize, String, String)>,
    message: Option<OpenMessage>,
    calls: BTreeMap<u32, OpenCall>,
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    provider: Option<String>,
}

impl ResponsesStreamEncoder {
    /// An encoder for a stream answering `request` (whose settings the Response echoes).
    pub fn new(request: ResponsesRequest) -> Self {
        ResponsesStreamEncoder {
            request,
            response: Value::Null,
            seq: 0,
            started: false,
            ended: false,
            items: Vec::new(),
            reasoning: None,
            message: None,
            calls: BTreeMap::new(),
            finish_reason: None,
            usage: None,
            provider: None,
        }
    }

    /// Whether the stream is over (after [`finish`](Self::finish) or an error).
    pub fn is_finished(&self) -> bool {
        self.ended
    }

    fn emit(&mut self, out: &mut Vec<ResponsesEvent>, mut data: Value) {
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.push(ResponsesEvent::from_value(&data));
    }

    fn start(&mut self, model: &str, out: &mut Vec<ResponsesEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        let model = if model.is_empty() {
            self.request.model.clone()
        } else {
            model.to_owned()
        };
        self.response = envelope(
            &self.request,
            &new_id("resp"),
            super::response::unix_now(),
            &model,
        );
        let response = self.response.clone();
        self.emit(
            out,
            json!({"type": "response.created", "response": response}),
        );
        self.emit(
            out,
            json!({"type": "response.in_progress", "response": response}),
        );
    }

    fn new_item(&mut self) -> usize {
        self.items.push(None);
        self.items.len() - 1
    }

    /// The events for one chunk.
    pub fn on_chunk(&mut self, chunk: &ChatCompletionChunk) -> Vec<ResponsesEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.start(&chunk.model, &mut out);
        if chunk.provider.is_some() {
            self.provider.clone_from(&chunk.provider);
        }
        if let Some(usage) = chunk.usage() {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return out;
        };
        let delta = &choice.delta;
        if let Some(text) = delta.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
            self.reasoning_delta(text, &mut out);
        }
        if let Some(Some(text)) = &delta.content
            && !text.is_empty()
        {
            self.message_delta(PartKind::Text, text, &mut out);
        }
        if let Some(Some(text)) = &delta.refusal
            && !text.is_empty()
        {
            self.message_delta(PartKind::Refusal, text, &mut out);
        }
        for call in delta.tool_calls.iter().flatten().flatten() {
            if !self.calls.contains_key(&call.index) {
                self.close_reasoning(&mut out);
                self.close_message(&mut out);
                let index = self.new_item();
                let function = call.function.as_ref();
                let open = OpenCall {
                    index,
                    id: new_id("fc"),
                    call_id: call.id.clone().unwrap_or_else(|| new_id("call")),
                    name: function.and_then(|f| f.name.clone()).unwrap_or_default(),
                    arguments: String::new(),
                };
                let item = json!({
                    "id": open.id, "type": "function_call", "status": "in_progress",
                    "call_id": open.call_id, "name": open.name, "arguments": "",
                });
                self.calls.insert(call.index, open);
                self.emit(
                    &mut out,
                    json!({"type": "response.output_item.added", "output_index": index, "item": item}),
                );
            }
            let Some(fragment) = call
                .function
                .as_ref()
                .and_then(|f| f.arguments.as_deref())
                .filter(|a| !a.is_empty())
            else {
                continue;
            };
            let Some(open) = self.calls.get_mut(&call.index) else {
                continue;
            };
            open.arguments.push_str(fragment);
            let event = json!({
                "type": "response.function_call_arguments.delta",
                "item_id": open.id, "output_index": open.index, "delta": fragment,
            });
            self.emit(&mut out, event);
        }
        if let Some(reason) = &choice.finish_reason {
            self.finish_reason = Some(reason.clone());
        }
        out
    }

    fn reasoning_delta(&mut self, text: &str, out: &mut Vec<ResponsesEvent>) {
        if self.reasoning.is_none() {
            self.close_message(out);
            let index = self.new_item();
            let id = new_id("rs");
            self.emit(
                out,
                json!({"type": "response.output_item.added", "output_index": index,
                       "item": {"id": id, "type": "reasoning", "summary": []}}),
            );
            self.emit(
                out,
                json!({"type": "response.reasoning_summary_part.added", "item_id": id,
                       "output_index": index, "summary_index": 0,
                       "part": {"type": "summary_text", "text": ""}}),
            );
            self.reasoning = Some((index, id, String::new()));
        }
        if let Some((index, id, so_far)) = &mut self.reasoning {
            so_far.push_str(text);
            let event = json!({"type": "response.reasoning_summary_text.delta", "item_id": id,
                               "output_index": *index, "summary_index": 0, "delta": text});
            self.emit(out, event);
        }
    }

    fn close_reasoning(&mut self, out: &mut Vec<ResponsesEvent>) {
        let Some((index, id, text)) = self.reasoning.take() else {
            return;
        };
        self.emit(
            out,
            json!({"type": "response.reasoning_summary_text.done", "item_id": id,
                   "output_index": index, "summary_index": 0, "text": text}),
        );
        self.emit(
            out,
            json!({"type": "response.reasoning_summary_part.done", "item_id": id,
                   "output_index": index, "summary_index": 0,
                   "part": {"type": "summary_text", "text": text}}),
        );
        let item = reasoning_item(&id, &text);
        self.items[index] = Some(item.clone());
        self.emit(
            out,
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        );
    }

    fn message_delta(&mut self, kind: PartKind, text: &str, out: &mut Vec<ResponsesEvent>) {
        if self.message.is_none() {
            self.close_reasoning(out);
            let index = self.new_item();
            let id = new_id("msg");
            self.emit(
                out,
                json!({"type": "response.output_item.added", "output_index": index,
                       "item": {"id": id, "type": "message", "status": "in_progress",
                                "role": "assistant", "content": []}}),
            );
            self.message = Some(OpenMessage {
                index,
                id,
                parts: Vec::new(),
                open: None,
            });
        }
        if self
            .message
            .as_ref()
            .is_some_and(|m| m.open.as_ref().is_some_and(|(k, _)| *k != kind))
        {
            self.close_part(out);
        }
        let Some(message) = &mut self.message else {
            return;
        };
        let (index, id, content_index) = (message.index, message.id.clone(), message.parts.len());
        let opening = message.open.is_none();
        let so_far = &mut message.open.get_or_insert_with(|| (kind, String::new())).1;
        so_far.push_str(text);
        if opening {
            let part = match kind {
                PartKind::Text => output_text(""),
                PartKind::Refusal => json!({"type": "refusal", "refusal": ""}),
            };
            self.emit(
                out,
                json!({"type": "response.content_part.added", "item_id": id,
                       "output_index": index, "content_index": content_index, "part": part}),
            );
        }
        let event = match kind {
            PartKind::Text => json!({"type": "response.output_text.delta", "item_id": id,
                "output_index": index, "content_index": content_index, "delta": text,
                "logprobs": []}),
            PartKind::Refusal => json!({"type": "response.refusal.delta", "item_id": id,
                "output_index": index, "content_index": content_index, "delta": text}),
        };
        self.emit(out, event);
    }

    fn close_part(&mut self, out: &mut Vec<ResponsesEvent>) {
        let Some(message) = &mut self.message else {
            return;
        };
        let Some((kind, text)) = message.open.take() else {
            return;
        };
        let (index, id, content_index) = (message.index, message.id.clone(), message.parts.len());
        let (done, part) = match kind {
            PartKind::Text => (
                json!({"type": "response.output_text.done", "item_id": id,
                       "output_index": index, "content_index": content_index, "text": text,
                       "logprobs": []}),
                output_text(&text),
            ),
            PartKind::Refusal => (
                json!({"type": "response.refusal.done", "item_id": id,
                       "output_index": index, "content_index": content_index,
                       "refusal": text}),
                json!({"type": "refusal", "refusal": text}),
            ),
        };
        message.parts.push(part.clone());
        self.emit(out, done);
        self.emit(
            out,
            json!({"type": "response.content_part.done", "item_id": id, "output_index": index,
                   "content_index": content_index, "part": part}),
        );
    }

    fn close_message(&mut self, out: &mut Vec<ResponsesEvent>) {
        self.close_part(out);
        let Some(message) = self.message.take() else {
            return;
        };
        let item = json!({
            "id": message.id, "type": "message", "role": "assistant",
            "status": item_status(self.finish_reason.as_ref()), "content": message.parts,
        });
        self.items[message.index] = Some(item.clone());
        self.emit(
            out,
            json!({"type": "response.output_item.done", "output_index": message.index, "item": item}),
        );
    }

    fn close_calls(&mut self, out: &mut Vec<ResponsesEvent>) {
        let status = item_status(self.finish_reason.as_ref());
        for (_, call) in std::mem::take(&mut self.calls) {
            self.emit(
                out,
                json!({"type": "response.function_call_arguments.done", "item_id": call.id,
                       "output_index": call.index, "name": call.name,
                       "arguments": call.arguments}),
            );
            let item = json!({
                "id": call.id, "type": "function_call", "status": status,
                "call_id": call.call_id, "name": call.name, "arguments": call.arguments,
            });
            self.items[call.index] = Some(item.clone());
            self.emit(
                out,
                json!({"type": "response.output_item.done", "output_index": call.index, "item": item}),
            );
        }
    }

    /// The closing events once the chat stream has ended: open items are closed and
    /// `response.completed` (or `response.incomplete`) carries the whole Response.
    pub fn finish(&mut self) -> Vec<ResponsesEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.start("", &mut out);
        self.close_reasoning(&mut out);
        self.close_message(&mut out);
        self.close_calls(&mut out);
        self.ended = true;
        let mut response = self.response.clone();
        response["output"] = Value::Array(self.items.iter().flatten().cloned().collect());
        finish(&mut response, self.finish_reason.as_ref());
        if let Some(usage) = &self.usage {
            response["usage"] = responses_usage(usage);
        }
        if let Some(provider) = &self.provider {
            response["provider"] = json!(provider);
        }
        let kind = if response["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(&mut out, json!({"type": kind, "response": response}));
        out
    }

    /// The events for a failure after the stream started: `error` (with the OpenAI error
    /// object both flat, as the spec has it, and under `error`, as OpenAI sends it and the
    /// SDKs raise on), then `response.failed`.
    pub fn on_error(&mut self, err: &Error) -> Vec<ResponsesEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.start("", &mut out);
        self.ended = true;
        self.emit(&mut out, error_event(err));
        let mut response = self.response.clone();
        response["status"] = json!("failed");
        response["output"] = Value::Array(self.items.iter().flatten().cloned().collect());
        response["error"] = json!({"code": failure_code(err), "message": err.message()});
        if let Some(usage) = &self.usage {
            response["usage"] = responses_usage(usage);
        }
        self.emit(
            &mut out,
            json!({"type": "response.failed", "response": response}),
        );
        out
    }
}

/// The `error` event's data for an error (without its sequence number).
pub(crate) fn error_event(err: &Error) -> Value {
    let body = err.to_body().error;
    let code = match &body.code {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Number(n)) => Value::String(n.to_string()),
        _ => Value::Null,
    };
    json!({
        "type": "error",
        "code": code,
        "message": body.message,
        "param": body.param,
        "error": {"type": body.kind, "code": code, "message": body.message, "param": body.param},
    })
}

/// The `ResponseErrorCode` closest to an error: the spec's codes cover only model-side
/// failures, so everything but a rate limit is a `server_error`.
fn failure_code(err: &Error) -> &'static str {
    if err.kind() == crate::ErrorKind::RateLimit {
        "rate_limit_exceeded"
    } else {
        "server_error"
    }
}
