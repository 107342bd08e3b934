"""Per-call overhead of the Python binding against the official `openai` SDK and TensorZero's
embedded PyO3 client, all calling the same mock provider: import time, sequential latency and
asyncio concurrency (100-way and 2,000-way). Every figure is also given as a ratio to the openai
SDK measured in the same run.

Run `bench/python/setup.sh` once (a venv with the three packages), then
`target/bench-venv/bin/python bench/python/bench.py`. On a machine with two or more cores the
Python process (and the tokio threads it starts) is pinned to CPU 0 and the mock to CPU 1, as in
the server-mode benchmark. TensorZero is skipped, with a message, when it is not installed."""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "hi"}]
SEQ = int(os.environ.get("BENCH_SEQ", "4000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "10"))
CONCURRENCY = [int(n) for n in os.environ.get("BENCH_CONC", "100,2000").split(",")]
PIN = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def start_mock() -> tuple[subprocess.Popen[str], str]:
    """The project's release mock, without its request log, on CPU 1 when pinning."""
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    bin_dir = Path(os.environ.get("OGW_BIN_DIR") or target / "release")
    command = [str(bin_dir / "opengateway-mock"), "--listen", "127.0.0.1:0", "--no-record"]
    if PIN:
        command = ["taskset", "-c", "1", *command]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # `listening on http://127.0.0.1:PORT`, once bound
    if not line:
        raise SystemExit(f"the mock did not start: build it with `cargo build --release -p opengateway-mock` ({command[-4]})")
    return proc, line.split()[-1].rstrip("/")


def import_ms(module: str) -> float:
    runs = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"],
            capture_output=True, text=True, check=True,
        )
        runs.append(float(out.stdout) * 1000)
    return statistics.median(runs)


def seq_us(calls: list[Callable[[], Any]]) -> list[float]:
    """Per contender, the median over ROUNDS interleaved rounds of SEQ/ROUNDS sequential calls
    (interleaved so that the machine's noise falls on every contender alike), in us per call."""
    per_round = max(SEQ // ROUNDS, 1)
    for call in calls:
        for _ in range(200):
            call()
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(ROUNDS):
        for call, sample in zip(calls, samples):
            started = time.perf_counter()
            for _ in range(per_round):
                call()
            sample.append((time.perf_counter() - started) / per_round * 1e6)
    return [statistics.median(sample) for sample in samples]


async def conc_us(calls: list[Callable[[], Awaitable[Any]] | None], n: int) -> list[float | None]:
    """Per contender, the median over ROUNDS interleaved batches of `n` concurrent calls, in us
    per call; None for a contender that has no client at this concurrency."""
    for call in calls:
        if call:
            await asyncio.gather(*(call() for _ in range(n)))
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(ROUNDS):
        for call, sample in zip(calls, samples):
            if call:
                started = time.perf_counter()
                await asyncio.gather(*(call() for _ in range(n)))
                sample.append((time.perf_counter() - started) / n * 1e6)
    return [statistics.median(sample) if sample else None for sample in samples]


class Contender:
    """One client under test: a sync call, an async call (None: not measured), and the module
    whose import is timed."""

    def __init__(
        self,
        name: str,
        module: str,
        sync: Callable[[], Any],
        make_async: Callable[[], Awaitable[Callable[[], Awaitable[Any]] | None]],
    ):
        self.name, self.module, self.sync, self.make_async = name, module, sync, make_async


def floor_contender(base: str) -> Contender:
    """The floor: the standard library's keep-alive `http.client` posting the same body and
    `json.loads` of the answer, with no client logic at all (sequential only)."""
    import http.client
    import json

    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    body = json.dumps({"model": "mock-gpt", "messages": MESSAGES})
    headers = {"content-type": "application/json", "authorization": "Bearer k"}

    def call() -> Any:
        connection.request("POST", "/v1/chat/completions", body, headers)
        return json.loads(connection.getresponse().read())

    async def no_async() -> None:
        return None

    return Contender("http.client", "http.client", call, no_async)


def opengateway_contender(base: str) -> Contender:
    import opengateway

    config = {"providers": {"mock": {"type": "openai", "api_base": f"{base}/v1", "api_key": "k"}}, "router": {"retries": 0}}
    gw = opengateway.Gateway(config)

    async def make_async() -> Callable[[], Awaitable[Any]]:
        agw = opengateway.AsyncGateway(config)
        return lambda: agw.chat.completions.create(model="mock/mock-gpt", messages=MESSAGES)

    return Contender("opengateway", "opengateway", lambda: gw.chat.completions.create(model="mock/mock-gpt", messages=MESSAGES), make_async)


def openai_contender(base: str) -> Contender:
    import httpx
    import openai

    client = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)

    async def make_async() -> Callable[[], Awaitable[Any]]:
        # The default pool (1,000 connections, 5 s pool timeout) fails at 2,000-way; give it room.
        pool = openai.DefaultAsyncHttpxClient(limits=httpx.Limits(max_connections=max(CONCURRENCY)), timeout=60)
        aclient = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0, http_client=pool)
        return lambda: aclient.chat.completions.create(model="mock-gpt", messages=MESSAGES)  # type: ignore[arg-type]

    return Contender("openai SDK", "openai", lambda: client.chat.completions.create(model="mock-gpt", messages=MESSAGES), make_async)  # type: ignore[arg-type]


