//! Same-format pass-through: a chunk from a provider that speaks OpenAI's own format goes out as
//! the provider's JSON text with the gateway's few changes made to it, rather than decoded into
//! a [`crate::types::ChatCompletionChunk`] and serialized again, when the client reads the
//! stream as JSON (the server, the bindings: [`super::ChatStream::poll_next_json`]).
//!
//! One scan of the text (jiter's, which builds no values and copies only strings with escapes)
//! checks that decoding would accept the chunk and change nothing in it, and finds what
//! accounting needs: whether a choice finished, and the output text for the local token
//! estimate. The changes are to top-level members only: `provider` is ours (the provider's own,
//! OpenRouter's for one, is left out), `usage` is left out when the client did not ask for it,
//! and a `null` `system_fingerprint` is left out (OpenAI's schema has a string there). A chunk
//! is decoded as before when the scan finds anything else: usage to cost, a `finish_reason`,
//! `index` or `delta` that decoding would fill in, a `null` that decoding drops, a member of the
//! wrong type, an empty `model`, an error, or a line break that would split the SSE `data:`
//! line.
//!
//! The text that goes out is the same JSON value that decoding and serializing would give
//! (test `recorded_streams_go_on_as_decoding_would_write_them`), at a fraction of the cost
//! (bench/README.md).

use jiter::{Jiter, NumberInt, Peek};

use crate::accounting::tokens;

/// A chunk that goes out as the provider wrote it.
#[derive(Debug)]
pub(crate) struct Passed {
    /// The chunk's JSON text with the gateway's changes.
    pub(crate) text: String,
    /// A choice finished (its `finish_reason` is set).
    pub(crate) finished: bool,
    /// Output tokens of the chunk's deltas, counted locally.
    pub(crate) output_estimate: u64,
}

/// The JSON member `"provider":"<id>"` that [`pass`] adds to every chunk.
pub(crate) fn provider_member(provider: &str) -> String {
    let id = serde_json::Value::from(provider).to_string();
    format!("\"provider\":{id}")
}

/// `data` (one event's chunk, as the provider sent it) with the gateway's changes, when it can
/// go out so; `None` when it must be decoded. `include_usage`: the client asked for usage.
pub(crate) fn pass(data: &str, include_usage: bool, provider_member: &str) -> Option<Passed> {
    let bytes = data.as_bytes();
    if bytes.contains(&b'\n') || bytes.contains(&b'\r') {
        return None;
    }
    let opening = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    let mut scan = Scan {
        jiter: Jiter::new(bytes),
        finished: false,
        output_estimate: 0,
    };
    // Members left out (usage, fingerprint, provider), as byte ranges from the end of the
    // value before them to the end of their own.
    let mut cuts: [Option<(usize, usize)>; 3] = [None; 3];
    let mut seen = Seen::default();
    let mut member_start = opening + 1;
    let mut key = Top::of(scan.jiter.next_object().ok()??);
    loop {
        let accepted = match key {
            Top::Id => seen.once(0) && scan.string(),
            Top::Object => seen.once(1) && scan.string(),
            Top::Created => {
                seen.once(2) && matches!(scan.jiter.next_int(), Ok(NumberInt::Int(n)) if n >= 0)
            }
            Top::Model => {
                // An empty model is filled in with the one asked for.
                seen.once(3) && scan.jiter.next_str().is_ok_and(|model| !model.is_empty())
            }
            Top::Choices => seen.once(4) && scan.choices(),
            Top::Usage => {
                // Usage that is there gets its cost: decoded.
                if !(seen.once(5) && scan.null()) {
                    return None;
                }
                if !include_usage {
                    cuts[0] = Some((member_start, scan.jiter.current_index()));
                }
                true
            }
            Top::SystemFingerprint => {
                let null = scan.jiter.peek().ok()? == Peek::Null;
                if !(seen.once(6) && scan.nullable_string()) {
                    return None;
                }
                if null {
                    cuts[1] = Some((member_start, scan.jiter.current_index()));
                }
                true
            }
            Top::ServiceTier => seen.once(7) && scan.nullable_string(),
            Top::Provider => {
                if !(seen.once(8) && scan.jiter.next_skip().is_ok()) {
                    return None;
                }
                cuts[2] = Some((member_start, scan.jiter.current_index()));
                true
            }
            Top::Other => scan.jiter.next_skip().is_ok(),
        };
        if !accepted {
            return None;
        }
        member_start = scan.jiter.current_index();
        match scan.jiter.next_key().ok()? {
            Some(next) => key = Top::of(next),
            None => break,
        }
    }
    // The closing brace is the last byte read.
    let closing = scan.jiter.current_index().checked_sub(1)?;
    scan.jiter.finish().ok()?;
    if !seen.all(&[0, 1, 2, 3, 4]) {
        return None;
    }

    let mut text = String::with_capacity(data.len() + provider_member.len() + 2);
    text.push('{');
    let mut at = opening + 1;
    cuts.sort_unstable();
    for (start, end) in cuts.into_iter().flatten() {
        push_members(&mut text, data.get(at..start)?);
        at = end;
    }
    push_members(&mut text, data.get(at..closing)?);
    if text.len() > 1 {
        text.push(',');
    }
    text.push_str(provider_member);
    text.push('}');
    Some(Passed {
        text,
        finished: scan.finished,
        output_estimate: scan.output_estimate,
    })
}

