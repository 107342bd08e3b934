//! Micro-benchmarks of the streaming hot path, on streams built in memory (no I/O):
//!
//! - `sse_decode`: a provider's body, cut into network-sized reads, through
//!   `providers::decode_sse` (the code the transport runs over every streamed answer);
//!   events/s and MiB/s of body.
//! - `translate`: decoded events through `Provider::stream_decoder`, each chunk serialized with
//!   `serde_json::to_string` as the server does before writing it; OpenAI pass-through,
//!   Anthropic Messages -> OpenAI and Gemini -> OpenAI; chunks/s and MiB/s of provider events.
//!   `decode_only` leaves out the serialization; `openai_reference` times serde_json alone on
//!   the same OpenAI events (into a `Value`, into the typed chunk, and typed plus written back),
//!   a floor for the pass-through to compare with.
//! - `end_to_end`: both at once, from 1,460-byte reads to serialized chunks.
//!
//! Run: `cargo bench -p opengateway --bench stream` (a quick pass:
//! `cargo bench -p opengateway --bench stream -- --warm-up-time 1 --measurement-time 3`).

use std::convert::Infallible;
use std::hint::black_box;
use std::pin::pin;

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use futures_util::{FutureExt, StreamExt, stream};
use opengateway::providers::anthropic::AnthropicProvider;
use opengateway::providers::gemini::GeminiProvider;
use opengateway::providers::openai::OpenAiProvider;
use opengateway::providers::{
    Provider, ProviderType, SseEvent, StreamContext, StreamDecoder, decode_sse,
};
use opengateway::types::ChatCompletionChunk;

/// Text deltas per stream: a few paragraphs of answer, one token per event.
const TOKENS: usize = 200;

/// A TCP segment's payload on a 1,500-byte MTU: the smallest read a stream usually gets.
const SEGMENT: usize = 1460;

/// A large read, as when the client is slower than the provider and bytes pile up.
const LARGE_READ: usize = 16 * 1024;

const WORDS: &[&str] = &[
    "The",
    " gateway",
    " translates",
    " every",
    " provider",
    "'s",
    " stream",
    " into",
    " OpenAI",
    " chunks",
    ",",
    " one",
    " event",
    " at",
    " a",
    " time",
    ",",
    " and",
    " forwards",
    " each",
    " to",
    " the",
    " client",
    " as",
    " soon",
    " as",
    " it",
    " arrives",
    ".",
    "\\n\\n",
];

fn token(i: usize) -> &'static str {
    WORDS[i % WORDS.len()]
}

/// An OpenAI Chat Completions stream with `include_usage`: role chunk, `TOKENS` content chunks,
/// the finish chunk, the usage chunk and `[DONE]`, with the fields OpenAI sends today.
fn openai_body() -> String {
    let head = r#"{"id":"chatcmpl-BenchStream0000000000000000001","object":"chat.completion.chunk","created":1766084435,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_deacdd5f6f","choices":["#;
    let mut body = String::new();
    let mut event = |choices: &str, usage: &str| {
        body.push_str("data: ");
        body.push_str(head);
        body.push_str(choices);
        body.push_str(r#"],"usage":"#);
        body.push_str(usage);
        body.push_str(r#","obfuscation":"nYdSaPIbhl6F"}"#);
        body.push_str("\n\n");
    };
    event(
        r#"{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}"#,
        "null",
    );
    for i in 0..TOKENS {
        event(
            &format!(
                r#"{{"index":0,"delta":{{"content":"{}"}},"logprobs":null,"finish_reason":null}}"#,
                token(i)
            ),
            "null",
        );
    }
    event(
        r#"{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}"#,
        "null",
    );
    event(
        "",
        &format!(
            r#"{{"prompt_tokens":1017,"completion_tokens":{TOKENS},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}"#,
            1017 + TOKENS
        ),
    );
    body.push_str("data: [DONE]\n\n");
    body
}

/// An Anthropic Messages stream: message_start, content_block_start, a ping, `TOKENS`
/// text deltas, content_block_stop, message_delta with usage and message_stop.
fn anthropic_body() -> String {
    let mut body = String::new();
    let mut event = |name: &str, data: &str| {
        body.push_str("event: ");
        body.push_str(name);
        body.push_str("\ndata: ");
        body.push_str(data);
        body.push_str("\n\n");
    };
    event(
        "message_start",
        r#"{"type":"message_start","message":{"model":"claude-sonnet-4-20250514","id":"msg_01BenchStream000000000001","type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1017,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}"#,
    );
    event(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    );
    event("ping", r#"{"type": "ping"}"#);
    for i in 0..TOKENS {
        event(
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{}"}}}}"#,
                token(i)
            ),
        );
    }
    event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    );
    event(
        "message_delta",
        &format!(
            r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"input_tokens":1017,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{TOKENS}}}}}"#
        ),
    );
    event("message_stop", r#"{"type":"message_stop"}"#);
    body
}

