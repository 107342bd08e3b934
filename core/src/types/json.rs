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

    #[test]
    fn a_message_decodes_wherever_its_role_is() {
        use crate::types::{ChatMessage, MessageContent};
        let body = br#"{"model": "m", "messages": [
            {"role": "system", "content": "be brief", "x-note": 1},
            {"content": "hi", "name": "ann", "role": "user"},
            {"tool_call_id": "c1", "role": "tool", "content": "42"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
        ]}"#;
        let request = from_json::<ChatCompletionRequest>(body).unwrap();
        let [system, user, tool, assistant] = &request.messages[..] else {
            panic!("{:?}", request.messages)
        };
        let ChatMessage::System(system) = system else {
            panic!("{system:?}")
        };
        assert_eq!(system.content, MessageContent::Text("be brief".into()));
        assert_eq!(system.extra["x-note"], 1);
        let ChatMessage::User(user) = user else {
            panic!("{user:?}")
        };
        assert_eq!(user.name.as_deref(), Some("ann"));
        let ChatMessage::Tool(tool) = tool else {
            panic!("{tool:?}")
        };
        assert_eq!(tool.tool_call_id, "c1");
        let ChatMessage::Assistant(assistant) = assistant else {
            panic!("{assistant:?}")
        };
        assert_eq!(assistant.content, Some(None));
        assert_eq!(assistant.tool_calls.as_ref().map(Vec::len), Some(1));
        // The same messages written back are the ones sent, `role` first.
        let again = serde_json::to_value(&request.messages[1]).unwrap();
        assert_eq!(
            again,
            serde_json::json!({"role": "user", "content": "hi", "name": "ann"})
        );
    }

    #[test]
    fn a_bad_message_names_the_field_at_fault() {
        let cases: [(&[u8], &str, &str); 6] = [
            (
                br#"{"model":"m","messages":[{"role":"robot","content":"hi"}]}"#,
                "messages[0].role",
                "unknown variant `robot`",
            ),
            (
                br#"{"model":"m","messages":[{"content":"hi","role":"robot"}]}"#,
                "messages[0].role",
                "unknown variant `robot`",
            ),
            (
                br#"{"model":"m","messages":[{"content":"hi"}]}"#,
                "messages[0].role",
                "Missing required parameter",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":7}]}"#,
                "messages[0].content",
                "expected a string or an array of content parts",
            ),
            (
                br#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
                "messages[0].tool_call_id",
                "Missing required parameter",
            ),
            (
                br#"{"model":"m","messages":[{"content":"x","role":"user","role":"user"}]}"#,
                "messages[0]",
                "duplicate field `role`",
            ),
        ];
        for (body, param, words) in cases {
            let e = from_json::<ChatCompletionRequest>(body).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{}", e.message());
            assert_eq!(e.param(), Some(param), "{}", e.message());
            assert!(e.message().contains(words), "{}", e.message());
        }
    }
}
