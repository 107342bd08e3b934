//! The `streamGenerateContent?alt=sse` decoder (the rules are in the `gemini` module docs,
//! under Streams).

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::response::{
    PartsSummary, bad_response, call_id, error_object, failed_call_error, from_value, generated_id,
    google_error, is_failed_call, map_finish_reason, map_logprobs, map_usage, rewrap, snippet,
    unix_now,
};
use super::wire::{GeminiResponse, GeminiUsage};
use crate::error::{Error, ErrorKind, Result};
use crate::providers::{SseEvent, StreamContext, StreamDecoder};
use crate::types::{
    ChatCompletionChunk, ChunkChoice, Delta, FinishReason, FunctionCallDelta, JsonObject,
    ToolCallDelta,
};

/// Per-choice state of a stream.
#[derive(Debug, Default)]
struct ChoiceState {
    started: bool,
    calls: u32,
    finished: bool,
}

/// Decodes `streamGenerateContent?alt=sse` events (see the module docs).
pub(super) struct GeminiStreamDecoder {
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
    /// A decoder for one stream from provider `provider`.
    pub(super) fn new(provider: String, context: StreamContext) -> Self {
        GeminiStreamDecoder {
            provider,
            context,
            id: None,
            created: unix_now(),
            model: String::new(),
            choices: BTreeMap::new(),
            calls_made: 0,
            usage: None,
        }
    }

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
