#!/usr/bin/env bash
# Scale run (docs/BENCHMARKS.md): writes a seeded random model with Llama-3-8B shapes and N decoder
# layers (default 4), then compresses it with SVD-LLM at 20% under /usr/bin/time, and prints the
# per-layer timings from compression.json for extrapolating to the real model's 32 layers.
# Usage: scripts/scale-run.sh [OUT_DIR] [LAYERS] [extra compress options...]
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"
OUT="${1:-/tmp/lowrank-scale}"
LAYERS="${2:-4}"
shift 2 || shift $# || true
if [ -z "${LOWRANK_BIN:-}" ]; then
    swift build "${SWIFT_FLAGS[@]}" --product lowrank >/dev/null
    LOWRANK_BIN="$(swift build "${SWIFT_FLAGS[@]}" --show-bin-path)/lowrank"
fi
mkdir -p "$OUT"
MODEL="$OUT/llama3-8b-${LAYERS}l"
[ -f "$MODEL/model.safetensors" ] || /usr/bin/time -v "$LOWRANK_BIN" synthesize "$MODEL_PATH" --preset llama3-8b --layers "$LAYERS" --seed 1 -o "$MODEL" \
    2> "$OUT/synthesize.err"
grep -E "Elapsed|Maximum resident" "$OUT/synthesize.err" || true
/usr/bin/time -v "$LOWRANK_BIN" compress "$MODEL" --method svd-llm --remove 0.2 -o "$OUT/compressed" "$@" \
    > "$OUT/compress.txt" 2> "$OUT/compress.err" || { tail -20 "$OUT/compress.err" >&2; exit 1; }
cat "$OUT/compress.txt"
grep -E "Elapsed|Maximum resident" "$OUT/compress.err"
python3 - "$OUT/compressed/compression.json" "$LAYERS" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); layers = int(sys.argv[2])
cal, fac, tot = s["calibration_seconds"], s["factorisation_seconds"], s["total_seconds"]
fixed = tot - cal - fac  # loading, tokenising the corpus, writing
print(f"per layer: calibration {cal/layers:.1f} s, factorisation {fac/layers:.1f} s; fixed {fixed:.1f} s")
print(f"32 layers by the per-layer cost: {(fixed + 32*(cal+fac)/layers)/60:.1f} min")
PY
