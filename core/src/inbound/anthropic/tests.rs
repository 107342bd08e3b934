#![allow(clippy::unwrap_used)]

use super::*;
use crate::types::{
    ChatCompletion, ChatCompletionChunk, ChatMessage, Choice, ChunkChoice, Delta, FinishReason,
    FunctionCall, FunctionCallDelta, FunctionKind, JsonObject, MessageContent, PromptTokensDetails,
    ResponseMessage, ThinkingBlock, ToolCall, ToolCallDelta, Usage,
};

fn request(v: Value) -> MessagesRequest {
    serde_json::from_value(v).unwrap()
}

fn chat_json(v: Value) -> Value {
    serde_json::to_value(to_chat_request(&request(v)).unwrap()).unwrap()
}

fn param_of(v: Value) -> String {
    let err = to_chat_request(&request(v)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest, "{err}");
    err.param().unwrap_or_default().to_owned()
}

#[test]
fn multi_turn_with_thinking_tools_and_results() {
    let chat = chat_json(json!({
        "model": "mock/mock-gpt",
        "max_tokens": 2048,
        "system": [
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Use tools."}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris? See the map and the report."},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/map.png"}, "cache_control": {"type": "ephemeral"}},
                {"type": "document", "title": "report.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Sunny all week."}}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Need the tool.", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "text", "text": "Here you go."},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C", "cache_control": {"type": "ephemeral"}},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                 "content": [{"type": "text", "text": "clock broken"}]}
            ]},
            {"role": "assistant", "content": "It is 18C."},
            {"role": "user", "content": "Thanks"}
        ],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"},
                   "cache_control": {"type": "ephemeral"}, "strict": true},
                  {"type": "custom", "name": "get_time", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "metadata": {"user_id": "u-1"},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        "stream": true,
        "fallbacks": ["mock/mock-gpt-mini"],
        "mock": {"content": "x"}
    }));
    assert_eq!(
        chat,
        json!({
            "model": "mock/mock-gpt",
            "messages": [
                {"role": "system", "content": [
                    {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "Use tools."}
                ]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris? See the map and the report."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/map.png"}, "cache_control": {"type": "ephemeral"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "report.pdf"}},
                    {"type": "text", "text": "Sunny all week."}
                ]},
                {"role": "assistant", "content": "Let me check.",
                 "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                 ],
                 "reasoning_content": "Need the tool.",
                 "thinking_blocks": [
                    {"type": "thinking", "thinking": "Need the tool.", "signature": "sig-1"},
                    {"type": "redacted_thinking", "data": "opaque"}
                 ]},
                {"role": "tool", "content": "18C", "tool_call_id": "toolu_1", "cache_control": {"type": "ephemeral"}},
                {"role": "tool", "content": "clock broken", "tool_call_id": "toolu_2", "is_error": true},
                {"role": "user", "content": "Here you go."},
                {"role": "assistant", "content": "It is 18C."},
                {"role": "user", "content": "Thanks"}
            ],
            "temperature": 0.5,
            "top_p": 0.9,
            "stream": true,
            "stop": ["END"],
            "max_completion_tokens": 2048,
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                 "parameters": {"type": "object"}, "strict": true}, "cache_control": {"type": "ephemeral"}},
                {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
            ],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "object"}}},
            "reasoning_effort": "medium",
            "user": "u-1",
            "models": ["mock/mock-gpt-mini"],
            "mock": {"content": "x"},
            "top_k": 40,
            "thinking": {"type": "enabled", "budget_tokens": 10000}
        })
    );
}

