#!/usr/bin/env bash
# Reproduces the compression table of docs/RESULTS.md: each method and budget with the reference
# calibration recipe (C4 sample, 64 windows of 512 at the fixture README's offsets), scored on the
# first 40 WikiText-2 windows of 2048. Usage: scripts/compression-table.sh [OUT_DIR] [method:remove[:allocation[:fisher-cap]] ...]
# (allocation: uniform, the default, effective-rank, svd-llm-v2, fisher, fisher-weight or fisher-gradient; fisher-cap: break-even,
# the default, or full-rank).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"
OUT="${1:-/tmp/lowrank-table}"
shift || true
RUNS=("$@")
[ ${#RUNS[@]} -eq 0 ] && RUNS=(svd-llm:0.2 svd-llm:0.4 asvd:0.2 asvd:0.4 svd:0.2 svd:0.4 svd-llm:0.1 svd-llm:0.3)
STARTS=124761,310714,285332,68379,193963,480218,316628,248540,328057,304533,34355,317508,6903,476482,439074,246012,135976,288769,122856,100529,375992,246553,283626,438546,288165,249746,208212,335055,451423,78966,121593,332849,79493,455105,485404,274297,204439,388629,7941,352012,407494,33570,83571,397531,309906,22433,157951,408984,16259,431788,453785,141259,247856,311820,376870,482427,460751,203218,374409,413196,482920,223836,207074,381747
if [ -z "${LOWRANK_BIN:-}" ]; then  # LOWRANK_BIN: a copied binary, so rebuilding meanwhile is safe
    swift build "${SWIFT_FLAGS[@]}" --product lowrank >/dev/null
    LOWRANK_BIN="$(swift build "${SWIFT_FLAGS[@]}" --show-bin-path)/lowrank"
fi
BIN="$LOWRANK_BIN"
mkdir -p "$OUT"
for run in "${RUNS[@]}"; do
    IFS=: read -r method remove allocation cap <<< "$run"
    allocation="${allocation:-uniform}"
    dir="$OUT/smollm2-$method-$remove"
    [ "$allocation" != uniform ] && dir="$dir-$allocation"
    extra=()
    [ -n "$cap" ] && { extra=(--fisher-cap "$cap"); dir="$dir-$cap"; }
    echo "== $method --remove $remove --allocation $allocation ${extra[*]}" >&2
    /usr/bin/time -v "$BIN" compress "$MODEL_PATH" --method "$method" --remove "$remove" --allocation "$allocation" "${extra[@]}" --calibration c4 --length 512 \
        --calibration-starts "$STARTS" -o "$dir" 2> "$dir.compress.err" > "$dir.compress.txt" || { cat "$dir.compress.err" >&2; exit 1; }
    "$BIN" perplexity "$dir" --dataset wikitext2 --window 2048 --limit 40 --json > "$dir.ppl.json"
    python3 -c "import json,sys; r=json.load(open('$dir.ppl.json')); print('$method', '$remove', '$allocation', '$cap', round(r['mean_nll'],5), '%.4g' % r['perplexity'])"
done
