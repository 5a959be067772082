#!/usr/bin/env bash
# Load test of `lowrank serve` on loopback (issue 15): for each MODEL, start the server
# (--max-concurrent 8), run benchmarks/serve_load.py with 1, 2, 4 and 8 concurrent streaming
# clients (plain-text completions by default, ENDPOINT=chat for chat: the 40% checkpoint ends most
# chat replies at once), stop it with SIGINT. Also `lowrank bench --batch 4` on each model for the engine-side
# ratio. Usage: benchmarks/serve_load.sh MODEL... (REQUESTS=8 MAX_TOKENS=128 by default)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/env.sh"
BIN="${LOWRANK_BIN:-$(swift build "${SWIFT_FLAGS[@]}" --show-bin-path)/lowrank}"
port=18290
for model in "$@"; do
    echo "== $model" >&2
    "$BIN" serve "$model" --port "$port" --max-concurrent 8 --context 2048 2> "/tmp/serve_load.$port.log" &
    server=$!
    for _ in $(seq 300); do curl -s "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
    echo "### $(basename "$model")"
    python3 "$here/serve_load.py" "http://127.0.0.1:$port" --requests "${REQUESTS:-8}" --max-tokens "${MAX_TOKENS:-128}" --endpoint "${ENDPOINT:-completions}"
    kill -INT "$server"; wait "$server" || true
    grep -c " 200 " "/tmp/serve_load.$port.log" | sed 's/^/requests logged with status 200: /'
    "$BIN" bench "$model" --prompt-tokens 64 --decode-tokens 64 --batch 4 --runs 3 2>/dev/null | grep -E "^decode"
    port=$((port + 1))
done
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
