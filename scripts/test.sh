#!/usr/bin/env bash
# The one command that runs every test: Rust checks and unit/integration tests, then the
# end-to-end suites that drive the real gateway binary through the official SDKs (OpenAI and
# Anthropic in tests/python, OpenAI in tests/node). Run it from anywhere.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

STARTED=$SECONDS
STEP_STARTED=$SECONDS
CURRENT_STEP=""

step() {
    if [[ -n "$CURRENT_STEP" ]]; then
        printf '     (%s: %ds)\n' "$CURRENT_STEP" $((SECONDS - STEP_STARTED))
    fi
    CURRENT_STEP="$*"
    STEP_STARTED=$SECONDS
    printf '\n==== %s ====\n' "$*"
}

on_exit() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        printf '\n==== FAILED (exit %d) during: %s ====\n' "$rc" "${CURRENT_STEP:-setup}" >&2
    fi
}
trap on_exit EXIT

# ---------------------------------------------------------------------------------- Rust
step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace

step "cargo build --workspace --bins --examples (what the steps below run)"
cargo build --workspace --bins --examples
# Where that build put the binaries: target/debug, or under $CARGO_TARGET_DIR when it is set.
# An OGW_BIN_DIR given by the caller wins.
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
export OGW_BIN_DIR="${OGW_BIN_DIR:-$TARGET_DIR/debug}"
echo "binaries from $OGW_BIN_DIR"

step "Rust examples (served by the bundled mock provider)"
for example in chat stream fallback cost_report; do
    "$OGW_BIN_DIR/examples/$example"
done

# -------------------------------------------------------------------------------- Python
VENV="$ROOT/target/test-venv"
REQUIREMENTS="tests/python/requirements.txt"
STAMP="$VENV/.requirements.sha256"

step "Python: venv at target/test-venv"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$wanted" ]]; then
    echo "installing $REQUIREMENTS"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$wanted" >"$STAMP"
else
    echo "requirements unchanged, skipping pip install"
fi

step "Python: build the binding into the venv (maturin develop --release, same target dir)"
# maturin builds in $CARGO_TARGET_DIR like cargo does, so an unchanged binding rebuilds quickly.
VIRTUAL_ENV="$VENV" "$VENV/bin/maturin" develop --release --quiet -m bindings-python/Cargo.toml
"$VENV/bin/python" -X importtime -c "import opengateway" 2>&1 | tail -1 |
    awk -F'|' '{gsub(/ /, "", $2); print "import opengateway: " $2 " us (cumulative, -X importtime)"}'

step "Python: mypy --strict on the binding's package and examples/python (against its stubs)"
"$VENV/bin/mypy" --strict --no-incremental bindings-python/python/opengateway
(cd examples/python && "$VENV/bin/mypy" --strict --no-incremental .)

step "Python: pytest tests/python (SDKs against the gateway; tests/python/binding: the binding)"
"$VENV/bin/python" -m pytest tests/python -q -p no:cacheprovider

step "Python examples (examples/python, each against a mock provider it starts)"
for example in quickstart streaming fallback async_fanout cost_report; do
    echo "-- $example.py"
    "$VENV/bin/python" "examples/python/$example.py"
done

# ---------------------------------------------------------------------------------- Node
step "Node: npm ci in tests/node"
if [[ ! -d tests/node/node_modules || tests/node/package-lock.json -nt tests/node/node_modules ]]; then
    (cd tests/node && npm ci --no-audit --no-fund)
    touch tests/node/node_modules
else
    echo "node_modules newer than package-lock.json, skipping npm ci"
fi

step "Node: npm test in tests/node (openai npm package against the gateway)"
(cd tests/node && npm test)

step "done"
printf 'all tests passed in %ds\n' $((SECONDS - STARTED))
CURRENT_STEP=""
