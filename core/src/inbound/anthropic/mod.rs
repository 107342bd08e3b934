//! The Anthropic Messages API as an inbound shape: requests, responses and stream events, the
//! three translations to and from the canonical OpenAI types, and the gateway entry points.
//!
//! API reference: <https://docs.claude.com/en/api/messages>
//!
//! # Translation decisions
//!
//! Request ([`to_chat_request`]):
//! - `system` (a string or text blocks) becomes one leading `system` message. Text blocks keep
//!   their other fields (`cache_control`, `citations`) in the OpenAI text part's `extra`. One
//!   plain block becomes plain text; anything else stays a list of parts, so nothing is lost.
//! - `image` blocks become `image_url` parts (base64 as a `data:` URL); `document` blocks with a
//!   base64 source become `file` parts (`file_data` as a `data:` URL, `title` as `filename`),
//!   plain-text documents become text parts. URL and content documents are refused by name.
//! - `tool_use` blocks become the assistant's `tool_calls` (`input` as a JSON string);
//!   `tool_result` blocks become one `tool` message each, placed *before* the rest of their user
//!   message because OpenAI wants tool results right after the assistant turn that called them.
//!   `is_error: true` is kept as `is_error` in the tool message's `extra` (lossless for
//!   adapters that can express it; the text itself is not changed).
//! - `thinking` / `redacted_thinking` blocks become the assistant's `reasoning_content` (thinking
//!   texts joined by newlines) and `thinking_blocks` (every block, in order; an empty
//!   `signature` is carried as no signature).
//! - Within one assistant message OpenAI keeps text and tool calls apart, so the relative order
//!   of text and `tool_use` blocks is not kept.
//! - `tools` become function tools (`input_schema` → `parameters`, `strict` kept, other fields such
//!   as `cache_control` in the tool's `extra`). Server tools (`web_search_…`, `bash_…`, …) have
//!   no OpenAI equivalent and are refused with a 400 naming `tools[i]`.
//! - `tool_choice`: `auto` → `auto`, `any` → `required`, `tool` → the named function, `none` →
//!   `none`; `disable_parallel_tool_use: true` → `parallel_tool_calls: false`.
//! - `max_tokens` → `max_completion_tokens`: it counts reasoning tokens like Anthropic's limit
//!   (which includes the thinking budget), and OpenAI's reasoning models refuse `max_tokens`.
//! - `stop_sequences` → `stop`; `temperature`, `top_p` as they are; `top_k` → `extra.top_k`;
//!   `metadata.user_id` → `user` (other metadata keys do not change the answer and are dropped).
//! - `thinking` is passed verbatim as `extra.thinking` (an Anthropic-family adapter uses it as
//!   it is) *and*, when `type` is `enabled`, mapped to `reasoning_effort` by budget:
//!   below 4096 → `low`, below 16384 → `medium`, else `high` (Claude Code's "think" = 4000,
//!   "think hard" = 10000 and "ultrathink" = 31999 land on low, medium and high).
//!   `output_config.effort` wins over the budget when both are given (`max` → `xhigh`).
//! - `output_config.format` (`json_schema`) → `response_format` `json_schema` named `output`
//!   (not strict: OpenAI's strict mode refuses schemas Anthropic accepts).
//! - `models` / `fallbacks` (opengateway's request-level fallbacks) are kept; any other unknown
//!   top-level field is passed through in `extra`, as on `/v1/chat/completions`.
//!
//! Response ([`from_chat_response`]): choice 0 only (the Anthropic shape has no `n`). Blocks in
//! order: thinking (from `thinking_blocks`; else `reasoning_content` as one thinking block with
//! `signature: ""`, which the spec allows and which marks it as unsigned), text (a refusal is
//! shown as text with `stop_reason: refusal`), then `tool_use`. Arguments that are not a JSON
//! object become `input: {}` and the raw text is kept in the block's `raw_arguments`, which
//! [`to_chat_request`] sends back verbatim if the block returns as history. Finish reasons:
//! `stop` → `end_turn` (whether a stop sequence matched is not knowable), `length` →
//! `max_tokens`, `tool_calls` → `tool_use`, `content_filter` → `refusal`. Usage:
//! `input_tokens` = prompt − cached − cache writes, `cache_read_input_tokens` = cached,
//! `cache_creation_input_tokens` = cache writes, `output_tokens` = completion tokens. Like the
//! OpenAI shape, the answer also carries opengateway's `provider` and `usage.cost`.
//!
//! Stream ([`MessagesStreamEncoder`]): see its documentation.

mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;
mod types;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde_json::{Value, json};

use crate::accounting::CallContext;
use crate::error::{Error, ErrorKind, Result};
use crate::types::StreamOptions;
use crate::{ChatStream, Gateway, Route, Routed};

