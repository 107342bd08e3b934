"""``POST /v1/embeddings`` through the official OpenAI Python SDK (``client.embeddings.create``).

The mock provider (session fixture) answers for an OpenAI-type and a Gemini-type provider; this
module runs a gateway process of its own, so its config (an embeddings alias whose first target
fails, a master key for the admin API) stays out of the shared one. Answers are checked against
OpenAI's ``CreateEmbeddingResponse`` schema; the ledger is read back through the admin API.
"""

from __future__ import annotations

import base64
import json
import struct
import urllib.error
import urllib.request
from typing import Any, Iterator

import openai
import pytest

from conftest import Service, start_gateway
from openapi_schemas import OPENAI_SPEC, ValidatingTransport, openai_validator

try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the pinned SDK
    import httpx

MASTER_KEY = "test-master-key"
ERROR_KEYS = {"message", "type", "param", "code"}
# The catalog's price of openai/text-embedding-3-small, per token.
SMALL_PRICE = 2e-8


def check_embedding_answer(status: int, content_type: str, body: bytes) -> list[str]:
    """What in one ``/v1/embeddings`` answer breaks OpenAI's schema. The schema describes the
    float form; a base64 answer is checked with its vectors swapped for an empty list."""
    if status != 200:
        return []
    answer = json.loads(body)
    for item in answer.get("data", []):
        if isinstance(item.get("embedding"), str):
            item["embedding"] = []
    return [e.message for e in openai_validator("CreateEmbeddingResponse").iter_errors(answer)]


@pytest.fixture(scope="module")
def embedding_gateway(mock_server, tmp_path_factory) -> Iterator[Service]:
    workdir = tmp_path_factory.mktemp("embeddings")
    service = start_gateway(
        "opengateway (embeddings)",
        workdir,
        f"""\
providers:
  mock: {{ type: openai, api_base: "{mock_server.url}/v1", api_key: "test-key" }}
  mockgemini: {{ type: gemini, api_base: "{mock_server.url}/v1beta", api_key: "test-key" }}
  mockanthropic: {{ type: anthropic, api_base: "{mock_server.url}", api_key: "test-key" }}
models:
  - name: embed
    targets: ["mock/text-embedding-3-small~status=503", mockgemini/gemini-embedding-001]
router: {{ retries: 0 }}
server: {{ listen: "127.0.0.1:0", database: "sqlite://{workdir / 'gw.db'}", auth: none, master_key: "{MASTER_KEY}" }}
""",
    )
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def transport() -> ValidatingTransport:
    check = check_embedding_answer if OPENAI_SPEC.is_file() else (lambda *_: [])
    return ValidatingTransport("/v1/embeddings", check)


@pytest.fixture(scope="module")
def client(embedding_gateway, transport) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{embedding_gateway.url}/v1",
        api_key="unused",
        max_retries=0,
        timeout=30.0,
        http_client=httpx.Client(transport=transport, trust_env=False),
    ) as c:
        yield c


@pytest.fixture(autouse=True)
def answers_follow_the_spec(transport: ValidatingTransport):
    before = len(transport.problems)
    yield
    assert transport.problems[before:] == []


