#!/usr/bin/env bash
# The one command that runs every test: Rust checks and unit/integration tests, then the
# end-to-end suites that drive the real gateway binary through the official SDKs (OpenAI and
# Anthropic in tests/python, OpenAI in tests/node), then the Node binding (built, tested, packed
# and installed elsewhere) and its examples. Run it from anywhere.
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

step "Python: build the binding's abi3 wheel (maturin build --release) and pip install it"
# maturin builds in $CARGO_TARGET_DIR like cargo does, so an unchanged binding rebuilds quickly.
# The tests use the installed wheel, the artefact users get, not an editable development build.
WHEELS="$ROOT/target/wheels"
rm -rf "$WHEELS"
VIRTUAL_ENV="$VENV" "$VENV/bin/maturin" build --release --quiet -m bindings-python/Cargo.toml --out "$WHEELS"
WHEEL="$(ls "$WHEELS"/opengateway-*-cp310-abi3-*.whl)"
echo "built $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$WHEEL"
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

step "Node binding: npm install in bindings-node (@napi-rs/cli)"
# `npm install`, not `npm ci`: @napi-rs/cli's optional @napi-rs/lzma-<platform> packages for other
# platforms are not in this registry, so the lockfile cannot list them and `npm ci` refuses it.
# `npm install` still installs exactly the locked versions and leaves the lockfile as it is.
if [[ ! -d bindings-node/node_modules || bindings-node/package-lock.json -nt bindings-node/node_modules ]]; then
    (cd bindings-node && npm install --no-audit --no-fund)
    touch bindings-node/node_modules
else
    echo "node_modules newer than package-lock.json, skipping npm install"
fi

step "Node binding: napi build --release (cargo target dir shared with the steps above)"
(cd bindings-node && npm run build)

step "Node binding: node --test bindings-node/test (every public call against the mock)"
(cd bindings-node && npm test)

step "Node binding: npm pack, install the tarball into target/node-pack, require and import it"
PACK_DIR="$ROOT/target/node-pack"
rm -rf "$PACK_DIR"
mkdir -p "$PACK_DIR/app"
(cd bindings-node && npm pack --silent --pack-destination "$PACK_DIR") >"$PACK_DIR/tarball.txt"
TARBALL="$PACK_DIR/$(tail -n1 "$PACK_DIR/tarball.txt")"
echo "packed $TARBALL ($(du -h "$TARBALL" | cut -f1))"
cat >"$PACK_DIR/app/package.json" <<'JSON'
{ "name": "ogw-pack-check", "version": "0.0.0", "private": true }
JSON
(cd "$PACK_DIR/app" && npm install --no-audit --no-fund --no-package-lock "$TARBALL")
cat >"$PACK_DIR/app/check.cjs" <<'JS'
const { Gateway, NotFoundError } = require('opengateway')
const gw = new Gateway({ providers: { mock: { type: 'openai', api_base: process.env.OGW_MOCK_URL + '/v1', api_key: 'none' } } })
gw.chat.completions.create({ model: 'mock/mock-gpt', messages: [{ role: 'user', content: 'from require' }] })
  .then(async (answer) => {
    if (!/from require/.test(answer.choices[0].message.content)) throw new Error('unexpected answer')
    await gw.chat.completions.create({ model: 'nowhere/x', messages: [{ role: 'user', content: 'x' }] }).then(
      () => { throw new Error('expected NotFoundError') },
      (e) => { if (!(e instanceof NotFoundError)) throw e },
    )
    console.log('require: ok,', answer.provider, answer.requestId)
  })
  .catch((e) => { console.error(e); process.exit(1) })
JS
cat >"$PACK_DIR/app/check.mjs" <<'JS'
import Gateway, { version } from 'opengateway'
const gw = new Gateway({ providers: { mock: { type: 'openai', api_base: process.env.OGW_MOCK_URL + '/v1', api_key: 'none' } } })
let text = ''
for await (const chunk of await gw.chat.completions.create({ model: 'mock/mock-gpt', messages: [{ role: 'user', content: 'from import' }], stream: true })) {
  text += chunk.choices[0]?.delta?.content ?? ''
}
if (!/from import/.test(text)) throw new Error(`unexpected stream: ${text}`)
console.log(`import: ok, version ${version()}`)
JS
"$OGW_BIN_DIR/opengateway-mock" --listen 127.0.0.1:0 >"$PACK_DIR/mock.out" &
MOCK_PID=$!
for _ in $(seq 100); do grep -q 'listening on' "$PACK_DIR/mock.out" && break; sleep 0.1; done
export OGW_MOCK_URL="$(sed -n 's/^listening on //p' "$PACK_DIR/mock.out")"
pack_rc=0
(cd "$PACK_DIR/app" && timeout 60 node check.cjs && timeout 60 node check.mjs) || pack_rc=$?

step "Node examples: tsc --noEmit on examples/node, then run each against the mock"
if [[ $pack_rc -eq 0 ]]; then
    if [[ ! -d examples/node/node_modules || examples/node/package-lock.json -nt examples/node/node_modules ]]; then
        (cd examples/node && npm ci --no-audit --no-fund)
        touch examples/node/node_modules
    fi
    (cd examples/node && npx tsc -p . && for example in quickstart streaming fallback cost_report; do
        echo "-- examples/node/$example.mjs"
        timeout 60 node "$example.mjs" || exit 1
    done) || pack_rc=$?
fi
kill "$MOCK_PID" 2>/dev/null || true
wait "$MOCK_PID" 2>/dev/null || true
unset OGW_MOCK_URL
[[ $pack_rc -eq 0 ]]

step "done"
printf 'all tests passed in %ds\n' $((SECONDS - STARTED))
CURRENT_STEP=""
