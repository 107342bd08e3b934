"""`POST /v1/messages` seen through the official Anthropic Python SDK.

The gateway speaks the Anthropic Messages API in and out while the provider behind it is the
OpenAI-speaking mock (conftest.py runs both as real processes). Every `/v1/messages` answer the
SDK receives is also checked, as raw JSON, against the Anthropic OpenAPI spec beside the
repository (`../shared/specs/anthropic-openapi.json`): whole answers against `Message` (errors
against `ErrorResponse`), and each streamed event against its own event schema.

To run the same tests against another provider, add its model to MODELS; the checks of what
the OpenAI mock received only run for `mock/...` models.
"""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import pytest

from openapi_schemas import ValidatingTransport, anthropic_validator

# anthropic>=2 is built on `httpx2` (the successor of `httpx`); older releases on `httpx`.
try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the pinned SDK
    import httpx

MODELS = [
    "mock/mock-gpt",
    "mockgemini/mock-gemini",
]
REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO_ROOT.parent / "shared" / "specs" / "anthropic-openapi.json"
EVENT_SCHEMAS = {
    "message_start": "MessageStartEvent",
    "message_delta": "MessageDeltaEvent",
    "message_stop": "MessageStopEvent",
    "content_block_start": "ContentBlockStartEvent",
    "content_block_delta": "ContentBlockDeltaEvent",
    "content_block_stop": "ContentBlockStopEvent",
    "ping": "Ping",
    "error": "ErrorResponse",
}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
        },
        "required": ["city", "unit", "days"],
    },
}
# What the mock derives from WEATHER_TOOL's schema: the first enum value, "mock" for strings, 1.
WEATHER_ARGS = {"city": "mock", "unit": "celsius", "days": 1}


# --- spec validation ----------------------------------------------------------------------


class SpecValidator:
    """Collects what does not fit the spec's `#/components/schemas/<name>`."""

    def problems(self, schema: str, instance) -> list[str]:
        return [
            f"{schema} at {error.json_path}: {error.message}"
            for error in anthropic_validator(schema).iter_errors(instance)
        ]


def sse_events(body: str) -> list[tuple[str, dict]]:
    """`(event, data)` pairs of an SSE body (comments and nameless events skipped)."""
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].lstrip())
        if name is not None:
            events.append((name, json.loads("\n".join(data))))
    return events


def check_messages_answer(status: int, content_type: str, body: bytes) -> list[str]:
    """What in one `/v1/messages` answer breaks the Anthropic spec."""
    validator = SpecValidator()
    where = f"HTTP {status} {content_type}"
    if not content_type.startswith("text/event-stream"):
        schema = "Message" if status == 200 else "ErrorResponse"
        return [f"{where}: {p}" for p in validator.problems(schema, json.loads(body))]
    events = sse_events(body.decode("utf-8"))
    problems = [] if events else [f"{where}: a stream without events"]
    for name, data in events:
        schema = EVENT_SCHEMAS.get(name)
        if schema is None:
            problems.append(f"{where}: unknown event `{name}`")
            continue
        if data.get("type") != name:
            problems.append(f"{where}: event `{name}` has type {data.get('type')!r}")
        problems.extend(f"{where} {name}: {p}" for p in validator.problems(schema, data))
    return problems


@pytest.fixture(scope="module")
def transport() -> ValidatingTransport:
    check = check_messages_answer if SPEC_PATH.is_file() else (lambda *_: [])
    return ValidatingTransport("/v1/messages", check)


@pytest.fixture(autouse=True)
def answers_follow_the_spec(transport: ValidatingTransport):
    transport.problems.clear()
    yield
    assert not transport.problems, "answers that break the Anthropic spec:\n" + "\n".join(
        transport.problems
    )


@pytest.fixture(scope="module")
def ant(gateway, transport) -> anthropic.Anthropic:
    # The SDK appends /v1/messages to base_url. auth is `none` on the test gateway: the key is
    # sent (as x-api-key) and ignored.
    with anthropic.Anthropic(
        base_url=gateway.url,
        api_key="unused",
        max_retries=0,
        timeout=30.0,
        http_client=httpx.Client(transport=transport, trust_env=False),
    ) as client:
        yield client


