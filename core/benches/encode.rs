//! Micro-benchmarks of the request path, on a representative chat request (a system prompt,
//! ten user/assistant turns of a few hundred words with one tool call, one tool definition with
//! a JSON-schema parameter object, temperature and max_tokens):
//!
//! - `parse_request`: the client's JSON body into `types::ChatCompletionRequest` with
//!   `types::from_json`, as the server does for every request; requests/s and MiB/s of body.
//! - `encode_chat`: that request into the upstream request with `Provider::encode_chat` of the
//!   OpenAI, Anthropic and Gemini adapters, unary and streaming; requests/s and MiB/s of the
//!   body produced.
//!
//! - `answer`: an OpenAI chat completion (the mock provider's, 549 bytes) decoded with
//!   `Provider::decode_chat`, as every non-streamed answer is, and written back as the server
//!   writes it.
//!
//! The `serde_json_reference` rows time serde_json alone on the same data (parse without field
//! paths; the request written back as it is), a floor to compare the gateway's code with.
//!
//! Run: `cargo bench -p opengateway --bench encode` (a quick pass:
//! `cargo bench -p opengateway --bench encode -- --warm-up-time 1 --measurement-time 3`).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use opengateway::providers::anthropic::AnthropicProvider;
use opengateway::providers::gemini::GeminiProvider;
use opengateway::providers::openai::OpenAiProvider;
use opengateway::providers::{Provider, ProviderType};
use opengateway::types::{ChatCompletionRequest, from_json};

/// What a client of a coding or support assistant sends mid-conversation.
const REQUEST: &str = r#"{
  "model": "openai/gpt-4o-mini",
  "messages": [
    {"role": "system", "content": "You are a concise travel assistant for a rail operator. Answer in plain English, keep answers under one hundred words, quote prices in euros, and call get_weather before you give any advice that depends on the weather at the destination."},
    {"role": "user", "content": "Hi! I am planning a trip from Lyon to Turin next month and I would like to go by train rather than fly. Is that a reasonable idea?"},
    {"role": "assistant", "content": "It is a very reasonable idea. The direct high-speed service through the Alps takes a little over four hours, city centre to city centre, and avoids the airport transfers at both ends. Booking six to eight weeks ahead usually gets the lowest fares."},
    {"role": "user", "content": "Great. How much should I expect to pay for a second class ticket, and is first class worth the difference?"},
    {"role": "assistant", "content": "Second class fares start around 29 euros when booked early and rise to about 90 euros close to departure. First class adds wider seats, a quieter carriage and a power socket at every seat; it is worth it on a four hour trip if the difference is under 30 euros."},
    {"role": "user", "content": "Can I bring my bicycle on board, or do I need to send it separately?"},
    {"role": "assistant", "content": "Folded bicycles travel free as hand luggage. A full-size bicycle needs a reservation for one of the few bike spaces, at about 10 euros, and these sell out in summer, so reserve it together with your ticket."},
    {"role": "user", "content": "What about food? The train leaves at noon and I would rather not arrive starving."},
    {"role": "assistant", "content": "There is a bar car with sandwiches, salads and hot drinks for most of the journey. Prices are higher than in the stations, so many travellers buy lunch at Lyon Part-Dieu before boarding and keep the bar for coffee."},
    {"role": "user", "content": "Perfect. Last question: what will the weather be like in Turin the week of the 14th? I need to know whether to pack a rain jacket."},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9b3f2c1e", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Turin\",\"country\":\"IT\",\"days\":7,\"unit\":\"celsius\"}"}}]},
    {"role": "tool", "tool_call_id": "call_9b3f2c1e", "content": "{\"city\":\"Turin\",\"forecast\":[{\"day\":\"Mon\",\"high\":17,\"low\":8,\"rain_mm\":0},{\"day\":\"Tue\",\"high\":15,\"low\":9,\"rain_mm\":6},{\"day\":\"Wed\",\"high\":14,\"low\":7,\"rain_mm\":11}]}"},
    {"role": "user", "content": "So, rain jacket or not?"}
  ],
  "tools": [
    {
      "type": "function",
      "function": {
        "name": "get_weather",
        "description": "Daily weather forecast for a city, up to fourteen days ahead.",
        "parameters": {
          "type": "object",
          "properties": {
            "city": {"type": "string", "description": "City name, e.g. Turin"},
            "country": {"type": "string", "description": "ISO 3166-1 alpha-2 country code", "pattern": "^[A-Z]{2}$"},
            "days": {"type": "integer", "minimum": 1, "maximum": 14, "default": 3},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
          },
          "required": ["city", "days"],
          "additionalProperties": false
        }
      }
    }
  ],
  "tool_choice": "auto",
  "temperature": 0.7,
  "max_tokens": 512
}"#;

