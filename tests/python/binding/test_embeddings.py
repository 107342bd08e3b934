"""``gw.embeddings.create`` of the Python binding, sync and asyncio, against the mock provider
(an OpenAI-type and a Gemini-type provider on it)."""

from __future__ import annotations

import asyncio
import base64
import struct
from typing import Any

import pytest

import opengateway


@pytest.fixture
def config(config: dict[str, Any], mock_server) -> dict[str, Any]:
    """The binding's config plus a Gemini-type provider and an embeddings alias whose first
    target fails."""
    config = {**config, "providers": {**config["providers"]}, "models": [*config["models"]]}
    config["providers"]["mockgemini"] = {
        "type": "gemini",
        "api_base": f"{mock_server.url}/v1beta",
        "api_key": "test-key",
    }
    config["models"].append(
        {"name": "embed", "targets": ["mock/text-embedding-3-small~status=503", "mockgemini/gemini-embedding-001"]}
    )
    return config


def test_floats_by_default_with_usage_cost_and_route(gw) -> None:
    resp = gw.embeddings.create(
        model="mock/text-embedding-3-small", input=["alpha beta", "gamma"], dimensions=8, tags=["rag"]
    )
    assert resp.object == "list"
    assert [d.index for d in resp.data] == [0, 1]
    assert all(d.object == "embedding" for d in resp.data)
    assert all(isinstance(v, float) for v in resp.data[0].embedding)
    assert len(resp.data[0].embedding) == 8
    assert resp.usage.prompt_tokens == 5
    assert resp.usage.cost == pytest.approx(5 * 2e-8)
    assert resp.provider == "mock"
    assert resp.route.provider == "mock" and resp.route.model == "text-embedding-3-small"
    gw.flush()
    (record,) = [r for r in gw.usage_records() if r.id == resp.request_id]
    assert record.endpoint == "embeddings"
    assert record.tags == ["rag"]
    assert record.tokens.prompt == 5


def test_base64_is_the_same_vector(gw) -> None:
    args: dict[str, Any] = {"model": "mockgemini/gemini-embedding-001", "input": "hola", "dimensions": 6}
    plain = gw.embeddings.create(**args)
    packed = gw.embeddings.create(**args, encoding_format="base64")
    raw = base64.b64decode(packed.data[0].embedding)
    assert list(struct.unpack("<6f", raw)) == pytest.approx(plain.data[0].embedding, rel=1e-7)
    # Gemini counts nothing: the gateway estimates, ceil(4 / 4) tokens.
    assert plain.usage.prompt_tokens == 1


def test_alias_fallback_and_models(gw) -> None:
    resp = gw.embeddings.create(model="embed", input="x", timeout=10)
    assert resp.route.provider == "mockgemini"
    assert [a.status for a in resp.route.attempts] == [503, 200]
    resp = gw.embeddings.create(
        model="mock/text-embedding-3-small~status=500", input="x", models=["mockgemini/gemini-embedding-001"]
    )
    assert resp.provider == "mockgemini"


def test_errors_are_typed_and_name_the_field(gw) -> None:
    with pytest.raises(opengateway.BadRequestError) as info:
        gw.embeddings.create(model="mockanthropic/claude-sonnet-4-5", input="x")
    assert info.value.param == "model"
    with pytest.raises(opengateway.BadRequestError) as info:
        gw.embeddings.create(model="mock/text-embedding-3-small", input=["a", ""])
    assert info.value.param == "input[1]"
    with pytest.raises(opengateway.BadRequestError) as info:
        gw.embeddings.create(model="mock/text-embedding-3-small", input="a", encoding_format="int8")  # type: ignore[arg-type]
    assert info.value.param == "encoding_format"


def test_async(agw) -> None:
    async def run() -> Any:
        return await asyncio.wait_for(
            agw.embeddings.create(model="mock/text-embedding-3-small", input=[[1, 2, 3]], user="u"),
            timeout=10,
        )

    resp = asyncio.run(run())
    assert len(resp.data) == 1 and len(resp.data[0].embedding) == 1536
    assert resp.usage.prompt_tokens == 3
