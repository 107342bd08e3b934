"""`POST /v1/responses` seen through the official OpenAI Python SDK (`client.responses`).

The gateway passes the request through to an `openai`-type provider (the mock's own
`/v1/responses`) and translates it for Anthropic- and Gemini-type providers (the mock's
`/v1/messages` and `:generateContent`). Every answer the SDK receives is also checked, as raw
JSON, against OpenAI's OpenAPI spec beside the repository: whole answers against `Response`,
errors against `ErrorResponse`, and each streamed event against `ResponseStreamEvent`.
Recorded Responses API traffic in ../shared/fixtures/openai-responses is replayed through the
pass-through path (skipped when the fixtures are absent).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Iterator

import openai
import pytest
import yaml

from conftest import BIN_DIR, REPO_ROOT, Service, start_gateway
from openapi_schemas import ValidatingTransport, openai_validator, sse_data

try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the pinned SDK
    import httpx

PASS_THROUGH = "oai/mock-gpt"
TRANSLATED = ["claude/mock-claude", "gem/mock-gemini"]
MODELS = [PASS_THROUGH, *TRANSLATED]
# The path of its native API at which the mock receives each provider's requests.
NATIVE_PATH = {"oai": "/v1/responses", "claude": "/v1/messages", "gem": "/v1beta/models/"}
FIXTURES = (REPO_ROOT / ".." / "shared" / "fixtures").resolve()
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@functools.lru_cache(maxsize=None)
def event_schemas() -> dict[str, str]:
    """Each stream event `type` and the name of its schema among `ResponseStreamEvent`'s."""
    spec_path = REPO_ROOT / ".." / "shared" / "specs" / "openai-openapi.yaml"
    if not spec_path.is_file():
        pytest.skip(f"{spec_path} not found")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schemas = yaml.load(spec_path.read_text(encoding="utf-8"), Loader=loader)["components"]["schemas"]
    out = {}
    for ref in schemas["ResponseStreamEvent"]["anyOf"]:
        name = ref["$ref"].rsplit("/", 1)[-1]
        for kind in schemas[name].get("properties", {}).get("type", {}).get("enum", []):
            out[kind] = name
    return out


def spec_problems(status: int, content_type: str, body: bytes) -> list[str]:
    def check(schema: str, instance: Any) -> list[str]:
        return [
            f"{schema} at {e.json_path}: {e.message[:300]}"
            for e in openai_validator(schema).iter_errors(instance)
        ]

    text = body.decode("utf-8")
    if status != 200:
        return check("ErrorResponse", json.loads(text))
    if content_type.startswith("text/event-stream"):
        problems = []
        for name, data in sse_data(text):
            event = json.loads(data)
            if name != event.get("type"):
                problems.append(f"event name {name} is not its type {event.get('type')}")
            schema = event_schemas().get(event.get("type"))
            if schema is None:
                problems.append(f"unknown stream event type {event.get('type')}")
            else:
                problems.extend(check(schema, event))
        return problems
    return check("Response", json.loads(text))


@pytest.fixture(scope="module")
def gateway_url(mock_server: Service, tmp_path_factory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("responses")
    service = start_gateway(
        "opengateway (responses)",
        workdir,
        f"""\
providers:
  oai:    {{ type: openai,    api_base: "{mock_server.url}/v1",     api_key: k }}
  claude: {{ type: anthropic, api_base: "{mock_server.url}/v1",     api_key: k }}
  gem:    {{ type: gemini,    api_base: "{mock_server.url}/v1beta", api_key: k }}
router: {{ retries: 0 }}
server: {{ listen: "127.0.0.1:0", database: "sqlite://{workdir / 'gw.db'}", auth: none }}
""",
    )
    try:
        yield service.url
    finally:
        service.stop()


@pytest.fixture
def transport() -> Iterator[ValidatingTransport]:
    t = ValidatingTransport("/v1/responses", spec_problems)
    yield t
    assert t.problems == [], "\n".join(t.problems)


@pytest.fixture
def client(gateway_url: str, transport: ValidatingTransport) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{gateway_url}/v1",
        api_key="unused",
        max_retries=0,
        timeout=30,
        http_client=httpx.Client(transport=transport),
    ) as c:
        yield c


