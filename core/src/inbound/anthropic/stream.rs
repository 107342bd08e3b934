//! The stream translation: OpenAI chunks to Anthropic's named events.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::response::message_id;
use super::types::{AnthropicEvent, MessagesUsage, StopReason, direct_caller};
use crate::error::Error;
use crate::types::{ChatCompletionChunk, FinishReason, ThinkingBlock, Usage};

// -------------------------------------------------------------------------- stream encoding

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Thinking,
    Text,
    ToolUse,
}

/// Turns a stream of OpenAI chunks into Anthropic's named events.
///
/// - `message_start` comes first (with zero usage: OpenAI reports usage at the end).
/// - `reasoning_content` deltas are `thinking_delta`s of a `thinking` block. A `thinking_blocks`
///   delta (a whole block, sent when it ends) adds its signature as a `signature_delta` and
///   closes the thinking block; when no reasoning was streamed before it, the block's text is
///   sent as one `thinking_delta` first. A redacted block is a `redacted_thinking` block that
///   starts and stops at once.
/// - `content` (and `refusal`) deltas are `text_delta`s of a `text` block.
/// - Tool-call deltas open one `tool_use` block per OpenAI `index` (with id and name) and send
///   argument fragments as `input_json_delta`s. A fragment for a call whose block was already
///   closed (OpenAI interleaving parallel calls) is still sent, with that block's index, so the
///   SDKs' by-index accumulation stays right.
/// - A block is closed (`content_block_stop`) whenever the kind of content changes.
/// - [`finish`](Self::finish) closes the open block and sends `message_delta` (stop reason;
///   usage: output tokens, and input and cache tokens when the usage chunk gave them) and
///   `message_stop`.
/// - [`on_error`](Self::on_error) sends one `error` event, as Anthropic does mid-stream, and
///   the encoder ignores everything after it.
#[derive(Debug)]
pub struct MessagesStreamEncoder {
    model: String,
    started: bool,
    ended: bool,
    next_index: u32,
    open: Option<(u32, BlockKind)>,
    tool_blocks: HashMap<u32, u32>,
    finish_reason: Option<FinishReason>,
    refused: bool,
    usage: Option<Usage>,
}

impl MessagesStreamEncoder {
    /// An encoder for a stream answering `requested_model` (echoed as the message's `model`).
    pub fn new(requested_model: impl Into<String>) -> Self {
        MessagesStreamEncoder {
            model: requested_model.into(),
            started: false,
            ended: false,
            next_index: 0,
            open: None,
            tool_blocks: HashMap::new(),
            finish_reason: None,
            refused: false,
            usage: None,
        }
    }

    /// Whether the stream is over (after [`finish`](Self::finish) or an error).
    pub fn is_finished(&self) -> bool {
        self.ended
    }

