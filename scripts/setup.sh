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

RUN="$REPO_ROOT/runs/smollm2-svd-llm-0.2"
M="${MODEL_PATH#$REPO_ROOT/}"
echo
echo "\$ lowrank info $M"
"$BIN" info "$MODEL_PATH"
echo
echo "\$ lowrank compress $M --method svd-llm --remove 0.2 -o runs/smollm2-svd-llm-0.2"
"$BIN" compress "$MODEL_PATH" --method svd-llm --remove 0.2 -o "$RUN"
echo
echo "\$ lowrank perplexity $M --dataset wikitext2 --limit 4      # dense"
"$BIN" perplexity "$MODEL_PATH" --dataset wikitext2 --limit 4
echo "\$ lowrank perplexity runs/smollm2-svd-llm-0.2 --dataset wikitext2 --limit 4      # 20% of projection parameters removed"
"$BIN" perplexity "$RUN" --dataset wikitext2 --limit 4
echo
echo "\$ lowrank eval $M --limit 20      # the seven zero-shot tasks, first 20 items each (docs/RESULTS.md has full runs)"
"$BIN" eval "$MODEL_PATH" --limit 20
echo "\$ lowrank eval runs/smollm2-svd-llm-0.2 --limit 20"
"$BIN" eval "$RUN" --limit 20
echo
# The system prompt of the reference fixture (greedy_generation.json, chat_system_user): with the
# model's default system prompt this tiny model answers this question with a run of digits.
SYSTEM="You are a helpful assistant."
PROMPT="Give me three tips for learning to cook."
echo "\$ lowrank generate $M --chat --system '$SYSTEM' --prompt '$PROMPT' --max-tokens 64"
"$BIN" generate "$MODEL_PATH" --chat --system "$SYSTEM" --prompt "$PROMPT" --max-tokens 64
echo "\$ lowrank generate runs/smollm2-svd-llm-0.2 --chat --system '$SYSTEM' --prompt '$PROMPT' --max-tokens 64"
"$BIN" generate "$RUN" --chat --system "$SYSTEM" --prompt "$PROMPT" --max-tokens 64
