"""The gateway seen through the official OpenAI Python SDK (and raw HTTP where the SDK can't go).

The fixtures in conftest.py run the mock provider and the gateway as real processes on
127.0.0.1. Tests run in file order; the last one checks the gateway survived everything before.
"""

from __future__ import annotations

import json

import openai
import pytest

from openapi_schemas import OPENAI_SPEC, ValidatingTransport, openai_validator, sse_data

# openai>=3 is built on `httpx2` (the successor of `httpx`); older releases on `httpx`.
try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the pinned SDK
    import httpx

MESSAGES = [{"role": "user", "content": "Hello gateway"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit", "days"],
        },
    },
}
# What the mock derives from WEATHER_TOOL's schema: the first enum value, "mock" for strings, 1.
WEATHER_ARGS = {"city": "mock", "unit": "celsius", "days": 1}
ERROR_KEYS = {"message", "type", "param", "code"}


def check_chat_answer(status: int, content_type: str, body: bytes) -> list[str]:
    """What in one `/v1/chat/completions` answer breaks OpenAI's schemas."""
    if status != 200:
        return []  # error bodies are checked field by field in the tests below
    if not content_type.startswith("text/event-stream"):
        validator = openai_validator("CreateChatCompletionResponse")
        return [e.message for e in validator.iter_errors(json.loads(body))]
    validator = openai_validator("CreateChatCompletionStreamResponse")
    problems = []
    for _, data in sse_data(body.decode("utf-8")):
        chunk = None if data == "[DONE]" else json.loads(data)
        if chunk is not None and "error" not in chunk:
            problems.extend(e.message for e in validator.iter_errors(chunk))
    return problems


@pytest.fixture(scope="module")
def transport() -> ValidatingTransport:
    check = check_chat_answer if OPENAI_SPEC.is_file() else (lambda *_: [])
    return ValidatingTransport("/v1/chat/completions", check)


@pytest.fixture(scope="module")
def client(gateway, transport) -> openai.OpenAI:
    """The official SDK with every answer it reads checked against OpenAI's schemas."""
    with openai.OpenAI(
        base_url=f"{gateway.url}/v1",
        api_key="unused",
        max_retries=0,
        timeout=30.0,
        http_client=httpx.Client(transport=transport, trust_env=False),
    ) as c:
        yield c


@pytest.fixture(autouse=True)
def answers_follow_the_spec(transport: ValidatingTransport):
    transport.problems.clear()
    yield
    assert not transport.problems, "answers that break OpenAI's schemas:\n" + "\n".join(
        transport.problems
    )


@pytest.fixture(scope="module")
def http(gateway) -> httpx.Client:
    with httpx.Client(base_url=gateway.url, timeout=30.0, trust_env=False) as c:
        yield c


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    return error


# --- completions ---------------------------------------------------------------------------


def test_non_stream_completion(client):
    raw = client.chat.completions.with_raw_response.create(
        model="mock/mock-gpt", messages=MESSAGES
    )
    assert raw.status_code == 200
    assert raw.headers["x-opengateway-provider"] == "mock"
    assert raw.headers["x-opengateway-model"] == "mock-gpt"
    assert raw.headers["x-opengateway-attempts"] == "1"

    completion = raw.parse()
    # The id of the request's usage record, where the SDK looks for OpenAI's request id.
    assert completion._request_id == raw.headers["x-request-id"]
    assert completion._request_id.startswith("req_")
    assert completion.object == "chat.completion"
    assert completion.model == "mock-gpt"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello from the mock provider! You said: Hello gateway"

    # Gateway extensions arrive as extra fields on the SDK models.
    assert completion.model_extra["provider"] == "mock"
    assert completion.to_dict()["provider"] == "mock"
    usage = completion.usage
    assert usage.model_extra["cost"] == 0.0
    assert completion.to_dict()["usage"]["cost"] == 0.0
    # prompt: ceil(13 chars / 4) + 3 per message; completion: the reply's word count.
    assert usage.prompt_tokens == 7
    assert usage.completion_tokens == 9
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0


def test_alias_routes_to_target(client):
    raw = client.chat.completions.with_raw_response.create(
        model="smart", messages=MESSAGES, extra_body={"mock": {"content": "via the alias"}}
    )
    assert raw.headers["x-opengateway-provider"] == "mock"
    assert raw.headers["x-opengateway-model"] == "mock-gpt"
    completion = raw.parse()
    assert completion.choices[0].message.content == "via the alias"
    assert completion.model_extra["provider"] == "mock"
    assert completion.usage.completion_tokens == 3


def test_stream_text_with_usage(client):
    text = "The quick brown fox jumps over the lazy dog"
    stream = client.chat.completions.create(
        model="mock/mock-gpt",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"mock": {"content": text}},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1

    content_chunks = [c for c in chunks if c.choices]
    usage_chunks = [c for c in chunks if c.usage is not None]
    pieces = [c.choices[0].delta.content for c in content_chunks if c.choices[0].delta.content]
    assert len(pieces) > 1, "the mock streams one word per chunk"
    assert "".join(pieces) == text
    assert content_chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in content_chunks if c.choices[0].finish_reason]
    assert finishes == ["stop"]

    assert len(usage_chunks) == 1
    final = usage_chunks[0]
    assert final is chunks[-1]
    assert final.choices == []
    assert final.usage.completion_tokens == len(text.split())
    assert final.usage.prompt_tokens > 0
    assert final.usage.total_tokens == final.usage.prompt_tokens + final.usage.completion_tokens
    assert final.usage.model_extra["cost"] == 0.0
    assert final.model_extra["provider"] == "mock"


