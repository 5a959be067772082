#!/usr/bin/env bash
# Quick start, command 2: the full test suite (offline unit tests on tiny seeded models, and
# real-model tests on SmolLM2 against ../shared/fixtures/smollm2). Release mode, so the real-model
# tests run at engine speed; the build is shared with scripts/setup.sh.
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --fast     the offline tier alone: no model download, no ../shared (tiny seeded
#                              models and hand-built files); a few minutes on 2 cores after the build
#   scripts/test.sh [--fast] --filter REGEX   and any other `swift test` options
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"
fast=0
if [ "${1:-}" = "--fast" ]; then fast=1; shift; fi
if [ $fast -eq 1 ]; then
    LOWRANK_SKIP_MODEL=1 "$REPO_ROOT/scripts/install-deps.sh"
else
    "$REPO_ROOT/scripts/install-deps.sh"
fi
# The ROUGE test's oracle (Google's rouge-score with NLTK's Porter stemmer); tests only.
if ! python3 -c "import rouge_score, nltk" 2>/dev/null; then
    echo "== installing rouge-score for the ROUGE test" >&2
    python3 -m pip install --quiet rouge-score==0.1.2 nltk==3.10.4 >&2
fi
# curl: the server test talks to `lowrank serve` as a shell user would.
if ! command -v curl >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq curl >/dev/null
fi
# The server test's oracle: the official OpenAI client (`lowrank serve` must answer it); tests only.
if ! python3 -c "import openai" 2>/dev/null; then
    echo "== installing the openai client for the server test" >&2
    python3 -m pip install --quiet openai==3.57.0 >&2
fi
swift build "${SWIFT_FLAGS[@]}" --build-tests
if [ $fast -eq 1 ]; then
    # The real-model tier: every suite that reads SmolLM2 or ../shared/fixtures, and the CLI tests
    # (they run the real model). Its suites are named for it, so a new one is skipped here too.
    swift test "${SWIFT_FLAGS[@]}" --skip-build --skip 'SmolLM2|WhiteningFixtureTests|TokenizerFixtureTests|LowRankCLITests' "$@"
else
    swift test "${SWIFT_FLAGS[@]}" --skip-build "$@"
fi