pub use request::to_chat_request;
pub use response::from_chat_response;
pub use stream::MessagesStreamEncoder;
pub use types::{
    AnthropicEvent, ContentBlock, DocumentBlock, ImageBlock, InputContent, InputMessage,
    MediaSource, MessagesRequest, MessagesResponse, MessagesUsage, Metadata, OutputConfig,
    OutputFormat, RedactedThinkingParam, ResponseBlock, Role, StopReason, TextBlock, ThinkingParam,
    ToolChoiceParam, ToolDefinition, ToolResultBlock, ToolUseBlock,
};

// ----------------------------------------------------------------------------------- errors

/// Anthropic's `error.type` for an error kind.
///
/// Beyond the obvious pairs, 415 and 422 are `invalid_request_error` (Anthropic's class for
/// any other 4xx) and a timeout is `timeout_error` (in Anthropic's spec, for 504).
pub fn anthropic_error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest
        | ErrorKind::UnsupportedMediaType
        | ErrorKind::UnprocessableEntity => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::PermissionDenied => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::PayloadTooLarge => "request_too_large",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::ServiceUnavailable => "overloaded_error",
        ErrorKind::Timeout => "timeout_error",
        ErrorKind::Conflict | ErrorKind::Connection | ErrorKind::InternalServer => "api_error",
    }
}

/// The Anthropic error body for an error:
/// `{"type": "error", "error": {"type", "message"}, "request_id": null}`. The parameter at
/// fault, which the Anthropic shape has no field for, leads the message when the message does
/// not already name it.
pub fn anthropic_error_body(err: &Error) -> Value {
    let message = match err.param() {
        Some(param) if !err.message().contains(param) => format!("{param}: {}", err.message()),
        _ => err.message().to_owned(),
    };
    json!({
        "type": "error",
        "error": {"type": anthropic_error_type(err.kind()), "message": message},
        "request_id": null,
    })
}

// ----------------------------------------------------------------------- gateway entry points

/// A streamed Messages answer: Anthropic events, plus the route that was taken. It is exactly
/// the wire sequence: a failure after the stream started is the `error` event (as Anthropic
/// sends it) and the last item; [`error`](Self::error) then tells what it was. Dropping the
/// stream closes the upstream connection.
pub struct MessagesStream {
    route: Route,
    inner: ChatStream,
    encoder: MessagesStreamEncoder,
    pending: VecDeque<AnthropicEvent>,
    error: Option<Error>,
    done: bool,
}

impl std::fmt::Debug for MessagesStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagesStream")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl MessagesStream {
    /// Where the stream is served from and the attempts made before it started.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The id of the request's usage record.
    pub fn request_id(&self) -> &str {
        self.inner.request_id()
    }

    /// The failure that ended the stream, once its `error` event was produced.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }
}

impl Stream for MessagesStream {
    type Item = Result<AnthropicEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => this.pending.extend(this.encoder.on_chunk(&chunk)),
                Poll::Ready(Some(Err(e))) => {
                    this.pending.extend(this.encoder.on_error(&e));
                    this.error = Some(e);
                    this.done = true;
                }
                Poll::Ready(None) => {
                    this.pending.extend(this.encoder.finish());
                    this.done = true;
                }
            }
        }
    }
}

impl Gateway {
    /// Answers an Anthropic Messages request without streaming, through [`Gateway::chat`]: the
    /// same routing, fallback and accounting as a chat completion, whatever the provider.
    pub async fn messages(&self, request: MessagesRequest) -> Result<Routed<MessagesResponse>> {
        self.messages_with(request, &CallContext::default()).await
    }

    /// [`Gateway::messages`] for a caller: the key, user and tags the ledger records.
    pub async fn messages_with(
        &self,
        request: MessagesRequest,
        context: &CallContext,
    ) -> Result<Routed<MessagesResponse>> {
        let chat = to_chat_request(&request)?;
        let answer = self.chat_as(chat, context, "messages").await?;
        Ok(Routed {
            response: from_chat_response(&answer.response, &request.model),
            route: answer.route,
            request_id: answer.request_id,
        })
    }

    /// Answers an Anthropic Messages request as a stream of Anthropic events, through
    /// [`Gateway::chat_stream`]. Usage is always asked of the provider, so `message_delta`
    /// can carry it.
    pub async fn messages_stream(&self, request: MessagesRequest) -> Result<MessagesStream> {
        self.messages_stream_with(request, &CallContext::default())
            .await
    }

    /// [`Gateway::messages_stream`] for a caller (see [`Gateway::messages_with`]).
    pub async fn messages_stream_with(
        &self,
        request: MessagesRequest,
        context: &CallContext,
    ) -> Result<MessagesStream> {
        let mut chat = to_chat_request(&request)?;
        chat.stream = Some(true);
        chat.stream_options
            .get_or_insert_with(StreamOptions::default)
            .include_usage = Some(true);
        let inner = self.chat_stream_as(chat, context, "messages").await?;
        Ok(MessagesStream {
            route: inner.route().clone(),
            inner,
            encoder: MessagesStreamEncoder::new(request.model),
            pending: VecDeque::new(),
            error: None,
            done: false,
        })
    }
}
