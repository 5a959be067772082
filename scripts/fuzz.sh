#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers with libFuzzer and AddressSanitizer (+ LeakSanitizer):
#   scripts/fuzz.sh TARGET [SECONDS] [RUNS]   one target (default 60 s; stops early after RUNS inputs)
#   scripts/fuzz.sh all [SECONDS] [RUNS]      every target, two at a time (what CI runs, 60 s each)
# Targets: lowrank-fuzz's list (gguf, safetensors, tokenizer-json, config-json, compression-json,
# rank-schedule, zeroshot-line, summarization-lines).
# The corpus of a target starts from its committed seeds (fuzz/corpus/TARGET), copied into
# .build-fuzz/corpus/TARGET, where new interesting inputs are added; the repository is not written.
# A crash, leak, timeout or out-of-memory is written as .build-fuzz/artifacts/TARGET-*; copy it to
# fuzz/regressions/TARGET/ so the test suite replays it. Limits: 1 s per input, 2 GiB of memory.
# Each run's log is .build-fuzz/logs/TARGET.log; the exit status is non-zero if any target failed.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"
TARGET="${1:?usage: scripts/fuzz.sh TARGET|all [SECONDS] [RUNS]}"
SECONDS_TO_RUN="${2:-60}"
RUNS="${3:--1}"   # libFuzzer: -1 means no limit on the number of inputs
# Every target has a committed corpus folder (the corpus replay test checks it), so the folders are the list.
mapfile -t ALL_TARGETS < <(ls fuzz/corpus)

echo "== building lowrank-fuzz with -sanitize=fuzzer,address (.build-fuzz)" >&2
swift build -c release --scratch-path .build-fuzz --product lowrank-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -target-cpu -Xswiftc "$LOWRANK_TARGET_CPU" >&2
BIN="$(swift build -c release --scratch-path .build-fuzz --show-bin-path)/lowrank-fuzz"
mkdir -p .build-fuzz/artifacts .build-fuzz/logs

# One target; its libFuzzer output goes to its log, one summary line to stdout.
fuzz_one() {
    local target="$1" log=".build-fuzz/logs/$1.log"
    if [ ! -d "fuzz/corpus/$target" ]; then
        echo "unknown fuzz target '$target' (no fuzz/corpus/$target); targets: ${ALL_TARGETS[*]}" >&2
        return 2
    fi
    mkdir -p ".build-fuzz/corpus/$target"
    cp -n "fuzz/corpus/$target/"* ".build-fuzz/corpus/$target/" 2>/dev/null || true
    local status=0
    LOWRANK_FUZZ_TARGET="$target" ASAN_OPTIONS=detect_leaks=1 "$BIN" ".build-fuzz/corpus/$target" \
        -max_total_time="$SECONDS_TO_RUN" -runs="$RUNS" -timeout=1 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix=".build-fuzz/artifacts/$target-" -print_final_stats=1 >"$log" 2>&1 || status=$?
    local runs seconds rss
    # (each grep may find nothing, after a crash: `|| true` keeps set -e from ending the run here)
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{print $2}' || true)"
    seconds="$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | awk '{print $5}' || true)"
    rss="$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | awk '{print $2}' || true)"
    if [ "$status" -eq 0 ]; then
        echo "$target: ${runs:-?} executions in ${seconds:-?} s, peak RSS ${rss:-?} MB, nothing found"
    else
        echo "$target: FAILED (exit $status) after ${runs:-?} executions; see $log and .build-fuzz/artifacts/$target-*"
        grep -m 3 -E 'ERROR|SUMMARY|ALARM' "$log" | sed 's/^/    /' || true
    fi
    return "$status"
}

if [ "$TARGET" != all ]; then
    fuzz_one "$TARGET"
    exit $?
fi
# Two at a time: one per core on the 2-core machines this project runs on.
failed=0
for ((i = 0; i < ${#ALL_TARGETS[@]}; i += 2)); do
    pids=()
    for target in "${ALL_TARGETS[@]:i:2}"; do
        fuzz_one "$target" & pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
done
exit "$failed"