@pytest.fixture(params=MODELS)
def model(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def mock_http(mock_server) -> httpx.Client:
    with httpx.Client(base_url=mock_server.url, timeout=30.0, trust_env=False) as c:
        yield c


def last_chat_request(mock_http, model: str) -> dict | None:
    """What the OpenAI mock received last, or None when `model` is not served by it."""
    if not model.startswith("mock/"):
        return None
    recorded = mock_http.get("/mock/requests").json()
    chats = [r for r in recorded if r["path"].endswith("/chat/completions")]
    assert chats, "the mock got no chat request"
    return chats[-1]["body"]


# --- tests -----------------------------------------------------------------------------------


def test_text(ant, model, mock_http):
    raw = ant.messages.with_raw_response.create(
        model=model,
        max_tokens=200,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello gateway"}],
    )
    assert raw.status_code == 200
    assert raw.headers["x-opengateway-attempts"] == "1"
    message = raw.parse()
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == model
    assert message.stop_reason == "end_turn"
    assert [block.type for block in message.content] == ["text"]
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0

    sent = last_chat_request(mock_http, model)
    if sent is not None:
        assert raw.headers["x-opengateway-provider"] == "mock"
        assert message.content[0].text == "Hello from the mock provider! You said: Hello gateway"
        assert sent["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello gateway"},
        ]
        assert sent["max_completion_tokens"] == 200


def test_streamed_text(ant, model):
    with ant.messages.stream(
        model=model,
        max_tokens=200,
        messages=[{"role": "user", "content": "Stream please"}],
        extra_body={"mock": {"content": "one two three four"}} if model.startswith("mock/") else None,
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "end_turn"
    # Usage arrives with message_delta (OpenAI reports it at the end of a stream).
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    if model.startswith("mock/"):
        assert text == "one two three four"
        assert final.usage.output_tokens == 4


def test_streamed_tool_call(ant, model):
    with ant.messages.stream(
        model=model,
        max_tokens=200,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Paris, 1 day, celsius?"}],
    ) as stream:
        final = stream.get_final_message()
    tool_uses = [block for block in final.content if block.type == "tool_use"]
    assert len(tool_uses) == 1, final.content
    assert tool_uses[0].name == "get_weather"
    assert tool_uses[0].id
    assert final.stop_reason == "tool_use"
    if model.startswith("mock/"):
        assert tool_uses[0].input == WEATHER_ARGS


def test_tool_result_round_trip(ant, model, mock_http):
    question = {"role": "user", "content": "Weather in Paris, 1 day, celsius?"}
    first = ant.messages.create(
        model=model, max_tokens=200, tools=[WEATHER_TOOL], messages=[question]
    )
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")

    answer = ant.messages.create(
        model=model,
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}
                ],
            },
        ],
    )
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text" and answer.content[0].text

    sent = last_chat_request(mock_http, model)
    if sent is not None:
        assert sent["messages"][-1] == {
            "role": "tool",
            "content": "18C and sunny",
            "tool_call_id": call.id,
        }
        assistant = sent["messages"][-2]
        assert assistant["role"] == "assistant"
        assert assistant["tool_calls"] == [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps(WEATHER_ARGS, separators=(",", ":"))},
            }
        ]


def test_thinking_maps_to_reasoning_effort(ant, model, mock_http):
    message = ant.messages.create(
        model=model,
        max_tokens=20000,
        thinking={"type": "enabled", "budget_tokens": 10000},
        messages=[{"role": "user", "content": "Think about it"}],
    )
    assert message.stop_reason == "end_turn"
    sent = last_chat_request(mock_http, model)
    if sent is not None:
        assert sent["reasoning_effort"] == "medium"
        # OpenAI's API rejects Anthropic's `thinking` object, so it is not forwarded there.
        assert "thinking" not in sent


def test_unknown_model_is_not_found(ant):
    with pytest.raises(anthropic.NotFoundError) as caught:
        ant.messages.create(
            model="nope/model", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 404
    assert caught.value.body["error"]["type"] == "not_found_error"
    assert "nope/model" in caught.value.body["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_bad_requests_are_bad_request_errors(ant, model, stream):
    with pytest.raises(anthropic.BadRequestError) as caught:
        ant.messages.create(
            model=model,
            max_tokens=10,
            stream=stream,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
            messages=[{"role": "user", "content": "hi"}],
        )
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "tools[0]" in caught.value.body["error"]["message"]

    with pytest.raises(anthropic.BadRequestError) as caught:
        ant.messages.create(
            model=model,
            max_tokens=10,
            stream=stream,
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "container_upload", "file_id": "f"}]}
            ],
        )
    assert "messages[0].content[1].type" in caught.value.body["error"]["message"]


def test_failure_mid_stream_raises(ant):
    with pytest.raises(anthropic.APIStatusError) as caught:
        with ant.messages.stream(
            model="mock/mock-gpt",
            max_tokens=200,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"mock": {"content": "one two", "stream_error": {"message": "boom", "type": "server_error"}}},
        ) as stream:
            for _ in stream.text_stream:
                pass
    assert "boom" in str(caught.value)


def test_spec_validation_ran(transport):
    if not SPEC_PATH.is_file():
        pytest.skip(f"Anthropic spec not found at {SPEC_PATH}: answers were not validated")
    assert transport.checked > 20, transport.checked