def test_stream_tool_call(client):
    stream = client.chat.completions.create(
        model="mock/mock-gpt",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [
        call
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for call in c.choices[0].delta.tool_calls
    ]
    assert len(deltas) >= 3, deltas
    first = deltas[0]
    assert first.index == 0
    assert first.type == "function"
    assert first.id and first.id.startswith("call_")
    assert first.function.name == "get_weather"
    assert all(d.index == 0 for d in deltas)
    assert all(d.id is None and d.function.name is None for d in deltas[1:])

    argument_parts = [d.function.arguments for d in deltas if d.function.arguments]
    assert len(argument_parts) >= 2, "arguments should arrive in several deltas"
    assert json.loads("".join(argument_parts)) == WEATHER_ARGS

    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0].choices == []
    assert usage_chunks[0].usage.completion_tokens > 0


def test_non_stream_tool_call(client):
    completion = client.chat.completions.create(
        model="mock/mock-gpt",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert len(calls) == 1
    assert calls[0].type == "function"
    assert calls[0].id.startswith("call_")
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == WEATHER_ARGS
    assert completion.model_extra["provider"] == "mock"


def test_unknown_field_forwarded_unchanged(client, mock_server):
    custom = {"a": [1, 2]}
    completion = client.chat.completions.create(
        model="mock/mock-gpt",
        messages=MESSAGES,
        extra_body={"x_custom": custom, "mock": {"content": "forwarded"}},
    )
    assert completion.choices[0].message.content == "forwarded"

    with httpx.Client(timeout=10.0, trust_env=False) as http:
        recorded = http.get(f"{mock_server.url}/mock/requests")
    assert recorded.status_code == 200
    requests = recorded.json()
    assert requests, "the mock recorded nothing"
    last = requests[-1]
    assert last["method"] == "POST"
    assert last["path"] == "/v1/chat/completions"
    body = last["body"]
    assert body["x_custom"] == custom
    assert body["mock"] == {"content": "forwarded"}
    # The gateway sends the upstream model name and the provider's key, not the client's.
    assert body["model"] == "mock-gpt"
    assert body["messages"] == MESSAGES
    headers = {k.lower(): v for k, v in last["headers"]}
    assert headers["authorization"] == "Bearer test-key"


# --- discovery -----------------------------------------------------------------------------


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert "mock/mock-gpt" in ids
    assert "smart" in ids
    assert len(ids) == len(set(ids))


def test_health(http):
    response = http.get("/health")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok"
    providers = {p["id"]: p for p in report["providers"]}
    assert providers["mock"]["status"] == "ok"
    assert providers["mock"]["error"] is None


# --- errors --------------------------------------------------------------------------------


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope/does-not-exist", messages=MESSAGES)
    err = info.value
    assert err.status_code == 404
    assert err.code == "model_not_found"
    assert err.param == "model"
    assert err.type == "invalid_request_error"
    assert "nope/does-not-exist" in err.message


def test_invalid_json_is_400(http):
    response = http.post(
        "/v1/chat/completions",
        content=b'{"model": "mock/mock-gpt", "messages": [',
        headers={"content-type": "application/json"},
    )
    error = assert_error_shape(response, 400)
    assert error["type"] == "invalid_request_error"
    assert "JSON" in error["message"]


def test_missing_model_is_400_with_param(http):
    response = http.post("/v1/chat/completions", json={"messages": MESSAGES})
    error = assert_error_shape(response, 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "model"


def test_body_over_limit_is_413(http):
    big = {"model": "mock/mock-gpt", "messages": [{"role": "user", "content": "x" * 70_000}]}
    response = http.post("/v1/chat/completions", json=big)
    error = assert_error_shape(response, 413)
    assert "max_body_bytes" in error["message"]


def test_wrong_content_type_is_415(http):
    response = http.post(
        "/v1/chat/completions",
        content=json.dumps({"model": "mock/mock-gpt", "messages": MESSAGES}),
        headers={"content-type": "text/plain"},
    )
    error = assert_error_shape(response, 415)
    assert "application/json" in error["message"]


def test_upstream_429_is_rate_limit_error(client):
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="mock/mock-gpt", messages=MESSAGES, extra_body={"mock": {"status": 429}}
        )
    err = info.value
    assert err.status_code == 429
    assert err.code == "rate_limit_exceeded"
    assert err.response.headers["x-opengateway-provider"] == "mock"


def test_mid_stream_error_raises(client):
    stream = client.chat.completions.create(
        model="mock/mock-gpt",
        messages=MESSAGES,
        stream=True,
        extra_body={"mock": {"stream_error": {"message": "boom", "type": "server_error"}}},
    )
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert received == ["Hello "], "the first content chunk arrives before the error"
    err = info.value
    assert not isinstance(err, openai.APIStatusError), "the status was already 200"
    assert "boom" in err.message
    assert err.type == "server_error"
    assert err.body["message"] == err.message


def test_gateway_still_serves_after_errors(client, gateway, mock_server):
    assert gateway.alive() and mock_server.alive()
    completion = client.chat.completions.create(
        model="smart", messages=MESSAGES, extra_body={"mock": {"content": "still here"}}
    )
    assert completion.choices[0].message.content == "still here"
    stream = client.chat.completions.create(
        model="mock/mock-gpt",
        messages=MESSAGES,
        stream=True,
        extra_body={"mock": {"content": "and streaming"}},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "and streaming"


def test_spec_validation_ran(transport):
    if not OPENAI_SPEC.is_file():
        pytest.skip(f"OpenAI spec not found at {OPENAI_SPEC}: answers were not validated")
    assert transport.checked >= 8, transport.checked
