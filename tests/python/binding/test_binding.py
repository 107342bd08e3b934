"""The Python binding end to end: every public call, sync and asyncio, against the mock
provider. Bounded waits everywhere; nothing leaves 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest

import opengateway

USER = [{"role": "user", "content": "Say hi"}]
WAIT_S = 10.0


def wait_for(predicate, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def record_of(gw: opengateway.Gateway, request_id: str) -> Any:
    """The ledger record of a request, once its status is final."""
    found: list[Any] = []

    def settled() -> bool:
        gw.flush()
        found[:] = [r for r in gw.usage_records(limit=1000) if r.id == request_id]
        return bool(found) and found[0].status != "pending"

    wait_for(settled)
    return found[0]


# ------------------------------------------------------------------------------ import


def test_import_is_cheap_and_exports_every_name() -> None:
    for name in opengateway.__all__:
        assert hasattr(opengateway, name), name
    assert opengateway.__version__ == opengateway.core_version()


# -------------------------------------------------------------------------- chat, sync


def test_chat_completion_has_the_sdk_shape_and_the_route(gw) -> None:
    resp = gw.chat.completions.create(
        model="mock/mock-gpt", messages=USER, temperature=0.2, max_tokens=50, tags=["t1"]
    )
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content.startswith("Hello from the mock provider!")
    assert resp.choices[0].finish_reason == "stop"
    assert resp.provider == "mock"
    assert isinstance(resp.usage.cost, float)
    assert resp.usage.prompt_tokens > 0
    assert resp.request_id.startswith("req_")
    assert resp.route.provider == "mock" and resp.route.model == "mock-gpt"
    assert resp.route.attempts[0].latency_ms >= 0
    assert resp.to_dict()["choices"][0]["message"]["role"] == "assistant"
    assert json.loads(resp.to_json()) == resp.to_dict()
    assert resp["choices"][0]["index"] == 0
    assert resp.not_a_field is None
    assert resp == resp.to_dict()
    assert "Response(" in repr(resp)
    record = record_of(gw, resp.request_id)
    assert record.status == "ok" and record.tags == ["t1"]


def test_extra_body_timeout_user_metadata_reach_the_request(gw) -> None:
    resp = gw.chat.completions.create(
        model="mock/mock-gpt",
        messages=USER,
        user="alice",
        metadata={"team": "search"},
        timeout=30,
        extra_body={"mock": {"content": "steered"}},
    )
    assert resp.choices[0].message.content == "steered"
    assert record_of(gw, resp.request_id).user == "alice"


def test_answers_go_back_into_requests(gw) -> None:
    first = gw.chat.completions.create(model="smart", messages=USER)
    second = gw.chat.completions.create(
        model="smart", messages=[*USER, first.choices[0].message, {"role": "user", "content": "again"}]
    )
    assert second.choices[0].message.content.endswith("again")


def test_fallback_shows_every_attempt(gw) -> None:
    resp = gw.chat.completions.create(model="fallback", messages=USER)
    attempts = resp.route.attempts
    assert [a.status for a in attempts] == [503, 200]
    assert resp.provider == "mock"
    viamodels = gw.chat.completions.create(
        model="mock/mock-gpt~status=500", models=["mock/mock-gpt"], messages=USER
    )
    assert len(viamodels.route.attempts) == 2


def test_stream_sync(gw) -> None:
    stream = gw.chat.completions.create(
        model="mock/mock-gpt",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert stream.request_id.startswith("req_")
    assert stream.route.provider == "mock"
    text = ""
    usage = None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text.startswith("Hello from the mock provider!")
    assert usage is not None and usage.cost is not None
    assert record_of(gw, stream.request_id).status == "ok"


def test_stream_context_manager_closes_early(gw) -> None:
    with gw.chat.completions.create(
        model="mock/mock-gpt~chunk_delay_ms=200~chunks=50", messages=USER, stream=True
    ) as stream:
        first = next(iter(stream))
        assert first.object == "chat.completion.chunk"
    started = time.monotonic()
    assert record_of(gw, stream.request_id).status == "cancelled"
    assert time.monotonic() - started < 5


def test_stream_break_then_close(gw) -> None:
    stream = gw.chat.completions.create(
        model="mock/mock-gpt~chunk_delay_ms=200~chunks=50", messages=USER, stream=True
    )
    for _ in stream:
        break
    stream.close()
    assert record_of(gw, stream.request_id).status == "cancelled"
    assert list(stream) == []


def test_stream_dropped_by_gc(gw) -> None:
    stream = gw.chat.completions.create(
        model="mock/mock-gpt~chunk_delay_ms=200~chunks=50", messages=USER, stream=True
    )
    next(stream)
    request_id = stream.request_id
    del stream
    assert record_of(gw, request_id).status == "cancelled"


def test_error_inside_a_stream_raises(gw) -> None:
    stream = gw.chat.completions.create(
        model="mock/mock-gpt~stream_error", messages=USER, stream=True
    )
    with pytest.raises(opengateway.APIError) as info:
        for _ in stream:
            pass
    assert info.value.provider == "mock"


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, opengateway.BadRequestError),
        (401, opengateway.AuthenticationError),
        (403, opengateway.PermissionDeniedError),
        (404, opengateway.NotFoundError),
        (409, opengateway.ConflictError),
        (422, opengateway.UnprocessableEntityError),
        (429, opengateway.RateLimitError),
        (500, opengateway.InternalServerError),
        (503, opengateway.InternalServerError),
    ],
)
def test_provider_statuses_raise_typed_errors(gw, status: int, cls: type) -> None:
    with pytest.raises(cls) as info:
        gw.chat.completions.create(model=f"mock/mock-gpt~status={status}", messages=USER)
    err = info.value
    assert isinstance(err, opengateway.APIError)
    assert err.status_code == status
    assert err.provider == "mock"
    assert err.attempts and err.attempts[-1]["status"] == status
    assert err.body["error"]["message"] == err.message
    assert err.type is not None


def test_stream_start_errors_are_typed_too(gw) -> None:
    with pytest.raises(opengateway.RateLimitError):
        gw.chat.completions.create(model="mock/mock-gpt~status=429", messages=USER, stream=True)


def test_unknown_model_is_not_found(gw) -> None:
    with pytest.raises(opengateway.NotFoundError) as info:
        gw.chat.completions.create(model="nobody/nothing", messages=USER)
    assert info.value.code == "model_not_found"
    assert info.value.param == "model"


def test_bad_field_names_the_param(gw) -> None:
    with pytest.raises(opengateway.BadRequestError) as info:
        gw.chat.completions.create(model="mock/mock-gpt", messages=USER, temperature="hot")  # type: ignore[arg-type]
    assert info.value.param == "temperature"
    with pytest.raises(opengateway.BadRequestError) as info:
        gw.chat.completions.create(model="mock/mock-gpt", messages=[{"content": "no role"}])
    assert info.value.param == "messages[0].role"


def test_unreachable_provider_is_a_connection_error() -> None:
    gw = opengateway.Gateway(
        {"providers": {"dead": {"type": "openai", "api_base": "http://127.0.0.1:9/v1", "api_key": "k"}}, "router": {"retries": 0}}
    )
    with pytest.raises(opengateway.APIConnectionError) as info:
        gw.chat.completions.create(model="dead/m", messages=USER)
    assert info.value.status_code == 502


def test_timeout_is_an_api_timeout_error(gw) -> None:
    with pytest.raises(opengateway.APITimeoutError) as info:
        gw.chat.completions.create(
            model="mock/mock-gpt~first_byte_delay_ms=3000", messages=USER, timeout=0.3
        )
    assert info.value.status_code == 504


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(opengateway.BadRequestError) as info:
        opengateway.Gateway({"providers": {"x": {"type": "openai", "bogus": 1}}})
    assert "bogus" in info.value.message
    path = tmp_path / "gw.yaml"
    path.write_text("router: { retries: 0 }\n", encoding="utf-8")
    opengateway.Gateway(path)
    opengateway.Gateway(str(path))
    opengateway.Gateway()


def test_budget_exceeded_is_its_own_class(config) -> None:
    config = {**config}
    config["pricing"] = {"models": {"mock/mock-gpt": {"input_cost_per_token": 1.0, "output_cost_per_token": 1.0}}}
    config["budgets"] = [{"user": "spender", "limit_usd": 0.000001}]
    gw = opengateway.Gateway(config)
    with pytest.raises(opengateway.BudgetExceededError) as info:
        for _ in range(3):
            gw.chat.completions.create(model="mock/mock-gpt", messages=USER, user="spender")
    assert info.value.status_code == 429
    assert info.value.type == "budget_exceeded"
    assert isinstance(info.value, opengateway.RateLimitError)


# ------------------------------------------------------------------------------- messages


def test_messages_sync_and_stream(gw) -> None:
    msg = gw.messages.create(model="mock/mock-gpt", max_tokens=64, messages=USER, system="Be brief.")
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.content[0].type == "text"
    assert msg.content[0].text.startswith("Hello from the mock provider!")
    assert msg.request_id.startswith("req_") and msg.route.provider == "mock"

    with gw.messages.create(
        model="mockanthropic/mock-claude", max_tokens=64, messages=USER, stream=True
    ) as stream:
        types = [event.type for event in stream]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert "content_block_delta" in types


def test_messages_errors_are_typed(gw) -> None:
    with pytest.raises(opengateway.RateLimitError):
        gw.messages.create(model="mockanthropic/mock-claude~status=429", max_tokens=8, messages=USER)


# --------------------------------------------------------------------------------- asyncio


def test_async_calls(agw) -> None:
    async def main() -> None:
        resp = await agw.chat.completions.create(model="mock/mock-gpt", messages=USER)
        assert resp.choices[0].message.content.startswith("Hello")
        assert resp.route.provider == "mock"

        stream = await agw.chat.completions.create(model="mock/mock-gpt", messages=USER, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text.startswith("Hello")

        msg = await agw.messages.create(model="mock/mock-gpt", max_tokens=16, messages=USER)
        assert msg.type == "message"
        async with await agw.messages.create(
            model="mock/mock-gpt", max_tokens=16, messages=USER, stream=True
        ) as events:
            assert [e.type async for e in events][-1] == "message_stop"

        with pytest.raises(opengateway.NotFoundError):
            await agw.chat.completions.create(model="nobody/nothing", messages=USER)
        with pytest.raises(opengateway.RateLimitError):
            await agw.chat.completions.create(model="mock/mock-gpt~status=429", messages=USER, stream=True)

        await agw.flush()
        rows = await agw.usage(by="model")
        assert sum(r.requests for r in rows) >= 5
        records = await agw.usage_records(limit=2)
        assert len(records) == 2

    asyncio.run(main())


def test_async_stream_early_close_is_cancelled(agw) -> None:
    async def main() -> str:
        async with await agw.chat.completions.create(
            model="mock/mock-gpt~chunk_delay_ms=200~chunks=50", messages=USER, stream=True
        ) as stream:
            async for _ in stream:
                break
        return stream.request_id

    request_id = asyncio.run(main())
    wait_for(lambda: any(r.id == request_id and r.status == "cancelled" for r in asyncio.run(agw.usage_records(limit=100))))


def test_asyncio_cancellation_closes_the_request(agw) -> None:
    async def main() -> None:
        task = asyncio.create_task(
            agw.chat.completions.create(
                model="mock/mock-gpt~first_byte_delay_ms=5000", messages=USER, tags=["cancel-me"]
            )
        )
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 3

    def cancelled() -> bool:
        records = asyncio.run(agw.usage_records(limit=100, tag="cancel-me"))
        return len(records) == 1 and records[0].status == "cancelled"

    wait_for(cancelled)


def test_500_concurrent_asyncio_calls(agw) -> None:
    async def main() -> list[Any]:
        calls = [
            agw.chat.completions.create(model="mock/mock-gpt", messages=[{"role": "user", "content": f"n{i}"}])
            for i in range(500)
        ]
        return await asyncio.wait_for(asyncio.gather(*calls), timeout=60)

    answers = asyncio.run(main())
    assert len({a.request_id for a in answers}) == 500
    for i, a in enumerate(answers):
        assert a.choices[0].message.content.endswith(f"n{i}")


# --------------------------------------------------------------------------------- threads


def test_one_gateway_shared_by_16_threads(gw) -> None:
    def work(i: int) -> list[str]:
        ids = []
        for j in range(10):
            resp = gw.chat.completions.create(model="mock/mock-gpt", messages=[{"role": "user", "content": f"{i}-{j}"}])
            assert resp.choices[0].message.content.endswith(f"{i}-{j}")
            ids.append(resp.request_id)
        with gw.chat.completions.create(model="mock/mock-gpt", messages=USER, stream=True) as s:
            assert sum(1 for _ in s) > 1
        return ids

    with ThreadPoolExecutor(16) as pool:
        ids = [i for batch in pool.map(work, range(16)) for i in batch]
    assert len(set(ids)) == 160


# ----------------------------------------------------------------------------------- usage


def test_usage_filters_and_groups(gw) -> None:
    gw.chat.completions.create(model="mock/mock-gpt", messages=USER, tags=["a"], user="u1")
    gw.chat.completions.create(model="mock/mock-gpt", messages=USER, tags=["b"], user="u2")
    with pytest.raises(opengateway.RateLimitError):
        gw.chat.completions.create(model="mock/mock-gpt~status=429", messages=USER, tags=["a"])
    gw.flush()
    by_tag = {r.group.tag: r for r in gw.usage(by=["tag"])}
    assert by_tag["a"].requests == 2 and by_tag["a"].errors == 1
    assert gw.usage(by="user,day", user="u1")[0].requests == 1
    assert gw.usage(status="error")[0].requests == 1
    assert gw.usage(since="1h", model="mock/mock-gpt")[0].requests == 2
    from datetime import datetime, timedelta, timezone

    future = datetime.now(timezone.utc) + timedelta(hours=1)
    assert gw.usage(since=future) == [] or gw.usage(since=future)[0].requests == 0
    assert gw.usage(until=0) == [] or gw.usage(until=0)[0].requests == 0
    records = gw.usage_records(limit=10, tag="a")
    assert [r.status for r in records] == ["error", "ok"]
    assert records[0].http_status == 429
    with pytest.raises(ValueError):
        gw.usage(since="yesterday-ish")


def test_on_request_end_sees_every_record_and_survives_exceptions(gw) -> None:
    seen: list[Any] = []
    done = threading.Event()

    def hook(record) -> None:
        seen.append(record)
        if len(seen) >= 2:
            done.set()

    def broken(record) -> None:
        raise RuntimeError("hook failure, reported and ignored")

    unraisable: list[Any] = []
    old = sys.unraisablehook
    sys.unraisablehook = lambda info: unraisable.append(info)
    try:
        gw.on_request_end(broken)
        gw.on_request_end(hook)
        first = gw.chat.completions.create(model="mock/mock-gpt", messages=USER)
        second = gw.chat.completions.create(model="mock/mock-gpt", messages=USER)
        assert done.wait(WAIT_S)
        wait_for(lambda: len(unraisable) >= 2)
    finally:
        sys.unraisablehook = old
    assert {r.id for r in seen} == {first.request_id, second.request_id}
    assert seen[0].status == "ok" and seen[0].model == "mock/mock-gpt"
    assert isinstance(unraisable[0].exc_value, RuntimeError)


# ----------------------------------------------------------------------------------- serve


def _server_config(config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return {**config, "server": {"auth": "none", "database": f"sqlite://{tmp_path / 'srv.db'}"}}


def test_server_handle_serves_the_openai_sdk(config, tmp_path: Path) -> None:
    with opengateway.Server(_server_config(config, tmp_path), listen="127.0.0.1:0") as server:
        assert server.address.startswith("127.0.0.1:")
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=WAIT_S)
        resp = client.chat.completions.create(model="mock/mock-gpt", messages=USER)  # type: ignore[arg-type]
        assert resp.choices[0].message.content.startswith("Hello")
        with urllib.request.urlopen(server.url + "/health", timeout=WAIT_S) as health:
            assert health.status == 200


def test_serve_blocks_until_stopped(config, tmp_path: Path, capsys) -> None:
    class Done(Exception):
        pass

    seen: list[str] = []

    def ready(server: opengateway.Server) -> None:
        with urllib.request.urlopen(server.url + "/v1/models", timeout=WAIT_S) as models:
            seen.extend(m["id"] for m in json.load(models)["data"])
        raise Done

    with pytest.raises(Done):
        opengateway.serve(_server_config(config, tmp_path), listen="127.0.0.1:0", ready=ready)
    assert "smart" in seen


# ---------------------------------------------------------------------------------- Ctrl-C

_CTRL_C_SCRIPT = """
import json, sys, time
import opengateway
gw = opengateway.Gateway(json.loads(sys.argv[1]))
print("calling", flush=True)
started = time.monotonic()
try:
    gw.chat.completions.create(model="mock/mock-gpt~first_byte_delay_ms=20000", messages=[{"role": "user", "content": "hi"}])
