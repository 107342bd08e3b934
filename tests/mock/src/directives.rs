//! Model-id directives: `mock-claude~status=429~retry_after=2` steers a request on any endpoint.
//!
//! A gateway translating a request into another provider's format drops the OpenAI-style
//! top-level `"mock"` object, but it keeps the model id. So a model id may carry `~`-separated
//! knobs after its base name. `~name` sets a flag, `~no_name` clears it, `~name=value` sets a
//! number (or, for `key`, a string). The knobs mean exactly what the `mock` object's knobs of the
//! same name mean; on the OpenAI endpoint the body's `mock` object is merged over them and wins.
//!
//! - Flags: `tool_call`, `thinking`, `truncate`, `stream_error`, `malformed`.
//! - Numbers: `status`, `retry_after`, `retry_after_ms`, `drop_after`, `chunks`, `parallel`,
//!   `fail_first`, `first_byte_delay_ms`, `chunk_delay_ms`, and the usage pins
//!   `prompt_tokens`, `cached_tokens`, `cache_write_tokens`, `completion_tokens`,
//!   `reasoning_tokens`.
//! - Strings: `key`.
//!
//! The usage pins fix the usage a response reports, in OpenAI's meaning: `prompt_tokens` counts
//! every input token, of which `cached_tokens` were read from and `cache_write_tokens` written to
//! the cache; `completion_tokens` counts visible output and `reasoning_tokens` thinking, as totals
//! over all choices. Each endpoint renders them in its provider's terms (see
//! `engine::Usage`); a pin not given keeps the computed value.

use serde_json::{Map, Value};

/// The knobs steering one request, keyed like the OpenAI `mock` object.
pub(crate) type Knobs = Map<String, Value>;

/// Separates the base model name and each directive.
const SEPARATOR: char = '~';

/// Directives without a value: `~name` sets `true`, `~no_name` sets `false`.
const FLAGS: [&str; 5] = [
    "tool_call",
    "thinking",
    "truncate",
    "stream_error",
    "malformed",
];

/// Directives taking a non-negative integer: `~name=N`.
const NUMBERS: [&str; 14] = [
    "status",
    "retry_after",
    "retry_after_ms",
    "drop_after",
    "chunks",
    "parallel",
    "fail_first",
    "first_byte_delay_ms",
    "chunk_delay_ms",
    "prompt_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "completion_tokens",
    "reasoning_tokens",
];

/// Directives taking a string: `~name=text`.
const STRINGS: [&str; 1] = ["key"];

/// Splits `model` into its base name and the knobs its directives set.
///
/// An unknown directive, a missing or malformed value, or a value on a flag is an error whose
/// message names the offending directive.
pub(crate) fn parse(model: &str) -> Result<(&str, Knobs), String> {
    let mut parts = model.split(SEPARATOR);
    let base = parts.next().unwrap_or_default();
    let mut knobs = Knobs::new();
    for directive in parts.filter(|directive| !directive.is_empty()) {
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (directive, None),
        };
        let value = if FLAGS.contains(&name) {
            flag(directive, value, true)?
        } else if let Some(flag_name) = name
            .strip_prefix("no_")
            .filter(|flag_name| FLAGS.contains(flag_name))
        {
            knobs.insert(flag_name.to_owned(), flag(directive, value, false)?);
            continue;
        } else if NUMBERS.contains(&name) {
            let number = value
                .and_then(|value| value.parse::<u64>().ok())
                .ok_or_else(|| {
                    format!("mock directive `~{directive}` needs a number: `~{name}=N`")
                })?;
            Value::from(number)
        } else if STRINGS.contains(&name) {
            let text = value.ok_or_else(|| {
                format!("mock directive `~{directive}` needs a value: `~{name}=TEXT`")
            })?;
            Value::from(text)
        } else {
            return Err(format!(
                "unknown mock directive `~{directive}` in model `{model}`"
            ));
        };
        knobs.insert(name.to_owned(), value);
    }
    Ok((base, knobs))
}

