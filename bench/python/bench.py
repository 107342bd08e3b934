"""Per-call overhead of the Python binding against the official `openai` SDK, both calling the
same mock provider directly: sequential latency and 100-way asyncio concurrency, plus import
time. Run: `OGW_BIN_DIR=<target>/release target/test-venv/bin/python bench/python/bench.py`.
Every figure is also given as a ratio to the openai SDK measured in the same run."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "python"))

import openai  # noqa: E402

import opengateway  # noqa: E402
from _mock import mock_base  # noqa: E402

MESSAGES = [{"role": "user", "content": "hi"}]
SEQ = int(os.environ.get("BENCH_SEQ", "500"))
CONC = int(os.environ.get("BENCH_CONC", "100"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "10"))


def import_ms(module: str) -> float:
    runs = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"],
            capture_output=True, text=True, check=True,
        )
        runs.append(float(out.stdout) * 1000)
    return statistics.median(runs)


def seq_us(call) -> float:
    for _ in range(50):
        call()
    started = time.perf_counter()
    for _ in range(SEQ):
        call()
    return (time.perf_counter() - started) / SEQ * 1e6


async def conc_ms(call) -> float:
    await asyncio.gather(*(call() for _ in range(CONC)))
    started = time.perf_counter()
    for _ in range(ROUNDS):
        await asyncio.gather(*(call() for _ in range(CONC)))
    return (time.perf_counter() - started) / ROUNDS * 1000


def main() -> None:
    base = mock_base()
    gw = opengateway.Gateway({"providers": {"mock": {"type": "openai", "api_base": f"{base}/v1", "api_key": "k"}}, "router": {"retries": 0}})
    agw = opengateway.AsyncGateway({"providers": {"mock": {"type": "openai", "api_base": f"{base}/v1", "api_key": "k"}}, "router": {"retries": 0}})
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
    aclient = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)

    rows = []
    a, b = import_ms("opengateway"), import_ms("openai")
    rows.append(("import (ms, median of 5)", a, b))
    a = seq_us(lambda: gw.chat.completions.create(model="mock/mock-gpt", messages=MESSAGES))
    b = seq_us(lambda: client.chat.completions.create(model="mock-gpt", messages=MESSAGES))  # type: ignore[arg-type]
    rows.append((f"sequential call (us/call, {SEQ} calls)", a, b))
    a = asyncio.run(conc_ms(lambda: agw.chat.completions.create(model="mock/mock-gpt", messages=MESSAGES)))
    b = asyncio.run(conc_ms(lambda: aclient.chat.completions.create(model="mock-gpt", messages=MESSAGES)))  # type: ignore[arg-type]
    rows.append((f"{CONC} concurrent asyncio calls (ms/batch, {ROUNDS} batches)", a, b))

    print(f"{'measure':<50} {'opengateway':>12} {'openai SDK':>12} {'ratio':>7}")
    for name, ours, theirs in rows:
        print(f"{name:<50} {ours:>12.1f} {theirs:>12.1f} {ours / theirs:>7.2f}")


if __name__ == "__main__":
    main()
