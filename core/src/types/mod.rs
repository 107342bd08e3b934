//! The OpenAI Chat Completions shape, with the spec's names, plus opengateway's extensions
//! (`provider`, `usage.cost`, `reasoning_content`, request-level `models`).
//!
//! Every struct keeps the fields it does not model in `extra`, so a request or response passes
//! through unchanged. Fields the spec marks required-but-nullable (`message.content`,
//! `finish_reason`, `choice.logprobs`) are always written, `null` when empty; fields where the
//! wire shows both an absent key and an explicit `null` use [`Nullable`] so both survive.

mod error_body;
mod request;
mod response;
mod stream;
mod usage;

pub use error_body::{ErrorBody, ErrorObject};
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
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes a float that holds an integer as a JSON integer, so `1` sent by a client is
    /// forwarded as `1` and not `1.0`.
    pub fn ser_f64<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => s.serialize_i64(*x as i64),
            Some(x) => s.serialize_f64(*x),
            None => s.serialize_none(),
        }
    }

    /// Reads a tri-state field: absent stays `None` (via `default`), `null` becomes `Some(None)`.
    pub fn de_nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
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

/// Reads a JSON request body as `T`; a decoding error is a 400 naming the field at fault
/// (`param`), so every surface (server, bindings) reports bad fields the same way.
pub fn from_json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> crate::Result<T> {
    use crate::error::{Error, ErrorKind};
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return Error::new(
                ErrorKind::BadRequest,
                format!("The request body is not valid JSON: {inner}"),
            );
        }
        let message = inner.to_string();
        // serde reports a missing field at its parent; name the field itself.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        let missing_field = missing.is_some();
        let param = match (missing, path.as_str()) {
            (Some(field), ".") => field,
            (Some(field), parent) => format!("{parent}.{field}"),
            (None, p) => p.to_owned(),
        };
        let message = if missing_field {
            format!("Missing required parameter: `{param}`.")
        } else if param == "." || param.is_empty() {
            format!("Invalid request body: {message}")
        } else {
            format!("Invalid value for `{param}`: {message}")
        };
        let err = Error::new(ErrorKind::BadRequest, message);
        if param == "." || param.is_empty() {
            err
        } else {
            err.with_param(param)
        }
    })
}

#[cfg(test)]
mod body_tests {
    use super::*;

    #[test]
    fn from_json_body_names_the_field_at_fault() {
        let err = from_json_body::<ChatCompletionRequest>(
            br#"{"model": "m", "messages": [], "temperature": "hot"}"#,
        )
        .unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(err.param(), Some("temperature"));
        assert!(err.message().contains("`temperature`"), "{}", err.message());

        let err = from_json_body::<ChatCompletionRequest>(br#"{"messages": []}"#).unwrap_err();
        assert_eq!(err.param(), Some("model"));
        assert!(err.message().starts_with("Missing required parameter"));

        let err = from_json_body::<ChatCompletionRequest>(b"{not json").unwrap_err();
        assert_eq!(err.param(), None);
        assert!(err.message().contains("not valid JSON"));

        let ok = from_json_body::<ChatCompletionRequest>(br#"{"model": "m", "messages": []}"#);
        assert_eq!(ok.map(|r| r.model).ok().as_deref(), Some("m"));
    }
}
