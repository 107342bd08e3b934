# Shared by the shell benchmarks (callgrind.sh, open_streams.sh): source it with BIN (the
# directory of the release binaries) and OUT (a scratch directory) set.

# Starts the release mock on CPU 1 (20 chunks of one word each); sets MOCK (its pid) and
# MOCK_PORT.
start_mock() {
  local answer
  answer=$(printf 'word%d ' $(seq 0 19)); answer=${answer% }
  taskset -c 1 "$BIN/opengateway-mock" --listen 127.0.0.1:0 --no-record --chunks 20 \
    --content "$answer" >"$OUT/mock.out" 2>"$OUT/mock.err" &
  MOCK=$!
  for _ in $(seq 100); do grep -q ':[0-9]' "$OUT/mock.out" 2>/dev/null && break; sleep 0.1; done
  MOCK_PORT=$(grep -o ':[0-9]*$' "$OUT/mock.out" | head -1 | tr -d :)
}

# Writes $OUT/opengateway.yaml: the mock as provider `mock`, the server's defaults (SQLite
# ledger in $OUT, no auth) on a free port; sets PORT.
write_config() {
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$OUT/opengateway.yaml" <<YAML
providers:
  mock: { type: openai, api_base: "http://127.0.0.1:$MOCK_PORT/v1", api_key: bench }
router: { retries: 0 }
server:
  listen: 127.0.0.1:$PORT
  database: sqlite://$OUT/bench.db
  auth: none
YAML
}

# Waits (at most 60 s) until the gateway on PORT answers /health.
wait_healthy() {
  for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.2; done
}