class Mock:
    """What the mock provider received (its request log)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def clear(self) -> None:
        httpx.delete(f"{self.url}/mock/requests", timeout=10).raise_for_status()

    def requests(self) -> list[dict]:
        return httpx.get(f"{self.url}/mock/requests", timeout=10).json()


@pytest.fixture
def mock(mock_server: Service) -> Mock:
    m = Mock(mock_server.url)
    m.clear()
    return m


def native_request(mock: Mock, model: str) -> dict:
    sent = mock.requests()
    assert len(sent) == 1, sent
    assert sent[0]["path"].startswith(NATIVE_PATH[model.split("/")[0]]), sent[0]["path"]
    return sent[0]["body"]


@pytest.mark.parametrize("model", MODELS)
def test_create(client: openai.OpenAI, mock: Mock, transport: ValidatingTransport, model: str) -> None:
    resp = client.responses.create(model=model, input="Hello there", instructions="Be brief.")
    assert resp.object == "response"
    assert resp.id.startswith("resp_")
    assert resp.status == "completed"
    assert "Hello from the mock provider" in resp.output_text
    assert resp.usage is not None and resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    raw = resp.model_dump()
    assert raw["provider"] == model.split("/")[0]
    assert isinstance(raw["usage"]["cost"], float)
    body = native_request(mock, model)
    if model == PASS_THROUGH:
        assert body == {"model": "mock-gpt", "input": "Hello there", "instructions": "Be brief."}
    assert transport.checked == 1


@pytest.mark.parametrize("model", MODELS)
def test_stream(client: openai.OpenAI, mock: Mock, transport: ValidatingTransport, model: str) -> None:
    events = list(client.responses.create(model=model, input="Hello there", stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    added = types.index("response.output_item.added")
    assert types.index("response.output_text.delta") > added
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = [e for e in events if e.type == "response.output_text.done"]
    assert len(done) == 1 and done[0].text == text
    final = events[-1].response
    assert final.output_text == text and "Hello from the mock provider" in text
    assert final.usage is not None and final.usage.output_tokens > 0
    body = native_request(mock, model)
    if model == PASS_THROUGH:
        assert body["stream"] is True and body["model"] == "mock-gpt"
    assert transport.checked == 1


@pytest.mark.parametrize("model", MODELS)
def test_function_call_round_trip(client: openai.OpenAI, mock: Mock, model: str) -> None:
    first = client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER_TOOL])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "mock"}
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"})
    mock.clear()
    second = client.responses.create(model=model, input=history, tools=[WEATHER_TOOL])
    assert second.output_text
    assert not [item for item in second.output if item.type == "function_call"]
    body = json.dumps(native_request(mock, model))
    assert "sunny, 21 C" in body and call.call_id in body or model.startswith("gem/")
    assert "sunny, 21 C" in body


@pytest.mark.parametrize("model", MODELS)
def test_streamed_function_call(client: openai.OpenAI, mock: Mock, model: str) -> None:
    events = list(
        client.responses.create(model=model, input="Weather?", tools=[WEATHER_TOOL], stream=True)
    )
    types = [e.type for e in events]
    assert "response.function_call_arguments.delta" in types
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0].arguments) == {"city": "mock"}
    final = events[-1].response
    assert [item.type for item in final.output] == ["function_call"]


@pytest.mark.parametrize("model", MODELS)
def test_json_schema_format(client: openai.OpenAI, mock: Mock, model: str) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "name": "reply", "schema": schema, "strict": True}
    resp = client.responses.create(model=model, input="Answer in JSON", text={"format": fmt})
    assert resp.text.format.type == "json_schema"
    body = native_request(mock, model)
    if model == PASS_THROUGH:
        assert body["text"] == {"format": fmt}
    else:
        assert '"answer"' in json.dumps(body), "the schema reached the provider"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
         "input[0].content[0].file_id"),
    ],
)
@pytest.mark.parametrize("model", TRANSLATED)
def test_untranslatable_fields_are_refused_by_name(
    client: openai.OpenAI, mock: Mock, model: str, extra: dict, param: str
) -> None:
    args: dict[str, Any] = {"model": model, "input": "hi", **extra}
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(**args)
    assert info.value.status_code == 400
    assert info.value.body["param"] == param
    assert param in info.value.body["message"]
    assert mock.requests() == [], "nothing was sent upstream"


def test_pass_through_keeps_what_only_openai_can_do(client: openai.OpenAI, mock: Mock) -> None:
    client.responses.create(
        model=PASS_THROUGH, input="hi", tools=[{"type": "web_search"}], previous_response_id="resp_1"
    )
    body = native_request(mock, PASS_THROUGH)
    assert body["tools"] == [{"type": "web_search"}] and body["previous_response_id"] == "resp_1"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("status", "error"),
    [(429, openai.RateLimitError), (401, openai.AuthenticationError), (500, openai.InternalServerError)],
)
def test_provider_errors_are_mapped(client: openai.OpenAI, model: str, status: int, error: type) -> None:
    with pytest.raises(error) as info:
        client.responses.create(model=f"{model}~status={status}", input="hi")
    assert info.value.status_code == status


@pytest.mark.parametrize("model", MODELS)
def test_an_error_mid_stream_is_raised(client: openai.OpenAI, model: str) -> None:
    seen = []
    with pytest.raises(openai.APIError):
        for event in client.responses.create(model=f"{model}~stream_error", input="hi", stream=True):
            seen.append(event.type)
    assert seen[:2] == ["response.created", "response.in_progress"]
    assert "response.completed" not in seen


def test_a_cut_pass_through_stream_is_not_silently_short(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIError):
        for _ in client.responses.create(model=f"{PASS_THROUGH}~truncate", input="hi", stream=True):
            pass


def test_fallback_from_pass_through_to_translation(gateway_url: str, mock: Mock) -> None:
    r = httpx.post(
        f"{gateway_url}/v1/responses",
        json={"model": f"{PASS_THROUGH}~status=503", "models": ["claude/mock-claude"], "input": "hi"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-opengateway-provider"] == "claude"
    assert r.headers["x-opengateway-attempts"] == "2"
    assert r.headers["x-request-id"]
    assert float(r.headers["x-opengateway-cost"]) >= 0
    assert [q["path"] for q in mock.requests()] == ["/v1/responses", "/v1/messages"]


# --- recorded traffic through the pass-through --------------------------------------------


def _cases() -> list[Any]:
    folder = FIXTURES / "openai-responses"
    if not folder.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{folder} not found"))]
    return [pytest.param(p, id=p.name) for p in sorted(folder.iterdir()) if (p / "meta.json").is_file()]


@pytest.fixture(scope="module")
def replay_url(tmp_path_factory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("responses-replay")
    mock = Service(
        "opengateway-mock (responses replay)",
        [str(BIN_DIR / "opengateway-mock"), "--listen", "127.0.0.1:0", "--fixtures", str(FIXTURES)],
        cwd=workdir,
    )
    gateway = start_gateway(
        "opengateway (responses replay)",
        workdir,
        f"""\
