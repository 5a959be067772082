#!/usr/bin/env bash
# Side-by-side throughput: lowrank against llama.cpp on the same machine, in the same run, so the
# ratio is honest on a noisy machine. llama.cpp comes from the PyPI package llama-cpp-python, built
# from source in a throwaway venv (a benchmark tool, not a dependency of lowrank); the model is
# converted to F32 and F16 GGUF with gguf-py. Usage: benchmarks/compare_llama_cpp.sh [runs]
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
for weights in f32 f16 bf16; do
    echo "== lowrank --weights $weights" >&2
    "$BIN" bench "$MODEL_PATH" --weights "$weights" --runs "$RUNS" --json | sed "s/^/{\"engine\":\"lowrank\",\"variant\":\"$weights\",\"report\":/; s/\$/}/" >> "$results"
done
for type in F32 F16; do
    echo "== llama.cpp $type" >&2
    "$WORK/venv/bin/python" "$here/bench_llama_cpp.py" "$WORK/smollm2-$type.gguf" "$RUNS" \
        | sed "s/^/{\"engine\":\"llama.cpp $LLAMA_CPP_VERSION\",\"variant\":\"$type\",\"report\":/; s/\$/}/" >> "$results"
done
python3 "$here/summarise.py" "$results"
