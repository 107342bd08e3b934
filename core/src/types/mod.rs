//! The OpenAI Chat Completions shape, with the spec's names, plus opengateway's extensions
//! (`provider`, `usage.cost`, `reasoning_content`, request-level `models`).
//!
//! Every struct keeps the fields it does not model in `extra`, so a request or response passes
//! through unchanged. Fields the spec marks required-but-nullable (`message.content`,
//! `finish_reason`, `choice.logprobs`) are always written, `null` when empty; fields where the
//! wire shows both an absent key and an explicit `null` use [`Nullable`] so both survive.

mod embeddings;
mod error_body;
pub(crate) mod json;
mod request;
mod response;
mod stream;
mod usage;
pub(crate) mod with_extra;

pub use embeddings::*;
pub use error_body::{ErrorBody, ErrorObject};
pub use json::from_json;
pub use request::*;
pub use response::*;
pub use stream::*;
pub use usage::*;

/// A field that tells an absent key (`None`) from an explicit `null` (`Some(None)`).
pub type Nullable<T> = Option<Option<T>>;

/// Free-form JSON object used for fields that are passed through untouched.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// serde helpers shared by the type modules.
pub(crate) mod serde_helpers {
    use serde::Serializer;

    /// Writes a float that holds an integer as a JSON integer, so `1` sent by a client is
    /// forwarded as `1` and not `1.0`.
    pub fn ser_f64<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => s.serialize_i64(*x as i64),
            Some(x) => s.serialize_f64(*x),
            None => s.serialize_none(),
        }
    }

    /// Writes a tri-state field (only called when the key is present).
    pub fn ser_nullable<S, T>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: serde::Serialize,
    {
        match v {
            Some(Some(x)) => x.serialize(s),
            _ => s.serialize_none(),
        }
    }
}