/// The throughput of one request or answer of `bytes` bytes per iteration.
fn one_of(bytes: usize) -> Throughput {
    Throughput::ElementsAndBytes {
        elements: 1,
        bytes: bytes as u64,
    }
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_request");
    group.throughput(one_of(REQUEST.len()));
    group.bench_function("from_json", |b| {
        b.iter(|| {
            from_json::<ChatCompletionRequest>(black_box(REQUEST.as_bytes()))
                .expect("the bench request is valid")
        })
    });
    // serde_json alone, without the field path `from_json` tracks for its error messages.
    group.bench_function("serde_json_reference", |b| {
        b.iter(|| {
            serde_json::from_slice::<ChatCompletionRequest>(black_box(REQUEST.as_bytes()))
                .expect("the bench request is valid")
        })
    });
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let request: ChatCompletionRequest =
        from_json(REQUEST.as_bytes()).expect("the bench request is valid");
    let providers: Vec<(&str, Box<dyn Provider>, &str)> = vec![
        (
            "openai",
            Box::new(
                OpenAiProvider::new(
                    "openai",
                    ProviderType::Openai,
                    "http://127.0.0.1:1/v1",
                    Some("sk-bench"),
                    &[],
                )
                .expect("a valid provider entry"),
            ),
            "gpt-4o-mini",
        ),
        (
            "anthropic",
            Box::new(
                AnthropicProvider::new("anthropic", "http://127.0.0.1:1/v1", Some("sk-bench"), &[])
                    .expect("a valid provider entry"),
            ),
            "claude-sonnet-4-20250514",
        ),
        (
            "gemini",
            Box::new(
                GeminiProvider::new("gemini", "http://127.0.0.1:1/v1beta", Some("bench"), &[])
                    .expect("a valid provider entry"),
            ),
            "gemini-2.5-flash",
        ),
    ];
    let mut group = c.benchmark_group("encode_chat");
    for (name, provider, model) in &providers {
        for stream in [false, true] {
            let body = provider
                .encode_chat(&request, model, stream)
                .expect("the bench request encodes")
                .body;
            group.throughput(one_of(body.len()));
            let variant = if stream { "stream" } else { "unary" };
            group.bench_with_input(BenchmarkId::new(*name, variant), &request, |b, request| {
                b.iter(|| {
                    provider
                        .encode_chat(black_box(request), model, stream)
                        .expect("the bench request encodes")
                })
            });
        }
    }
    // The request written as it is: what the OpenAI pass-through costs without its copy of the
    // request (it clones it to set the upstream model and drop the gateway's own fields).
    let body = serde_json::to_vec(&request).expect("a request serializes");
    group.throughput(one_of(body.len()));
    group.bench_with_input(
        BenchmarkId::new("serde_json_reference", "to_vec"),
        &request,
        |b, request| {
            b.iter(|| serde_json::to_vec(black_box(request)).expect("a request serializes"))
        },
    );
    group.finish();
}

/// The mock provider's answer to a chat request, as `bench/server` receives it.
const ANSWER: &str = r#"{"id":"chatcmpl-mock-1","object":"chat.completion","created":1796650086,"model":"mock-gpt","choices":[{"index":0,"message":{"role":"assistant","content":"word0 word1 word2 word3 word4","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_mock"}"#;

fn bench_answer(c: &mut Criterion) {
    let provider = OpenAiProvider::new(
        "openai",
        ProviderType::Openai,
        "http://127.0.0.1:1/v1",
        Some("sk-bench"),
        &[],
    )
    .expect("provider");
    let mut group = c.benchmark_group("answer");
    group.throughput(one_of(ANSWER.len()));
    group.bench_function("decode_chat", |b| {
        b.iter(|| {
            provider
                .decode_chat(black_box(ANSWER.as_bytes()))
                .expect("decodes")
        })
    });
    group.bench_function("decode_serde_json_reference", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(ANSWER)).expect("JSON"))
    });
    let answer = provider.decode_chat(ANSWER.as_bytes()).expect("decodes");
    group.bench_function("encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(&answer)).expect("encodes"))
    });
    group.finish();
}

criterion_group!(benches, bench_parse, bench_encode, bench_answer);
criterion_main!(benches);
