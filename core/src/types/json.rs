//! Reading a request body (JSON text) into a typed request, with errors that name the field.

use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

/// Reads a JSON request body into `T`. A decoding error is a 400 whose `param` names the field
/// at fault (`messages[0].role`, or the missing field itself), as every surface reports it.
pub fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
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