/// Appends `members` (text between two cuts: whole members, each after its comma) to the object
/// being written, without a comma before the object's first member.
fn push_members(text: &mut String, members: &str) {
    let members = members.trim_start();
    let members = if text.len() == 1 {
        members.strip_prefix(',').unwrap_or(members).trim_start()
    } else {
        members
    };
    text.push_str(members.trim_end());
}

/// The top-level members of a chunk the scan knows.
#[derive(Clone, Copy)]
enum Top {
    Id,
    Object,
    Created,
    Model,
    Choices,
    Usage,
    SystemFingerprint,
    ServiceTier,
    Provider,
    Other,
}

impl Top {
    fn of(key: &str) -> Top {
        match key {
            "id" => Top::Id,
            "object" => Top::Object,
            "created" => Top::Created,
            "model" => Top::Model,
            "choices" => Top::Choices,
            "usage" => Top::Usage,
            "system_fingerprint" => Top::SystemFingerprint,
            "service_tier" => Top::ServiceTier,
            "provider" => Top::Provider,
            _ => Top::Other,
        }
    }
}

/// Which known members of one object were met (decoding refuses a known member twice).
#[derive(Default)]
struct Seen(u16);

impl Seen {
    /// Notes member `bit`; false when it was met before.
    fn once(&mut self, bit: u8) -> bool {
        let mask = 1 << bit;
        let first = self.0 & mask == 0;
        self.0 |= mask;
        first
    }

    fn all(&self, bits: &[u8]) -> bool {
        bits.iter().all(|bit| self.0 & (1 << bit) != 0)
    }
}

/// The scan of one chunk's text: where it is, and what accounting needs of it so far.
struct Scan<'j> {
    jiter: Jiter<'j>,
    finished: bool,
    output_estimate: u64,
}

