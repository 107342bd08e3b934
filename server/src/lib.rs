//! The opengateway server: a thin OpenAI-compatible HTTP layer over the core [`Gateway`].
//!
//! [`Gateway`]: opengateway::Gateway

pub mod admin;
pub mod admin_keys;
pub mod auth;
pub mod embeddings;
pub mod error;
pub mod messages;
pub mod responses;
pub mod routes;
pub mod serve;
mod sse;

pub use routes::app;
pub use serve::{Running, runtime, serve, start};
