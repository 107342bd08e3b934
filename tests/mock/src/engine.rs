//! The deterministic fake model every wire format shares: what to say, when to call a tool,
//! how many tokens that took, and how to cut text into stream pieces.
//!
//! Each format turns its request into a [`Prompt`], asks [`answer`] what the model says and
//! renders the [`Answer`] in its own shape, so the rules stay the same on every endpoint.

use serde_json::{Map, Value, json};

use crate::{MockConfig, MockState, directives::Knobs};

/// How much of the last user message the default reply echoes, in chars.
const ECHO_LIMIT: usize = 200;
/// How much of the last user message the mock's thinking quotes, in chars.
const THINKING_ECHO_LIMIT: usize = 80;
/// Upper bound on `n`, `candidateCount` and `parallel`, so a typo cannot build a huge answer.
pub(crate) const MAX_FANOUT: u64 = 128;

/// A tool the request offers: its name and the JSON schema of its arguments.
pub(crate) struct Tool<'a> {
    pub(crate) name: &'a str,
    pub(crate) schema: Option<&'a Value>,
}

/// The request's tool choice, reduced to what the mock acts on.
pub(crate) enum Choice<'a> {
    /// The model may call any tool (also `required`/`any`).
    Auto,
    /// Tools must not be called.
    None,
    /// This tool must be called.
    Named(&'a str),
}

/// A request in format-neutral terms.
pub(crate) struct Prompt<'a> {
    /// Text of the last user turn, echoed by the default reply.
    pub(crate) last_user_text: String,
    /// Estimated prompt tokens.
    pub(crate) prompt_tokens: usize,
    /// The conversation ends with a fresh user turn (not a tool result): a tool may be called.
    pub(crate) awaits_answer: bool,
    /// Tools offered by the request.
    pub(crate) tools: Vec<Tool<'a>>,
    /// The request's tool choice.
    pub(crate) choice: Choice<'a>,
    /// Output limit in (mock) tokens, i.e. words.
    pub(crate) max_tokens: Option<usize>,
    /// The request asked for visible thinking.
    pub(crate) thinking: bool,
}

/// Estimated prompt tokens: ceil(chars / 4) plus 3 per message.
pub(crate) fn prompt_tokens<'t>(
    texts: impl IntoIterator<Item = &'t str>,
    messages: usize,
) -> usize {
    let chars: usize = texts.into_iter().map(|text| text.chars().count()).sum();
    chars.div_ceil(4) + 3 * messages
}

/// One tool call of an answer; `arguments` is JSON text (or whatever string a test asked for).
pub(crate) struct ToolCall {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) arguments: String,
}

impl ToolCall {
    /// The arguments as a JSON value; text that is not JSON stays a string.
    pub(crate) fn arguments_json(&self) -> Value {
        serde_json::from_str(&self.arguments).unwrap_or_else(|_| json!(self.arguments))
    }
}

/// What the model says besides its thinking.
pub(crate) enum Reply {
    /// Assistant text; `truncated` when the output limit cut it short.
    Text { content: String, truncated: bool },
    /// One or more tool calls and no text.
    Tools(Vec<ToolCall>),
}

/// The fake model's whole answer for one choice.
pub(crate) struct Answer {
    /// Thinking text, when thinking was asked for.
    pub(crate) thinking: Option<String>,
    /// Text or tool calls.
    pub(crate) reply: Reply,
}

impl Answer {
    /// Output tokens of the reply: its word count, or ceil(argument length / 4) over the calls.
    pub(crate) fn reply_tokens(&self) -> usize {
        match &self.reply {
            Reply::Text { content, .. } => content.split_whitespace().count(),
            Reply::Tools(calls) => calls
                .iter()
                .map(|call| call.arguments.len().div_ceil(4))
                .sum::<usize>()
                .max(1),
        }
    }

    /// Output tokens spent thinking: the thinking text's word count.
    pub(crate) fn thinking_tokens(&self) -> usize {
        self.thinking
            .as_deref()
            .map_or(0, |thinking| thinking.split_whitespace().count())
    }
}

/// Token usage of one response in OpenAI's meaning, before a wire format renders it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Every input token, cached ones included.
    pub(crate) prompt: u64,
    /// Input tokens read from the cache.
    pub(crate) cached: u64,
    /// Input tokens written to the cache.
    pub(crate) cache_write: u64,
    /// Visible output tokens, reasoning left out.
    pub(crate) completion: u64,
    /// Reasoning (thinking) output tokens.
    pub(crate) reasoning: u64,
    /// `cached` was pinned by a knob, so it is reported even when zero.
    pub(crate) cached_pinned: bool,
}