/// A Gemini `streamGenerateContent?alt=sse` stream (CRLF line ends, as Google sends them):
/// `TOKENS` text parts, the last with `finishReason` and the full usage.
fn gemini_body() -> String {
    let mut body = String::new();
    for i in 0..TOKENS {
        let last = i + 1 == TOKENS;
        let finish = if last {
            r#","finishReason": "STOP""#
        } else {
            ""
        };
        let usage = if last {
            format!(
                r#"{{"promptTokenCount": 1017,"candidatesTokenCount": {TOKENS},"totalTokenCount": {},"promptTokensDetails": [{{"modality": "TEXT","tokenCount": 1017}}],"candidatesTokensDetails": [{{"modality": "TEXT","tokenCount": {TOKENS}}}]}}"#,
                1017 + TOKENS
            )
        } else {
            r#"{"promptTokenCount": 1017,"totalTokenCount": 1017,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 1017}]}"#.to_owned()
        };
        body.push_str(&format!(
            r#"data: {{"candidates": [{{"content": {{"parts": [{{"text": "{}"}}],"role": "model"}}{finish},"index": 0}}],"usageMetadata": {usage},"modelVersion": "gemini-2.5-flash","responseId": "w1peaMz6INOvnvgPgYfPiQY"}}"#,
            token(i)
        ));
        body.push_str("\r\n\r\n");
    }
    body
}

/// `body` cut into reads of `size` bytes (the last one shorter), cutting lines anywhere.
fn reads(body: &str, size: usize) -> Vec<Bytes> {
    let body = Bytes::copy_from_slice(body.as_bytes());
    (0..body.len())
        .step_by(size)
        .map(|start| body.slice(start..(start + size).min(body.len())))
        .collect()
}

/// `body` cut after each event, as a provider that flushes every event gets read.
fn reads_per_event(body: &str) -> Vec<Bytes> {
    let separator = if body.contains("\r\n\r\n") {
        "\r\n\r\n"
    } else {
        "\n\n"
    };
    body.split_inclusive(separator)
        .map(|event| Bytes::copy_from_slice(event.as_bytes()))
        .collect()
}

/// Runs `decode_sse` over `reads` and hands each event to `on_event`. The reads are in memory,
/// so every poll is ready and no executor is needed.
fn decode(reads: &[Bytes], mut on_event: impl FnMut(SseEvent)) {
    let body = stream::iter(reads.iter().cloned().map(Ok::<Bytes, Infallible>));
    let mut events = pin!(decode_sse("bench", body, |never| match never {}));
    while let Some(item) = events
        .next()
        .now_or_never()
        .expect("an in-memory stream is always ready")
    {
        on_event(item.expect("the bench streams are well-formed SSE"));
    }
}

fn events_of(body: &str) -> Vec<SseEvent> {
    let mut events = Vec::new();
    decode(&reads(body, SEGMENT), |event| events.push(event));
    events
}

/// Feeds `event` to `decoder` and passes on the chunks it yields; counts them.
struct Translator {
    decoder: Box<dyn StreamDecoder>,
    chunks: u64,
    serialize: bool,
}

impl Translator {
    fn new(provider: &dyn Provider, serialize: bool) -> Self {
        Translator {
            decoder: provider.stream_decoder(StreamContext {
                include_usage: true,
            }),
            chunks: 0,
            serialize,
        }
    }

    fn emit(&mut self, chunks: Vec<ChatCompletionChunk>) {
        for chunk in chunks {
            self.chunks += 1;
            if self.serialize {
                let json = serde_json::to_string(&chunk).expect("a chunk always serializes");
                black_box(json);
            } else {
                black_box(chunk);
            }
        }
    }

    fn on_event(&mut self, event: &SseEvent) {
        if self.decoder.is_done() {
            return;
        }
        let chunks = self
            .decoder
            .on_event(event)
            .expect("the bench streams are valid");
        self.emit(chunks);
    }

    /// The end of the body; returns the number of chunks produced.
    fn finish(mut self) -> u64 {
        let chunks = self
            .decoder
            .finish()
            .expect("the bench streams are complete");
        self.emit(chunks);
        self.chunks
    }
}

fn translate(provider: &dyn Provider, events: &[SseEvent], serialize: bool) -> u64 {
    let mut translator = Translator::new(provider, serialize);
    for event in events {
        translator.on_event(event);
    }
    translator.finish()
}

struct Case {
    name: &'static str,
    provider: Box<dyn Provider>,
    body: String,
}

