//! Request and response bodies, kept beside a request's record only when
//! `server.log_bodies` is on (prompts are often confidential, so by default nothing is kept).

use serde::{Deserialize, Serialize};

/// The bodies of one request, in the gateway's canonical shape (OpenAI Chat Completions) whatever
/// endpoint the request came through: the request as routed, and the answer as the caller got
/// it; for a stream, the JSON array of the chunks sent, followed by the error body when the
/// stream ended with one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestBodies {
    /// The request id (the record's id).
    pub id: String,
    /// The request body (JSON text).
    pub request: Option<String>,
    /// The response body (JSON text), when there was one.
    pub response: Option<String>,
}
