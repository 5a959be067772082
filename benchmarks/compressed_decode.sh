#!/usr/bin/env bash
# Decode speed of compressed checkpoints against the dense model, in one run (issue 11):
# `lowrank bench --json` on the dense model and on each checkpoint, in f32 and f16, plus the last
# checkpoint at --active-rank 0.5. Prints each speed-up beside its weight-byte ratio and the
# criterion (speed-up ≥ 0.9 × byte ratio). Runs are interleaved (dense, 20%, 40%, dense, ...) so a
# change in the machine's load affects every row alike. ROUNDS=n (default 1) repeats the whole
# interleaved sweep n times: each row's tokens/s is its median over the rounds, and its speed-up the
# median of the per-round speed-ups (each against its base in the same round, measured a minute
# apart at most), with their range. On a shared, noisy host one sweep's ratios moved by ±0.1, and
# the ratio of two medians let drift between rounds land on one side. WEIGHTS (default "f32 f16")
# picks the storage precisions swept.
# Usage: [ROUNDS=n] [WEIGHTS="f32 f16"] benchmarks/compressed_decode.sh RUNS CHECKPOINT_20 CHECKPOINT_40 [extra bench flags...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/env.sh"
RUNS="$1"; C20="$2"; C40="$3"; shift 3
BIN="${LOWRANK_BIN:-$(swift build "${SWIFT_FLAGS[@]}" --show-bin-path)/lowrank}"
out="$(mktemp)"
for round in $(seq "${ROUNDS:-1}"); do
for weights in ${WEIGHTS:-f32 f16}; do
    for model in "$MODEL_PATH" "$C20" "$C40" "$C40@0.5"; do
        path="${model%@*}"; active=1
        [ "$model" != "$path" ] && active="${model#*@}"
        echo "== bench $path --weights $weights --active-rank $active" >&2
        "$BIN" bench "$path" --weights "$weights" --active-rank "$active" --runs "$RUNS" --json "$@" 2>/dev/null \
            | python3 -c "import json,sys; r=json.load(sys.stdin); r['label']=sys.argv[1]; r['round']=int(sys.argv[2]); print(json.dumps(r))" \
                "$model" "$round" >> "$out"
    done
done
done
python3 - "$out" "$MODEL_PATH" "$C40" <<'PY'
import json, sys
import statistics
runs = [json.loads(l) for l in open(sys.argv[1])]
rows = []  # one per (label, weights): the median over rounds
for r in runs:
    if any(x["label"] == r["label"] and x["weights"] == r["weights"] for x in rows): continue
    same = [x for x in runs if x["label"] == r["label"] and x["weights"] == r["weights"]]
    m = dict(r)
    for key in ("decode_tokens_per_second", "prefill_tokens_per_second"):
        m[key] = statistics.median(x[key] for x in same)
    m["rounds"] = len(same)
    rows.append(m)
dense_path, c40 = sys.argv[2], sys.argv[3]
print(f"| model | weights | active rank | decode tok/s | prefill tok/s | weight MB/token | byte ratio | speed-up [range] | ≥ 0.9 × byte ratio |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for r in rows:
    base_label = dense_path if r["label"] != c40 + "@0.5" else c40
    base = next(b for b in rows if b["label"] == base_label and b["weights"] == r["weights"])
    ratio = base["weight_bytes_per_token"] / r["weight_bytes_per_token"]
    # The speed-up of each round against its own base, then the median over rounds.
    def rate(label, rnd):
        return next(x["decode_tokens_per_second"] for x in runs
                    if x["label"] == label and x["weights"] == r["weights"] and x["round"] == rnd)
    per_round = [rate(r["label"], k) / rate(base_label, k) for k in sorted({x["round"] for x in runs})]
    speed = statistics.median(per_round)
    ok = "yes" if speed >= 0.9 * ratio else "no"
    name = r["label"].split("/")[-1]
    spread = f" [{min(per_round):.3f}, {max(per_round):.3f}]" if len(per_round) > 1 else ""
    print(f"| {name} | {r['weights']} | {r['active_rank']} | {r['decode_tokens_per_second']:.1f} | {r['prefill_tokens_per_second']:.0f} | "
          f"{r['weight_bytes_per_token']/1e6:.1f} | {ratio:.3f} | {speed:.3f}{spread if r is not base else ''} | {ok if r is not base else '–'} |")
print()
print("blas:", rows[0]["blas"], "| threads:", rows[0]["threads"], "| rounds:", rows[0]["rounds"])
PY
