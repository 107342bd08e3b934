#!/usr/bin/env bash
# Counts the instructions the gateway runs per request, under valgrind's callgrind: a figure that,
# unlike req/s on a shared machine, is the same from one run to the next within about 1-2% (the
# ledger's batches vary with thread timing), so two builds can be compared across sessions.
#
#   bash bench/server/callgrind.sh [chat|stream] [requests] [bin dir]
#
# chat: non-stream chat completions; stream: 20-chunk streams with usage. The gateway (under
# callgrind, CPU 0) serves the release mock (CPU 1) with its SQLite ledger, as in run.py; oha
# sends 16 requests at a time. Counting starts after a warm-up and ends after `requests`; the
# profile is left in the output directory for `callgrind_annotate --inclusive=yes FILE`.
set -euo pipefail
MODE=${1:-chat}
N=${2:-4000}
BIN=${3:-$(cd "$(dirname "$0")/../.." && pwd)/target/release}
OUT=$(mktemp -d /tmp/ogw-callgrind-XXXXXX)
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
command -v oha >/dev/null || { echo "oha is not installed: run bench/server/setup.sh" >&2; exit 1; }

# shellcheck source=bench/server/common.sh
source "$(dirname "$0")/common.sh"
start_mock
trap 'kill $MOCK 2>/dev/null || true' EXIT
write_config
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.%p" \
  "$BIN/opengateway" --config "$OUT/opengateway.yaml" serve >"$OUT/gateway.out" 2>"$OUT/gateway.err" &
GATEWAY=$!
wait_healthy

STREAM=""
[[ $MODE == stream ]] && STREAM=',"stream":true,"stream_options":{"include_usage":true}'
BODY='{"model":"mock/mock-gpt","messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Name twenty words, one after another, and nothing else."}],"max_tokens":64'"$STREAM"'}'
load() {
  taskset -c 1 oha --no-tui -n "$1" -c 16 -m POST -H 'content-type: application/json' -d "$BODY" \
    "http://127.0.0.1:$PORT/v1/chat/completions"
}
load 300 >/dev/null
callgrind_control -z "$GATEWAY" >/dev/null 2>&1
load "$N" | grep -E "Success rate" || true
callgrind_control -d "$GATEWAY" >/dev/null 2>&1
sleep 1
kill -TERM "$GATEWAY"; wait "$GATEWAY" || true
PROFILE=$(ls "$OUT"/callgrind.*.1 | head -1)
TOTAL=$(callgrind_annotate "$PROFILE" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$MODE: $TOTAL instructions for $N requests = $((TOTAL / N)) per request (profile: $PROFILE)"
