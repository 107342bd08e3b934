//! opengateway: one OpenAI-compatible interface to every major LLM provider, in process.
//!
//! # Brief overview
//!
//! - [`types`] is the canonical request/response shape: OpenAI Chat Completions, with the
//!   fields it does not model kept in `extra` maps so nothing a client sends is lost.
//! - [`config::Config`] is the YAML configuration (providers, aliases, router, server).
//! - [`providers`] holds one adapter per API family; each is a pure translation between the
//!   canonical shape and the provider's wire format, with no I/O.
//! - [`Gateway`] resolves `provider/model` ids and aliases to ordered targets, sends through the
//!   pooled transport, and returns answers stamped with the provider and cost, and the route
//!   (every attempt) that produced them.
//! - [`inbound`] accepts other request shapes (the Anthropic Messages API) on top of the same
//!   routing: [`Gateway::messages`] and [`Gateway::messages_stream`].
//! - [`store`] opens and migrates the embedded SQLite file; [`accounting::SqliteSink`] keeps the
//!   usage ledger in it.
//! - [`keys`] holds the server's `ogw_` API keys (hashed) and their limits in the store.
//! - [`accounting`] records every request once in the usage ledger (memory, SQLite, or any
//!   [`accounting::LedgerSink`]), enforces budgets, and totals usage: [`Gateway::usage`],
//!   [`Gateway::on_request_end`], [`Gateway::chat_with`] for the key, user and tags of a call.
//! - [`metrics`] counts requests, errors, latency, tokens, cost, fallbacks and circuits for
//!   Prometheus: [`Gateway::metrics`] renders them.
//! - [`Error`] is OpenAI-shaped (`{"error": {message, type, param, code}}`) with a small
//!   [`ErrorKind`] that every surface maps once to its own error classes.
//!
//! ```no_run
//! # async fn demo() -> opengateway::Result<()> {
//! use opengateway::{Gateway, config::Config, types::{ChatCompletionRequest, ChatMessage}};
//! let gateway = Gateway::from_config(Config::from_yaml("providers: { openai: {} }").unwrap())?;
//! let request = ChatCompletionRequest {
//!     model: "openai/gpt-4o-mini".into(),
//!     messages: vec![ChatMessage::user("Hello!")],
//!     ..Default::default()
//! };
//! let answer = gateway.chat(request).await?;
//! println!("{:?} via {}", answer.choices[0].message.content, answer.route.provider);
//! # Ok(()) }
//! ```

/// The version of this crate, shared by the server and the bindings.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod accounting;
pub mod catalog;
pub mod config;
pub mod error;
mod gateway;
pub mod inbound;
pub mod keys;
pub mod metrics;
pub mod pricing;
pub mod providers;
pub mod router;
pub mod store;
mod transport;
pub mod types;

pub use accounting::{CallContext, UsageQuery, UsageRecord};
pub use error::{Attempt, Error, ErrorKind, Result};
pub use gateway::{
    ChatJson, ChatStream, Gateway, HealthReport, ModelEntry, ProviderHealth, Route, Routed, Target,
};