def tensorzero_contender(base: str) -> Contender | None:
    try:
        import tensorzero
    except ImportError:
        print("TensorZero skipped: `tensorzero` is not installed (bench/python/setup.sh installs it)")
        return None
    # Observability stays off (no ClickHouse/Postgres URL), as our in-memory ledger default is the
    # lighter side of ours: each client does its full work per call and nothing else.
    config = Path(tempfile.mkdtemp()) / "tensorzero.toml"
    config.write_text(
        '[models.mock]\nrouting = ["mock"]\n\n[models.mock.providers.mock]\ntype = "openai"\n'
        f'model_name = "mock-gpt"\napi_base = "{base}/v1/"\napi_key_location = "none"\n'
    )
    client = tensorzero.TensorZeroGateway.build_embedded(config_file=str(config))
    inputs = {"messages": MESSAGES}

    async def make_async() -> Callable[[], Awaitable[Any]]:
        aclient = await tensorzero.AsyncTensorZeroGateway.build_embedded(config_file=str(config))
        return lambda: aclient.inference(model_name="mock", input=inputs)

    return Contender("TensorZero", "tensorzero", lambda: client.inference(model_name="mock", input=inputs), make_async)


def main() -> None:
    if PIN:
        os.sched_setaffinity(0, {0})
    mock, base = start_mock()
    try:
        candidates = (opengateway_contender(base), openai_contender(base), tensorzero_contender(base), floor_contender(base))
        contenders = [c for c in candidates if c]
        rows: list[tuple[str, list[float | None]]] = []
        rows.append(("import (ms, median of 5 interpreters)", [import_ms(c.module) for c in contenders]))
        rows.append((f"sequential (us/call, {SEQ} calls)", list(seq_us([c.sync for c in contenders]))))
        for n in CONCURRENCY:

            async def run(n: int = n) -> list[float | None]:
                return await conc_us([await c.make_async() for c in contenders], n)

            rows.append((f"{n}-way asyncio (us/call, median of {ROUNDS} batches)", asyncio.run(run())))
    finally:
        mock.terminate()

    names = [c.name for c in contenders]
    # Ratios of ours to each other client in the same run (below 1: ours costs less).
    others = [i for i, name in enumerate(names) if name not in ("opengateway", "http.client")]
    print(f"\npinned: {'python CPU 0, mock CPU 1' if PIN else 'no'}")
    header = "".join(f"{name:>13}" for name in names) + "".join(f"{'ours/' + names[i]:>20}" for i in others)
    print(f"{'measure':<48}{header}")
    for label, figures in rows:
        cells = "".join(f"{f:>13.1f}" if f is not None else f"{'n/a':>13}" for f in figures)
        ours = figures[0]
        ratios = "".join(
            f"{ours / figures[i]:>20.2f}" if ours is not None and figures[i] else f"{'n/a':>20}" for i in others
        )
        print(f"{label:<48}{cells}{ratios}")


if __name__ == "__main__":
    main()
