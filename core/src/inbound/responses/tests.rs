#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::*;
use crate::types::{ChatCompletion, ChatCompletionChunk};

fn request(body: Value) -> ResponsesRequest {
    serde_json::from_value(body).unwrap()
}

fn chat_json(body: Value) -> Value {
    serde_json::to_value(to_chat_request(&request(body)).unwrap()).unwrap()
}

#[test]
fn request_translates_items_tools_and_settings() {
    let got = chat_json(json!({
        "model": "anthropic/claude",
        "models": ["gemini/flash"],
        "instructions": "Be brief.",
        "input": [
            {"role": "system", "content": "sys"},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Weather?"},
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
                {"type": "input_file", "file_data": "data:application/pdf;base64,QQ==", "filename": "a.pdf"}
            ]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"role": "developer", "content": [{"type": "input_text", "text": "dev"}]}
        ],
        "tools": [{"type": "function", "name": "get_weather", "description": "d",
                   "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}},
        "reasoning": {"effort": "high", "summary": "auto"},
        "max_output_tokens": 300,
        "temperature": 0.5,
        "top_p": 0.9,
        "parallel_tool_calls": false,
        "metadata": {"tags": "a"},
        "user": "u1",
        "store": true,
        "stream_options": {"include_obfuscation": false},
        "include": ["reasoning.encrypted_content"],
        "custom": 1
    }));
    assert_eq!(
        got,
        json!({
            "model": "anthropic/claude",
            "models": ["gemini/flash"],
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,QQ==", "filename": "a.pdf"}}
                ]},
                {"role": "assistant", "content": "Let me look.", "reasoning_content": "think",
                 "tool_calls": [{"id": "call_1", "type": "function",
                                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "developer", "content": [{"type": "text", "text": "dev"}]}
            ],
            "temperature": 0.5,
            "top_p": 0.9,
            "max_completion_tokens": 300,
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
                       "parameters": {"type": "object"}, "strict": true}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}},
            "reasoning_effort": "high",
            "user": "u1",
            "metadata": {"tags": "a"},
            "custom": 1
        })
    );
}

#[test]
fn string_input_and_json_object_format() {
    let got = chat_json(
        json!({"model": "m/x", "input": "hi", "text": {"format": {"type": "json_object"}}}),
    );
    assert_eq!(got["messages"], json!([{"role": "user", "content": "hi"}]));
    assert_eq!(got["response_format"], json!({"type": "json_object"}));
}