#[test]
fn small_requests_stay_plain_and_map_choices_and_effort() {
    let chat = chat_json(json!({
        "model": "m/x", "max_tokens": 5, "system": "sys",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                     {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}],
        "tool_choice": {"type": "tool", "name": "f"},
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "seed": 7
    }));
    assert_eq!(
        chat["messages"][0],
        json!({"role": "system", "content": "sys"})
    );
    assert_eq!(
        chat["messages"][1],
        json!({"role": "user", "content": "hi"})
    );
    assert!(
        chat["messages"][2].get("content").is_none(),
        "tool-call-only turns have no content: {chat}"
    );
    assert_eq!(
        chat["messages"][3],
        json!({"role": "tool", "content": "", "tool_call_id": "t"})
    );
    assert_eq!(chat["messages"].as_array().unwrap().len(), 4);
    assert_eq!(
        chat["tool_choice"],
        json!({"type": "function", "function": {"name": "f"}})
    );
    assert_eq!(chat["seed"], 7, "OpenAI fields pass through typed");
    assert!(chat.get("parallel_tool_calls").is_none());

    let effort = |thinking: Value, config: Option<Value>| {
        let mut v = json!({"model": "m/x", "max_tokens": 5, "thinking": thinking,
                           "messages": [{"role": "user", "content": "hi"}]});
        if let Some(c) = config {
            v["output_config"] = c;
        }
        chat_json(v)["reasoning_effort"].clone()
    };
    let enabled = |b: u32| json!({"type": "enabled", "budget_tokens": b});
    assert_eq!(effort(enabled(1024), None), "low");
    assert_eq!(effort(enabled(4000), None), "low");
    assert_eq!(effort(enabled(4096), None), "medium");
    assert_eq!(effort(enabled(16383), None), "medium");
    assert_eq!(effort(enabled(31999), None), "high");
    assert_eq!(effort(json!({"type": "disabled"}), None), Value::Null);
    assert_eq!(
        effort(enabled(1024), Some(json!({"effort": "max"}))),
        "xhigh",
        "output_config.effort wins"
    );
    let chat = chat_json(json!({"model": "m/x", "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
        "tool_choice": {"type": "none"}}));
    assert_eq!(chat["tool_choice"], "none");
}

