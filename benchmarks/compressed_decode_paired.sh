#!/usr/bin/env bash
# Decode speed of compressed checkpoints against the dense model, each pair in one process (issue 11):
# `lowrank bench CHECKPOINT --baseline DENSE --json` for the 20% and 40% checkpoints in f32 and f16, and
# `lowrank bench CHECKPOINT_40 --active-rank 0.5 --baseline CHECKPOINT_40` (the baseline runs at full
# rank). Each run of the checkpoint is paired with a run of its baseline seconds apart, the order
# alternating, so the host's drift (±10% between runs a minute apart) moves both sides of a pair
# alike; the speed-up is the median of the pairs' ratios. compressed_decode.sh measures the same
# rows in separate processes. ROUNDS=n (default 1) repeats every row n times in new processes and
# pools their pairs.
# Usage: [ROUNDS=n] [WEIGHTS="f32 f16"] benchmarks/compressed_decode_paired.sh RUNS CHECKPOINT_20 CHECKPOINT_40 [extra bench flags...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/env.sh"
RUNS="$1"; C20="$2"; C40="$3"; shift 3
BIN="${LOWRANK_BIN:-$(swift build "${SWIFT_FLAGS[@]}" --show-bin-path)/lowrank}"
out="$(mktemp)"
for round in $(seq "${ROUNDS:-1}"); do
for weights in ${WEIGHTS:-f32 f16}; do
    for row in "$C20|1|$MODEL_PATH" "$C40|1|$MODEL_PATH" "$C40|0.5|$C40"; do
        IFS='|' read -r path active base <<< "$row"
        echo "== bench $path --weights $weights --active-rank $active --baseline $base" >&2
        "$BIN" bench "$path" --weights "$weights" --active-rank "$active" --baseline "$base" --runs "$RUNS" --json "$@" 2>/dev/null \
            | python3 -c "import json,sys; r=json.load(sys.stdin); r['round']=int(sys.argv[1]); print(json.dumps(r))" "$round" >> "$out"
    done
done
done
python3 - "$out" <<'PY'
import json, sys, statistics
runs = [json.loads(l) for l in open(sys.argv[1])]
print("| model | weights | active rank | baseline | decode tok/s | baseline tok/s | byte ratio | speed-up [range of pairs] | pairs | ≥ 0.9 × byte ratio |")
print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
seen = []
for r in runs:
    key = (r["model"], r["weights"], r["active_rank"])
    if key in seen: continue
    seen.append(key)
    same = [x for x in runs if (x["model"], x["weights"], x["active_rank"]) == key]
    pairs = [s for x in same for s in x["baseline"]["decode_speedup_runs"]]
    speed = statistics.median(pairs)
    ratio = r["baseline"]["byte_ratio"]
    rate = statistics.median(v for x in same for v in x["decode_runs"])
    base_rate = statistics.median(v for x in same for v in x["baseline"]["decode_runs"])
    ok = "yes" if speed >= 0.9 * ratio else "no"
    print(f"| {r['model'].rstrip('/').split('/')[-1]} | {r['weights']} | {r['active_rank']} | {r['baseline']['model'].rstrip('/').split('/')[-1]} | "
          f"{rate:.1f} | {base_rate:.1f} | {ratio:.3f} | {speed:.3f} [{min(pairs):.3f}, {max(pairs):.3f}] | {len(pairs)} | {ok} |")
print()
print("blas:", runs[0]["blas"], "| decode kernels:", runs[0]["decode_kernels"], "| threads:", runs[0]["threads"], "| rounds:", max(x["round"] for x in runs))
PY
