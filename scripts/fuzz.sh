#!/usr/bin/env bash
# Coverage-guided fuzzing of one parser with libFuzzer and AddressSanitizer:
#   scripts/fuzz.sh TARGET [SECONDS]      (default 60 s; targets: lowrank-fuzz's list)
# The corpus is fuzz/corpus/TARGET (committed seeds; new interesting inputs are added to a copy in
# .build-fuzz/corpus/TARGET). A crash is written as .build-fuzz/crash-*; copy it to
# fuzz/regressions/TARGET/ so the test suite replays it. Limits: 1 s per input, 2 GiB of memory.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"
TARGET="${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}"
SECONDS_TO_RUN="${2:-60}"
swift build -c release --scratch-path .build-fuzz --product lowrank-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -target-cpu -Xswiftc "$LOWRANK_TARGET_CPU" >&2
BIN="$(swift build -c release --scratch-path .build-fuzz --show-bin-path)/lowrank-fuzz"
mkdir -p ".build-fuzz/corpus/$TARGET" ".build-fuzz/artifacts"
cp -n "fuzz/corpus/$TARGET/"* ".build-fuzz/corpus/$TARGET/" 2>/dev/null || true
LOWRANK_FUZZ_TARGET="$TARGET" ASAN_OPTIONS=detect_leaks=1 "$BIN" ".build-fuzz/corpus/$TARGET" \
    -max_total_time="$SECONDS_TO_RUN" -timeout=1 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix=".build-fuzz/artifacts/$TARGET-" -print_final_stats=1