def post(base: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        f"{base}/v1/embeddings",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def floats_of(b64: str) -> list[float]:
    raw = base64.b64decode(b64)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def test_openai_type_via_the_sdk_default_base64(client, transport) -> None:
    # The SDK asks for base64 by default and decodes it itself.
    checked = transport.checked
    resp = client.embeddings.create(
        model="mock/text-embedding-3-small", input=["alpha beta", "gamma"], dimensions=16
    )
    assert transport.checked == checked + 1
    assert resp.object == "list"
    assert [d.index for d in resp.data] == [0, 1]
    assert all(len(d.embedding) == 16 for d in resp.data)
    assert resp.model == "text-embedding-3-small"
    assert resp.usage.prompt_tokens == 5  # ceil(10 / 4) + ceil(5 / 4)
    assert resp.usage.total_tokens == 5
    assert resp.model_extra["provider"] == "mock"
    assert resp.usage.model_extra["cost"] == pytest.approx(5 * SMALL_PRICE)

    # The float form carries the same values the SDK decoded from base64.
    plain = client.embeddings.create(
        model="mock/text-embedding-3-small",
        input=["alpha beta", "gamma"],
        dimensions=16,
        encoding_format="float",
    )
    for a, b in zip(resp.data, plain.data):
        assert a.embedding == pytest.approx(b.embedding, rel=1e-6)


def test_base64_on_the_wire_is_little_endian_f32(embedding_gateway) -> None:
    base = embedding_gateway.url
    status, headers, b64 = post(
        base, {"model": "mock/text-embedding-3-small", "input": "hi", "dimensions": 4, "encoding_format": "base64"}
    )
    assert status == 200, b64
    status, _, plain = post(base, {"model": "mock/text-embedding-3-small", "input": "hi", "dimensions": 4})
    assert status == 200, plain
    assert isinstance(b64["data"][0]["embedding"], str)
    assert floats_of(b64["data"][0]["embedding"]) == pytest.approx(plain["data"][0]["embedding"], rel=1e-7)
    assert headers["x-opengateway-provider"] == "mock"
    assert headers["x-opengateway-model"] == "text-embedding-3-small"
    assert headers["x-opengateway-attempts"] == "1"
    assert float(headers["x-opengateway-cost"]) == pytest.approx(1 * SMALL_PRICE)


def test_gemini_type_via_the_sdk(client) -> None:
    resp = client.embeddings.create(
        model="mockgemini/gemini-embedding-001", input=["uno", "dos", "tres"], dimensions=8
    )
    assert resp.model_extra["provider"] == "mockgemini"
    assert [len(d.embedding) for d in resp.data] == [8, 8, 8]
    # Gemini counts no tokens: the gateway's estimate, ceil(chars / 4) each.
    assert resp.usage.prompt_tokens == 3
    float_form = client.embeddings.create(
        model="mockgemini/gemini-embedding-001", input="uno", dimensions=8, encoding_format="float"
    )
    assert float_form.data[0].embedding == pytest.approx(resp.data[0].embedding, rel=1e-6)
    # Same text and dimensions: the mock's vector is provider-independent.
    openai_form = client.embeddings.create(
        model="mock/text-embedding-3-small", input="uno", dimensions=8, encoding_format="float"
    )
    assert openai_form.data[0].embedding == pytest.approx(float_form.data[0].embedding, rel=1e-6)


def test_an_alias_falls_back(client) -> None:
    raw = client.embeddings.with_raw_response.create(
        model="embed", input="fall back please", encoding_format="float"
    )
    assert raw.headers["x-opengateway-provider"] == "mockgemini"
    assert raw.headers["x-opengateway-attempts"] == "2"
    resp = raw.parse()
    assert len(resp.data) == 1 and len(resp.data[0].embedding) == 3072


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "mockanthropic/claude-sonnet-4-5", "input": "x"}, "model"),
        ({"model": "mock/text-embedding-3-small", "input": ""}, "input"),
        ({"model": "mock/text-embedding-3-small", "input": ["ok", ""]}, "input[1]"),
        ({"model": "mock/text-embedding-3-small", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "mock/text-embedding-3-small", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "mockgemini/gemini-embedding-001", "input": [1, 2, 3]}, "input"),
        ({"model": "mock/text-embedding-3-small"}, "input"),
    ],
)
def test_bad_requests_are_400_naming_the_field(embedding_gateway, body, param) -> None:
    status, _, answer = post(embedding_gateway.url, body)
    assert status == 400, answer
    assert set(answer["error"]) >= ERROR_KEYS
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] == param, answer


def test_an_anthropic_model_is_a_bad_request_error_in_the_sdk(client) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="mockanthropic/claude-sonnet-4-5", input="x")
    assert info.value.status_code == 400
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "model"
    assert "no embeddings API" in info.value.body["message"]


def test_the_ledger_records_embeddings(embedding_gateway, client) -> None:
    resp = client.embeddings.with_raw_response.create(
        model="mock/text-embedding-3-small", input="ledger me", user="emb-user", encoding_format="float"
    )
    request_id = resp.headers["x-request-id"]
    request = urllib.request.Request(
        f"{embedding_gateway.url}/admin/requests?user=emb-user&limit=10",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        records = json.loads(response.read())["data"]
    (record,) = [r for r in records if r["id"] == request_id]
    assert record["endpoint"] == "embeddings"
    assert record["status"] == "ok"
    assert record["provider"] == "mock"
    assert record["tokens"]["prompt"] == 3
    assert record["estimated"] is False
    assert record["cost"]["total_usd"] == pytest.approx(3 * SMALL_PRICE)


def test_the_gateway_is_still_alive(embedding_gateway) -> None:
    assert embedding_gateway.alive(), embedding_gateway.dump()