fn flag(directive: &str, value: Option<&str>, set: bool) -> Result<Value, String> {
    match value {
        None => Ok(Value::Bool(set)),
        Some(_) => Err(format!("mock directive `~{directive}` takes no value")),
    }
}

/// The header whose value is directives (`~name=value~flag`) for every request that carries it:
/// a gateway sends a provider's configured headers on each request, so a test can steer one
/// provider id without touching model ids (which would also change how the model is priced).
pub const DIRECTIVES_HEADER: &str = "x-mock-directives";

/// The knobs of the `x-mock-directives` header, then `model`'s directives over them, then
/// `overrides` (a body's `mock` object) over both.
pub(crate) fn knobs<'m>(
    model: &'m str,
    headers: &http::HeaderMap,
    overrides: Option<&Knobs>,
) -> Result<(&'m str, Knobs), String> {
    let (base, from_model) = parse(model)?;
    let mut knobs = match headers.get(DIRECTIVES_HEADER) {
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| format!("the {DIRECTIVES_HEADER} header is not text"))?;
            parse(&format!("~{}", text.trim_start_matches('~')))?.1
        }
        None => Knobs::new(),
    };
    knobs.extend(from_model);
    if let Some(overrides) = overrides {
        knobs.extend(
            overrides
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
    }
    Ok((base, knobs))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn header_directives_yield_to_the_model_and_the_body() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            DIRECTIVES_HEADER,
            http::HeaderValue::from_static("prompt_tokens=10~status=500~thinking"),
        );
        let body = json!({"status": 429});
        let (base, merged) =
            knobs("mock-gpt~prompt_tokens=20", &headers, body.as_object()).unwrap();
        assert_eq!(base, "mock-gpt");
        assert_eq!(
            Value::Object(merged),
            json!({"prompt_tokens": 20, "status": 429, "thinking": true})
        );
        headers.insert(DIRECTIVES_HEADER, http::HeaderValue::from_static("nope=1"));
        assert!(
            knobs("mock-gpt", &headers, None)
                .unwrap_err()
                .contains("nope")
        );
    }

    #[test]
    fn plain_model_has_no_knobs() {
        let (base, knobs) = parse("mock-claude").unwrap();
        assert_eq!(base, "mock-claude");
        assert!(knobs.is_empty());
    }

    #[test]
    fn directives_become_knobs() {
        let (base, knobs) =
            parse("mock-claude~status=429~retry_after=3~tool_call~no_thinking~key=a=b~").unwrap();
        assert_eq!(base, "mock-claude");
        assert_eq!(
            Value::Object(knobs),
            json!({"status": 429, "retry_after": 3, "tool_call": true, "thinking": false, "key": "a=b"})
        );
        let (_, knobs) = parse(
            "m~prompt_tokens=1000~cached_tokens=400~cache_write_tokens=100~completion_tokens=50~reasoning_tokens=30",
        )
        .unwrap();
        assert_eq!(
            Value::Object(knobs),
            json!({"prompt_tokens": 1000, "cached_tokens": 400, "cache_write_tokens": 100,
                   "completion_tokens": 50, "reasoning_tokens": 30})
        );
    }

    #[test]
    fn bad_directives_are_named() {
        let err = parse("m~statuz=1").unwrap_err();
        assert!(err.contains("`~statuz=1`"), "{err}");
        let err = parse("m~status").unwrap_err();
        assert!(err.contains("needs a number"), "{err}");
        let err = parse("m~status=abc").unwrap_err();
        assert!(err.contains("needs a number"), "{err}");
        let err = parse("m~truncate=1").unwrap_err();
        assert!(err.contains("takes no value"), "{err}");
        assert!(parse("m~no_status").is_err());
    }

    #[test]
    fn body_knobs_win() {
        let overrides = json!({"status": 500, "content": "x"});
        let (_, knobs) = knobs(
            "m~status=429~truncate",
            &http::HeaderMap::new(),
            overrides.as_object(),
        )
        .unwrap();
        assert_eq!(
            Value::Object(knobs),
            json!({"status": 500, "truncate": true, "content": "x"})
        );
    }
}
