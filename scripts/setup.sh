#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build lowrank (release), and run the main job on
# the default model. Pass --no-demo to stop after the build (CI does).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/scripts/install-deps.sh"
echo "== building lowrank (release, -target-cpu $LOWRANK_TARGET_CPU)" >&2
swift build "${SWIFT_FLAGS[@]}" --product lowrank
BIN="$(swift build "${SWIFT_FLAGS[@]}" --show-bin-path)/lowrank"
[ "${1:-}" = "--no-demo" ] && exit 0

echo
echo "\$ lowrank info ${MODEL_PATH#$REPO_ROOT/}"
"$BIN" info "$MODEL_PATH"
echo
echo "\$ lowrank tokenize ${MODEL_PATH#$REPO_ROOT/} --text 'Low-rank factorisation makes models smaller.'"
"$BIN" tokenize "$MODEL_PATH" --text "Low-rank factorisation makes models smaller."