impl Usage {
    /// The usage the fake model computed: nothing cached.
    pub(crate) fn computed(prompt: usize, completion: usize, reasoning: usize) -> Usage {
        Usage {
            prompt: prompt as u64,
            completion: completion as u64,
            reasoning: reasoning as u64,
            ..Usage::default()
        }
    }

    /// All output tokens: visible plus reasoning.
    pub(crate) fn output(&self) -> u64 {
        self.completion.saturating_add(self.reasoning)
    }

    /// Input plus output tokens.
    pub(crate) fn total(&self) -> u64 {
        self.prompt.saturating_add(self.output())
    }

    /// OpenAI's `usage` object. OpenAI counts reasoning inside `completion_tokens` and has no
    /// cache-write count.
    pub(crate) fn openai(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.output(),
            "total_tokens": self.total(),
            "prompt_tokens_details": {"cached_tokens": self.cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0
            }
        })
    }

    /// Anthropic's `usage` object with `output_tokens` as given (`message_start` sends a
    /// placeholder). Anthropic's `input_tokens` leaves out cache reads and writes (never below 0);
    /// its `output_tokens` includes thinking.
    pub(crate) fn anthropic(&self, output_tokens: u64) -> Value {
        let input = self
            .prompt
            .saturating_sub(self.cached)
            .saturating_sub(self.cache_write);
        json!({
            "input_tokens": input,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cached,
            "output_tokens": output_tokens
        })
    }

    /// Gemini's `usageMetadata`. Like Google, zero counts are left out, except a pinned cached
    /// count; `promptTokenCount` includes cached tokens and `candidatesTokenCount` excludes
    /// thoughts. Gemini has no cache-write count.
    pub(crate) fn gemini(&self) -> Value {
        let mut usage = Map::new();
        usage.insert("promptTokenCount".into(), json!(self.prompt));
        if self.completion > 0 {
            usage.insert("candidatesTokenCount".into(), json!(self.completion));
        }
        usage.insert("totalTokenCount".into(), json!(self.total()));
        if self.cached > 0 || self.cached_pinned {
            usage.insert("cachedContentTokenCount".into(), json!(self.cached));
        }
        if self.reasoning > 0 {
            usage.insert("thoughtsTokenCount".into(), json!(self.reasoning));
        }
        Value::Object(usage)
    }
}

/// The usage knobs (`prompt_tokens`, `cached_tokens`, `cache_write_tokens`, `completion_tokens`,
/// `reasoning_tokens`), in OpenAI's meaning: each one given replaces that part of the computed
/// usage; output counts are totals over all choices or candidates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct UsagePins {
    prompt: Option<u64>,
    cached: Option<u64>,
    cache_write: Option<u64>,
    completion: Option<u64>,
    reasoning: Option<u64>,
}

impl UsagePins {
    /// The usage knobs of a request.
    pub(crate) fn of(knobs: &Knobs) -> UsagePins {
        UsagePins {
            prompt: knob_u64(knobs, "prompt_tokens"),
            cached: knob_u64(knobs, "cached_tokens"),
            cache_write: knob_u64(knobs, "cache_write_tokens"),
            completion: knob_u64(knobs, "completion_tokens"),
            reasoning: knob_u64(knobs, "reasoning_tokens"),
        }
    }

    /// The usage to report for a whole answer whose computed usage is `computed`.
    pub(crate) fn apply(&self, computed: Usage) -> Usage {
        self.apply_partial(computed, computed)
    }

    /// The usage to report once `so_far` of the `whole` computed usage is out (a stream's running
    /// count). Input parts are pinned from the start; a pinned output part grows in proportion to
    /// its computed part and reaches the pin exactly when that part is complete.
    pub(crate) fn apply_partial(&self, so_far: Usage, whole: Usage) -> Usage {
        let scaled = |pin: Option<u64>, done: u64, all: u64| {
            pin.map_or(done, |pin| {
                if done >= all {
                    pin
                } else {
                    // done < all, so the quotient is below `pin` and fits.
                    u64::try_from(u128::from(pin) * u128::from(done) / u128::from(all))
                        .unwrap_or(pin)
                }
            })
        };
        Usage {
            prompt: self.prompt.unwrap_or(so_far.prompt),
            cached: self.cached.unwrap_or(so_far.cached),
            cache_write: self.cache_write.unwrap_or(so_far.cache_write),
            completion: scaled(self.completion, so_far.completion, whole.completion),
            reasoning: scaled(self.reasoning, so_far.reasoning, whole.reasoning),
            cached_pinned: so_far.cached_pinned || self.cached.is_some(),
        }
    }
}