    /// The events for one chunk.
    pub fn on_chunk(&mut self, chunk: &ChatCompletionChunk) -> Vec<AnthropicEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.start(&chunk.id, &mut out);
        if let Some(usage) = chunk.usage() {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return out;
        };
        let delta = &choice.delta;
        if let Some(reasoning) = delta.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
            let index = self.ensure_open(
                BlockKind::Thinking,
                &mut out,
                || json!({"type": "thinking", "thinking": "", "signature": ""}),
            );
            out.push(block_delta(
                index,
                json!({"type": "thinking_delta", "thinking": reasoning}),
            ));
        }
        for block in delta.thinking_blocks.iter().flatten() {
            self.thinking_block(block, &mut out);
        }
        if let Some(Some(text)) = &delta.content
            && !text.is_empty()
        {
            self.text(text, &mut out);
        }
        if let Some(Some(refusal)) = &delta.refusal
            && !refusal.is_empty()
        {
            self.refused = true;
            self.text(refusal, &mut out);
        }
        for call in delta.tool_calls.iter().flatten().flatten() {
            let index = match self.tool_blocks.get(&call.index) {
                Some(index) => *index,
                None => {
                    let function = call.function.as_ref();
                    let id = call
                        .id
                        .clone()
                        .unwrap_or_else(|| format!("toolu_{}", self.next_index));
                    let name = function.and_then(|f| f.name.clone()).unwrap_or_default();
                    self.close(&mut out);
                    let index = self.open_block(
                        BlockKind::ToolUse,
                        json!({"type": "tool_use", "id": id, "name": name, "input": {}, "caller": direct_caller()}),
                        &mut out,
                    );
                    self.tool_blocks.insert(call.index, index);
                    index
                }
            };
            if let Some(arguments) = call
                .function
                .as_ref()
                .and_then(|f| f.arguments.as_deref())
                .filter(|a| !a.is_empty())
            {
                out.push(block_delta(
                    index,
                    json!({"type": "input_json_delta", "partial_json": arguments}),
                ));
            }
        }
        if let Some(reason) = &choice.finish_reason {
            self.finish_reason = Some(reason.clone());
        }
        out
    }

    /// The events for an error that ended the stream: one `error` event.
    pub fn on_error(&mut self, err: &Error) -> Vec<AnthropicEvent> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        vec![AnthropicEvent::error(err)]
    }

    /// The closing events, once the chunks are over.
    pub fn finish(&mut self) -> Vec<AnthropicEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.start("", &mut out);
        self.close(&mut out);
        self.ended = true;
        let stop_reason = StopReason::from_finish(
            self.finish_reason.as_ref(),
            !self.tool_blocks.is_empty(),
            self.refused,
        );
        let mut usage = json!({
            "input_tokens": null,
            "cache_creation_input_tokens": null,
            "cache_read_input_tokens": null,
            "output_tokens": 0,
            "server_tool_use": null,
        });
        if let Some(u) = &self.usage {
            let m = MessagesUsage::from_usage(u);
            usage["input_tokens"] = m.input_tokens.into();
            usage["cache_creation_input_tokens"] = json!(m.cache_creation_input_tokens);
            usage["cache_read_input_tokens"] = json!(m.cache_read_input_tokens);
            usage["output_tokens"] = m.output_tokens.into();
            if let Some(cost) = m.cost {
                usage["cost"] = json!(cost);
            }
        }
        out.push(AnthropicEvent {
            name: "message_delta",
            data: json!({
                "type": "message_delta",
                "delta": {
                    "stop_reason": stop_reason,
                    "stop_sequence": null,
                    "stop_details": stop_reason.details(),
                    "container": null,
                },
                "usage": usage,
            }),
        });
        out.push(AnthropicEvent {
            name: "message_stop",
            data: json!({"type": "message_stop"}),
        });
        out
    }

    fn start(&mut self, id: &str, out: &mut Vec<AnthropicEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(AnthropicEvent {
            name: "message_start",
            data: json!({
                "type": "message_start",
                "message": {
                    "id": message_id(id),
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": self.model,
                    "stop_reason": null,
                    "stop_sequence": null,
                    "stop_details": null,
                    "usage": {
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "cache_creation_input_tokens": null,
                        "cache_read_input_tokens": null,
                        "cache_creation": null,
                        "server_tool_use": null,
                        "service_tier": null,
                        "inference_geo": null,
                    },
                    "container": null,
                },
            }),
        });
    }

    fn text(&mut self, text: &str, out: &mut Vec<AnthropicEvent>) {
        let index = self.ensure_open(
            BlockKind::Text,
            out,
            || json!({"type": "text", "text": "", "citations": null}),
        );
        out.push(block_delta(
            index,
            json!({"type": "text_delta", "text": text}),
        ));
    }

    fn thinking_block(&mut self, block: &ThinkingBlock, out: &mut Vec<AnthropicEvent>) {
        match block {
            ThinkingBlock::Thinking {
                thinking,
                signature,
            } => {
                let index = match self.open {
                    Some((index, BlockKind::Thinking)) => index,
                    _ => {
                        self.close(out);
                        let index = self.open_block(
                            BlockKind::Thinking,
                            json!({"type": "thinking", "thinking": "", "signature": ""}),
                            out,
                        );
                        if !thinking.is_empty() {
                            out.push(block_delta(
                                index,
                                json!({"type": "thinking_delta", "thinking": thinking}),
                            ));
                        }
                        index
                    }
                };
                if let Some(signature) = signature.as_deref().filter(|s| !s.is_empty()) {
                    out.push(block_delta(
                        index,
                        json!({"type": "signature_delta", "signature": signature}),
                    ));
                }
                self.close(out);
            }
            ThinkingBlock::RedactedThinking { data } => {
                self.close(out);
                // Redacted blocks are never "open": they carry no deltas.
                let index = self.next_index;
                self.next_index += 1;
                out.push(AnthropicEvent {
                    name: "content_block_start",
                    data: json!({
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "redacted_thinking", "data": data},
                    }),
                });
                out.push(block_stop(index));
            }
        }
    }

    /// The index of the open block of `kind`, opening one (and closing another) if needed.
    fn ensure_open(
        &mut self,
        kind: BlockKind,
        out: &mut Vec<AnthropicEvent>,
        start: impl FnOnce() -> Value,
    ) -> u32 {
        match self.open {
            Some((index, open)) if open == kind => index,
            _ => {
                self.close(out);
                self.open_block(kind, start(), out)
            }
        }
    }

    fn open_block(&mut self, kind: BlockKind, block: Value, out: &mut Vec<AnthropicEvent>) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        out.push(AnthropicEvent {
            name: "content_block_start",
            data: json!({"type": "content_block_start", "index": index, "content_block": block}),
        });
        index
    }

    fn close(&mut self, out: &mut Vec<AnthropicEvent>) {
        if let Some((index, _)) = self.open.take() {
            out.push(block_stop(index));
        }
    }
}

fn block_delta(index: u32, delta: Value) -> AnthropicEvent {
    AnthropicEvent {
        name: "content_block_delta",
        data: json!({"type": "content_block_delta", "index": index, "delta": delta}),
    }
}

fn block_stop(index: u32) -> AnthropicEvent {
    AnthropicEvent {
        name: "content_block_stop",
        data: json!({"type": "content_block_stop", "index": index}),
    }
}