#[test]
fn invalid_input_names_the_anthropic_field() {
    let with = |content: Value| {
        json!({"model": "m/x", "max_tokens": 5, "messages": [
            {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": content}]})
    };
    assert_eq!(
        param_of(with(
            json!([{"type": "text", "text": "x"}, {"type": "search_result", "source": "s"}])
        )),
        "messages[2].content[1].type"
    );
    assert_eq!(
        param_of(with(json!([{"type": "text"}]))),
        "messages[2].content[0].text"
    );
    assert_eq!(
        param_of(with(
            json!([{"type": "image", "source": {"type": "base64", "data": "x"}}])
        )),
        "messages[2].content[0].source.media_type"
    );
    assert_eq!(
        param_of(with(json!([{"text": "no type"}]))),
        "messages[2].content[0].type"
    );
    assert_eq!(
        param_of(with(
            json!([{"type": "tool_use", "id": "t", "name": "f", "input": {}}])
        )),
        "messages[2].content[0].type"
    );
    assert_eq!(
        param_of(with(
            json!([{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}])
        )),
        "messages[2].content[0].source.type"
    );
    assert_eq!(
        param_of(with(json!([{"type": "tool_result", "tool_use_id": "t",
            "content": [{"type": "image", "source": {"type": "url", "url": "https://x"}}]}]))),
        "messages[2].content[0].content[0].type"
    );
    let base = |extra: Value| {
        let mut v = json!({"model": "m/x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    };
    assert_eq!(
        param_of(base(
            json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]})
        )),
        "tools[0]"
    );
    assert_eq!(
        param_of(base(json!({"tools": [{"name": "f"}]}))),
        "tools[0].input_schema"
    );
    assert_eq!(
        param_of(base(json!({"thinking": {"type": "enabled"}}))),
        "thinking.budget_tokens"
    );
    assert_eq!(
        param_of(base(
            json!({"output_config": {"format": {"type": "regex", "schema": {}}}})
        )),
        "output_config.format.type"
    );
    assert_eq!(
        param_of(base(json!({"output_config": {"task_budget": 1}}))),
        "output_config.task_budget"
    );
    assert_eq!(
        param_of(base(
            json!({"system": [{"type": "image", "source": {"type": "url", "url": "u"}}]})
        )),
        "system[0].type"
    );
    assert_eq!(param_of(base(json!({"n": "two"}))), "n");
    assert_eq!(
        param_of(json!({"model": "m/x", "max_tokens": 5, "messages": []})),
        "messages"
    );
    assert_eq!(
        param_of(json!({"model": "m/x", "max_tokens": 5, "messages": [
            {"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]})),
        "messages[0].content[0].type"
    );
}

fn completion(message: ResponseMessage, finish: &str, usage: Option<Usage>) -> ChatCompletion {
    ChatCompletion {
        id: "chatcmpl-1".into(),
        object: "chat.completion".into(),
        created: 1,
        model: "gpt-x".into(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(FinishReason::from(finish)),
            ..Default::default()
        }],
        usage,
        provider: Some("mock".into()),
        ..Default::default()
    }
}

fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        id: id.into(),
        kind: FunctionKind::Function,
        function: FunctionCall {
            name: name.into(),
            arguments: arguments.into(),
        },
        extra: JsonObject::new(),
    }
}

#[test]
fn response_blocks_stop_reasons_and_usage() {
    let usage = Usage {
        prompt_tokens: 100,
        completion_tokens: 20,
        total_tokens: 120,
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: Some(60),
            cache_write_tokens: Some(30),
            ..Default::default()
        }),
        cost: Some(0.5),
        ..Default::default()
    };
    let message = ResponseMessage {
        content: Some("Checking.".into()),
        reasoning_content: Some("joined text".into()),
        thinking_blocks: Some(vec![
            ThinkingBlock::Thinking {
                thinking: "step".into(),
                signature: Some("sig".into()),
            },
            ThinkingBlock::RedactedThinking { data: "xx".into() },
        ]),
        tool_calls: Some(Some(vec![
            call("call_1", "get_weather", r#"{"city":"Paris"}"#),
            call("call_2", "broken", r#"{"city": "Par"#),
        ])),
        ..Default::default()
    };
    let out = from_chat_response(&completion(message, "tool_calls", Some(usage)), "mock/m");
    assert_eq!(
        serde_json::to_value(&out).unwrap(),
        json!({
            "id": "msg_chatcmpl-1",
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "step", "signature": "sig"},
                {"type": "redacted_thinking", "data": "xx"},
                {"type": "text", "text": "Checking.", "citations": null},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}, "caller": {"type": "direct"}},
                {"type": "tool_use", "id": "call_2", "name": "broken", "input": {}, "caller": {"type": "direct"},
                 "raw_arguments": "{\"city\": \"Par"}
            ],
            "model": "mock/m",
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "stop_details": null,
            "usage": {
                "input_tokens": 10,
                "output_tokens": 20,
                "cache_creation_input_tokens": 30,
                "cache_read_input_tokens": 60,
                "cache_creation": null,
                "server_tool_use": null,
                "service_tier": null,
                "inference_geo": null,
                "cost": 0.5
            },
            "container": null,
            "provider": "mock"
        })
    );

    // Sent back as history, the blocks become the same assistant turn (raw arguments too).
    let history: Vec<ContentBlock> =
        serde_json::from_value(serde_json::to_value(&out.content).unwrap()).unwrap();
    let req = MessagesRequest {
        model: "m/x".into(),
        max_tokens: 1,
        messages: vec![
            InputMessage {
                role: Role::User,
                content: InputContent::Text("hi".into()),
            },
            InputMessage {
                role: Role::Assistant,
                content: InputContent::Blocks(history),
            },
        ],
        ..Default::default()
    };
    let chat = to_chat_request(&req).unwrap();
    let ChatMessage::Assistant(turn) = &chat.messages[1] else {
        panic!("{:?}", chat.messages[1])
    };
    let calls = turn.tool_calls.as_ref().unwrap();
    assert_eq!(calls[1].function.arguments, r#"{"city": "Par"#);
    assert!(
        calls[1].extra.is_empty(),
        "no raw_arguments, no default caller"
    );
    assert_eq!(
        turn.content,
        Some(Some(MessageContent::Text("Checking.".into()))),
        "`citations: null` is not passed on"
    );
    assert_eq!(turn.thinking_blocks.as_ref().unwrap().len(), 2);

    let plain = |message: ResponseMessage, finish: &str| {
        serde_json::to_value(from_chat_response(&completion(message, finish, None), "m")).unwrap()
    };
    let text = ResponseMessage {
        content: Some("hi".into()),
        reasoning_content: Some("hmm".into()),
        ..Default::default()
    };
    let v = plain(text.clone(), "stop");
    assert_eq!(
        v["content"],
        json!([{"type": "thinking", "thinking": "hmm", "signature": ""},
               {"type": "text", "text": "hi", "citations": null}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 0);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(plain(text.clone(), "length")["stop_reason"], "max_tokens");
    let filtered = plain(text, "content_filter");
    assert_eq!(filtered["stop_reason"], "refusal");
    assert_eq!(filtered["stop_details"]["type"], "refusal");
    let tool_with_stop = ResponseMessage {
        tool_calls: Some(Some(vec![call("c", "f", "")])),
        ..Default::default()
    };
    let v = plain(tool_with_stop, "stop");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][0]["input"], json!({}));
    assert!(v["content"][0].get("raw_arguments").is_none());
    let refusal = ResponseMessage {
        refusal: Some(Some("I can't.".into())),
        ..Default::default()
    };
    let v = plain(refusal, "stop");
    assert_eq!(v["stop_reason"], "refusal");
    assert_eq!(v["content"][0]["text"], "I can't.");
}

// ------------------------------------------------------------------ stream encoder

fn chunk(delta: Delta, finish: Option<&str>) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: "chatcmpl-9".into(),
        object: "chat.completion.chunk".into(),
        created: 1,
        model: "gpt-x".into(),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish.map(FinishReason::from),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn text(t: &str) -> Delta {
    Delta {
        content: Some(Some(t.into())),
        ..Default::default()
    }
}

fn usage_chunk(prompt: u64, completion: u64, cached: u64) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: "chatcmpl-9".into(),
        usage: Some(Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(cached),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn encode(chunks: &[ChatCompletionChunk], error: Option<Error>) -> Vec<AnthropicEvent> {
    let mut encoder = MessagesStreamEncoder::new("mock/m");
    let mut events = Vec::new();
    for c in chunks {
        events.extend(encoder.on_chunk(c));
    }
    match error {
        Some(e) => {
            events.extend(encoder.on_error(&e));
            assert!(encoder.is_finished());
            assert!(encoder.finish().is_empty(), "nothing after an error");
        }
        None => events.extend(encoder.finish()),
    }
    events
}

/// `name` plus the interesting part of each event, for compact assertions.
fn summary(events: &[AnthropicEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            assert_eq!(e.data["type"], e.name, "type matches the event name");
            let d = &e.data;
            match e.name {
                "content_block_start" => format!(
                    "start {} {}",
                    d["index"],
                    d["content_block"]["type"].as_str().unwrap()
                ),
                "content_block_delta" => {
                    let delta = &d["delta"];
                    let body = delta
                        .as_object()
                        .unwrap()
                        .iter()
                        .find(|(k, _)| *k != "type")
                        .map(|(_, v)| v.as_str().unwrap().to_owned())
                        .unwrap();
                    format!(
                        "delta {} {} {body}",
                        d["index"],
                        delta["type"].as_str().unwrap()
                    )
                }
                "content_block_stop" => format!("stop {}", d["index"]),
                "message_delta" => format!("message_delta {}", d["delta"]["stop_reason"]),
                other => other.to_owned(),
            }
        })
        .collect()
}

#[test]
fn text_stream_events_and_usage() {
    let role = Delta {
        role: Some("assistant".into()),
        content: Some(Some(String::new())),
        ..Default::default()
    };
    let events = encode(
        &[
            chunk(role, None),
            chunk(text("Hello"), None),
            chunk(text(" world"), None),
            chunk(Delta::default(), Some("stop")),
            usage_chunk(50, 2, 40),
        ],
        None,
    );
    assert_eq!(
        summary(&events),
        [
            "message_start",
            "start 0 text",
            "delta 0 text_delta Hello",
            "delta 0 text_delta  world",
            "stop 0",
            "message_delta \"end_turn\"",
            "message_stop"
        ]
    );
    let start = &events[0].data["message"];
    assert_eq!(start["id"], "msg_chatcmpl-9");
    assert_eq!(start["model"], "mock/m");
    assert_eq!(start["content"], json!([]));
    assert_eq!(
        events[1].data["content_block"],
        json!({"type": "text", "text": "", "citations": null})
    );
    assert_eq!(
        events[5].data["usage"],
        json!({"input_tokens": 10, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 40, "output_tokens": 2, "server_tool_use": null})
    );
    assert_eq!(
        events[5].data["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null, "stop_details": null, "container": null})
    );
    let sse = events[6].to_sse();
    assert_eq!(
        sse,
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    );
}

fn tool_delta(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> Delta {
    Delta {
        tool_calls: Some(Some(vec![ToolCallDelta {
            index,
            id: id.map(str::to_owned),
            kind: id.map(|_| "function".to_owned()),
            function: Some(FunctionCallDelta {
                name: name.map(str::to_owned),
                arguments: Some(args.to_owned()),
            }),
            extra: JsonObject::new(),
        }])),
        ..Default::default()
    }
}

#[test]
fn tool_call_stream_events() {
    let events = encode(
        &[
            chunk(text("Let me check."), None),
            chunk(tool_delta(0, Some("call_a"), Some("get_weather"), ""), None),
            chunk(tool_delta(0, None, None, "{\"city\":"), None),
            chunk(tool_delta(0, None, None, "\"Paris\"}"), None),
            chunk(tool_delta(1, Some("call_b"), Some("get_time"), "{}"), None),
            chunk(tool_delta(0, None, None, " "), None),
            chunk(Delta::default(), Some("tool_calls")),
        ],
        None,
    );
    assert_eq!(
        summary(&events),
        [
            "message_start",
            "start 0 text",
            "delta 0 text_delta Let me check.",
            "stop 0",
            "start 1 tool_use",
            "delta 1 input_json_delta {\"city\":",
            "delta 1 input_json_delta \"Paris\"}",
            "stop 1",
            "start 2 tool_use",
            "delta 2 input_json_delta {}",
            "delta 1 input_json_delta  ",
            "stop 2",
            "message_delta \"tool_use\"",
            "message_stop"
        ]
    );
    assert_eq!(
        events[4].data["content_block"],
        json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}, "caller": {"type": "direct"}})
    );
    assert_eq!(
        events[12].data["usage"]["input_tokens"],
        Value::Null,
        "no usage chunk: input unknown"
    );
}

#[test]
fn thinking_with_signature_and_redacted_blocks() {
    let reasoning = |t: &str| Delta {
        reasoning_content: Some(t.into()),
        ..Default::default()
    };
    let blocks = |b: Vec<ThinkingBlock>| Delta {
        thinking_blocks: Some(b),
        ..Default::default()
    };
    let events = encode(
        &[
            chunk(reasoning("Let me "), None),
            chunk(reasoning("think."), None),
            chunk(
                blocks(vec![ThinkingBlock::Thinking {
                    thinking: "Let me think.".into(),
                    signature: Some("EoQD".into()),
                }]),
                None,
            ),
            chunk(
                blocks(vec![
                    ThinkingBlock::RedactedThinking {
                        data: "opaque".into(),
                    },
                    ThinkingBlock::Thinking {
                        thinking: "Whole block.".into(),
                        signature: Some("sig2".into()),
                    },
                ]),
                None,
            ),
            chunk(reasoning("unsigned"), None),
            chunk(text("Answer."), Some("stop")),
        ],
        None,
    );
    assert_eq!(
        summary(&events),
        [
            "message_start",
            "start 0 thinking",
            "delta 0 thinking_delta Let me ",
            "delta 0 thinking_delta think.",
            "delta 0 signature_delta EoQD",
            "stop 0",
            "start 1 redacted_thinking",
            "stop 1",
            "start 2 thinking",
            "delta 2 thinking_delta Whole block.",
            "delta 2 signature_delta sig2",
            "stop 2",
            "start 3 thinking",
            "delta 3 thinking_delta unsigned",
            "stop 3",
            "start 4 text",
            "delta 4 text_delta Answer.",
            "stop 4",
            "message_delta \"end_turn\"",
            "message_stop"
        ]
    );
    assert_eq!(
        events[1].data["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    assert_eq!(
        events[6].data["content_block"],
        json!({"type": "redacted_thinking", "data": "opaque"})
    );
}

#[test]
fn mid_stream_error_ends_with_an_error_event() {
    let err = Error::new(ErrorKind::ServiceUnavailable, "upstream overloaded");
    let events = encode(&[chunk(text("partial"), None)], Some(err));
    assert_eq!(
        summary(&events),
        [
            "message_start",
            "start 0 text",
            "delta 0 text_delta partial",
            "error"
        ]
    );
    assert_eq!(
        events[3].data,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "upstream overloaded"}, "request_id": null})
    );
    // An empty stream still makes a well-formed message.
    assert_eq!(
        summary(&encode(&[], None)),
        [
            "message_start",
            "message_delta \"end_turn\"",
            "message_stop"
        ]
    );
}

