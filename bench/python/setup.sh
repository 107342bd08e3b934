#!/usr/bin/env bash
# A venv for bench/python/bench.py (not needed by the tests): the binding installed the way users
# install it, the official openai SDK, and TensorZero's Python client with its embedded gateway;
# plus the release build of the mock provider the three of them call.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$ROOT/target/bench-venv"
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade openai httpx tensorzero
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$ROOT/bindings-python"
(cd "$ROOT" && cargo build --release -q -p opengateway-mock)
echo "ready: $VENV/bin/python bench/python/bench.py"
