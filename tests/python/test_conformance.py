"""Conformance: every recorded OpenAI, Anthropic and Gemini response in ../shared/fixtures, replayed
by the mock provider, must reach the official `openai` SDK through the gateway with the same
meaning: text, reasoning text, tool calls (names and parsed arguments), finish reason and usage.

The expected values are read here, independently of the gateway, from each provider's own wire
format. Every response and chunk the gateway emits is also validated against the
`CreateChatCompletionResponse` / `CreateChatCompletionStreamResponse` schemas of OpenAI's spec.

Skips with a message when ../shared/fixtures (beside the repository) is absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import openai
import pytest

from conftest import BIN_DIR, REPO_ROOT, Service, start_gateway
from openapi_schemas import openai_validator

try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the pinned SDK
    import httpx

FIXTURES = (REPO_ROOT / ".." / "shared" / "fixtures").resolve()
PROVIDERS = ("openai", "anthropic", "gemini")


def _cases() -> list[Any]:
    if not FIXTURES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{FIXTURES} not found"))]
    cases = []
    for provider in PROVIDERS:
        for case_dir in sorted((FIXTURES / provider).iterdir()):
            if (case_dir / "meta.json").is_file():
                cases.append(pytest.param(case_dir, id=f"{provider}/{case_dir.name}"))
    return cases


# ----------------------------------------------------------------------------- expectations


@dataclass
class Expected:
    """What a recorded answer means, in OpenAI's terms, per choice index."""

    text: dict[int, str] = field(default_factory=dict)
    reasoning: dict[int, str] = field(default_factory=dict)
    tool_calls: dict[int, list[tuple[str, Any]]] = field(default_factory=dict)
    finish: dict[int, str | None] = field(default_factory=dict)
    usage: dict[str, int] | None = None


def _sse_events(raw: str) -> Iterator[tuple[str, str]]:
    """(event name, data) pairs of an SSE body; handles CRLF framing."""
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        name, data = "", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if data:
            yield name, "\n".join(data)


def _args(arguments: Any) -> Any:
    return json.loads(arguments) if isinstance(arguments, str) else arguments


def expect_openai(body: Any, events: list[tuple[str, str]] | None) -> Expected:
    exp = Expected()
    if events is None:
        for c in body["choices"]:
            i, m = c["index"], c["message"]
            exp.text[i] = m.get("content") or ""
            exp.tool_calls[i] = [
                (t["function"]["name"], _args(t["function"]["arguments"]))
                for t in m.get("tool_calls") or []
            ]
            exp.finish[i] = c["finish_reason"]
        usage = body.get("usage")
    else:
        usage, args = None, {}
        for _, data in events:
            if data == "[DONE]":
                continue
            chunk = json.loads(data)
            usage = chunk.get("usage") or usage
            for c in chunk.get("choices") or []:
                i, d = c["index"], c.get("delta") or {}
                exp.text[i] = exp.text.get(i, "") + (d.get("content") or "")
                for t in d.get("tool_calls") or []:
                    slot = args.setdefault(i, {}).setdefault(t["index"], ["", ""])
                    fn = t.get("function") or {}
                    slot[0] += fn.get("name") or ""
                    slot[1] += fn.get("arguments") or ""
                if c.get("finish_reason"):
                    exp.finish[i] = c["finish_reason"]
        for i, calls in args.items():
            exp.tool_calls[i] = [(n, _args(a)) for _, (n, a) in sorted(calls.items())]
    if usage:
        exp.usage = {
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"],
            "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0,
            "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
            or 0,
        }
    return exp