/// Decides what the model answers to `prompt`, with the knobs applied.
pub(crate) fn answer(
    state: &MockState,
    prompt: &Prompt<'_>,
    knobs: &Knobs,
    id_prefix: &str,
) -> Answer {
    let thinking = knobs
        .get("thinking")
        .and_then(Value::as_bool)
        .unwrap_or(prompt.thinking)
        .then(|| thinking_text(&prompt.last_user_text));
    let reply = match tool_calls(state, prompt, knobs, id_prefix) {
        Some(calls) => Reply::Tools(calls),
        None => text_reply(prompt, knobs, state.config()),
    };
    Answer { thinking, reply }
}

fn thinking_text(said: &str) -> String {
    let echo: String = said.chars().take(THINKING_ECHO_LIMIT).collect();
    format!("The user wrote \"{echo}\". A short, friendly reply will do.")
}

fn text_reply(prompt: &Prompt<'_>, knobs: &Knobs, config: &MockConfig) -> Reply {
    let content = knobs
        .get("content")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| config.content.clone())
        .unwrap_or_else(|| {
            let echo: String = prompt.last_user_text.chars().take(ECHO_LIMIT).collect();
            format!("Hello from the mock provider! You said: {echo}")
        });
    let words = word_pieces(&content);
    match prompt.max_tokens {
        Some(limit) if words.len() > limit => Reply::Text {
            content: words[..limit].concat().trim_end().to_owned(),
            truncated: true,
        },
        _ => Reply::Text {
            content,
            truncated: false,
        },
    }
}

/// Tool calls to answer with, if the `tool_call` knob or the request's tools call for them.
///
/// Without the knob the mock calls a tool when the request offers tools, the tool choice is not
/// "none" and the conversation ends with a user turn that is not a tool result.
fn tool_calls(
    state: &MockState,
    prompt: &Prompt<'_>,
    knobs: &Knobs,
    id_prefix: &str,
) -> Option<Vec<ToolCall>> {
    let wanted = match knobs.get("tool_call") {
        Some(Value::Bool(wanted)) => *wanted,
        Some(Value::Object(_)) => true,
        _ => {
            !prompt.tools.is_empty()
                && !matches!(prompt.choice, Choice::None)
                && prompt.awaits_answer
        }
    };
    if !wanted {
        return None;
    }
    let spec = knobs.get("tool_call").and_then(Value::as_object);
    let named = match prompt.choice {
        Choice::Named(name) => Some(name),
        _ => None,
    };
    let name = spec
        .and_then(|spec| spec.get("name"))
        .and_then(Value::as_str)
        .or(named)
        .or_else(|| prompt.tools.first().map(|tool| tool.name))
        .unwrap_or("mock_tool")
        .to_owned();
    let arguments = match spec.and_then(|spec| spec.get("arguments")) {
        // A string is sent as is, so tests can feed clients broken arguments.
        Some(Value::String(raw)) => raw.clone(),
        Some(arguments) => arguments.to_string(),
        None => {
            let schema = prompt
                .tools
                .iter()
                .find(|tool| tool.name == name)
                .and_then(|tool| tool.schema);
            arguments_from_schema(schema).to_string()
        }
    };
    let parallel = spec
        .and_then(|spec| knob_u64(spec, "parallel"))
        .or_else(|| knob_u64(knobs, "parallel"))
        .unwrap_or(1)
        .clamp(1, MAX_FANOUT);
    let calls = (0..parallel)
        .map(|_| ToolCall {
            id: format!("{id_prefix}{}", state.next_tool_call()),
            name: name.clone(),
            arguments: arguments.clone(),
        })
        .collect();
    Some(calls)
}

/// Plausible arguments for a JSON schema: its required (or else all) properties, typed samples.
pub(crate) fn arguments_from_schema(schema: Option<&Value>) -> Value {
    let Some(properties) = schema
        .and_then(|schema| schema.get("properties"))
        .and_then(Value::as_object)
    else {
        return json!({});
    };
    let keys: Vec<&str> = match schema
        .and_then(|schema| schema.get("required"))
        .and_then(Value::as_array)
    {
        Some(required) => required.iter().filter_map(Value::as_str).collect(),
        None => properties.keys().map(String::as_str).collect(),
    };
    let arguments = keys
        .into_iter()
        .map(|key| {
            (
                key.to_owned(),
                sample(properties.get(key).unwrap_or(&Value::Null)),
            )
        })
        .collect();
    Value::Object(arguments)
}