#[test]
fn untranslatable_fields_are_refused_by_name() {
    let cases = [
        (
            json!({"tools": [{"type": "function", "name": "f"}, {"type": "web_search"}]}),
            "tools[1]",
        ),
        (
            json!({"previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!({"conversation": "conv_1"}), "conversation"),
        (json!({"background": true}), "background"),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}),
            "input[0].content[0].file_id",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}]}),
            "input[0].content[0].file_id",
        ),
        (
            json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input[0].type",
        ),
        (
            json!({"input": [{"type": "web_search_call", "id": "ws_1"}]}),
            "input[0].type",
        ),
        (
            json!({"tool_choice": {"type": "file_search"}}),
            "tool_choice",
        ),
        (
            json!({"text": {"format": {"type": "yaml"}}}),
            "text.format.type",
        ),
        (
            json!({"input": [{"role": "robot", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
            "input[0].call_id",
        ),
    ];
    for (extra, param) in cases {
        let mut body = json!({"model": "m/x", "input": "hi"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let err = to_chat_request(&request(body)).unwrap_err();
        assert_eq!(err.status(), 400, "{param}");
        assert_eq!(err.param(), Some(param), "{}", err.message());
        assert!(err.message().contains(param), "{}", err.message());
    }
}

fn completion(body: Value) -> ChatCompletion {
    serde_json::from_value(body).unwrap()
}

#[test]
fn chat_answer_becomes_a_response() {
    let req = request(
        json!({"model": "anthropic/claude", "input": "hi", "instructions": "x",
                             "tools": [{"type": "function", "name": "f"}], "metadata": {"k": "v"}}),
    );
    let got = from_chat_response(
        &completion(json!({
            "id": "c1", "object": "chat.completion", "created": 7, "model": "claude-x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Checking.", "reasoning_content": "hmm",
                "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                      "prompt_tokens_details": {"cached_tokens": 4},
                      "completion_tokens_details": {"reasoning_tokens": 2}, "cost": 0.25},
            "provider": "anthropic"
        })),
        &req,
    );
    assert!(got["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(got["object"], "response");
    assert_eq!(got["created_at"], 7);
    assert_eq!(got["status"], "completed");
    assert_eq!(got["model"], "claude-x");
    assert_eq!(got["provider"], "anthropic");
    assert_eq!(got["instructions"], "x");
    assert_eq!(got["metadata"], json!({"k": "v"}));
    assert_eq!(got["tools"], json!([{"type": "function", "name": "f"}]));
    let output = got["output"].as_array().unwrap();
    let kinds: Vec<&str> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["reasoning", "message", "function_call"]);
    assert_eq!(output[0]["summary"][0]["text"], "hmm");
    assert!(output[1]["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        output[1]["content"][0],
        json!({"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []})
    );
    assert!(output[2]["id"].as_str().unwrap().starts_with("fc_"));
    assert_eq!(output[2]["call_id"], "call_9");
    assert_eq!(output[2]["status"], "completed");
    assert_eq!(
        got["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
               "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2},
               "total_tokens": 15, "cost": 0.25})
    );
}

#[test]
fn length_and_content_filter_are_incomplete() {
    let req = request(json!({"model": "m/x", "input": "hi"}));
    for (finish, reason) in [
        ("length", "max_output_tokens"),
        ("content_filter", "content_filter"),
    ] {
        let got = from_chat_response(
            &completion(json!({"id": "c", "created": 1, "model": "x", "choices": [
                {"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": "par"}}]})),
            &req,
        );
        assert_eq!(got["status"], "incomplete");
        assert_eq!(got["incomplete_details"], json!({"reason": reason}));
        assert_eq!(got["output"][0]["status"], "incomplete");
    }
}

fn chunk(delta: Value, finish: Option<&str>) -> ChatCompletionChunk {
    serde_json::from_value(
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
        "model": "claude-x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
    )
    .unwrap()
}

fn events_of(events: &[ResponsesEvent]) -> Vec<(String, Value)> {
    events
        .iter()
        .map(|e| {
            let data: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(data["type"], e.name.as_str(), "event name and type agree");
            (e.name.clone(), data)
        })
        .collect()
}

#[test]
fn chunks_become_the_event_sequence() {
    let mut encoder =
        ResponsesStreamEncoder::new(request(json!({"model": "anthropic/claude", "input": "hi"})));
    let mut out = Vec::new();
    out.extend(encoder.on_chunk(&chunk(
        json!({"role": "assistant", "reasoning_content": "Let "}),
        None,
    )));
    out.extend(encoder.on_chunk(&chunk(json!({"reasoning_content": "me."}), None)));
    out.extend(encoder.on_chunk(&chunk(json!({"content": "Sure"}), None)));
    out.extend(encoder.on_chunk(&chunk(json!({"content": "!"}), None)));
    out.extend(encoder.on_chunk(&chunk(
        json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
        None,
    )));
    out.extend(encoder.on_chunk(&chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
        None,
    )));
    out.extend(encoder.on_chunk(&chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        Some("tool_calls"),
    )));
    let usage: ChatCompletionChunk = serde_json::from_value(json!({"id": "c", "created": 1, "model": "claude-x",
        "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "cost": 0.5}}))
    .unwrap();
    out.extend(encoder.on_chunk(&usage));
    out.extend(encoder.finish());
    assert!(encoder.is_finished());
    let events = events_of(&out);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i, "sequence numbers count from 0");
    }
    assert_eq!(events[6].1["text"], "Let me.");
    assert_eq!(events[13].1["text"], "Sure!");
    assert_eq!(events[19].1["arguments"], "{\"a\":1}");
    let done = &events[21].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["id"], events[0].1["response"]["id"]);
    let kinds: Vec<&str> = done["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reasoning", "message", "function_call"]);
    assert_eq!(done["output"][2]["call_id"], "call_1");
    assert_eq!(done["usage"]["input_tokens"], 3);
    assert_eq!(done["usage"]["output_tokens"], 4);
    assert_eq!(done["usage"]["cost"], 0.5);
}

#[test]
fn length_ends_with_response_incomplete() {
    let mut encoder = ResponsesStreamEncoder::new(request(json!({"model": "m/x", "input": "hi"})));
    let mut out = encoder.on_chunk(&chunk(json!({"content": "par"}), Some("length")));
    out.extend(encoder.finish());
    let events = events_of(&out);
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert_eq!(last["response"]["output"][0]["status"], "incomplete");
}

#[test]
fn an_error_after_the_start_is_error_then_response_failed() {
    let mut encoder = ResponsesStreamEncoder::new(request(json!({"model": "m/x", "input": "hi"})));
    let mut out = encoder.on_chunk(&chunk(json!({"content": "Hel"}), None));
    let err = crate::Error::new(crate::ErrorKind::ServiceUnavailable, "overloaded");
    out.extend(encoder.on_error(&err));
    assert!(encoder.finish().is_empty(), "nothing after the failure");
    let events = events_of(&out);
    let n = events.len();
    assert_eq!(events[n - 2].0, "error");
    assert_eq!(events[n - 2].1["message"], "overloaded");
    assert_eq!(events[n - 2].1["error"]["message"], "overloaded");
    assert_eq!(events[n - 1].0, "response.failed");
    assert_eq!(events[n - 1].1["response"]["status"], "failed");
    assert_eq!(events[n - 1].1["response"]["error"]["code"], "server_error");
}

#[test]
fn responses_usage_round_trips() {
    let usage = json!({"input_tokens": 16, "input_tokens_details": {"cached_tokens": 2},
                       "output_tokens": 11, "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 27});
    let canonical = usage_from_responses(&usage).unwrap();
    assert_eq!(canonical.prompt_tokens, 16);
    assert_eq!(canonical.completion_tokens, 11);
    assert_eq!(canonical.total_tokens, 27);
    let back = responses_usage(&canonical);
    assert_eq!(back["input_tokens_details"]["cached_tokens"], 2);
    assert_eq!(back["output_tokens_details"]["reasoning_tokens"], 3);
}