#[test]
fn error_bodies_use_anthropic_types() {
    let cases = [
        (ErrorKind::BadRequest, "invalid_request_error"),
        (ErrorKind::Authentication, "authentication_error"),
        (ErrorKind::PermissionDenied, "permission_error"),
        (ErrorKind::NotFound, "not_found_error"),
        (ErrorKind::PayloadTooLarge, "request_too_large"),
        (ErrorKind::RateLimit, "rate_limit_error"),
        (ErrorKind::ServiceUnavailable, "overloaded_error"),
        (ErrorKind::Timeout, "timeout_error"),
        (ErrorKind::InternalServer, "api_error"),
        (ErrorKind::Connection, "api_error"),
    ];
    for (kind, expected) in cases {
        let body = anthropic_error_body(&Error::new(kind, "m"));
        assert_eq!(body["error"]["type"], expected, "{kind:?}");
        assert_eq!(body["type"], "error");
    }
    let err = Error::invalid_param("messages[0].role", "bad role");
    assert_eq!(
        anthropic_error_body(&err)["error"]["message"],
        "messages[0].role: bad role"
    );
    let err = Error::invalid_param("tools[0]", "`tools[0]` is a server tool");
    assert_eq!(
        anthropic_error_body(&err)["error"]["message"],
        "`tools[0]` is a server tool"
    );
}