/// A sample value for one property schema; type names match case-insensitively (Gemini's
/// `STRING`, `OBJECT`, ...).
fn sample(property: &Value) -> Value {
    if let Some(first) = property
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let kind = match property.get("type") {
        Some(Value::String(kind)) => Some(kind.to_ascii_lowercase()),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| !kind.eq_ignore_ascii_case("null"))
            .map(str::to_ascii_lowercase),
        _ => None,
    };
    match kind.as_deref() {
        Some("string") => json!("mock"),
        Some("number" | "integer") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("object") => json!({}),
        _ => Value::Null,
    }
}

/// The text's stream pieces: exactly `chunks` near-equal pieces, or one word per piece.
pub(crate) fn text_pieces(text: &str, chunks: Option<usize>) -> Vec<&str> {
    match chunks {
        Some(count) => even_pieces(text, count),
        None => word_pieces(text),
    }
}

/// Splits text into words, each keeping its trailing whitespace, so the pieces concatenate back.
pub(crate) fn word_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut after_space, mut has_word) = (0, false, false);
    for (at, c) in text.char_indices() {
        if after_space && has_word && !c.is_whitespace() {
            pieces.push(&text[start..at]);
            start = at;
        }
        after_space = c.is_whitespace();
        has_word |= !after_space;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Splits text into exactly `count` pieces of near-equal char length (the last ones may be empty).
pub(crate) fn even_pieces(text: &str, count: usize) -> Vec<&str> {
    let count = count.max(1);
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(at, _)| at)
        .chain([text.len()])
        .collect();
    let chars = bounds.len() - 1;
    let (base, extra) = (chars / count, chars % count);
    let mut at = 0;
    (0..count)
        .map(|piece| {
            let take = base + usize::from(piece < extra);
            let part = &text[bounds[at]..bounds[at + take]];
            at += take;
            part
        })
        .collect()
}

/// Tool-call argument pieces for a stream: at least 3, about 8 chars each.
pub(crate) fn argument_pieces(arguments: &str) -> Vec<&str> {
    let count = (arguments.chars().count() / 8).max(3);
    even_pieces(arguments, count)
}

/// The `status` and `fail_first` knobs: the status to fail this request with, if any.
pub(crate) fn scripted_status(state: &MockState, knobs: &Knobs) -> Option<u64> {
    let status = knob_u64(knobs, "status");
    if let Some(failures) = knob_u64(knobs, "fail_first") {
        let key = knobs.get("key").and_then(Value::as_str).unwrap_or_default();
        return (state.count_attempt(key) <= failures).then(|| status.unwrap_or(503));
    }
    status
}

/// Stream pacing: the knobs, or else the server's defaults.
pub(crate) struct Pacing {
    /// Sleep before the response headers, in milliseconds.
    pub(crate) first_byte_delay_ms: u64,
    /// Sleep between stream writes, in milliseconds.
    pub(crate) chunk_delay_ms: u64,
    /// Number of text pieces; `None` streams one word per piece.
    pub(crate) chunks: Option<usize>,
}

impl Pacing {
    /// The pacing knobs of a request over the server defaults.
    pub(crate) fn of(knobs: &Knobs, config: &MockConfig) -> Pacing {
        Pacing {
            first_byte_delay_ms: knob_u64(knobs, "first_byte_delay_ms")
                .unwrap_or(config.first_byte_delay_ms),
            chunk_delay_ms: knob_u64(knobs, "chunk_delay_ms").unwrap_or(config.chunk_delay_ms),
            chunks: knob_u64(knobs, "chunks")
                .map(|chunks| chunks as usize)
                .or(config.chunks),
        }
    }
}

/// A number knob.
pub(crate) fn knob_u64(knobs: &Knobs, key: &str) -> Option<u64> {
    knobs.get(key).and_then(Value::as_u64)
}