fn cases() -> Vec<Case> {
    let openai = OpenAiProvider::new(
        "openai",
        ProviderType::Openai,
        "http://127.0.0.1:1/v1",
        Some("sk-bench"),
        &[],
    )
    .expect("a valid provider entry");
    let anthropic =
        AnthropicProvider::new("anthropic", "http://127.0.0.1:1/v1", Some("sk-bench"), &[])
            .expect("a valid provider entry");
    let gemini = GeminiProvider::new("gemini", "http://127.0.0.1:1/v1beta", Some("bench"), &[])
        .expect("a valid provider entry");
    vec![
        Case {
            name: "openai_passthrough",
            provider: Box::new(openai),
            body: openai_body(),
        },
        Case {
            name: "anthropic_to_openai",
            provider: Box::new(anthropic),
            body: anthropic_body(),
        },
        Case {
            name: "gemini_to_openai",
            provider: Box::new(gemini),
            body: gemini_body(),
        },
    ]
}

fn bench_sse_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse_decode");
    let openai = openai_body();
    let anthropic = anthropic_body();
    let inputs = [
        ("openai", &openai, "1460B_reads", reads(&openai, SEGMENT)),
        ("openai", &openai, "16KiB_reads", reads(&openai, LARGE_READ)),
        ("openai", &openai, "event_reads", reads_per_event(&openai)),
        (
            "anthropic",
            &anthropic,
            "1460B_reads",
            reads(&anthropic, SEGMENT),
        ),
    ];
    for (name, body, cut, pieces) in &inputs {
        let events = events_of(body).len() as u64;
        group.throughput(Throughput::ElementsAndBytes {
            elements: events,
            bytes: body.len() as u64,
        });
        group.bench_with_input(BenchmarkId::new(*name, cut), pieces, |b, pieces| {
            b.iter(|| {
                let mut data = 0usize;
                decode(pieces, |event| data += event.data.len());
                data
            })
        });
    }
    group.finish();
}

fn bench_translate(c: &mut Criterion) {
    let mut group = c.benchmark_group("translate");
    for case in cases() {
        let events = events_of(&case.body);
        let chunks = translate(case.provider.as_ref(), &events, false);
        group.throughput(Throughput::ElementsAndBytes {
            elements: chunks,
            bytes: case.body.len() as u64,
        });
        for (variant, serialize) in [("decode_only", false), ("decode+serialize", true)] {
            group.bench_with_input(
                BenchmarkId::new(case.name, variant),
                &events,
                |b, events| b.iter(|| translate(case.provider.as_ref(), events, serialize)),
            );
        }
        if case.name == "openai_passthrough" {
            openai_references(&mut group, &events, chunks, case.body.len() as u64);
        }
    }
    group.finish();
}

/// A named reference: one function of an event's data.
type Reference = (&'static str, fn(&str));

/// What the pass-through costs against serde_json alone, per event: the parse into a
/// `serde_json::Value` it does first, a parse straight into the typed chunk, and that parse
/// plus the serialization (the floor for a pass-through that keeps the typed chunk).
fn openai_references(
    group: &mut BenchmarkGroup<'_, WallTime>,
    events: &[SseEvent],
    chunks: u64,
    bytes: u64,
) {
    let typed: Vec<&SseEvent> = events.iter().filter(|e| e.data != "[DONE]").collect();
    group.throughput(Throughput::ElementsAndBytes {
        elements: chunks,
        bytes,
    });
    // Each reference is one function of an event's data, run over every event.
    let references: [Reference; 3] = [
        ("value_parse", |data| {
            let value: serde_json::Value =
                serde_json::from_str(data).expect("the bench chunks are JSON");
            black_box(value);
        }),
        ("typed_parse", |data| {
            let chunk: ChatCompletionChunk =
                serde_json::from_str(data).expect("the bench chunks are valid");
            black_box(chunk);
        }),
        ("typed_parse+serialize", |data| {
            let chunk: ChatCompletionChunk =
                serde_json::from_str(data).expect("the bench chunks are valid");
            black_box(serde_json::to_string(&chunk).expect("a chunk serializes"));
        }),
    ];
    for (name, reference) in references {
        group.bench_with_input(
            BenchmarkId::new("openai_reference", name),
            &typed,
            |b, typed| {
                b.iter(|| {
                    for event in typed {
                        reference(&event.data);
                    }
                })
            },
        );
    }
}

fn bench_end_to_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("end_to_end");
    for case in cases() {
        let pieces = reads(&case.body, SEGMENT);
        let chunks = translate(case.provider.as_ref(), &events_of(&case.body), false);
        group.throughput(Throughput::ElementsAndBytes {
            elements: chunks,
            bytes: case.body.len() as u64,
        });
        group.bench_with_input(
            BenchmarkId::new(case.name, "1460B_reads"),
            &pieces,
            |b, pieces| {
                b.iter(|| {
                    let mut translator = Translator::new(case.provider.as_ref(), true);
                    decode(pieces, |event| translator.on_event(&event));
                    translator.finish()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_sse_decode, bench_translate, bench_end_to_end);
criterion_main!(benches);
