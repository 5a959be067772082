#!/usr/bin/env bash
# Reproduces the zero-shot table of docs/RESULTS.md: every task in full for each model, one JSON per
# model and task in OUT (a task whose JSON exists is not run again, so an interrupted run resumes),
# then prints the markdown table. Usage:
#   scripts/zeroshot-table.sh OUT dense=models/SmolLM2-135M-Instruct.Q4_1.gguf svdllm20=CHECKPOINT ...
# Extra `lowrank eval` options go in LOWRANK_EVAL_ARGS (e.g. "--limit 100"). LOWRANK_BIN: a copied
# binary, so rebuilding meanwhile is safe. ZEROSHOT_TABLE_ONLY=1 prints the table of what is there
# (a missing task shows as "not run") without running anything.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"
OUT="${1:?usage: scripts/zeroshot-table.sh OUT name=MODEL ...}"
shift
[ $# -gt 0 ] || { echo "give at least one name=MODEL" >&2; exit 2; }
TASKS=(arc_easy arc_challenge openbookqa winogrande piqa mathqa hellaswag)
run_missing_tasks() {
    if [ -z "${LOWRANK_BIN:-}" ]; then
        swift build "${SWIFT_FLAGS[@]}" --product lowrank >/dev/null
        LOWRANK_BIN="$(swift build "${SWIFT_FLAGS[@]}" --show-bin-path)/lowrank"
    fi
    mkdir -p "$OUT"
    for spec in "$@"; do
        name="${spec%%=*}"; model="${spec#*=}"
        for task in "${TASKS[@]}"; do
            out="$OUT/$name-$task.json"
            [ -s "$out" ] && continue
            echo "== $name $task" >&2
            # shellcheck disable=SC2086
            /usr/bin/time -f "%e s wall, %M KB peak" "$LOWRANK_BIN" eval "$model" --tasks "$task" --json ${LOWRANK_EVAL_ARGS:-} \
                > "$out.tmp" 2> "$OUT/$name-$task.err" || { tail -5 "$OUT/$name-$task.err" >&2; exit 1; }
            mv "$out.tmp" "$out"
        done
    done
}
[ -n "${ZEROSHOT_TABLE_ONLY:-}" ] || run_missing_tasks "$@"
python3 - "$OUT" "${TASKS[@]}" -- "$@" <<'PY'
import json, sys
args = sys.argv[1:]
out, tasks, specs = args[0], args[1:args.index("--")], args[args.index("--") + 1:]
names = {"arc_easy": "ARC-e", "arc_challenge": "ARC-c", "hellaswag": "HellaSwag", "openbookqa": "OBQA",
         "winogrande": "WinoGrande", "mathqa": "MathQA", "piqa": "PIQA"}
order = ["arc_easy", "arc_challenge", "hellaswag", "openbookqa", "winogrande", "mathqa", "piqa"]
print("| model | " + " | ".join(names[t] + (" acc" if t == "winogrande" else " acc / norm") for t in order)
      + " | average acc | average (papers' metric) | items | wall time |")
print("| --- |" + " --- |" * len(order) + " ---: | ---: | ---: | ---: |")
for spec in specs:
    name = spec.split("=", 1)[0]
    cells, accs, paper, items, seconds = [], [], [], 0, 0.0
    for t in order:
        try:
            r = json.load(open(f"{out}/{name}-{t}.json"))
        except FileNotFoundError:
            cells.append("not run")
            continue
        m = r["tasks"][t]
        cells.append(f"{m['acc']:.4f}" + (f" / {m['acc_norm']:.4f}" if m.get("acc_norm") is not None else ""))
        accs.append(m["acc"])
        paper.append(m[m["paper_metric"]])
        items += m["items"]
        seconds += r["seconds"]
    complete = len(accs) == len(order)
    averages = f"{sum(accs)/len(accs):.4f} | {sum(paper)/len(paper):.4f}" if complete else "– | –"
    print(f"| {name} | " + " | ".join(cells) + f" | {averages} | {items:,} | {seconds/60:.1f} min |")
PY