/// A boolean knob; absent means `false`.
pub(crate) fn knob_bool(knobs: &Knobs, key: &str) -> bool {
    knobs.get(key).and_then(Value::as_bool).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pins(knobs: Value) -> UsagePins {
        UsagePins::of(knobs.as_object().unwrap())
    }

    #[test]
    fn usage_pins_replace_only_the_parts_given() {
        let computed = Usage::computed(5, 9, 4);
        assert_eq!(pins(json!({})).apply(computed), computed);
        let cached = pins(json!({"cached_tokens": 40})).apply(computed);
        assert_eq!((cached.prompt, cached.cached), (5, 40));
        assert_eq!((cached.completion, cached.reasoning), (9, 4));
        // More cached than prompt: Anthropic's uncached input stops at zero.
        assert_eq!(cached.anthropic(13)["input_tokens"], 0);
        assert_eq!(cached.anthropic(13)["cache_read_input_tokens"], 40);
        let huge =
            pins(json!({"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX})).apply(computed);
        assert_eq!(huge.total(), u64::MAX);
    }

    #[test]
    fn usage_renders_in_each_providers_terms() {
        let usage = pins(json!({"prompt_tokens": 1000, "cached_tokens": 400,
                                "cache_write_tokens": 100, "completion_tokens": 50,
                                "reasoning_tokens": 30}))
        .apply(Usage::computed(5, 9, 0));
        let openai = usage.openai();
        assert_eq!(openai["prompt_tokens"], 1000);
        assert_eq!(openai["prompt_tokens_details"]["cached_tokens"], 400);
        assert_eq!(openai["completion_tokens"], 80);
        assert_eq!(openai["completion_tokens_details"]["reasoning_tokens"], 30);
        assert_eq!(openai["total_tokens"], 1080);
        assert_eq!(
            usage.anthropic(usage.output()),
            json!({"input_tokens": 500, "cache_creation_input_tokens": 100,
                   "cache_read_input_tokens": 400, "output_tokens": 80})
        );
        assert_eq!(
            usage.gemini(),
            json!({"promptTokenCount": 1000, "candidatesTokenCount": 50, "totalTokenCount": 1080,
                   "cachedContentTokenCount": 400, "thoughtsTokenCount": 30})
        );
        let plain = Usage::computed(5, 9, 0).gemini();
        assert_eq!(
            plain,
            json!({"promptTokenCount": 5, "candidatesTokenCount": 9, "totalTokenCount": 14})
        );
        let zero = pins(json!({"cached_tokens": 0})).apply(Usage::computed(5, 9, 0));
        assert_eq!(zero.gemini()["cachedContentTokenCount"], 0);
    }

    #[test]
    fn pinned_output_grows_with_the_stream_and_ends_at_the_pin() {
        let pins = pins(json!({"completion_tokens": 50, "reasoning_tokens": 30}));
        let whole = Usage::computed(5, 10, 4);
        let early = pins.apply_partial(Usage::computed(5, 0, 2), whole);
        assert_eq!((early.completion, early.reasoning), (0, 15));
        let middle = pins.apply_partial(Usage::computed(5, 3, 4), whole);
        assert_eq!((middle.completion, middle.reasoning), (15, 30));
        let end = pins.apply_partial(whole, whole);
        assert_eq!((end.completion, end.reasoning), (50, 30));
        // Nothing computed to scale by: the pin holds from the start.
        let empty = pins.apply_partial(Usage::computed(5, 0, 0), Usage::computed(5, 0, 0));
        assert_eq!((empty.completion, empty.reasoning), (50, 30));
    }

    #[test]
    fn word_pieces_keep_whitespace_and_concatenate_back() {
        assert_eq!(
            word_pieces("  Hello  big world "),
            ["  Hello  ", "big ", "world "]
        );
        assert_eq!(word_pieces(""), Vec::<&str>::new());
        assert_eq!(word_pieces("one"), ["one"]);
    }

    #[test]
    fn even_pieces_respect_char_boundaries_and_count() {
        let text = "héllo wörld ✓";
        for count in 1..20 {
            let pieces = even_pieces(text, count);
            assert_eq!(pieces.len(), count);
            assert_eq!(pieces.concat(), text);
        }
        assert_eq!(even_pieces("abcde", 2), ["abc", "de"]);
        assert_eq!(even_pieces("ab", 3), ["a", "b", ""]);
    }

    #[test]
    fn schema_arguments_use_required_properties_and_enums() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": ["integer", "null"]},
                "ignored": {"type": "boolean"}
            },
            "required": ["city", "unit", "days"]
        });
        let arguments = arguments_from_schema(Some(&schema));
        assert_eq!(
            arguments,
            json!({"city": "mock", "unit": "celsius", "days": 1})
        );
        let all = json!({"properties": {"a": {"type": "boolean"}, "b": {"type": "array"}, "c": {"type": "object"}}});
        assert_eq!(
            arguments_from_schema(Some(&all)),
            json!({"a": true, "b": [], "c": {}})
        );
        let gemini = json!({"type": "OBJECT", "properties": {"q": {"type": "STRING"}, "n": {"type": "INTEGER"}}});
        assert_eq!(
            arguments_from_schema(Some(&gemini)),
            json!({"q": "mock", "n": 1})
        );
    }

    #[test]
    fn argument_pieces_are_at_least_three() {
        assert_eq!(argument_pieces("{}"), ["{", "}", ""]);
        let long = r#"{"city":"mock","unit":"celsius"}"#;
        let pieces = argument_pieces(long);
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces.concat(), long);
    }
}
