#!/usr/bin/env bash
# Decode speed of one tier of decode kernels against another on the same machine, in one run:
# `lowrank bench --json` with LOWRANK_DECODE_KERNELS set to each tier in turn, for every model and
# weight format given. The tiers alternate within each round (A, B, A, B, ...), and each ratio is
# the median of the per-round ratios B / A, with their range, so a change in the host's load
# between rounds lands on both sides.
# Usage: [ROUNDS=n] benchmarks/kernel_tiers.sh RUNS TIER_A TIER_B MODEL:WEIGHTS... [-- extra bench flags]
#   e.g. ROUNDS=3 benchmarks/kernel_tiers.sh 3 portable avx2 models/SmolLM2-135M-Instruct.Q4_1.gguf:f32 runs/svdllm-0.2:f16
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/env.sh"
RUNS="$1"; A="$2"; B="$3"; shift 3
specs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do specs+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
BIN="${LOWRANK_BIN:-$(swift build "${SWIFT_FLAGS[@]}" --show-bin-path)/lowrank}"
out="$(mktemp)"
for round in $(seq "${ROUNDS:-1}"); do
    for spec in "${specs[@]}"; do
        path="${spec%:*}"; weights="${spec##*:}"
        for tier in "$A" "$B"; do
            echo "== round $round: $tier bench $path --weights $weights" >&2
            LOWRANK_DECODE_KERNELS="$tier" "$BIN" bench "$path" --weights "$weights" --runs "$RUNS" --json "$@" 2>/dev/null \
                | python3 -c "import json,sys; r=json.load(sys.stdin); r.update(label=sys.argv[1], tier=sys.argv[2], round=int(sys.argv[3])); print(json.dumps(r))" \
                    "$spec" "$tier" "$round" >> "$out"
        done
    done
done
python3 - "$out" "$A" "$B" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
a, b = sys.argv[2], sys.argv[3]
labels = list(dict.fromkeys(r["label"] for r in runs))
def rates(label, tier, key):
    return {r["round"]: r[key] for r in runs if r["label"] == label and r["tier"] == tier}
print(f"| model | weights | MB/token | decode {a} tok/s | decode {b} tok/s | {b} / {a} decode [range] | {b} / {a} prefill |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for label in labels:
    ra, rb = rates(label, a, "decode_tokens_per_second"), rates(label, b, "decode_tokens_per_second")
    pa, pb = rates(label, a, "prefill_tokens_per_second"), rates(label, b, "prefill_tokens_per_second")
    per = [rb[k] / ra[k] for k in sorted(ra)]
    pre = statistics.median(pb[k] / pa[k] for k in sorted(pa))
    first = next(r for r in runs if r["label"] == label)
    spread = f" [{min(per):.2f}, {max(per):.2f}]" if len(per) > 1 else ""
    print(f"| {label.split(':')[0].split('/')[-1]} | {first['weights']} | {first['weight_bytes_per_token']/1e6:.1f} | "
          f"{statistics.median(ra.values()):.1f} | {statistics.median(rb.values()):.1f} | {statistics.median(per):.2f}{spread} | {pre:.2f} |")
tiers = sorted({r["decode_kernels"] for r in runs})
print()
print("decode_kernels reported:", ", ".join(tiers), "| blas:", runs[0]["blas"], "| threads:", runs[0]["threads"],
      "| rounds:", len({r["round"] for r in runs}))
PY
