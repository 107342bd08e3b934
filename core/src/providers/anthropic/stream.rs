//! The stream decoder: Anthropic's named events, turned into OpenAI chunks by a state machine.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::response::{
    AnthropicBlock, AnthropicErrorDetail, AnthropicUsage, anthropic_error, compact_input,
    finish_reason, non_empty,
};
use crate::error::{Error, ErrorKind, Result};
use crate::providers::{SseEvent, StreamContext, StreamDecoder};
use crate::types::{
    ChatCompletionChunk, ChunkChoice, Delta, FinishReason, FunctionCallDelta, JsonObject,
    ThinkingBlock, ToolCallDelta,
};

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
pub(super) struct AnthropicStreamDecoder {
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
    pub(super) fn new(provider: &str, context: StreamContext, created: u64) -> Self {
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
