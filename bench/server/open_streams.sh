#!/usr/bin/env bash
# The gateway's memory with many streams open at once, and where it goes:
#
#   bash bench/server/open_streams.sh [streams] [bin dir] [-- wrapper...]
#
# The release gateway (CPU 0, server defaults: SQLite ledger, `info` log) serves the release
# mock (CPU 1). After a 2 s `wrk -c64` warm-up of fast streams, `wrk -c<streams>` (default
# 1000) holds that many 2 s streams open (20 chunks 100 ms apart) for 6 s. Printed: VmRSS when
# started, after the warm-up (idle) and at its peak under the load (sampled every 0.2 s), and
# the connections open to the client and to the mock half-way through. A wrapper runs the
# gateway under a tool, e.g. `-- heaptrack -o /tmp/ogw` (then `heaptrack_print -F stacks.txt
# --flamegraph-cost-type peak /tmp/ogw.zst` gives the stacks that held the peak).
set -euo pipefail
POSITIONAL=()
while [[ $# -gt 0 && $1 != -- ]]; do POSITIONAL+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
WRAPPER=("$@")
STREAMS=${POSITIONAL[0]:-1000}
BIN=${POSITIONAL[1]:-$(cd "$(dirname "$0")/../.." && pwd)/target/release}
OUT=$(mktemp -d /tmp/ogw-streams-XXXXXX)
command -v wrk >/dev/null || { echo "wrk is not installed: run bench/server/setup.sh" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || true

# shellcheck source=bench/server/common.sh
source "$(dirname "$0")/common.sh"
GATEWAY=""
cleanup() {
  [[ -n $GATEWAY ]] && kill "$GATEWAY" 2>/dev/null
  [[ -n ${PID:-} ]] && kill "$PID" 2>/dev/null
  kill "$MOCK" 2>/dev/null || true
}
start_mock
trap cleanup EXIT
write_config
taskset -c 0 "${WRAPPER[@]}" "$BIN/opengateway" --config "$OUT/opengateway.yaml" serve \
  >"$OUT/gateway.out" 2>"$OUT/gateway.err" &
GATEWAY=$!
wait_healthy
# Under a wrapper the gateway is the wrapper's child: watch the process that serves.
PID=$(pgrep -f -n "$BIN/opengateway --config $OUT/opengateway.yaml")

lua() {
  cat >"$OUT/$1.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"$2","messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Name twenty words, one after another, and nothing else."}],"max_tokens":64,"stream":true,"stream_options":{"include_usage":true}}'
EOF
}
lua fast "mock/mock-gpt"
lua slow "mock/mock-gpt~chunk_delay_ms=100"
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }
URL="http://127.0.0.1:$PORT/v1/chat/completions"

echo "RSS started: $(rss) MB"
taskset -c 1 wrk -t1 -c64 -d2s -s "$OUT/fast.lua" "$URL" >/dev/null
sleep 1
echo "RSS idle after the warm-up: $(rss) MB"
taskset -c 1 wrk -t1 -c"$STREAMS" -d6s --timeout 10s -s "$OUT/slow.lua" "$URL" >"$OUT/wrk.out" &
LOAD=$!
PEAK=0
SAMPLES=0
while kill -0 "$LOAD" 2>/dev/null; do
  NOW=$(rss)
  PEAK=$(awk -v a="$PEAK" -v b="$NOW" 'BEGIN { print (b > a ? b : a) }')
  SAMPLES=$((SAMPLES + 1))
  if [[ $SAMPLES -eq 15 ]]; then
    CLIENTS=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
    UPSTREAM=$(ss -Htn state established "( dport = :$MOCK_PORT )" | wc -l)
    echo "connections at 3 s: $CLIENTS from clients, $UPSTREAM to the mock"
  fi
  sleep 0.2
done
echo "RSS peak with $STREAMS streams open: $PEAK MB"
grep -E "requests in|Non-2xx|errors" "$OUT/wrk.out" || true
echo "files in $OUT"
