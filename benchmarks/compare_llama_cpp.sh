#!/usr/bin/env bash
# Side-by-side throughput: lowrank against llama.cpp on the same machine, in the same run, so the
# ratio is honest on a noisy machine. llama.cpp comes from the PyPI package llama-cpp-python, built
# from source in a throwaway venv (a benchmark tool, not a dependency of lowrank); the model is
# converted to F32 and F16 GGUF with gguf-py.
#
# The engines take turns: each of ROUNDS rounds (default 3) runs every variant once (RUNS runs
# each), lowrank and llama.cpp alternating, and the table gives each variant's median over the
# rounds and each ratio's median and range over the rounds. Run one engine after the other
# instead, and a shared host's drift lands on one side: on the AMD EPYC of 2026-12-04, lowrank's
# f32 decode moved from 53 to 42 tokens/s between runs minutes apart (docs/BENCHMARKS.md).
#
# KV caches like for like: llama.cpp keeps an F16 cache by default, whatever the weights, so
# lowrank's f32 row against llama.cpp F32 runs with `--kv-cache f16` too. lowrank's own default
# for f32 weights (an f32 cache) is reported beside it.
# Usage: [ROUNDS=n] benchmarks/compare_llama_cpp.sh [runs]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/env.sh"
RUNS="${1:-3}"
WORK="${LOWRANK_BENCH_DIR:-/tmp/lowrank-bench}"
LLAMA_CPP_VERSION=0.3.36
mkdir -p "$WORK"

if [ ! -x "$WORK/venv/bin/python" ] || ! "$WORK/venv/bin/python" -c "import llama_cpp, gguf" 2>/dev/null; then
    echo "== building llama-cpp-python $LLAMA_CPP_VERSION in $WORK/venv (several minutes)" >&2
    python3 -m venv "$WORK/venv"
    CMAKE_ARGS="-DGGML_NATIVE=ON" "$WORK/venv/bin/pip" install --quiet "llama-cpp-python==$LLAMA_CPP_VERSION" gguf numpy
fi

"$REPO_ROOT/scripts/install-deps.sh"
for type in F32 F16; do
    out="$WORK/smollm2-$type.gguf"
    [ -f "$out" ] || "$WORK/venv/bin/python" "$here/convert_gguf.py" "$MODEL_PATH" "$out" "$type"
done

swift build "${SWIFT_FLAGS[@]}" --product lowrank >/dev/null
BIN="$(swift build "${SWIFT_FLAGS[@]}" --show-bin-path)/lowrank"
results="$WORK/results.jsonl"
: > "$results"
lowrank() {  # round, variant label, bench flags...
    local round="$1" label="$2"; shift 2
    echo "== round $round: lowrank $label" >&2
    "$BIN" bench "$MODEL_PATH" "$@" --runs "$RUNS" --json \
        | sed "s/^/{\"round\":$round,\"engine\":\"lowrank\",\"variant\":\"$label\",\"report\":/; s/\$/}/" >> "$results"
}
llama() {  # round, GGUF type
    echo "== round $1: llama.cpp $2" >&2
    "$WORK/venv/bin/python" "$here/bench_llama_cpp.py" "$WORK/smollm2-$2.gguf" "$RUNS" \
        | sed "s/^/{\"round\":$1,\"engine\":\"llama.cpp $LLAMA_CPP_VERSION\",\"variant\":\"$2\",\"report\":/; s/\$/}/" >> "$results"
}
for round in $(seq "${ROUNDS:-3}"); do
    lowrank "$round" f32 --weights f32
    llama "$round" F32
    lowrank "$round" f32-kv-f16 --weights f32 --kv-cache f16
    lowrank "$round" f16 --weights f16
    llama "$round" F16
    lowrank "$round" bf16 --weights bf16
done
python3 "$here/summarise.py" "$results"
