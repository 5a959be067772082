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
echo "\$ lowrank generate ${MODEL_PATH#$REPO_ROOT/} --chat --prompt 'Give me three tips for learning to cook.' --max-tokens 96"
"$BIN" generate "$MODEL_PATH" --chat --prompt "Give me three tips for learning to cook." --max-tokens 96
echo
echo "\$ lowrank perplexity ${MODEL_PATH#$REPO_ROOT/} --dataset wikitext2 --limit 4"
"$BIN" perplexity "$MODEL_PATH" --dataset wikitext2 --limit 4