except KeyboardInterrupt:
    waited = time.monotonic() - started
    time.sleep(0.3)
    gw.flush()
    print("interrupted", round(waited, 1), gw.usage_records(limit=1)[0].status, flush=True)
"""


def test_ctrl_c_interrupts_a_blocking_call(config) -> None:
    import signal
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-c", _CTRL_C_SCRIPT, json.dumps(config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "calling"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT_S)
    words = out.split()
    assert words[0] == "interrupted", out
    assert float(words[1]) < 5
    assert words[2] == "cancelled"


# --------------------------------------------------------------------------------- SIGTERM

_SIGTERM_SCRIPT = """
import json, sys
import opengateway
opengateway.serve(json.loads(sys.argv[1]), listen="127.0.0.1:0")
print("serve returned", flush=True)
"""


def test_sigterm_stops_serve_gracefully(config, tmp_path: Path) -> None:
    """SIGTERM during a request: the request is answered, its record written, serve() returns."""
    import signal
    import sqlite3
    import subprocess

    server_config = _server_config(config, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SIGTERM_SCRIPT, json.dumps(server_config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline().strip()
        assert banner.startswith("opengateway listening on http://"), banner
        url = banner.removeprefix("opengateway listening on ")
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=WAIT_S)
        answers: list[str] = []

        def slow_call() -> None:
            answer = client.chat.completions.create(
                model="mock/mock-gpt~first_byte_delay_ms=800", messages=USER
            )
            answers.append(answer.choices[0].message.content or "")

        caller = threading.Thread(target=slow_call)
        caller.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        caller.join(timeout=WAIT_S)
        out, _ = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT_S)
    assert answers and "Say hi" in answers[0], answers
    assert "serve returned" in out, out
    assert proc.returncode == 0
    db = sqlite3.connect(tmp_path / "srv.db")
    statuses = [row[0] for row in db.execute("SELECT status FROM usage_records")]
    db.close()
    assert statuses == ["ok"], statuses