ANTHROPIC_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def expect_anthropic(body: Any, events: list[tuple[str, str]] | None) -> Expected:
    exp = Expected()
    if events is None:
        blocks, stop, usage = body["content"], body["stop_reason"], body["usage"]
    else:
        blocks, stop, usage, partial = [], None, {}, {}
        for name, data in events:
            ev = json.loads(data)
            kind = ev.get("type", name)
            if kind == "message_start":
                usage.update({k: v for k, v in ev["message"]["usage"].items() if v is not None})
            elif kind == "content_block_start":
                blocks.append(dict(ev["content_block"]))
                partial[ev["index"]] = len(blocks) - 1
            elif kind == "content_block_delta":
                b, d = blocks[partial[ev["index"]]], ev["delta"]
                if d["type"] == "text_delta":
                    b["text"] = b.get("text", "") + d["text"]
                elif d["type"] == "thinking_delta":
                    b["thinking"] = b.get("thinking", "") + d["thinking"]
                elif d["type"] == "input_json_delta":
                    b["_json"] = b.get("_json", "") + d["partial_json"]
            elif kind == "message_delta":
                stop = ev["delta"].get("stop_reason") or stop
                usage.update({k: v for k, v in (ev.get("usage") or {}).items() if v is not None})
        for b in blocks:
            if b["type"] == "tool_use" and "_json" in b:
                b["input"] = json.loads(b["_json"]) if b["_json"] else {}
    exp.text[0] = "".join(b["text"] for b in blocks if b["type"] == "text")
    exp.reasoning[0] = "".join(b.get("thinking", "") for b in blocks if b["type"] == "thinking")
    exp.tool_calls[0] = [(b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"]
    exp.finish[0] = ANTHROPIC_STOP.get(stop, "stop")
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or 0
    prompt = usage["input_tokens"] + cache_read + cache_write
    exp.usage = {
        "prompt_tokens": prompt,
        "completion_tokens": usage["output_tokens"],
        "total_tokens": prompt + usage["output_tokens"],
        "cached_tokens": cache_read,
        "cache_write_tokens": cache_write,
    }
    return exp


GEMINI_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def expect_gemini(body: Any, events: list[tuple[str, str]] | None) -> Expected:
    exp = Expected()
    responses = [body] if events is None else [json.loads(d) for _, d in events]
    usage = None
    for r in responses:
        usage = r.get("usageMetadata") or usage
        for c in r.get("candidates") or []:
            i = c.get("index", 0)
            for p in (c.get("content") or {}).get("parts") or []:
                if "text" in p and p.get("thought"):
                    exp.reasoning[i] = exp.reasoning.get(i, "") + p["text"]
                elif "text" in p:
                    exp.text[i] = exp.text.get(i, "") + p["text"]
                elif "functionCall" in p:
                    call = p["functionCall"]
                    exp.tool_calls.setdefault(i, []).append((call["name"], call.get("args") or {}))
            if c.get("finishReason"):
                exp.finish[i] = GEMINI_FINISH.get(c["finishReason"], "stop")
    for i in list(exp.finish):
        if exp.tool_calls.get(i) and exp.finish[i] == "stop":
            exp.finish[i] = "tool_calls"
    if usage:
        prompt = usage.get("promptTokenCount", 0) + usage.get("toolUsePromptTokenCount", 0)
        thoughts = usage.get("thoughtsTokenCount", 0)
        completion = usage.get("candidatesTokenCount", 0) + thoughts
        exp.usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": usage.get("totalTokenCount", prompt + completion),
            "cached_tokens": usage.get("cachedContentTokenCount", 0),
            "reasoning_tokens": thoughts,
        }
    return exp


EXPECT = {"openai": expect_openai, "anthropic": expect_anthropic, "gemini": expect_gemini}


def expected_error(provider: str, body: Any) -> tuple[int, str]:
    """The status and message the gateway must answer with for a recorded error body.

    Documented mappings: Anthropic `overloaded_error` (529) becomes 503; Google answers an invalid
    API key with 400 INVALID_ARGUMENT + reason API_KEY_INVALID, which is an authentication error (401).
    """
    if isinstance(body, list):
        body = body[0]
    err = body["error"]
    message = err["message"]
    if provider == "anthropic" and err.get("type") == "overloaded_error":
        return 503, message
    if provider == "gemini":
        reasons = [d.get("reason") for d in err.get("details") or []]
        if "API_KEY_INVALID" in reasons:
            return 401, message
        return err["code"], message
    return 0, message  # 0: the recorded HTTP status


# ----------------------------------------------------------------------------------- the run


@pytest.fixture(scope="module")
def replay_gateway(tmp_path_factory) -> Iterator[Service]:
    if not FIXTURES.is_dir():
        pytest.skip(f"{FIXTURES} not found")
    workdir = tmp_path_factory.mktemp("conformance")
    mock = Service(
        "opengateway-mock (replay)",
        [str(BIN_DIR / "opengateway-mock"), "--listen", "127.0.0.1:0", "--fixtures", str(FIXTURES)],
        cwd=workdir,
    )
    gateway = start_gateway(
        "opengateway (conformance)",
        workdir,
        f"""\
providers:
  openai:    {{ type: openai,    api_base: "{mock.url}/v1",     api_key: k }}
  anthropic: {{ type: anthropic, api_base: "{mock.url}/v1",     api_key: k }}
  gemini:    {{ type: gemini,    api_base: "{mock.url}/v1beta", api_key: k }}
router: {{ retries: 0 }}
server: {{ listen: "127.0.0.1:0", database: "sqlite://{workdir / 'gw.db'}", auth: none }}
""",
    )
    try:
        yield gateway
    finally:
        gateway.stop()
        mock.stop()


@dataclass
class Got:
    text: dict[int, str] = field(default_factory=dict)
    reasoning: dict[int, str] = field(default_factory=dict)
    tool_calls: dict[int, list[tuple[str, Any]]] = field(default_factory=dict)
    finish: dict[int, str | None] = field(default_factory=dict)
    usage: Any = None


def _got_from_completion(completion: Any) -> Got:
    got = Got(usage=completion.usage)
    for c in completion.choices:
        m = c.message
        got.text[c.index] = m.content or ""
        got.reasoning[c.index] = (m.model_extra or {}).get("reasoning_content") or ""
        got.tool_calls[c.index] = [
            (t.function.name, json.loads(t.function.arguments)) for t in m.tool_calls or []
        ]
        got.finish[c.index] = c.finish_reason
    return got


def _got_from_stream(chunks: list[Any]) -> Got:
    got, args = Got(), {}
    for chunk in chunks:
        if chunk.usage is not None:
            got.usage = chunk.usage
        for c in chunk.choices:
            i, d = c.index, c.delta
            got.text[i] = got.text.get(i, "") + (d.content or "")
            got.reasoning[i] = got.reasoning.get(i, "") + (
                (d.model_extra or {}).get("reasoning_content") or ""
            )
            for t in d.tool_calls or []:
                slot = args.setdefault(i, {}).setdefault(t.index, ["", ""])
                slot[0] += (t.function.name if t.function else None) or ""
                slot[1] += (t.function.arguments if t.function else None) or ""
            if c.finish_reason:
                assert i not in got.finish, f"choice {i} got two finish chunks"
                got.finish[i] = c.finish_reason
    for i, calls in args.items():
        got.tool_calls[i] = [(n, json.loads(a)) for _, (n, a) in sorted(calls.items())]
    return got


def _compare(exp: Expected, got: Got) -> None:
    for i, text in exp.text.items():
        assert got.text.get(i, "") == text, f"text of choice {i}"
    for i, reasoning in exp.reasoning.items():
        assert (got.reasoning.get(i) or "") == reasoning, f"reasoning of choice {i}"
    for i, calls in exp.tool_calls.items():
        assert got.tool_calls.get(i, []) == calls, f"tool calls of choice {i}"
    assert got.finish == exp.finish
    if exp.usage is None:
        return
    assert got.usage is not None, "usage missing"
    u = got.usage
    assert u.prompt_tokens == exp.usage["prompt_tokens"]
    assert u.completion_tokens == exp.usage["completion_tokens"]
    assert u.total_tokens == exp.usage["total_tokens"]
    ptd = u.prompt_tokens_details.model_dump() if u.prompt_tokens_details else {}
    ptd.update((u.prompt_tokens_details.model_extra or {}) if u.prompt_tokens_details else {})
    ctd = u.completion_tokens_details
    assert (ptd.get("cached_tokens") or 0) == exp.usage["cached_tokens"]
    if "cache_write_tokens" in exp.usage:
        assert (ptd.get("cache_write_tokens") or 0) == exp.usage["cache_write_tokens"]
    if "reasoning_tokens" in exp.usage:
        assert ((ctd.reasoning_tokens if ctd else 0) or 0) == exp.usage["reasoning_tokens"]
    assert (u.model_extra or {}).get("cost") is not None, "usage.cost is always there"


def _validate_raw(gateway_url: str, model: str, stream: bool) -> None:
    """The same request over raw HTTP: every JSON the gateway sends must fit OpenAI's schemas."""
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "replay"}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    with httpx.Client(timeout=30.0, trust_env=False) as http:
        response = http.post(f"{gateway_url}/v1/chat/completions", json=body)
    if response.status_code != 200:
        error = response.json()
        assert set(error["error"]) >= {"message", "type", "param", "code"}
        return
    if not stream:
        openai_validator("CreateChatCompletionResponse").validate(response.json())
        return
    validator = openai_validator("CreateChatCompletionStreamResponse")
    for _, data in _sse_events(response.text):
        if data == "[DONE]":
            continue
        chunk = json.loads(data)
        if "error" in chunk:
            continue
        validator.validate(chunk)