impl Scan<'_> {
    fn string(&mut self) -> bool {
        self.jiter.next_str().is_ok()
    }

    fn null(&mut self) -> bool {
        self.jiter.next_null().is_ok()
    }

    fn nullable_string(&mut self) -> bool {
        match self.jiter.peek() {
            Ok(Peek::Null) => self.jiter.known_null().is_ok(),
            Ok(Peek::String) => self.jiter.known_str().is_ok(),
            _ => false,
        }
    }

    /// A string whose text counts as output.
    fn output(&mut self) -> bool {
        match self.jiter.next_str() {
            Ok(text) => {
                self.output_estimate += tokens::estimate_text(text);
                true
            }
            Err(_) => false,
        }
    }

    /// A string or `null` whose text counts as output.
    fn nullable_output(&mut self) -> bool {
        match self.jiter.peek() {
            Ok(Peek::Null) => self.jiter.known_null().is_ok(),
            Ok(Peek::String) => self.output(),
            _ => false,
        }
    }

    /// An integer that fits the `u32` decoding reads it into.
    fn index(&mut self) -> bool {
        matches!(self.jiter.next_int(), Ok(NumberInt::Int(n)) if u32::try_from(n).is_ok())
    }

    /// The elements of an array, each an object read by `element`.
    fn objects(&mut self, element: fn(&mut Self) -> bool) -> bool {
        let mut next = match self.jiter.next_array() {
            Ok(next) => next,
            Err(_) => return false,
        };
        while let Some(peek) = next {
            if peek != Peek::Object || !element(self) {
                return false;
            }
            next = match self.jiter.array_step() {
                Ok(next) => next,
                Err(_) => return false,
            };
        }
        true
    }

    /// The members of the object the scan is at, each read by `member` with its key; an empty
    /// object has none. False when `member` refuses one.
    fn members(&mut self, mut member: impl FnMut(&mut Self, Key) -> bool) -> bool {
        let mut key = match self.jiter.known_object() {
            Ok(Some(key)) => Key::of(key),
            Ok(None) => return true,
            Err(_) => return false,
        };
        loop {
            if !member(self, key) {
                return false;
            }
            key = match self.jiter.next_key() {
                Ok(Some(next)) => Key::of(next),
                Ok(None) => return true,
                Err(_) => return false,
            };
        }
    }

    fn choices(&mut self) -> bool {
        self.objects(Self::choice)
    }

    /// A choice that decoding would leave as it is: `index`, `delta` and `finish_reason`
    /// there (decoding fills them in otherwise).
    fn choice(&mut self) -> bool {
        let mut seen = Seen::default();
        self.members(|scan, key| match key {
            Key::Index => seen.once(0) && scan.index(),
            Key::Delta => seen.once(1) && scan.jiter.peek() == Ok(Peek::Object) && scan.delta(),
            Key::FinishReason => {
                seen.once(2)
                    && match scan.jiter.peek() {
                        Ok(Peek::Null) => scan.jiter.known_null().is_ok(),
                        Ok(Peek::String) => {
                            scan.finished = true;
                            scan.jiter.known_str().is_ok()
                        }
                        _ => false,
                    }
            }
            Key::Logprobs => seen.once(3) && scan.jiter.next_skip().is_ok(),
            _ => scan.jiter.next_skip().is_ok(),
        }) && seen.all(&[0, 1, 2])
    }

    /// A delta: no `null` where decoding drops it (`role`, `reasoning_content`), no
    /// `thinking_blocks` (written in a form of their own).
    fn delta(&mut self) -> bool {
        let mut seen = Seen::default();
        self.members(|scan, key| match key {
            Key::Role => seen.once(0) && scan.string(),
            Key::Content => seen.once(1) && scan.nullable_output(),
            Key::ReasoningContent => seen.once(2) && scan.output(),
            Key::Refusal => seen.once(3) && scan.nullable_output(),
            Key::ToolCalls => {
                seen.once(4)
                    && match scan.jiter.peek() {
                        Ok(Peek::Null) => scan.jiter.known_null().is_ok(),
                        Ok(Peek::Array) => scan.objects(Self::tool_call),
                        _ => false,
                    }
            }
            Key::ThinkingBlocks => false,
            _ => scan.jiter.next_skip().is_ok(),
        })
    }

    /// A tool-call fragment: its `index`, and no `null` `id`, `type` or `function`.
    fn tool_call(&mut self) -> bool {
        let mut seen = Seen::default();
        self.members(|scan, key| match key {
            Key::Index => seen.once(0) && scan.index(),
            Key::Id => seen.once(1) && scan.string(),
            Key::Type => seen.once(2) && scan.string(),
            Key::Function => {
                seen.once(3) && scan.jiter.peek() == Ok(Peek::Object) && scan.function()
            }
            _ => scan.jiter.next_skip().is_ok(),
        }) && seen.all(&[0])
    }

    /// A function-call fragment: decoding keeps only a string `name` and `arguments`.
    fn function(&mut self) -> bool {
        let mut seen = Seen::default();
        self.members(|scan, key| match key {
            Key::Name => seen.once(0) && scan.output(),
            Key::Arguments => seen.once(1) && scan.output(),
            _ => false,
        })
    }
}

