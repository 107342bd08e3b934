//! Reading a request body (JSON text) into a typed request, with errors that name the field.

use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

/// Reads a JSON request body into `T`. A decoding error is a 400 whose `param` names the field
/// at fault (`messages[0].role`, or the missing field itself), as every surface reports it.
pub fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    from_slice_tracked(body).map_err(|(path, inner)| {
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
        if missing_field {
            Error::invalid_param(
                param.clone(),
                format!("Missing required parameter: `{param}`."),
            )
        } else if param == "." || param.is_empty() {
            Error::new(
                ErrorKind::BadRequest,
                format!("Invalid request body: {message}"),
            )
        } else {
            Error::invalid_param(
                param.clone(),
                format!("Invalid value for `{param}`: {message}"),
            )
        }
    })
}

/// Deserializes JSON text into `T`; on failure returns the path of the value at fault (`.`
/// for the root) with serde's error. Tracking the path costs an allocation per object key, so
/// it runs only after a plain decode failed: decoding is deterministic, so the second pass
/// fails at the same place.
pub(crate) fn from_slice_tracked<T: DeserializeOwned>(
    body: &[u8],
) -> std::result::Result<T, (String, serde_json::Error)> {
    let plain = match serde_json::from_slice(body) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Err(e) => Err((e.path().to_string(), e.into_inner())),
        Ok(_) => Err((".".to_owned(), plain)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ChatCompletionRequest;

    #[test]
    fn names_the_field_at_fault() {
        let e = from_json::<ChatCompletionRequest>(
            br#"{"model": "m", "messages": [], "temperature": "hot"}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(e.param(), Some("temperature"));

        let e = from_json::<ChatCompletionRequest>(br#"{"model": "m"}"#).unwrap_err();
        assert_eq!(e.param(), Some("messages"));
        assert!(
            e.message().contains("Missing required parameter"),
            "{}",
            e.message()
        );

        let e = from_json::<ChatCompletionRequest>(b"{not json").unwrap_err();
        assert_eq!(e.param(), None);
        assert!(e.message().contains("not valid JSON"));

        let ok = from_json::<ChatCompletionRequest>(br#"{"model": "m", "messages": []}"#).unwrap();
        assert_eq!(ok.model, "m");
    }
}
