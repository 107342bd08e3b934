//! The one structured log line of every request, written when its record settles (tracing
//! target `opengateway::request`: `info` when it ended well, `warn` otherwise).
//!
//! It carries ids, routing, status, tokens, cost and timings; never a body, a provider key or
//! an `ogw_` key. The key appears as its id and as the display prefix the caller gave
//! ([`super::CallContext::key_label`], cut to [`KEY_LABEL_MAX_CHARS`]), and error messages have
//! anything shaped like a secret key masked, since providers sometimes quote the key they
//! refused.

use super::record::{RecordStatus, UsageRecord};
use crate::error::Attempt;

/// The tracing target of the per-request line.
pub const TARGET: &str = "opengateway::request";

/// The most characters of a key's display label that are logged.
pub const KEY_LABEL_MAX_CHARS: usize = 12;

/// Every attempt in one field: `openai/gpt-4o:503 (12 ms), anthropic/claude:200 (340 ms)`.
pub fn attempts_summary(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|a| {
            let outcome = match (a.status, &a.error_type) {
                (Some(status), _) => status.to_string(),
                (None, Some(kind)) => kind.clone(),
                (None, None) => "?".to_owned(),
            };
            format!("{}/{}:{outcome} ({} ms)", a.provider, a.model, a.latency_ms)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text` with every word that looks like a secret key (`ogw_…`, `sk-…`, `sk_…`, `AIza…`)
/// cut to its first characters and `…`.
pub fn redact_keys(text: &str) -> String {
    const PREFIXES: [&str; 5] = ["ogw_", "sk-", "sk_", "AIza", "xai-"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest
            .find(|c: char| c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        let word = &rest[..end];
        if word.len() > 12 && PREFIXES.iter().any(|p| word.starts_with(p)) {
            out.push_str(&word[..8]);
            out.push('…');
        } else {
            out.push_str(word);
        }
        rest = &rest[end..];
    }
    out
}

/// Writes the line of a settled record.
pub(crate) fn log_settled(record: &UsageRecord, key_label: Option<&str>) {
    let key_prefix: Option<String> =
        key_label.map(|l| l.chars().take(KEY_LABEL_MAX_CHARS).collect());
    let error = record.error_message.as_deref().map(redact_keys);
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "opengateway::request",
                request_id = %record.id,
                endpoint = %record.endpoint,
                stream = record.stream,
                key = record.key.as_deref(),
                key_prefix = key_prefix.as_deref(),
                user = record.user.as_deref(),
                model = %record.model,
                provider = record.provider.as_deref(),
                upstream_model = record.provider_model.as_deref(),
                attempts = %attempts_summary(&record.attempts),
                status = %record.status,
                http_status = record.http_status,
                error_type = record.error_type.as_deref(),
                error = error.as_deref(),
                tokens_in = record.tokens.prompt,
                tokens_out = record.tokens.completion,
                estimated = record.estimated,
                cost_usd = record.cost.total_usd,
                latency_ms = record.latency_ms,
                ttft_ms = record.ttft_ms,
                "request"
            )
        };
    }
    match record.status {
        RecordStatus::Ok => line!(info),
        _ => line!(warn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_masked_and_other_words_kept() {
        let text = "Incorrect API key provided: sk-proj-abcdefghijklmnop. Use ogw_0123456789abcdef0123 or key sk-short.";
        let out = redact_keys(text);
        assert!(!out.contains("abcdefghijklmnop"), "{out}");
        assert!(!out.contains("0123456789abcdef0123"), "{out}");
        assert!(
            out.contains("sk-proj-…") && out.contains("ogw_0123…"),
            "{out}"
        );
        assert!(out.starts_with("Incorrect API key provided: "), "{out}");
        assert!(out.contains("sk-short."), "short words are not keys: {out}");
        assert_eq!(redact_keys("née ünïcode ok"), "née ünïcode ok");
    }
}
