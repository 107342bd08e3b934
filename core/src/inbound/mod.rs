//! Inbound formats: request and response shapes other than OpenAI Chat Completions that the
//! gateway accepts. Each is translated to the canonical request, served by the same routing
//! ([`Gateway::chat`](crate::Gateway::chat) / [`Gateway::chat_stream`](crate::Gateway::chat_stream)),
//! and the canonical answer is translated back, so any provider can sit behind any inbound shape.
//!
//! - [`anthropic`]: the Anthropic Messages API (`POST /v1/messages`), with
//!   [`Gateway::messages`](crate::Gateway::messages) and
//!   [`Gateway::messages_stream`](crate::Gateway::messages_stream).
//! - [`responses`]: the OpenAI Responses API (`POST /v1/responses`), passed through to providers
//!   that have it and translated for the others, with
//!   [`Gateway::responses`](crate::Gateway::responses) and
//!   [`Gateway::responses_stream`](crate::Gateway::responses_stream).

pub mod anthropic;
pub mod responses;
