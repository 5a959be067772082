#!/usr/bin/env bash
# Decode speed of checkpoints in any form (svd-llm, cat, skip, skipcat, basis-sharing: issue 13)
# against the dense model, in one run: `lowrank bench --json` (512-token prompt, 128 decoded tokens,
# medians of RUNS after a warm-up) on the dense model and each checkpoint, interleaved round by
# round so a change in the machine's load touches every row alike; each row reports the median over
# ROUNDS (default 1). With llama.cpp built by benchmarks/compare_llama_cpp.sh (its venv and F32 GGUF
# in $LOWRANK_BENCH_DIR, default /tmp/lowrank-bench), llama.cpp F32 joins every round.
# Usage: [ROUNDS=n] [WEIGHTS=f32] benchmarks/forms_decode.sh RUNS CHECKPOINT... 
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/env.sh"
RUNS="$1"; shift
BIN="${LOWRANK_BIN:-$(swift build "${SWIFT_FLAGS[@]}" --show-bin-path)/lowrank}"
WORK="${LOWRANK_BENCH_DIR:-/tmp/lowrank-bench}"
WEIGHTS="${WEIGHTS:-f32}"
out="$(mktemp)"
for round in $(seq "${ROUNDS:-1}"); do
    for model in "$MODEL_PATH" "$@"; do
        echo "== round $round: bench $model --weights $WEIGHTS" >&2
        "$BIN" bench "$model" --weights "$WEIGHTS" --runs "$RUNS" --json 2>/dev/null \
            | python3 -c "import json,sys; r=json.load(sys.stdin); r['label']=sys.argv[1]; print(json.dumps(r))" "$model" >> "$out"
    done
    if [ -x "$WORK/venv/bin/python" ] && [ -f "$WORK/smollm2-F32.gguf" ]; then
        echo "== round $round: llama.cpp F32" >&2
        "$WORK/venv/bin/python" "$here/bench_llama_cpp.py" "$WORK/smollm2-F32.gguf" "$RUNS" \
            | python3 -c "import json,sys; r=json.load(sys.stdin); r['label']='llama.cpp F32'; print(json.dumps(r))" >> "$out"
    fi
done
python3 - "$out" "$MODEL_PATH" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
labels = []
for r in runs:
    if r["label"] not in labels: labels.append(r["label"])
def median(label, key):
    values = [r[key] for r in runs if r["label"] == label and key in r]
    return statistics.median(values) if values else None
dense = sys.argv[2]
base = median(dense, "decode_tokens_per_second")
base_bytes = median(dense, "weight_bytes_per_token")
print("| model | decode tok/s | prefill tok/s | weight MB/token | byte ratio | decode speed-up vs dense |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for label in labels:
    decode, prefill = median(label, "decode_tokens_per_second"), median(label, "prefill_tokens_per_second")
    size = median(label, "weight_bytes_per_token")
    name = "dense" if label == dense else label.split("/")[-1]
    ratio = f"{base_bytes / size:.3f}" if size else "–"
    mb = f"{size / 1e6:.1f}" if size else "–"
    print(f"| {name} | {decode:.1f} | {prefill:.0f} | {mb} | {ratio} | {decode / base:.3f} |")
first = next(r for r in runs if r["label"] == dense)
print()
print("blas:", first.get("blas"), "| threads:", first.get("threads"), "| rounds:", len([r for r in runs if r["label"] == dense]))
PY