/// The recorded Anthropic requests translate, and recorded answers sent back as history keep
/// their thinking signatures and redacted data.
#[test]
fn recorded_anthropic_requests_and_answers_translate() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/anthropic");
    let Ok(cases) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: no fixtures at {}", dir.display());
        return;
    };
    let mut requests = 0;
    let mut answers = 0;
    for case in cases {
        let case = case.unwrap().path();
        if let Ok(text) = std::fs::read_to_string(case.join("request.json")) {
            let req: MessagesRequest =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
            to_chat_request(&req).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
            requests += 1;
        }
        let Ok(text) = std::fs::read_to_string(case.join("response.json")) else {
            continue;
        };
        let answer: Value = serde_json::from_str(&text).unwrap();
        if answer["type"] != "message" {
            continue;
        }
        let req = request(json!({"model": "m/x", "max_tokens": 1, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": answer["content"]}]}));
        let chat = to_chat_request(&req).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let ChatMessage::Assistant(turn) = &chat.messages[1] else {
            panic!("{}", case.display())
        };
        for (block, original) in answer["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "thinking" || b["type"] == "redacted_thinking")
            .zip(turn.thinking_blocks.iter().flatten())
        {
            match original {
                ThinkingBlock::Thinking { signature, .. } => {
                    assert_eq!(block["signature"].as_str(), signature.as_deref())
                }
                ThinkingBlock::RedactedThinking { data } => assert_eq!(block["data"], *data),
            }
        }
        answers += 1;
    }
    assert!(
        requests >= 10 && answers >= 4,
        "{requests} requests, {answers} answers"
    );
}