def _stream_error(event: tuple[str, str]) -> dict | None:
    """The error object of an error event inside a 200 stream (Anthropic `event: error`, an
    OpenAI-compatible `data: {"error": ...}`, a Google error object), else None."""
    name, data = event
    if data == "[DONE]":
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    error = value.get("error") if isinstance(value, dict) else None
    if name == "error" or isinstance(error, dict):
        return error if isinstance(error, dict) else {"message": str(error)}
    return None


@pytest.mark.parametrize("case_dir", _cases())
def test_fixture_replays_with_the_same_meaning(case_dir: Path, replay_gateway: Service) -> None:
    meta = json.loads((case_dir / "meta.json").read_text(encoding="utf-8"))
    provider, stream = meta["provider"], bool(meta["stream"])
    raw = (case_dir / meta["response_file"]).read_text(encoding="utf-8")
    model = f"{provider}/fixture--{provider}--{case_dir.name}"
    client = openai.OpenAI(
        base_url=f"{replay_gateway.url}/v1", api_key="unused", max_retries=0, timeout=30.0
    )
    messages = [{"role": "user", "content": "replay"}]

    is_bare_json = meta["response_file"].endswith(".json") or not raw.lstrip().startswith(
        ("data:", "event:")
    )
    if meta["status"] >= 400:
        status, message = expected_error(provider, json.loads(raw))
        status = status or meta["status"]
        with pytest.raises(openai.APIStatusError) as info:
            if stream:
                list(client.chat.completions.create(model=model, messages=messages, stream=True))
            else:
                client.chat.completions.create(model=model, messages=messages)
        assert info.value.status_code == status
        assert message in str(info.value.message), info.value.message
        _validate_raw(replay_gateway.url, model, stream)
        return

    events = None if is_bare_json else list(_sse_events(raw))
    in_stream_error = next((e for e in map(_stream_error, events or []) if e), None)
    if in_stream_error:
        chunks: list[Any] = []
        with pytest.raises(openai.APIError) as info:
            for chunk in client.chat.completions.create(
                model=model, messages=messages, stream=True
            ):
                chunks.append(chunk)
        assert in_stream_error["message"] in str(info.value.message)
        return

    expected = EXPECT[provider](json.loads(raw) if events is None else None, events)
    if stream:
        chunks = list(
            client.chat.completions.create(
                model=model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert chunks, "no chunks"
        first = next(c for c in chunks if c.choices)
        assert first.choices[0].delta.role == "assistant"
        assert all(c.model_extra.get("provider") == provider for c in chunks)
        got = _got_from_stream(chunks)
    else:
        completion = client.chat.completions.create(model=model, messages=messages)
        assert completion.model_extra.get("provider") == provider
        got = _got_from_completion(completion)
    _compare(expected, got)
    _validate_raw(replay_gateway.url, model, stream)


@pytest.mark.parametrize(
    ("model", "params", "param"),
    [
        ("anthropic/fixture--anthropic--messages-text", {"logprobs": True}, "logprobs"),
        ("anthropic/fixture--anthropic--messages-text", {"n": 2}, "n"),
        ("anthropic/fixture--anthropic--messages-text", {"seed": 7}, "seed"),
        ("gemini/fixture--gemini--generate-thinking", {"logit_bias": {"50256": -100}}, "logit_bias"),
    ],
)
def test_parameters_a_provider_cannot_honour_are_refused(
    replay_gateway: Service, model: str, params: dict, param: str
) -> None:
    client = openai.OpenAI(
        base_url=f"{replay_gateway.url}/v1", api_key="unused", max_retries=0, timeout=30.0
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], **params
        )
    assert info.value.param == param, info.value.body
