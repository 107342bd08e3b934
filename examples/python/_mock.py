"""Where the examples' provider lives: ``$OPENGATEWAY_MOCK_BASE`` (e.g. ``http://127.0.0.1:PORT``),
else the bundled mock provider started here from ``$OGW_BIN_DIR`` (``cargo build`` puts it in
``target/debug``). Swap the config for real providers (``{"providers": {"openai": {}}}``) in
your own code."""

from __future__ import annotations

import atexit
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def mock_base() -> str:
    """The mock provider's base URL, starting one (stopped at exit) when none is given."""
    given = os.environ.get("OPENGATEWAY_MOCK_BASE")
    if given:
        return given.rstrip("/")
    bin_dir = Path(os.environ.get("OGW_BIN_DIR") or ROOT / "target" / "debug")
    proc = subprocess.Popen(
        [str(bin_dir / "opengateway-mock"), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    atexit.register(proc.terminate)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # `listening on http://127.0.0.1:PORT`, once bound
    return line.split()[-1].rstrip("/")


def config() -> dict[str, Any]:
    """A gateway config with the mock as an OpenAI-shaped provider and a fallback alias."""
    base = mock_base()
    return {
        "providers": {"mock": {"type": "openai", "api_base": f"{base}/v1", "api_key": "none"}},
        "models": [
            # The first target answers 503; the gateway falls back to the second.
            {"name": "resilient", "targets": ["mock/mock-gpt~status=503", "mock/mock-gpt-mini"]}
        ],
        "router": {"retries": 0},
        # The mock's models are not in the price catalog: price them like a small hosted model.
        "pricing": {
            "models": {
                m: {"input_cost_per_token": 0.15e-6, "output_cost_per_token": 0.6e-6}
                for m in ("mock/mock-gpt", "mock/mock-gpt-mini")
            }
        },
    }