/// The members of a choice, delta, tool call or function the scan knows.
#[derive(Clone, Copy)]
enum Key {
    Index,
    Delta,
    FinishReason,
    Logprobs,
    Role,
    Content,
    ReasoningContent,
    ThinkingBlocks,
    Refusal,
    ToolCalls,
    Id,
    Type,
    Function,
    Name,
    Arguments,
    Other,
}

impl Key {
    fn of(key: &str) -> Key {
        match key {
            "index" => Key::Index,
            "delta" => Key::Delta,
            "finish_reason" => Key::FinishReason,
            "logprobs" => Key::Logprobs,
            "role" => Key::Role,
            "content" => Key::Content,
            "reasoning_content" => Key::ReasoningContent,
            "thinking_blocks" => Key::ThinkingBlocks,
            "refusal" => Key::Refusal,
            "tool_calls" => Key::ToolCalls,
            "id" => Key::Id,
            "type" => Key::Type,
            "function" => Key::Function,
            "name" => Key::Name,
            "arguments" => Key::Arguments,
            _ => Key::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::openai::OpenAiProvider;
    use crate::providers::{Provider, ProviderType, SseEvent, StreamContext};
    use crate::types::ChatCompletionChunk;

    const PROVIDER: &str = r#""provider":"openai""#;

    /// The chunk `raw` decodes to, stamped as the gateway stamps it, with its output estimate.
    fn decoded(raw: &str, wants_usage: bool) -> (ChatCompletionChunk, u64) {
        let mut chunk: ChatCompletionChunk = serde_json::from_str(raw).expect("a chunk");
        chunk.provider = Some("openai".to_owned());
        if chunk.system_fingerprint == Some(None) {
            chunk.system_fingerprint = None;
        }
        if !wants_usage {
            chunk.usage = None;
        }
        let estimate = chunk
            .choices
            .iter()
            .map(|c| super::super::delta_estimate(&c.delta))
            .sum();
        (chunk, estimate)
    }

    /// Passes `raw`; when it passes, checks it is what decoding and serializing would send.
    fn passed(raw: &str, wants_usage: bool) -> Option<(String, serde_json::Value)> {
        let passed = pass(raw, wants_usage, PROVIDER)?;
        let (chunk, estimate) = decoded(raw, wants_usage);
        let value: serde_json::Value = serde_json::from_str(&passed.text).expect("JSON");
        assert_eq!(
            value,
            serde_json::to_value(&chunk).expect("serializes"),
            "{}",
            passed.text
        );
        assert_eq!(passed.output_estimate, estimate, "{raw}");
        assert_eq!(
            passed.finished,
            chunk.choices.iter().any(|c| c.finish_reason.is_some()),
            "{raw}"
        );
        Some((passed.text, value))
    }

    const PLAIN: &str = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Hi there"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"xY"}"#;

    #[test]
    fn a_chunk_in_openai_form_goes_on_as_sent_with_the_provider_added() {
        let (text, value) = passed(PLAIN, true).expect("passed");
        assert_eq!(text, format!("{},{PROVIDER}}}", &PLAIN[..PLAIN.len() - 1]));
        assert_eq!(value["usage"], serde_json::Value::Null);
        let (text, value) = passed(PLAIN, false).expect("passed");
        assert!(value.get("usage").is_none(), "{text}");
        assert!(
            text.ends_with(r#","obfuscation":"xY","provider":"openai"}"#),
            "{text}"
        );
    }

    #[test]
    fn the_changes_are_made_to_top_level_members_wherever_they_are() {
        // The provider's own `provider` (OpenRouter's) first, a null fingerprint, spaces.
        let raw = r#" { "provider": "Azure", "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "system_fingerprint": null, "choices": [ { "index": 0, "delta": { "role": "assistant", "content": "" }, "finish_reason": null } ] } "#;
        let (text, value) = passed(raw, true).expect("passed");
        assert_eq!(value["provider"], "openai");
        assert!(value.get("system_fingerprint").is_none());
        assert!(text.starts_with(r#"{"id": "c1""#), "{text}");
        // Only what is left out, and usage last or first.
        let raw = r#"{"usage":null,"provider":"x"}"#;
        assert!(
            pass(raw, true, PROVIDER).is_none(),
            "required members missing"
        );
        let raw = r#"{"usage":null,"id":"c","object":"o","created":1,"model":"m","choices":[]}"#;
        assert_eq!(
            passed(raw, false).expect("passed").0,
            r#"{"id":"c","object":"o","created":1,"model":"m","choices":[],"provider":"openai"}"#
        );
        let raw = r#"{"id":"c","object":"o","created":1,"model":"m","choices":[],"usage":null}"#;
        assert_eq!(
            passed(raw, false).expect("passed").0,
            r#"{"id":"c","object":"o","created":1,"model":"m","choices":[],"provider":"openai"}"#
        );

        let calls = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Turin\"}"}}]},"finish_reason":null}]}"#;
        assert!(passed(calls, false).is_some());
        let last = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"reasoning_content":"because","refusal":null},"finish_reason":"tool_calls","extra_field":[1,2.5e3]}],"service_tier":"default"}"#;
        assert!(passed(last, false).is_some());
    }

    #[test]
    fn a_chunk_that_decoding_would_change_or_refuse_is_decoded() {
        let body = |choice: &str| {
            format!(r#"{{"id":"c","object":"o","created":1,"model":"m","choices":[{choice}]}}"#)
        };
        let mut declined: Vec<String> = [
            // What decoding fills in.
            r#"{"index":0,"delta":{"content":"x"}}"#,
            r#"{"delta":{"content":"x"},"finish_reason":null}"#,
            r#"{"index":0,"finish_reason":null}"#,
            // The nulls decoding drops, and a function's member it does not know.
            r#"{"index":0,"delta":{"role":null,"content":"x"},"finish_reason":null}"#,
            r#"{"index":0,"delta":{"reasoning_content":null},"finish_reason":null}"#,
            r#"{"index":0,"delta":{"tool_calls":[{"index":0,"id":null,"function":{"arguments":"{"}}]},"finish_reason":null}"#,
            r#"{"index":0,"delta":{"tool_calls":[{"index":0,"function":null}]},"finish_reason":null}"#,
            r#"{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":null,"arguments":"{"}}]},"finish_reason":null}"#,
            r#"{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{","x":1}}]},"finish_reason":null}"#,
            r#"{"index":0,"delta":{"thinking_blocks":[]},"finish_reason":null}"#,
            // What decoding refuses.
            r#"{"index":-1,"delta":{},"finish_reason":null}"#,
            r#"{"index":0,"delta":[],"finish_reason":null}"#,
            r#"{"index":0,"delta":{"content":1},"finish_reason":null}"#,
            r#"{"index":0,"delta":{"tool_calls":[{"id":"c"}]},"finish_reason":null}"#,
            r#"{"index":0,"index":0,"delta":{},"finish_reason":null}"#,
            r#"{"index":0,"delta":{},"finish_reason":7}"#,
            r#"7"#,
        ]
        .iter()
        .map(|choice| body(choice))
        .collect();
        declined.extend(
            [
                // A model to fill in, usage to cost, a missing `object`, wrong types, a repeat.
                r#"{"id":"c","object":"o","created":1,"model":"","choices":[]}"#,
                r#"{"id":"c","object":"o","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
                r#"{"id":"c","created":1,"model":"m","choices":[]}"#,
                r#"{"id":"c","object":"o","created":"1","model":"m","choices":[]}"#,
                r#"{"id":"c","object":"o","created":-1,"model":"m","choices":[]}"#,
                r#"{"id":7,"object":"o","created":1,"model":"m","choices":[]}"#,
                r#"{"id":"c","object":"o","created":1,"model":"m","choices":{}}"#,
                r#"{"id":"c","id":"d","object":"o","created":1,"model":"m","choices":[]}"#,
                r#"{"id":"c","object":"o","created":1,"model":"m","choices":[],"system_fingerprint":1}"#,
                // Text that is not one JSON object on one line.
                "{\"id\":\"c\",\"object\":\"o\",\"created\":1,\n\"model\":\"m\",\"choices\":[]}",
                r#"{"id":"c","object":"o","created":1,"model":"m","choices":[]} x"#,
                r#"{"id":"c","object":"o","created":1,"model":"m","choices":["#,
                r#"[]"#,
                "",
            ]
            .map(str::to_owned),
        );
        for raw in &declined {
            assert!(pass(raw, true, PROVIDER).is_none(), "{raw}");
        }
    }

    /// Every event of every OpenAI-format stream recorded in `../shared/fixtures`: what goes on
    /// as the provider wrote it is what decoding and serializing would send, with the same
    /// output estimate and finish, and most chunks go on so.
    #[test]
    fn recorded_streams_go_on_as_decoding_would_write_them() {
        use crate::providers::decode_sse;
        use futures_util::{FutureExt, StreamExt};

        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
        let Ok(providers) = std::fs::read_dir(&root) else {
            eprintln!("skipped the recorded streams: {} is absent", root.display());
            return;
        };
        let openai = OpenAiProvider::new(
            "openai",
            ProviderType::Openai,
            "http://127.0.0.1:1/v1",
            None,
            &[],
        )
        .expect("a provider");
        let openai_format = [
            "openai",
            "azure-openai",
            "groq",
            "mistral",
            "deepseek",
            "xai",
            "openrouter",
            "together",
            "huggingface",
            "cerebras",
            "zai",
            "perplexity",
        ];
        let (mut chunks, mut passed_chunks, mut streams) = (0, 0, 0);
        for provider in providers.flatten() {
            let name = provider.file_name().to_string_lossy().into_owned();
            if !openai_format.contains(&name.as_str()) {
                continue;
            }
            for case in std::fs::read_dir(provider.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let Ok(body) = std::fs::read(case.path().join("response.sse")) else {
                    continue;
                };
                streams += 1;
                let pieces =
                    futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(body))]);
                let events: Vec<SseEvent> = decode_sse("openai", pieces, |e: std::io::Error| {
                    crate::Error::new(crate::ErrorKind::Connection, e.to_string())
                })
                .collect::<Vec<_>>()
                .now_or_never()
                .expect("a body in memory decodes at once")
                .into_iter()
                .flatten()
                .collect();
                for wants_usage in [true, false] {
                    let mut decoder = openai.stream_decoder(StreamContext {
                        include_usage: wants_usage,
                    });
                    for event in &events {
                        let text = decoder.chunk_text(event).map(str::to_owned);
                        let Ok(decoded_chunks) = decoder.on_event(event) else {
                            assert!(
                                text.is_none()
                                    || pass(
                                        text.as_deref().unwrap_or_default(),
                                        wants_usage,
                                        PROVIDER
                                    )
                                    .is_none()
                            );
                            continue;
                        };
                        let Some(text) = text else {
                            continue;
                        };
                        chunks += 1;
                        if passed(&text, wants_usage).is_some() {
                            passed_chunks += 1;
                            assert_eq!(decoded_chunks.len(), 1, "{text}");
                        }
                    }
                }
            }
        }
        eprintln!(
            "{passed_chunks} of {chunks} chunks of {streams} recorded streams passed through"
        );
        assert!(
            streams == 0 || passed_chunks * 2 > chunks,
            "{passed_chunks} of {chunks} passed"
        );
    }
}