providers:
  openai: {{ type: openai, api_base: "{mock.url}/v1", api_key: k }}
router: {{ retries: 0 }}
server: {{ listen: "127.0.0.1:0", database: "sqlite://{workdir / 'gw.db'}", auth: none }}
""",
    )
    try:
        yield gateway.url
    finally:
        gateway.stop()
        mock.stop()


@pytest.mark.parametrize("case_dir", _cases())
def test_recorded_traffic_passes_through_unchanged(case_dir: Path, replay_url: str) -> None:
    meta = json.loads((case_dir / "meta.json").read_text(encoding="utf-8"))
    model = f"openai/fixture--openai-responses--{case_dir.name}"
    body = {"model": model, "input": "hi", "stream": meta["stream"]}
    r = httpx.post(f"{replay_url}/v1/responses", json=body, timeout=30)
    recorded = (case_dir / meta["response_file"]).read_text(encoding="utf-8")
    if meta["status"] != 200:
        assert r.status_code == meta["status"]
        assert r.json()["error"]["message"] == json.loads(recorded)["error"]["message"]
        return
    assert r.status_code == 200, r.text
    if not meta["stream"]:
        got, want = r.json(), json.loads(recorded)
        assert got.pop("provider") == "openai"
        assert isinstance(got["usage"].pop("cost"), float)
        assert got == want, "the body is relayed as recorded, plus provider and usage.cost"
        return
    got_events = sse_data(r.text)
    want_events = sse_data(recorded)
    assert [(n, json.loads(d)) for n, d in got_events] == [(n, json.loads(d)) for n, d in want_events]
